//! `model.json`: what a later stage needs to rebuild a trained model and feed it the same kind
//! of input it was trained on (backbone, classes, normalisation, grayscale or colour).

use crate::TrainError;
use crate::augment::luma_pil;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use uda_models::tch::{Device, TchError, Tensor, nn};
use uda_models::{Backbone, ModelConfig, Normalization, SegNet, WeightNaming};

/// File name of the description inside a model folder.
pub const MODEL_JSON: &str = "model.json";
/// File name of the weights inside a model folder.
pub const MODEL_WEIGHTS: &str = "model.safetensors";

/// Contents of `model.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelInfo {
    pub backbone: Backbone,
    pub num_classes: i64,
    pub freeze_bn: bool,
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

impl ModelInfo {
    pub fn model_config(&self) -> ModelConfig {
        ModelConfig {
            backbone: self.backbone,
            num_classes: self.num_classes,
            freeze_bn: self.freeze_bn,
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
