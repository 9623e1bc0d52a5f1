//! The pipelines shipped with the project, at toy scale, with the real stage binaries. The
//! default `pipeline.yaml` end to end: every stage runs (synthesis → preprocessing → FDA →
//! pretrain + baselines (colour baselines included) → pseudo-labels → contrastive training →
//! evaluation), and a second run is served from the cache; `ablations.yaml` validates;
//! `synthetic-benchmark.yaml` runs end to end; the real-data recipes run on generated data in the
//! real layouts.

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
    toy::run_default(exe, cache, extra)
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

/// A real-data recipe, the file itself (not a copy), run at toy scale: generated data in the
/// real GTA5 and Cityscapes layouts, random torchvision-named weights from `weights_script`
/// when the recipe needs ImageNet weights, every stage run; then a second run is all cached.
struct ToyRecipe {
    _dir: tempfile::TempDir,
    latest: PathBuf,
}

fn run_recipe_at_toy_scale(file: &str, weights_script: Option<&str>) -> ToyRecipe {
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
    let mut sets = vec![
        format!("gta5_root={}", synth.join("gta5").display()),
        format!("cityscapes_root={}", synth.join("cityscapes").display()),
        "source_size=[48, 96]".into(),
        "target_size=[32, 64]".into(),
        "gt_size=[64, 128]".into(),
        "crop=[64, 32]".into(),
        "iterations=2".into(),
        "device=cpu".into(),
        "workers=1".into(),
    ];
    if let Some(script) = weights_script {
        let weights = d.path().join("weights.safetensors");
        let o = Command::new(python())
            .arg(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("scripts")
                    .join(script),
            )
            .arg(&weights)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        sets.push(format!("imagenet_weights={}", weights.display()));
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("pipelines")
        .join(file);
    let cache = d.path().join("cache");
    let run = || {
        let mut c = Command::new(&exe);
        c.arg("run").arg(&path).arg("--cache").arg(&cache);
        for s in &sets {
            c.arg("--set").arg(s);
        }
        let o = c.output().unwrap();
        let text =
            String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "uda-pipe run {file} failed:\n{text}");
        text
    };
    let first = run();
    assert_eq!(run_counts(&first)[2], 0, "{first}");
    let again = run();
    let [ran, cached, failed, _] = run_counts(&again);
    assert_eq!((ran, failed), (0, 0), "{again}");
    assert!(cached > 0, "{again}");
    let stem = file.trim_end_matches(".yaml");
    ToyRecipe {
        latest: cache.join("latest").join(stem),
        _dir: d,
    }
}

fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn model_json(dir: &Path) -> serde_json::Value {
    read_json(&dir.join("model.json"))
}

fn assert_scored(latest: &Path, evals: &[&str]) {
    for eval in evals {
        assert!(
            latest.join(eval).join("per_class.parquet").exists(),
            "{eval} missing"
        );
    }
}

/// FDA-MBT's ensemble evaluation (`eval_dir`) averages the three self-trained models, one per β.
fn assert_fda_mbt_ensemble(eval_dir: &Path) {
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(eval_dir.join("metrics.json")).unwrap())
            .unwrap();
    let members = m["members"].as_array().expect("ensemble members recorded");
    assert_eq!(members.len(), 3, "{m}");
}

/// `pipelines/gta5-cityscapes.yaml`: the paper's DeepLabV2 with FDA's BatchNorm semantics,
/// initialised from a torchvision-named trunk, scored at the full ground-truth resolution; and
/// the FDA-MBT rows.
#[test]
fn real_data_recipe_runs_end_to_end_at_toy_scale() {
    let r = run_recipe_at_toy_scale("gta5-cityscapes.yaml", Some("random_resnet101_weights.py"));
    let latest = &r.latest;
    assert_scored(
        latest,
        &[
            "eval_source_only",
            "eval_fda_only",
            "eval_pretrain",
            "eval_ours",
            "eval_fda_mbt",
        ],
    );
    assert_fda_mbt_ensemble(&latest.join("eval_fda_mbt"));
    // The paper's model, initialised from the torchvision trunk and fed ImageNet-normalised input.
    for model in ["pretrain", "source_only", "ours"] {
        let info = model_json(&latest.join(model));
        assert_eq!(info["backbone"], "deeplabv2-resnet101", "{model}: {info}");
        assert_eq!(info["batch_norm"], "fda", "{model}: {info}");
        assert_eq!(info["normalization"]["bgr"], false, "{model}: {info}");
    }
    // Self-training logged its pseudo-label term.
    let log = uda_data::table::read_parquet(
        &latest.join("fda_mbt_self_train[beta=0.05]/train_log.parquet"),
    )
    .unwrap();
    assert!(log.schema().field_with_name("loss_pl").is_ok());
    // Scored against the full-resolution ground truth (2 images of 64×128), not at the 32×64
    // prediction size (at most 4,096 pixels).
    let path = latest.join("eval_ours/summary.parquet");
    let summary = uda_data::table::read_parquet(&path).unwrap();
    let valid =
        uda_data::table::column::<arrow::array::UInt64Array>(&path, &summary, "valid_pixels")
            .unwrap()
            .value(0);
    assert!(valid > 2 * 32 * 64, "{valid} pixels scored");
}

