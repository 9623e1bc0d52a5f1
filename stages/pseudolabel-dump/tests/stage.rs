//! `pseudolabel-dump` end to end on tiny synthetic ImageSets with random ENet checkpoints:
//! outputs and their consistency, FDA's thresholds against a numpy transcription of FDA's
//! procedure, the ensemble average, bad inputs.

use arrow::array::{Float64Array, UInt64Array};
use pseudolabel_dump::{Ensemble, PSEUDO_LABELS};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use uda_data::table::{column, read_parquet};
use uda_data::zarr::ImageArray;
use uda_models::tch::{Device, nn::VarStore};
use uda_models::{Backbone, ModelConfig, SegNet};
use uda_testing::synthetic::write_imageset;
use uda_train::ModelInfo;

const BIN: &str = env!("CARGO_BIN_EXE_pseudolabel-dump");

/// A checkpoint folder with random ENet weights drawn from `seed`.
fn random_model(dir: &Path, seed: i64) {
    std::fs::create_dir_all(dir).unwrap();
    uda_models::tch::manual_seed(seed);
    let vs = VarStore::new(Device::Cpu);
    let cfg = ModelConfig::paper(Backbone::Enet);
    let net = SegNet::new(&vs.root(), &cfg);
    uda_models::save_safetensors(&vs, &dir.join("model.safetensors")).unwrap();
    ModelInfo {
        backbone: cfg.backbone,
        num_classes: cfg.num_classes,
        batch_norm: cfg.batch_norm,
        normalization: net.input_normalization(),
        grayscale: seed % 2 == 1,
        weights: "model.safetensors".into(),
        produced_by: "test".into(),
        iterations: 0,
    }
    .write(dir)
    .unwrap();
}

fn run(out: &Path, inputs: &[(&str, &Path)], params: &[&str]) -> Output {
    let mut c = Command::new(BIN);
    c.env("UDA_PROGRESS", "off").arg("--out").arg(out);
    for (name, path) in inputs {
        c.arg("--input").arg(format!("{name}={}", path.display()));
    }
    for p in ["device=cpu", "threads=1"].iter().chain(params) {
        c.arg("-p").arg(p);
    }
    c.output().unwrap()
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "pseudolabel-dump failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn python() -> PathBuf {
    uda_testing::venv_python()
}

/// FDA's `getSudoLabel_multi.py` thresholding, transcribed in numpy, on the stage's own
/// predictions and (quantised) confidences; the index is clamped to the last element where FDA's
/// would run past it (a class with a single pixel).
const FDA_NUMPY: &str = r#"
import sys, numpy as np
pred = np.fromfile(sys.argv[1], dtype=np.uint8)
prob = np.fromfile(sys.argv[2], dtype=np.uint8).astype(np.float64) / 255.0
thres = []
for i in range(19):
    x = prob[pred == i]
    if len(x) == 0:
        thres.append(0)
        continue
    x = np.sort(x)
    thres.append(x[min(int(np.round(len(x) * 0.66)), len(x) - 1)])
thres = np.array(thres)
thres[thres > 0.9] = 0.9
label = pred.copy()
for i in range(19):
    label[(pred == i) & (prob < thres[i])] = 255
label.astype(np.uint8).tofile(sys.argv[3])
"#;

