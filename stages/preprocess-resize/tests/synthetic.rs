//! The embedded synthetic benchmark reads back through the real-layout readers.

use std::process::Command;
use uda_data::ImageSet;
use uda_synth::SynthParams;

#[test]
fn synthetic_gta5_and_cityscapes_preprocess_through_the_real_readers() {
    let d = tempfile::tempdir().unwrap();
    let synth = d.path().join("synth");
    let params = SynthParams {
        height: 64,
        width: 128,
        n_source: 3,
        n_target_train: 2,
        n_target_val: 2,
        n_previews: 0,
        ..Default::default()
    };
    uda_synth::write_benchmark(&synth, &params, &|| {}).unwrap();
    for (name, root, extra) in [
        ("gta5", synth.join("gta5"), vec!["-p", "dataset=gta5"]),
        (
            "cs-val",
            synth.join("cityscapes"),
            vec!["-p", "dataset=cityscapes", "-p", "split=val"],
        ),
        (
            "cs-train",
            synth.join("cityscapes"),
            vec![
                "-p",
                "dataset=cityscapes",
                "-p",
                "split=train",
                "-p",
                "labels=none",
            ],
        ),
    ] {
        let out = d.path().join(name);
        let input = format!("root={}", root.display());
        let mut args = vec![
            "--out",
            out.to_str().unwrap(),
            "--input",
            &input,
            "-p",
            "size=[32, 64]",
        ];
        args.extend(extra);
        let o = Command::new(env!("CARGO_BIN_EXE_preprocess-resize"))
            .args(&args)
            .env("UDA_PROGRESS", "off")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let set = ImageSet::open(&out).unwrap();
        assert_eq!((set.height(), set.width()), (32, 64));
        if let Some(labels) = set.labels() {
            let all = labels.read_range(0, labels.len()).unwrap();
            let classes: std::collections::BTreeSet<u8> =
                all.iter().copied().filter(|&v| v != 255).collect();
            assert!(classes.len() >= 5, "{name}: only classes {classes:?}");
            assert!(
                all.iter().all(|&v| v < 19 || v == 255),
                "{name}: label outside train ids"
            );
        }
    }
    assert_eq!(ImageSet::open(&d.path().join("gta5")).unwrap().len(), 3);
    assert_eq!(ImageSet::open(&d.path().join("cs-val")).unwrap().len(), 2);
}
