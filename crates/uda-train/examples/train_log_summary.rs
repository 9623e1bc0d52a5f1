//! Summarises a `train_log.parquet`: iterations, speed and the fraction of wall time the training
//! loop spent waiting for data, overall and without the first log row (start-up: the loaders
//! begin producing when training begins, and the first iterations include libtorch warm-up).
//!
//! Usage: `cargo run --release -p uda-train --example train_log_summary -- RUN/train_log.parquet`

use std::process::ExitCode;
use uda_train::log::TrainLog;

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: train_log_summary TRAIN_LOG.parquet");
        return ExitCode::from(2);
    };
    let log = match TrainLog::read_parquet(std::path::Path::new(&path)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let rows = log.rows();
    let Some(last) = rows.last() else {
        eprintln!("error: the log has no rows");
        return ExitCode::FAILURE;
    };
    let sum = |rs: &[uda_train::log::LogRow], f: fn(&uda_train::log::LogRow) -> f64| {
        rs.iter().map(f).sum::<f64>()
    };
    let (wall, wait) = (sum(rows, |r| r.step_s), sum(rows, |r| r.data_wait_s));
    let iters: u64 = rows.iter().map(|r| u64::from(r.window)).sum();
    println!(
        "iterations logged: {iters} (last row at {}), wall {wall:.2} s, {:.3} it/s",
        last.iteration,
        iters as f64 / wall
    );
    println!(
        "data wait: {wait:.3} s = {:.2}% of wall time",
        100.0 * wait / wall
    );
    if rows.len() > 1 {
        let steady = &rows[1..];
        let (w2, d2) = (sum(steady, |r| r.step_s), sum(steady, |r| r.data_wait_s));
        println!(
            "data wait without the first row: {d2:.3} s = {:.2}% of {w2:.2} s",
            100.0 * d2 / w2
        );
    }
    let terms: Vec<String> = log
        .terms()
        .iter()
        .zip(&last.terms)
        .map(|(n, v)| format!("{n} {v:.4}"))
        .collect();
    println!(
        "last row: loss_total {:.4} ({}), lr {:.3e}",
        last.loss_total,
        terms.join(", "),
        last.lr
    );
    ExitCode::SUCCESS
}
