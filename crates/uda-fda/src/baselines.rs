//! Trivial colour baselines the method must beat: they use no spatial frequency at
//! all, so a gain of FDA over them is more than mean-colour matching.
//!
//! * [`normalize_mean_std`]: each image's channels shifted and scaled to a fixed mean and
//!   standard deviation (applied to training and test images alike; uses no target data).
//! * [`match_histograms`]: each channel's histogram mapped onto a reference histogram (the
//!   target set's, pooled over its images), as scikit-image's `match_histograms` does per
//!   channel (`_match_cumulative_cdf`: `np.interp` of the image's cumulative quantiles onto the
//!   reference's), rounded half to even.

/// Per-channel mean `mean` and (population) standard deviation `std` for an interleaved RGB
/// image, values rounded half to even and clipped to 0..=255. A flat channel is only shifted.
pub fn normalize_mean_std(rgb: &mut [u8], mean: f64, std: f64) {
    let n = (rgb.len() / 3).max(1) as f64;
    for c in 0..3 {
        let (mut sum, mut sq) = (0f64, 0f64);
        for px in rgb.chunks_exact(3) {
            let v = f64::from(px[c]);
            sum += v;
            sq += v * v;
        }
        let m = sum / n;
        let s = (sq / n - m * m).max(0.0).sqrt();
        let scale = if s > 1e-6 { std / s } else { 1.0 };
        for px in rgb.chunks_exact_mut(3) {
            let v = (f64::from(px[c]) - m) * scale + mean;
            px[c] = v.round_ties_even().clamp(0.0, 255.0) as u8;
        }
    }
}

/// Per-channel 256-bin histograms, summed over any number of RGB images.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelHistograms {
    counts: [[u64; 256]; 3],
}

impl Default for ChannelHistograms {
    fn default() -> Self {
        Self {
            counts: [[0; 256]; 3],
        }
    }
}

impl ChannelHistograms {
    pub fn of(rgb: &[u8]) -> Self {
        let mut h = Self::default();
        h.add(rgb);
        h
    }

    pub fn add(&mut self, rgb: &[u8]) {
        for px in rgb.chunks_exact(3) {
            for (counts, &v) in self.counts.iter_mut().zip(px) {
                counts[v as usize] += 1;
            }
        }
    }

    pub fn merge(&mut self, other: &Self) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
    }

    /// The values present in channel `c` and their cumulative quantiles (`cumsum / total`).
    fn quantiles(&self, c: usize) -> (Vec<f64>, Vec<f64>) {
        let total: u64 = self.counts[c].iter().sum();
        let (mut values, mut quantiles) = (Vec::new(), Vec::new());
        let mut cum = 0u64;
        for (v, &n) in self.counts[c].iter().enumerate() {
            if n > 0 {
                cum += n;
                values.push(v as f64);
                quantiles.push(cum as f64 / total.max(1) as f64);
            }
        }
        (values, quantiles)
    }
}

/// `np.interp(x, xp, fp)` for increasing `xp` (clamped outside).
fn interp(x: f64, xp: &[f64], fp: &[f64]) -> f64 {
    if x <= xp[0] {
        return fp[0];
    }
    let last = xp.len() - 1;
    if x >= xp[last] {
        return fp[last];
    }
    let j = xp.partition_point(|&q| q <= x) - 1;
    let slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
    slope * (x - xp[j]) + fp[j]
}

/// Maps each channel of `rgb` onto `reference`'s histogram (see the module docs). A reference
/// channel without any pixel leaves the image unchanged.
pub fn match_histograms(rgb: &mut [u8], reference: &ChannelHistograms) {
    let own = ChannelHistograms::of(rgb);
    for c in 0..3 {
        let (ref_values, ref_q) = reference.quantiles(c);
        if ref_values.is_empty() {
            continue;
        }
        let (src_values, src_q) = own.quantiles(c);
        let mut lut = [0u8; 256];
        for (v, q) in src_values.iter().zip(&src_q) {
            lut[*v as usize] = interp(*q, &ref_q, &ref_values)
                .round_ties_even()
                .clamp(0.0, 255.0) as u8;
        }
        for px in rgb.chunks_exact_mut(3) {
            px[c] = lut[px[c] as usize];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_std_hits_the_targets_and_flat_channels_only_shift() {
        let mut img: Vec<u8> = (0..300u32)
            .flat_map(|i| [(i % 50) as u8, 7, (i % 200) as u8])
            .collect();
        normalize_mean_std(&mut img, 128.0, 40.0);
        let ch = |c: usize| {
            img.chunks_exact(3)
                .map(|p| f64::from(p[c]))
                .collect::<Vec<_>>()
        };
        for c in [0, 2] {
            let v = ch(c);
            let m = v.iter().sum::<f64>() / v.len() as f64;
            let s = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
            assert!(
                (m - 128.0).abs() < 0.6 && (s - 40.0).abs() < 0.6,
                "channel {c}: {m} {s}"
            );
        }
        assert!(ch(1).iter().all(|&v| v == 128.0));
    }

    #[test]
    fn matching_to_own_histogram_is_identity_and_interp_clamps() {
        let img: Vec<u8> = (0..999u32).map(|i| (i * 37 % 256) as u8).collect();
        let mut out = img.clone();
        match_histograms(&mut out, &ChannelHistograms::of(&img));
        assert_eq!(out, img);
        assert_eq!(interp(-1.0, &[0.0, 1.0], &[3.0, 5.0]), 3.0);
        assert_eq!(interp(2.0, &[0.0, 1.0], &[3.0, 5.0]), 5.0);
        assert_eq!(interp(0.25, &[0.0, 1.0], &[3.0, 5.0]), 3.5);
    }
}
