//! Loss scaling for fp16 training, as PyTorch's `torch.amp.GradScaler` with its defaults: the
//! loss is multiplied by `scale` before the backward pass so that small gradients survive
//! float16's range; the gradients are divided by it before the optimiser step. A step whose
//! gradients hold an inf or NaN is skipped and the scale halved; after 2000 steps in a row
//! without one the scale doubles. bf16 has fp32's range and needs none of this.

use crate::{Optimizer, TrainError};
use std::collections::HashMap;
use uda_models::tch::Tensor;

/// GradScaler's defaults.
const INIT_SCALE: f64 = 65536.0;
const GROWTH_FACTOR: f64 = 2.0;
const BACKOFF_FACTOR: f64 = 0.5;
const GROWTH_INTERVAL: u64 = 2000;

const SCALE_KEY: &str = "amp.scale";
const TRACKER_KEY: &str = "amp.growth_tracker";

#[derive(Debug, Clone, PartialEq)]
pub struct LossScaler {
    scale: f64,
    /// Steps in a row with finite gradients since the last change of scale.
    growth_tracker: u64,
}

impl Default for LossScaler {
    fn default() -> Self {
        Self {
            scale: INIT_SCALE,
            growth_tracker: 0,
        }
    }
}

impl LossScaler {
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Unscales the gradients in `optimizer`, steps it at `lr` unless they hold an inf or NaN,
    /// and updates the scale. Returns whether the step was taken.
    pub fn step(&mut self, optimizer: &mut Optimizer, lr: f64) -> bool {
        let finite = optimizer.unscale_grads(self.scale);
        if finite {
            optimizer.step(lr);
            self.growth_tracker += 1;
            if self.growth_tracker == GROWTH_INTERVAL {
                self.scale *= GROWTH_FACTOR;
                self.growth_tracker = 0;
            }
        } else {
            self.scale *= BACKOFF_FACTOR;
            self.growth_tracker = 0;
        }
        finite
    }

    /// The state as named tensors, for a checkpoint (an exact resume needs the scale).
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        vec![
            (SCALE_KEY.into(), Tensor::from(self.scale)),
            (TRACKER_KEY.into(), Tensor::from(self.growth_tracker as i64)),
        ]
    }

    /// Restores [`Self::state_tensors`]; a checkpoint without them is one of another precision.
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>) -> Result<(), TrainError> {
        let (Some(scale), Some(tracker)) = (tensors.get(SCALE_KEY), tensors.get(TRACKER_KEY))
        else {
            return Err(TrainError::Config(
                "the checkpoint has no fp16 loss-scaler state (it was written at another precision)"
                    .into(),
            ));
        };
        self.scale = scale.double_value(&[]);
        self.growth_tracker = tracker.int64_value(&[]) as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OptimizerConfig;
    use uda_models::tch::{Device, Kind, nn};

    #[test]
    fn an_overflow_skips_the_step_and_halves_the_scale() {
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().var_copy("w", &Tensor::from_slice(&[1.0f32, 2.0]));
        let mut opt = Optimizer::new(&vs, OptimizerConfig::PAPER_SGD, &[1.0]).unwrap();
        let mut scaler = LossScaler::default();
        let before = w.detach().copy();
        // A gradient of 1e35 times the scale 65536 is beyond f32: inf after the backward pass.
        opt.zero_grad();
        ((&w * 1e35).sum(Kind::Float) * scaler.scale()).backward();
        assert!(!scaler.step(&mut opt, 0.1), "an inf gradient was stepped");
        assert!(w.equal(&before), "the weights moved on a skipped step");
        assert_eq!(scaler.scale(), INIT_SCALE / 2.0);
        // A normal step is taken, with the gradient unscaled: exactly SGD's first step.
        opt.zero_grad();
        ((&w * 3.0).sum(Kind::Float) * scaler.scale()).backward();
        assert!(scaler.step(&mut opt, 0.1));
        let want = &before - (Tensor::from_slice(&[3.0f32, 3.0]) + &before * 5e-4) * 0.1;
        assert!(w.allclose(&want, 1e-6, 1e-6, false), "{w} vs {want}");
        assert_eq!(scaler.growth_tracker, 1);
        // The state survives a checkpoint.
        let saved: HashMap<String, Tensor> = scaler.state_tensors().into_iter().collect();
        let mut restored = LossScaler::default();
        restored.load_state(&saved).unwrap();
        assert_eq!(restored, scaler);
        assert!(LossScaler::default().load_state(&HashMap::new()).is_err());
    }

    #[test]
    fn the_scale_doubles_after_the_growth_interval() {
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().var_copy("w", &Tensor::from_slice(&[1.0f32]));
        let mut opt = Optimizer::new(&vs, OptimizerConfig::PAPER_SGD, &[1.0]).unwrap();
        let mut scaler = LossScaler {
            scale: 8.0,
            growth_tracker: GROWTH_INTERVAL - 1,
        };
        opt.zero_grad();
        (&w * scaler.scale()).sum(Kind::Float).backward();
        assert!(scaler.step(&mut opt, 1e-3));
        assert_eq!((scaler.scale(), scaler.growth_tracker), (16.0, 0));
    }
}
