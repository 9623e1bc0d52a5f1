//! The steps every training stage takes around its own loss (`pretrain`, `contrastive-train`):
//! device and network with initial weights, optimiser and resumable trainer, loader configs, and
//! the outputs written at the end.

use crate::params::{NON_RESULT_PARAMS, PretrainParams};
use crate::preview;
use anyhow::{Context, bail};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use uda_models::tch::{Device, nn};
use uda_models::{ModelConfig, SegNet, WeightNaming};
use uda_stage::StageContext;
use uda_train::model_info::{MODEL_JSON, MODEL_WEIGHTS};
use uda_train::sampler::derive_seed;
use uda_train::source::SampleSource;
use uda_train::{LoaderConfig, ModelInfo, Optimizer, TrainSummary, Trainer, TrainerConfig};

/// File name of the training log.
pub const TRAIN_LOG: &str = "train_log.parquet";
/// File name of the prediction preview.
pub const PREVIEW: &str = "preview.png";

/// The network being trained and where it lives.
#[derive(Debug)]
pub struct Model {
    pub device: Device,
    pub vs: nn::VarStore,
    pub net: SegNet,
    pub config: ModelConfig,
}

/// Threads and device from the params, then the network, initialised from `init` when given
/// (whatever `init` does not cover, and everything without it, from the seed).
pub fn build_model(kind: &str, p: &PretrainParams, init: Option<&Path>) -> anyhow::Result<Model> {
    uda_train::set_threads(p.threads);
    let device = uda_models::device_from_spec(&p.device)
        .with_context(|| format!("param device '{}'", p.device))?;
    if let Some(hint) = uda_train::cpu_threads_hint(device, p.threads) {
        eprintln!("{kind}: {hint}");
    }
    let config = p.model_config();
    uda_models::tch::manual_seed(derive_seed(p.seed, "init") as i64);
    let mut vs = nn::VarStore::new(device);
    let mut net = SegNet::new(&vs.root(), &config);
    if let Some(init) = init {
        let file = resolve_weights(init)?;
        if let Some(norm) = init_normalization(p.init_naming(), &file)? {
            net.set_input_normalization(norm);
        }
        let report = uda_models::load_safetensors(&mut vs, &file, p.init_naming(), true)
            .with_context(|| {
                format!(
                    "loading input 'init' {} as {} weights",
                    file.display(),
                    p.init_naming()
                )
            })?;
        eprintln!(
            "{kind}: initialised {} variables from {} ({} left as initialised: {})",
            report.loaded.len(),
            file.display(),
            report.not_covered.len(),
            report.not_covered.join(", ")
        );
    } else {
        eprintln!(
            "{kind}: no 'init' input; {} starts from random weights",
            p.backbone
        );
    }
    Ok(Model {
        device,
        vs,
        net,
        config,
    })
}

/// The input normalisation the initial weights expect: fixed by their origin (torchvision,
/// FDA's DeepLab), or for our own checkpoints the one in the `model.json` beside the file.
fn init_normalization(
    naming: WeightNaming,
    file: &Path,
) -> anyhow::Result<Option<uda_models::Normalization>> {
    if let Some(norm) = uda_models::Normalization::for_weights(naming) {
        return Ok(Some(norm));
    }
    let dir = file.parent().unwrap_or(Path::new("."));
    if !dir.join(MODEL_JSON).exists() {
        return Ok(None);
    }
    let info = ModelInfo::read(dir).with_context(|| format!("input 'init' {}", dir.display()))?;
    Ok(Some(info.normalization))
}

/// A weights file: the path itself, or the single `.safetensors` file inside a folder.
pub fn resolve_weights(path: &Path) -> anyhow::Result<PathBuf> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("reading input 'init' folder {}", path.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => bail!(
            "input 'init' folder {} holds no .safetensors file",
            path.display()
        ),
        _ => bail!(
            "input 'init' folder {} holds {} .safetensors files; pass one file",
            path.display(),
            found.len()
        ),
    }
}

/// Identity of an input for the resume fingerprint: canonical path, plus size and mtime for files.
fn input_identity(path: &Path) -> serde_json::Value {
    let canon = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let meta = std::fs::metadata(&canon).ok();
    let (len, mtime) = meta
        .filter(|m| m.is_file())
        .map(|m| {
            let t = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs());
            (Some(m.len()), t)
        })
        .unwrap_or((None, None));
    serde_json::json!({ "path": canon.display().to_string(), "len": len, "mtime": mtime })
}

