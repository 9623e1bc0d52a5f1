//! `fda-translate-cache`: Fourier domain transfer (paper eq. 1) both ways, written once as
//! ImageSets so training stages read translated images instead of recomputing them each epoch.
//!
//! Inputs: `source` and `target`, ImageSet folders from `preprocess-resize` (equal image sizes).
//!
//! Outputs for one β (`beta` param a number):
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
//! For a list of β (`beta` param a list, even of one value): the same layout inside one folder
//! per value, named `beta-<β>` with β written as the shortest decimal that reads back exactly
//! (`beta-0.01/s2t`, `beta-0.05/s2t`, …). The pairing is the same for every β (it depends on the
//! seed only), so the β folders differ only in the window.
//!
//! Pairing: `uda_fda::pairing` (ChaCha8 from `seed`, balanced: every style image lends its
//! style `floor(n/m)` or `ceil(n/m)` times). Values are rounded half to even and clipped to
//! 0..255. Window: `square` (official FDA numpy function, default) or `rect` (paper eq. 1).

mod previews;
mod translate;

use anyhow::Context;
use arrow::array::{ArrayRef, Float64Array, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use uda_data::imageset::ImageSet;
use uda_fda::{Fda, Pairing, Window};
use uda_stage::{InputSpec, OutputSpec, ParamProblem, Stage, StageContext};

pub use translate::{DirectionStats, translate_direction};

/// Name of the pairing table.
pub const PAIRS: &str = "pairs.parquet";
/// Output ImageSet of source images in target style.
pub const S2T: &str = "s2t";
/// Output ImageSet of target images in source style.
pub const T2S: &str = "t2s";
/// Folder of preview panels.
pub const PREVIEWS: &str = "previews";

/// One β or several (the output layout depends on which; see the crate docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Betas {
    One(f64),
    Many(Vec<f64>),
}

impl Betas {
    pub fn values(&self) -> Vec<f64> {
        match self {
            Betas::One(b) => vec![*b],
            Betas::Many(v) => v.clone(),
        }
    }
}

/// Params of `fda-translate-cache`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FdaParams {
    /// Window size as a fraction of the image, in (0, 1); a list gives one output folder per β.
    pub beta: Betas,
    /// Seed of the source↔target pairing.
    pub seed: u64,
    /// `square` (official FDA numpy function) or `rect` (the paper's eq. 1 mask).
    pub window: Window,
    /// Preview panels per direction (and per β).
    pub previews: usize,
}

impl Default for FdaParams {
    fn default() -> Self {
        Self {
            beta: Betas::One(0.01),
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
        check_betas(&p.beta)
            .map(|_| ())
            .map_err(|message| vec![ParamProblem::new("beta", message)])
    }

    fn run(ctx: &StageContext, p: &FdaParams) -> anyhow::Result<()> {
        let betas = p.beta.values();
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
        // Plan (and so validate) every β before any work.
        let plans = betas
            .iter()
            .map(|&b| {
                Fda::<f64>::new(h, w, 3, b, p.window)
                    .with_context(|| format!("param beta = {b}, window = {}", p.window))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let pairing = Pairing::new(source.len(), target.len(), p.seed)
            .context("pairing the source and target inputs")?;

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
        for fda in &plans {
            let (dir, prefix) = match p.beta {
                Betas::One(_) => (ctx.out_dir().to_path_buf(), String::new()),
                Betas::Many(_) => {
                    let name = beta_folder(fda.beta());
                    (ctx.out_path(&name), format!("{name}/"))
                }
            };
            let tag = format!("β={}", fda.beta());
            let s2t = translate_direction(
                ctx,
                fda,
                &source,
                &target,
                &pairing.source_to_target,
                &dir.join(S2T),
                &format!("s2t {tag}"),
            )?;
            link_companions(&source, &dir.join(S2T))?;
            let t2s = translate_direction(
                ctx,
                fda,
                &target,
                &source,
                &pairing.target_to_source,
                &dir.join(T2S),
                &format!("t2s {tag}"),
            )?;
            link_companions(&target, &dir.join(T2S))?;
            write_pairs(&dir.join(PAIRS), &pairing, fda.beta())?;
            previews::write(
                &dir.join(PREVIEWS),
                &source,
                &target,
                &dir,
                &pairing,
                p.previews,
            )?;

            let e = fda.extent();
            for (key, value) in [
                ("beta", serde_json::json!(fda.beta())),
                ("window_rows", serde_json::json!(e.rows())),
                ("window_cols", serde_json::json!(e.cols())),
                (
                    "s2t_images_per_s",
                    serde_json::json!(s2t.images_per_second()),
                ),
                (
                    "t2s_images_per_s",
                    serde_json::json!(t2s.images_per_second()),
                ),
                ("s2t_style_images", serde_json::json!(s2t.styles)),
                ("t2s_style_images", serde_json::json!(t2s.styles)),
                (
                    "amplitude_cache_mb",
                    serde_json::json!(s2t.cache_bytes.max(t2s.cache_bytes) as f64 / 1e6),
                ),
                ("seconds", serde_json::json!(s2t.seconds + t2s.seconds)),
            ] {
                metrics.insert(format!("{prefix}{key}"), value);
            }
        }
        ctx.write_metrics(&metrics)
    }
}

/// Folder name of one β in the list layout: `beta-` + the shortest round-tripping decimal.
pub fn beta_folder(beta: f64) -> String {
    format!("beta-{beta}")
}

fn check_betas(betas: &Betas) -> Result<Vec<f64>, String> {
    let values = betas.values();
    if values.is_empty() {
        return Err("the list is empty; give at least one value in (0, 1), e.g. 0.01".into());
    }
    for (i, &b) in values.iter().enumerate() {
        uda_fda::check_beta(b).map_err(|e| e.to_string())?;
        if values[..i].contains(&b) {
            return Err(format!("{b} is listed twice"));
        }
    }
    Ok(values)
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
    fn beta_param_parses_number_or_list() {
        let one: FdaParams = serde_json::from_value(serde_json::json!({"beta": 0.05})).unwrap();
        assert_eq!(one.beta, Betas::One(0.05));
        let many: FdaParams =
            serde_json::from_value(serde_json::json!({"beta": [0.01, 0.09], "window": "rect"}))
                .unwrap();
        assert_eq!(many.beta, Betas::Many(vec![0.01, 0.09]));
        assert_eq!(many.window, Window::Rect);
        let err = serde_json::from_value::<FdaParams>(serde_json::json!({"window": "circle"}))
            .unwrap_err();
        assert!(err.to_string().contains("circle"), "{err}");
        assert!(serde_json::from_value::<FdaParams>(serde_json::json!({"betta": 0.1})).is_err());
    }

    #[test]
    fn beta_values_are_checked() {
        assert_eq!(
            check_betas(&Betas::Many(vec![0.01, 0.05])).unwrap(),
            vec![0.01, 0.05]
        );
        let problems = FdaTranslateCache::validate(&FdaParams {
            beta: Betas::One(1.0),
            ..FdaParams::default()
        })
        .unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].param, "beta");
        assert!(problems[0].message.contains("(0, 1)"), "{problems:?}");
        let err = check_betas(&Betas::Many(vec![0.01, 0.01])).unwrap_err();
        assert!(err.contains("twice"), "{err}");
        assert!(check_betas(&Betas::Many(vec![])).is_err());
    }

    #[test]
    fn folder_names_read_back() {
        assert_eq!(beta_folder(0.01), "beta-0.01");
        assert_eq!(beta_folder(0.1), "beta-0.1");
    }
}
