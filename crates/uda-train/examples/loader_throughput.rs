//! How fast the data loader alone delivers batches from an ImageSet (no model): the ceiling on
//! training speed before the loop starts waiting for data. Compare it with a training run's
//! iterations/s (one batch per domain per iteration).
//!
//! Usage: `loader_throughput IMAGESET_DIR CROP_W CROP_H WORKERS BATCHES [BATCH=1]`
//! (grayscale on, FDA's DeepLab normalisation, labels when the set has them).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;
use uda_models::Normalization;
use uda_train::source::{ImageSetSource, SampleSource};
use uda_train::{Loader, LoaderConfig};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 5 {
        eprintln!("usage: loader_throughput IMAGESET_DIR CROP_W CROP_H WORKERS BATCHES [BATCH=1]");
        return ExitCode::from(2);
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(&args[0]);
    let (crop_w, crop_h): (usize, usize) = (args[1].parse()?, args[2].parse()?);
    let (workers, batches): (usize, u64) = (args[3].parse()?, args[4].parse()?);
    let batch: usize = args.get(5).map(|b| b.parse()).transpose()?.unwrap_or(1);
    let source = ImageSetSource::open(&dir, false)?;
    let labels = source.has_labels();
    let (h, w) = source.size();
    let cfg = LoaderConfig {
        batch,
        crop: Some((crop_h, crop_w)),
        flip: false,
        grayscale: true,
        norm: Normalization::FDA_CAFFE,
        labels,
        seed: 0,
        workers,
        prefetch: 2 * workers,
    };
    let mut loader = Loader::new(Arc::new(source), cfg, 0, batches + 1)?;
    loader.next_batch()?; // start-up
    let t0 = Instant::now();
    for _ in 0..batches {
        loader.next_batch()?;
    }
    let s = t0.elapsed().as_secs_f64();
    println!(
        "loader: {workers} worker(s), {w}x{h} -> {crop_w}x{crop_h}, batch {batch}, labels {labels}: {:.1} batches/s ({:.1} ms/batch)",
        batches as f64 / s,
        1000.0 * s / batches as f64
    );
    Ok(())
}
