//! Model mode: a tiny random ENet checkpoint scored on small ImageSets, checked against
//! predictions computed here image by image; and the scoring loop with fake predictors.

mod common;

use arrow::array::{Float64Array, StringArray};
use common::{
    N, checkpoint, confusion, imageset, label, model_info, reference_prediction, run_stage,
};
use evaluate::{EvaluateParams, ModelEvalSet, Predictor, score_imageset};
use uda_data::table::{column, read_parquet};
use uda_metrics::ConfusionMatrix;
use uda_metrics::report::{PER_IMAGE, SUMMARY};
use uda_models::Backbone;

#[test]
fn random_enet_checkpoint_scores_as_its_predictions() {
    let d = tempfile::tempdir().unwrap();
    let nets =
        [false, true].map(|gray| checkpoint(&d.path().join(format!("ckpt-{gray}")), 3, gray));
    let names = ["a", "b", "c"];
    // Images at 16x32; labels at the same size in `data`, and at 2x in a separate set.
    imageset(&d.path().join("data"), 16, 32, true, &names);
    imageset(&d.path().join("full"), 32, 64, true, &names);

    let cases = [
        (false, None, (16, 32)),
        (false, Some("full"), (32, 64)),
        (true, None, (16, 32)),
    ];
    for (gray, labels, (lh, lw)) in cases {
        let (ckpt, net) = (
            d.path().join(format!("ckpt-{gray}")),
            &nets[usize::from(gray)].1,
        );
        let out = d.path().join(format!("out-{gray}-{lh}"));
        let mut args = vec![
            "--out".to_string(),
            out.display().to_string(),
            "--input".into(),
            format!("model={}", ckpt.display()),
            "--input".into(),
            format!("data={}", d.path().join("data").display()),
            "-p".into(),
            "device=cpu".into(),
            "-p".into(),
            "batch_size=2".into(),
        ];
        if let Some(l) = labels {
            args.extend([
                "--input".into(),
                format!("labels={}", d.path().join(l).display()),
            ]);
        }
        let o = run_stage(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(o.status.success());

        let mut total = ConfusionMatrix::new();
        let mut per_image = Vec::new();
        for i in 0..N {
            let pred = reference_prediction(net, i, (16, 32), (lh, lw), true, gray);
            // The check can tell: the random net predicts several classes, and (when upsampling)
            // the other corner convention gives other maps.
            assert!(pred.iter().any(|&c| c != pred[0]), "degenerate prediction");
            if lh != 16 {
                assert_ne!(
                    pred,
                    reference_prediction(net, i, (16, 32), (lh, lw), false, gray)
                );
            }
            if gray {
                // Colour input would give other maps: the stage must gray the images itself.
                assert_ne!(
                    pred,
                    reference_prediction(net, i, (16, 32), (lh, lw), true, false)
                );
            }
            let m = ConfusionMatrix::from_maps(&label(i, lh, lw), &pred).unwrap();
            per_image.push(m.scores().miou);
            total.merge(&m);
        }
        for (g, row) in confusion(&out).iter().enumerate() {
            for (c, &count) in row.iter().enumerate() {
                assert_eq!(count, total.count(g, c), "gt {g} pred {c}");
            }
        }
        let path = out.join(PER_IMAGE);
        let t = read_parquet(&path).unwrap();
        assert_eq!(
            column::<Float64Array>(&path, &t, "miou")
                .unwrap()
                .iter()
                .collect::<Vec<_>>(),
            per_image
        );
        assert_eq!(
            column::<StringArray>(&path, &t, "name").unwrap().value(1),
            "b"
        );
        let path = out.join(SUMMARY);
        let t = read_parquet(&path).unwrap();
        assert!(
            column::<StringArray>(&path, &t, "model_meta")
                .unwrap()
                .value(0)
                .contains("pretrain")
        );
        assert_eq!(
            column::<StringArray>(&path, &t, "mode").unwrap().value(0),
            "model"
        );
        let panel = uda_data::png::read_rgb(&out.join("panels/00002_c.png")).unwrap();
        assert_eq!((panel.width, panel.height), (3 * lw + 4, lh));
    }
}

/// `channels_last` (weights laid out NHWC) changes how the convolutions run, not what they
/// compute: the stage's confusion matrix is that of the reference predictions, up to a near-tie
/// pixel or two that the other summation order may flip (out of 1536); `confusion` checks that
/// no prediction falls outside the 19 classes.
#[test]
fn channels_last_scores_as_the_contiguous_model() {
    let d = tempfile::tempdir().unwrap();
    let (_, net) = checkpoint(&d.path().join("ckpt"), 3, false);
    let names = ["a", "b", "c"];
    imageset(&d.path().join("data"), 16, 32, true, &names);
    let out = d.path().join("out");
    let args = [
        "--out".to_string(),
        out.display().to_string(),
        "--input".into(),
        format!("model={}", d.path().join("ckpt").display()),
        "--input".into(),
        format!("data={}", d.path().join("data").display()),
        "-p".into(),
        "device=cpu".into(),
        "-p".into(),
        "channels_last=true".into(),
    ];
    let o = run_stage(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success());
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(log.contains("forward pass fp32, channels-last"), "{log}");
    let mut want = ConfusionMatrix::new();
    for i in 0..N {
        let pred = reference_prediction(&net, i, (16, 32), (16, 32), true, false);
        want.merge(&ConfusionMatrix::from_maps(&label(i, 16, 32), &pred).unwrap());
    }
    let mut moved = 0;
    for (g, row) in confusion(&out).iter().enumerate() {
        for (c, &have) in row.iter().enumerate() {
            moved += have.abs_diff(want.count(g, c));
        }
    }
    assert!(
        moved <= 4,
        "{moved} confusion counts moved under channels-last"
    );
}

#[test]
fn model_mode_errors_name_the_problem() {
    let d = tempfile::tempdir().unwrap();
    let ckpt = d.path().join("ckpt");
    checkpoint(&ckpt, 3, false);
    imageset(&d.path().join("nolabels"), 16, 32, false, &["a", "b", "c"]);
    imageset(&d.path().join("other"), 16, 32, true, &["a", "x", "c"]);
    let out = d.path().join("out");
    let base = |data: &str| {
        vec![
            "--out".to_string(),
            out.display().to_string(),
            "--input".into(),
            format!("model={}", ckpt.display()),
            "--input".into(),
            format!("data={}", d.path().join(data).display()),
            "-p".into(),
            "device=cpu".into(),
        ]
    };
    let o = run_stage(
        &base("nolabels")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no labels.zarr"));
    let mut args = base("nolabels");
    args.extend([
        "--input".into(),
        format!("labels={}", d.path().join("other").display()),
    ]);
    let o = run_stage(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(String::from_utf8_lossy(&o.stderr).contains("image 1 is 'b'"));
    // A description that does not fit the weights: the strict load names the file.
    model_info(Backbone::Fcn8sVgg16, false)
        .write(&ckpt)
        .unwrap();
    let o = run_stage(&base("other").iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("model.safetensors"));
    std::fs::write(ckpt.join("model.json"), r#"{"backbone": "enet"}"#).unwrap();
    let o = run_stage(&base("other").iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("model.json"));
    assert!(!out.exists());
}

/// Predicts the ground truth itself (read back from the labels), or a wrong-sized output.
struct Fake {
    labels: Vec<Vec<u8>>,
    next: usize,
    broken: bool,
}

impl Predictor for Fake {
    fn predict(
        &mut self,
        _images: &[u8],
        count: usize,
        _size: [usize; 2],
        _out: [usize; 2],
    ) -> anyhow::Result<Vec<u8>> {
        let out: Vec<u8> = self.labels[self.next..self.next + count].concat();
        self.next += count;
        Ok(if self.broken { out[1..].to_vec() } else { out })
    }
}

#[test]
fn scoring_loop_with_fake_predictors() {
    let d = tempfile::tempdir().unwrap();
    imageset(&d.path().join("data"), 8, 16, true, &["a", "b", "c"]);
    let set = ModelEvalSet::open(&d.path().join("data"), None).unwrap();
    let labels: Vec<Vec<u8>> = (0..N).map(|i| label(i, 8, 16)).collect();
    let params = EvaluateParams {
        batch_size: 2,
        panels: 1,
        ..Default::default()
    };
    let calls = std::cell::Cell::new(0);
    let mut oracle = Fake {
        labels: labels.clone(),
        next: 0,
        broken: false,
    };
    let res = score_imageset(&mut oracle, &set, &params, &d.path().join("panels"), &|n| {
        calls.set(calls.get() + n)
    })
    .unwrap();
    assert_eq!(calls.get(), 3);
    assert_eq!(res.len(), 3);
    for r in &res {
        assert_eq!(r.matrix.scores().pixel_accuracy, Some(1.0));
        assert_eq!(r.matrix.other_pixels(), 0);
    }
    assert_eq!(
        std::fs::read_dir(d.path().join("panels")).unwrap().count(),
        1
    );
    let mut broken = Fake {
        labels,
        next: 0,
        broken: true,
    };
    let e = score_imageset(&mut broken, &set, &params, &d.path().join("p2"), &|_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("returned"), "{e}");
}
