//! `evaluate`: Cityscapes-style IoU of a segmentation model, or of a folder of predictions.
//!
//! Two modes, chosen by the inputs given:
//!
//! * **model**: `--input model=CKPT --input data=IMAGESET [--input labels=IMAGESET]`. The
//!   checkpoint folder (`model.json` + weights, see [`model`]) is run on every image
//!   of `data`; logits are upsampled bilinearly (`align_corners = true`, as ADVENT's and FDA's
//!   evaluation scripts) to the label size and arg-maxed. Labels are `data`'s `labels.zarr`, or
//!   those of the `labels` ImageSet when given (e.g. Cityscapes val preprocessed at full
//!   1024×2048 resolution while the model sees 512×1024 images).
//!
//!   `model` may also be a folder of checkpoint folders (a pipeline's `{all: stage}`, one per
//!   sweep instance): then the score is that of FDA's ensemble ("MBT", `evaluation_multi.py`),
//!   the arg-max of the members' mean softmax, each member fed as it was trained and resized as
//!   `upsample` says (`softmax` is FDA's order). The members must agree on their classes. One
//!   member scores exactly as that checkpoint alone. `summary.parquet`'s `model_meta` and
//!   `metrics.json` (`members`, `models`) name the members.
//! * **external**: `--input pred_dir=DIR --input gt_root=CITYSCAPES_ROOT -p split=val
//!   -p pred_ids=train|label`, or the same as `--pred-dir DIR --gt-root DIR --split val
//!   --pred-ids train`. Prediction PNGs are matched to `gtFine` maps by `{city}_{seq}_{frame}`
//!   as the official scripts do (see `uda_metrics::external`).
//!
//! Both write the same outputs: `per_class.parquet`, `summary.parquet`, `per_image.parquet`,
//! `confusion.parquet` (schemas in `uda_metrics::report`), `metrics.json` (miou, miou16,
//! miou13, pixel_accuracy as fractions, images, mode; an ensemble's members) and `panels/` (image | ground truth |
//! prediction PNGs for the first `panels` images).
//!
//! Shardable in both modes (`--shard I/N`, `--merge-shards DIR`; see `uda_stage`): the images
//! (model mode) or matched prediction pairs (external mode) are split into contiguous ranges,
//! aligned to `batch_size` in model mode so every forward batch is a whole run's. Each task
//! records its images' confusion matrices and writes their panels; the merge sums the integer
//! matrices in image order and writes the reports, metrics and summary, byte-identical to an
//! unsharded run (module `shards`).

mod cli;
mod external_mode;
pub mod model;
mod model_mode;
mod shards;

pub use cli::{main, translate_args};
pub use model::{Predictor, TchPredictor, Upsample};
pub use model_mode::{ModelEvalSet, score_imageset, score_range};

use serde::{Deserialize, Serialize};
use shards::Scored;
use std::collections::BTreeMap;
use uda_metrics::report::{CONFUSION, PER_CLASS, PER_IMAGE, SUMMARY};
use uda_metrics::{PredIds, Report};
use uda_stage::{
    InputSpec, OutputSpec, ParamProblem, ParamProblems, Shard, ShardSpec, Stage, StageContext,
};

/// Folder of the qualitative panels inside the output.
pub const PANELS: &str = "panels";

/// Params of `evaluate`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EvaluateParams {
    /// Model mode: `cpu`, `cuda`, `cuda:N` or `auto` (the first GPU if CUDA works, else CPU).
    pub device: String,
    /// Model mode: images per forward pass.
    pub batch_size: usize,
    /// Model mode: the forward pass's arithmetic, `fp32`, `bf16` or `fp16` (autocast; scores
    /// in fp32).
    pub precision: uda_models::Precision,
    /// Model mode: lay the convolution weights out channels-last (NHWC). oneDNN's bf16
    /// convolutions run about twice as fast so on a CPU with AMX/AVX512-BF16 (FCN-8s and
    /// DeepLabV2; docs/benchmarks.md); in fp32 it gains little. Scores agree with the
    /// contiguous layout up to float rounding.
    pub channels_last: bool,
    /// Model mode: what is upsampled to label size before the arg-max: `logits` (ADVENT's
    /// single-model evaluation) or `softmax` probabilities (FDA's ensemble script). The two can
    /// differ on a few boundary pixels. An ensemble averages probabilities either way (with
    /// `logits`, each member's softmax is taken after upsampling).
    pub upsample: Upsample,
    /// External mode: the Cityscapes split under `gt_root/gtFine/`.
    pub split: String,
    /// External mode: prediction PNGs hold `train` ids (0..=18) or Cityscapes `label` ids.
    pub pred_ids: PredIds,
    /// Qualitative panels written for the first N images.
    pub panels: usize,
    /// Width of each panel tile in pixels (label maps are shrunk to fit; never enlarged).
    pub panel_width: usize,
}

