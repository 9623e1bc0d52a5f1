//! End to end: the stage binary on small ImageSets, its outputs read back, and its errors.

use arrow::array::{Float64Array, StringArray, UInt64Array};
use fda_translate_cache::PAIRS;
use std::path::{Path, PathBuf};
use std::process::Command;
use uda_data::imageset::{IMAGES, ImageSet, LABELS};
use uda_data::table::{column, read_parquet};
use uda_data::zarr::{ArrayLayout, ImageArrayWriter};
use uda_fda::{Fda, Pairing, Window};

const BIN: &str = env!("CARGO_BIN_EXE_fda-translate-cache");

/// An ImageSet of `n` smooth random-ish images (labels optional), 2 images per shard.
fn make_set(dir: &Path, n: usize, h: usize, w: usize, seed: u64, labels: bool) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let layout = ArrayLayout {
        len: n,
        height: h,
        width: w,
        channels: 3,
        images_per_shard: 2,
    };
    let images = ImageArrayWriter::create(&dir.join(IMAGES), layout).unwrap();
    let label_writer = labels.then(|| {
        ImageArrayWriter::create(
            &dir.join(LABELS),
            ArrayLayout {
                channels: 1,
                ..layout
            },
        )
        .unwrap()
    });
    let mut s = seed | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    for shard in 0..images.shard_count() {
        let range = images.shard_range(shard);
        let mut img = Vec::new();
        let mut lab = Vec::new();
        for i in range {
            let tint = [next() % 120, next() % 120, next() % 120];
            for y in 0..h {
                for x in 0..w {
                    for t in tint {
                        img.push((t + (y * 3 + x) as u64 % 100 + next() % 30) as u8);
                    }
                    lab.push(((x + i) % 19) as u8);
                }
            }
        }
        images.write_shard(shard, &img).unwrap();
        if let Some(l) = &label_writer {
            l.write_shard(shard, &lab).unwrap();
        }
    }
    dir.to_path_buf()
}

fn run(out: &Path, source: &Path, target: &Path, params: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("--out").arg(out);
    cmd.arg("--input")
        .arg(format!("source={}", source.display()));
    cmd.arg("--input")
        .arg(format!("target={}", target.display()));
    for p in params {
        cmd.arg("--param").arg(p);
    }
    cmd.env("UDA_PROGRESS", "jsonl");
    cmd.output().unwrap()
}

