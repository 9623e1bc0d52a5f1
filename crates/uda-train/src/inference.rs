//! Running a trained checkpoint: what `evaluate` (scores) and `pseudolabel-dump` (pseudo-labels)
//! do with a training stage's output, in one place so both feed a model the same way and fail the
//! same way. Several checkpoints averaged (FDA's ensemble) are [`crate::ensemble`].
//!
//! A checkpoint folder holds `model.json` ([`ModelInfo`]) and the weights it names, loaded
//! strictly; the model must predict the 19 Cityscapes train ids. Images are fed as the model was
//! trained ([`ModelInfo::input_tensor`]: PIL-luma grayscale when it was trained so, then its
//! normalisation); scores are resized bilinearly with aligned corners (ADVENT's and FDA's
//! evaluation scripts) to the requested size.

use crate::TrainError;
use crate::model_info::{MODEL_JSON, ModelInfo};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use uda_data::classes::NUM_CLASSES;
use uda_models::tch::{self, Device, Kind, TchError, Tensor, nn::VarStore};
use uda_models::{Precision, SegNet, with_precision};

/// What is resized to the output size: the raw `logits` (ADVENT's single-model evaluation) or
/// `softmax` probabilities (FDA's ensemble script). The two can differ on a few boundary pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Upsample {
    #[default]
    Logits,
    Softmax,
}

/// Why a checkpoint could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    #[error(
        "{path}: the model predicts {found} classes; scoring and pseudo-labels need the {NUM_CLASSES} Cityscapes train ids"
    )]
    Classes { path: PathBuf, found: i64 },
    #[error("checkpoint {dir}")]
    Load {
        dir: PathBuf,
        #[source]
        source: TrainError,
    },
    #[error("reading {path}")]
    ReadInfo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{got} bytes for {count} images of {height}x{width}x3")]
    InputSize {
        got: usize,
        count: usize,
        height: usize,
        width: usize,
    },
    #[error("running the model of {weights} on {device:?}")]
    Torch {
        weights: PathBuf,
        device: Device,
        #[source]
        source: TchError,
    },
}

/// A checkpoint's `model.json` and its text (kept verbatim in reports), checked to predict the
/// 19 train ids; no weights are read.
pub fn read_checkpoint_info(dir: &Path) -> Result<(ModelInfo, String), InferenceError> {
    let info = ModelInfo::read(dir).map_err(|source| InferenceError::Load {
        dir: dir.to_path_buf(),
        source,
    })?;
    let path = dir.join(MODEL_JSON);
    if info.num_classes != NUM_CLASSES as i64 {
        return Err(InferenceError::Classes {
            path,
            found: info.num_classes,
        });
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|source| InferenceError::ReadInfo { path, source })?;
    Ok((info, text))
}

/// A trained network in inference mode on a device.
#[derive(Debug)]
pub struct Checkpoint {
    /// Owns the variables `net` refers to.
    vs: VarStore,
    net: SegNet,
    info: ModelInfo,
    model_json: String,
    dir: PathBuf,
    weights: PathBuf,
    device: Device,
    /// The forward pass's arithmetic (scores are fp32 whatever it is).
    precision: Precision,
    /// Whether the convolution weights are laid out channels-last.
    channels_last: bool,
}

impl Checkpoint {
    /// Loads a checkpoint folder (see the module docs).
    pub fn load(dir: &Path, device: Device) -> Result<Self, InferenceError> {
        let (_, model_json) = read_checkpoint_info(dir)?;
        let mut vs = VarStore::new(device);
        let (info, net) =
            ModelInfo::load_model(dir, &mut vs).map_err(|source| InferenceError::Load {
                dir: dir.to_path_buf(),
                source,
            })?;
        let weights = info.weights_path(dir);
        Ok(Self {
            vs,
            net,
            info,
            model_json,
            dir: dir.to_path_buf(),
            weights,
            device,
            precision: Precision::Fp32,
            channels_last: false,
        })
    }

