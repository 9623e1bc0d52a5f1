//! The default `pipeline.yaml` end to end at toy scale with the real stage binaries: every stage
//! runs (synthesis → preprocessing → FDA → pretrain + baselines (colour baselines included) → pseudo-labels → contrastive
//! training → evaluation), and a second run is served from the cache.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The stage binaries the pipelines use, beside `uda-pipe`. `cargo test --workspace` (what
/// `scripts/test.sh` runs) builds each of them for its own package's integration tests; building
/// them here with `cargo build` would resolve features without dev-dependencies and rebuild half
/// the dependency tree (polars included) on every test run.
const STAGES: [&str; 8] = [
    "synth-scenes",
    "preprocess-resize",
    "fda-translate-cache",
    "pretrain",
    "pseudolabel-dump",
    "contrastive-train",
    "evaluate",
    "colour-baseline",
];

fn build_stages() -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_uda-pipe"));
    let dir = exe.parent().unwrap();
    for stage in STAGES {
        assert!(
            dir.join(stage).exists(),
            "{} missing: run the whole suite (`cargo test --workspace`), which builds every stage binary",
            dir.join(stage).display()
        );
    }
    exe
}

fn run(exe: &Path, cache: &Path, extra: &[&str]) -> String {
    let pipeline = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipeline.yaml");
    let mut c = Command::new(exe);
    c.arg("run").arg(&pipeline).arg("--cache").arg(cache);
    for s in [
        "synth.n_source=12",
        "synth.n_target_train=12",
        "synth.n_target_val=6",
        "iterations=2",
        "synth.height=64",
        "synth.width=128",
        "size=[64, 128]",
        "crop=[128, 64]",
    ] {
        c.arg("--set").arg(s);
    }
    c.args(extra);
    let o = c.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "uda-pipe run failed:\n{text}");
    text
}

#[test]
fn default_pipeline_runs_end_to_end_at_toy_scale() {
    let exe = build_stages();
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("cache");
    run(&exe, &cache, &[]);
    let latest = cache.join("latest/pipeline");
    for eval in [
        "eval_source_only",
        "eval_fda_only",
        "eval_pretrain",
        "eval_ours",
        "eval_oracle",
        "eval_meanstd",
        "eval_histmatch",
    ] {
        for f in ["per_class.parquet", "summary.parquet", "confusion.parquet"] {
            assert!(latest.join(eval).join(f).exists(), "{eval}/{f} missing");
        }
    }
    for f in [
        "pseudo_labels.zarr",
        "classes.parquet",
        "previews/00000.png",
    ] {
        assert!(latest.join("pseudo").join(f).exists(), "pseudo/{f} missing");
    }
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(latest.join("ours/model.json")).unwrap())
            .unwrap();
    assert_eq!(info["produced_by"], "contrastive-train");
    let pseudo: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(latest.join("pseudo/metrics.json")).unwrap())
            .unwrap();
    assert!(
        pseudo["miou_raw"].is_number(),
        "the t2s set carries the target labels, so pseudo-labels are scored: {pseudo}"
    );
    // Nothing changed: the second run computes nothing.
    let again = run(&exe, &cache, &[]);
    assert!(!again.contains("running"), "{again}");
}

#[test]
fn ablation_pipeline_validates_against_the_stage_binaries() {
    let exe = build_stages();
    let d = tempfile::tempdir().unwrap();
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/ablations.yaml");
    let o = Command::new(&exe)
        .arg("status")
        .arg("-f")
        .arg(&file)
        .arg("--cache")
        .arg(d.path().join("cache"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{text}");
    for node in [
        "fda[beta=0.09]",
        "pseudo_raw",
        "pseudo_mbt",
        "ce_only[beta=0.01]",
        "cl_gt[beta=0.05]",
        "eval_ours[beta=0.09]",
    ] {
        assert!(text.contains(node), "{node} missing:\n{text}");
    }
}
