//! Which image of the other domain lends its style to each image, deterministically from a seed.
//!
//! Rule (stable: it does not depend on the `rand` crate's sampling algorithms, which change
//! between versions):
//!
//! * Random numbers: a ChaCha8 generator seeded with `ChaCha8Rng::seed_from_u64(seed)`, on
//!   stream 0 for source→target and stream 1 for target→source (`set_stream`), so the two
//!   directions are independent and each is reproducible on its own.
//! * Uniform integers below `n`: Lemire's unbiased multiply-and-reject on `next_u64()`.
//! * Partners of the `n` images of one domain among the `m` of the other: concatenate
//!   independent Fisher–Yates shuffles of `0..m` (swapping `i` with `j < i+1`, `i` from `m−1`
//!   down to 1) and take the first `n` entries. Every partner is therefore used either
//!   `floor(n/m)` or `ceil(n/m)` times (each style equally often — no image's style dominates),
//!   and when `n ≤ m` all partners are distinct.

use crate::FdaError;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

/// Partners in both directions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pairing {
    pub seed: u64,
    /// `source_to_target[i]`: the target image whose style source image `i` takes.
    pub source_to_target: Vec<usize>,
    /// `target_to_source[j]`: the source image whose style target image `j` takes.
    pub target_to_source: Vec<usize>,
}

impl Pairing {
    pub fn new(n_source: usize, n_target: usize, seed: u64) -> Result<Self, FdaError> {
        for (what, n) in [("source images", n_source), ("target images", n_target)] {
            if n == 0 {
                return Err(FdaError::Shape {
                    what: format!("number of {what}"),
                    expected: "at least 1 to pair with".into(),
                    got: "0".into(),
                });
            }
        }
        Ok(Self {
            seed,
            source_to_target: balanced_partners(n_source, n_target, seed, 0),
            target_to_source: balanced_partners(n_target, n_source, seed, 1),
        })
    }
}

/// Partners in `0..m` for `n` images by the module's rule (generator stream `stream`).
pub fn balanced_partners(n: usize, m: usize, seed: u64, stream: u64) -> Vec<usize> {
    if m == 0 {
        return Vec::new();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    let mut partners = Vec::with_capacity(n);
    let mut perm: Vec<usize> = Vec::with_capacity(m);
    while partners.len() < n {
        perm.clear();
        perm.extend(0..m);
        for i in (1..m).rev() {
            let j = below(&mut rng, i as u64 + 1) as usize;
            perm.swap(i, j);
        }
        let take = (n - partners.len()).min(m);
        partners.extend_from_slice(&perm[..take]);
    }
    partners
}

/// Uniform integer in `0..n` (Lemire 2019, unbiased).
fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    let threshold = n.wrapping_neg() % n;
    loop {
        let m = u128::from(rng.next_u64()) * u128::from(n);
        if (m as u64) >= threshold {
            return (m >> 64) as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(partners: &[usize], m: usize) -> Vec<usize> {
        let mut c = vec![0; m];
        for &p in partners {
            c[p] += 1;
        }
        c
    }

    #[test]
    fn every_partner_used_equally_often() {
        let p = Pairing::new(25, 7, 3).unwrap();
        assert_eq!(p.source_to_target.len(), 25);
        let c = counts(&p.source_to_target, 7);
        assert!(c.iter().all(|&n| n == 3 || n == 4), "{c:?}");
        // Fewer images than partners: all distinct.
        assert_eq!(p.target_to_source.len(), 7);
        let c = counts(&p.target_to_source, 25);
        assert!(c.iter().all(|&n| n <= 1), "{c:?}");
    }

    #[test]
    fn deterministic_from_seed_and_seed_matters() {
        let a = Pairing::new(100, 30, 42).unwrap();
        assert_eq!(a, Pairing::new(100, 30, 42).unwrap());
        let b = Pairing::new(100, 30, 43).unwrap();
        assert_ne!(a.source_to_target, b.source_to_target);
        // Directions use independent streams.
        let sym = Pairing::new(30, 30, 42).unwrap();
        assert_ne!(sym.source_to_target, sym.target_to_source);
    }

    #[test]
    fn pinned_values_guard_the_documented_rule() {
        // Changing the generator, stream or shuffle changes every pairing recorded downstream;
        // these values pin the rule (computed once from it).
        let p = Pairing::new(6, 4, 0).unwrap();
        assert_eq!(p.source_to_target, PINNED_S2T);
        assert_eq!(p.target_to_source, PINNED_T2S);
    }

    const PINNED_S2T: [usize; 6] = [0, 3, 1, 2, 3, 1];
    const PINNED_T2S: [usize; 4] = [1, 0, 5, 2];

    #[test]
    fn below_is_in_range_and_roughly_uniform() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut hist = [0usize; 5];
        for _ in 0..50_000 {
            hist[below(&mut rng, 5) as usize] += 1;
        }
        assert!(
            hist.iter().all(|&h| (9_000..11_000).contains(&h)),
            "{hist:?}"
        );
    }

    #[test]
    fn empty_domain_is_an_error_naming_it() {
        let err = Pairing::new(3, 0, 0).unwrap_err().to_string();
        assert!(err.contains("target images"), "{err}");
    }
}
