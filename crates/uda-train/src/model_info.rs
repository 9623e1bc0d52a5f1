//! `model.json`: what a later stage needs to rebuild a trained model and feed it the same kind
//! of input it was trained on (backbone, classes, normalisation, grayscale or colour).

use crate::TrainError;
use crate::augment::luma_pil;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use uda_models::tch::{Device, TchError, Tensor, nn};
use uda_models::{Backbone, BatchNormMode, ModelConfig, Normalization, SegNet, WeightNaming};

/// File name of the description inside a model folder.
pub const MODEL_JSON: &str = "model.json";
/// File name of the weights inside a model folder.
pub const MODEL_WEIGHTS: &str = "model.safetensors";

/// Contents of `model.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ModelInfoFile")]
pub struct ModelInfo {
    pub backbone: Backbone,
    pub num_classes: i64,
    /// How BatchNorm was trained (inference always uses the running statistics).
    pub batch_norm: BatchNormMode,
    /// How raw RGB becomes network input (after the grayscale conversion, when on).
    pub normalization: Normalization,
    /// The model was trained on grayscale images (PIL luma replicated to 3 channels); feed it
    /// grayscale too.
    pub grayscale: bool,
    /// Weights file beside `model.json`, in `uda-models`' native naming.
    pub weights: String,
    /// The stage that trained it.
    pub produced_by: String,
    pub iterations: u64,
}

/// `model.json` as read: models trained before BatchNorm had three modes say `freeze_bn: bool`
/// (true: frozen, false: train); both spellings load.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelInfoFile {
    backbone: Backbone,
    num_classes: i64,
    #[serde(default)]
    batch_norm: Option<BatchNormMode>,
    #[serde(default)]
    freeze_bn: Option<bool>,
    normalization: Normalization,
    grayscale: bool,
    weights: String,
    produced_by: String,
    iterations: u64,
}

impl TryFrom<ModelInfoFile> for ModelInfo {
    type Error = String;

    fn try_from(f: ModelInfoFile) -> Result<Self, String> {
        Ok(Self {
            backbone: f.backbone,
            num_classes: f.num_classes,
            batch_norm: BatchNormMode::from_saved(f.batch_norm, f.freeze_bn)?,
            normalization: f.normalization,
            grayscale: f.grayscale,
            weights: f.weights,
            produced_by: f.produced_by,
            iterations: f.iterations,
        })
    }
}

impl ModelInfo {
    pub fn model_config(&self) -> ModelConfig {
        ModelConfig {
            backbone: self.backbone,
            num_classes: self.num_classes,
            batch_norm: self.batch_norm,
        }
    }

    /// Network input for `count` RGB images `(count, height, width, 3)` u8 on `device`, fed as
    /// the model was trained: PIL-luma grayscale when [`ModelInfo::grayscale`], then the
    /// model's normalisation; `(count, 3, height, width)` float.
    pub fn input_tensor(
        &self,
        rgb: &[u8],
        count: usize,
        height: usize,
        width: usize,
        device: Device,
    ) -> Result<Tensor, TchError> {
        let gray: Vec<u8>;
        let pixels = if self.grayscale {
            gray = rgb
                .chunks_exact(3)
                .flat_map(|p| [luma_pil(p[0], p[1], p[2]); 3])
                .collect();
            &gray
        } else {
            rgb
        };
        let x = Tensor::f_from_slice(pixels)?
            .f_view([count as i64, height as i64, width as i64, 3])?
            .f_to_device(device)?;
        Ok(self.normalization.apply_nhwc_u8(&x))
    }

    pub fn weights_path(&self, dir: &Path) -> PathBuf {
        dir.join(&self.weights)
    }

    pub fn write(&self, dir: &Path) -> Result<(), TrainError> {
        let path = dir.join(MODEL_JSON);
        let text =
            serde_json::to_string_pretty(self).map_err(|e| TrainError::Config(e.to_string()))?;
        std::fs::write(&path, text)
            .map_err(|e| TrainError::io(format!("writing {}", path.display()), e))
    }

    /// Reads `dir/model.json`.
    pub fn read(dir: &Path) -> Result<Self, TrainError> {
        let path = dir.join(MODEL_JSON);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            TrainError::io(
                format!(
                    "reading {} (is {} the output of a training stage?)",
                    path.display(),
                    dir.display()
                ),
                e,
            )
        })?;
        serde_json::from_str(&text).map_err(|e| {
            TrainError::data(format!("{}: not a model description", path.display()), e)
        })
    }

    /// Reads `dir/model.json`, builds the network on `vs`'s root and loads its weights (strictly).
    pub fn load_model(dir: &Path, vs: &mut nn::VarStore) -> Result<(Self, SegNet), TrainError> {
        let info = Self::read(dir)?;
        let cfg = info.model_config();
        cfg.validate()
            .map_err(|e| TrainError::Config(format!("{}: {e}", dir.join(MODEL_JSON).display())))?;
        let mut net = SegNet::new(&vs.root(), &cfg);
        net.set_input_normalization(info.normalization);
        let weights = info.weights_path(dir);
        uda_models::load_safetensors(vs, &weights, WeightNaming::Native, true)
            .map_err(|e| TrainError::checkpoint(&weights, e))?;
        Ok((info, net))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_json_of_earlier_versions_still_loads() {
        let info = ModelInfo {
            backbone: Backbone::Deeplabv2Resnet101,
            num_classes: 19,
            batch_norm: BatchNormMode::Fda,
            normalization: Normalization::FDA_CAFFE,
            grayscale: false,
            weights: MODEL_WEIGHTS.into(),
            produced_by: "pretrain".into(),
            iterations: 3,
        };
        let text = serde_json::to_string(&info).unwrap();
        assert!(text.contains(r#""batch_norm":"fda""#), "{text}");
        assert_eq!(serde_json::from_str::<ModelInfo>(&text).unwrap(), info);
        let old = text.replace(r#""batch_norm":"fda""#, r#""freeze_bn":true"#);
        let read: ModelInfo = serde_json::from_str(&old).unwrap();
        assert_eq!(read.batch_norm, BatchNormMode::Frozen);
        let both = text.replace(
            r#""batch_norm":"fda""#,
            r#""batch_norm":"fda","freeze_bn":true"#,
        );
        let e = serde_json::from_str::<ModelInfo>(&both)
            .unwrap_err()
            .to_string();
        assert!(e.contains("freeze_bn"), "{e}");
    }
}