/// `pipelines/gta5-cityscapes-vgg16.yaml`: FCN-8s from a torchvision-named VGG16.
#[test]
fn vgg16_recipe_runs_end_to_end_at_toy_scale() {
    let r = run_recipe_at_toy_scale(
        "gta5-cityscapes-vgg16.yaml",
        Some("random_vgg16_weights.py"),
    );
    assert_scored(
        &r.latest,
        &[
            "eval_source_only",
            "eval_fda_only",
            "eval_ours",
            "eval_fda_mbt",
        ],
    );
    assert_fda_mbt_ensemble(&r.latest.join("eval_fda_mbt"));
    let info = model_json(&r.latest.join("ours"));
    assert_eq!(info["backbone"], "fcn8s-vgg16", "{info}");
}

/// `pipelines/gta5-cityscapes-enet.yaml`: Table 2's ENet rows, from scratch.
#[test]
fn enet_recipe_runs_end_to_end_at_toy_scale() {
    let r = run_recipe_at_toy_scale("gta5-cityscapes-enet.yaml", None);
    assert_scored(
        &r.latest,
        &[
            "eval_source_only",
            "eval_fda_no_ent",
            "eval_fda[beta=0.01]",
            "eval_fda[beta=0.09]",
            "eval_ours",
            "eval_cl_gt",
            "eval_fda_mbt",
        ],
    );
    assert_fda_mbt_ensemble(&r.latest.join("eval_fda_mbt"));
    assert_eq!(model_json(&r.latest.join("ours"))["batch_norm"], "train");
}

/// `pipelines/synthetic-benchmark.yaml`, the faithful proxy, at toy scale with the default
/// pipeline's overrides (it shares their param names): every row of the comparison scored,
/// FDA-MBT as the ensemble of its three self-trained models, every stage run, then all cached.
#[test]
fn synthetic_benchmark_runs_end_to_end_at_toy_scale() {
    let exe = build_stages();
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("cache");
    let run = || {
        toy::run_file(
            &exe,
            "pipelines/synthetic-benchmark.yaml",
            &cache,
            &["--set", "target_crop=[128, 64]"],
        )
    };
    let first = run();
    let [ran, _, failed, _] = run_counts(&first);
    assert_eq!(failed, 0, "{first}");
    let latest = cache.join("latest/synthetic-benchmark");
    let evals = [
        "eval_source_only",
        "eval_meanstd",
        "eval_fda_only",
        "eval_fda_mbt",
        "eval_ce_target_bn",
        "eval_pretrain",
        "eval_ours",
        "eval_ours_mbt_pseudo",
        "eval_cl_gt",
        "eval_oracle",
        "eval_fda_mbt_beta[beta=0.05]",
    ]
    .map(|e| match e.split_once('[') {
        Some((stage, rest)) => format!("{stage}[seed=0,{rest}"),
        None => format!("{e}[seed=0]"),
    });
    assert_scored(&latest, &evals.each_ref().map(String::as_str));
    assert_fda_mbt_ensemble(&latest.join("eval_fda_mbt[seed=0]"));
    assert!(
        model_json(&latest.join("pretrain[seed=0]"))["grayscale"]
            .as_bool()
            .unwrap()
    );
    assert!(
        !model_json(&latest.join("ours[seed=0]"))["grayscale"]
            .as_bool()
            .unwrap()
    );
    // Both pseudo-label sets are scored against the target labels (docs/results.md compares them).
    for pseudo in ["pseudo[seed=0]", "pseudo_fda_mbt[seed=0]"] {
        let m = read_json(&latest.join(pseudo).join("metrics.json"));
        assert!(m["miou_raw"].is_number(), "{pseudo}: {m}");
    }
    let again = run();
    let [ran_again, cached, failed, _] = run_counts(&again);
    assert_eq!((ran_again, failed), (0, 0), "{again}");
    // `fda` and `fda_betas[beta=0.01]` are one entry: the first run computes it once.
    assert!(cached > ran, "{again}");
}