impl Default for EvaluateParams {
    fn default() -> Self {
        Self {
            device: "auto".into(),
            batch_size: 1,
            precision: uda_models::Precision::Fp32,
            channels_last: false,
            upsample: Upsample::Logits,
            split: "val".into(),
            pred_ids: PredIds::Train,
            panels: 4,
            panel_width: 512,
        }
    }
}

/// The stage.
#[derive(Debug)]
pub struct Evaluate;

impl Stage for Evaluate {
    const KIND: &'static str = "evaluate";
    const DOC: &'static str = "Score a checkpoint, or the softmax average of a folder of them ({all: stage}, FDA's ensemble), on a \
        labelled ImageSet (inputs model, data[, labels]) or prediction PNGs against Cityscapes ground truth (inputs pred_dir, gt_root; also as --pred-dir DIR --gt-root DIR --split S --pred-ids train|label): \
        per-class IoU, mIoU, Parquet reports, panels";
    type Params = EvaluateParams;

    fn inputs() -> Vec<InputSpec> {
        vec![
            InputSpec::optional(
                "model",
                "model mode: checkpoint folder (model.json + model.safetensors), or a folder of them ({all: stage}) scored as their softmax average",
            ),
            InputSpec::optional(
                "data",
                "model mode: ImageSet to predict on (its labels are the ground truth unless `labels` is given)",
            ),
            InputSpec::optional(
                "labels",
                "model mode, optional: ImageSet whose labels.zarr is the ground truth (same images, e.g. at full resolution)",
            ),
            InputSpec::optional(
                "pred_dir",
                "external mode: folder of prediction PNGs named {city}_{seq}_{frame}*.png",
            ),
            InputSpec::optional(
                "gt_root",
                "external mode: Cityscapes root with gtFine/<split>/<city>/*_gtFine_labelIds.png",
            ),
        ]
    }

    fn outputs() -> Vec<OutputSpec> {
        vec![
            OutputSpec::new(
                PER_CLASS,
                "class_id, class_name, iou (null if undefined), tp, fp, fn",
            ),
            OutputSpec::new(
                SUMMARY,
                "miou, miou16, miou13, pixel_accuracy, images, pixel counts, stage, mode, predictions, ground_truth, model_meta, params",
            ),
            OutputSpec::new(PER_IMAGE, "index, name, miou, pixel_accuracy, valid_pixels"),
            OutputSpec::new(CONFUSION, "gt, pred (255 = outside the 19 classes), count"),
            OutputSpec::new(PANELS, "PNG panels: image | ground truth | prediction"),
        ]
    }

    fn validate(params: &EvaluateParams) -> Result<(), Vec<ParamProblem>> {
        let mut problems = ParamProblems::new();
        problems.ensure(params.batch_size > 0, "batch_size", "must be at least 1");
        problems.ensure(params.panel_width > 0, "panel_width", "must be at least 1");
        if let Err(e) = uda_models::check_device_spec(&params.device) {
            problems.push("device", e.to_string());
        }
        problems.into_result()
    }

    const SHARDABLE: bool = true;

    fn run(ctx: &StageContext, params: &EvaluateParams) -> anyhow::Result<()> {
        let whole = score(ctx, params, ShardSpec::WHOLE)?;
        finish(ctx, params, vec![whole])
    }

    fn run_shard(
        ctx: &StageContext,
        params: &EvaluateParams,
        shard: ShardSpec,
    ) -> anyhow::Result<serde_json::Value> {
        Ok(score(ctx, params, shard)?.to_value())
    }

    fn merge_shards(
        ctx: &StageContext,
        params: &EvaluateParams,
        shards: &[Shard],
    ) -> anyhow::Result<()> {
        let parts = shards::assemble(ctx, shards)?;
        finish(ctx, params, parts)
    }
}

