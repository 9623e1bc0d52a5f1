//! Sharded model-mode evaluation: shard tasks plus a merge write the unsharded folder byte for
//! byte, and a merge with a missing shard names it.

mod common;

use common::{checkpoint, imageset};
use std::path::Path;
use uda_testing::shards::{Binary, differences, merge, run, run_sharded, tree};

const BIN: &str = env!("CARGO_BIN_EXE_evaluate");
/// One libtorch thread, as the other model-mode tests (see `common::run_stage`).
const ENVS: &[(&str, &str)] = &[("UDA_THREADS", "1")];

fn bin() -> Binary<'static> {
    Binary {
        path: Path::new(BIN),
        envs: ENVS,
    }
}

/// The inputs and params of a model-mode run on `d`'s fixtures.
fn model_args(d: &Path, labels: Option<&str>, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "--input".to_string(),
        format!("model={}", d.join("ckpt").display()),
        "--input".into(),
        format!("data={}", d.join("data").display()),
        "-p".into(),
        "device=cpu".into(),
    ];
    if let Some(l) = labels {
        args.extend(["--input".into(), format!("labels={}", d.join(l).display())]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn fixtures(d: &Path) {
    checkpoint(&d.join("ckpt"), 3, false);
    // Three images at 16x32; labels at the same size, and at 2x in a separate set.
    imageset(&d.join("data"), 16, 32, true, &["a", "b", "c"]);
    imageset(&d.join("full"), 32, 64, true, &["a", "b", "c"]);
}

#[test]
fn model_mode_shards_and_merge_write_the_unsharded_folder_byte_for_byte() {
    let d = tempfile::tempdir().unwrap();
    fixtures(d.path());
    let cases = [
        // Batches of 2 (shards hold whole batches: 0..2 and 2..3), panels of the first 2.
        ("b2", None, &["-p", "batch_size=2", "-p", "panels=2"][..]),
        // Batches of 1, panels of every image (spread over the shards), labels at 2x.
        (
            "b1",
            Some("full"),
            &["-p", "batch_size=1", "-p", "panels=3"][..],
        ),
    ];
    for (name, labels, extra) in cases {
        let args = model_args(d.path(), labels, extra);
        let whole = d.path().join(format!("{name}-whole"));
        let mut whole_args = vec!["--out".to_string(), whole.display().to_string()];
        whole_args.extend(args.clone());
        run(bin(), &whole_args).unwrap();
        let files: Vec<String> = tree(&whole).into_iter().map(|(p, _)| p).collect();
        assert!(
            files.iter().filter(|p| p.starts_with("panels/")).count() >= 2
                && files.contains(&"per_image.parquet".to_string())
                && files.contains(&"metrics.json".to_string()),
            "{files:?}"
        );
        // 2 and 3 shards, and 5: more shards than images, so some are empty.
        for count in [2, 3, 5] {
            let shards = d.path().join(format!("{name}-shards{count}"));
            let merged = d.path().join(format!("{name}-merged{count}"));
            let logs = run_sharded(bin(), &args, &shards, &merged, count).unwrap();
            assert_eq!(
                differences(&whole, &merged),
                Vec::<String>::new(),
                "{name}: {count} shards"
            );
            assert!(
                logs.iter().any(|l| l.contains(r#""uda_progress""#)),
                "{logs:?}"
            );
        }
    }
}

#[test]
fn a_merge_with_a_missing_shard_names_it() {
    let d = tempfile::tempdir().unwrap();
    fixtures(d.path());
    let args = model_args(d.path(), None, &["-p", "batch_size=1"]);
    let shards = d.path().join("shards");
    run_sharded(bin(), &args, &shards, &d.path().join("merged"), 3).unwrap();
    std::fs::remove_dir_all(shards.join("1")).unwrap();
    let out = d.path().join("again");
    let err = merge(bin(), &args, &shards, &out).unwrap_err();
    assert!(
        err.contains("1 of 3 shards missing or unfinished: 1 (no folder"),
        "{err}"
    );
    assert!(err.contains("rerun those tasks"), "{err}");
    assert!(!out.exists());
}
