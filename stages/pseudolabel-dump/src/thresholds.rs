//! FDA's per-class confidence thresholds, computed in bounded memory.
//!
//! FDA (`getSudoLabel_multi.py`) collects, for each class, the confidences of every pixel
//! predicted as that class over the whole target set, sorts them and takes the element at index
//! `round(n · q)` (q = 0.66; numpy's round, half to even) as the threshold, caps it at 0.9, and
//! sets pixels whose confidence is below their class's threshold to 255.
//!
//! Holding every confidence of Cityscapes train (1.5 G pixels) is not an option, so confidences
//! are quantised to `round(255 · p)` (the `confidence.zarr` values) and counted in a 256-bin
//! histogram per class. The order statistic FDA picks is then read off the cumulative counts
//! exactly — the result equals FDA's rule applied to the quantised confidences (tested against
//! numpy), and differs from the rule on raw floats by at most one quantisation step (1/255).

use uda_data::classes::NUM_CLASSES;

/// Confidence levels: a stored confidence `q` means `p ≈ q / 255`.
pub const LEVELS: usize = 256;

/// Quantises a probability to its stored level.
pub fn quantize(p: f32) -> u8 {
    (p.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// Per-class histograms of quantised confidences of the pixels predicted as that class.
#[derive(Debug, Clone)]
pub struct ClassHistograms {
    counts: Vec<[u64; LEVELS]>,
}

impl Default for ClassHistograms {
    fn default() -> Self {
        Self {
            counts: vec![[0; LEVELS]; NUM_CLASSES],
        }
    }
}

impl ClassHistograms {
    /// Counts `pred` (train ids; values ≥ 19 are ignored) with their quantised `conf`.
    pub fn add(&mut self, pred: &[u8], conf: &[u8]) {
        assert_eq!(pred.len(), conf.len());
        for (&c, &q) in pred.iter().zip(conf) {
            if let Some(h) = self.counts.get_mut(c as usize) {
                h[q as usize] += 1;
            }
        }
    }

    /// Each class's counts per level (what a shard task records).
    pub fn counts(&self) -> &[[u64; LEVELS]] {
        &self.counts
    }

    /// Histograms with these [`ClassHistograms::counts`]; `None` unless there is one row per class.
    pub fn from_counts(counts: Vec<[u64; LEVELS]>) -> Option<Self> {
        (counts.len() == NUM_CLASSES).then_some(Self { counts })
    }

    pub fn merge(&mut self, other: &Self) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
    }

    /// Pixels predicted as `class`.
    pub fn total(&self, class: usize) -> u64 {
        self.counts[class].iter().sum()
    }

    /// The level at sorted position `round_half_even(n · q)` (clamped to the last element) of
    /// `class`'s confidences; `None` when the class was never predicted.
    pub fn fda_order_statistic(&self, class: usize, q: f64) -> Option<u8> {
        let n = self.total(class);
        if n == 0 {
            return None;
        }
        let rank = ((n as f64 * q).round_ties_even() as u64).min(n - 1);
        let mut seen = 0u64;
        for (level, &count) in self.counts[class].iter().enumerate() {
            seen += count;
            if seen > rank {
                return Some(level as u8);
            }
        }
        unreachable!("rank {rank} < n {n}")
    }
}

/// The kept-pixel rule for each class: a pixel of class `c` is kept when its quantised
/// confidence is at least `min_level[c]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// Threshold of each class in probability units (`None`: class never predicted).
    pub value: [Option<f64>; NUM_CLASSES],
    min_level: [u16; NUM_CLASSES],
}

impl Thresholds {
    /// FDA's thresholds: the `percentile` order statistic, capped at `cap` (both in 0..=1).
    pub fn fda(hist: &ClassHistograms, percentile: f64, cap: f64) -> Self {
        let mut value = [None; NUM_CLASSES];
        let mut min_level = [0u16; NUM_CLASSES];
        for c in 0..NUM_CLASSES {
            if let Some(level) = hist.fda_order_statistic(c, percentile) {
                let t = (level as f64 / 255.0).min(cap);
                value[c] = Some(t);
                // Smallest level q with q / 255 >= t (t is a level or the cap).
                min_level[c] = (0..=255u16)
                    .find(|&q| q as f64 / 255.0 >= t - 1e-12)
                    .unwrap_or(256);
            }
        }
        Self { value, min_level }
    }

    /// Pseudo-labels from predictions and their quantised confidences (255 where dropped).
    pub fn apply(&self, pred: &[u8], conf: &[u8], out: &mut [u8]) {
        for ((o, &c), &q) in out.iter_mut().zip(pred).zip(conf) {
            *o = match self.min_level.get(c as usize) {
                Some(&min) if q as u16 >= min => c,
                _ => 255,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_statistic_follows_fdas_index_rule() {
        let mut h = ClassHistograms::default();
        // Class 2: levels 10, 20, 30, 40 (n = 4): index round(4 · 0.66) = round(2.64) = 3 → 40.
        h.add(&[2, 2, 2, 2], &[30, 10, 40, 20]);
        assert_eq!(h.fda_order_statistic(2, 0.66), Some(40));
        // index round(4 · 0.5) = 2 → 30; round(4 · 0.625) = round(2.5) = 2 (half to even) → 30.
        assert_eq!(h.fda_order_statistic(2, 0.5), Some(30));
        assert_eq!(h.fda_order_statistic(2, 0.625), Some(30));
        // q = 1 clamps to the last element.
        assert_eq!(h.fda_order_statistic(2, 1.0), Some(40));
        assert_eq!(h.fda_order_statistic(3, 0.66), None);
        // Values ≥ 19 (ignore) are not counted.
        h.add(&[255, 19], &[1, 1]);
        assert_eq!(h.total(2), 4);
    }

    #[test]
    fn cap_and_apply_keep_pixels_at_or_above_the_threshold() {
        let mut h = ClassHistograms::default();
        h.add(&[0; 5], &[250, 251, 252, 253, 254]);
        h.add(&[1; 3], &[100, 110, 120]);
        let t = Thresholds::fda(&h, 0.66, 0.9);
        // Class 0's order statistic (253/255 = 0.992) is capped at 0.9 → levels ≥ 230 kept.
        assert_eq!(t.value[0], Some(0.9));
        assert_eq!(t.value[1], Some(120.0 / 255.0));
        assert_eq!(t.value[5], None);
        let pred = [0, 0, 1, 1, 5, 255];
        let conf = [229, 230, 119, 120, 255, 255];
        let mut out = [0u8; 6];
        t.apply(&pred, &conf, &mut out);
        // Class 5 has no threshold (never counted): kept, as FDA's threshold 0 for absent classes.
        assert_eq!(out, [255, 0, 255, 1, 5, 255]);
    }

    #[test]
    fn quantize_rounds_to_levels() {
        assert_eq!(quantize(0.0), 0);
        assert_eq!(quantize(1.0), 255);
        assert_eq!(quantize(0.5), 128);
        assert_eq!(quantize(1.5), 255);
    }
}
