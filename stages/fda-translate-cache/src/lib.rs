//! `fda-translate-cache`: Fourier domain transfer (paper eq. 1) both ways, written once as
//! ImageSets so training stages read translated images instead of recomputing them each epoch.
//!
//! Inputs: `source` and `target`, ImageSet folders from `preprocess-resize` (equal image sizes).
//!
//! Outputs (for the one β of param `beta`):
//!
//! ```text
//! s2t/images.zarr       source images in target style (same shape and chunking as the source)
//! s2t/labels.zarr       the source labels (hard-linked), so training reads one ImageSet
//! s2t/manifest.parquet  the source manifest (hard-linked): row i describes the content image i
//! t2s/images.zarr       target images in source style
//! t2s/labels.zarr       the target labels, when the target set has them
//! t2s/manifest.parquet  the target manifest
//! pairs.parquet         direction ("s2t" | "t2s"), index, partner_index, beta:
//!                       image `index` of the content domain took the style of image
//!                       `partner_index` of the other domain
//! previews/*.png        panels source | target | s2t and target | source | t2s
//! metrics.json
//! ```
//!
//! One run translates one β. Several β are the runner's sweep, `foreach: {beta: [...]}` in
//! `pipeline.yaml`, which gives one cached instance per value (`fda[beta=0.05]/`); a list given
//! to the stage itself is an error saying so. The pairing is the same for every β (it depends on
//! the seed only), so the instances differ only in the window.
//!
//! Pairing: `uda_fda::pairing` (ChaCha8 from `seed`, balanced: every style image lends its
//! style `floor(n/m)` or `ceil(n/m)` times). Values are rounded half to even and clipped to
//! 0..255. Window: `square` (official FDA numpy function, default) or `rect` (paper eq. 1).
//!
//! Shardable (`--shard I/N`, `--merge-shards DIR`; see `uda_stage`): shard `I` translates the
//! `I`-th contiguous range of whole Zarr shards of each direction's content set (source images
//! for s2t, target images for t2s; the pairing is computed whole by every task, from the seed).
//! The merge links the chunk files into place and writes the arrays' metadata, the companions,
//! `pairs.parquet`, the previews and `metrics.json`. Every file is byte-identical to an
//! unsharded run's except the wall-clock figures in `metrics.json` (`seconds`,
//! `s2t_images_per_s`, `t2s_images_per_s`, and `threads`, the merge's), which differ between
//! any two runs; sharded, `seconds` is the tasks' translation time added up.

mod previews;
mod shards;
mod translate;

use anyhow::Context;
use arrow::array::{ArrayRef, Float64Array, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use uda_data::imageset::ImageSet;
use uda_fda::{Fda, Pairing, Window};
use uda_stage::{InputSpec, OutputSpec, ParamProblem, Shard, ShardSpec, Stage, StageContext};

pub use translate::{Direction, DirectionStats, style_uses, translate_direction};

/// Name of the pairing table.
pub const PAIRS: &str = "pairs.parquet";
/// Output ImageSet of source images in target style.
pub const S2T: &str = "s2t";
/// Output ImageSet of target images in source style.
pub const T2S: &str = "t2s";
/// Folder of preview panels.
pub const PREVIEWS: &str = "previews";

/// Reads `beta` as one number; a list (the stage's former way to sweep β, which disagreed with
/// the runner's sweep folders) is an error that points at the runner's `foreach`.
fn one_beta<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    struct OneBeta;
    impl<'de> serde::de::Visitor<'de> for OneBeta {
        type Value = f64;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("one number in (0, 1), e.g. 0.01")
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<f64, E> {
            Ok(v)
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<f64, A::Error> {
            Err(serde::de::Error::custom(
                "a list of betas is not accepted: the stage translates one β; to sweep β, give the \
                 stage one value and write `foreach: {beta: [0.01, 0.05, 0.09]}` in pipeline.yaml",
            ))
        }
    }
    d.deserialize_any(OneBeta)
}

/// Params of `fda-translate-cache`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FdaParams {
    /// Window size as a fraction of the image, in (0, 1): one number (sweep β with the runner's
    /// `foreach`).
    #[serde(deserialize_with = "one_beta")]
    pub beta: f64,
    /// Seed of the source↔target pairing.
    pub seed: u64,
    /// `square` (official FDA numpy function) or `rect` (the paper's eq. 1 mask).
    pub window: Window,
    /// Preview panels per direction.
    pub previews: usize,
}

