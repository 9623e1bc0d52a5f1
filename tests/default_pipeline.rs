//! The pipelines shipped with the project, at toy scale, with the real stage binaries. The
//! default `pipeline.yaml` end to end: every stage runs (synthesis → preprocessing → FDA →
//! pretrain + baselines (colour baselines included) → pseudo-labels → contrastive training →
//! evaluation), and a second run is served from the cache; `ablations.yaml` validates; the
//! real-data recipe runs on generated data in the real layouts.

use std::path::{Path, PathBuf};
use std::process::Command;

mod toy;

fn build_stages() -> PathBuf {
    toy::uda_pipe()
}

/// The counts of a run's closing line `N ran, N cached, N failed, N skipped in T`.
fn run_counts(text: &str) -> [usize; 4] {
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains(" ran, ") && l.contains(" skipped"))
        .unwrap_or_else(|| panic!("no summary line in:\n{text}"));
    let n: Vec<usize> = line
        .split(", ")
        .map(|part| part.split(' ').next().unwrap().parse().unwrap())
        .collect();
    [n[0], n[1], n[2], n[3]]
}

fn run(exe: &Path, cache: &Path, extra: &[&str]) -> String {
    let pipeline = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipeline.yaml");
    let mut c = Command::new(exe);
    c.arg("run").arg(&pipeline).arg("--cache").arg(cache);
    for s in toy::TOY {
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
        // One seed by default: every node is an instance of the `seeds` sweep.
        let eval = format!("{eval}[seed=0]");
        for f in ["per_class.parquet", "summary.parquet", "confusion.parquet"] {
            assert!(latest.join(&eval).join(f).exists(), "{eval}/{f} missing");
        }
    }
    for f in [
        "pseudo_labels.zarr",
        "classes.parquet",
        "previews/00000.png",
    ] {
        assert!(
            latest.join("pseudo[seed=0]").join(f).exists(),
            "pseudo/{f} missing"
        );
    }
    let info: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(latest.join("ours[seed=0]/model.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(info["produced_by"], "contrastive-train");
    let pseudo: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(latest.join("pseudo[seed=0]/metrics.json")).unwrap(),
    )
    .unwrap();
    assert!(
        pseudo["miou_raw"].is_number(),
        "the t2s set carries the target labels, so pseudo-labels are scored: {pseudo}"
    );
    // Nothing changed: the second run computes nothing.
    let again = run(&exe, &cache, &[]);
    let [ran, cached, failed, _] = run_counts(&again);
    assert_eq!((ran, failed), (0, 0), "{again}");
    assert!(cached > 0, "{again}");
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
        "fda[seed=0,beta=0.09]",
        "pseudo_raw[seed=0]",
        "pseudo_mbt[seed=0]",
        "ce_only[seed=0,beta=0.01]",
        "cl_gt[seed=0,beta=0.05]",
        "ce_target_bn[seed=0,beta=0.01]",
        "eval_ours[seed=0,beta=0.09]",
    ] {
        assert!(text.contains(node), "{node} missing:\n{text}");
    }
}

fn python() -> PathBuf {
    uda_testing::venv_python()
}

/// `pipelines/gta5-cityscapes.yaml` itself (not a copy) at toy scale: generated data in the real
/// GTA5 and Cityscapes layouts, torchvision-named ResNet-101 weights, the paper's DeepLabV2 with
/// frozen BatchNorm, every stage run, scored at the full ground-truth resolution.
#[test]
fn real_data_recipe_runs_end_to_end_at_toy_scale() {
    let exe = build_stages();
    let d = tempfile::tempdir().unwrap();
    let synth = d.path().join("synth");
    let o = Command::new(exe.parent().unwrap().join("synth-scenes"))
        .arg("--out")
        .arg(&synth)
        .args(["--param", "height=64", "--param", "width=128"])
        .args(["--param", "n_source=4", "--param", "n_target_train=4"])
        .args(["--param", "n_target_val=2"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let weights = d.path().join("resnet101.safetensors");
    let o = Command::new(python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/random_resnet101_weights.py"))
        .arg(&weights)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/gta5-cityscapes.yaml");
    let cache = d.path().join("cache");
    let run = |extra: &[&str]| {
        let mut c = Command::new(&exe);
        c.arg("run").arg(&file).arg("--cache").arg(&cache);
        let sets = [
            format!("gta5_root={}", synth.join("gta5").display()),
            format!("cityscapes_root={}", synth.join("cityscapes").display()),
            format!("imagenet_weights={}", weights.display()),
            "source_size=[48, 96]".into(),
            "target_size=[32, 64]".into(),
            "gt_size=[64, 128]".into(),
            "crop=[64, 32]".into(),
            "iterations=2".into(),
            "device=cpu".into(),
            "workers=1".into(),
        ];
        for s in &sets {
            c.arg("--set").arg(s);
        }
        let o = c.args(extra).output().unwrap();
        let text =
            String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "uda-pipe run failed:\n{text}");
        text
    };
    run(&[]);
    let latest = cache.join("latest/gta5-cityscapes");
    for eval in [
        "eval_source_only",
        "eval_fda_only",
        "eval_pretrain",
        "eval_ours",
    ] {
        assert!(
            latest.join(eval).join("per_class.parquet").exists(),
            "{eval} missing"
        );
    }
    // The paper's model, initialised from the torchvision trunk and fed ImageNet-normalised input.
    for model in ["pretrain", "source_only", "ours"] {
        let info: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(latest.join(model).join("model.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(info["backbone"], "deeplabv2-resnet101", "{model}: {info}");
        assert_eq!(info["batch_norm"], "fda", "{model}: {info}");
        assert_eq!(info["normalization"]["bgr"], false, "{model}: {info}");
    }
    // Scored against the full-resolution ground truth (2 images of 64×128), not at the 32×64
    // prediction size (at most 4,096 pixels).
    let path = latest.join("eval_ours/summary.parquet");
    let summary = uda_data::table::read_parquet(&path).unwrap();
    let valid =
        uda_data::table::column::<arrow::array::UInt64Array>(&path, &summary, "valid_pixels")
            .unwrap()
            .value(0);
    assert!(valid > 2 * 32 * 64, "{valid} pixels scored");
    let again = run(&[]);
    let [ran, cached, failed, _] = run_counts(&again);
    assert_eq!((ran, failed), (0, 0), "{again}");
    assert!(cached > 0, "{again}");
}
