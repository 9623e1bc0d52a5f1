//! End-to-end: the `evaluate` binary in external mode, both argument spellings, and its errors.

use arrow::array::{Float64Array, StringArray, UInt64Array};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use uda_data::classes::TRAIN_TO_LABEL;
use uda_data::png::{write_gray, write_rgb};
use uda_data::table::{column, read_parquet};
use uda_metrics::external::{PredIds, match_predictions, score_pairs};
use uda_metrics::report::{CONFUSION, PER_CLASS, PER_IMAGE, SUMMARY};

const NAMES: [&str; 3] = [
    "lindau_000000_000019",
    "lindau_000001_000019",
    "munster_000004_000019",
];
const W: usize = 48;
const H: usize = 24;

fn run(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_evaluate"))
        .args(args)
        .env("UDA_PROGRESS", "off")
        .output()
        .unwrap();
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    out
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Train-id ground truth and prediction of image `i` (gt includes 255 = label id 0).
fn maps(i: usize) -> (Vec<u8>, Vec<u8>) {
    let gt: Vec<u8> = (0..W * H)
        .map(|p| {
            if p % 11 == 0 {
                255
            } else {
                ((p / 7 + i) % 19) as u8
            }
        })
        .collect();
    let pred: Vec<u8> = gt
        .iter()
        .enumerate()
        .map(|(p, &g)| {
            if p % 3 == 0 {
                ((p + i) % 19) as u8
            } else {
                g % 19
            }
        })
        .collect();
    (gt, pred)
}

/// Cityscapes root (gtFine label ids + leftImg8bit images) and two prediction folders: train
/// ids and the same predictions as label ids.
fn fixture(d: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (root, train, label) = (d.join("cs"), d.join("pred_train"), d.join("pred_label"));
    for (i, name) in NAMES.iter().enumerate() {
        let city = name.split('_').next().unwrap();
        let (gt, pred) = maps(i);
        let gt_ids: Vec<u8> = gt.iter().map(|&t| TRAIN_TO_LABEL[t as usize]).collect();
        write_gray(
            &root.join(format!("gtFine/val/{city}/{name}_gtFine_labelIds.png")),
            W,
            H,
            &gt_ids,
        )
        .unwrap();
        write_rgb(
            &root.join(format!("leftImg8bit/val/{city}/{name}_leftImg8bit.png")),
            2 * W,
            2 * H,
            &vec![90; 4 * W * H * 3],
        )
        .unwrap();
        write_gray(&train.join(format!("{name}.png")), W, H, &pred).unwrap();
        let pred_ids: Vec<u8> = pred.iter().map(|&t| TRAIN_TO_LABEL[t as usize]).collect();
        write_gray(
            &label.join(format!("{city}/{name}_leftImg8bit.png")),
            W,
            H,
            &pred_ids,
        )
        .unwrap();
    }
    (root, train, label)
}

fn ious(out: &Path) -> Vec<Option<f64>> {
    let path = out.join(PER_CLASS);
    let t = read_parquet(&path).unwrap();
    column::<Float64Array>(&path, &t, "iou")
        .unwrap()
        .iter()
        .collect()
}

#[test]
fn both_spellings_score_like_the_library_and_write_everything() {
    let d = tempfile::tempdir().unwrap();
    let (root, train, label) = fixture(d.path());
    let out1 = d.path().join("out1");
    let o = run(&[
        "--pred-dir",
        s(&train),
        "--gt-root",
        s(&root),
        "--split",
        "val",
        "--out",
        s(&out1),
    ]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("mIoU"));

    let expected = {
        let pairs = match_predictions(&train, &root, "val").unwrap();
        let images = score_pairs(&pairs, PredIds::Train, || {}).unwrap();
        let mut total = uda_metrics::ConfusionMatrix::new();
        images.iter().for_each(|i| total.merge(&i.matrix));
        total.scores()
    };
    let got = ious(&out1);
    assert_eq!(
        got,
        expected.classes.iter().map(|c| c.iou).collect::<Vec<_>>()
    );
    assert!(got.iter().all(Option::is_some));

    let path = out1.join(SUMMARY);
    let t = read_parquet(&path).unwrap();
    assert_eq!(
        column::<Float64Array>(&path, &t, "miou").unwrap().value(0),
        expected.miou.unwrap()
    );
    assert_eq!(
        column::<UInt64Array>(&path, &t, "images").unwrap().value(0),
        3
    );
    assert_eq!(
        column::<StringArray>(&path, &t, "mode").unwrap().value(0),
        "external"
    );
    assert!(
        column::<StringArray>(&path, &t, "params")
            .unwrap()
            .value(0)
            .contains("\"pred_ids\":\"train\"")
    );
    let path = out1.join(PER_IMAGE);
    let t = read_parquet(&path).unwrap();
    assert_eq!(
        column::<StringArray>(&path, &t, "name").unwrap().value(2),
        NAMES[2]
    );
    assert_eq!(
        read_parquet(&out1.join(CONFUSION)).unwrap().num_rows(),
        19 * 20
    );

    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out1.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["miou"].as_f64(), expected.miou);
    assert_eq!(metrics["images"], 3);
    // Panels: image (96x48 shrunk to the 48x24 label size) | gt | prediction.
    let panel =
        uda_data::png::read_rgb(&out1.join("panels/00000_lindau_000000_000019.png")).unwrap();
    assert_eq!((panel.width, panel.height), (3 * W + 4, H));
    assert_eq!(&panel.pixels[..3], &[90, 90, 90]);
    assert_eq!(std::fs::read_dir(out1.join("panels")).unwrap().count(), 3);

    // The contract spelling, label-id predictions in city folders with a suffix: same scores.
    let out2 = d.path().join("out2");
    let o = run(&[
        "--out",
        s(&out2),
        "--input",
        &format!("pred_dir={}", s(&label)),
        "--input",
        &format!("gt_root={}", s(&root)),
        "-p",
        "split=val",
        "-p",
        "pred_ids=label",
        "-p",
        "panels=0",
    ]);
    assert!(o.status.success());
    assert_eq!(ious(&out2), got);
    assert!(!out2.join("panels").exists());

    // Label ids read as train ids: most values are outside 0..=18, and the stage says so.
    let out3 = d.path().join("out3");
    let o = run(&[
        "--pred-dir",
        s(&label),
        "--gt-root",
        s(&root),
        "--out",
        s(&out3),
    ]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("pred_ids=label"));
}

