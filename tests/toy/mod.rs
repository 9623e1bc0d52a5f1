//! The shipped pipelines at toy scale, with the real stage binaries (shared by the tests that
//! run them: tests/default_pipeline.rs, tests/report_html.rs).
#![allow(dead_code)]

use std::path::PathBuf;

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
