//! The shipped pipelines at toy scale, with the real stage binaries (shared by the tests that
//! run them: tests/default_pipeline.rs, tests/report_html.rs).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// `--set` overrides that make `pipeline.yaml` run in seconds: a dozen 64×128 images, two
/// iterations per training. `report` needs the same overrides to find the same cache keys.
pub const TOY: [&str; 8] = [
    "synth.n_source=12",
    "synth.n_target_train=12",
    "synth.n_target_val=6",
    "iterations=2",
    "synth.height=64",
    "synth.width=128",
    "size=[64, 128]",
    "crop=[128, 64]",
];

/// `uda-pipe`, after checking that every project stage binary is beside it. `cargo test
/// --workspace` (what `scripts/test.sh` runs) builds each of them for its own package's
/// integration tests; building them here with `cargo build` would resolve features without
/// dev-dependencies and rebuild half the dependency tree (polars included) on every test run.
pub fn uda_pipe() -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_uda-pipe"));
    let dir = exe.parent().unwrap();
    for stage in uda_runner::KNOWN_STAGES {
        assert!(
            dir.join(stage).exists(),
            "{} missing: run the whole suite (`cargo test --workspace`), which builds every stage binary",
            dir.join(stage).display()
        );
    }
    exe
}

/// `uda-pipe run pipeline.yaml --cache CACHE` with the [`TOY`] overrides and `extra`; asserts
/// success and returns stdout + stderr.
pub fn run_default(exe: &Path, cache: &Path, extra: &[&str]) -> String {
    run_file(exe, "pipeline.yaml", cache, extra)
}

/// [`run_default`] for another shipped pipeline `file` (relative to the repository root) that
/// shares the default's param names.
pub fn run_file(exe: &Path, file: &str, cache: &Path, extra: &[&str]) -> String {
    let pipeline = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let mut c = std::process::Command::new(exe);
    c.arg("run").arg(&pipeline).arg("--cache").arg(cache);
    for s in TOY {
        c.arg("--set").arg(s);
    }
    let o = c
        .args(extra)
        .env_remove("CUDA_VISIBLE_DEVICES")
        .output()
        .expect("running uda-pipe");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        o.status.success(),
        "uda-pipe run {file} {extra:?} failed:\n{text}"
    );
    text
}
