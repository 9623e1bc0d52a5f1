//! Benchmark: confusion-matrix accumulation over label maps, the Rust side of
//! `scripts/bench/confusion.sh` (the numpy `fast_hist` side is `scripts/bench/confusion_numpy.py`).
//!
//! ```text
//! cargo run --release -p uda-metrics --example confusion_bench -- MAPS HEIGHT WIDTH SEED [BATCH]
//! ```
//!
//! Maps are generated in memory by the same hash as the numpy script (identical data, no disk),
//! `BATCH` at a time so memory stays at `2 × BATCH` maps whatever `MAPS` is; only the
//! accumulation is timed, each batch the best of `REPEATS` runs (as the numpy side, since the
//! machine may be shared). Threads: rayon's default, or `RAYON_NUM_THREADS`.

use rayon::prelude::*;
use std::time::Instant;
use uda_metrics::ConfusionMatrix;

/// Timings per batch; the best is kept.
const REPEATS: usize = 3;

fn splitmix(z: u64) -> u64 {
    let z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Ground truth and prediction of map `m` (see `confusion_numpy.py` for the recipe).
fn make_map(seed: u64, m: u64, h: usize, w: usize) -> (Vec<u8>, Vec<u8>) {
    let base = seed ^ (m << 32);
    let blocks_per_row = w.div_ceil(64) as u64;
    let mut gt = vec![0u8; h * w];
    let mut pred = vec![0u8; h * w];
    gt.par_chunks_mut(w)
        .zip(pred.par_chunks_mut(w))
        .enumerate()
        .for_each(|(y, (g_row, p_row))| {
            for x in 0..w {
                let block = (y as u64 >> 6) * blocks_per_row + (x as u64 >> 6);
                let hb = splitmix(base ^ (block << 1));
                let g = if hb.is_multiple_of(10) {
                    255
                } else {
                    (hb >> 8) % 19
                };
                let class = if g == 255 { (hb >> 16) % 19 } else { g };
                let i = (y * w + x) as u64;
                let hp = splitmix(base ^ ((i << 1) | 1));
                g_row[x] = g as u8;
                p_row[x] = if hp % 100 < 30 {
                    ((hp >> 8) % 19) as u8
                } else {
                    class as u8
                };
            }
        });
    (gt, pred)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        eprintln!("usage: confusion_bench MAPS HEIGHT WIDTH SEED [BATCH]");
        std::process::exit(2);
    }
    let num = |i: usize| -> u64 {
        args[i].parse().unwrap_or_else(|_| {
            eprintln!("argument {} ('{}') is not a number", i + 1, args[i]);
            std::process::exit(2)
        })
    };
    let (maps, h, w, seed) = (num(0), num(1) as usize, num(2) as usize, num(3));
    let batch = if args.len() > 4 { num(4) } else { 16 };
    let threads = rayon::current_num_threads();
    let mut total = ConfusionMatrix::new();
    let mut timed = 0.0f64;
    let mut m = 0u64;
    while m < maps {
        let n = batch.min(maps - m);
        let data: Vec<(Vec<u8>, Vec<u8>)> = (m..m + n).map(|k| make_map(seed, k, h, w)).collect();
        let pairs: Vec<(&[u8], &[u8])> = data
            .iter()
            .map(|(g, p)| (g.as_slice(), p.as_slice()))
            .collect();
        let mut best = f64::INFINITY;
        let mut batch_matrix = ConfusionMatrix::new();
        for _ in 0..REPEATS {
            let start = Instant::now();
            batch_matrix =
                ConfusionMatrix::from_pairs_par(&pairs).expect("generated maps are valid");
            best = best.min(start.elapsed().as_secs_f64());
        }
        timed += best;
        total.merge(&batch_matrix);
        m += n;
    }
    println!(
        "uda-metrics ({threads} thread(s)): {maps} maps of {h}x{w} in {timed:.3} s = {:.2} maps/s",
        maps as f64 / timed
    );
    let rows: Vec<String> = total
        .rows()
        .iter()
        .map(|r| {
            format!(
                "[{}]",
                r[..19]
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            )
        })
        .collect();
    println!("matrix: [{}]", rows.join(","));
}
