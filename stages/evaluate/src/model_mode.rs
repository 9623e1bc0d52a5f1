//! Model mode: predict every image of an ImageSet and score it against its labels.

use crate::model::{Predictor, TchPredictor};
use crate::shards::Scored;
use crate::{EvaluateParams, PANELS, params_json};
use anyhow::Context;
use std::ops::Range;
use std::path::Path;
use uda_data::{ImageArray, ImageSet};
use uda_metrics::panel::{Raster, write_qualitative_panel};
use uda_metrics::{ConfusionMatrix, ImageResult, Provenance};
use uda_stage::{ShardSpec, StageContext};
use uda_train::ensemble::ModelInput;

/// The images to predict on and the labels to score against (already checked to pair up).
#[derive(Debug)]
pub struct ModelEvalSet {
    pub data: ImageSet,
    /// `labels.zarr` of `data`, or of a separate `labels` ImageSet.
    labels_from: Option<ImageSet>,
    pub names: Vec<String>,
}

impl ModelEvalSet {
    /// Opens `data` and (optionally) a separate `labels` ImageSet, checking that they hold
    /// the same images.
    pub fn open(data_dir: &Path, labels_dir: Option<&Path>) -> anyhow::Result<Self> {
        let data = ImageSet::open(data_dir).context("input data")?;
        anyhow::ensure!(
            !data.is_empty(),
            "input data {}: the ImageSet has no images",
            data_dir.display()
        );
        let labels_from = labels_dir
            .map(|d| ImageSet::open(d).context("input labels"))
            .transpose()?;
        let label_set = labels_from.as_ref().unwrap_or(&data);
        anyhow::ensure!(
            label_set.labels().is_some(),
            "{}: no labels.zarr; evaluation needs labels (preprocess the split with labels=required, or pass --input labels=IMAGESET)",
            label_set.dir().display()
        );
        anyhow::ensure!(
            label_set.len() == data.len(),
            "input labels {} holds {} images but input data {} holds {}; they must be the same images in the same order",
            label_set.dir().display(),
            label_set.len(),
            data.dir().display(),
            data.len()
        );
        if let Some(l) = &labels_from {
            uda_data::imageset::check_same_images(l, &data).context(
                "input labels and input data must hold the same images in the same order",
            )?;
        }
        let data_names = data.manifest_names()?;
        let label_names = match &labels_from {
            Some(l) => l.manifest_names()?,
            None => None,
        };
        let names = data_names
            .or(label_names)
            .unwrap_or_else(|| (0..data.len()).map(|i| format!("{i:05}")).collect());
        Ok(Self {
            data,
            labels_from,
            names,
        })
    }

    pub fn labels(&self) -> &ImageArray {
        self.labels_from
            .as_ref()
            .unwrap_or(&self.data)
            .labels()
            .expect("checked in open")
    }

    pub fn labels_dir(&self) -> &Path {
        self.labels_from.as_ref().unwrap_or(&self.data).dir()
    }
}

/// Predicts and scores every image in batches of `params.batch_size`, writing panels for the
/// first `params.panels` images into `panel_dir`; `done(n)` after each batch.
pub fn score_imageset(
    predictor: &mut dyn Predictor,
    set: &ModelEvalSet,
    params: &EvaluateParams,
    panel_dir: &Path,
    done: &dyn Fn(u64),
) -> anyhow::Result<Vec<ImageResult>> {
    let all = 0..set.data.len();
    score_range(predictor, set, params, all, panel_dir, done)
}

