//! The `pseudolabel-dump` stage (paper §4.1, Table 2): pseudo-labels for the target images from
//! the first model (or several: FDA's multi-band ensemble, "MBT").
//!
//! Inputs: `model`, a checkpoint folder of a training stage (`model.json` + weights) or a folder
//! of such folders (the runner's `{all: stage}` input; every sub-folder holding `model.json` is
//! one member, in name order); `data`, the ImageSet to label — the target images themselves or
//! their target→source translation (`fda/t2s`; the paper finds t→s better); optional `labels`,
//! an ImageSet of the same images whose labels are the ground truth (otherwise `data`'s own
//! `labels.zarr` is used when it has one, e.g. `t2s` of a target set preprocessed with labels).
//!
//! Per image: every model's softmax at its output resolution (each model fed the way it was
//! trained: normalisation, grayscale), resized bilinearly with aligned corners to the image size
//! and averaged with equal weights (`uda_train::ensemble`, shared with `evaluate`; FDA's
//! `getSudoLabel_multi.py` averages before resizing, which is the same up to float rounding),
//! arg-max and max → prediction and confidence. Then FDA's per-class thresholds ([`thresholds`])
//! turn predictions below their class's threshold into 255.
//!
//! Outputs:
//!
//! ```text
//! pseudo_labels.zarr  (N, H, W) u8 train ids, 255 = dropped (what contrastive-train reads)
//! confidence.zarr     (N, H, W) u8 round(255 · max softmax)
//! prediction.zarr     (N, H, W) u8 arg-max before thresholding
//! manifest.parquet    the data ImageSet's manifest (copied), so consumers can check pairing
//! classes.parquet     per class: threshold, predicted / kept / dropped pixels, and with ground
//!                     truth the IoU of the raw predictions and of the kept pixels
//! previews/*.png      image | pseudo-label | ground truth (or the raw prediction without it)
//! metrics.json        kept fraction, mIoU of raw and kept pseudo-labels, models used
//! ```
//!
//! Shardable (`--shard I/N`, `--merge-shards DIR`; see `uda_stage`): a task runs the model
//! (pass 1) on the `I`-th contiguous range of whole Zarr shards of `data`, writing its chunks of
//! `prediction.zarr` and `confidence.zarr` and recording its class histograms (integer counts)
//! in `shard.json`. The merge links the chunks into place, adds the histograms up and does
//! pass 2 (thresholds, `pseudo_labels.zarr`, scores, previews, tables, metrics) over all images,
//! without loading the model: the folder is byte-identical to an unsharded run's.

mod report;
mod shards;
pub mod thresholds;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use uda_data::ImageSet;
use uda_data::classes::NUM_CLASSES;
use uda_data::imageset::MANIFEST;
use uda_data::zarr::{ArrayLayout, ImageArray, ImageArrayWriter};
use uda_metrics::ConfusionMatrix;
use uda_metrics::panel::{Raster, write_qualitative_panel};
use uda_stage::{
    InputSpec, OutputSpec, ParamProblem, ParamProblems, Shard, ShardSpec, Stage, StageContext,
};
use uda_train::ensemble::ModelInput;

pub use thresholds::{ClassHistograms, Thresholds};
/// The softmax ensemble the stage runs (one member is plain inference).
pub use uda_train::ensemble::Ensemble;

pub const PSEUDO_LABELS: &str = "pseudo_labels.zarr";
pub const CONFIDENCE: &str = "confidence.zarr";
pub const PREDICTION: &str = "prediction.zarr";
pub const CLASSES_TABLE: &str = "classes.parquet";
pub const PREVIEWS: &str = "previews";

