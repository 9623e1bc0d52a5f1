//! The loss terms of the paper's first model (§4.1), on logits at the network's output stride.
//!
//! * Resizing: for CE, logits are resized bilinearly with `align_corners = true` to the label
//!   size, as FDA's `model/deeplab.py` does (`nn.functional.interpolate(..., mode='bilinear',
//!   align_corners=True)` before `CrossEntropy2d`). FDA computes its entropy *before* that
//!   upsampling, on the stride-8 `layer5` logits; [`EntropyAt::Logits`] does the same,
//!   [`EntropyAt::Input`] upsamples to the input size first (for stride-1 networks the two are
//!   the same map).
//! * Precision: every term is computed in fp32 (logits cast up, autocast off inside), so a
//!   bf16/fp16 forward pass changes the network's arithmetic, not the losses'.
//! * Cross-entropy ignores label 255 and averages over the labelled pixels (PyTorch's
//!   `F.cross_entropy(..., ignore_index=255)`), except that a batch without a single labelled pixel
//!   gives 0 instead of PyTorch's NaN (a crop of pure void must not stop training).
//! * Entropy is FDA's Charbonnier form: per pixel `e = −Σ_c p_c log p_c / ln C`, loss
//!   `mean((e² + ε²)^η)`. The paper writes ε = 0.001; FDA's code adds 1e-8 (ε = 1e-4). The two
//!   differ by at most ~1e-6 relative for any entropy above 0.01; we default to the paper's value.
//!   FDA divides by the constant 2.9444 where we divide by `ln C` (= 2.944439 for C = 19): a
//!   relative difference of 1.3e-5 in `e`.

use serde::{Deserialize, Serialize};
use uda_models::tch::{Kind, Reduction, Tensor};

/// Where the entropy term is computed (the training recipe's `entropy_at`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntropyAt {
    /// On the network's own logits (stride 8 for DeepLabV2), as FDA's code.
    Logits,
    /// On the logits upsampled (bilinear, aligned corners) to the input size.
    Input,
}

/// The ignored label value.
pub const IGNORE_LABEL: i64 = 255;
/// Default Charbonnier ε (the paper's ρ(x) = (x² + 0.001²)^η).
pub const DEFAULT_CHARBONNIER_EPS: f64 = 1e-3;
/// Default Charbonnier exponent η (FDA's `ita` = 2.0).
pub const DEFAULT_ETA: f64 = 2.0;

/// Resizes `(B, C, h, w)` logits to `(B, C, height, width)` bilinearly with aligned corners
/// (a no-op when the size already matches).
pub fn upsample_to(logits: &Tensor, height: i64, width: i64) -> Tensor {
    let size = logits.size();
    if size.len() == 4 && size[2] == height && size[3] == width {
        return logits.shallow_clone();
    }
    logits.upsample_bilinear2d([height, width], true, None, None)
}

/// Mean cross-entropy of `(B, C, h, w)` logits against `(B, H, W)` int64 labels, logits first
/// resized to the label size; pixels labelled [`IGNORE_LABEL`] do not count.
pub fn segmentation_cross_entropy(logits: &Tensor, labels: &Tensor) -> Tensor {
    weighted_cross_entropy(logits, labels, None)
}

/// [`segmentation_cross_entropy`] with per-class `weights` (`(C,)` float, see
/// [`crate::class_weights`]): PyTorch's weighted mean, `Σ w_{y_i} · nll_i / Σ w_{y_i}` over the
/// labelled pixels; `None` is the unweighted mean.
pub fn weighted_cross_entropy(
    logits: &Tensor,
    labels: &Tensor,
    weights: Option<&Tensor>,
) -> Tensor {
    let logits = logits.to_kind(Kind::Float);
    uda_models::in_fp32(|| {
        let size = labels.size();
        let (h, w) = (size[size.len() - 2], size[size.len() - 1]);
        let up = upsample_to(&logits, h, w);
        let labels = labels.to_kind(Kind::Int64);
        let sum = up.cross_entropy_loss(&labels, weights, Reduction::Sum, IGNORE_LABEL, 0.0);
        let labelled = labels.ne(IGNORE_LABEL);
        let total = match weights {
            None => labelled.sum(Kind::Float).clamp_min(1.0),
            // Σ of the labelled pixels' class weights.
            Some(w) => w
                .index_select(0, &labels.masked_select(&labelled))
                .sum(Kind::Float)
                .clamp_min(f64::from(f32::MIN_POSITIVE)),
        };
        sum / total
    })
}

