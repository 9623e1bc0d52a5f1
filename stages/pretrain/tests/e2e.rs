//! The `pretrain` binary end to end on tiny synthetic ImageSets with ENet on the CPU: outputs,
//! a real SIGKILL mid-run and resume to the same weights, NaN handling, the source-only baseline.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use uda_testing::synthetic::write_imageset;

const BIN: &str = env!("CARGO_BIN_EXE_pretrain");

struct Data {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

/// Source 32×64 with labels, target 24×48 without (both divisible by ENet's stride 8 once cropped).
fn data() -> Data {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    write_imageset(&root.join("source"), 6, 32, 64, true, 1, 0.0).unwrap();
    write_imageset(&root.join("target"), 4, 24, 48, false, 2, 1.0).unwrap();
    Data { _dir: dir, root }
}

fn command(d: &Data, out: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.env("UDA_PROGRESS", "off").env_remove("UDA_RESUME_DIR");
    c.arg("--out").arg(out);
    c.arg("--input")
        .arg(format!("source={}", d.root.join("source").display()));
    c.arg("--input")
        .arg(format!("target={}", d.root.join("target").display()));
    for p in [
        "backbone=enet",
        "crop=[48, 24]",
        "device=cpu",
        "threads=1",
        "workers=2",
        "prefetch=2",
        "lr=0.01",
        "lambda_ent=0.1",
    ] {
        c.arg("-p").arg(p);
    }
    for p in extra {
        c.arg("-p").arg(p);
    }
    c
}

fn check(out: &Output) {
    assert!(
        out.status.success(),
        "pretrain failed: {}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn metrics(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap()
}

#[test]
fn trains_and_writes_every_output() {
    let d = data();
    let out = d.root.join("run");
    check(
        &command(
            &d,
            &out,
            &["iterations=6", "log_every=2", "checkpoint_every=3"],
        )
        .output()
        .unwrap(),
    );
    for f in [
        "model.safetensors",
        "model.json",
        "train_log.parquet",
        "preview.png",
        "metrics.json",
    ] {
        assert!(out.join(f).is_file(), "missing {f}");
    }
    assert!(
        !d.root.join("run.resume").exists(),
        "resume folder should be removed after success"
    );

    let info = uda_train::ModelInfo::read(&out).unwrap();
    assert_eq!(info.backbone, uda_models::Backbone::Enet);
    assert_eq!(
        (info.num_classes, info.grayscale, info.iterations),
        (19, true, 6)
    );
    let mut vs = uda_models::tch::nn::VarStore::new(uda_models::tch::Device::Cpu);
    uda_train::ModelInfo::load_model(&out, &mut vs).unwrap();

    let log = uda_train::log::TrainLog::read_parquet(&out.join("train_log.parquet")).unwrap();
    assert_eq!(log.terms(), ["ce", "ent"]);
    let its: Vec<u64> = log.rows().iter().map(|r| r.iteration).collect();
    assert_eq!(its, [2, 4, 6]);
    let first = &log.rows()[0];
    assert!(first.lr > 0.0 && first.loss_total > 0.0 && first.step_s > 0.0);
    assert!(
        (first.loss_total - (first.terms[0] + 0.1 * first.terms[1])).abs()
            < 1e-6 * first.loss_total
    );

    let m = metrics(&out);
    assert_eq!(m["iterations"], 6);
    assert_eq!(m["resumed_from"], 0);
    let wait = m["data_wait_fraction"].as_f64().unwrap();
    assert!((0.0..1.0).contains(&wait));
    assert!(m["final_loss_ce"].as_f64().unwrap() > 0.0);

    // Two target images, each beside its prediction (write_panel puts thin gaps between tiles).
    let (w, h) = image_size(&out.join("preview.png"));
    assert!(h == 24 && (4 * 48..4 * 48 + 16).contains(&w), "{w}x{h}");
}

fn image_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[1..4], b"PNG");
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    (w, h)
}

