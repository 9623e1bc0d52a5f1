//! Fixtures of the model-mode tests: tiny ImageSets, random ENet checkpoints, the in-process
//! reference forward pass, and the stage binary run with one thread.

#![allow(dead_code)]

use arrow::array::{ArrayRef, StringArray, UInt8Array, UInt32Array, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use uda_data::imageset::{IMAGES, LABELS, MANIFEST};
use uda_data::table::{column, read_parquet, write_parquet};
use uda_data::zarr::{ArrayLayout, ImageArrayWriter};
use uda_metrics::report::CONFUSION;
use uda_models::tch::{self, Device, Kind, Tensor, nn::VarStore};
use uda_models::{Backbone, Normalization, SegNet};
use uda_train::ModelInfo;
use uda_train::augment::luma_pil;

/// Images per test ImageSet.
pub const N: usize = 3;

pub fn image(i: usize, h: usize, w: usize) -> Vec<u8> {
    (0..h * w * 3)
        .map(|p| ((p * (7 + i) + (p / (3 * w)) * 13) % 256) as u8)
        .collect()
}

pub fn label(i: usize, h: usize, w: usize) -> Vec<u8> {
    (0..h * w)
        .map(|p| {
            if p % 13 == 0 {
                255
            } else {
                ((p % w) * 19 / w + i) as u8 % 19
            }
        })
        .collect()
}

/// An ImageSet of `N` images at (h, w), with labels (at the same size) and a manifest of `names`.
pub fn imageset(dir: &Path, h: usize, w: usize, labels: bool, names: &[&str]) {
    std::fs::create_dir_all(dir).unwrap();
    let layout = ArrayLayout {
        len: N,
        height: h,
        width: w,
        channels: 3,
        images_per_shard: 2,
    };
    let images = ImageArrayWriter::create(&dir.join(IMAGES), layout).unwrap();
    let lab = labels.then(|| {
        ImageArrayWriter::create(
            &dir.join(LABELS),
            ArrayLayout {
                channels: 1,
                ..layout
            },
        )
        .unwrap()
    });
    for shard in 0..images.shard_count() {
        let range = images.shard_range(shard);
        images
            .write_shard(
                shard,
                &range
                    .clone()
                    .flat_map(|i| image(i, h, w))
                    .collect::<Vec<_>>(),
            )
            .unwrap();
        if let Some(l) = &lab {
            l.write_shard(
                shard,
                &range.flat_map(|i| label(i, h, w)).collect::<Vec<_>>(),
            )
            .unwrap();
        }
    }
    images.finish().unwrap();
    lab.map(|l| l.finish().unwrap());
    let schema = Arc::new(Schema::new(vec![
        Field::new("index", DataType::UInt32, false),
        Field::new("name", DataType::Utf8, false),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(UInt32Array::from_iter_values(0..N as u32)),
        Arc::new(StringArray::from_iter_values(names)),
    ];
    write_parquet(
        &dir.join(MANIFEST),
        &RecordBatch::try_new(schema, cols).unwrap(),
    )
    .unwrap();
}

/// A description of a 19-class model, read as `model.json` text is (so the fixture does not
/// depend on how the Rust fields are spelled; `freeze_bn` is the oldest spelling, which still
/// loads).
pub fn model_info(backbone: Backbone, grayscale: bool) -> ModelInfo {
    serde_json::from_value(serde_json::json!({
        "backbone": backbone,
        "num_classes": 19,
        "freeze_bn": false,
        "normalization": Normalization::UNIT_RGB,
        "grayscale": grayscale,
        "weights": "model.safetensors",
        "produced_by": "pretrain",
        "iterations": 0,
    }))
    .unwrap()
}

/// A random ENet checkpoint folder as `pretrain` writes it, its weights drawn from `seed`.
pub fn checkpoint(dir: &Path, seed: i64, grayscale: bool) -> (VarStore, SegNet) {
    std::fs::create_dir_all(dir).unwrap();
    tch::manual_seed(seed);
    let vs = VarStore::new(Device::Cpu);
    let info = model_info(Backbone::Enet, grayscale);
    let net = SegNet::new(&vs.root(), &info.model_config());
    uda_models::save_safetensors(&vs, &info.weights_path(dir)).unwrap();
    info.write(dir).unwrap();
    (vs, net)
}

/// The reference logits `(1, 19, h, w)` of image `i` at `size`: one image at a time, fed as
/// the checkpoint says (PIL luma when `grayscale`, unit-RGB normalisation), one thread.
pub fn reference_logits(net: &SegNet, i: usize, size: (usize, usize), grayscale: bool) -> Tensor {
    tch::set_num_threads(1);
    let mut rgb = image(i, size.0, size.1);
    if grayscale {
        rgb = rgb
            .chunks(3)
            .flat_map(|p| [luma_pil(p[0], p[1], p[2]); 3])
            .collect();
    }
    let x = Tensor::from_slice(&rgb).view([1, size.0 as i64, size.1 as i64, 3]);
    tch::no_grad(|| {
        net.forward_t(&Normalization::UNIT_RGB.apply_nhwc_u8(&x), false)
            .logits
    })
}

/// The reference prediction: [`reference_logits`] upsampled with `align_corners`, arg-max.
pub fn reference_prediction(
    net: &SegNet,
    i: usize,
    size: (usize, usize),
    out: (usize, usize),
    align_corners: bool,
    grayscale: bool,
) -> Vec<u8> {
    let logits = reference_logits(net, i, size, grayscale);
    let up = logits.upsample_bilinear2d([out.0 as i64, out.1 as i64], align_corners, None, None);
    Vec::<u8>::try_from(&up.argmax(1, false).to_kind(Kind::Uint8).view([-1])).unwrap()
}

/// The `evaluate` binary with one libtorch thread; its stderr is echoed.
pub fn run_stage(args: &[&str]) -> std::process::Output {
    // One thread here and in the in-process reference: the predictions are compared exactly, and
    // a random net has near-ties that another summation order (another thread split) can flip.
    let o = Command::new(env!("CARGO_BIN_EXE_evaluate"))
        .args(args)
        .env("UDA_PROGRESS", "off")
        .env("UDA_THREADS", "1")
        .output()
        .unwrap();
    eprintln!("{}", String::from_utf8_lossy(&o.stderr));
    o
}

/// The stage's confusion counts as a 19×19 matrix (gt × pred); the column of predictions
/// outside the 19 classes must be empty (an arg-max over 19 classes cannot give one).
pub fn confusion(out: &Path) -> Vec<Vec<u64>> {
    let path = out.join(CONFUSION);
    let t = read_parquet(&path).unwrap();
    let (gt, pr, count) = (
        column::<UInt8Array>(&path, &t, "gt").unwrap(),
        column::<UInt8Array>(&path, &t, "pred").unwrap(),
        column::<UInt64Array>(&path, &t, "count").unwrap(),
    );
    let mut m = vec![vec![0u64; 19]; 19];
    for r in 0..t.num_rows() {
        if pr.value(r) == 255 {
            assert_eq!(count.value(r), 0, "a prediction outside the 19 classes");
            continue;
        }
        m[gt.value(r) as usize][pr.value(r) as usize] += count.value(r);
    }
    m
}
