//! Decode, resize and id-map one sample.

use anyhow::Context;
use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::io::Read;
use std::path::Path;
use uda_data::DataError;
use uda_data::classes::{IGNORE, label_ids_to_train_ids};
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

/// What the manifest records about one processed sample.
#[derive(Debug, Clone)]
pub struct SampleInfo {
    pub orig_width: usize,
    pub orig_height: usize,
    /// blake3 of the source file bytes (image, then label).
    pub content_hash: String,
    /// Label pixels mapped to ignore (255); 0 without a label map.
    pub ignored_pixels: u64,
}

/// Per-thread buffers reused from sample to sample: the file bytes, the decoded full-size image
/// and the resizer (which keeps its intermediate buffer). Fresh multi-MB buffers per image cost
/// page faults and kernel page zeroing on first touch (~20 % of the stage's time under `perf`).
struct Scratch {
    file: Vec<u8>,
    decoded: Vec<u8>,
    resizer: Resizer,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch {
        file: Vec::new(),
        decoded: Vec::new(),
        resizer: Resizer::new(),
    });
}

/// Reads, checks, resizes and maps one sample to `height × width`, writing the RGB image into
/// `image_out` (`height·width·3` bytes) and, when the sample has a label map, its train ids into
/// `label_out` (`height·width` bytes): the stage hands in the sample's slot of the shard buffer,
/// so nothing is copied after resizing.
pub fn process_sample_into(
    sample: &Sample,
    height: usize,
    width: usize,
    interp: Interpolation,
    image_out: &mut [u8],
    label_out: Option<&mut [u8]>,
) -> anyhow::Result<SampleInfo> {
    SCRATCH.with_borrow_mut(|scratch| {
        let Scratch {
            file,
            decoded,
            resizer,
        } = scratch;
        read_into(&sample.image, file)?;
        let mut hasher = blake3::Hasher::new();
        hasher.update(file);
        let (img_w, img_h) = uda_data::png::decode_rgb_into(&sample.image, file, decoded)?;
        let alg = match interp {
            Interpolation::Bicubic => ResizeAlg::Convolution(FilterType::CatmullRom),
            Interpolation::Area => ResizeAlg::Convolution(FilterType::Box),
        };
        resize_into(
            resizer,
            (decoded, img_w, img_h),
            (image_out, width, height),
            PixelType::U8x3,
            alg,
        )
        .with_context(|| format!("resizing {}", sample.image.display()))?;
        let mut ignored_pixels = 0;
        if let (Some(path), Some(label_out)) = (&sample.label, label_out) {
            read_into(path, file)?;
            hasher.update(file);
            let (lab_w, lab_h) = uda_data::png::decode_label_into(path, file, decoded)?;
            if (lab_w, lab_h) != (img_w, img_h) {
                return Err(DataError::BadInput {
                    path: path.clone(),
                    message: format!(
                        "label map is {lab_w}x{lab_h} but its image {} is {img_w}x{img_h}; image and label must have the same size",
                        sample.image.display(),
                    ),
                }
                .into());
            }
            resize_into(
                resizer,
                (decoded, lab_w, lab_h),
                (label_out, width, height),
                PixelType::U8,
                ResizeAlg::Nearest,
            )
            .with_context(|| format!("resizing {}", path.display()))?;
            label_ids_to_train_ids(label_out);
            ignored_pixels = label_out.iter().filter(|&&v| v == IGNORE).count() as u64;
        }
        Ok(SampleInfo {
            orig_width: img_w,
            orig_height: img_h,
            content_hash: hasher.finalize().to_hex().to_string(),
            ignored_pixels,
        })
    })
}

fn read_into(path: &Path, buf: &mut Vec<u8>) -> Result<(), DataError> {
    buf.clear();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(buf))
        .map_err(|e| DataError::ImageRead {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    Ok(())
}

fn resize_into(
    resizer: &mut Resizer,
    (src, w, h): (&[u8], usize, usize),
    (dst, out_w, out_h): (&mut [u8], usize, usize),
    pt: PixelType,
    alg: ResizeAlg,
) -> anyhow::Result<()> {
    if (w, h) == (out_w, out_h) {
        dst.copy_from_slice(src);
        return Ok(());
    }
    let src = ImageRef::new(w as u32, h as u32, src, pt)?;
    let mut dst = Image::from_slice_u8(out_w as u32, out_h as u32, dst, pt)?;
    resizer.resize(&src, &mut dst, &ResizeOptions::new().resize_alg(alg))?;
    Ok(())
}