/// The stage.
#[derive(Debug)]
pub struct PseudolabelDump;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PseudolabelParams {
    /// Sorted position (as a fraction) of a class's confidences taken as its threshold (FDA: 0.66).
    pub percentile: f64,
    /// Upper bound of every threshold (FDA: 0.9).
    pub cap: f64,
    /// Images per forward pass.
    pub batch_size: usize,
    /// Preview panels written for the first images.
    pub previews: usize,
    /// `cpu`, `cuda`, `cuda:N` or `auto`.
    pub device: String,
    /// libtorch intra-op threads; 0 keeps libtorch's default.
    pub threads: usize,
    /// The forward pass's arithmetic, `fp32`, `bf16` or `fp16` (autocast; probabilities in fp32).
    pub precision: uda_models::Precision,
    /// Lay the convolution weights out channels-last (NHWC): oneDNN's bf16 convolutions run
    /// about twice as fast so on a CPU with AMX/AVX512-BF16 (docs/benchmarks.md).
    /// Probabilities agree with the contiguous layout up to float rounding.
    pub channels_last: bool,
}

impl Default for PseudolabelParams {
    fn default() -> Self {
        Self {
            percentile: 0.66,
            cap: 0.9,
            batch_size: 2,
            previews: 4,
            device: "auto".into(),
            threads: 0,
            precision: uda_models::Precision::Fp32,
            channels_last: false,
        }
    }
}

impl PseudolabelParams {
    /// Checks every value, naming each bad param.
    pub fn validate(&self) -> Result<(), Vec<ParamProblem>> {
        let mut problems = ParamProblems::new();
        problems.ensure(
            (0.0..=1.0).contains(&self.percentile),
            "percentile",
            format!("must lie in [0, 1] (FDA: 0.66), got {}", self.percentile),
        );
        problems.ensure(
            self.cap > 0.0 && self.cap <= 1.0,
            "cap",
            format!("must lie in (0, 1] (FDA: 0.9), got {}", self.cap),
        );
        problems.ensure(self.batch_size > 0, "batch_size", "must be at least 1");
        if let Err(e) = uda_models::check_device_spec(&self.device) {
            problems.push("device", e.to_string());
        }
        problems.into_result()
    }
}

impl Stage for PseudolabelDump {
    const KIND: &'static str = "pseudolabel-dump";
    const DOC: &'static str = "Pseudo-labels for target images from one or several checkpoints (softmax average, FDA's per-class thresholds)";
    type Params = PseudolabelParams;

    fn inputs() -> Vec<InputSpec> {
        vec![
            InputSpec::required(
                "model",
                "a checkpoint folder (model.json + weights), or a folder of them (an ensemble)",
            ),
            InputSpec::required(
                "data",
                "ImageSet of the images to label (target, or target in source style: fda t2s)",
            ),
            InputSpec::optional(
                "labels",
                "ImageSet of the same images with ground-truth labels, to score the pseudo-labels (default: data's own labels, if any)",
            ),
        ]
    }

    fn outputs() -> Vec<OutputSpec> {
        vec![
            OutputSpec::new(PSEUDO_LABELS, "(N, H, W) u8 pseudo-labels, 255 = dropped"),
            OutputSpec::new(CONFIDENCE, "(N, H, W) u8 round(255 * max softmax)"),
            OutputSpec::new(PREDICTION, "(N, H, W) u8 arg-max before thresholding"),
            OutputSpec::new(
                MANIFEST,
                "the labelled ImageSet's manifest (row i = image i)",
            ),
            OutputSpec::new(
                CLASSES_TABLE,
                "per class: threshold, pixel counts, IoU of raw and kept pseudo-labels vs ground truth",
            ),
            OutputSpec::new(PREVIEWS, "image | pseudo-label | ground truth panels"),
            OutputSpec::new(
                uda_stage::METRICS_FILE,
                "kept fraction, mIoU raw / kept, models",
            ),
        ]
    }

    fn validate(p: &PseudolabelParams) -> Result<(), Vec<ParamProblem>> {
        p.validate()
    }

    const SHARDABLE: bool = true;

    fn run(ctx: &StageContext, p: &PseudolabelParams) -> anyhow::Result<()> {
        run(ctx, p)
    }

    fn run_shard(
        ctx: &StageContext,
        p: &PseudolabelParams,
        shard: ShardSpec,
    ) -> anyhow::Result<serde_json::Value> {
        let setup = Setup::open(ctx)?;
        Ok(serde_json::to_value(predict(ctx, p, &setup, shard)?)?)
    }

    fn merge_shards(
        ctx: &StageContext,
        p: &PseudolabelParams,
        shards: &[Shard],
    ) -> anyhow::Result<()> {
        let setup = Setup::open(ctx)?;
        setup.create_pass1_arrays(ctx.out_dir())?;
        let hist = shards::assemble(ctx.out_dir(), &setup, shards)?;
        finish(ctx, p, &setup, &hist)
    }
}

