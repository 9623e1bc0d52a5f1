//! `preview.png`: the first few images of a set, as the model sees them (grayscale when trained
//! so), each beside the model's prediction in the Cityscapes colours.

use crate::TrainError;
use crate::augment::{Augmentation, image_to_chw, luma_pil};
use crate::source::SampleSource;
use std::path::Path;
use uda_models::SegNet;
use uda_models::tch::{Device, Kind, TchError, Tensor};

/// Why the preview could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("reading a preview image")]
    Read(#[source] TrainError),
    #[error("reading a prediction")]
    Prediction(#[source] TchError),
    #[error("writing the panel")]
    Write(#[source] uda_data::DataError),
}

/// How many images the preview shows.
pub(crate) const PREVIEW_IMAGES: usize = 2;

pub(crate) fn write(
    path: &Path,
    set: &dyn SampleSource,
    net: &SegNet,
    device: Device,
    grayscale: bool,
) -> Result<(), PreviewError> {
    let (h, w) = set.size();
    let norm = net.input_normalization();
    let mut raw = vec![0u8; h * w * 3];
    let mut input = vec![0f32; 3 * h * w];
    let mut tiles: Vec<Vec<u8>> = Vec::new();
    for index in 0..PREVIEW_IMAGES.min(set.len()) {
        set.read_image(index, &mut raw)
            .map_err(PreviewError::Read)?;
        image_to_chw(
            &raw,
            (h, w),
            (h, w),
            &Augmentation {
                y0: 0,
                x0: 0,
                flip: false,
            },
            grayscale,
            &norm,
            &mut input,
        );
        let x = Tensor::from_slice(&input)
            .view([1, 3, h as i64, w as i64])
            .to_device(device);
        let pred = uda_models::tch::no_grad(|| {
            let logits = net.forward_t(&x, false).logits;
            crate::losses::upsample_to(&logits, h as i64, w as i64).argmax(1, false)
        });
        let ids: Vec<u8> = Vec::<i64>::try_from(
            pred.to_kind(Kind::Int64)
                .to_device(Device::Cpu)
                .flatten(0, -1),
        )
        .map_err(PreviewError::Prediction)?
        .into_iter()
        .map(|v| v as u8)
        .collect();
        let shown: Vec<u8> = if grayscale {
            raw.chunks_exact(3)
                .flat_map(|px| [luma_pil(px[0], px[1], px[2]); 3])
                .collect()
        } else {
            raw.clone()
        };
        tiles.push(shown);
        tiles.push(uda_data::classes::colorize(&ids));
    }
    let refs: Vec<(usize, &[u8])> = tiles.iter().map(|t| (w, t.as_slice())).collect();
    uda_data::png::write_panel(path, h, &refs).map_err(PreviewError::Write)
}