impl Default for FdaParams {
    fn default() -> Self {
        Self {
            beta: 0.01,
            seed: 0,
            window: Window::Square,
            previews: 4,
        }
    }
}

/// The stage.
#[derive(Debug)]
pub struct FdaTranslateCache;

impl Stage for FdaTranslateCache {
    const KIND: &'static str = "fda-translate-cache";
    const DOC: &'static str = "Fourier domain transfer both ways: source images in target style (s2t) and target images in source style (t2s)";
    type Params = FdaParams;

    fn inputs() -> Vec<InputSpec> {
        vec![
            InputSpec::required("source", "ImageSet of the labelled source domain (GTA5)"),
            InputSpec::required(
                "target",
                "ImageSet of the target domain (Cityscapes), same image size",
            ),
        ]
    }

    fn outputs() -> Vec<OutputSpec> {
        vec![
            OutputSpec::new(
                S2T,
                "ImageSet: source images in target style, with the source labels",
            ),
            OutputSpec::new(
                T2S,
                "ImageSet: target images in source style (with target labels if any)",
            ),
            OutputSpec::new(PAIRS, "direction, index, partner_index, beta"),
            OutputSpec::new(
                PREVIEWS,
                "PNG panels: source | target | s2t and target | source | t2s",
            ),
        ]
    }

    fn validate(p: &FdaParams) -> Result<(), Vec<ParamProblem>> {
        uda_fda::check_beta(p.beta).map_err(|e| vec![ParamProblem::new("beta", e.to_string())])
    }

    const SHARDABLE: bool = true;

    fn run(ctx: &StageContext, p: &FdaParams) -> anyhow::Result<()> {
        let plan = Plan::new(ctx, p)?;
        let part = plan.translate(ctx, ShardSpec::WHOLE)?;
        plan.finish(ctx, p, [part.s2t.seconds, part.t2s.seconds])
    }

    fn run_shard(
        ctx: &StageContext,
        p: &FdaParams,
        shard: ShardSpec,
    ) -> anyhow::Result<serde_json::Value> {
        let plan = Plan::new(ctx, p)?;
        Ok(serde_json::to_value(plan.translate(ctx, shard)?)?)
    }

    fn merge_shards(ctx: &StageContext, p: &FdaParams, shards: &[Shard]) -> anyhow::Result<()> {
        let plan = Plan::new(ctx, p)?;
        let seconds = shards::assemble(ctx, &plan, shards)?;
        plan.finish(ctx, p, seconds)
    }
}

/// The inputs, checked against each other, with the FDA plan and the pairing: what every run
/// (whole, shard task or merge) starts from.
#[derive(Debug)]
struct Plan {
    source: ImageSet,
    target: ImageSet,
    fda: Fda<f64>,
    pairing: Pairing,
}

impl Plan {
    fn new(ctx: &StageContext, p: &FdaParams) -> anyhow::Result<Self> {
        let source = open_set(ctx, "source")?;
        let target = open_set(ctx, "target")?;
        let (h, w) = (source.height(), source.width());
        if (h, w) != (target.height(), target.width()) {
            anyhow::bail!(
                "input arrays differ in size: source {} is {}×{} (W×H) but target {} is {}×{}; FDA swaps \
                 spectra of equally sized images: run preprocess-resize with the same size for both",
                source.images().path().display(),
                w,
                h,
                target.images().path().display(),
                target.width(),
                target.height()
            );
        }
        // Plan (and so check the window against the image size) before any work.
        let fda = Fda::<f64>::new(h, w, 3, p.beta, p.window)
            .with_context(|| format!("param beta = {}, window = {}", p.beta, p.window))?;
        let pairing = Pairing::new(source.len(), target.len(), p.seed)
            .context("pairing the source and target inputs")?;
        Ok(Self {
            source,
            target,
            fda,
            pairing,
        })
    }

