//! Before/after panels for people: `s2t-NNNNN.png` = source | target (style) | source in target
//! style, and `t2s-NNNNN.png` = target | source (style) | target in source style. Images are
//! spread evenly over each set and box-downscaled so a panel is at most ~2048 pixels wide.

use std::path::Path;
use uda_data::ImageArray;
use uda_data::imageset::{IMAGES, ImageSet};
use uda_fda::Pairing;

/// Widest panel written, in pixels (three tiles side by side).
const MAX_PANEL_WIDTH: usize = 2048;

pub fn write(
    dir: &Path,
    source: &ImageSet,
    target: &ImageSet,
    out: &Path,
    pairing: &Pairing,
    count: usize,
) -> anyhow::Result<()> {
    let s2t = ImageArray::open(&out.join(crate::S2T).join(IMAGES))?;
    let t2s = ImageArray::open(&out.join(crate::T2S).join(IMAGES))?;
    let directions = [
        (
            crate::S2T,
            source.images(),
            target.images(),
            &s2t,
            &pairing.source_to_target,
        ),
        (
            crate::T2S,
            target.images(),
            source.images(),
            &t2s,
            &pairing.target_to_source,
        ),
    ];
    for (name, content, style, translated, partners) in directions {
        let n = content.len();
        for k in 0..count.min(n) {
            let i = k * n / count.min(n);
            let (h, w) = (content.height(), content.width());
            let factor = (3 * w).div_ceil(MAX_PANEL_WIDTH).max(1);
            let tiles = [
                content.read(i)?,
                style.read(partners[i])?,
                translated.read(i)?,
            ];
            let small: Vec<Vec<u8>> = tiles.iter().map(|t| downscale(t, h, w, factor)).collect();
            let (sh, sw) = (h / factor, w / factor);
            let panel: Vec<(usize, &[u8])> = small.iter().map(|t| (sw, t.as_slice())).collect();
            uda_data::png::write_panel(&dir.join(format!("{name}-{i:05}.png")), sh, &panel)?;
        }
    }
    Ok(())
}

/// Box filter by an integer factor (RGB), dropping edge pixels that do not fill a box.
fn downscale(rgb: &[u8], h: usize, w: usize, factor: usize) -> Vec<u8> {
    if factor == 1 {
        return rgb.to_vec();
    }
    let (sh, sw) = (h / factor, w / factor);
    let mut out = Vec::with_capacity(sh * sw * 3);
    for y in 0..sh {
        for x in 0..sw {
            for c in 0..3 {
                let mut sum = 0u32;
                for dy in 0..factor {
                    let row = (y * factor + dy) * w;
                    for dx in 0..factor {
                        sum += u32::from(rgb[(row + x * factor + dx) * 3 + c]);
                    }
                }
                out.push(((sum + (factor * factor / 2) as u32) / (factor * factor) as u32) as u8);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::downscale;

    #[test]
    fn downscale_averages_boxes() {
        // 2×4 image, factor 2 → 1×2; first box all 10 (red), second box 0/40 → 20.
        let mut img = vec![0u8; 2 * 4 * 3];
        for y in 0..2 {
            for x in 0..4 {
                img[(y * 4 + x) * 3] = if x < 2 {
                    10
                } else if x == 2 {
                    0
                } else {
                    40
                };
            }
        }
        assert_eq!(downscale(&img, 2, 4, 2), vec![10, 0, 0, 20, 0, 0]);
        assert_eq!(downscale(&img, 2, 4, 1), img);
    }
}
