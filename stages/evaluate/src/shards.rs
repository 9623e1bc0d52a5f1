//! Sharded evaluation: what a shard task scores ([`Scored`]: per-image confusion matrices in
//! item order, the provenance, the ensemble's metrics) and how the merge reads it back.
//!
//! Images are split into contiguous ranges aligned to `batch_size` in model mode (so every batch,
//! and with it every prediction, is the one a whole run makes) and to single pairs in external
//! mode. Per-image matrices are integer counts, so the merge's sums, and every IoU computed from
//! them, are exactly those of a whole run. Panels are per image: each task writes those of its
//! own images among the first `panels`, and the merge links them into place.

use crate::PANELS;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::Range;
use uda_data::classes::NUM_CLASSES;
use uda_metrics::{COLUMNS, ConfusionMatrix, ImageResult, Provenance};
use uda_stage::shard::link_tree;
use uda_stage::{Shard, StageContext};

/// The scored images of one shard (or of the whole run).
#[derive(Debug)]
pub(crate) struct Scored {
    /// Images (or prediction pairs) in the whole evaluation.
    pub items: usize,
    /// What the shard ranges are aligned to.
    pub align: usize,
    pub range: Range<usize>,
    pub images: Vec<ImageResult>,
    pub provenance: Provenance,
    /// `metrics.json` entries besides the scores (an ensemble's members).
    pub extra_metrics: BTreeMap<String, serde_json::Value>,
}

/// [`Scored`] as `shard.json` holds it.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    items: usize,
    align: usize,
    start: usize,
    end: usize,
    images: Vec<ImageRecord>,
    provenance: ProvenanceRecord,
    extra_metrics: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ImageRecord {
    name: String,
    counts: [[u64; COLUMNS]; NUM_CLASSES],
    ignored: u64,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct ProvenanceRecord {
    stage: String,
    mode: String,
    predictions: String,
    ground_truth: String,
    model_meta: Option<String>,
    params: String,
}

impl Scored {
    pub fn to_value(&self) -> serde_json::Value {
        let p = &self.provenance;
        let record = Record {
            items: self.items,
            align: self.align,
            start: self.range.start,
            end: self.range.end,
            images: self
                .images
                .iter()
                .map(|i| ImageRecord {
                    name: i.name.clone(),
                    counts: *i.matrix.rows(),
                    ignored: i.matrix.ignored_pixels(),
                })
                .collect(),
            provenance: ProvenanceRecord {
                stage: p.stage.clone(),
                mode: p.mode.clone(),
                predictions: p.predictions.clone(),
                ground_truth: p.ground_truth.clone(),
                model_meta: p.model_meta.clone(),
                params: p.params.clone(),
            },
            extra_metrics: self.extra_metrics.clone(),
        };
        serde_json::to_value(record).expect("shard records serialise")
    }

    fn from_record(r: Record) -> Self {
        let p = r.provenance;
        Self {
            items: r.items,
            align: r.align,
            range: r.start..r.end,
            images: r
                .images
                .into_iter()
                .map(|i| ImageResult {
                    name: i.name,
                    matrix: ConfusionMatrix::from_counts(i.counts, i.ignored),
                })
                .collect(),
            provenance: Provenance {
                stage: p.stage,
                mode: p.mode,
                predictions: p.predictions,
                ground_truth: p.ground_truth,
                model_meta: p.model_meta,
                params: p.params,
            },
            extra_metrics: r.extra_metrics,
        }
    }
}

/// Reads every shard's [`Scored`], checks that together they cover the evaluation once, in
/// order, from the same model and data, and links their panels into `ctx`'s output folder.
pub(crate) fn assemble(ctx: &StageContext, shards: &[Shard]) -> anyhow::Result<Vec<Scored>> {
    let mut parts: Vec<Scored> = Vec::with_capacity(shards.len());
    for shard in shards {
        let part = Scored::from_record(shard.data::<Record>()?);
        if let Some(first) = parts.first() {
            anyhow::ensure!(
                part.items == first.items
                    && part.align == first.align
                    && part.provenance == first.provenance
                    && part.extra_metrics == first.extra_metrics,
                "{}: shard {} scored {} images of {} ({}) but shard 0 scored {} of {} ({}); were all shards run on the same inputs?",
                shard.dir.display(),
                shard.spec,
                part.images.len(),
                part.provenance.predictions,
                part.provenance.ground_truth,
                first.items,
                first.provenance.predictions,
                first.provenance.ground_truth
            );
        }
        let expected = shard.spec.range(part.items, part.align);
        anyhow::ensure!(
            part.range == expected && part.images.len() == expected.len(),
            "{}: shard {} holds images {:?} ({} scored) but should hold {expected:?} of {}",
            shard.dir.display(),
            shard.spec,
            part.range,
            part.images.len(),
            part.items
        );
        let panels = shard.dir.join(PANELS);
        if panels.is_dir() {
            link_tree(&panels, &ctx.out_path(PANELS), &|_| false)?;
        }
        parts.push(part);
    }
    Ok(parts)
}
