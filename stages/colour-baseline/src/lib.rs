//! The `colour-baseline` stage: the trivial colour baselines (no spatial frequency at all), as ImageSets a training stage
//! reads like any other (see [`uda_fda::baselines`]).
//!
//! * `mode: mean-std`: every image of `images` normalised to per-channel mean `mean` and standard
//!   deviation `std`. Apply it to the source (training) and the target validation set (testing)
//!   alike; it uses no target data.
//! * `mode: histogram-match`: every image of `images` mapped channel by channel onto the pooled
//!   histogram of the `reference` set (the target training images).
//!
//! Output: an ImageSet folder (`images.zarr`, with `images`' `labels.zarr` and `manifest.parquet`
//! linked) and `metrics.json`.

use anyhow::Context;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uda_data::ImageSet;
use uda_data::imageset::{IMAGES, LABELS, MANIFEST, link_annotations};
use uda_data::zarr::ImageArrayWriter;
use uda_fda::baselines::{ChannelHistograms, match_histograms, normalize_mean_std};
use uda_stage::{InputSpec, OutputSpec, ParamProblem, ParamProblems, Stage, StageContext};

/// The stage.
#[derive(Debug)]
pub struct ColourBaseline;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    MeanStd,
    HistogramMatch,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ColourParams {
    pub mode: Mode,
    /// Target per-channel mean (mean-std).
    pub mean: f64,
    /// Target per-channel standard deviation (mean-std).
    pub std: f64,
}

impl Default for ColourParams {
    fn default() -> Self {
        Self {
            mode: Mode::MeanStd,
            mean: 128.0,
            std: 50.0,
        }
    }
}

impl Stage for ColourBaseline {
    const KIND: &'static str = "colour-baseline";
    const DOC: &'static str = "Trivial colour baselines: per-image mean/std normalisation, or histogram matching to a reference ImageSet";
    type Params = ColourParams;

    fn inputs() -> Vec<InputSpec> {
        vec![
            InputSpec::required("images", "ImageSet to transform"),
            InputSpec::optional(
                "reference",
                "ImageSet whose pooled histogram is matched (mode histogram-match)",
            ),
        ]
    }

    fn outputs() -> Vec<OutputSpec> {
        vec![
            OutputSpec::new(
                IMAGES,
                "the transformed images (labels.zarr and manifest.parquet linked from the input)",
            ),
            OutputSpec::new(uda_stage::METRICS_FILE, "images, mode"),
        ]
    }

    fn validate(p: &ColourParams) -> Result<(), Vec<ParamProblem>> {
        let mut problems = ParamProblems::new();
        problems.ensure(
            p.mean.is_finite() && (0.0..=255.0).contains(&p.mean),
            "mean",
            format!("must lie in 0..=255, got {}", p.mean),
        );
        problems.ensure(
            p.std.is_finite() && p.std > 0.0,
            "std",
            format!("must be > 0, got {}", p.std),
        );
        problems.into_result()
    }

    fn run(ctx: &StageContext, p: &ColourParams) -> anyhow::Result<()> {
        run(ctx, p)
    }
}

fn run(ctx: &StageContext, p: &ColourParams) -> anyhow::Result<()> {
    let set = ImageSet::open(ctx.input("images")?).context("input images")?;
    anyhow::ensure!(
        !set.is_empty(),
        "input images {}: no images",
        set.dir().display()
    );
    let reference = match p.mode {
        Mode::MeanStd => None,
        Mode::HistogramMatch => {
            let dir = ctx.optional_input("reference").context(
                "mode histogram-match needs --input reference=IMAGESET (the target training images)",
            )?;
            let r = ImageSet::open(dir).context("input reference")?;
            let progress = ctx.progress("reference histogram", r.len() as u64);
            let hist = (0..r.len())
                .into_par_iter()
                .map(|i| {
                    let h = ChannelHistograms::of(&r.images().read(i)?);
                    progress.inc(1);
                    Ok(h)
                })
                .try_reduce(ChannelHistograms::default, |mut a, b| {
                    a.merge(&b);
                    Ok(a)
                })
                .map_err(|e: uda_data::DataError| anyhow::anyhow!("input reference: {e}"))?;
            progress.finish();
            Some(hist)
        }
    };
    let out = ctx.out_dir();
    let writer = ImageArrayWriter::create(&out.join(IMAGES), *set.images().layout())?;
    let progress = ctx.progress(
        match p.mode {
            Mode::MeanStd => "normalise",
            Mode::HistogramMatch => "match histograms",
        },
        set.len() as u64,
    );
    (0..writer.shard_count())
        .into_par_iter()
        .try_for_each(|shard| -> anyhow::Result<()> {
            let range = writer.shard_range(shard);
            let mut images = set.images().read_range(range.start, range.len())?;
            for img in images.chunks_exact_mut(set.images().image_len()) {
                match &reference {
                    None => normalize_mean_std(img, p.mean, p.std),
                    Some(h) => match_histograms(img, h),
                }
            }
            writer.write_shard(shard, &images)?;
            progress.inc(range.len() as u64);
            Ok(())
        })?;
    progress.finish();
    writer.finish()?;
    link_annotations(&set, out)?;
    let mut metrics = BTreeMap::new();
    metrics.insert("images".into(), set.len().into());
    metrics.insert("mode".into(), serde_json::to_value(p.mode)?);
    metrics.insert("labels".into(), out.join(LABELS).exists().into());
    metrics.insert("manifest".into(), out.join(MANIFEST).exists().into());
    ctx.write_metrics(&metrics)?;
    Ok(())
}
