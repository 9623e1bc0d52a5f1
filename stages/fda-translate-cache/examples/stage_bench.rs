//! End-to-end throughput of the stage (Zarr read + both translations + zstd write), on random
//! ImageSets made in a temporary folder:
//!
//! ```text
//! cargo run --release -p fda-translate-cache --example stage_bench -- [SOURCE_N] [TARGET_N] [HEIGHT] [WIDTH] [BETA]
//! ```
//!
//! Defaults: 128 source and 32 target images of 512×1024, β = 0.01. Thread count: rayon's
//! (`RAYON_NUM_THREADS`).

use fda_translate_cache::{FdaParams, FdaTranslateCache};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;
use uda_data::imageset::IMAGES;
use uda_data::zarr::{ArrayLayout, ImageArrayWriter};
use uda_stage::{Stage, StageContext};

fn make_set(dir: &Path, n: usize, h: usize, w: usize, seed: u64) {
    let layout = ArrayLayout::images(n, h, w);
    let writer = ImageArrayWriter::create(&dir.join(IMAGES), layout).expect("new array");
    let mut s = seed | 1;
    for shard in 0..writer.shard_count() {
        let range = writer.shard_range(shard);
        let mut buf = Vec::with_capacity(range.len() * layout.image_len());
        for _ in range {
            let tint = (s % 60) as u8;
            for i in 0..layout.image_len() {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                // Smooth-ish content (zstd compresses it like photos, not like noise).
                buf.push(
                    tint.wrapping_add(((i / 3) % w / 8) as u8)
                        .wrapping_add((s % 8) as u8),
                );
            }
        }
        writer.write_shard(shard, &buf).expect("shard");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.to_string());
    let n_s: usize = arg(0, "128").parse().expect("SOURCE_N");
    let n_t: usize = arg(1, "32").parse().expect("TARGET_N");
    let h: usize = arg(2, "512").parse().expect("HEIGHT");
    let w: usize = arg(3, "1024").parse().expect("WIDTH");
    let beta: f64 = arg(4, "0.01").parse().expect("BETA");
    let dir = tempfile::tempdir().expect("temp dir");
    let (src, trg, out) = (
        dir.path().join("source"),
        dir.path().join("target"),
        dir.path().join("out"),
    );
    eprintln!(
        "making {n_s} + {n_t} random {h}x{w} images in {}",
        dir.path().display()
    );
    make_set(&src, n_s, h, w, 1);
    make_set(&trg, n_t, h, w, 2);
    std::fs::create_dir_all(&out).expect("out dir");
    let inputs = BTreeMap::from([("source".to_string(), src), ("target".to_string(), trg)]);
    let ctx = StageContext::new(FdaTranslateCache::KIND, inputs, out.clone());
    let params = FdaParams {
        beta,
        previews: 0,
        ..FdaParams::default()
    };
    let start = Instant::now();
    FdaTranslateCache::run(&ctx, &params).expect("stage run");
    let secs = start.elapsed().as_secs_f64();
    let metrics = std::fs::read_to_string(out.join(uda_stage::METRICS_FILE)).expect("metrics");
    println!("{metrics}");
    println!(
        "{} images translated in {secs:.2} s: {:.1} images/s end to end, {} rayon threads",
        n_s + n_t,
        (n_s + n_t) as f64 / secs,
        rayon::current_num_threads()
    );
}