/// The optimiser over every trainable variable of `vs` (classifier and projection heads at
/// `head_lr_mult`), and a trainer that resumes a killed run of the same configuration: `params`
/// is the stage's whole params object (those in [`NON_RESULT_PARAMS`] are left out of the
/// fingerprint), `inputs` the inputs the run reads. Returns the trainer and its first iteration.
pub fn make_trainer<'a>(
    kind: &str,
    ctx: &StageContext,
    p: &PretrainParams,
    params: &serde_json::Value,
    inputs: &[(&str, &Path)],
    vs: &'a nn::VarStore,
) -> anyhow::Result<(Trainer<'a>, u64)> {
    let (opt_cfg, schedule) = p.optimization();
    let optimizer = Optimizer::new(vs, opt_cfg, &[1.0, p.head_lr_mult])?;
    let mut fp_params = params.clone();
    if let Some(obj) = fp_params.as_object_mut() {
        for k in NON_RESULT_PARAMS {
            obj.remove(k);
        }
    }
    let fp_inputs: BTreeMap<&str, serde_json::Value> = inputs
        .iter()
        .map(|(name, path)| (*name, input_identity(path)))
        .collect();
    let fingerprint = uda_train::fingerprint(
        kind,
        &serde_json::json!({"params": fp_params, "inputs": fp_inputs}),
    );
    let resume_dir = uda_train::resume_dir(ctx.out_dir());
    let mut trainer = Trainer::new(
        vs,
        optimizer,
        TrainerConfig {
            iterations: p.iterations,
            schedule,
            seed: p.seed,
            log_every: p.log_every,
            checkpoint_every: p.checkpoint_every,
            resume_dir: resume_dir.clone(),
            fingerprint,
        },
    )?;
    let start = trainer.resume()?;
    if start > 0 {
        eprintln!(
            "{kind}: resuming from iteration {start} (checkpoint in {})",
            resume_dir.display()
        );
    }
    Ok((trainer, start))
}

/// How one domain's batches are made; `purpose` names the loader's RNG stream, so loaders with
/// the same purpose, crop and data size draw the same images and crops (how `contrastive-train`
/// pairs a target image with its translation).
pub fn loader_config(
    p: &PretrainParams,
    crop: Option<[usize; 2]>,
    labels: bool,
    purpose: &str,
    net: &SegNet,
) -> LoaderConfig {
    LoaderConfig {
        batch: p.batch,
        crop: crop.map(|[w, h]| (h, w)),
        flip: p.flip,
        grayscale: p.grayscale,
        norm: net.input_normalization(),
        labels,
        seed: derive_seed(p.seed, purpose),
        workers: p.workers,
        prefetch: p.prefetch,
    }
}

/// What a stage adds to the common outputs of [`finish`].
pub struct FinishOptions<'a> {
    /// Images the preview shows predictions on.
    pub preview_set: &'a dyn SampleSource,
    /// Variables saved in the model file (training-only heads stay out).
    pub is_model_var: &'a dyn Fn(&str) -> bool,
    /// Added to `metrics.json`.
    pub extra_metrics: BTreeMap<String, serde_json::Value>,
}

impl std::fmt::Debug for FinishOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FinishOptions")
            .field("preview_set", &self.preview_set.describe())
            .field("extra_metrics", &self.extra_metrics)
            .finish_non_exhaustive()
    }
}

/// Writes what every training stage leaves: the network's weights, `model.json`, the training
/// log, a preview, and `metrics.json`; then deletes the resume folder.
pub fn finish(
    ctx: &StageContext,
    kind: &str,
    p: &PretrainParams,
    model: &Model,
    trainer: &Trainer<'_>,
    summary: &TrainSummary,
    options: FinishOptions<'_>,
) -> anyhow::Result<()> {
    let FinishOptions {
        preview_set,
        is_model_var,
        extra_metrics,
    } = options;
    let out = ctx.out_dir();
    uda_models::save_safetensors_where(&model.vs, &out.join(MODEL_WEIGHTS), is_model_var)
        .context("writing model.safetensors")?;
    ModelInfo {
        backbone: model.config.backbone,
        num_classes: model.config.num_classes,
        freeze_bn: model.config.freeze_bn,
        normalization: model.net.input_normalization(),
        grayscale: p.grayscale,
        weights: MODEL_WEIGHTS.into(),
        produced_by: kind.into(),
        iterations: p.iterations,
    }
    .write(out)?;
    debug_assert!(out.join(MODEL_JSON).exists());
    let log = trainer.log().cloned().unwrap_or_default();
    log.write_parquet(&out.join(TRAIN_LOG))?;
    preview::write(
        &out.join(PREVIEW),
        preview_set,
        &model.net,
        model.device,
        p.grayscale,
    )?;

    let mut metrics: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    metrics.insert("iterations".into(), p.iterations.into());
    metrics.insert("resumed_from".into(), summary.resumed_from.into());
    metrics.insert(
        "data_wait_fraction".into(),
        summary.data_wait_fraction.into(),
    );
    metrics.insert("iterations_per_s".into(), summary.iterations_per_s.into());
    metrics.insert("device".into(), format!("{:?}", model.device).into());
    for (name, v) in &summary.final_losses {
        metrics.insert(format!("final_loss_{name}"), (*v).into());
    }
    metrics.extend(extra_metrics);
    ctx.write_metrics(&metrics)?;
    trainer.resume_dir().clear()?;
    Ok(())
}
