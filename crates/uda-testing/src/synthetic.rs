//! Small synthetic ImageSets for tests and benchmarks of the training stages: street-like
//! scenes (sky, building, road, a car) whose colours follow their labels, so a model can learn
//! them in a few iterations, with a colour shift between "source" and "target" looks.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;
use uda_data::DataError;
use uda_data::imageset::{IMAGES, LABELS};
use uda_data::zarr::{ArrayLayout, ImageArrayWriter};

/// Train ids drawn (road, building, sky, car), and their base colours.
const CLASSES: [(u8, [u8; 3]); 4] = [
    (0, [128, 64, 128]),
    (2, [70, 70, 70]),
    (10, [70, 130, 180]),
    (13, [0, 0, 142]),
];

/// Renders scene `index` of a set: `(rgb, labels)`. `shift` (0 = source look) tints the target.
pub fn scene(
    seed: u64,
    index: usize,
    height: usize,
    width: usize,
    shift: f32,
) -> (Vec<u8>, Vec<u8>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index as u64);
    let horizon = rng.random_range(height / 4..=height / 2);
    let road_top = rng.random_range(horizon..=(3 * height / 4).max(horizon));
    let car_w = (width / 4).max(1);
    let car_h = (height / 6).max(1);
    let car_x = rng.random_range(0..=width - car_w);
    let car_y = rng.random_range(road_top.min(height - car_h)..=height - car_h);
    let mut rgb = vec![0u8; height * width * 3];
    let mut labels = vec![0u8; height * width];
    for y in 0..height {
        for x in 0..width {
            let class =
                if (car_y..car_y + car_h).contains(&y) && (car_x..car_x + car_w).contains(&x) {
                    3
                } else if y < horizon {
                    2
                } else if y < road_top {
                    1
                } else {
                    0
                };
            let (id, base) = CLASSES[class];
            labels[y * width + x] = if rng.random_ratio(1, 50) { 255 } else { id };
            for c in 0..3 {
                let tint = if c == 0 { 40.0 * shift } else { -20.0 * shift };
                let v = f32::from(base[c]) + tint + rng.random_range(-20.0..20.0);
                rgb[(y * width + x) * 3 + c] = v.clamp(0.0, 255.0) as u8;
            }
        }
    }
    (rgb, labels)
}

/// Writes an ImageSet folder (`images.zarr`, and `labels.zarr` when `labels`) of `n` scenes.
pub fn write_imageset(
    dir: &Path,
    n: usize,
    height: usize,
    width: usize,
    labels: bool,
    seed: u64,
    shift: f32,
) -> Result<(), DataError> {
    std::fs::create_dir_all(dir).map_err(|source| DataError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let images =
        ImageArrayWriter::create(&dir.join(IMAGES), ArrayLayout::images(n, height, width))?;
    let label_writer = if labels {
        Some(ImageArrayWriter::create(
            &dir.join(LABELS),
            ArrayLayout::labels(n, height, width),
        )?)
    } else {
        None
    };
    for shard in 0..images.shard_count() {
        let (mut img_buf, mut lab_buf) = (Vec::new(), Vec::new());
        for i in images.shard_range(shard) {
            let (rgb, lab) = scene(seed, i, height, width, shift);
            img_buf.extend_from_slice(&rgb);
            lab_buf.extend_from_slice(&lab);
        }
        images.write_shard(shard, &img_buf)?;
        if let Some(w) = &label_writer {
            w.write_shard(shard, &lab_buf)?;
        }
    }
    images.finish()?;
    if let Some(w) = label_writer {
        w.finish()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use uda_data::ImageSet;

    #[test]
    fn written_sets_read_back() {
        let dir = tempfile::tempdir().unwrap();
        write_imageset(&dir.path().join("s"), 3, 16, 24, true, 4, 0.0).unwrap();
        let set = ImageSet::open(&dir.path().join("s")).unwrap();
        assert_eq!((set.len(), set.height(), set.width()), (3, 16, 24));
        let (rgb, lab) = scene(4, 2, 16, 24, 0.0);
        assert_eq!(set.images().read(2).unwrap(), rgb);
        assert_eq!(set.labels().unwrap().read(2).unwrap(), lab);
        assert!(lab.contains(&10) && lab.contains(&0));
        // The target look differs from the source look of the same scene.
        assert_ne!(scene(4, 2, 16, 24, 1.0).0, rgb);
        write_imageset(&dir.path().join("t"), 2, 16, 24, false, 5, 1.0).unwrap();
        assert!(
            ImageSet::open(&dir.path().join("t"))
                .unwrap()
                .labels()
                .is_none()
        );
    }
}
