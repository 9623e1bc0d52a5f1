//! Running a checkpoint: the [`Predictor`] seam and its libtorch implementation.
//!
//! A checkpoint folder (what `pretrain` and `contrastive-train` write) holds `model.json`
//! ([`uda_train::ModelInfo`]: backbone, classes, input normalisation, whether it was trained on
//! grayscale images, who produced it) and the weights it names, loaded strictly. A model trained
//! on grayscale inputs is fed PIL-luma grayscale images, as in training. The file's text is kept
//! verbatim in `summary.parquet`'s `model_meta`.
//!
//! The scoring loop only sees [`Predictor`], so it is tested with fake predictors as well as
//! with a real (tiny, random) network.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use uda_data::classes::NUM_CLASSES;
use uda_models::SegNet;
use uda_models::tch::{self, Device, Kind, Tensor, nn::VarStore};
use uda_train::ModelInfo;
use uda_train::model_info::MODEL_JSON;

/// What is interpolated to label size before the arg-max.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Upsample {
    #[default]
    Logits,
    Softmax,
}

/// Turns a batch of images into train-id maps at the label size.
pub trait Predictor {
    /// `images`: `count` RGB images of `size = [height, width]`, (N, H, W, 3) u8 row-major.
    /// Returns `count` train-id maps of `out_size = [height, width]`, contiguous.
    fn predict(
        &mut self,
        images: &[u8],
        count: usize,
        size: [usize; 2],
        out_size: [usize; 2],
    ) -> anyhow::Result<Vec<u8>>;
}

/// `dir/model.json` and its text; the model must predict the 19 train ids.
pub fn read_model_meta(dir: &Path) -> anyhow::Result<(ModelInfo, String)> {
    let info = ModelInfo::read(dir)?;
    let path = dir.join(MODEL_JSON);
    anyhow::ensure!(
        info.num_classes == NUM_CLASSES as i64,
        "{}: the model predicts {} classes; evaluation needs the {NUM_CLASSES} Cityscapes train ids",
        path.display(),
        info.num_classes
    );
    let text =
        std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok((info, text))
}

/// A [`SegNet`] in inference mode on a device.
#[derive(Debug)]
pub struct TchPredictor {
    // Owns the variables `net` refers to.
    _vs: VarStore,
    net: SegNet,
    info: ModelInfo,
    device: Device,
    upsample: Upsample,
    weights: PathBuf,
}

impl TchPredictor {
    /// Loads a checkpoint folder (see the module docs).
    pub fn load(dir: &Path, device: Device, upsample: Upsample) -> anyhow::Result<Self> {
        read_model_meta(dir)?;
        // The runner's CPU budget for this stage (`UDA_THREADS`), not every core.
        uda_train::set_threads(0);
        let mut vs = VarStore::new(device);
        let (info, net) = ModelInfo::load_model(dir, &mut vs)?;
        let weights = info.weights_path(dir);
        Ok(Self {
            _vs: vs,
            net,
            info,
            device,
            upsample,
            weights,
        })
    }

    pub fn net(&self) -> &SegNet {
        &self.net
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }
}

impl Predictor for TchPredictor {
    fn predict(
        &mut self,
        images: &[u8],
        count: usize,
        size: [usize; 2],
        out_size: [usize; 2],
    ) -> anyhow::Result<Vec<u8>> {
        let [h, w] = size.map(|v| v as i64);
        let [oh, ow] = out_size.map(|v| v as i64);
        anyhow::ensure!(
            images.len() == count * size[0] * size[1] * 3,
            "{} bytes for {count} images of {h}x{w}x3",
            images.len()
        );
        let classes = tch::no_grad(|| -> Result<Tensor, tch::TchError> {
            let x = self
                .info
                .input_tensor(images, count, size[0], size[1], self.device)?;
            let logits = self.net.forward_t(&x, false).logits;
            let scores = match self.upsample {
                Upsample::Logits => logits,
                Upsample::Softmax => logits.f_softmax(1, Kind::Float)?,
            };
            scores
                .f_upsample_bilinear2d([oh, ow], true, None, None)?
                .f_argmax(1, false)?
                .f_to_kind(Kind::Uint8)?
                .f_to_device(Device::Cpu)?
                .f_contiguous()?
                .f_view([-1])
        })
        .map_err(|e| {
            anyhow::anyhow!(
                "running the model of {} on {:?}: {e}",
                self.weights.display(),
                self.device
            )
        })?;
        Ok(Vec::<u8>::try_from(&classes)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uda_models::{Backbone, Normalization};

    fn info(num_classes: i64) -> ModelInfo {
        ModelInfo {
            backbone: Backbone::Enet,
            num_classes,
            freeze_bn: false,
            normalization: Normalization::UNIT_RGB,
            grayscale: true,
            weights: "model.safetensors".into(),
            produced_by: "pretrain".into(),
            iterations: 10,
        }
    }

    #[test]
    fn model_json_is_read_with_its_text_and_checked() {
        let d = tempfile::tempdir().unwrap();
        info(19).write(d.path()).unwrap();
        let (read, text) = read_model_meta(d.path()).unwrap();
        assert_eq!(read, info(19));
        assert!(text.contains("\"produced_by\": \"pretrain\""), "{text}");
        info(5).write(d.path()).unwrap();
        let e = read_model_meta(d.path()).unwrap_err().to_string();
        assert!(e.contains("5 classes") && e.contains("model.json"), "{e}");
        std::fs::write(d.path().join(MODEL_JSON), r#"{"backbone": "enet"}"#).unwrap();
        let e = format!("{:#}", read_model_meta(d.path()).unwrap_err());
        assert!(e.contains("model.json"), "{e}");
        std::fs::remove_file(d.path().join(MODEL_JSON)).unwrap();
        let e = format!("{:#}", read_model_meta(d.path()).unwrap_err());
        assert!(e.contains("model.json"), "{e}");
    }
}
