//! SGD and Adam written out on tensors, because tch's built-in optimisers keep their state
//! (momentum, moments) inside libtorch where it cannot be saved, and an exact resume needs it.
//!
//! Both follow PyTorch's `torch.optim` update rules (non-Nesterov SGD with L2 weight decay added
//! to the gradient, first momentum buffer = the first gradient; Adam with bias correction and
//! L2 weight decay, `amsgrad=False`), checked numerically against PyTorch in the tests. Each
//! variable's learning rate is the schedule's rate times its var-store group's multiplier
//! (`uda-models` puts the classifier head in group 1, trained at 10× by the references).

use crate::TrainError;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use uda_models::tch::{Tensor, nn};

/// Which optimiser, with its hyper-parameters (the learning rate comes from the schedule).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum OptimizerConfig {
    Sgd {
        momentum: f64,
        weight_decay: f64,
    },
    Adam {
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
    },
}

impl OptimizerConfig {
    /// The paper's SGD for DeepLabV2 and ENet: momentum 0.9, weight decay 5e-4.
    pub const PAPER_SGD: Self = Self::Sgd {
        momentum: 0.9,
        weight_decay: 5e-4,
    };
    /// The paper's Adam for FCN-8s VGG16: betas (0.9, 0.99), PyTorch's default eps, no decay.
    pub const PAPER_ADAM: Self = Self::Adam {
        beta1: 0.9,
        beta2: 0.99,
        eps: 1e-8,
        weight_decay: 0.0,
    };

    fn name(&self) -> &'static str {
        match self {
            Self::Sgd { .. } => "sgd",
            Self::Adam { .. } => "adam",
        }
    }
}

/// How many times per step the optimiser applies its update to each variable (the training
/// recipe's `param_listing`).
///
/// FDA's DeepLab optimiser lists most trunk convolutions three times (see
/// [`uda_models::fda_listing_count`]), and PyTorch's SGD updates a listed tensor once per listing;
/// so the published runs moved most trunk weights about 3× per step (weight decay and momentum
/// applied per listing). `unique` is the intended optimiser; `fda-listing` reproduces FDA's runs.
/// For FCN-8s, whose FDA optimiser (Adam) lists each tensor once, `fda-listing` means FDA's VGG
/// groups instead: weights at the scheduled rate, biases at a constant 2× the base rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ParamListing {
    /// Each variable once per step.
    Unique,
    /// Each variable as FDA's optimiser lists it: DeepLabV2 (SGD) as often as
    /// `get_1x_lr_params_NOscale` yields it; FCN-8s (Adam) with FDA's constant 2× bias group.
    FdaListing,
}

#[derive(Debug)]
struct Param {
    name: String,
    tensor: Tensor,
    lr_mult: f64,
    /// Updates per step: 1, or FDA's listing count under [`ParamListing::FdaListing`].
    listings: usize,
    /// A learning rate that ignores the schedule (FDA's VGG bias group), if any.
    fixed_lr: Option<f64>,
    /// SGD: the momentum buffer; Adam: the first moment.
    buf1: Option<Tensor>,
    /// Adam: the second moment.
    buf2: Option<Tensor>,
    /// Updates applied to this variable (Adam's bias correction counts per variable).
    steps: u64,
}

/// An optimiser over the trainable variables of a var store.
#[derive(Debug)]
pub struct Optimizer {
    config: OptimizerConfig,
    params: Vec<Param>,
}

