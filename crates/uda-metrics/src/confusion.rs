//! The 19-class confusion matrix and its accumulation.
//!
//! Rows are ground-truth train ids `0..=18`; columns are predicted train ids `0..=18` plus one
//! more column, [`OTHER`], for predictions outside the 19 classes (255, or any value `19..=254`).
//! Ground-truth pixels equal to 255 are not counted anywhere. Ground-truth values `19..=254`
//! are an error: they mean a label-id map was passed where train ids were expected.
//!
//! Why the [`OTHER`] column: the official `cityscapesscripts` evaluation keeps a matrix over all
//! label ids, so a pixel whose ground truth is an evaluated class but whose prediction is a
//! non-evaluated label (e.g. "unlabeled", "parking") lands in that class's row outside the
//! evaluated columns. It is thereby a false negative of the ground-truth class and a false
//! positive of nothing. Keeping those pixels in their own column reproduces exactly that, where a
//! plain 19×19 `fast_hist` would silently drop them (and so overstate IoU).
//!
//! Accumulation is a histogram of `row * 20 + column` with `row = min(gt, 19)` and
//! `column = min(pred, 19)`, so ground truth 255 lands in a discard row 19 (values 19..=254 are
//! caught by a separate "any invalid" reduction, and only then named by a slow rescan). Bin
//! indices are computed 256 pixels at a time in a branch-free loop the compiler vectorises; the
//! scatter into the histogram then rotates over sixteen sub-histograms of `u16` counters, so runs of
//! one class (the common case in label maps) increment different memory words instead of each
//! waiting on the previous store to the same counter. All of it is safe, portable Rust; see
//! `scripts/bench/confusion.sh` for the comparison with numpy's `fast_hist`.

use crate::error::{MetricsError, Result};
use rayon::prelude::*;
use uda_data::classes::{IGNORE, NUM_CLASSES};

/// Column of predictions outside the 19 classes.
pub const OTHER: usize = NUM_CLASSES;
/// Columns of the matrix: the 19 classes and [`OTHER`].
pub const COLUMNS: usize = NUM_CLASSES + 1;

/// Row of ground truth 255 (and, before the validity check fails, of values 19..=254).
const DISCARD_ROW: usize = NUM_CLASSES;
/// Histogram size: a power of two above 20 × 20, so `index & (BINS - 1)` proves the index in
/// bounds and the compiler drops the bounds check from the scatter loop.
const BINS: usize = 512;
/// Sub-histograms the scatter rotates over (16 × 512 `u16` = 16 KiB, well inside L1).
const LANES: usize = 16;
/// Pixels whose bin indices are computed in one vectorised pass.
const CHUNK: usize = 256;
/// Chunks after which the `u16` sub-histograms are added into `u64` totals: each chunk adds at
/// most `CHUNK / LANES` to a counter, so none can overflow in between.
const FLUSH_CHUNKS: usize = u16::MAX as usize / (CHUNK / LANES);
/// Pixels per parallel work item in [`ConfusionMatrix::from_pairs_par`].
const PIECE: usize = 1 << 20;

#[inline(always)]
fn bin(gt: u8, pred: u8) -> u16 {
    u16::from(gt.min(NUM_CLASSES as u8)) * COLUMNS as u16 + u16::from(pred.min(OTHER as u8))
}

#[inline(always)]
fn invalid_gt(gt: u8) -> u8 {
    u8::from(gt >= NUM_CLASSES as u8 && gt != IGNORE)
}

fn flush(local: &mut [[u16; BINS]; LANES], bins: &mut [u64; BINS]) {
    for lane in local.iter_mut() {
        for (total, n) in bins.iter_mut().zip(lane.iter_mut()) {
            *total += u64::from(*n);
            *n = 0;
        }
    }
}

