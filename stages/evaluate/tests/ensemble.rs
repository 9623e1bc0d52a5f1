//! Model mode with a folder of checkpoints (FDA's ensemble): the scores against FDA's
//! `evaluation_multi.py` computed in PyTorch on the members' logits, a one-member folder against
//! the checkpoint alone, and members that do not fit together.

mod common;

use arrow::array::{Float64Array, StringArray};
use common::{
    N, checkpoint, confusion, image, imageset, label, model_info, reference_logits, run_stage,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use uda_data::table::{column, read_parquet};
use uda_metrics::report::{CONFUSION, PER_CLASS, PER_IMAGE, SUMMARY};
use uda_models::Backbone;
use uda_models::tch::{Device, Tensor};
use uda_train::ensemble::Ensemble;
use uda_train::inference::Upsample;

const NAMES: [&str; N] = ["a", "b", "c"];
/// Image size the members see, and the label size they are scored at.
const SIZE: (usize, usize) = (16, 32);
const LABELS: (usize, usize) = (32, 64);

/// Links `names` (folders under `root/entries`) into `root/<folder>`, as the runner gathers an
/// `{all: stage}` input.
fn gather(root: &Path, folder: &str, names: &[&str]) -> PathBuf {
    let dir = root.join(folder);
    std::fs::create_dir_all(&dir).unwrap();
    for n in names {
        std::os::unix::fs::symlink(root.join("entries").join(n), dir.join(n)).unwrap();
    }
    dir
}

fn evaluate_args(out: &Path, model: &Path, root: &Path, upsample: &str) -> Vec<String> {
    vec![
        "--out".into(),
        out.display().to_string(),
        "--input".into(),
        format!("model={}", model.display()),
        "--input".into(),
        format!("data={}", root.join("data").display()),
        "--input".into(),
        format!("labels={}", root.join("full").display()),
        "-p".into(),
        "device=cpu".into(),
        "-p".into(),
        "batch_size=2".into(),
        "-p".into(),
        format!("upsample={upsample}"),
    ]
}

fn run_ok(args: &[String]) {
    let o = run_stage(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn summary_text(out: &Path, name: &str) -> String {
    let path = out.join(SUMMARY);
    let t = read_parquet(&path).unwrap();
    column::<StringArray>(&path, &t, name)
        .unwrap()
        .value(0)
        .to_string()
}

#[test]
fn ensemble_scores_as_fda_averages_the_members_softmax_in_torch() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    // Three members, one fed grayscale: each must be fed as it was trained.
    let members: Vec<(&str, i64, bool)> = vec![("m1", 3, false), ("m2", 5, true), ("m3", 8, false)];
    let nets: Vec<_> = members
        .iter()
        .map(|&(n, seed, gray)| checkpoint(&root.join("entries").join(n), seed, gray))
        .collect();
    let folder = gather(root, "members", &["m1", "m2", "m3"]);
    imageset(&root.join("data"), SIZE.0, SIZE.1, true, &NAMES);
    imageset(&root.join("full"), LABELS.0, LABELS.1, true, &NAMES);

    // Every member's logits, image by image, through the networks themselves.
    let logits: Vec<(String, Tensor)> = nets
        .iter()
        .zip(&members)
        .enumerate()
        .map(|(k, ((_, net), &(_, _, gray)))| {
            let per_image: Vec<Tensor> = (0..N)
                .map(|i| reference_logits(net, i, SIZE, gray))
                .collect();
            (format!("m{k}"), Tensor::cat(&per_image, 0))
        })
        .collect();
    let py = root.join("py");
    std::fs::create_dir_all(&py).unwrap();
    Tensor::write_safetensors(&logits, py.join("logits.safetensors")).unwrap();
    let labels: Vec<u8> = (0..N).flat_map(|i| label(i, LABELS.0, LABELS.1)).collect();
    std::fs::write(py.join("labels.bin"), &labels).unwrap();
    let rgb: Vec<u8> = (0..N).flat_map(|i| image(i, SIZE.0, SIZE.1)).collect();
    let ensemble = Ensemble::load(
        &[folder.join("m1"), folder.join("m2"), folder.join("m3")],
        Device::Cpu,
    )
    .unwrap();

    for upsample in ["softmax", "logits"] {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/ensemble_reference.py");
        let o = Command::new(uda_testing::venv_python())
            .arg(script)
            .arg(&py)
            .args([upsample, &LABELS.0.to_string(), &LABELS.1.to_string()])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let want_pred = std::fs::read(py.join("pred.bin")).unwrap();
        let scores = json(&py.join("scores.json"));

        // The check can tell: the mean differs from every member alone.
        let image_len = LABELS.0 * LABELS.1;
        for (k, (_, net)) in nets.iter().enumerate() {
            let alone: Vec<u8> = (0..N)
                .flat_map(|i| {
                    common::reference_prediction(net, i, SIZE, LABELS, true, members[k].2)
                })
                .collect();
            assert_eq!(alone.len(), N * image_len);
            assert_ne!(
                alone, want_pred,
                "member {k} alone predicts the ensemble's maps"
            );
        }

        let out = root.join(format!("out-{upsample}"));
        run_ok(&evaluate_args(&out, &folder, root, upsample));
        let hist: Vec<Vec<u64>> = serde_json::from_value(scores["hist"].clone()).unwrap();
        assert_eq!(confusion(&out), hist, "{upsample}: confusion matrix");
        let path = out.join(SUMMARY);
        let t = read_parquet(&path).unwrap();
        let miou = column::<Float64Array>(&path, &t, "miou").unwrap().value(0);
        let want = scores["miou"].as_f64().unwrap();
        assert!(
            (miou - want).abs() < 1e-12,
            "{upsample}: mIoU {miou} vs {want}"
        );
        let path = out.join(PER_IMAGE);
        let t = read_parquet(&path).unwrap();
        let per_image = column::<Float64Array>(&path, &t, "miou").unwrap();
        for i in 0..N {
            let want = scores["per_image_miou"][i].as_f64().unwrap();
            assert!((per_image.value(i) - want).abs() < 1e-12, "image {i}");
        }

        // The probabilities, in process, against FDA's order (average, then resize).
        let what = if upsample == "softmax" {
            Upsample::Softmax
        } else {
            Upsample::Logits
        };
        let probs = ensemble
            .mean_probabilities(&rgb, N, [SIZE.0, SIZE.1], [LABELS.0, LABELS.1], what)
            .unwrap();
        assert_eq!(
            ensemble
                .classes(&rgb, N, [SIZE.0, SIZE.1], [LABELS.0, LABELS.1], what)
                .unwrap(),
            want_pred
        );
        if what == Upsample::Softmax {
            let fda = Tensor::read_safetensors(py.join("probs_fda.safetensors")).unwrap();
            let diff = (&probs - &fda[0].1).abs().max().double_value(&[]);
            assert!(diff < 1e-5, "FDA's order differs by {diff}");
        }

        // What was scored is recorded: members by name, where they live, their model.json.
        let meta: serde_json::Value =
            serde_json::from_str(&summary_text(&out, "model_meta")).unwrap();
        let recorded = meta["ensemble"].as_array().unwrap();
        let entries = root.join("entries").canonicalize().unwrap();
        for (m, &(name, _, gray)) in recorded.iter().zip(&members) {
            assert_eq!(m["member"], name);
            assert_eq!(m["path"], entries.join(name).display().to_string());
            assert_eq!(m["model"]["grayscale"], gray);
        }
        assert_eq!(recorded.len(), 3);
        let metrics = json(&out.join("metrics.json"));
        assert_eq!(metrics["members"], serde_json::json!(["m1", "m2", "m3"]));
        assert_eq!(
            metrics["models"][2],
            entries.join("m3").display().to_string()
        );
        assert_eq!(metrics["mode"], "model");
    }
}

#[test]
fn one_member_folder_scores_exactly_as_the_checkpoint() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    checkpoint(&root.join("entries/only"), 11, true);
    let folder = gather(root, "members", &["only"]);
    imageset(&root.join("data"), SIZE.0, SIZE.1, true, &NAMES);
    imageset(&root.join("full"), LABELS.0, LABELS.1, true, &NAMES);
    for upsample in ["logits", "softmax"] {
        let (single, one) = (
            root.join(format!("single-{upsample}")),
            root.join(format!("one-{upsample}")),
        );
        run_ok(&evaluate_args(
            &single,
            &root.join("entries/only"),
            root,
            upsample,
        ));
        run_ok(&evaluate_args(&one, &folder, root, upsample));
        for file in [PER_CLASS, PER_IMAGE, CONFUSION, "panels/00001_b.png"] {
            assert_eq!(
                std::fs::read(single.join(file)).unwrap(),
                std::fs::read(one.join(file)).unwrap(),
                "{upsample}: {file}"
            );
        }
        let (a, b) = (
            json(&single.join("metrics.json")),
            json(&one.join("metrics.json")),
        );
        assert_eq!(a["miou"], b["miou"]);
        assert!(a["miou"].is_number());
        // The single checkpoint is recorded as before; the folder as a one-member ensemble.
        assert!(a.get("members").is_none(), "{a}");
        assert_eq!(b["members"], serde_json::json!(["only"]));
        let text = std::fs::read_to_string(root.join("entries/only/model.json")).unwrap();
        assert_eq!(summary_text(&single, "model_meta"), text);
        let meta: serde_json::Value =
            serde_json::from_str(&summary_text(&one, "model_meta")).unwrap();
        assert_eq!(meta["ensemble"][0]["member"], "only");
    }
}

#[test]
fn members_that_do_not_fit_together_fail_naming_the_folder() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    checkpoint(&root.join("entries/a"), 3, false);
    // A checkpoint described as predicting 5 classes.
    checkpoint(&root.join("entries/b"), 4, false);
    uda_train::ModelInfo {
        num_classes: 5,
        ..model_info(Backbone::Enet, false)
    }
    .write(&root.join("entries/b"))
    .unwrap();
    let folder = gather(root, "members", &["a", "b"]);
    std::fs::create_dir_all(root.join("empty/notes")).unwrap();
    imageset(&root.join("data"), SIZE.0, SIZE.1, true, &NAMES);
    imageset(&root.join("full"), LABELS.0, LABELS.1, true, &NAMES);

    let cases = [
        (
            folder.clone(),
            format!(
                "{}: the ensemble's members disagree on num_classes: 'a' predicts 19, 'b' predicts 5",
                folder.display()
            ),
        ),
        (
            root.join("empty"),
            format!("{} holds no model.json", root.join("empty").display()),
        ),
    ];
    for (k, (model, want)) in cases.iter().enumerate() {
        let out = root.join(format!("out{k}"));
        let o = run_stage(
            &evaluate_args(&out, model, root, "softmax")
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "case {k}: {err}");
        assert!(
            err.contains(&format!("input 'model': {want}")),
            "case {k}: {err}"
        );
        assert!(!out.exists(), "case {k} left {}", out.display());
    }
}