#[test]
fn missing_extra_and_mismatched_predictions_fail_without_output() {
    let d = tempfile::tempdir().unwrap();
    let (root, train, _) = fixture(d.path());
    std::fs::remove_file(train.join(format!("{}.png", NAMES[1]))).unwrap();
    write_gray(&train.join("ulm_000000_000001.png"), W, H, &vec![0; W * H]).unwrap();
    let out = d.path().join("out");
    let o = run(&[
        "--pred-dir",
        s(&train),
        "--gt-root",
        s(&root),
        "--out",
        s(&out),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(NAMES[1]) && err.contains("ulm_000000_000001.png"),
        "{err}"
    );
    assert!(!out.exists());

    std::fs::remove_file(train.join("ulm_000000_000001.png")).unwrap();
    write_gray(
        &train.join(format!("{}.png", NAMES[1])),
        W + 1,
        H,
        &vec![0; (W + 1) * H],
    )
    .unwrap();
    let o = run(&[
        "--pred-dir",
        s(&train),
        "--gt-root",
        s(&root),
        "--out",
        s(&out),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("differ in size") && err.contains(&format!("{}x{H}", W + 1)),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn inputs_of_both_modes_or_none_are_errors() {
    let d = tempfile::tempdir().unwrap();
    let (root, train, _) = fixture(d.path());
    let out = d.path().join("out");
    let o = run(&[
        "--pred-dir",
        s(&train),
        "--gt-root",
        s(&root),
        "--input",
        &format!("data={}", s(&root)),
        "--out",
        s(&out),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("both given"));
    let o = run(&["--out", s(&out)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nothing to evaluate"));
    let o = run(&["--gt-root", s(&root), "--out", s(&out)]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("needs both"));
    let o = run(&["--describe"]);
    assert!(o.status.success());
    let desc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(desc["params"]["pred_ids"], "train");
    assert!(!out.exists());
}

#[test]
fn shards_and_merge_write_the_unsharded_folder_byte_for_byte() {
    use uda_testing::shards::{Binary, differences, run as run_bin, run_sharded};
    let d = tempfile::tempdir().unwrap();
    let (root, train, _) = fixture(d.path());
    let bin = Binary::new(Path::new(env!("CARGO_BIN_EXE_evaluate")));
    let args: Vec<String> = ["--pred-dir", s(&train), "--gt-root", s(&root)]
        .iter()
        .map(|a| a.to_string())
        .collect();
    let whole = d.path().join("whole");
    let mut whole_args = vec!["--out".to_string(), s(&whole).to_string()];
    whole_args.extend(args.clone());
    run_bin(bin, &whole_args).unwrap();
    assert!(whole.join("panels").read_dir().unwrap().count() == NAMES.len());
    // 2 shards (1 + 2 pairs) and 4 (more shards than pairs).
    for count in [2, 4] {
        let merged = d.path().join(format!("merged{count}"));
        let shards = d.path().join(format!("shards{count}"));
        run_sharded(bin, &args, &shards, &merged, count).unwrap();
        assert_eq!(
            differences(&whole, &merged),
            Vec::<String>::new(),
            "{count} shards"
        );
    }
}