/// Adds the histogram of `(gt, pred)` bins to `bins` (`gt.len() == pred.len()`); returns whether
/// some ground-truth value was neither a class nor 255.
fn histogram(gt: &[u8], pred: &[u8], bins: &mut [u64; BINS]) -> bool {
    debug_assert_eq!(gt.len(), pred.len());
    let mut invalid = 0u8;
    let mut idx = [0u16; CHUNK];
    let mut local = [[0u16; BINS]; LANES];
    let g_chunks = gt.chunks_exact(CHUNK);
    let p_chunks = pred.chunks_exact(CHUNK);
    let (g_rest, p_rest) = (g_chunks.remainder(), p_chunks.remainder());
    for (n, (g, p)) in g_chunks.zip(p_chunks).enumerate() {
        // Fixed-size views let the compiler vectorise the index loop without length checks.
        let g: &[u8; CHUNK] = g.try_into().expect("chunks_exact yields CHUNK bytes");
        let p: &[u8; CHUNK] = p.try_into().expect("chunks_exact yields CHUNK bytes");
        for ((i, &g), &p) in idx.iter_mut().zip(g).zip(p) {
            *i = bin(g, p);
            invalid |= invalid_gt(g);
        }
        for q in idx.chunks_exact(LANES) {
            let q: &[u16; LANES] = q.try_into().expect("CHUNK is a multiple of LANES");
            for (lane, &i) in local.iter_mut().zip(q) {
                lane[usize::from(i) & (BINS - 1)] += 1;
            }
        }
        if (n + 1) % FLUSH_CHUNKS == 0 {
            flush(&mut local, bins);
        }
    }
    flush(&mut local, bins);
    for (&g, &p) in g_rest.iter().zip(p_rest) {
        bins[usize::from(bin(g, p)) & (BINS - 1)] += 1;
        invalid |= invalid_gt(g);
    }
    invalid != 0
}

/// Ground-truth rows × (19 classes + [`OTHER`]) pixel counts, plus the number of ignored pixels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfusionMatrix {
    counts: [[u64; COLUMNS]; NUM_CLASSES],
    ignored: u64,
}

impl Default for ConfusionMatrix {
    fn default() -> Self {
        Self::new()
    }
}

impl ConfusionMatrix {
    pub fn new() -> Self {
        Self {
            counts: [[0; COLUMNS]; NUM_CLASSES],
            ignored: 0,
        }
    }

    /// The matrix with these [`ConfusionMatrix::rows`] and [`ConfusionMatrix::ignored_pixels`]:
    /// how a matrix saved elsewhere (a sharded evaluation's per-image counts) is read back.
    pub fn from_counts(counts: [[u64; COLUMNS]; NUM_CLASSES], ignored: u64) -> Self {
        Self { counts, ignored }
    }

    /// The matrix of one pair of train-id maps (same length, row-major, any shape).
    pub fn from_maps(gt: &[u8], pred: &[u8]) -> Result<Self> {
        let mut m = Self::new();
        m.accumulate(gt, pred)?;
        Ok(m)
    }

    /// Adds one pair of train-id maps. On error (length mismatch, invalid ground truth) the
    /// matrix is unchanged.
    pub fn accumulate(&mut self, gt: &[u8], pred: &[u8]) -> Result<()> {
        if gt.len() != pred.len() {
            return Err(MetricsError::LengthMismatch {
                gt: gt.len(),
                pred: pred.len(),
            });
        }
        let mut bins = [0u64; BINS];
        let invalid = histogram(gt, pred, &mut bins);
        self.add_bins(&bins, invalid, || gt.to_vec())
    }

    /// The summed matrix of many pairs, computed in parallel (rayon) over pieces of at most
    /// 2^20 pixels, so one large map and many small ones both spread over all threads.
    pub fn from_pairs_par(pairs: &[(&[u8], &[u8])]) -> Result<Self> {
        if let Some((g, p)) = pairs.iter().find(|(g, p)| g.len() != p.len()) {
            return Err(MetricsError::LengthMismatch {
                gt: g.len(),
                pred: p.len(),
            });
        }
        let pieces: Vec<(&[u8], &[u8])> = pairs
            .iter()
            .flat_map(|(g, p)| g.chunks(PIECE).zip(p.chunks(PIECE)))
            .collect();
        let (bins, invalid) = pieces
            .par_iter()
            .fold(
                || (Box::new([0u64; BINS]), false),
                |(mut acc, invalid), (g, p)| {
                    let bad = histogram(g, p, &mut acc);
                    (acc, invalid | bad)
                },
            )
            .reduce(
                || (Box::new([0u64; BINS]), false),
                |(mut a, ia), (b, ib)| {
                    a.iter_mut().zip(b.iter()).for_each(|(x, y)| *x += y);
                    (a, ia | ib)
                },
            );
        let mut m = Self::new();
        m.add_bins(&bins, invalid, || {
            pairs.iter().flat_map(|(g, _)| g.iter().copied()).collect()
        })?;
        Ok(m)
    }