    /// Each direction's images of `shard`: a range of whole Zarr shards of its content set.
    fn ranges(&self, shard: ShardSpec) -> [std::ops::Range<usize>; 2] {
        [&self.source, &self.target]
            .map(|set| shard.range(set.len(), set.images().layout().images_per_shard))
    }

    /// Translates `shard`'s images of both directions into `ctx`'s output folder.
    fn translate(&self, ctx: &StageContext, shard: ShardSpec) -> anyhow::Result<shards::Part> {
        let dir = ctx.out_dir();
        let tag = format!("β={}", self.fda.beta());
        let [s2t_range, t2s_range] = self.ranges(shard);
        let s2t = translate_direction(
            ctx,
            &self.fda,
            Direction {
                content: &self.source,
                style: &self.target,
                partners: &self.pairing.source_to_target,
            },
            s2t_range.clone(),
            &dir.join(S2T),
            &format!("s2t {tag}"),
        )?;
        let t2s = translate_direction(
            ctx,
            &self.fda,
            Direction {
                content: &self.target,
                style: &self.source,
                partners: &self.pairing.target_to_source,
            },
            t2s_range.clone(),
            &dir.join(T2S),
            &format!("t2s {tag}"),
        )?;
        Ok(shards::Part::new(
            [self.source.len(), self.target.len()],
            [s2t_range, t2s_range],
            [s2t.seconds, t2s.seconds],
        ))
    }

    /// What depends on every image, once both translated arrays are complete in `ctx`'s output
    /// folder: the companions (labels, manifests), `pairs.parquet`, the previews and the metrics.
    /// `seconds`: the time spent translating each direction (summed over shards).
    fn finish(&self, ctx: &StageContext, p: &FdaParams, seconds: [f64; 2]) -> anyhow::Result<()> {
        let dir = ctx.out_dir();
        let (source, target, fda, pairing) = (&self.source, &self.target, &self.fda, &self.pairing);
        link_companions(source, &dir.join(S2T))?;
        link_companions(target, &dir.join(T2S))?;
        write_pairs(&dir.join(PAIRS), pairing, fda.beta())?;
        previews::write(
            &dir.join(PREVIEWS),
            source,
            target,
            dir,
            pairing,
            p.previews,
        )?;

        let [s2t, t2s] = [
            (source, target, &pairing.source_to_target, S2T),
            (target, source, &pairing.target_to_source, T2S),
        ]
        .map(|(content, style, partners, name)| {
            // The amplitudes a whole run holds: those of styles lent more than once.
            let uses = style_uses(partners, style.len(), name)?;
            let shared = uses.iter().filter(|&&u| u > 1).count();
            let amplitude_bytes = match shared {
                0 => 0,
                _ => fda.amplitude(&style.images().read(0)?)?.size_bytes(),
            };
            anyhow::Ok((
                content.len(),
                uses.iter().filter(|&&u| u > 0).count(),
                shared * amplitude_bytes,
            ))
        });
        let ((s2t_images, s2t_styles, s2t_cache), (t2s_images, t2s_styles, t2s_cache)) =
            (s2t?, t2s?);
        let per_second = |images: usize, s: f64| images as f64 / s.max(1e-9);

        let mut metrics = BTreeMap::new();
        metrics.insert("source_images".to_string(), serde_json::json!(source.len()));
        metrics.insert("target_images".to_string(), serde_json::json!(target.len()));
        metrics.insert(
            "window".to_string(),
            serde_json::json!(p.window.to_string()),
        );
        metrics.insert(
            "threads".to_string(),
            serde_json::json!(rayon::current_num_threads()),
        );
        let e = fda.extent();
        for (key, value) in [
            ("beta", serde_json::json!(fda.beta())),
            ("window_rows", serde_json::json!(e.rows())),
            ("window_cols", serde_json::json!(e.cols())),
            (
                "s2t_images_per_s",
                serde_json::json!(per_second(s2t_images, seconds[0])),
            ),
            (
                "t2s_images_per_s",
                serde_json::json!(per_second(t2s_images, seconds[1])),
            ),
            ("s2t_style_images", serde_json::json!(s2t_styles)),
            ("t2s_style_images", serde_json::json!(t2s_styles)),
            (
                "amplitude_cache_mb",
                serde_json::json!(s2t_cache.max(t2s_cache) as f64 / 1e6),
            ),
            ("seconds", serde_json::json!(seconds[0] + seconds[1])),
        ] {
            metrics.insert(key.to_string(), value);
        }
        ctx.write_metrics(&metrics)
    }
}

