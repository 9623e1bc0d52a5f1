//! Averaged softmax of one or several checkpoints, at image resolution.

use crate::thresholds::quantize;
use std::path::PathBuf;
use uda_models::tch::{Device, Kind, Tensor};
use uda_train::inference::{Checkpoint, InferenceError, Upsample};

/// Equal-weight softmax ensemble (FDA's MBT with one model per β; one member is plain
/// inference).
#[derive(Debug)]
pub struct Ensemble {
    members: Vec<Checkpoint>,
}

impl Ensemble {
    pub fn load(dirs: &[PathBuf], device: Device) -> Result<Self, InferenceError> {
        let members = dirs
            .iter()
            .map(|dir| Checkpoint::load(dir, device))
            .collect::<Result<Vec<_>, _>>()?;
        assert!(!members.is_empty(), "an ensemble has members");
        Ok(Self { members })
    }

    /// Mean softmax `(count, 19, h, w)` of `count` RGB images `(count, h, w, 3)` u8, each
    /// member's resized bilinearly (aligned corners) from its output size to `(h, w)`.
    pub fn probabilities(
        &self,
        rgb: &[u8],
        count: usize,
        h: usize,
        w: usize,
    ) -> Result<Tensor, InferenceError> {
        let mut sum: Option<Tensor> = None;
        for m in &self.members {
            // Bilinear resizing is linear, so resizing each member before averaging equals
            // FDA's average-then-resize, and members of different output strides can mix.
            let p = m.scores(rgb, count, [h, w], [h, w], Upsample::Softmax)?;
            sum = Some(match sum {
                Some(s) => s.f_add(&p).map_err(|e| m.torch_error(e))?,
                None => p,
            });
        }
        let first = &self.members[0];
        sum.expect("an ensemble has members")
            .f_div_scalar(self.members.len() as f64)
            .map_err(|e| first.torch_error(e))
    }

    /// Arg-max train ids and quantised confidences (`round(255 · max p)`), `count · h · w` each.
    pub fn predict(
        &self,
        rgb: &[u8],
        count: usize,
        h: usize,
        w: usize,
    ) -> Result<(Vec<u8>, Vec<u8>), InferenceError> {
        let probs = self.probabilities(rgb, count, h, w)?;
        let first = &self.members[0];
        let to_vec = || -> Result<(Vec<u8>, Vec<f32>), uda_models::tch::TchError> {
            let (max, arg) = probs.f_max_dim(1, false)?;
            let pred = Vec::<u8>::try_from(
                arg.f_to_kind(Kind::Uint8)?
                    .f_to_device(Device::Cpu)?
                    .f_contiguous()?
                    .f_view([-1])?,
            )?;
            let conf = Vec::<f32>::try_from(
                max.f_to_kind(Kind::Float)?
                    .f_to_device(Device::Cpu)?
                    .f_contiguous()?
                    .f_view([-1])?,
            )?;
            Ok((pred, conf))
        };
        let (pred, conf) = to_vec().map_err(|e| first.torch_error(e))?;
        Ok((pred, conf.into_iter().map(quantize).collect()))
    }
}