fn expect_ok(output: &std::process::Output) {
    assert!(
        output.status.success(),
        "stage failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn expect_err(output: &std::process::Output, needles: &[&str]) {
    assert!(!output.status.success(), "stage should have failed");
    let err = String::from_utf8_lossy(&output.stderr);
    for n in needles {
        assert!(err.contains(n), "error should mention {n:?}: {err}");
    }
}

/// Every translated image equals the library's translation of the recorded pair.
fn check_direction(
    out: &Path,
    content: &ImageSet,
    style: &ImageSet,
    partners: &[usize],
    beta: f64,
    window: Window,
) {
    let set = ImageSet::open(out).unwrap();
    assert_eq!(
        set.images().layout(),
        content.images().layout(),
        "same shape and chunking as the input"
    );
    let fda = Fda::<f64>::new(content.height(), content.width(), 3, beta, window).unwrap();
    let mut changed = 0;
    for (i, &j) in partners.iter().enumerate() {
        let src = content.images().read(i).unwrap();
        let style_amp = fda.amplitude(&style.images().read(j).unwrap()).unwrap();
        let mut want = vec![0u8; src.len()];
        fda.translate(&src, &style_amp, &mut want).unwrap();
        let got = set.images().read(i).unwrap();
        assert_eq!(got, want, "{}: image {i}", out.display());
        changed += usize::from(got != src);
    }
    assert!(changed > 0, "no image changed in {}", out.display());
    match content.labels() {
        Some(l) => {
            let copied = set.labels().expect("labels carried over");
            for i in 0..l.len() {
                assert_eq!(copied.read(i).unwrap(), l.read(i).unwrap());
            }
        }
        None => assert!(set.labels().is_none()),
    }
}

#[test]
fn single_beta_writes_both_directions_pairs_and_previews() {
    let d = tempfile::tempdir().unwrap();
    let (h, w) = (24, 40);
    let source = make_set(&d.path().join("gta"), 5, h, w, 11, true);
    let target = make_set(&d.path().join("cs"), 3, h, w, 12, false);
    let out = d.path().join("out");
    expect_ok(&run(
        &out,
        &source,
        &target,
        &["beta=0.1", "seed=7", "previews=2"],
    ));

    let (src_set, trg_set) = (
        ImageSet::open(&source).unwrap(),
        ImageSet::open(&target).unwrap(),
    );
    let pairing = Pairing::new(5, 3, 7).unwrap();
    check_direction(
        &out.join("s2t"),
        &src_set,
        &trg_set,
        &pairing.source_to_target,
        0.1,
        Window::Square,
    );
    check_direction(
        &out.join("t2s"),
        &trg_set,
        &src_set,
        &pairing.target_to_source,
        0.1,
        Window::Square,
    );

    let path = out.join(PAIRS);
    let table = read_parquet(&path).unwrap();
    assert_eq!(table.num_rows(), 8);
    let dir = column::<StringArray>(&path, &table, "direction").unwrap();
    let idx = column::<UInt64Array>(&path, &table, "index").unwrap();
    let partner = column::<UInt64Array>(&path, &table, "partner_index").unwrap();
    let beta = column::<Float64Array>(&path, &table, "beta").unwrap();
    for r in 0..8 {
        let (want_dir, i, want) = if r < 5 {
            ("s2t", r, pairing.source_to_target[r])
        } else {
            ("t2s", r - 5, pairing.target_to_source[r - 5])
        };
        assert_eq!(
            (
                dir.value(r),
                idx.value(r) as usize,
                partner.value(r) as usize
            ),
            (want_dir, i, want)
        );
        assert_eq!(beta.value(r), 0.1);
    }

    let mut previews: Vec<String> = std::fs::read_dir(out.join("previews"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    previews.sort();
    assert_eq!(
        previews,
        [
            "s2t-00000.png",
            "s2t-00002.png",
            "t2s-00000.png",
            "t2s-00001.png"
        ]
    );
    let panel = image::open(out.join("previews/s2t-00000.png")).unwrap();
    assert_eq!(
        (panel.width(), panel.height()),
        (3 * w as u32 + 4, h as u32)
    );

    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["beta"], 0.1);
    assert_eq!(metrics["window_rows"], 5); // b = floor(24·0.1) = 2
    assert!(metrics["s2t_images_per_s"].as_f64().unwrap() > 0.0);
}

/// β is swept by the runner (`foreach`), not by the stage: a list is refused before any work.
#[test]
fn beta_list_is_refused_pointing_at_foreach() {
    let d = tempfile::tempdir().unwrap();
    let source = make_set(&d.path().join("gta"), 3, 24, 40, 1, true);
    let target = make_set(&d.path().join("cs"), 2, 24, 40, 2, false);
    let out = d.path().join("out");
    expect_err(
        &run(&out, &source, &target, &["beta=[0.1, 0.2]"]),
        &[
            "param beta",
            "a list of betas is not accepted",
            "foreach: {beta:",
        ],
    );
    assert!(!out.exists());
    let (report, status) = check(&["-p", "beta=[0.1]"]);
    assert!(status.success());
    assert_eq!(report["problems"][0]["param"], "beta", "{report}");
}

#[test]
fn bad_params_and_inputs_are_named() {
    let d = tempfile::tempdir().unwrap();
    let source = make_set(&d.path().join("gta"), 2, 24, 40, 1, true);
    let target = make_set(&d.path().join("cs"), 2, 24, 40, 2, false);
    let other = make_set(&d.path().join("small"), 2, 20, 40, 3, false);
    let out = d.path().join("out");
    expect_err(
        &run(&out, &source, &target, &["beta=1.5"]),
        &["param beta", "1.5", "(0, 1)"],
    );
    expect_err(
        &run(&out, &source, &target, &["beta=0"]),
        &["param beta", "= 0"],
    );
    expect_err(
        &run(&out, &source, &target, &["beta=0.6"]),
        &["beta = 0.6", "window", "24×40"],
    );
    expect_err(
        &run(&out, &source, &target, &["window=circle"]),
        &["circle"],
    );
    expect_err(
        &run(&out, &source, &other, &["beta=0.01"]),
        &["source", "target", "40×24", "40×20", "images.zarr"],
    );
    expect_err(
        &run(&out, &source, d.path(), &["beta=0.01"]),
        &["input 'target'", "not an ImageSet"],
    );
    assert!(!out.exists(), "a failed stage leaves no output folder");
}

/// `--check` as the runner calls it: no `--out`, no inputs, one JSON object, exit 0 either way.
fn check(args: &[&str]) -> (serde_json::Value, std::process::ExitStatus) {
    let o = Command::new(BIN)
        .arg("--check")
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8(o.stdout).unwrap();
    let value = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("--check printed {text:?}: {e}"));
    (value, o.status)
}

#[test]
fn check_reports_bad_params_as_json_without_running() {
    let d = tempfile::tempdir().unwrap();
    let good = d.path().join("good.yaml");
    std::fs::write(&good, "beta: 0.05\nwindow: rect\n").unwrap();
    let (report, status) = check(&["--params", good.to_str().unwrap()]);
    assert!(status.success());
    assert_eq!(report, serde_json::json!({"ok": true}));

    let bad = d.path().join("bad.yaml");
    std::fs::write(&bad, "beta: 1.5\nwindow: circle\nbetta: 1\n").unwrap();
    let (report, status) = check(&["--params", bad.to_str().unwrap()]);
    assert!(status.success());
    assert_eq!(report["ok"], false, "{report}");
    let mut params: Vec<&str> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["param"].as_str().unwrap())
        .collect();
    params.sort();
    // Unknown and mistyped keys first stop the parse, so beta's range is not looked at yet.
    assert_eq!(params, ["betta", "window"], "{report}");

    let (report, status) = check(&["-p", "beta=1.5"]);
    assert!(status.success());
    assert_eq!(report["problems"][0]["param"], "beta", "{report}");
    assert!(
        report["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("(0, 1)"),
        "{report}"
    );

    let o = Command::new(BIN)
        .args(["--check", "--params", "/nonexistent/params.yaml"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(o.stdout.is_empty());
}

/// `metrics.json` without the wall-clock figures, which differ between any two runs.
fn metrics_without_timings(dir: &Path) -> serde_json::Value {
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("metrics.json")).unwrap()).unwrap();
    for key in ["seconds", "s2t_images_per_s", "t2s_images_per_s", "threads"] {
        assert!(m.as_object_mut().unwrap().remove(key).is_some(), "{key}");
    }
    m
}

#[test]
fn shards_and_merge_write_the_unsharded_folder_byte_for_byte() {
    use uda_testing::shards::{Binary, differences, merge, run as run_bin, run_sharded};
    let d = tempfile::tempdir().unwrap();
    // Source: 5 images in 3 Zarr shards; target: 3 images in 2.
    let source = make_set(&d.path().join("gta"), 5, 24, 40, 11, true);
    let target = make_set(&d.path().join("cs"), 3, 24, 40, 12, false);
    let bin = Binary::new(Path::new(BIN));
    let args: Vec<String> = vec![
        "--input".into(),
        format!("source={}", source.display()),
        "--input".into(),
        format!("target={}", target.display()),
        "-p".into(),
        "beta=0.05".into(),
        "-p".into(),
        "previews=3".into(),
    ];
    let whole = d.path().join("whole");
    let mut whole_args = vec!["--out".to_string(), whole.display().to_string()];
    whole_args.extend(args.clone());
    run_bin(bin, &whole_args).unwrap();
    // 2 shards, and 4: more than either set's Zarr shards, so some tasks translate nothing.
    for count in [2, 4] {
        let shards = d.path().join(format!("shards{count}"));
        let merged = d.path().join(format!("merged{count}"));
        let logs = run_sharded(bin, &args, &shards, &merged, count).unwrap();
        assert!(logs[0].contains(r#""uda_progress""#), "{}", logs[0]);
        assert_eq!(
            differences(&whole, &merged),
            ["metrics.json"],
            "{count} shards: only the timings may differ"
        );
        assert_eq!(
            metrics_without_timings(&merged),
            metrics_without_timings(&whole)
        );
    }
    // A missing shard is named, and nothing is written.
    std::fs::remove_dir_all(d.path().join("shards4/3")).unwrap();
    let out = d.path().join("incomplete");
    let err = merge(bin, &args, &d.path().join("shards4"), &out).unwrap_err();
    assert!(
        err.contains("1 of 4 shards missing or unfinished: 3 (no folder"),
        "{err}"
    );
    assert!(!out.exists());
}
