//! The `contrastive-train` binary end to end on tiny synthetic ImageSets with ENet on the CPU:
//! every loss term logged, the projection head left out of the saved model, the ablation
//! switches, and clear errors for missing or mismatched inputs.

use arrow::array::Array;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use uda_data::imageset::LABELS;
use uda_data::table::read_parquet;
use uda_data::zarr::{ArrayLayout, ImageArray, ImageArrayWriter};
use uda_models::tch::{Device, nn::VarStore};
use uda_testing::synthetic::write_imageset;
use uda_train::ModelInfo;

const BIN: &str = env!("CARGO_BIN_EXE_contrastive-train");

struct Data {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

/// s2t 32×64 with labels; target and t2s 24×48 (4 images, target labelled); pseudo-labels =
/// the target labels with a band set to 255.
fn data() -> Data {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    write_imageset(&root.join("s2t"), 6, 32, 64, true, 1, 0.5).unwrap();
    write_imageset(&root.join("target"), 4, 24, 48, true, 2, 1.0).unwrap();
    write_imageset(&root.join("t2s"), 4, 24, 48, false, 2, 0.2).unwrap();
    let labels = ImageArray::open(&root.join("target").join(LABELS)).unwrap();
    let mut pseudo = labels.read_range(0, 4).unwrap();
    for (i, v) in pseudo.iter_mut().enumerate() {
        if (i / 48) % 24 < 4 {
            *v = 255;
        }
    }
    std::fs::create_dir_all(root.join("pseudo")).unwrap();
    let w = ImageArrayWriter::create(
        &root.join("pseudo/pseudo_labels.zarr"),
        ArrayLayout::labels(4, 24, 48),
    )
    .unwrap();
    w.write_shard(0, &pseudo).unwrap();
    w.finish().unwrap();
    Data { _dir: dir, root }
}

fn run(d: &Data, out: &Path, inputs: &[(&str, &str)], extra: &[&str]) -> Output {
    let mut c = Command::new(BIN);
    c.env("UDA_PROGRESS", "off").env_remove("UDA_RESUME_DIR");
    c.arg("--out").arg(out);
    for (name, dir) in inputs {
        c.arg("--input")
            .arg(format!("{name}={}", d.root.join(dir).display()));
    }
    for p in [
        "backbone=enet",
        "crop=[48, 24]",
        "device=cpu",
        "threads=1",
        "workers=1",
        "prefetch=2",
        "lr=0.01",
        "log_every=1",
        "proj_dim=16",
    ]
    .iter()
    .chain(extra)
    {
        c.arg("-p").arg(p);
    }
    c.output().unwrap()
}

const ALL: [(&str, &str); 4] = [
    ("source", "s2t"),
    ("target", "target"),
    ("target_ts", "t2s"),
    ("pseudo", "pseudo"),
];

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "contrastive-train failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn log_columns(out: &Path) -> Vec<String> {
    let batch = read_parquet(&out.join("train_log.parquet")).unwrap();
    batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

#[test]
fn trains_with_every_term_and_saves_the_model_without_the_head() {
    let d = data();
    let out = d.root.join("run");
    ok(&run(&d, &out, &ALL, &["iterations=3", "lambda_ent=0.1"]));
    let cols = log_columns(&out);
    for term in ["loss_ce", "loss_cl", "loss_ent"] {
        assert!(
            cols.iter().any(|c| c == term),
            "{term} missing from {cols:?}"
        );
    }
    let batch = read_parquet(&out.join("train_log.parquet")).unwrap();
    let cl_col = cols.iter().position(|c| c == "loss_cl").unwrap();
    let cl = batch
        .column(cl_col)
        .as_any()
        .downcast_ref::<arrow::array::Float64Array>()
        .expect("loss columns are f64");
    assert!(
        cl.iter().flatten().all(|v| v.is_finite() && v > 0.0),
        "{cl:?}"
    );
    assert_eq!(cl.len(), 3);
    // The saved weights load strictly into a plain network: no projection head inside.
    let mut vs = VarStore::new(Device::Cpu);
    let (info, _net) = ModelInfo::load_model(&out, &mut vs).unwrap();
    assert_eq!(info.produced_by, "contrastive-train");
    let names = uda_models::tch::Tensor::read_safetensors(out.join("model.safetensors")).unwrap();
    assert!(names.iter().all(|(n, _)| !n.starts_with("contrast_head")));
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    assert!(m["mean_anchors_per_step"].as_f64().unwrap() > 0.0);
    assert!(out.join("preview.png").exists());
}

#[test]
fn ablation_switches_change_the_terms() {
    let d = data();
    // CE only: no translated view read, no cl/ent terms.
    let out = d.root.join("ce_only");
    ok(&run(
        &d,
        &out,
        &ALL,
        &["iterations=2", "lambda_cl=0", "lambda_ent=0"],
    ));
    let cols = log_columns(&out);
    assert!(cols.iter().any(|c| c == "loss_ce"));
    assert!(
        !cols.iter().any(|c| c == "loss_cl" || c == "loss_ent"),
        "{cols:?}"
    );
    // CE only never passes target images through the network: trained beside another target
    // set, the weights are the same to the byte (a target pass in training mode would move the
    // BatchNorm running statistics, an adaptation the CE-only ablation must not get).
    write_imageset(&d.root.join("target_other"), 4, 24, 48, true, 7, 0.3).unwrap();
    let other = d.root.join("ce_only_other");
    ok(&run(
        &d,
        &other,
        &[
            ("source", "s2t"),
            ("target", "target_other"),
            ("target_ts", "t2s"),
            ("pseudo", "pseudo"),
        ],
        &["iterations=2", "lambda_cl=0", "lambda_ent=0"],
    ));
    let weights = |dir: &Path| std::fs::read(dir.join("model.safetensors")).unwrap();
    assert!(
        weights(&out) == weights(&other),
        "CE-only weights depend on the target images"
    );
    // target_bn: the same CE-only training plus a gradient-free target pass, so every trained
    // weight is bitwise the CE-only one and only BatchNorm running statistics differ.
    let bn = d.root.join("ce_target_bn");
    ok(&run(
        &d,
        &bn,
        &ALL,
        &[
            "iterations=2",
            "lambda_cl=0",
            "lambda_ent=0",
            "target_bn=true",
        ],
    ));
    let tensors = |dir: &Path| -> std::collections::BTreeMap<_, _> {
        uda_models::tch::Tensor::read_safetensors(dir.join("model.safetensors"))
            .unwrap()
            .into_iter()
            .collect()
    };
    let (plain, adapted) = (tensors(&out), tensors(&bn));
    assert_eq!(plain.len(), adapted.len());
    let mut running_changed = 0;
    for (name, a) in &plain {
        let b = &adapted[name];
        if name.contains("running_") {
            running_changed += usize::from(!a.equal(b));
        } else if !name.ends_with("num_batches_tracked") {
            assert!(a.equal(b), "{name} changed by a gradient-free target pass");
        }
    }
    assert!(
        running_changed > 0,
        "target_bn left every BatchNorm statistic unchanged"
    );
    // Ground-truth labels: no pseudo input needed.
    let out = d.root.join("gt");
    ok(&run(
        &d,
        &out,
        &ALL[..3],
        &["iterations=2", "labels=ground_truth", "lambda_ent=0"],
    ));
    assert!(log_columns(&out).iter().any(|c| c == "loss_cl"));
}

/// FDA-MBT's self-training round (`SStrain.py`): CE on s→t + CE on the pseudo-labelled target +
/// entropy, with no contrastive term and so no translated view.
#[test]
fn self_training_adds_a_pseudo_label_term_and_needs_no_translation() {
    let d = data();
    let inputs = [
        ("source", "s2t"),
        ("target", "target"),
        ("pseudo", "pseudo"),
    ];
    let st = d.root.join("self_train");
    let common = ["iterations=2", "lambda_cl=0", "lambda_ent=0.005"];
    ok(&run(
        &d,
        &st,
        &inputs,
        &[&common[..], &["lambda_pl=1"]].concat(),
    ));
    let cols = log_columns(&st);
    for term in ["loss_ce", "loss_pl", "loss_ent"] {
        assert!(cols.iter().any(|c| c == term), "{term} missing: {cols:?}");
    }
    assert!(!cols.iter().any(|c| c == "loss_cl"), "{cols:?}");
    let batch = read_parquet(&st.join("train_log.parquet")).unwrap();
    let pl = batch
        .column(cols.iter().position(|c| c == "loss_pl").unwrap())
        .as_any()
        .downcast_ref::<arrow::array::Float64Array>()
        .unwrap()
        .clone();
    assert!(
        pl.iter().flatten().all(|v| v.is_finite() && v > 0.0),
        "{pl:?}"
    );
    // The term is trained on: the same run without it ends with other weights.
    let without = d.root.join("no_pl");
    ok(&run(&d, &without, &inputs, &common));
    let weights = |dir: &Path| std::fs::read(dir.join("model.safetensors")).unwrap();
    assert!(weights(&st) != weights(&without));
    // A warm start from a trained model (SStrain.py restoring a β model): every model variable
    // comes from the checkpoint (the projection head is added after loading).
    let warm = d.root.join("warm");
    let mut with_init = inputs.to_vec();
    with_init.push(("init", "self_train"));
    let o = run(
        &d,
        &warm,
        &with_init,
        &[&common[..], &["lambda_pl=1", "init_naming=native"]].concat(),
    );
    ok(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    let loaded = err
        .lines()
        .find(|l| l.contains("initialised") && l.contains("self_train"))
        .unwrap_or_else(|| panic!("no init line in:\n{err}"));
    assert!(loaded.contains("(0 left as initialised"), "{loaded}");
    assert!(weights(&warm) != weights(&st));
    // With the contrastive term, the translation is required and named.
    let o = run(&d, &d.root.join("cl_no_ts"), &inputs, &["iterations=1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("target_ts"), "{err}");
}

#[test]
fn missing_or_mismatched_inputs_are_named() {
    let d = data();
    write_imageset(&d.root.join("t2s_short"), 3, 24, 48, false, 2, 0.2).unwrap();
    type Case<'a> = (Vec<(&'a str, &'a str)>, Vec<&'a str>, &'a str);
    let cases: Vec<Case> = vec![
        (ALL[..3].to_vec(), vec![], "input 'pseudo'"),
        (ALL.to_vec(), vec!["lambda_pl=-1"], "lambda_pl"),
        (
            vec![
                ("source", "s2t"),
                ("target", "target"),
                ("target_ts", "t2s_short"),
                ("pseudo", "pseudo"),
            ],
            vec![],
            "target_ts",
        ),
        (
            vec![("source", "s2t"), ("target", "t2s"), ("target_ts", "t2s")],
            vec!["labels=ground_truth"],
            "labels",
        ),
        (ALL.to_vec(), vec!["lamda_cl=1"], "lamda_cl"),
    ];
    for (k, (inputs, params, want)) in cases.iter().enumerate() {
        let out = d.root.join(format!("bad{k}"));
        let mut params = params.clone();
        params.push("iterations=1");
        let o = run(&d, &out, inputs, &params);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(want), "case {k}: {err}");
        assert!(!out.exists());
    }
}