/// The images to label and, when available, their ground truth.
#[derive(Debug)]
struct Inputs {
    data: ImageSet,
    /// A separate labelled set (input `labels`), checked to hold the same images.
    labels_from: Option<ImageSet>,
}

impl Inputs {
    /// The set whose labels are the ground truth: `labels`, else `data` when it has labels.
    fn ground_truth(&self) -> Option<&ImageSet> {
        self.labels_from
            .as_ref()
            .or(Some(&self.data).filter(|d| d.labels().is_some()))
    }
}

fn open_inputs(data_dir: &Path, labels_dir: Option<&Path>) -> anyhow::Result<Inputs> {
    let data = ImageSet::open(data_dir).context("input data")?;
    anyhow::ensure!(
        !data.is_empty(),
        "input data {}: the ImageSet has no images",
        data_dir.display()
    );
    let labels_from = match labels_dir {
        Some(dir) => {
            let set = ImageSet::open(dir).context("input labels")?;
            let labels = set.labels().with_context(|| {
                format!(
                    "input labels {}: no labels.zarr (preprocess that split with labels)",
                    dir.display()
                )
            })?;
            anyhow::ensure!(
                set.len() == data.len()
                    && labels.height() == data.height()
                    && labels.width() == data.width(),
                "input labels {} holds {} label maps of {}x{} but input data {} holds {} images of {}x{}; they must be the same images at the same size",
                dir.display(),
                set.len(),
                labels.height(),
                labels.width(),
                data_dir.display(),
                data.len(),
                data.height(),
                data.width()
            );
            uda_data::imageset::check_same_images(&data, &set)?;
            Some(set)
        }
        None => None,
    };
    Ok(Inputs { data, labels_from })
}

/// The model members and the images to label: what every run (whole, shard task or merge)
/// starts from. Opening them loads no weights.
#[derive(Debug)]
struct Setup {
    dirs: Vec<std::path::PathBuf>,
    inputs: Inputs,
    layout: ArrayLayout,
}

impl Setup {
    fn open(ctx: &StageContext) -> anyhow::Result<Self> {
        let dirs = ModelInput::find(ctx.input("model")?)
            .context("input 'model'")?
            .dirs()
            .to_vec();
        let inputs = open_inputs(ctx.input("data")?, ctx.optional_input("labels"))?;
        let images = inputs.data.images();
        let layout = ArrayLayout {
            images_per_shard: images.layout().images_per_shard,
            ..ArrayLayout::labels(images.len(), images.height(), images.width())
        };
        Ok(Self {
            dirs,
            inputs,
            layout,
        })
    }

    /// The images of `shard`: a range of whole Zarr shards of `data`.
    fn range(&self, shard: ShardSpec) -> std::ops::Range<usize> {
        shard.range(self.layout.len, self.layout.images_per_shard)
    }

    /// The prediction and confidence arrays (metadata only) in `out`.
    fn create_pass1_arrays(&self, out: &Path) -> anyhow::Result<[ImageArrayWriter; 2]> {
        Ok([
            ImageArrayWriter::create(&out.join(PREDICTION), self.layout)?,
            ImageArrayWriter::create(&out.join(CONFIDENCE), self.layout)?,
        ])
    }
}