/// Per-pixel entropy of the softmax over dim 1, divided by `ln C` so it lies in 0..1; `(B, H, W)`.
pub fn normalized_entropy(logits: &Tensor) -> Tensor {
    let classes = logits.size()[1];
    let logp = logits.log_softmax(1, Kind::Float);
    let p = logp.exp();
    -(p * logp).sum_dim_intlist(1, false, Kind::Float) / (classes as f64).ln()
}

/// FDA's robust (Charbonnier) entropy `mean((e² + ε²)^η)`, on the logits as they are
/// ([`EntropyAt::Logits`]) or resized to the input's `(height, width)` ([`EntropyAt::Input`]).
pub fn charbonnier_entropy(
    logits: &Tensor,
    at: EntropyAt,
    [height, width]: [i64; 2],
    eta: f64,
    eps: f64,
) -> Tensor {
    let logits = logits.to_kind(Kind::Float);
    uda_models::in_fp32(|| {
        let e = match at {
            EntropyAt::Logits => normalized_entropy(&logits),
            EntropyAt::Input => normalized_entropy(&upsample_to(&logits, height, width)),
        };
        (e.square() + eps * eps)
            .pow_tensor_scalar(eta)
            .mean(Kind::Float)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use uda_models::tch::Device;

    #[test]
    fn uniform_logits_have_entropy_one_and_peaked_near_zero() {
        let flat = Tensor::zeros([1, 19, 2, 3], (Kind::Float, Device::Cpu));
        let e = normalized_entropy(&flat);
        assert!((e.mean(Kind::Float).double_value(&[]) - 1.0).abs() < 1e-6);
        let peaked = Tensor::zeros([1, 19, 2, 3], (Kind::Float, Device::Cpu));
        let _ = peaked.narrow(1, 4, 1).fill_(50.0);
        assert!(normalized_entropy(&peaked).max().double_value(&[]) < 1e-6);
        let l = charbonnier_entropy(&flat, EntropyAt::Input, [2, 3], 2.0, 1e-3).double_value(&[]);
        assert!((l - (1.0f64 + 1e-6).powi(2)).abs() < 1e-5, "{l}");
    }

    #[test]
    fn entropy_at_logits_ignores_the_input_size_and_input_upsamples() {
        let logits = Tensor::randn([1, 19, 3, 4], (Kind::Float, Device::Cpu)) * 3.0;
        let at_logits = charbonnier_entropy(&logits, EntropyAt::Logits, [17, 25], 2.0, 1e-4);
        let direct = (normalized_entropy(&logits).square() + 1e-8)
            .pow_tensor_scalar(2.0)
            .mean(Kind::Float);
        assert!(at_logits.allclose(&direct, 0.0, 0.0, false));
        let at_input = charbonnier_entropy(&logits, EntropyAt::Input, [17, 25], 2.0, 1e-4);
        let up = logits.upsample_bilinear2d([17, 25], true, None, None);
        let want = (normalized_entropy(&up).square() + 1e-8)
            .pow_tensor_scalar(2.0)
            .mean(Kind::Float);
        assert!(at_input.allclose(&want, 0.0, 0.0, false));
        assert!((at_input.double_value(&[]) - at_logits.double_value(&[])).abs() > 1e-6);
    }

    /// Reduced-precision logits (a bf16 forward pass) are scored in fp32, under autocast too:
    /// the losses equal those of the same values upcast by hand.
    #[test]
    fn losses_of_bf16_logits_are_computed_in_fp32() {
        let logits = (Tensor::randn([1, 19, 4, 5], (Kind::Float, Device::Cpu)) * 3.0)
            .to_kind(Kind::BFloat16);
        let labels = Tensor::randint(19, [1, 16, 20], (Kind::Int64, Device::Cpu));
        let up = logits.to_kind(Kind::Float);
        let (ce_ref, ent_ref) = (
            segmentation_cross_entropy(&up, &labels),
            charbonnier_entropy(&up, EntropyAt::Input, [16, 20], 2.0, 1e-3),
        );
        let (ce, ent) =
            uda_models::with_precision(Device::Cpu, uda_models::Precision::Bf16, || {
                (
                    segmentation_cross_entropy(&logits, &labels),
                    charbonnier_entropy(&logits, EntropyAt::Input, [16, 20], 2.0, 1e-3),
                )
            });
        assert_eq!((ce.kind(), ent.kind()), (Kind::Float, Kind::Float));
        assert!(ce.equal(&ce_ref) && ent.equal(&ent_ref), "{ce} {ent}");
    }

    #[test]
    fn all_ignored_labels_give_zero_not_nan() {
        let logits = Tensor::randn([2, 19, 3, 4], (Kind::Float, Device::Cpu));
        let labels = Tensor::full([2, 6, 8], IGNORE_LABEL, (Kind::Int64, Device::Cpu));
        let l = segmentation_cross_entropy(&logits, &labels).double_value(&[]);
        assert_eq!(l, 0.0);
    }

    #[test]
    fn weighted_cross_entropy_is_the_weighted_mean_over_labelled_pixels() {
        let logits = Tensor::randn([2, 4, 3, 3], (Kind::Float, Device::Cpu));
        let labels = Tensor::from_slice(&[0i64, 1, 2, 3, 255, 1, 1, 0, 2])
            .repeat([2])
            .view([2, 3, 3]);
        let w = Tensor::from_slice(&[1.0f32, 2.0, 0.5, 4.0]);
        let got = weighted_cross_entropy(&logits, &labels, Some(&w)).double_value(&[]);
        // By hand: -log softmax at the label, weighted, over the 16 labelled pixels.
        let logp = logits.log_softmax(1, Kind::Float);
        let (mut num, mut den) = (0.0, 0.0);
        for b in 0..2 {
            for y in 0..3 {
                for x in 0..3 {
                    let l = labels.int64_value(&[b, y, x]);
                    if l == 255 {
                        continue;
                    }
                    let wl = w.double_value(&[l]);
                    num -= wl * logp.double_value(&[b, l, y, x]);
                    den += wl;
                }
            }
        }
        assert!((got - num / den).abs() < 1e-5, "{got} vs {}", num / den);
        // PyTorch's own weighted mean (F.cross_entropy(weight=w, ignore_index=255)).
        let torch = logits
            .cross_entropy_loss(&labels, Some(&w), Reduction::Mean, IGNORE_LABEL, 0.0)
            .double_value(&[]);
        assert!((got - torch).abs() < 1e-5, "{got} vs torch {torch}");
        // Unit weights are the unweighted mean.
        let ones = Tensor::ones([4], (Kind::Float, Device::Cpu));
        let plain = segmentation_cross_entropy(&logits, &labels).double_value(&[]);
        let unit = weighted_cross_entropy(&logits, &labels, Some(&ones)).double_value(&[]);
        assert!((plain - unit).abs() < 1e-6);
        // No labelled pixel: 0, not NaN.
        let void = Tensor::full([1, 3, 3], 255i64, (Kind::Int64, Device::Cpu));
        let z = weighted_cross_entropy(&logits.narrow(0, 0, 1), &void, Some(&w)).double_value(&[]);
        assert_eq!(z, 0.0);
    }

    #[test]
    fn perfect_prediction_has_low_cross_entropy() {
        let labels = Tensor::from_slice(&[0i64, 1, 2, 3]).view([1, 2, 2]);
        let logits = labels
            .one_hot(19)
            .permute([0, 3, 1, 2])
            .to_kind(Kind::Float)
            * 30.0;
        assert!(segmentation_cross_entropy(&logits, &labels).double_value(&[]) < 1e-6);
    }
}