impl Optimizer {
    /// Collects the trainable variables of `vs` (sorted by name, so the update order and the
    /// checkpoint layout do not depend on hash-map order). `group_lr_mult[g]` is the learning-rate
    /// multiplier of var-store group `g`; every group in use needs one.
    pub fn new(
        vs: &nn::VarStore,
        config: OptimizerConfig,
        group_lr_mult: &[f64],
    ) -> Result<Self, TrainError> {
        let vars = vs
            .variables_
            .lock()
            .map_err(|_| TrainError::Config("var store lock poisoned".into()))?;
        let by_ptr: HashMap<usize, &String> = vars
            .named_variables
            .iter()
            .map(|(name, t)| (t.data_ptr() as usize, name))
            .collect();
        let mut params = Vec::with_capacity(vars.trainable_variables.len());
        for var in &vars.trainable_variables {
            let name = by_ptr
                .get(&(var.tensor.data_ptr() as usize))
                .map(|s| s.to_string())
                .ok_or_else(|| {
                    TrainError::Config(format!(
                        "a trainable variable of shape {:?} has no name",
                        var.tensor.size()
                    ))
                })?;
            let lr_mult = *group_lr_mult.get(var.group).ok_or_else(|| {
                TrainError::Config(format!(
                    "variable '{name}' is in optimiser group {} but only {} group lr multipliers were given",
                    var.group,
                    group_lr_mult.len()
                ))
            })?;
            params.push(Param {
                name,
                tensor: var.tensor.shallow_clone(),
                lr_mult,
                listings: 1,
                fixed_lr: None,
                buf1: None,
                buf2: None,
                steps: 0,
            });
        }
        params.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Self { config, params })
    }

    /// Applies each variable's update `listings(name)` times per step (at least once), as
    /// PyTorch's SGD does for a tensor listed that often in its parameter groups; see
    /// [`ParamListing`]. Only SGD: FDA's Adam (FCN-8s) lists every tensor once.
    pub fn with_listings(mut self, listings: impl Fn(&str) -> usize) -> Result<Self, TrainError> {
        for p in &mut self.params {
            p.listings = listings(&p.name).max(1);
        }
        if matches!(self.config, OptimizerConfig::Adam { .. })
            && self.params.iter().any(|p| p.listings > 1)
        {
            return Err(TrainError::Config(
                "repeated parameter listings are FDA's SGD quirk; use param_listing: unique with adam"
                    .into(),
            ));
        }
        Ok(self)
    }

    /// Gives the variables for which `fixed(name)` is `Some(lr)` that learning rate at every
    /// step, whatever the schedule says: FDA's FCN-8s optimiser puts the biases in a group at 2×
    /// the base rate whose rate its `adjust_learning_rate` never changes (`model/fcn8s.py`).
    pub fn with_fixed_rates(mut self, fixed: impl Fn(&str) -> Option<f64>) -> Self {
        for p in &mut self.params {
            p.fixed_lr = fixed(&p.name);
        }
        self
    }

    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// Number of variables it updates.
    pub fn len(&self) -> usize {
        self.params.len()
    }

    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Sets every gradient to zero (call before the backward pass of an iteration).
    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            p.tensor.zero_grad();
        }
    }

    /// Divides every gradient by `scale` (fp16 loss scaling) and says whether all of them are
    /// finite afterwards.
    pub fn unscale_grads(&mut self, scale: f64) -> bool {
        uda_models::tch::no_grad(|| {
            // One sum per gradient, added up on the device and read once: an inf or NaN anywhere
            // makes the total non-finite, and a read per variable would synchronise a GPU ~300
            // times a step.
            let sums: Vec<Tensor> = self
                .params
                .iter_mut()
                .filter_map(|p| {
                    let mut grad = p.tensor.grad();
                    grad.defined().then(|| {
                        let _ = grad.g_mul_scalar_(1.0 / scale);
                        grad.sum(uda_models::tch::Kind::Double)
                    })
                })
                .collect();
            sums.is_empty()
                || Tensor::stack(&sums, 0)
                    .sum(uda_models::tch::Kind::Double)
                    .double_value(&[])
                    .is_finite()
        })
    }

    /// Applies one update with base learning rate `lr` to every variable that has a gradient.
    pub fn step(&mut self, lr: f64) {
        let config = self.config;
        uda_models::tch::no_grad(|| {
            for p in &mut self.params {
                let grad = p.tensor.grad();
                if !grad.defined() {
                    continue;
                }
                let lr = p.fixed_lr.unwrap_or(lr * p.lr_mult);
                p.steps += 1;
                match config {
                    OptimizerConfig::Sgd {
                        momentum,
                        weight_decay,
                    } => {
                        // PyTorch's single-tensor SGD over a list that names this tensor
                        // `listings` times: the momentum buffers are looked up once before the
                        // loop, so on the first step each listing starts a fresh buffer from its
                        // own gradient (the last one is kept); afterwards all share one buffer.
                        // Weight decay sees the weights as the previous listing left them.
                        let first = p.buf1.is_none();
                        for _ in 0..p.listings {
                            let d = if weight_decay != 0.0 {
                                &grad + &p.tensor * weight_decay
                            } else {
                                grad.shallow_clone()
                            };
                            let d = if momentum == 0.0 {
                                d
                            } else if first || p.buf1.is_none() {
                                let buf = d.detach().copy();
                                p.buf1 = Some(buf.shallow_clone());
                                buf
                            } else {
                                let buf = p.buf1.as_mut().expect("checked above");
                                let _ = buf.g_mul_scalar_(momentum).g_add_(&d);
                                buf.shallow_clone()
                            };
                            let _ = p.tensor.g_add_(&(d * (-lr)));
                        }
                    }
                    OptimizerConfig::Adam {
                        beta1,
                        beta2,
                        eps,
                        weight_decay,
                    } => {
                        let g = if weight_decay != 0.0 {
                            &grad + &p.tensor * weight_decay
                        } else {
                            grad
                        };
                        let m = p.buf1.get_or_insert_with(|| p.tensor.zeros_like());
                        let _ = m.lerp_(&g, 1.0 - beta1);
                        let v = p.buf2.get_or_insert_with(|| p.tensor.zeros_like());
                        let _ = v.g_mul_scalar_(beta2).g_add_(&(&g * &g * (1.0 - beta2)));
                        let t = p.steps as i32;
                        let bc1 = 1.0 - beta1.powi(t);
                        let bc2 = 1.0 - beta2.powi(t);
                        let denom = v.sqrt() / bc2.sqrt() + eps;
                        let upd = m.divide(&denom) * (-lr / bc1);
                        let _ = p.tensor.g_add_(&upd);
                    }
                }
            }
        });
    }

    /// The optimiser's state as named tensors (CPU copies), for a checkpoint.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let kind = self.config.name();
        let mut out = Vec::new();
        for p in &self.params {
            if p.steps == 0 {
                continue;
            }
            out.push((
                format!("optim.{kind}.steps/{}", p.name),
                Tensor::from(p.steps as i64),
            ));
            if let Some(b) = &p.buf1 {
                out.push((
                    format!("optim.{kind}.buf1/{}", p.name),
                    b.to_device(uda_models::tch::Device::Cpu),
                ));
            }
            if let Some(b) = &p.buf2 {
                out.push((
                    format!("optim.{kind}.buf2/{}", p.name),
                    b.to_device(uda_models::tch::Device::Cpu),
                ));
            }
        }
        out
    }

    /// Restores what [`Self::state_tensors`] saved; every saved entry must match a variable of
    /// the same shape, or the checkpoint belongs to another model.
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>) -> Result<(), TrainError> {
        let kind = self.config.name();
        let prefix = format!("optim.{kind}.");
        let known: HashMap<&str, usize> = self
            .params
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.as_str(), i))
            .collect();
        for name in tensors.keys().filter(|k| k.starts_with("optim.")) {
            let Some(rest) = name.strip_prefix(&prefix) else {
                return Err(TrainError::Config(format!(
                    "checkpoint holds optimiser state '{name}' but this run uses {kind}"
                )));
            };
            let var = rest.split_once('/').map(|(_, v)| v).unwrap_or_default();
            if !known.contains_key(var) {
                return Err(TrainError::Config(format!(
                    "checkpoint optimiser state '{name}' names no trainable variable"
                )));
            }
        }
        for p in &mut self.params {
            p.steps = 0;
            p.buf1 = None;
            p.buf2 = None;
            if let Some(s) = tensors.get(&format!("{prefix}steps/{}", p.name)) {
                p.steps = s.int64_value(&[]) as u64;
            }
            for (slot, which) in [(&mut p.buf1, "buf1"), (&mut p.buf2, "buf2")] {
                if let Some(t) = tensors.get(&format!("{prefix}{which}/{}", p.name)) {
                    if t.size() != p.tensor.size() {
                        return Err(TrainError::Config(format!(
                            "checkpoint {which} of '{}' has shape {:?}, the variable {:?}",
                            p.name,
                            t.size(),
                            p.tensor.size()
                        )));
                    }
                    *slot = Some(
                        t.to_device(p.tensor.device())
                            .to_kind(p.tensor.kind())
                            .detach()
                            .copy(),
                    );
                }
            }
        }
        Ok(())
    }
}