/// Scores `shard`'s images in the mode the inputs choose (panels included).
fn score(ctx: &StageContext, params: &EvaluateParams, shard: ShardSpec) -> anyhow::Result<Scored> {
    let model_inputs = ["model", "data", "labels"]
        .into_iter()
        .filter(|n| ctx.optional_input(n).is_some())
        .collect::<Vec<_>>();
    let external_inputs = ["pred_dir", "gt_root"]
        .into_iter()
        .filter(|n| ctx.optional_input(n).is_some())
        .collect::<Vec<_>>();
    match (model_inputs.is_empty(), external_inputs.is_empty()) {
        (false, true) => model_mode::score(ctx, params, shard),
        (true, false) => external_mode::score(ctx, params, shard),
        (false, false) => anyhow::bail!(
            "inputs {} (model mode) and {} (external mode) were both given; evaluate either a checkpoint \
             (model + data) or a prediction folder (pred_dir + gt_root)",
            model_inputs.join(", "),
            external_inputs.join(", ")
        ),
        (true, true) => anyhow::bail!(
            "nothing to evaluate: give --input model=CKPT --input data=IMAGESET (model mode), or \
             --pred-dir DIR --gt-root CITYSCAPES_ROOT (external mode)"
        ),
    }
}

/// What depends on every image, from the scored parts in image order: the Parquet reports,
/// `metrics.json` and the summary printed for the person at the terminal.
fn finish(ctx: &StageContext, params: &EvaluateParams, parts: Vec<Scored>) -> anyhow::Result<()> {
    let mut parts = parts.into_iter();
    let first = parts
        .next()
        .ok_or_else(|| anyhow::anyhow!("no scored images to report"))?;
    let (provenance, extra_metrics) = (first.provenance, first.extra_metrics);
    let mut images = first.images;
    images.extend(parts.flat_map(|p| p.images));
    let report = Report::new(images, provenance);
    if report.provenance.mode == "external" {
        external_mode::warn_if_label_ids(&report, params);
    }
    report.write(ctx.out_dir())?;
    let mut metrics = metrics(&report);
    metrics.extend(extra_metrics);
    ctx.write_metrics(&metrics)?;
    eprint!("{}", summary_text(&report));
    Ok(())
}

fn params_json(params: &EvaluateParams) -> String {
    serde_json::to_string(params).unwrap_or_default()
}

/// The headline numbers for `metrics.json` (fractions, not percent).
pub fn metrics(report: &Report) -> BTreeMap<String, serde_json::Value> {
    let s = report.total.scores();
    let mut m = BTreeMap::new();
    m.insert("miou".to_string(), serde_json::json!(s.miou));
    m.insert("miou16".to_string(), serde_json::json!(s.miou16));
    m.insert("miou13".to_string(), serde_json::json!(s.miou13));
    m.insert(
        "pixel_accuracy".to_string(),
        serde_json::json!(s.pixel_accuracy),
    );
    m.insert("images".to_string(), serde_json::json!(report.images.len()));
    m.insert(
        "mode".to_string(),
        serde_json::json!(report.provenance.mode),
    );
    m
}

/// A per-class table for the person at the terminal, as the official script prints it.
pub fn summary_text(report: &Report) -> String {
    let s = report.total.scores();
    let pct =
        |v: Option<f64>| v.map_or_else(|| "  n/a".to_string(), |v| format!("{:5.2}", 100.0 * v));
    let mut t = String::from("class            IoU %\n");
    for c in &s.classes {
        t += &format!("{:<15} {}\n", c.name, pct(c.iou));
    }
    t += &format!(
        "mIoU {} | mIoU16 {} | mIoU13 {} | pixel acc {} | {} images\n",
        pct(s.miou),
        pct(s.miou16),
        pct(s.miou13),
        pct(s.pixel_accuracy),
        report.images.len()
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_names_every_bad_param() {
        Evaluate::validate(&EvaluateParams::default()).unwrap();
        let bad = EvaluateParams {
            batch_size: 0,
            panel_width: 0,
            device: "gpu".into(),
            ..EvaluateParams::default()
        };
        let problems = Evaluate::validate(&bad).unwrap_err();
        let names: Vec<&str> = problems.iter().map(|p| p.param.as_str()).collect();
        assert_eq!(
            names,
            ["batch_size", "panel_width", "device"],
            "{problems:?}"
        );
    }
}
