//! External mode: score a folder of prediction PNGs against Cityscapes ground truth.

use crate::shards::Scored;
use crate::{EvaluateParams, PANELS, params_json};
use std::collections::BTreeMap;
use uda_metrics::external::{load_pair, match_predictions, score_pairs};
use uda_metrics::panel::{Raster, write_qualitative_panel};
use uda_metrics::{PredIds, Provenance, Report};
use uda_stage::{ShardSpec, StageContext};

/// Share of evaluated pixels predicted outside the 19 classes above which train-id predictions
/// are probably label ids.
const SUSPICIOUS_OTHER: f64 = 0.05;

/// Scores `shard`'s pairs (contiguous in the official matching order) and writes the panels of
/// those among the first `params.panels`.
pub(crate) fn score(
    ctx: &StageContext,
    params: &EvaluateParams,
    shard: ShardSpec,
) -> anyhow::Result<Scored> {
    let (Some(pred_dir), Some(gt_root)) = (
        ctx.optional_input("pred_dir"),
        ctx.optional_input("gt_root"),
    ) else {
        anyhow::bail!(
            "external mode needs both --pred-dir DIR (input pred_dir) and --gt-root CITYSCAPES_ROOT (input gt_root)"
        );
    };
    let pairs = match_predictions(pred_dir, gt_root, &params.split)?;
    let range = shard.range(pairs.len(), 1);
    let progress = ctx.progress("score", range.len() as u64);
    let images = score_pairs(&pairs[range.clone()], params.pred_ids, || progress.inc(1))?;
    progress.finish();

    let panels = range.start..range.end.min(params.panels);
    for (i, pair) in panels.clone().zip(&pairs[panels]) {
        let (w, h, gt, pred) = load_pair(pair, params.pred_ids)?;
        let image = pair
            .image
            .as_deref()
            .map(uda_data::png::read_rgb)
            .transpose()?;
        let image = image.as_ref().map(|im| Raster {
            width: im.width,
            height: im.height,
            data: &im.pixels,
        });
        let path = ctx
            .out_path(PANELS)
            .join(format!("{i:05}_{}.png", pair.name));
        write_qualitative_panel(
            &path,
            image,
            Raster {
                width: w,
                height: h,
                data: &gt,
            },
            &pred,
            params.panel_width,
        )?;
    }

    Ok(Scored {
        items: pairs.len(),
        align: 1,
        range,
        images,
        provenance: Provenance {
            stage: ctx.kind().to_string(),
            mode: "external".into(),
            predictions: pred_dir.display().to_string(),
            ground_truth: format!("{} (split {})", gt_root.display(), params.split),
            model_meta: None,
            params: params_json(params),
        },
        extra_metrics: BTreeMap::new(),
    })
}

/// Warns when train-id predictions look like Cityscapes label ids (many pixels outside 0..=18).
pub(crate) fn warn_if_label_ids(report: &Report, params: &EvaluateParams) {
    let (other, valid) = (report.total.other_pixels(), report.total.valid_pixels());
    if params.pred_ids == PredIds::Train && other as f64 > SUSPICIOUS_OTHER * valid as f64 {
        eprintln!(
            "warning: {:.1} % of evaluated pixels are predicted as values outside train ids 0..=18 (counted as false \
             negatives); if the PNGs hold Cityscapes label ids, rerun with pred_ids=label (--pred-ids label)",
            100.0 * other as f64 / valid.max(1) as f64
        );
    }
}
