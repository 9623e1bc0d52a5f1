//! One image into another's style, from image files: the paper's Figure 1, and `uda-pipe fda`.

use crate::{Fda, FdaError, Window};
use image::RgbImage;
use std::path::Path;

/// Translates `source` into the style of `target` (both RGB, equal sizes).
pub fn translate_image(
    source: &RgbImage,
    target: &RgbImage,
    beta: f64,
    window: Window,
) -> Result<RgbImage, FdaError> {
    translate_named(source, "source image", target, "target image", beta, window)
}

/// Reads `src` and `trg` (PNG, or any format the `image` crate was built with; converted to
/// 8-bit RGB), writes `src` in the style of `trg` to `out` (format from its extension, PNG
/// usually). The images must have equal sizes (resize one first otherwise).
pub fn translate_png(
    src: &Path,
    trg: &Path,
    beta: f64,
    window: Window,
    out: &Path,
) -> Result<(), FdaError> {
    crate::check_beta(beta)?;
    let read = |path: &Path| {
        image::open(path)
            .map(|i| i.to_rgb8())
            .map_err(|source| FdaError::ReadImage {
                path: path.to_path_buf(),
                source,
            })
    };
    let (source, target) = (read(src)?, read(trg)?);
    let result = translate_named(
        &source,
        &format!("--src {}", src.display()),
        &target,
        &format!("--trg {}", trg.display()),
        beta,
        window,
    )?;
    result.save(out).map_err(|source| FdaError::WriteImage {
        path: out.to_path_buf(),
        source,
    })
}

fn translate_named(
    source: &RgbImage,
    source_name: &str,
    target: &RgbImage,
    target_name: &str,
    beta: f64,
    window: Window,
) -> Result<RgbImage, FdaError> {
    if source.dimensions() != target.dimensions() {
        return Err(FdaError::SizeMismatch {
            source_name: source_name.into(),
            source_width: source.width() as usize,
            source_height: source.height() as usize,
            target_name: target_name.into(),
            target_width: target.width() as usize,
            target_height: target.height() as usize,
        });
    }
    let (w, h) = (source.width() as usize, source.height() as usize);
    let fda = Fda::<f64>::new(h, w, 3, beta, window)?;
    let style = fda.amplitude(target.as_raw())?;
    let mut out = vec![0u8; fda.image_len()];
    fda.translate(source.as_raw(), &style, &mut out)?;
    Ok(RgbImage::from_raw(w as u32, h as u32, out).expect("buffer is w·h·3 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    /// A smooth colour ramp with a sharp edge: low frequencies carry the colour cast.
    fn scene(w: u32, h: u32, tint: [f64; 3]) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            let edge = if x > w / 2 && y > h / 3 { 60.0 } else { 0.0 };
            let base = 40.0 + 80.0 * f64::from(y) / f64::from(h) + edge;
            Rgb(std::array::from_fn(|c| {
                (base * tint[c]).clamp(0.0, 255.0) as u8
            }))
        })
    }

    fn channel_mean(img: &RgbImage, c: usize) -> f64 {
        img.pixels().map(|p| f64::from(p[c])).sum::<f64>() / f64::from(img.width() * img.height())
    }

    #[test]
    fn png_round_trip_takes_targets_colour_keeps_sources_edges() {
        let dir = tempfile::tempdir().unwrap();
        let (src, trg, out) = (
            dir.path().join("a.png"),
            dir.path().join("b.png"),
            dir.path().join("out.png"),
        );
        let (w, h) = (64, 40);
        let source = scene(w, h, [1.0, 1.0, 1.0]);
        // Target: a different scene (edge elsewhere) with a strong red cast.
        let target = RgbImage::from_fn(w, h, |x, _| Rgb([200, 90, if x < 8 { 20 } else { 60 }]));
        source.save(&src).unwrap();
        target.save(&trg).unwrap();
        translate_png(&src, &trg, 0.05, Window::Square, &out).unwrap();
        let result = image::open(&out).unwrap().to_rgb8();
        assert_eq!(result.dimensions(), (w, h));
        // DC is inside every window: channel means move to the target's (up to rounding/clipping).
        for c in 0..3 {
            let (m_out, m_trg) = (channel_mean(&result, c), channel_mean(&target, c));
            assert!(
                (m_out - m_trg).abs() < 1.5,
                "channel {c}: mean {m_out} vs target {m_trg}"
            );
        }
        // The source's edge (high frequencies) survives: a jump across x = w/2 at the bottom.
        let below = |x| i32::from(result.get_pixel(x, h - 2)[1]);
        assert!(below(w / 2 + 2) - below(w / 2 - 2) > 30, "edge lost");
        // Same function, in-memory: identical output.
        assert_eq!(
            translate_image(&source, &target, 0.05, Window::Square).unwrap(),
            result
        );
    }

    #[test]
    fn bad_inputs_name_the_culprit() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, out) = (
            dir.path().join("a.png"),
            dir.path().join("b.png"),
            dir.path().join("o.png"),
        );
        scene(32, 20, [1.0; 3]).save(&a).unwrap();
        scene(30, 20, [1.0; 3]).save(&b).unwrap();
        let err = translate_png(&a, &b, 0.01, Window::Square, &out)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--src")
                && err.contains("--trg")
                && err.contains("32×20")
                && err.contains("30×20"),
            "{err}"
        );

        let err = translate_png(&a, &a, 1.2, Window::Square, &out)
            .unwrap_err()
            .to_string();
        assert!(err.contains("beta = 1.2"), "{err}");
        let err = translate_png(&a, &a, 0.6, Window::Square, &out)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("window") && err.contains("smaller beta"),
            "{err}"
        );

        let missing = dir.path().join("missing.png");
        let err = translate_png(&missing, &a, 0.01, Window::Square, &out)
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.png"), "{err}");
        assert!(!out.exists());
    }
}
