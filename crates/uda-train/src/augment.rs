//! Per-sample augmentation on raw `u8` pixels: random crop, optional horizontal flip, optional
//! grayscale, then the model's input normalisation into a `f32` CHW buffer.
//!
//! Everything here is a pure function of its inputs; the random choices come in as an
//! [`Augmentation`] drawn by [`draw_augmentation`] from a per-sample RNG, so the data loader can
//! reproduce any iteration's batch from `(seed, iteration)` alone.

use rand::Rng;

pub use uda_models::Normalization;

/// The normalised value of raw pixel `v` in network channel `c` (see [`Normalization`]).
#[inline]
pub fn normalized_value(norm: &Normalization, c: usize, v: u8) -> f32 {
    (f32::from(v) * norm.scale - norm.mean[c]) / norm.std[c]
}

/// Network channel `c` reads RGB channel `source_channel(norm, c)`.
#[inline]
pub fn source_channel(norm: &Normalization, c: usize) -> usize {
    if norm.bgr { 2 - c } else { c }
}

/// The random choices for one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Augmentation {
    /// Top-left corner of the crop window in the source image.
    pub y0: usize,
    pub x0: usize,
    /// Mirror left–right.
    pub flip: bool,
}

/// Draws the crop corner uniformly over all positions where a `crop` window fits inside an image
/// of `size` (both `(height, width)`), and a fair coin for the flip when `flip` is on.
pub fn draw_augmentation<R: Rng>(
    rng: &mut R,
    size: (usize, usize),
    crop: (usize, usize),
    flip: bool,
) -> Augmentation {
    let y0 = if size.0 > crop.0 {
        rng.random_range(0..=size.0 - crop.0)
    } else {
        0
    };
    let x0 = if size.1 > crop.1 {
        rng.random_range(0..=size.1 - crop.1)
    } else {
        0
    };
    let flip = flip && rng.random_bool(0.5);
    Augmentation { y0, x0, flip }
}

/// PIL's `Image.convert("L")` (ITU-R 601-2 luma in 16-bit fixed point, rounded), which is what
/// torchvision's `Grayscale` does to PIL images.
#[inline]
pub fn luma_pil(r: u8, g: u8, b: u8) -> u8 {
    ((u32::from(r) * 19595 + u32::from(g) * 38470 + u32::from(b) * 7471 + 0x8000) >> 16) as u8
}

/// Crops (and flips / grays) one interleaved RGB image `src` of `size` into `dst`, a planar
/// `3 × crop.0 × crop.1` buffer of normalised values.
pub fn image_to_chw(
    src: &[u8],
    size: (usize, usize),
    crop: (usize, usize),
    aug: &Augmentation,
    grayscale: bool,
    norm: &Normalization,
    dst: &mut [f32],
) {
    let (h, w) = size;
    let (ch, cw) = crop;
    debug_assert_eq!(src.len(), h * w * 3);
    debug_assert_eq!(dst.len(), 3 * ch * cw);
    debug_assert!(aug.y0 + ch <= h && aug.x0 + cw <= w);
    let plane = ch * cw;
    // Per-channel lookup tables: 256 entries each, so the inner loop is a gather.
    let lut: [[f32; 256]; 3] =
        std::array::from_fn(|c| std::array::from_fn(|v| normalized_value(norm, c, v as u8)));
    let src_of = [
        source_channel(norm, 0),
        source_channel(norm, 1),
        source_channel(norm, 2),
    ];
    for y in 0..ch {
        let row = &src[((aug.y0 + y) * w + aug.x0) * 3..((aug.y0 + y) * w + aug.x0 + cw) * 3];
        let out = y * cw;
        for x in 0..cw {
            let sx = if aug.flip { cw - 1 - x } else { x };
            let px = &row[sx * 3..sx * 3 + 3];
            if grayscale {
                let l = luma_pil(px[0], px[1], px[2]);
                for c in 0..3 {
                    dst[c * plane + out + x] = lut[c][l as usize];
                }
            } else {
                for c in 0..3 {
                    dst[c * plane + out + x] = lut[c][px[src_of[c]] as usize];
                }
            }
        }
    }
}

