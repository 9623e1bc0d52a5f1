//! Model mode: a tiny random ENet checkpoint scored on small ImageSets, checked against
//! predictions computed here image by image; and the scoring loop with fake predictors.

use arrow::array::{ArrayRef, Float64Array, StringArray, UInt32Array, UInt64Array, UInt8Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use evaluate::{EvaluateParams, ModelEvalSet, Predictor, score_imageset};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use uda_data::imageset::{IMAGES, LABELS, MANIFEST};
use uda_data::table::{column, read_parquet, write_parquet};
use uda_data::zarr::{ArrayLayout, ImageArrayWriter};
use uda_metrics::ConfusionMatrix;
use uda_models::tch::{self, Device, Kind, Tensor, nn::VarStore};
use uda_models::{Backbone, ModelConfig, Normalization, SegNet};

const N: usize = 3;

fn image(i: usize, h: usize, w: usize) -> Vec<u8> {
    (0..h * w * 3).map(|p| ((p * (7 + i) + (p / (3 * w)) * 13) % 256) as u8).collect()
}

fn label(i: usize, h: usize, w: usize) -> Vec<u8> {
    (0..h * w).map(|p| if p % 13 == 0 { 255 } else { ((p % w) * 19 / w + i) as u8 % 19 }).collect()
}

/// An ImageSet of `N` images at (h, w), with labels (at the same size) and a manifest of `names`.
fn imageset(dir: &Path, h: usize, w: usize, labels: bool, names: &[&str]) {
    std::fs::create_dir_all(dir).unwrap();
    let layout = ArrayLayout { len: N, height: h, width: w, channels: 3, images_per_shard: 2 };
    let images = ImageArrayWriter::create(&dir.join(IMAGES), layout).unwrap();
    let lab = labels.then(|| ImageArrayWriter::create(&dir.join(LABELS), ArrayLayout { channels: 1, ..layout }).unwrap());
    for shard in 0..images.shard_count() {
        let range = images.shard_range(shard);
        images.write_shard(shard, &range.clone().flat_map(|i| image(i, h, w)).collect::<Vec<_>>()).unwrap();
        if let Some(l) = &lab {
            l.write_shard(shard, &range.flat_map(|i| label(i, h, w)).collect::<Vec<_>>()).unwrap();
        }
    }
    images.finish().unwrap();
    lab.map(|l| l.finish().unwrap());
    let schema = Arc::new(Schema::new(vec![Field::new("index", DataType::UInt32, false), Field::new("name", DataType::Utf8, false)]));
    let cols: Vec<ArrayRef> = vec![Arc::new(UInt32Array::from_iter_values(0..N as u32)), Arc::new(StringArray::from_iter_values(names))];
    write_parquet(&dir.join(MANIFEST), &RecordBatch::try_new(schema, cols).unwrap()).unwrap();
}

fn checkpoint(dir: &Path) -> (VarStore, SegNet) {
    tch::manual_seed(3);
    let vs = VarStore::new(Device::Cpu);
    let net = SegNet::new(&vs.root(), &ModelConfig { backbone: Backbone::Enet, num_classes: 19, freeze_bn: false });
    uda_models::save_safetensors(&vs, &dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("model.json"), r#"{"backbone": "enet", "num_classes": 19, "stage": "pretrain", "iteration": 0}"#).unwrap();
    (vs, net)
}

/// The reference prediction: one image at a time, logits upsampled with align_corners = true.
fn reference_prediction(net: &SegNet, i: usize, size: (usize, usize), out: (usize, usize)) -> Vec<u8> {
    let x = Tensor::from_slice(&image(i, size.0, size.1)).view([1, size.0 as i64, size.1 as i64, 3]);
    let logits = tch::no_grad(|| net.forward_t(&Normalization::UNIT_RGB.apply_nhwc_u8(&x), false).logits);
    let up = logits.upsample_bilinear2d([out.0 as i64, out.1 as i64], true, None, None);
    Vec::<u8>::try_from(&up.argmax(1, false).to_kind(Kind::Uint8).view([-1])).unwrap()
}

fn run_stage(args: &[&str]) -> std::process::Output {
    let o = Command::new(env!("CARGO_BIN_EXE_evaluate")).args(args).env("UDA_PROGRESS", "off").output().unwrap();
    eprintln!("{}", String::from_utf8_lossy(&o.stderr));
    o
}

#[test]
fn random_enet_checkpoint_scores_as_its_predictions() {
    let d = tempfile::tempdir().unwrap();
    let ckpt = d.path().join("ckpt");
    std::fs::create_dir_all(&ckpt).unwrap();
    let (_vs, net) = checkpoint(&ckpt);
    let names = ["a", "b", "c"];
    // Images at 16x32; labels at the same size in `data`, and at 2x in a separate set.
    imageset(&d.path().join("data"), 16, 32, true, &names);
    imageset(&d.path().join("full"), 32, 64, true, &names);

    for (labels, (lh, lw)) in [(None, (16, 32)), (Some("full"), (32, 64))] {
        let out = d.path().join(format!("out-{lh}"));
        let mut args = vec![
            "--out".to_string(), out.display().to_string(),
            "--input".into(), format!("model={}", ckpt.display()),
            "--input".into(), format!("data={}", d.path().join("data").display()),
            "-p".into(), "device=cpu".into(), "-p".into(), "batch_size=2".into(),
        ];
        if let Some(l) = labels {
            args.extend(["--input".into(), format!("labels={}", d.path().join(l).display())]);
        }
        let o = run_stage(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(o.status.success());

        let mut total = ConfusionMatrix::new();
        let mut per_image = Vec::new();
        for i in 0..N {
            let pred = reference_prediction(&net, i, (16, 32), (lh, lw));
            let m = ConfusionMatrix::from_maps(&label(i, lh, lw), &pred).unwrap();
            per_image.push(m.scores().miou);
            total.merge(&m);
        }
        let path = out.join("confusion.parquet");
        let t = read_parquet(&path).unwrap();
        let (gt, pr, count) = (
            column::<UInt8Array>(&path, &t, "gt").unwrap(),
            column::<UInt8Array>(&path, &t, "pred").unwrap(),
            column::<UInt64Array>(&path, &t, "count").unwrap(),
        );
        for r in 0..t.num_rows() {
            let col = if pr.value(r) == 255 { uda_metrics::OTHER } else { pr.value(r) as usize };
            assert_eq!(count.value(r), total.count(gt.value(r) as usize, col), "gt {} pred {}", gt.value(r), pr.value(r));
        }
        let path = out.join("per_image.parquet");
        let t = read_parquet(&path).unwrap();
        assert_eq!(column::<Float64Array>(&path, &t, "miou").unwrap().iter().collect::<Vec<_>>(), per_image);
        assert_eq!(column::<StringArray>(&path, &t, "name").unwrap().value(1), "b");
        let path = out.join("summary.parquet");
        let t = read_parquet(&path).unwrap();
        assert!(column::<StringArray>(&path, &t, "model_meta").unwrap().value(0).contains("pretrain"));
        assert_eq!(column::<StringArray>(&path, &t, "mode").unwrap().value(0), "model");
        let panel = uda_data::png::read_rgb(&out.join("panels/00002_c.png")).unwrap();
        assert_eq!((panel.width, panel.height), (3 * lw + 4, lh));
    }
}

#[test]
fn model_mode_errors_name_the_problem() {
    let d = tempfile::tempdir().unwrap();
    let ckpt = d.path().join("ckpt");
    std::fs::create_dir_all(&ckpt).unwrap();
    checkpoint(&ckpt);
    imageset(&d.path().join("nolabels"), 16, 32, false, &["a", "b", "c"]);
    imageset(&d.path().join("other"), 16, 32, true, &["a", "x", "c"]);
    let out = d.path().join("out");
    let base = |data: &str| vec!["--out".to_string(), out.display().to_string(), "--input".into(), format!("model={}", ckpt.display()),
        "--input".into(), format!("data={}", d.path().join(data).display()), "-p".into(), "device=cpu".into()];
    let o = run_stage(&base("nolabels").iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no labels.zarr"));
    let mut args = base("nolabels");
    args.extend(["--input".into(), format!("labels={}", d.path().join("other").display())]);
    let o = run_stage(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(String::from_utf8_lossy(&o.stderr).contains("image 1 is 'b'"));
    std::fs::write(ckpt.join("model.json"), r#"{"backbone": "fcn8s-vgg16"}"#).unwrap();
    let o = run_stage(&base("other").iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("model.safetensors"));
    assert!(!out.exists());
}

/// Predicts the ground truth itself (read back from the labels), or a wrong-sized output.
struct Fake {
    labels: Vec<Vec<u8>>,
    next: usize,
    broken: bool,
}

impl Predictor for Fake {
    fn predict(&mut self, _images: &[u8], count: usize, _size: [usize; 2], _out: [usize; 2]) -> anyhow::Result<Vec<u8>> {
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
    let params = EvaluateParams { batch_size: 2, panels: 1, ..Default::default() };
    let calls = std::cell::Cell::new(0);
    let mut oracle = Fake { labels: labels.clone(), next: 0, broken: false };
    let res = score_imageset(&mut oracle, &set, &params, &d.path().join("panels"), &|n| calls.set(calls.get() + n)).unwrap();
    assert_eq!(calls.get(), 3);
    assert_eq!(res.len(), 3);
    for r in &res {
        assert_eq!(r.matrix.scores().pixel_accuracy, Some(1.0));
        assert_eq!(r.matrix.other_pixels(), 0);
    }
    assert_eq!(std::fs::read_dir(d.path().join("panels")).unwrap().count(), 1);
    let mut broken = Fake { labels, next: 0, broken: true };
    let e = score_imageset(&mut broken, &set, &params, &d.path().join("p2"), &|_| {}).unwrap_err().to_string();
    assert!(e.contains("returned"), "{e}");
}
