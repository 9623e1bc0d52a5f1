//! IoU per class and the mean IoUs reported in the literature.
//!
//! `IoU_c = TP / (TP + FP + FN)`, undefined (`None`) when `TP + FP + FN = 0`, i.e. the class
//! appears neither in the ground truth nor in the predictions. FN includes pixels predicted
//! outside the 19 classes (see [`crate::confusion`]); FP counts only evaluated ground-truth
//! pixels. This is the official Cityscapes definition, so per-class values equal
//! `cityscapesscripts`' exactly (same integer counts, same single division).
//!
//! Means are over the classes whose IoU is defined, summed in train-id order (as the official
//! script's average). `miou16` drops train ids 9, 14, 16 (terrain, truck, train) and `miou13`
//! also 3, 4, 5 (wall, fence, pole): the subsets FDA reports for SYNTHIA comparisons. FDA's
//! script takes a plain `np.mean` over the subset, which is NaN when one of them is undefined;
//! here undefined classes are skipped as for `miou` (identical whenever all are defined, as on
//! Cityscapes val).

use crate::confusion::ConfusionMatrix;
use uda_data::classes::{CLASSES, NUM_CLASSES};

/// Train ids left out of `miou16`.
pub const MIOU16_DROPPED: [u8; 3] = [9, 14, 16];
/// Train ids left out of `miou13`.
pub const MIOU13_DROPPED: [u8; 6] = [3, 4, 5, 9, 14, 16];

/// One class's counts and IoU.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClassScore {
    pub class_id: u8,
    pub name: &'static str,
    pub iou: Option<f64>,
    pub tp: u64,
    pub fp: u64,
    pub fn_: u64,
}

/// Everything derived from one confusion matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    pub classes: [ClassScore; NUM_CLASSES],
    pub miou: Option<f64>,
    pub miou16: Option<f64>,
    pub miou13: Option<f64>,
    pub pixel_accuracy: Option<f64>,
    /// Ground-truth pixels evaluated (not 255).
    pub valid_pixels: u64,
    /// Evaluated pixels predicted outside the 19 classes.
    pub other_pixels: u64,
    /// Classes whose IoU is defined.
    pub defined_classes: usize,
}

/// Mean of the defined values among `ious` whose class is not in `dropped`.
pub fn mean_iou(ious: &[Option<f64>; NUM_CLASSES], dropped: &[u8]) -> Option<f64> {
    let (sum, n) = ious
        .iter()
        .enumerate()
        .filter(|(c, _)| !dropped.contains(&(*c as u8)))
        .filter_map(|(_, v)| *v)
        .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

impl ConfusionMatrix {
    pub fn class_score(&self, class: usize) -> ClassScore {
        let (tp, fp, fn_) = (
            self.true_positives(class),
            self.false_positives(class),
            self.false_negatives(class),
        );
        let denom = tp + fp + fn_;
        ClassScore {
            class_id: class as u8,
            name: CLASSES[class].name,
            iou: (denom > 0).then(|| tp as f64 / denom as f64),
            tp,
            fp,
            fn_,
        }
    }

    pub fn ious(&self) -> [Option<f64>; NUM_CLASSES] {
        std::array::from_fn(|c| self.class_score(c).iou)
    }

    pub fn scores(&self) -> Scores {
        let classes: [ClassScore; NUM_CLASSES] = std::array::from_fn(|c| self.class_score(c));
        let ious = classes.map(|c| c.iou);
        Scores {
            classes,
            miou: mean_iou(&ious, &[]),
            miou16: mean_iou(&ious, &MIOU16_DROPPED),
            miou13: mean_iou(&ious, &MIOU13_DROPPED),
            pixel_accuracy: self.pixel_accuracy(),
            valid_pixels: self.valid_pixels(),
            other_pixels: self.other_pixels(),
            defined_classes: ious.iter().flatten().count(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_by_hand() {
        // road: gt 4 px (3 right, 1 as sidewalk); sidewalk: gt 2 px (1 right, 1 as OTHER);
        // one ignored pixel predicted road (not a false positive).
        let gt = [0, 0, 0, 0, 1, 1, 255];
        let pred = [0, 0, 0, 1, 1, 200, 0];
        let m = ConfusionMatrix::from_maps(&gt, &pred).unwrap();
        let s = m.scores();
        let road = s.classes[0];
        assert_eq!((road.tp, road.fp, road.fn_), (3, 0, 1));
        assert_eq!(road.iou, Some(0.75));
        let sw = s.classes[1];
        assert_eq!((sw.tp, sw.fp, sw.fn_), (1, 1, 1));
        assert_eq!(sw.iou, Some(1.0 / 3.0));
        assert_eq!(s.classes[2].iou, None);
        assert_eq!(s.defined_classes, 2);
        assert_eq!(s.miou, Some((0.75 + 1.0 / 3.0) / 2.0));
        assert_eq!(s.pixel_accuracy, Some(4.0 / 6.0));
        assert_eq!((s.valid_pixels, s.other_pixels), (6, 1));
        assert_eq!(s.classes[13].name, "car");
    }

    #[test]
    fn subset_means_drop_the_fda_classes() {
        let mut ious = [Some(1.0); NUM_CLASSES];
        for c in MIOU13_DROPPED {
            ious[c as usize] = Some(0.0);
        }
        // 13 ones and 6 zeros: miou 13/19; miou16 keeps wall, fence, pole (zeros): 13/16.
        assert_eq!(mean_iou(&ious, &[]), Some(13.0 / 19.0));
        assert_eq!(mean_iou(&ious, &MIOU16_DROPPED), Some(13.0 / 16.0));
        assert_eq!(mean_iou(&ious, &MIOU13_DROPPED), Some(1.0));
        // Undefined classes are skipped, and nothing defined gives None.
        ious[0] = None;
        assert_eq!(mean_iou(&ious, &MIOU13_DROPPED), Some(1.0));
        assert_eq!(mean_iou(&[None; NUM_CLASSES], &[]), None);
        assert_eq!(ConfusionMatrix::new().scores().miou, None);
    }
}