/// The same crop/flip on a single-channel label map (`size` of `src`, `crop` of `dst`).
pub fn label_crop(
    src: &[u8],
    size: (usize, usize),
    crop: (usize, usize),
    aug: &Augmentation,
    dst: &mut [u8],
) {
    let (h, w) = size;
    let (ch, cw) = crop;
    debug_assert_eq!(src.len(), h * w);
    debug_assert_eq!(dst.len(), ch * cw);
    for y in 0..ch {
        let row = &src[(aug.y0 + y) * w + aug.x0..(aug.y0 + y) * w + aug.x0 + cw];
        let out = &mut dst[y * cw..(y + 1) * cw];
        if aug.flip {
            for (o, v) in out.iter_mut().zip(row.iter().rev()) {
                *o = *v;
            }
        } else {
            out.copy_from_slice(row);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn ramp(h: usize, w: usize) -> Vec<u8> {
        (0..h * w * 3).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn crop_without_flip_copies_the_window() {
        let (h, w) = (6, 8);
        let src = ramp(h, w);
        let norm = Normalization {
            bgr: false,
            scale: 1.0,
            mean: [0.0; 3],
            std: [1.0; 3],
        };
        let aug = Augmentation {
            y0: 2,
            x0: 3,
            flip: false,
        };
        let mut dst = vec![0.0; 3 * 3 * 4];
        image_to_chw(&src, (h, w), (3, 4), &aug, false, &norm, &mut dst);
        for c in 0..3 {
            for y in 0..3 {
                for x in 0..4 {
                    let want = src[((2 + y) * w + 3 + x) * 3 + c] as f32;
                    assert_eq!(dst[c * 12 + y * 4 + x], want, "c{c} y{y} x{x}");
                }
            }
        }
    }

    #[test]
    fn flip_mirrors_image_and_label_alike_and_bgr_swaps() {
        let (h, w) = (4, 5);
        let src = ramp(h, w);
        let labels: Vec<u8> = (0..h * w).map(|i| i as u8).collect();
        let norm = Normalization {
            bgr: true,
            scale: 2.0,
            mean: [1.0, 2.0, 3.0],
            std: [2.0, 4.0, 8.0],
        };
        let aug = Augmentation {
            y0: 1,
            x0: 1,
            flip: true,
        };
        let mut dst = vec![0.0; 3 * 2 * 3];
        image_to_chw(&src, (h, w), (2, 3), &aug, false, &norm, &mut dst);
        let mut lab = vec![0u8; 6];
        label_crop(&labels, (h, w), (2, 3), &aug, &mut lab);
        for y in 0..2 {
            for x in 0..3 {
                let sx = 1 + (2 - x);
                let sy = 1 + y;
                assert_eq!(lab[y * 3 + x], labels[sy * w + sx]);
                for c in 0..3 {
                    let raw = src[(sy * w + sx) * 3 + (2 - c)] as f32;
                    let want = (raw * 2.0 - norm.mean[c]) / norm.std[c];
                    assert_eq!(dst[c * 6 + y * 3 + x], want);
                }
            }
        }
    }

    #[test]
    fn grayscale_replicates_luma_into_every_channel() {
        let src = vec![255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 200, 30];
        let norm = Normalization {
            bgr: false,
            scale: 1.0,
            mean: [0.0; 3],
            std: [1.0; 3],
        };
        let mut dst = vec![0.0; 12];
        image_to_chw(
            &src,
            (1, 4),
            (1, 4),
            &Augmentation {
                y0: 0,
                x0: 0,
                flip: false,
            },
            true,
            &norm,
            &mut dst,
        );
        // PIL: convert("L") of pure red/green/blue gives 76, 150, 29.
        assert_eq!(
            &dst[0..4],
            &[76.0, 150.0, 29.0, luma_pil(10, 200, 30) as f32]
        );
        assert_eq!(&dst[0..4], &dst[4..8]);
        assert_eq!(&dst[0..4], &dst[8..12]);
    }

    #[test]
    fn draws_cover_the_valid_range_and_respect_flip_off() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let (mut max_y, mut max_x, mut flips) = (0, 0, 0);
        for _ in 0..2000 {
            let a = draw_augmentation(&mut rng, (10, 12), (7, 12), true);
            assert!(a.y0 <= 3 && a.x0 == 0);
            max_y = max_y.max(a.y0);
            max_x = max_x.max(a.x0);
            flips += a.flip as usize;
        }
        assert_eq!(max_y, 3);
        assert_eq!(max_x, 0);
        assert!((800..1200).contains(&flips), "{flips}");
        let a = draw_augmentation(&mut rng, (10, 12), (10, 12), false);
        assert_eq!(
            a,
            Augmentation {
                y0: 0,
                x0: 0,
                flip: false
            }
        );
    }
}