    /// Moves histogram bins into the matrix, or reports invalid ground truth (`gt` is only
    /// called then, to name the offending values).
    fn add_bins(
        &mut self,
        bins: &[u64; BINS],
        invalid: bool,
        gt: impl FnOnce() -> Vec<u8>,
    ) -> Result<()> {
        if invalid {
            let mut seen = [0u64; 256];
            for v in gt() {
                seen[v as usize] += 1;
            }
            let bad = NUM_CLASSES..IGNORE as usize;
            let values = bad
                .clone()
                .filter(|&v| seen[v] > 0)
                .map(|v| v as u8)
                .collect();
            return Err(MetricsError::InvalidGroundTruth {
                values,
                pixels: seen[bad].iter().sum(),
            });
        }
        for (row, counts) in self.counts.iter_mut().enumerate() {
            for (col, c) in counts.iter_mut().enumerate() {
                *c += bins[row * COLUMNS + col];
            }
        }
        self.ignored += bins[DISCARD_ROW * COLUMNS..(DISCARD_ROW + 1) * COLUMNS]
            .iter()
            .sum::<u64>();
        Ok(())
    }

    /// Adds another matrix (e.g. one image's) to this one.
    pub fn merge(&mut self, other: &Self) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
        self.ignored += other.ignored;
    }

    /// Pixels with ground truth `gt` (0..=18) predicted as `pred` (0..=18, or [`OTHER`]).
    pub fn count(&self, gt: usize, pred: usize) -> u64 {
        self.counts[gt][pred]
    }

    /// The matrix rows (ground truth) × columns (19 classes, then [`OTHER`]).
    pub fn rows(&self) -> &[[u64; COLUMNS]; NUM_CLASSES] {
        &self.counts
    }

    /// Ground-truth pixels equal to 255 (not evaluated).
    pub fn ignored_pixels(&self) -> u64 {
        self.ignored
    }

    /// Evaluated pixels (ground truth in 0..=18).
    pub fn valid_pixels(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    /// Evaluated pixels predicted as [`OTHER`] (outside the 19 classes).
    pub fn other_pixels(&self) -> u64 {
        self.counts.iter().map(|r| r[OTHER]).sum()
    }

    pub fn true_positives(&self, class: usize) -> u64 {
        self.counts[class][class]
    }

    /// Evaluated pixels of another class predicted as `class`.
    pub fn false_positives(&self, class: usize) -> u64 {
        (0..NUM_CLASSES)
            .filter(|&r| r != class)
            .map(|r| self.counts[r][class])
            .sum()
    }

    /// Pixels of `class` predicted as anything else, [`OTHER`] included.
    pub fn false_negatives(&self, class: usize) -> u64 {
        self.counts[class].iter().sum::<u64>() - self.counts[class][class]
    }

    /// Correct pixels over evaluated pixels; `None` when nothing was evaluated.
    pub fn pixel_accuracy(&self) -> Option<f64> {
        let valid = self.valid_pixels();
        let correct: u64 = (0..NUM_CLASSES).map(|c| self.counts[c][c]).sum();
        (valid > 0).then(|| correct as f64 / valid as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward per-pixel reference of the documented semantics.
    fn naive(gt: &[u8], pred: &[u8]) -> ([[u64; COLUMNS]; NUM_CLASSES], u64) {
        let mut m = [[0u64; COLUMNS]; NUM_CLASSES];
        let mut ignored = 0;
        for (&g, &p) in gt.iter().zip(pred) {
            if g == IGNORE {
                ignored += 1;
                continue;
            }
            let col = if (p as usize) < NUM_CLASSES {
                p as usize
            } else {
                OTHER
            };
            m[g as usize][col] += 1;
        }
        (m, ignored)
    }

    fn random_maps(n: usize, seed: u64) -> (Vec<u8>, Vec<u8>) {
        let mut s = seed;
        let mut next = move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 33) as u32
        };
        let mut gt = Vec::with_capacity(n);
        let mut pred = Vec::with_capacity(n);
        let mut run_class = 0u8;
        for i in 0..n {
            // Runs of one class (as in real maps) with some ignore and some stray predictions.
            if i % 37 == 0 {
                run_class = if next() % 8 == 0 {
                    IGNORE
                } else {
                    (next() % 19) as u8
                };
            }
            gt.push(run_class);
            let r = next() % 100;
            pred.push(match r {
                0..=59 => run_class,
                60..=89 => (next() % 19) as u8,
                90..=94 => IGNORE,
                _ => (19 + next() % 236) as u8,
            });
        }
        (gt, pred)
    }

    #[test]
    fn matches_naive_counting_including_other_predictions() {
        for (n, seed) in [(0, 1), (1, 2), (3, 3), (4, 4), (1001, 5), (70_001, 6)] {
            let (gt, pred) = random_maps(n, seed);
            let m = ConfusionMatrix::from_maps(&gt, &pred).unwrap();
            let (counts, ignored) = naive(&gt, &pred);
            assert_eq!(m.rows(), &counts, "n = {n}");
            assert_eq!(m.ignored_pixels(), ignored);
            assert_eq!(m.valid_pixels() + m.ignored_pixels(), n as u64);
            assert_eq!(
                ConfusionMatrix::from_counts(*m.rows(), m.ignored_pixels()),
                m,
                "read back from its counts"
            );
        }
    }

    #[test]
    fn long_runs_of_one_bin_do_not_overflow_the_u16_counters() {
        // Every lane counter would pass 65535 without the periodic flush.
        let n = 3 * FLUSH_CHUNKS * CHUNK + 5;
        let m = ConfusionMatrix::from_maps(&vec![4; n], &vec![4; n]).unwrap();
        assert_eq!(m.count(4, 4), n as u64);
        assert_eq!(m.valid_pixels(), n as u64);
    }

    #[test]
    fn parallel_pieces_sum_to_the_serial_matrix() {
        let (g1, p1) = random_maps(3 * PIECE + 17, 7);
        let (g2, p2) = random_maps(999, 8);
        let par = ConfusionMatrix::from_pairs_par(&[(&g1, &p1), (&g2, &p2)]).unwrap();
        let mut serial = ConfusionMatrix::from_maps(&g1, &p1).unwrap();
        serial.merge(&ConfusionMatrix::from_maps(&g2, &p2).unwrap());
        assert_eq!(par, serial);
    }

    #[test]
    fn other_predictions_are_false_negatives_only() {
        // gt: road, road, car, 255; pred: road, 255 (no class), 40 (not a train id), car.
        let m = ConfusionMatrix::from_maps(&[0, 0, 13, 255], &[0, 255, 40, 13]).unwrap();
        assert_eq!(m.count(0, OTHER), 1);
        assert_eq!(m.count(13, OTHER), 1);
        assert_eq!(m.other_pixels(), 2);
        assert_eq!(
            (
                m.true_positives(0),
                m.false_positives(0),
                m.false_negatives(0)
            ),
            (1, 0, 1)
        );
        assert_eq!(
            (
                m.true_positives(13),
                m.false_positives(13),
                m.false_negatives(13)
            ),
            (0, 0, 1)
        );
        // The ignored pixel predicted as car is no false positive of car.
        assert_eq!(m.ignored_pixels(), 1);
        assert_eq!(m.valid_pixels(), 3);
        assert_eq!(m.pixel_accuracy(), Some(1.0 / 3.0));
    }

    #[test]
    fn errors_leave_the_matrix_unchanged() {
        let mut m = ConfusionMatrix::from_maps(&[1, 2], &[1, 1]).unwrap();
        let before = m.clone();
        let e = m.accumulate(&[1, 2, 3], &[1, 2]).unwrap_err();
        assert!(
            matches!(e, MetricsError::LengthMismatch { gt: 3, pred: 2 }),
            "{e}"
        );
        // Label ids (26 = car) in place of train ids.
        let e = m.accumulate(&[26, 7, 26, 255, 0], &[0; 5]).unwrap_err();
        match &e {
            MetricsError::InvalidGroundTruth { values, pixels } => {
                assert_eq!((values.as_slice(), *pixels), (&[26u8][..], 2));
            }
            other => panic!("unexpected {other}"),
        }
        assert!(e.to_string().contains("LABEL_TO_TRAIN"), "{e}");
        assert_eq!(m, before);
        let e = ConfusionMatrix::from_pairs_par(&[(&[19, 0], &[0, 0])]).unwrap_err();
        assert!(matches!(e, MetricsError::InvalidGroundTruth { .. }), "{e}");
        // Also caught inside the vectorised chunks (not only in the remainder).
        let mut gt = vec![3u8; 1000];
        gt[300] = 200;
        let e = ConfusionMatrix::from_maps(&gt, &[3; 1000]).unwrap_err();
        assert!(
            matches!(&e, MetricsError::InvalidGroundTruth { values, pixels: 1 } if values == &[200]),
            "{e}"
        );
        let e = ConfusionMatrix::from_pairs_par(&[(&gt, &[3; 1000])]).unwrap_err();
        assert!(matches!(e, MetricsError::InvalidGroundTruth { .. }), "{e}");
    }

    #[test]
    fn empty_matrix_has_no_accuracy() {
        let m = ConfusionMatrix::from_maps(&[255, 255], &[0, 1]).unwrap();
        assert_eq!(m.valid_pixels(), 0);
        assert_eq!(m.pixel_accuracy(), None);
    }
}