fn run(ctx: &StageContext, p: &PseudolabelParams) -> anyhow::Result<()> {
    let setup = Setup::open(ctx)?;
    let part = predict(ctx, p, &setup, ShardSpec::WHOLE)?;
    finish(ctx, p, &setup, &part.histograms())
}

/// Pass 1 over `shard`'s images: predictions and confidences into `ctx`'s output folder (arrays
/// shaped for all images, of which the shard writes its own Zarr shards), and the class
/// histograms of the confidences.
fn predict(
    ctx: &StageContext,
    p: &PseudolabelParams,
    setup: &Setup,
    shard: ShardSpec,
) -> anyhow::Result<shards::Part> {
    uda_train::set_threads(p.threads);
    let device = uda_models::device_from_spec(&p.device)
        .with_context(|| format!("param device '{}'", p.device))?;
    let dirs = &setup.dirs;
    let ensemble = Ensemble::load(dirs, device)?
        .with_precision(p.precision)
        .with_channels_last(p.channels_last);
    eprintln!(
        "pseudolabel-dump: {} model(s), forward pass {}: {}",
        dirs.len(),
        ensemble.forward_mode(),
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );

    let images = setup.inputs.data.images();
    let (h, w) = (images.height(), images.width());
    let [pred_writer, conf_writer] = setup.create_pass1_arrays(ctx.out_dir())?;
    let range = setup.range(shard);
    let per_shard = setup.layout.images_per_shard;

    let mut hist = ClassHistograms::default();
    let progress = ctx.progress("predict", range.len() as u64);
    for zarr_shard in range.start / per_shard..range.end.div_ceil(per_shard) {
        let range = pred_writer.shard_range(zarr_shard);
        let mut pred = Vec::with_capacity(range.len() * h * w);
        let mut conf = Vec::with_capacity(range.len() * h * w);
        for start in range.clone().step_by(p.batch_size) {
            let count = p.batch_size.min(range.end - start);
            let rgb = images.read_range(start, count)?;
            let (bp, bc) = ensemble
                .classes_and_confidence(&rgb, count, h, w)
                .with_context(|| format!("predicting images {start}..{}", start + count))?;
            pred.extend_from_slice(&bp);
            conf.extend(bc.into_iter().map(thresholds::quantize));
            progress.inc(count as u64);
        }
        hist.add(&pred, &conf);
        pred_writer.write_shard(zarr_shard, &pred)?;
        conf_writer.write_shard(zarr_shard, &conf)?;
    }
    progress.finish();
    Ok(shards::Part::new(setup.layout.len, range, &hist))
}

