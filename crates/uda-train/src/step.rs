//! The loss terms of one training step of FDA's `train.py` (and of the paper's first model,
//! which is the same step on grayscale images), in one place so the `pretrain` stage and the
//! parity test against a PyTorch transcription of that step run the same code.
//!
//! FDA's step, per iteration: a source batch through the network in training mode, CE after
//! upsampling to the labels; a target batch through the same network in training mode, robust
//! entropy; `loss = CE + λ_ent · entropy` once `i > switch2entropy`. Both passes are separate
//! forward calls, so under [`uda_models::BatchNormMode::Fda`] each normalises with its own batch
//! statistics and each moves the running statistics.

use crate::StepLosses;
use crate::losses::weighted_cross_entropy;
use crate::recipe::TrainRecipe;
use uda_models::SegNet;
use uda_models::tch::Tensor;

/// `source`: network input `(B, 3, H, W)` with `labels` `(B, H, W)` and the CE's optional class
/// weights (the recipe's `class_weights`, from [`crate::Session::class_weights`]); `target`: target
/// network input when the recipe has an entropy term. Terms: `ce` (weight 1) and `ent` (weight
/// `lambda_ent` from iteration `ent_start` on, 0 before, so the column is logged throughout).
pub fn fda_step_losses(
    net: &SegNet,
    recipe: &TrainRecipe,
    it: u64,
    (source, labels, class_weights): (&Tensor, &Tensor, Option<&Tensor>),
    target: Option<&Tensor>,
) -> StepLosses {
    let out = net.forward_t(source, true);
    let ce = weighted_cross_entropy(&out.logits, labels, class_weights);
    let mut losses = StepLosses::new().with("ce", 1.0, ce);
    if let Some(target) = target {
        let out_t = net.forward_t(target, true);
        let weight = if it >= recipe.ent_start {
            recipe.lambda_ent
        } else {
            0.0
        };
        losses.push("ent", weight, recipe.entropy(&out_t.logits, target));
    }
    losses
}
