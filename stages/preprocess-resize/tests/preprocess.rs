//! End-to-end tests of the `preprocess-resize` binary on datasets written in the real layouts.

use std::path::Path;
use std::process::Command;
use uda_data::imageset::MANIFEST;
use uda_data::png::{write_gray, write_rgb};
use uda_data::{ImageSet, table};

const BIN: &str = env!("CARGO_BIN_EXE_preprocess-resize");

/// A GTA5-layout dataset of `n` images (h×w): pixel colour and label id depend on the index.
fn write_gta5(root: &Path, n: usize, h: usize, w: usize) {
    for i in 0..n {
        let rgb: Vec<u8> = (0..h * w * 3).map(|p| ((p + i * 17) % 251) as u8).collect();
        write_rgb(&root.join(format!("images/{i:05}.png")), w, h, &rgb).unwrap();
        // Left half road (id 7), right half car (id 26), last row unlabeled (id 0).
        let lab: Vec<u8> = (0..h * w)
            .map(|p| {
                if p / w == h - 1 {
                    0
                } else if p % w < w / 2 {
                    7
                } else {
                    26
                }
            })
            .collect();
        write_gray(&root.join(format!("labels/{i:05}.png")), w, h, &lab).unwrap();
    }
}

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("UDA_PROGRESS", "off")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn preprocess(root: &Path, out: &Path, extra: &[&str]) -> (bool, String) {
    let input = format!("root={}", root.display());
    let mut args = vec!["--out", out.to_str().unwrap(), "--input", &input];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn gta5_resize_maps_ids_and_writes_an_imageset() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("gta5");
    write_gta5(&root, 5, 20, 40);
    let out = d.path().join("out");
    let (ok, err) = preprocess(
        &root,
        &out,
        &[
            "-p",
            "size=[10, 20]",
            "-p",
            "images_per_shard=2",
            "-p",
            "previews=2",
        ],
    );
    assert!(ok, "{err}");
    let set = ImageSet::open(&out).unwrap();
    assert_eq!((set.len(), set.height(), set.width()), (5, 10, 20));
    let labels = set.labels().unwrap().read(3).unwrap();
    // Train ids: road 0 on the left, car 13 on the right, ignore 255 in the bottom row.
    assert_eq!(labels[0], 0);
    assert_eq!(labels[19], 13);
    assert_eq!(labels[9 * 20 + 5], 255);
    assert!(labels.iter().all(|&v| v == 0 || v == 13 || v == 255));
    let manifest = table::read_parquet(&out.join(MANIFEST)).unwrap();
    assert_eq!(manifest.num_rows(), 5);
    let names =
        table::column::<arrow::array::StringArray>(Path::new("m"), &manifest, "name").unwrap();
    assert_eq!(names.value(4), "00004");
    let w = table::column::<arrow::array::UInt32Array>(Path::new("m"), &manifest, "orig_width")
        .unwrap();
    assert_eq!(w.value(0), 40);
    assert!(out.join("previews/00001.png").exists() && !out.join("previews/00002.png").exists());
    assert!(out.join("metrics.json").exists());
}

#[test]
fn output_is_identical_whatever_the_thread_count() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("gta5");
    write_gta5(&root, 6, 16, 24);
    let mut arrays = Vec::new();
    for threads in ["1", "2"] {
        let out = d.path().join(format!("out{threads}"));
        let input = format!("root={}", root.display());
        let o = Command::new(BIN)
            .args([
                "--out",
                out.to_str().unwrap(),
                "--input",
                &input,
                "-p",
                "size=[8, 12]",
                "-p",
                "images_per_shard=4",
            ])
            .env("RAYON_NUM_THREADS", threads)
            .env("UDA_PROGRESS", "off")
            .output()
            .unwrap();
        assert!(o.status.success());
        let set = ImageSet::open(&out).unwrap();
        arrays.push((
            set.images().read_range(0, 6).unwrap(),
            set.labels().unwrap().read_range(0, 6).unwrap(),
        ));
    }
    assert_eq!(arrays[0], arrays[1]);
}

#[test]
fn cityscapes_split_without_labels() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("cs");
    for (city, n) in [
        ("aachen", "aachen_000000_000019"),
        ("bonn", "bonn_000001_000002"),
    ] {
        write_rgb(
            &root.join(format!("leftImg8bit/train/{city}/{n}_leftImg8bit.png")),
            8,
            4,
            &[9; 96],
        )
        .unwrap();
    }
    let out = d.path().join("out");
    let (ok, err) = preprocess(
        &root,
        &out,
        &[
            "-p",
            "dataset=cityscapes",
            "-p",
            "labels=none",
            "-p",
            "size=[2, 4]",
        ],
    );
    assert!(ok, "{err}");
    let set = ImageSet::open(&out).unwrap();
    assert_eq!(set.len(), 2);
    assert!(set.labels().is_none());
    assert!(set.images().read(1).unwrap().iter().all(|&v| v == 9));
}

