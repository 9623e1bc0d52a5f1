//! End-to-end: run the stage as the runner does and check what lands on disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use synth_scenes::SynthScenes;
use uda_data::classes::CLASSES;
use uda_stage::{Stage, StageArgs, run_stage};

fn run(out: &Path, params: &[(&str, &str)]) -> anyhow::Result<()> {
    let args = StageArgs {
        out: Some(out.to_path_buf()),
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..StageArgs::default()
    };
    run_stage::<SynthScenes>(&args)
}

const SMALL: [(&str, &str); 6] = [
    ("height", "64"),
    ("width", "128"),
    ("n_source", "7"),
    ("n_target_train", "6"),
    ("n_target_val", "5"),
    ("n_previews", "2"),
];

/// Relative path → bytes of every file under `root`, except metrics.json (it holds a timing).
fn tree(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if p.file_name().unwrap() != "metrics.json" {
                out.insert(
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

#[test]
fn writes_the_real_layouts_with_single_channel_label_ids() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("synth");
    run(&out, &SMALL).unwrap();
    let files = tree(&out);
    let names: Vec<String> = files
        .keys()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let count = |f: &dyn Fn(&str) -> bool| names.iter().filter(|n| f(n)).count();

    let gta_img = count(&|n| {
        n.starts_with("gta5/images/")
            && n.len() == "gta5/images/00000.png".len()
            && n.ends_with(".png")
    });
    let gta_lbl = count(&|n| n.starts_with("gta5/labels/") && n.ends_with(".png"));
    assert_eq!((gta_img, gta_lbl), (7, 7), "{names:#?}");
    assert!(
        files.contains_key(Path::new("gta5/images/00000.png"))
            && files.contains_key(Path::new("gta5/labels/00006.png"))
    );

    for (split, n) in [("train", 6), ("val", 5)] {
        let imgs: Vec<&String> = names
            .iter()
            .filter(|p| p.starts_with(&format!("cityscapes/leftImg8bit/{split}/")))
            .collect();
        assert_eq!(imgs.len(), n);
        for img in imgs {
            // cityscapes/leftImg8bit/{split}/{city}/{city}_{seq:06}_{frame:06}_leftImg8bit.png
            let parts: Vec<&str> = img.split('/').collect();
            assert_eq!(parts.len(), 5, "{img}");
            let (city, file) = (parts[3], parts[4]);
            let stem = file
                .strip_suffix("_leftImg8bit.png")
                .unwrap_or_else(|| panic!("{img}"));
            let fields: Vec<&str> = stem.split('_').collect();
            assert_eq!(fields.len(), 3, "{img}");
            assert_eq!(fields[0], city);
            assert!(
                fields[1..]
                    .iter()
                    .all(|f| f.len() == 6 && f.bytes().all(|b| b.is_ascii_digit())),
                "{img}"
            );
            let label = format!("cityscapes/gtFine/{split}/{city}/{stem}_gtFine_labelIds.png");
            assert!(
                files.contains_key(Path::new(&label)),
                "no label {label} for {img}"
            );
        }
    }

    let valid: Vec<u8> = CLASSES
        .iter()
        .map(|c| c.label_id)
        .chain([uda_synth::EGO_VEHICLE_ID])
        .collect();
    for name in names
        .iter()
        .filter(|n| n.contains("/labels/") || n.ends_with("_gtFine_labelIds.png"))
    {
        let img = image::open(out.join(name)).unwrap();
        assert_eq!(
            img.color(),
            image::ColorType::L8,
            "{name} must be 8-bit single-channel"
        );
        assert_eq!((img.width(), img.height()), (128, 64));
        let bad: Vec<u8> = img
            .to_luma8()
            .pixels()
            .map(|p| p.0[0])
            .filter(|v| !valid.contains(v))
            .collect();
        assert!(
            bad.is_empty(),
            "{name}: invalid label ids {:?}",
            &bad[..bad.len().min(5)]
        );
    }
    for name in names
        .iter()
        .filter(|n| n.contains("/images/") || n.ends_with("_leftImg8bit.png"))
    {
        let img = image::open(out.join(name)).unwrap();
        assert_eq!(img.color(), image::ColorType::Rgb8, "{name}");
        assert_eq!((img.width(), img.height()), (128, 64));
    }

    // Previews: 2 per split + 2 shift panels; image | labels (+ gap) is wider than one image.
    let previews: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("previews/"))
        .collect();
    assert_eq!(previews.len(), 8, "{previews:?}");
    let panel = image::open(out.join("previews/gta5_00.png")).unwrap();
    assert_eq!((panel.width(), panel.height()), (2 * 128 + 2, 64));
    let shift = image::open(out.join("previews/shift_01.png")).unwrap();
    assert_eq!(shift.width(), 3 * 128 + 4);
}

#[test]
fn the_dataset_readers_accept_the_output() {
    use uda_data::datasets::{DatasetKind, LabelPolicy, list_samples};
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("synth");
    run(&out, &SMALL).unwrap();
    let gta = list_samples(
        DatasetKind::Gta5,
        &out.join("gta5"),
        "",
        LabelPolicy::Required,
    )
    .unwrap();
    let train = list_samples(
        DatasetKind::Cityscapes,
        &out.join("cityscapes"),
        "train",
        LabelPolicy::Required,
    )
    .unwrap();
    let val = list_samples(
        DatasetKind::Cityscapes,
        &out.join("cityscapes"),
        "val",
        LabelPolicy::Required,
    )
    .unwrap();
    assert_eq!((gta.len(), train.len(), val.len()), (7, 6, 5));
    for s in gta.iter().chain(&train).chain(&val) {
        let label = uda_data::png::read_label(s.label.as_ref().unwrap()).unwrap();
        let image = uda_data::png::read_rgb(&s.image).unwrap();
        assert_eq!((label.channels, label.width, label.height), (1, 128, 64));
        assert_eq!((image.width, image.height), (128, 64));
    }
}

#[test]
fn same_seed_gives_identical_bytes_whatever_the_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    run(&a, &SMALL).unwrap();
    let one_thread = rayon_pool(1);
    one_thread.install(|| run(&b, &SMALL)).unwrap();
    let mut other = SMALL.to_vec();
    other.push(("seed", "1"));
    run(&c, &other).unwrap();
    let (ta, tb, tc) = (tree(&a), tree(&b), tree(&c));
    assert_eq!(ta.keys().collect::<Vec<_>>(), tb.keys().collect::<Vec<_>>());
    for (k, v) in &ta {
        assert!(v == &tb[k], "{} differs between runs", k.display());
    }
    let differing = ta
        .iter()
        .filter(|(k, v)| tc.get(*k).is_some_and(|w| w != *v))
        .count();
    assert!(
        differing >= ta.len() - 2,
        "another seed changed only {differing} of {} files",
        ta.len()
    );
}

