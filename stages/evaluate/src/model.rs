//! Running a checkpoint: the [`Predictor`] seam and its libtorch implementation.
//!
//! A checkpoint folder (what `pretrain` and `contrastive-train` write) holds:
//! * `model.safetensors`: every variable of the network under its own name
//!   (`uda_models::save_safetensors`, loaded strictly with `WeightNaming::Native`);
//! * `model.json`: a JSON object with at least `backbone` (`deeplabv2-resnet101`,
//!   `fcn8s-vgg16` or `enet`) and optionally `num_classes` (must be 19), `freeze_bn` and
//!   `normalization` (a `uda_models::Normalization`; default: the backbone's). These may sit at
//!   the top level or in a `model` object; other keys (training stage, params, iteration) are
//!   kept verbatim in `summary.parquet`'s `model_meta` but not interpreted here.
//!
//! The scoring loop only sees [`Predictor`], so it is tested with fake predictors as well as
//! with a real (tiny, random) network.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use uda_data::classes::NUM_CLASSES;
use uda_models::tch::{self, Device, Kind, Tensor, nn::VarStore};
use uda_models::{Backbone, ModelConfig, Normalization, SegNet, WeightNaming};

pub const MODEL_JSON: &str = "model.json";
pub const MODEL_WEIGHTS: &str = "model.safetensors";

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
    fn predict(&mut self, images: &[u8], count: usize, size: [usize; 2], out_size: [usize; 2]) -> anyhow::Result<Vec<u8>>;
}

/// The part of `model.json` evaluation needs.
#[derive(Debug, Clone, Deserialize)]
struct ModelJson {
    backbone: Backbone,
    #[serde(default = "nineteen")]
    num_classes: i64,
    #[serde(default)]
    freeze_bn: bool,
    #[serde(default)]
    normalization: Option<Normalization>,
}

fn nineteen() -> i64 {
    NUM_CLASSES as i64
}

/// The model's configuration and input normalisation from `dir/model.json`, and the file's text.
pub fn read_model_meta(dir: &Path) -> anyhow::Result<(ModelConfig, Normalization, String)> {
    let path = dir.join(MODEL_JSON);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("{}: {e}; input `model` must be a checkpoint folder written by pretrain or contrastive-train", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: not valid JSON: {e}", path.display()))?;
    let object = match value.get("backbone") {
        Some(_) => value.clone(),
        None => value.get("model").cloned().unwrap_or(value.clone()),
    };
    let meta: ModelJson = serde_json::from_value(object).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e}; expected an object with \"backbone\" (deeplabv2-resnet101 | fcn8s-vgg16 | enet) and optionally \
             \"num_classes\", \"freeze_bn\", \"normalization\" (at the top level or under \"model\")",
            path.display()
        )
    })?;
    anyhow::ensure!(
        meta.num_classes == NUM_CLASSES as i64,
        "{}: the model predicts {} classes; evaluation needs the {NUM_CLASSES} Cityscapes train ids",
        path.display(),
        meta.num_classes
    );
    let cfg = ModelConfig { backbone: meta.backbone, num_classes: meta.num_classes, freeze_bn: meta.freeze_bn };
    let norm = meta.normalization.unwrap_or_else(|| Normalization::for_backbone(meta.backbone));
    Ok((cfg, norm, text))
}

/// A [`SegNet`] in inference mode on a device.
#[derive(Debug)]
pub struct TchPredictor {
    // Owns the variables `net` refers to.
    _vs: VarStore,
    net: SegNet,
    norm: Normalization,
    device: Device,
    upsample: Upsample,
    weights: PathBuf,
}

impl TchPredictor {
    /// Loads a checkpoint folder (see the module docs).
    pub fn load(dir: &Path, device: Device, upsample: Upsample) -> anyhow::Result<Self> {
        let (cfg, norm, _) = read_model_meta(dir)?;
        Self::from_parts(&dir.join(MODEL_WEIGHTS), &cfg, norm, device, upsample)
    }

    /// Builds the network of `cfg` and loads `weights` into it strictly.
    pub fn from_parts(weights: &Path, cfg: &ModelConfig, norm: Normalization, device: Device, upsample: Upsample) -> anyhow::Result<Self> {
        cfg.validate()?;
        anyhow::ensure!(weights.is_file(), "{}: no such file; the checkpoint folder lacks its weights", weights.display());
        let mut vs = VarStore::new(device);
        let net = SegNet::new(&vs.root(), cfg);
        uda_models::load_safetensors(&mut vs, weights, WeightNaming::Native, true)?;
        Ok(Self { _vs: vs, net, norm, device, upsample, weights: weights.to_path_buf() })
    }

    pub fn net(&self) -> &SegNet {
        &self.net
    }
}

impl Predictor for TchPredictor {
    fn predict(&mut self, images: &[u8], count: usize, size: [usize; 2], out_size: [usize; 2]) -> anyhow::Result<Vec<u8>> {
        let [h, w] = size.map(|v| v as i64);
        let [oh, ow] = out_size.map(|v| v as i64);
        anyhow::ensure!(images.len() == count * size[0] * size[1] * 3, "{} bytes for {count} images of {h}x{w}x3", images.len());
        let classes = tch::no_grad(|| -> Result<Tensor, tch::TchError> {
            let x = Tensor::f_from_slice(images)?.f_view([count as i64, h, w, 3])?.f_to_device(self.device)?;
            let x = self.norm.apply_nhwc_u8(&x);
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
        .map_err(|e| anyhow::anyhow!("running the model of {} on {:?}: {e}", self.weights.display(), self.device))?;
        Ok(Vec::<u8>::try_from(&classes)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_json_forms_and_errors() {
        let d = tempfile::tempdir().unwrap();
        let write = |s: &str| std::fs::write(d.path().join(MODEL_JSON), s).unwrap();
        write(r#"{"backbone": "enet", "stage": "pretrain", "iteration": 10}"#);
        let (cfg, norm, text) = read_model_meta(d.path()).unwrap();
        assert_eq!((cfg.backbone, cfg.num_classes), (Backbone::Enet, 19));
        assert_eq!(norm, Normalization::UNIT_RGB);
        assert!(text.contains("pretrain"));
        write(r#"{"model": {"backbone": "fcn8s-vgg16", "num_classes": 19, "freeze_bn": false}, "params": {}}"#);
        assert_eq!(read_model_meta(d.path()).unwrap().0.backbone, Backbone::Fcn8sVgg16);
        write(r#"{"backbone": "enet", "num_classes": 5}"#);
        let e = read_model_meta(d.path()).unwrap_err().to_string();
        assert!(e.contains("5 classes"), "{e}");
        write(r#"{"backbone": "resnet9000"}"#);
        let e = read_model_meta(d.path()).unwrap_err().to_string();
        assert!(e.contains("model.json") && e.contains("deeplabv2-resnet101"), "{e}");
        std::fs::remove_file(d.path().join(MODEL_JSON)).unwrap();
        let e = read_model_meta(d.path()).unwrap_err().to_string();
        assert!(e.contains("checkpoint folder"), "{e}");
    }
}