/// [`score_imageset`] for the images in `range` only (a shard's). Batches start at
/// `range.start`, so a range starting at a multiple of `params.batch_size` (what sharding
/// gives) sees exactly the batches of a whole run, and so the same predictions.
pub fn score_range(
    predictor: &mut dyn Predictor,
    set: &ModelEvalSet,
    params: &EvaluateParams,
    range: Range<usize>,
    panel_dir: &Path,
    done: &dyn Fn(u64),
) -> anyhow::Result<Vec<ImageResult>> {
    let (images, labels) = (set.data.images(), set.labels());
    let size = [images.height(), images.width()];
    let out_size = [labels.height(), labels.width()];
    let label_len = labels.image_len();
    let mut results = Vec::with_capacity(range.len());
    for start in range.clone().step_by(params.batch_size) {
        let count = params.batch_size.min(range.end - start);
        let rgb = images.read_range(start, count)?;
        let pred = predictor
            .predict(&rgb, count, size, out_size)
            .with_context(|| format!("predicting images {start}..{}", start + count))?;
        anyhow::ensure!(
            pred.len() == count * label_len,
            "the predictor returned {} values for {count} maps of {}x{}",
            pred.len(),
            out_size[0],
            out_size[1]
        );
        for k in 0..count {
            let i = start + k;
            let gt = labels.read(i)?;
            let p = &pred[k * label_len..(k + 1) * label_len];
            let matrix = ConfusionMatrix::from_maps(&gt, p)
                .with_context(|| format!("{}: image {i}", labels.path().display()))?;
            if i < params.panels {
                let image_len = size[0] * size[1] * 3;
                let image = Raster {
                    width: size[1],
                    height: size[0],
                    data: &rgb[k * image_len..(k + 1) * image_len],
                };
                let gt = Raster {
                    width: out_size[1],
                    height: out_size[0],
                    data: &gt,
                };
                let path = panel_dir.join(format!("{i:05}_{}.png", set.names[i]));
                write_qualitative_panel(&path, Some(image), gt, p, params.panel_width)?;
            }
            results.push(ImageResult {
                name: set.names[i].clone(),
                matrix,
            });
        }
        done(count as u64);
    }
    Ok(results)
}

/// Scores the model (one checkpoint or an ensemble, see [`crate::model`]) on `shard`'s images
/// of `data` (contiguous, aligned to `batch_size`); the scored part also carries the ensemble's
/// entries for `metrics.json` (none for one checkpoint).
pub(crate) fn score(
    ctx: &StageContext,
    params: &EvaluateParams,
    shard: ShardSpec,
) -> anyhow::Result<Scored> {
    let (Some(model_dir), Some(data_dir)) =
        (ctx.optional_input("model"), ctx.optional_input("data"))
    else {
        anyhow::bail!(
            "model mode needs both --input model=CHECKPOINT_FOLDER (or a folder of them) and --input data=IMAGESET"
        );
    };
    let set = ModelEvalSet::open(data_dir, ctx.optional_input("labels"))?;
    let device = uda_models::device_from_spec(&params.device).context("param device")?;
    let mut predictor = TchPredictor::load(model_dir, device, params).context("input 'model'")?;
    eprintln!(
        "evaluate: forward pass {}",
        predictor.ensemble().forward_mode()
    );
    if let ModelInput::Members { dirs, .. } = predictor.input() {
        eprintln!(
            "evaluate: the softmax average of {} checkpoints: {}",
            dirs.len(),
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let model_meta = predictor.model_meta();
    let (items, align) = (set.data.len(), params.batch_size);
    let range = shard.range(items, align);
    let progress = ctx.progress("predict", range.len() as u64);
    let images = score_range(
        &mut predictor,
        &set,
        params,
        range.clone(),
        &ctx.out_path(PANELS),
        &|n| progress.inc(n),
    )?;
    progress.finish();
    Ok(Scored {
        items,
        align,
        range,
        images,
        provenance: Provenance {
            stage: ctx.kind().to_string(),
            mode: "model".into(),
            predictions: model_dir.display().to_string(),
            ground_truth: set.labels_dir().display().to_string(),
            model_meta: Some(model_meta),
            params: params_json(params),
        },
        extra_metrics: predictor.ensemble_metrics(),
    })
}