    /// Runs the forward passes under autocast at `precision` (see [`uda_models::Precision`]);
    /// the scores are computed in fp32 from the logits either way.
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self
    }

    /// Lays the convolution weights out channels-last (NHWC) when `on`, as training's
    /// `channels_last` does: oneDNN's bf16 convolutions run about twice as fast so (FCN-8s and
    /// DeepLabV2 inference on this project's CPU: docs/benchmarks.md). Only the layout changes;
    /// the scores agree with the contiguous layout up to float rounding.
    pub fn with_channels_last(mut self, on: bool) -> Self {
        if on && !self.channels_last {
            uda_models::convert_to_channels_last(&self.vs);
        }
        self.channels_last |= on;
        self
    }

    /// How the forward pass runs, for a stage's log: e.g. `bf16, channels-last`.
    pub fn forward_mode(&self) -> String {
        let layout = if self.channels_last {
            "channels-last"
        } else {
            "contiguous"
        };
        format!("{}, {layout}", self.precision)
    }

    pub fn net(&self) -> &SegNet {
        &self.net
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The text of `model.json`, as read.
    pub fn model_json(&self) -> &str {
        &self.model_json
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Scores `(count, 19, out_h, out_w)` float for `count` RGB images `(count, h, w, 3)` u8 of
    /// `size = [h, w]`: the logits or their softmax, resized to `out_size` bilinearly with
    /// aligned corners. No gradient is recorded.
    pub fn scores(
        &self,
        images: &[u8],
        count: usize,
        size: [usize; 2],
        out_size: [usize; 2],
        what: Upsample,
    ) -> Result<Tensor, InferenceError> {
        let [h, w] = size;
        if images.len() != count * h * w * 3 {
            return Err(InferenceError::InputSize {
                got: images.len(),
                count,
                height: h,
                width: w,
            });
        }
        let [oh, ow] = out_size.map(|v| v as i64);
        tch::no_grad(|| -> Result<Tensor, TchError> {
            let x = self.info.input_tensor(images, count, h, w, self.device)?;
            let logits = with_precision(self.device, self.precision, || {
                self.net.forward_t(&x, false).logits
            })
            .f_to_kind(Kind::Float)?;
            let scores = match what {
                Upsample::Logits => logits,
                Upsample::Softmax => logits.f_softmax(1, Kind::Float)?,
            };
            scores.f_upsample_bilinear2d([oh, ow], true, None, None)
        })
        .map_err(|source| self.torch_error(source))
    }

    /// The error of a libtorch call on this checkpoint's outputs (names the weights and device).
    pub fn torch_error(&self, source: TchError) -> InferenceError {
        InferenceError::Torch {
            weights: self.weights.clone(),
            device: self.device,
            source,
        }
    }
}

/// The arg-max class of every pixel of `scores` `(n, classes, h, w)`, as `n · h · w` u8 on the
/// CPU, row-major.
pub fn argmax_classes(scores: &Tensor) -> Result<Vec<u8>, TchError> {
    let classes = scores
        .f_argmax(1, false)?
        .f_to_kind(Kind::Uint8)?
        .f_to_device(Device::Cpu)?
        .f_contiguous()?
        .f_view([-1])?;
    Vec::<u8>::try_from(&classes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use uda_models::{Backbone, BatchNormMode, Normalization};

    fn info(num_classes: i64) -> ModelInfo {
        ModelInfo {
            backbone: Backbone::Enet,
            num_classes,
            batch_norm: BatchNormMode::Train,
            normalization: Normalization::UNIT_RGB,
            grayscale: true,
            weights: "model.safetensors".into(),
            produced_by: "pretrain".into(),
            iterations: 10,
        }
    }

    /// `{:#}`: the error with its causes, as a stage prints it.
    fn chain(e: &dyn std::error::Error) -> String {
        let mut text = e.to_string();
        let mut cause = e.source();
        while let Some(c) = cause {
            text += &format!(": {c}");
            cause = c.source();
        }
        text
    }

    #[test]
    fn model_json_is_read_with_its_text_and_checked() {
        let d = tempfile::tempdir().unwrap();
        info(19).write(d.path()).unwrap();
        let (read, text) = read_checkpoint_info(d.path()).unwrap();
        assert_eq!(read, info(19));
        assert!(text.contains("\"produced_by\": \"pretrain\""), "{text}");
        info(5).write(d.path()).unwrap();
        let e = read_checkpoint_info(d.path()).unwrap_err();
        assert!(matches!(e, InferenceError::Classes { found: 5, .. }), "{e}");
        assert!(e.to_string().contains("model.json"), "{e}");
        std::fs::write(d.path().join(MODEL_JSON), r#"{"backbone": "enet"}"#).unwrap();
        let e = read_checkpoint_info(d.path()).unwrap_err();
        assert!(matches!(e, InferenceError::Load { .. }), "{e}");
        assert!(chain(&e).contains("model.json"), "{}", chain(&e));
        std::fs::remove_file(d.path().join(MODEL_JSON)).unwrap();
        let e = read_checkpoint_info(d.path()).unwrap_err();
        assert!(chain(&e).contains("model.json"), "{}", chain(&e));
    }

    #[test]
    fn scores_check_the_input_size_and_resize() {
        let d = tempfile::tempdir().unwrap();
        let vs = VarStore::new(Device::Cpu);
        let cfg = info(19).model_config();
        let _net = SegNet::new(&vs.root(), &cfg);
        uda_models::save_safetensors_where(&vs, &d.path().join("model.safetensors"), &|_| true)
            .unwrap();
        info(19).write(d.path()).unwrap();
        let ckpt = Checkpoint::load(d.path(), Device::Cpu).unwrap();
        let e = ckpt
            .scores(&[0; 10], 1, [16, 16], [16, 16], Upsample::Logits)
            .unwrap_err();
        assert!(
            matches!(e, InferenceError::InputSize { got: 10, .. }),
            "{e}"
        );
        let images = vec![100u8; 2 * 16 * 32 * 3];
        let s = ckpt
            .scores(&images, 2, [16, 32], [8, 12], Upsample::Softmax)
            .unwrap();
        assert_eq!(s.size(), [2, 19, 8, 12]);
        let total = s.sum_dim_intlist(1, false, Kind::Float);
        assert!((total.mean(Kind::Float).double_value(&[]) - 1.0).abs() < 1e-5);
        assert_eq!(argmax_classes(&s).unwrap().len(), 2 * 8 * 12);
    }

    #[test]
    fn channels_last_changes_the_layout_not_the_scores() {
        let d = tempfile::tempdir().unwrap();
        tch::manual_seed(3);
        let vs = VarStore::new(Device::Cpu);
        let _net = SegNet::new(&vs.root(), &info(19).model_config());
        uda_models::save_safetensors(&vs, &d.path().join("model.safetensors")).unwrap();
        info(19).write(d.path()).unwrap();
        let images: Vec<u8> = (0..2 * 24 * 32 * 3).map(|p| (p * 37 % 251) as u8).collect();
        let plain = Checkpoint::load(d.path(), Device::Cpu).unwrap();
        assert_eq!(plain.forward_mode(), "fp32, contiguous");
        let want = plain
            .scores(&images, 2, [24, 32], [24, 32], Upsample::Logits)
            .unwrap();
        let fast = Checkpoint::load(d.path(), Device::Cpu)
            .unwrap()
            .with_precision(Precision::Bf16)
            .with_channels_last(true);
        assert_eq!(fast.forward_mode(), "bf16, channels-last");
        let weights = fast.vs.variables();
        let convs: Vec<_> = weights.values().filter(|t| t.dim() == 4).collect();
        assert!(!convs.is_empty());
        assert!(convs.iter().all(|t| uda_models::is_channels_last(t)));
        let cl = Checkpoint::load(d.path(), Device::Cpu)
            .unwrap()
            .with_channels_last(true);
        let got = cl
            .scores(&images, 2, [24, 32], [24, 32], Upsample::Logits)
            .unwrap();
        let scale = want.abs().max().double_value(&[]);
        let diff = (&got - &want).abs().max().double_value(&[]);
        assert!(
            diff <= 1e-4 * scale.max(1.0),
            "fp32 channels-last moved the logits by {diff}"
        );
    }
}