#[test]
fn labels_a_set_with_fda_thresholds_equal_to_numpy_and_scores_them() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_imageset(&root.join("target"), 5, 24, 48, true, 3, 0.5).unwrap();
    random_model(&root.join("m"), 2);
    let out = root.join("out");
    ok(&run(
        &out,
        &[("model", &root.join("m")), ("data", &root.join("target"))],
        &["batch_size=2", "previews=2"],
    ));
    let read = |name: &str| {
        let a = ImageArray::open(&out.join(name)).unwrap();
        assert_eq!((a.len(), a.height(), a.width()), (5, 24, 48), "{name}");
        a.read_range(0, 5).unwrap()
    };
    let (pred, conf, pseudo) = (
        read("prediction.zarr"),
        read("confidence.zarr"),
        read(PSEUDO_LABELS),
    );
    for ((&p, &q), &k) in pred.iter().zip(&conf).zip(&pseudo) {
        assert!(
            p < 19 && (k == p || k == 255),
            "pred {p} conf {q} pseudo {k}"
        );
    }
    assert!(pseudo.contains(&255) && pseudo.iter().any(|&k| k != 255));

    // Thresholds: the same pseudo-labels as FDA's procedure in numpy.
    std::fs::write(root.join("pred.bin"), &pred).unwrap();
    std::fs::write(root.join("conf.bin"), &conf).unwrap();
    let o = Command::new(python())
        .arg("-c")
        .arg(FDA_NUMPY)
        .args([
            root.join("pred.bin"),
            root.join("conf.bin"),
            root.join("np.bin"),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(root.join("np.bin")).unwrap(), pseudo);

    // classes.parquet: counts add up; IoU columns present (data has labels).
    let path = out.join("classes.parquet");
    let batch = read_parquet(&path).unwrap();
    assert_eq!(batch.num_rows(), 19);
    let predicted = column::<UInt64Array>(&path, &batch, "predicted").unwrap();
    let kept = column::<UInt64Array>(&path, &batch, "kept").unwrap();
    let dropped = column::<UInt64Array>(&path, &batch, "dropped").unwrap();
    let total: u64 = predicted.values().iter().sum();
    assert_eq!(total as usize, pred.len());
    for c in 0..19 {
        assert_eq!(predicted.value(c), kept.value(c) + dropped.value(c));
        let n = pseudo.iter().filter(|&&k| k as usize == c).count() as u64;
        assert_eq!(kept.value(c), n, "class {c}");
    }
    let iou_raw = column::<Float64Array>(&path, &batch, "iou_raw").unwrap();
    assert!(iou_raw.iter().any(|v| v.is_some()));
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    let kept_fraction = metrics["kept_fraction"].as_f64().unwrap();
    let want = pseudo.iter().filter(|&&k| k != 255).count() as f64 / pseudo.len() as f64;
    assert!((kept_fraction - want).abs() < 1e-12);
    assert!(metrics["miou_raw"].is_number());
    assert!(out.join("previews/00000.png").exists() && out.join("previews/00001.png").exists());
    assert!(!out.join("previews/00002.png").exists());
}

#[test]
fn ensemble_averages_member_softmax() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_imageset(&root.join("target"), 2, 16, 32, false, 1, 0.0).unwrap();
    // As the runner gathers instances: a folder of links to the models' cache entries.
    random_model(&root.join("entries/a"), 1);
    random_model(&root.join("entries/b"), 4);
    std::fs::create_dir_all(root.join("members")).unwrap();
    for m in ["a", "b"] {
        std::os::unix::fs::symlink(root.join("entries").join(m), root.join("members").join(m))
            .unwrap();
    }
    let rgb = ImageArray::open(&root.join("target/images.zarr"))
        .unwrap()
        .read_range(0, 2)
        .unwrap();
    let probs = |dirs: &[PathBuf]| {
        Ensemble::load(dirs, Device::Cpu)
            .unwrap()
            .probabilities(&rgb, 2, 16, 32)
            .unwrap()
    };
    let (a, b) = (root.join("members/a"), root.join("members/b"));
    let both = probs(&[a.clone(), b.clone()]);
    let mean = (probs(&[a]) + probs(&[b])) / 2.0;
    assert_eq!(both.size(), [2, 19, 16, 32]);
    let diff = (both - mean).abs().max().double_value(&[]);
    assert!(diff < 1e-6, "{diff}");

    // The stage takes the folder of members.
    let out = root.join("out");
    ok(&run(
        &out,
        &[
            ("model", &root.join("members")),
            ("data", &root.join("target")),
        ],
        &[],
    ));
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    // The models are recorded where they live, not by the (transient) links that named them.
    let entries = root.join("entries").canonicalize().unwrap();
    let recorded: Vec<&str> = m["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        recorded,
        [entries.join("a"), entries.join("b")]
            .iter()
            .map(|p| p.to_str().unwrap())
            .collect::<Vec<_>>()
    );
    assert!(m["miou_raw"].is_null(), "no ground truth → no IoU");
}