#[test]
fn sigkilled_run_resumes_to_the_weights_of_an_uninterrupted_run() {
    let d = data();
    let params = ["iterations=120", "checkpoint_every=10", "log_every=5"];
    let straight = d.root.join("straight");
    check(&command(&d, &straight, &params).output().unwrap());

    let out = d.root.join("killed");
    let resume = d.root.join("killed.resume");
    let mut child = command(&d, &out, &params).spawn().unwrap();
    let t0 = Instant::now();
    let killed_after = loop {
        let it = std::fs::read_to_string(resume.join("checkpoint.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["iteration"].as_u64());
        if let Some(it) = it.filter(|&it| it >= 20) {
            break it;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "no checkpoint appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run finished before the kill; make it longer"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(killed_after < 120);
    assert!(
        !out.exists(),
        "a killed stage must not leave its output folder"
    );

    let again = command(&d, &out, &params).output().unwrap();
    check(&again);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("resuming from iteration"), "{stderr}");
    let resumed_from = metrics(&out)["resumed_from"].as_u64().unwrap();
    assert!(
        resumed_from >= killed_after,
        "resumed from {resumed_from}, killed after {killed_after}"
    );
    let a = std::fs::read(straight.join("model.safetensors")).unwrap();
    let b = std::fs::read(out.join("model.safetensors")).unwrap();
    assert!(
        a == b,
        "weights after kill + resume differ from the uninterrupted run"
    );
    // The log continues seamlessly.
    let log = uda_train::log::TrainLog::read_parquet(&out.join("train_log.parquet")).unwrap();
    let its: Vec<u64> = log.rows().iter().map(|r| r.iteration).collect();
    assert_eq!(its, (1..=24).map(|k| k * 5).collect::<Vec<_>>());
    let straight_log =
        uda_train::log::TrainLog::read_parquet(&straight.join("train_log.parquet")).unwrap();
    let totals =
        |l: &uda_train::log::TrainLog| l.rows().iter().map(|r| r.loss_total).collect::<Vec<_>>();
    assert_eq!(totals(&log), totals(&straight_log));
}

#[test]
fn nan_loss_fails_naming_iteration_and_term_and_keeps_nothing() {
    let d = data();
    let out = d.root.join("nan");
    let resume = d.root.join("resume-here");
    let o = command(
        &d,
        &out,
        &["iterations=50", "lr=1e30", "checkpoint_every=1"],
    )
    .env("UDA_RESUME_DIR", &resume)
    .output()
    .unwrap();
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("at iteration") && stderr.contains("loss term '"),
        "{stderr}"
    );
    assert!(stderr.contains("NaN") || stderr.contains("inf"), "{stderr}");
    assert!(!out.exists());
    assert!(
        !resume.exists(),
        "the resume folder must not keep a diverged run"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&d.root)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("nan"))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}

#[test]
fn source_only_baseline_runs_without_a_target() {
    let d = data();
    let out = d.root.join("src-only");
    let mut c = Command::new(BIN);
    c.env("UDA_PROGRESS", "off").env_remove("UDA_RESUME_DIR");
    c.arg("--out")
        .arg(&out)
        .arg("--input")
        .arg(format!("source={}", d.root.join("source").display()));
    for p in [
        "backbone=enet",
        "crop=[48, 24]",
        "device=cpu",
        "threads=1",
        "iterations=3",
        "lambda_ent=0",
        "grayscale=false",
    ] {
        c.arg("-p").arg(p);
    }
    check(&c.output().unwrap());
    let log = uda_train::log::TrainLog::read_parquet(&out.join("train_log.parquet")).unwrap();
    assert_eq!(log.terms(), ["ce"]);
    assert!(!uda_train::ModelInfo::read(&out).unwrap().grayscale);
    // Preview falls back to source images: 2 images × (image | prediction), 64 wide, 32 high.
    let (w, h) = image_size(&out.join("preview.png"));
    assert!(h == 32 && (4 * 64..4 * 64 + 16).contains(&w), "{w}x{h}");
}

#[test]
fn bad_inputs_and_params_are_reported_clearly() {
    let d = data();
    // The target set as source: no labels.
    let mut c = Command::new(BIN);
    c.env("UDA_PROGRESS", "off").env_remove("UDA_RESUME_DIR");
    c.arg("--out")
        .arg(d.root.join("x"))
        .arg("--input")
        .arg(format!("source={}", d.root.join("target").display()));
    c.args([
        "-p",
        "backbone=enet",
        "-p",
        "device=cpu",
        "-p",
        "lambda_ent=0",
    ]);
    let o = c.output().unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("labels.zarr") && e.contains("target"), "{e}");

    // A crop larger than the images.
    let o = command(&d, &d.root.join("y"), &["crop=[128, 24]", "iterations=2"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("does not fit"), "{e}");

    // A bad param value names the param.
    let o = command(&d, &d.root.join("z"), &["eta=-1"])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("eta"), "{e}");
}

/// `precision: bf16` with channels-last weights trains, records its precision, saves fp32
/// weights in the usual layout (the file loads strictly into a plain network), and ends near the
/// fp32 run's losses without equalling them bitwise.
#[test]
fn bf16_channels_last_training_saves_fp32_weights_near_the_fp32_run() {
    let d = data();
    let fp32 = d.root.join("fp32");
    let bf16 = d.root.join("bf16");
    check(&command(&d, &fp32, &["iterations=3"]).output().unwrap());
    check(
        &command(
            &d,
            &bf16,
            &["iterations=3", "precision=bf16", "channels_last=true"],
        )
        .output()
        .unwrap(),
    );
    let (m32, m16) = (metrics(&fp32), metrics(&bf16));
    assert_eq!(m16["precision"], "bf16", "{m16}");
    assert_eq!(m16["skipped_steps"], 0, "{m16}");
    let tensors =
        uda_models::tch::Tensor::read_safetensors(bf16.join("model.safetensors")).unwrap();
    assert!(
        tensors
            .iter()
            .all(|(_, t)| t.kind() != uda_models::tch::Kind::BFloat16)
    );
    assert!(tensors.iter().all(|(_, t)| t.is_contiguous()));
    let mut vs = uda_models::tch::nn::VarStore::new(uda_models::tch::Device::Cpu);
    uda_train::ModelInfo::load_model(&bf16, &mut vs).unwrap();
    let loss = |m: &serde_json::Value| m["final_loss_total"].as_f64().expect("final_loss_total");
    let (a, b) = (loss(&m32), loss(&m16));
    assert!((a - b).abs() < 0.1 * a.abs(), "bf16 loss {b} vs fp32 {a}");
    assert_ne!(
        a, b,
        "bf16 ended bitwise on the fp32 loss: autocast did not apply"
    );
}