/// Each bad input fails the stage with a message naming the file, and leaves no output behind.
#[test]
fn bad_inputs_fail_cleanly_with_named_files() {
    type Case<'a> = (&'a str, Box<dyn Fn(&Path)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "missing label",
            Box::new(|r: &Path| std::fs::remove_file(r.join("labels/00001.png")).unwrap()),
            "00001",
        ),
        (
            "size mismatch",
            Box::new(|r: &Path| write_gray(&r.join("labels/00002.png"), 5, 5, &[7; 25]).unwrap()),
            "labels/00002.png",
        ),
        (
            "truncated png",
            Box::new(|r: &Path| {
                let p = r.join("images/00000.png");
                let b = std::fs::read(&p).unwrap();
                std::fs::write(&p, &b[..b.len() / 2]).unwrap();
            }),
            "images/00000.png",
        ),
        (
            "rgb label",
            Box::new(|r: &Path| {
                write_rgb(&r.join("labels/00001.png"), 40, 20, &[7; 2400]).unwrap()
            }),
            "3 channels",
        ),
        (
            "empty dataset",
            Box::new(|r: &Path| {
                std::fs::remove_dir_all(r.join("images")).unwrap();
                std::fs::create_dir(r.join("images")).unwrap();
            }),
            "empty dataset",
        ),
    ];
    for (what, corrupt, expect) in cases {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("gta5");
        write_gta5(&root, 3, 20, 40);
        corrupt(&root);
        let out = d.path().join("out");
        let (ok, err) = preprocess(&root, &out, &["-p", "size=[10, 20]"]);
        assert!(!ok, "{what}: should fail");
        assert!(
            err.contains(expect),
            "{what}: error should mention '{expect}': {err}"
        );
        let left: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            left,
            vec![std::ffi::OsString::from("gta5")],
            "{what}: output left behind"
        );
    }
}

#[test]
fn bad_params_name_the_key() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("gta5");
    write_gta5(&root, 1, 4, 4);
    let (ok, err) = preprocess(&root, &d.path().join("o"), &["-p", "sise=[1, 2]"]);
    assert!(!ok && err.contains("sise"), "{err}");
    let (ok, err) = preprocess(&root, &d.path().join("o"), &["-p", "dataset=kitti"]);
    assert!(!ok && err.contains("kitti"), "{err}");
}

/// The inputs and params of the sharding tests: 7 images in Zarr shards of 2 (4 chunks).
fn shard_test_args(root: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--input".to_string(),
        format!("root={}", root.display()),
        "-p".into(),
        "size=[8, 12]".into(),
        "-p".into(),
        "images_per_shard=2".into(),
        "-p".into(),
        "previews=3".into(),
    ]
    .into();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

#[test]
fn shard_tasks_and_merge_write_the_unsharded_folder_byte_for_byte() {
    use uda_testing::shards::{Binary, differences, run, run_sharded, tree};
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("gta5");
    write_gta5(&root, 7, 16, 24);
    let bin = Binary::new(Path::new(BIN));
    for (name, extra) in [
        ("labels", &[][..]),
        ("nolabels", &["-p", "labels=none"][..]),
    ] {
        let args = shard_test_args(&root, extra);
        let whole = d.path().join(format!("{name}-whole"));
        let mut whole_args = vec!["--out".to_string(), whole.display().to_string()];
        whole_args.extend(args.clone());
        run(bin, &whole_args).unwrap();
        let files = tree(&whole);
        // zarr.json + 4 chunks per array, manifest, metrics, 3 previews.
        let arrays = if name == "labels" { 2 } else { 1 };
        assert_eq!(
            files.len(),
            5 * arrays + 5,
            "{:?}",
            files.iter().map(|f| &f.0).collect::<Vec<_>>()
        );
        // 3 shards (chunks 1 + 1 + 2) and 6 shards (more than the 4 chunks: 2 empty).
        for count in [3, 6] {
            let shards = d.path().join(format!("{name}-shards{count}"));
            let merged = d.path().join(format!("{name}-merged{count}"));
            let logs = run_sharded(bin, &args, &shards, &merged, count).unwrap();
            assert_eq!(
                differences(&whole, &merged),
                Vec::<String>::new(),
                "{name}, {count} shards"
            );
            assert!(
                logs[count - 1].contains(r#""uda_progress""#),
                "{}",
                logs[count - 1]
            );
            let record: serde_json::Value =
                serde_json::from_slice(&std::fs::read(shards.join("0/shard.json")).unwrap())
                    .unwrap();
            assert_eq!(
                (record["index"].as_u64(), record["count"].as_u64()),
                (Some(0), Some(count as u64))
            );
        }
    }
}

#[test]
fn a_merge_with_a_missing_shard_names_it_and_writes_nothing() {
    use uda_testing::shards::{Binary, merge, run_sharded};
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("gta5");
    write_gta5(&root, 7, 16, 24);
    let args = shard_test_args(&root, &[]);
    let shards = d.path().join("shards");
    let bin = Binary::new(Path::new(BIN));
    run_sharded(bin, &args, &shards, &d.path().join("merged"), 3).unwrap();
    std::fs::remove_dir_all(shards.join("2")).unwrap();
    std::fs::remove_file(shards.join("0/shard.json")).unwrap();
    let out = d.path().join("again");
    let err = merge(bin, &args, &shards, &out).unwrap_err();
    assert!(err.contains("2 of 3 shards missing or unfinished"), "{err}");
    assert!(
        err.contains("0 (no shard.json") && err.contains("2 (no folder"),
        "{err}"
    );
    assert!(err.contains("--shard I/3"), "{err}");
    assert!(!out.exists());
    // Other params than the tasks': refused, naming the param.
    let other = shard_test_args(&root, &["-p", "previews=1"]);
    run_sharded(bin, &other, &d.path().join("s2"), &d.path().join("m2"), 2).unwrap();
    let err = merge(bin, &args, &d.path().join("s2"), &out).unwrap_err();
    assert!(err.contains("previews: shard 1 vs merge 3"), "{err}");
}

#[test]
fn describe_says_shardable() {
    let out = Command::new(BIN).arg("--describe").output().unwrap();
    let d: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d["shardable"], serde_json::json!(true));
}