/// Pass 2 over every image, once `ctx`'s output folder holds the complete prediction and
/// confidence arrays and `hist` counts all their pixels: the thresholds, the pseudo-labels,
/// scores against the ground truth, previews, the manifest, the class table and the metrics.
fn finish(
    ctx: &StageContext,
    p: &PseudolabelParams,
    setup: &Setup,
    hist: &ClassHistograms,
) -> anyhow::Result<()> {
    let (inputs, dirs, layout) = (&setup.inputs, &setup.dirs, setup.layout);
    let images = inputs.data.images();
    let (n, h, w) = (layout.len, layout.height, layout.width);
    let out = ctx.out_dir();
    let pred_array = ImageArray::open(&out.join(PREDICTION))?;
    let conf_array = ImageArray::open(&out.join(CONFIDENCE))?;
    let thresholds = Thresholds::fda(hist, p.percentile, p.cap);

    // Pass 2: threshold, score against ground truth, previews.
    let pseudo_writer = ImageArrayWriter::create(&out.join(PSEUDO_LABELS), layout)?;
    let gt_labels = inputs.ground_truth().and_then(|s| s.labels());
    let mut raw_cm = ConfusionMatrix::new();
    let mut kept_cm = ConfusionMatrix::new();
    let mut kept_counts = [0u64; NUM_CLASSES];
    std::fs::create_dir_all(out.join(PREVIEWS))?;
    for shard in 0..pseudo_writer.shard_count() {
        let range = pseudo_writer.shard_range(shard);
        let pred = pred_array.read_range(range.start, range.len())?;
        let conf = conf_array.read_range(range.start, range.len())?;
        let mut pseudo = vec![0u8; pred.len()];
        thresholds.apply(&pred, &conf, &mut pseudo);
        for &c in &pseudo {
            if let Some(k) = kept_counts.get_mut(c as usize) {
                *k += 1;
            }
        }
        let gt = gt_labels
            .map(|l| l.read_range(range.start, range.len()))
            .transpose()?;
        if let Some(gt) = &gt {
            raw_cm.accumulate(gt, &pred)?;
            let (g, k): (Vec<u8>, Vec<u8>) = gt
                .iter()
                .zip(&pseudo)
                .filter(|(_, k)| **k != 255)
                .map(|(g, k)| (*g, *k))
                .unzip();
            kept_cm.accumulate(&g, &k)?;
        }
        for i in range.clone().filter(|&i| i < p.previews) {
            let k = i - range.start;
            write_preview(
                &out.join(PREVIEWS).join(format!("{i:05}.png")),
                images,
                i,
                &pseudo[k * h * w..(k + 1) * h * w],
                gt.as_ref()
                    .map(|g| &g[k * h * w..(k + 1) * h * w])
                    .unwrap_or(&pred[k * h * w..(k + 1) * h * w]),
            )?;
        }
        pseudo_writer.write_shard(shard, &pseudo)?;
    }
    pseudo_writer.finish()?;
    let manifest = inputs.data.manifest_path();
    if manifest.exists() {
        std::fs::copy(&manifest, out.join(MANIFEST))
            .with_context(|| format!("copying {}", manifest.display()))?;
    }

    let table = report::ClassTable::new(
        hist,
        &thresholds,
        &kept_counts,
        gt_labels.is_some().then_some((&raw_cm, &kept_cm)),
    );
    table.write_parquet(&out.join(CLASSES_TABLE))?;
    let mut metrics: BTreeMap<String, serde_json::Value> = table.headline();
    metrics.insert("images".into(), n.into());
    // Recorded where they live: a gathered `{all: ...}` input is a temporary folder of links
    // (the runner's), gone once the stage's entry is committed.
    let resolved = |p: &Path| {
        std::fs::canonicalize(p)
            .unwrap_or_else(|_| p.to_path_buf())
            .display()
            .to_string()
    };
    metrics.insert(
        "models".into(),
        dirs.iter().map(|d| resolved(d)).collect::<Vec<_>>().into(),
    );
    metrics.insert(
        "ground_truth".into(),
        inputs.ground_truth().map(|s| resolved(s.dir())).into(),
    );
    ctx.write_metrics(&metrics)?;
    Ok(())
}

fn write_preview(
    path: &Path,
    images: &ImageArray,
    index: usize,
    pseudo: &[u8],
    reference: &[u8],
) -> anyhow::Result<()> {
    let (h, w) = (images.height(), images.width());
    let rgb = images.read(index)?;
    // Panel order: image | pseudo-label | reference (ground truth, or the raw prediction).
    write_qualitative_panel(
        path,
        Some(Raster {
            width: w,
            height: h,
            data: &rgb,
        }),
        Raster {
            width: w,
            height: h,
            data: pseudo,
        },
        reference,
        512,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_names_every_bad_param() {
        PseudolabelParams::default().validate().unwrap();
        let bad = PseudolabelParams {
            percentile: 1.5,
            cap: 0.0,
            batch_size: 0,
            device: "cuda:x".into(),
            ..PseudolabelParams::default()
        };
        let problems = bad.validate().unwrap_err();
        let names: Vec<&str> = problems.iter().map(|p| p.param.as_str()).collect();
        assert_eq!(
            names,
            ["percentile", "cap", "batch_size", "device"],
            "{problems:?}"
        );
        assert!(problems[0].message.contains("1.5"), "{problems:?}");
    }
}
