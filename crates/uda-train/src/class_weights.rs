//! Class weights of the supervised cross-entropy (the recipe's `class_weights`).
//!
//! Unweighted CE learns the frequent classes first; on a short run the thin, rare ones (poles,
//! lights, signs, persons) can stay at 0 IoU even for a model trained on the target itself. ENet's
//! paper weights its CE for this reason [Paszke et al., "ENet", 2016, §5.2]:
//! `w_c = 1 / ln(c + p_c)` with `c = 1.02`, `p_c` the class's share of the labelled pixels of the
//! training set, which keeps every weight within about `[1.4, 50.5]`. The weights are computed
//! once, at the start of a training, from the labels the CE term reads (the source's; the target's
//! for a model trained on the labelled target), never from evaluation labels.
//!
//! The weighted mean follows PyTorch's `F.cross_entropy(weight=w, ignore_index=255)`:
//! `Σ w_{y_i} · nll_i / Σ w_{y_i}` over the labelled pixels.

use crate::TrainError;
use crate::source::SampleSource;
use serde::{Deserialize, Serialize};
use uda_data::classes::NUM_CLASSES;
use uda_models::tch::{Device, Kind, Tensor};

/// ENet's constant `c` in `1 / ln(c + p)`.
pub const ENET_C: f64 = 1.02;

/// How the supervised cross-entropy weights its classes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClassWeighting {
    /// Every labelled pixel counts the same (FDA's and the paper's training).
    #[default]
    None,
    /// ENet's `1 / ln(1.02 + p_c)` from the training labels' class frequencies.
    Enet,
}

impl ClassWeighting {
    /// The name a pipeline file writes.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Enet => "enet",
        }
    }

    /// The per-class weights for CE on `labels`' label maps, or `None` when unweighted.
    ///
    /// # Errors
    /// When a label map cannot be read.
    pub fn weights(self, labels: &dyn SampleSource) -> Result<Option<Vec<f64>>, TrainError> {
        match self {
            Self::None => Ok(None),
            Self::Enet => Ok(Some(enet_weights(&class_frequencies(labels)?))),
        }
    }
}

/// Each class's share of the labelled pixels (label 255 and ids ≥ 19 do not count) over every
/// label map of `labels`.
///
/// # Errors
/// When a label map cannot be read.
pub fn class_frequencies(labels: &dyn SampleSource) -> Result<[f64; NUM_CLASSES], TrainError> {
    let (h, w) = labels.size();
    let mut buf = vec![0u8; h * w];
    let mut counts = [0u64; NUM_CLASSES];
    for i in 0..labels.len() {
        labels.read_label(i, &mut buf)?;
        for &l in &buf {
            if let Some(c) = counts.get_mut(usize::from(l)) {
                *c += 1;
            }
        }
    }
    let total = counts.iter().sum::<u64>().max(1) as f64;
    Ok(counts.map(|c| c as f64 / total))
}

/// ENet's weights `1 / ln(1.02 + p_c)` for class frequencies `p`.
pub fn enet_weights(freq: &[f64]) -> Vec<f64> {
    freq.iter().map(|p| 1.0 / (ENET_C + p).ln()).collect()
}

/// The weights as a float tensor on `device`, as [`crate::losses::segmentation_cross_entropy`]
/// takes them.
pub fn weight_tensor(weights: &[f64], device: Device) -> Tensor {
    Tensor::from_slice(weights)
        .to_kind(Kind::Float)
        .to_device(device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::MemorySource;

    #[test]
    fn frequencies_count_labelled_pixels_only() {
        // 2 maps of 2×2: class 0 ×3, class 5 ×2, ignore ×2, an id past the classes ×1.
        let src = MemorySource {
            height: 2,
            width: 2,
            images: vec![0; 2 * 2 * 2 * 3],
            labels: Some(vec![0, 0, 5, 255, 0, 5, 255, 40]),
        };
        let f = class_frequencies(&src).unwrap();
        assert!(
            (f[0] - 0.6).abs() < 1e-12 && (f[5] - 0.4).abs() < 1e-12,
            "{f:?}"
        );
        assert_eq!(f.iter().filter(|&&p| p > 0.0).count(), 2);
    }

    #[test]
    fn enet_weights_are_bounded_and_favour_rare_classes() {
        let w = enet_weights(&[1.0, 0.5, 0.01, 0.0]);
        assert!((w[0] - 1.0 / 2.02f64.ln()).abs() < 1e-12);
        assert!((w[3] - 1.0 / 1.02f64.ln()).abs() < 1e-12, "{w:?}");
        assert!(w.windows(2).all(|p| p[0] < p[1]), "{w:?}");
        assert!(w[3] < 50.6 && w[0] > 1.4, "{w:?}");
    }

    #[test]
    fn none_gives_no_weights_and_enet_one_per_class() {
        let src = MemorySource {
            height: 1,
            width: 1,
            images: vec![0; 3],
            labels: Some(vec![3]),
        };
        assert_eq!(ClassWeighting::None.weights(&src).unwrap(), None);
        let w = ClassWeighting::Enet.weights(&src).unwrap().unwrap();
        assert_eq!(w.len(), NUM_CLASSES);
        assert!((w[3] - 1.0 / 2.02f64.ln()).abs() < 1e-12);
    }
}