fn rayon_pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

#[test]
fn metrics_and_class_table_describe_the_splits() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("synth");
    run(&out, &SMALL).unwrap();
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["gta5.images"], 7);
    assert_eq!(metrics["cityscapes_val.images"], 5);
    assert!(
        metrics["cityscapes_train.pixel_fraction.road"]
            .as_f64()
            .unwrap()
            > 0.1
    );
    assert!(metrics["gta5.classes_present"].as_u64().unwrap() >= 10);

    let file = std::fs::File::open(out.join("class_stats.parquet")).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<_> = reader.map(|b| b.unwrap()).collect();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 3 * 20, "19 classes + ignore, for each of 3 splits");
    let b = &batches[0];
    let names: Vec<String> = b
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        names,
        [
            "class_id",
            "class_name",
            "domain",
            "pixel_fraction",
            "image_fraction"
        ]
    );
    let pf = b
        .column(3)
        .as_any()
        .downcast_ref::<arrow::array::Float64Array>()
        .unwrap();
    let domain = b
        .column(2)
        .as_any()
        .downcast_ref::<arrow::array::StringArray>()
        .unwrap();
    for d in ["gta5", "cityscapes_train", "cityscapes_val"] {
        let total: f64 = (0..b.num_rows())
            .filter(|&i| domain.value(i) == d)
            .map(|i| pf.value(i))
            .sum();
        assert!((total - 1.0).abs() < 1e-9, "{d}: fractions sum to {total}");
    }
}

#[test]
fn bad_params_fail_naming_the_key_and_leave_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("synth");
    let e = run(&out, &[("shift.noise_sigma", "-1")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("shift.noise_sigma"), "{e}");
    let e = run(&out, &[("shift.glare", "1")]).unwrap_err().to_string();
    assert!(e.contains("glare"), "{e}");
    assert!(!out.exists());
    let described = SynthScenes::describe();
    assert_eq!(described.params["height"], 128);
    assert!(described.params["shift"]["illumination"].is_number());
}