fn open_set(ctx: &StageContext, name: &str) -> anyhow::Result<ImageSet> {
    let dir = ctx.input(name)?;
    let set = ImageSet::open(dir).with_context(|| format!("input '{name}'"))?;
    anyhow::ensure!(
        !set.is_empty(),
        "input '{name}': {} holds no images",
        set.images().path().display()
    );
    Ok(set)
}

fn link_companions(content: &ImageSet, out: &Path) -> anyhow::Result<()> {
    Ok(uda_data::imageset::link_annotations(content, out)?)
}

/// `pairs.parquet`: one row per translated image, s2t rows then t2s rows.
pub fn write_pairs(path: &Path, pairing: &Pairing, beta: f64) -> anyhow::Result<()> {
    let rows = pairing.source_to_target.len() + pairing.target_to_source.len();
    let mut direction = Vec::with_capacity(rows);
    let (mut index, mut partner) = (Vec::with_capacity(rows), Vec::with_capacity(rows));
    for (name, partners) in [
        (S2T, &pairing.source_to_target),
        (T2S, &pairing.target_to_source),
    ] {
        for (i, &j) in partners.iter().enumerate() {
            direction.push(name);
            index.push(i as u64);
            partner.push(j as u64);
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("direction", DataType::Utf8, false),
        Field::new("index", DataType::UInt64, false),
        Field::new("partner_index", DataType::UInt64, false),
        Field::new("beta", DataType::Float64, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(direction)),
        Arc::new(UInt64Array::from(index)),
        Arc::new(UInt64Array::from(partner)),
        Arc::new(Float64Array::from(vec![beta; rows])),
    ];
    let batch = RecordBatch::try_new(schema, columns)?;
    uda_data::table::write_parquet(path, &batch)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beta_param_is_one_number_and_a_list_points_at_foreach() {
        let one: FdaParams = serde_json::from_value(serde_json::json!({"beta": 0.05})).unwrap();
        assert_eq!(one.beta, 0.05);
        let whole: FdaParams = serde_json::from_value(serde_json::json!({"beta": 1})).unwrap();
        assert_eq!(
            whole.beta, 1.0,
            "integers read as numbers (and then fail validate)"
        );
        let err = serde_json::from_value::<FdaParams>(serde_json::json!({"beta": [0.01, 0.09]}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("foreach: {beta:"), "{err}");
        let err = serde_json::from_value::<FdaParams>(serde_json::json!({"beta": "0.1"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("one number in (0, 1)"), "{err}");
        let rect: FdaParams =
            serde_json::from_value(serde_json::json!({"window": "rect"})).unwrap();
        assert_eq!(rect.window, Window::Rect);
        let err = serde_json::from_value::<FdaParams>(serde_json::json!({"window": "circle"}))
            .unwrap_err();
        assert!(err.to_string().contains("circle"), "{err}");
        assert!(serde_json::from_value::<FdaParams>(serde_json::json!({"betta": 0.1})).is_err());
    }

    #[test]
    fn beta_values_are_checked() {
        FdaTranslateCache::validate(&FdaParams::default()).unwrap();
        for bad in [0.0, 1.0, -0.1, f64::NAN] {
            let problems = FdaTranslateCache::validate(&FdaParams {
                beta: bad,
                ..FdaParams::default()
            })
            .unwrap_err();
            assert_eq!(problems.len(), 1);
            assert_eq!(problems[0].param, "beta");
            assert!(problems[0].message.contains("(0, 1)"), "{problems:?}");
        }
    }

    #[test]
    fn a_beta_list_is_a_problem_named_beta() {
        let problems = uda_stage::params_from_value::<FdaParams>(
            FdaTranslateCache::KIND,
            serde_json::json!({"beta": [0.01, 0.05]}),
        )
        .unwrap_err()
        .to_string();
        assert!(
            problems.contains("param beta: a list of betas is not accepted"),
            "{problems}"
        );
    }
}