#[test]
fn bad_inputs_fail_with_the_input_named_and_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_imageset(&root.join("target"), 2, 16, 32, false, 1, 0.0).unwrap();
    write_imageset(&root.join("other"), 3, 16, 32, true, 1, 0.0).unwrap();
    random_model(&root.join("m"), 0);
    std::fs::create_dir_all(root.join("empty")).unwrap();
    type Case<'a> = (Vec<(&'a str, PathBuf)>, Vec<&'a str>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![("model", root.join("empty")), ("data", root.join("target"))],
            vec![],
            "model.json",
        ),
        (
            vec![
                ("model", root.join("m")),
                ("data", root.join("target")),
                ("labels", root.join("other")),
            ],
            vec![],
            "input labels",
        ),
        (
            vec![("model", root.join("m")), ("data", root.join("target"))],
            vec!["percentile=1.5"],
            "percentile",
        ),
    ];
    for (k, (inputs, params, want)) in cases.iter().enumerate() {
        let out = root.join(format!("out{k}"));
        let inputs: Vec<(&str, &Path)> = inputs.iter().map(|(n, p)| (*n, p.as_path())).collect();
        let o = run(&out, &inputs, params);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(want), "case {k}: {err}");
        assert!(!out.exists(), "case {k} left {}", out.display());
    }
}

/// `from`'s ImageSet rewritten at `to` with `per_shard` images per Zarr shard (the synthetic sets
/// come in one shard), so that sharded runs split it.
fn rechunk(from: &Path, to: &Path, per_shard: usize) {
    use uda_data::imageset::{IMAGES, LABELS, MANIFEST};
    use uda_data::zarr::ImageArrayWriter;
    for name in [IMAGES, LABELS] {
        let Ok(array) = ImageArray::open(&from.join(name)) else {
            continue;
        };
        let layout = uda_data::zarr::ArrayLayout {
            images_per_shard: per_shard,
            ..*array.layout()
        };
        let w = ImageArrayWriter::create(&to.join(name), layout).unwrap();
        for s in 0..w.shard_count() {
            let r = w.shard_range(s);
            w.write_shard(s, &array.read_range(r.start, r.len()).unwrap())
                .unwrap();
        }
    }
    if from.join(MANIFEST).exists() {
        std::fs::copy(from.join(MANIFEST), to.join(MANIFEST)).unwrap();
    }
}

#[test]
fn shards_and_merge_write_the_unsharded_folder_byte_for_byte() {
    use uda_testing::shards::{Binary, differences, merge, run as run_bin, run_sharded};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_imageset(&root.join("one-shard"), 5, 24, 48, true, 3, 0.5).unwrap();
    // 5 images in Zarr shards of 2: 3 chunks.
    rechunk(&root.join("one-shard"), &root.join("target"), 2);
    random_model(&root.join("m"), 2);
    let bin = Binary::new(Path::new(BIN));
    let args: Vec<String> = [
        "--input",
        &format!("model={}", root.join("m").display()),
        "--input",
        &format!("data={}", root.join("target").display()),
        "-p",
        "device=cpu",
        "-p",
        "threads=1",
        "-p",
        "batch_size=2",
        "-p",
        "previews=3",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let whole = root.join("whole");
    let mut whole_args = vec!["--out".to_string(), whole.display().to_string()];
    whole_args.extend(args.clone());
    run_bin(bin, &whole_args).unwrap();
    assert!(whole.join("previews/00002.png").exists());
    // 2 shards, and 5: more than the 3 chunks, so some tasks predict nothing.
    for count in [2, 5] {
        let shards = root.join(format!("shards{count}"));
        let merged = root.join(format!("merged{count}"));
        let logs = run_sharded(bin, &args, &shards, &merged, count).unwrap();
        assert!(logs[0].contains(r#""uda_progress""#), "{}", logs[0]);
        assert_eq!(
            differences(&whole, &merged),
            Vec::<String>::new(),
            "{count} shards"
        );
    }
    // A missing shard is named, and nothing is written.
    std::fs::remove_dir_all(root.join("shards5/0")).unwrap();
    let out = root.join("incomplete");
    let err = merge(bin, &args, &root.join("shards5"), &out).unwrap_err();
    assert!(
        err.contains("1 of 5 shards missing or unfinished: 0 (no folder"),
        "{err}"
    );
    assert!(!out.exists());
}
