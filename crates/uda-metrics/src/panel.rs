//! Qualitative panels as the paper's Figure 3: image | ground truth | prediction, colourised
//! with the Cityscapes palette (ignore = black).
//!
//! Ground truth and prediction come at label resolution, the image at whatever resolution the
//! model saw; all three are scaled to one tile size (the label size, shrunk to at most
//! `max_tile_width` wide) so a panel of full-resolution Cityscapes maps stays viewable.
//! Label maps are scaled nearest-neighbour (no invented classes), the photo by averaging
//! the source pixels each tile pixel covers.

use crate::error::Result;
use std::path::Path;
use uda_data::classes::colorize;

/// A row-major raster of `channels` bytes per pixel.
#[derive(Debug, Clone, Copy)]
pub struct Raster<'a> {
    pub width: usize,
    pub height: usize,
    pub data: &'a [u8],
}

/// Source span `[lo, hi)` along one axis covered by output index `i` of `dst` (never empty).
fn span(i: usize, src: usize, dst: usize) -> (usize, usize) {
    let lo = i * src / dst;
    let hi = ((i + 1) * src).div_ceil(dst).clamp(lo + 1, src);
    (lo, hi)
}

/// Resizes an RGB raster by averaging covered source pixels (nearest when enlarging).
pub fn resize_rgb_area(src: Raster<'_>, width: usize, height: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        let (y0, y1) = span(y, src.height, height);
        for x in 0..width {
            let (x0, x1) = span(x, src.width, width);
            let mut sum = [0u64; 3];
            for sy in y0..y1 {
                for sx in x0..x1 {
                    let p = (sy * src.width + sx) * 3;
                    for (acc, &v) in sum.iter_mut().zip(&src.data[p..p + 3]) {
                        *acc += u64::from(v);
                    }
                }
            }
            let n = ((y1 - y0) * (x1 - x0)) as u64;
            out.extend(sum.map(|s| ((s + n / 2) / n) as u8));
        }
    }
    out
}

/// Resizes a single-channel map nearest-neighbour (pixel centres).
pub fn resize_nearest(src: Raster<'_>, width: usize, height: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(width * height);
    for y in 0..height {
        let sy = ((2 * y + 1) * src.height / (2 * height)).min(src.height - 1);
        for x in 0..width {
            let sx = ((2 * x + 1) * src.width / (2 * width)).min(src.width - 1);
            out.push(src.data[sy * src.width + sx]);
        }
    }
    out
}

/// Tile size for label maps of `width × height`: at most `max_width` wide, aspect kept.
pub fn tile_size(width: usize, height: usize, max_width: usize) -> (usize, usize) {
    if width <= max_width || max_width == 0 {
        return (width, height);
    }
    (max_width, (height * max_width).div_ceil(width).max(1))
}

/// Writes `image | ground truth | prediction` (the image tile is left out when `image` is
/// `None`). `gt` and `pred` are train-id maps of the same size.
pub fn write_qualitative_panel(
    path: &Path,
    image: Option<Raster<'_>>,
    gt: Raster<'_>,
    pred: &[u8],
    max_tile_width: usize,
) -> Result<()> {
    let (w, h) = tile_size(gt.width, gt.height, max_tile_width);
    let gt_tile = colorize(&resize_nearest(gt, w, h));
    let pred_tile = colorize(&resize_nearest(Raster { data: pred, ..gt }, w, h));
    let image_tile = image.map(|im| resize_rgb_area(im, w, h));
    let mut tiles: Vec<(usize, &[u8])> = Vec::with_capacity(3);
    if let Some(t) = &image_tile {
        tiles.push((w, t));
    }
    tiles.push((w, &gt_tile));
    tiles.push((w, &pred_tile));
    uda_data::png::write_panel(path, h, &tiles)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn area_and_nearest_resizing() {
        // 4x2 RGB -> 2x1: each output pixel averages a 2x2 block.
        let src: Vec<u8> = [0u8, 10, 20, 30, 40, 50, 60, 70]
            .iter()
            .flat_map(|&v| [v, v, 255 - v])
            .collect();
        let out = resize_rgb_area(
            Raster {
                width: 4,
                height: 2,
                data: &src,
            },
            2,
            1,
        );
        assert_eq!(out, vec![25, 25, 230, 45, 45, 210]);
        // Same size is the identity; enlarging repeats pixels.
        assert_eq!(
            resize_rgb_area(
                Raster {
                    width: 4,
                    height: 2,
                    data: &src
                },
                4,
                2
            ),
            src
        );
        let labels = [1u8, 2, 3, 4];
        assert_eq!(
            resize_nearest(
                Raster {
                    width: 2,
                    height: 2,
                    data: &labels
                },
                4,
                2
            ),
            vec![1, 1, 2, 2, 3, 3, 4, 4]
        );
        assert_eq!(
            resize_nearest(
                Raster {
                    width: 2,
                    height: 2,
                    data: &labels
                },
                1,
                1
            ),
            vec![4]
        );
        assert_eq!(tile_size(2048, 1024, 512), (512, 256));
        assert_eq!(tile_size(100, 50, 512), (100, 50));
    }

    #[test]
    fn panel_has_three_colourised_tiles() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("p.png");
        let image = vec![100u8; 8 * 4 * 3];
        let gt = vec![0u8; 4 * 2];
        let pred = vec![13u8; 4 * 2];
        write_qualitative_panel(
            &path,
            Some(Raster {
                width: 8,
                height: 4,
                data: &image,
            }),
            Raster {
                width: 4,
                height: 2,
                data: &gt,
            },
            &pred,
            512,
        )
        .unwrap();
        let p = uda_data::png::read_rgb(&path).unwrap();
        assert_eq!((p.width, p.height), (3 * 4 + 2 * 2, 2));
        assert_eq!(&p.pixels[..3], &[100, 100, 100]);
        assert_eq!(&p.pixels[6 * 3..7 * 3], &[128, 64, 128]); // road
        assert_eq!(&p.pixels[12 * 3..13 * 3], &[0, 0, 142]); // car
        write_qualitative_panel(
            &path,
            None,
            Raster {
                width: 4,
                height: 2,
                data: &gt,
            },
            &pred,
            2,
        )
        .unwrap();
        let p = uda_data::png::read_rgb(&path).unwrap();
        assert_eq!((p.width, p.height), (2 * 2 + 2, 1));
    }
}
