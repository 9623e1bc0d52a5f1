//! Decode, resize and id-map one sample.

use anyhow::Context;
use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use serde::{Deserialize, Serialize};
use uda_data::DataError;
use uda_data::classes::label_ids_to_train_ids;
use uda_data::datasets::Sample;

/// Image resampling filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Interpolation {
    /// Catmull-Rom cubic (a = -0.5), the kernel of Pillow's BICUBIC used by the references.
    #[default]
    Bicubic,
    /// Box filter: the area average when downscaling (OpenCV's INTER_AREA).
    Area,
}

/// A processed sample plus what the manifest records about it.
#[derive(Debug, Clone)]
pub struct ProcessedImage {
    pub image: Vec<u8>,
    /// Train ids, when the sample has a label map.
    pub label: Option<Vec<u8>>,
    pub orig_width: usize,
    pub orig_height: usize,
    /// blake3 of the source file bytes (image, then label).
    pub content_hash: String,
}

/// Reads, checks, resizes and maps one sample to `height × width`.
pub fn process_sample(
    sample: &Sample,
    height: usize,
    width: usize,
    interp: Interpolation,
) -> anyhow::Result<ProcessedImage> {
    let bytes = std::fs::read(&sample.image).map_err(|e| DataError::ImageRead {
        path: sample.image.clone(),
        message: e.to_string(),
    })?;
    let mut hasher = blake3::Hasher::new();
    hasher.update(&bytes);
    let img = uda_data::png::decode_rgb(&sample.image, &bytes)?;
    let alg = match interp {
        Interpolation::Bicubic => ResizeAlg::Convolution(FilterType::CatmullRom),
        Interpolation::Area => ResizeAlg::Convolution(FilterType::Box),
    };
    let image = resize(
        img.pixels,
        img.width,
        img.height,
        width,
        height,
        PixelType::U8x3,
        alg,
    )
    .with_context(|| format!("resizing {}", sample.image.display()))?;
    let label = match &sample.label {
        None => None,
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| DataError::ImageRead {
                path: path.clone(),
                message: e.to_string(),
            })?;
            hasher.update(&bytes);
            let lab = uda_data::png::decode_label(path, &bytes)?;
            if (lab.width, lab.height) != (img.width, img.height) {
                return Err(DataError::BadInput {
                    path: path.clone(),
                    message: format!(
                        "label map is {}x{} but its image {} is {}x{}; image and label must have the same size",
                        lab.width,
                        lab.height,
                        sample.image.display(),
                        img.width,
                        img.height
                    ),
                }
                .into());
            }
            let mut ids = resize(
                lab.pixels,
                lab.width,
                lab.height,
                width,
                height,
                PixelType::U8,
                ResizeAlg::Nearest,
            )
            .with_context(|| format!("resizing {}", path.display()))?;
            label_ids_to_train_ids(&mut ids);
            Some(ids)
        }
    };
    Ok(ProcessedImage {
        image,
        label,
        orig_width: img.width,
        orig_height: img.height,
        content_hash: hasher.finalize().to_hex().to_string(),
    })
}

fn resize(
    pixels: Vec<u8>,
    w: usize,
    h: usize,
    out_w: usize,
    out_h: usize,
    pt: PixelType,
    alg: ResizeAlg,
) -> anyhow::Result<Vec<u8>> {
    if (w, h) == (out_w, out_h) {
        return Ok(pixels);
    }
    let src = Image::from_vec_u8(w as u32, h as u32, pixels, pt)?;
    let mut dst = Image::new(out_w as u32, out_h as u32, pt);
    Resizer::new().resize(&src, &mut dst, &ResizeOptions::new().resize_alg(alg))?;
    Ok(dst.into_vec())
}
