//! The steps every training stage takes around its own loss (`pretrain`, `contrastive-train`):
//! device and network with initial weights ([`Session::start`]), optimiser and resumable trainer
//! ([`Session::trainer`]), loader configs, and the outputs written at the end
//! ([`Session::finish`]). A stage adds only its data and the loss of one step.

use crate::model_info::{MODEL_JSON, MODEL_WEIGHTS};
use crate::preview;
use crate::recipe::TrainRecipe;
use crate::sampler::derive_seed;
use crate::source::SampleSource;
use crate::{LoaderConfig, ModelInfo, TrainError, TrainSummary, Trainer, TrainerConfig};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use uda_models::tch::{Device, Tensor, nn};
use uda_models::{ModelConfig, ModelError, SegNet, WeightNaming};
use uda_stage::{ContractError, InputSpec, OutputSpec, StageContext};

/// File name of the training log.
pub const TRAIN_LOG: &str = "train_log.parquet";
/// File name of the prediction preview.
pub const PREVIEW: &str = "preview.png";
/// Name of the optional input holding the initial weights.
pub const INIT_INPUT: &str = "init";

/// What can go wrong around the training loop (the loop's own errors are [`TrainError`]).
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("param device '{spec}'")]
    Device {
        spec: String,
        #[source]
        source: ModelError,
    },
    #[error("reading input 'init' folder {path}")]
    InitFolder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("input 'init' folder {path} holds no .safetensors file")]
    NoInitWeights { path: PathBuf },
    #[error("input 'init' folder {path} holds {count} .safetensors files; pass one file")]
    SeveralInitWeights { path: PathBuf, count: usize },
    #[error("input 'init' {path}")]
    InitInfo {
        path: PathBuf,
        #[source]
        source: TrainError,
    },
    #[error("loading input 'init' {path} as {naming} weights")]
    LoadInit {
        path: PathBuf,
        naming: WeightNaming,
        #[source]
        source: ModelError,
    },
    #[error("writing {path}")]
    SaveWeights {
        path: PathBuf,
        #[source]
        source: ModelError,
    },
    #[error("writing the preview {path}")]
    Preview {
        path: PathBuf,
        #[source]
        source: preview::PreviewError,
    },
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error(transparent)]
    Contract(#[from] ContractError),
}

/// The optional `init` input every training stage takes.
pub fn init_input() -> InputSpec {
    InputSpec::optional(
        INIT_INPUT,
        "initial weights: a .safetensors file or a folder with one (naming: param init_naming)",
    )
}

/// The outputs every training stage writes (see [`Session::finish`]).
pub fn training_outputs(preview_doc: &'static str) -> Vec<OutputSpec> {
    vec![
        OutputSpec::new(MODEL_WEIGHTS, "trained weights (uda-models native naming)"),
        OutputSpec::new(
            MODEL_JSON,
            "backbone, classes, input normalisation, grayscale flag",
        ),
        OutputSpec::new(
            TRAIN_LOG,
            "iteration, lr, loss terms, data_wait_s, step_s per log window",
        ),
        OutputSpec::new(PREVIEW, preview_doc),
        OutputSpec::new(
            uda_stage::METRICS_FILE,
            "final losses, data-wait fraction, speed",
        ),
    ]
}

/// One training run of a stage: the recipe, and the network being trained and where it lives.
#[derive(Debug)]
pub struct Session<'r> {
    kind: &'static str,
    recipe: &'r TrainRecipe,
    device: Device,
    vs: nn::VarStore,
    net: SegNet,
    config: ModelConfig,
}

impl<'r> Session<'r> {
    /// Threads and device from the recipe, then the network, initialised from `init` when given
    /// (whatever `init` does not cover, and everything without it, from the seed).
    pub fn start(
        kind: &'static str,
        recipe: &'r TrainRecipe,
        init: Option<&Path>,
    ) -> Result<Self, SessionError> {
        crate::set_threads(recipe.threads);
        let device = uda_models::device_from_spec(&recipe.device).map_err(|source| {
            SessionError::Device {
                spec: recipe.device.clone(),
                source,
            }
        })?;
        if let Some(hint) = crate::cpu_threads_hint(device, recipe.threads) {
            eprintln!("{kind}: {hint}");
        }
        let config = recipe.model_config();
        uda_models::tch::manual_seed(derive_seed(recipe.seed, "init") as i64);
        let mut vs = nn::VarStore::new(device);
        let mut net = SegNet::new(&vs.root(), &config);
        if let Some(init) = init {
            let file = resolve_weights(init)?;
            let naming = recipe.init_naming();
            if let Some(norm) = init_normalization(naming, &file)? {
                net.set_input_normalization(norm);
            }
            let report =
                uda_models::load_safetensors(&mut vs, &file, naming, true).map_err(|source| {
                    SessionError::LoadInit {
                        path: file.clone(),
                        naming,
                        source,
                    }
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
                recipe.backbone
            );
        }
        if recipe.channels_last {
            uda_models::convert_to_channels_last(&vs);
        }
        if device.is_cuda() {
            uda_models::tch::Cuda::cudnn_set_benchmark(recipe.cudnn_benchmark);
        }
        Ok(Self {
            kind,
            recipe,
            device,
            vs,
            net,
            config,
        })
    }

    pub fn device(&self) -> Device {
        self.device
    }

    pub fn net(&self) -> &SegNet {
        &self.net
    }

    /// The variables; a stage adds its training-only heads here before [`Session::trainer`].
    pub fn vs(&self) -> &nn::VarStore {
        &self.vs
    }

    /// The optimiser over every trainable variable (classifier and projection heads at
    /// `head_lr_mult`), and a trainer that resumes a killed run of the same configuration: the
    /// recipe's [`TrainRecipe::result_params`] plus the stage's own `options` (a struct that
    /// serializes to an object, or `()`), and `inputs`, the inputs the run reads. Returns the
    /// trainer and its first iteration.
    pub fn trainer(
        &self,
        ctx: &StageContext,
        options: &impl Serialize,
        inputs: &[(&str, &Path)],
    ) -> Result<(Trainer<'_>, u64), SessionError> {
        let p = self.recipe;
        let (optimizer, schedule) = p.optimizer(&self.vs)?;
        let mut fp_params = p.result_params();
        match serde_json::to_value(options) {
            Ok(serde_json::Value::Object(extra)) => fp_params.extend(extra),
            Ok(serde_json::Value::Null) => {}
            Ok(other) => unreachable!("stage options serialize to an object, not {other}"),
            Err(e) => unreachable!("stage options serialize: {e}"),
        }
        let fp_inputs: BTreeMap<&str, serde_json::Value> = inputs
            .iter()
            .map(|(name, path)| (*name, input_identity(path)))
            .collect();
        let fingerprint = crate::fingerprint(
            self.kind,
            &serde_json::json!({"params": fp_params, "inputs": fp_inputs}),
        );
        let resume_dir = crate::resume_dir(ctx.out_dir());
        let trainer = Trainer::new(
            &self.vs,
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
        let mut trainer = trainer.with_precision(self.device, p.precision);
        let start = trainer.resume()?;
        if start > 0 {
            eprintln!(
                "{}: resuming from iteration {start} (checkpoint in {})",
                self.kind,
                resume_dir.display()
            );
        }
        Ok((trainer, start))
    }

    /// The recipe's class weights for the CE on `labels` (the labelled set the stage trains on),
    /// on the session's device, or `None` when unweighted; logs them, one per class.
    ///
    /// # Errors
    /// When a label map cannot be read.
    pub fn class_weights(&self, labels: &dyn SampleSource) -> Result<Option<Tensor>, TrainError> {
        let Some(w) = self.recipe.class_weights.weights(labels)? else {
            return Ok(None);
        };
        let listed: Vec<String> = uda_data::classes::CLASSES
            .iter()
            .zip(&w)
            .map(|(c, w)| format!("{} {w:.2}", c.name))
            .collect();
        eprintln!(
            "{}: CE class weights ({}) from the {} label maps of {}: {}",
            self.kind,
            self.recipe.class_weights.name(),
            labels.len(),
            labels.describe(),
            listed.join(", ")
        );
        Ok(Some(crate::class_weights::weight_tensor(&w, self.device)))
    }

    /// How one domain's batches are made; `purpose` names the loader's RNG stream, so loaders
    /// with the same purpose, crop and data size draw the same images and crops (how
    /// `contrastive-train` pairs a target image with its translation).
    pub fn loader_config(
        &self,
        crop: Option<[usize; 2]>,
        labels: bool,
        purpose: &str,
    ) -> LoaderConfig {
        let p = self.recipe;
        LoaderConfig {
            batch: p.batch,
            crop: crop.map(|[w, h]| (h, w)),
            flip: p.flip,
            grayscale: p.grayscale,
            norm: self.net.input_normalization(),
            labels,
            seed: derive_seed(p.seed, purpose),
            workers: p.workers,
            prefetch: p.prefetch,
        }
    }

    /// Writes what every training stage leaves: the network's weights, `model.json`, the
    /// training log, a preview, and `metrics.json`; then deletes the resume folder.
    pub fn finish(
        &self,
        ctx: &StageContext,
        trainer: &Trainer<'_>,
        summary: &TrainSummary,
        options: FinishOptions<'_>,
    ) -> Result<(), SessionError> {
        let FinishOptions {
            preview_set,
            is_model_var,
            extra_metrics,
        } = options;
        let p = self.recipe;
        let out = ctx.out_dir();
        let weights = out.join(MODEL_WEIGHTS);
        uda_models::save_safetensors_where(&self.vs, &weights, is_model_var).map_err(|source| {
            SessionError::SaveWeights {
                path: weights.clone(),
                source,
            }
        })?;
        ModelInfo {
            backbone: self.config.backbone,
            num_classes: self.config.num_classes,
            batch_norm: self.config.batch_norm,
            normalization: self.net.input_normalization(),
            grayscale: p.grayscale,
            weights: MODEL_WEIGHTS.into(),
            produced_by: self.kind.into(),
            iterations: p.iterations,
        }
        .write(out)?;
        let log = trainer.log().cloned().unwrap_or_default();
        log.write_parquet(&out.join(TRAIN_LOG))?;
        let preview_path = out.join(PREVIEW);
        preview::write(
            &preview_path,
            preview_set,
            &self.net,
            self.device,
            p.grayscale,
        )
        .map_err(|source| SessionError::Preview {
            path: preview_path.clone(),
            source,
        })?;

        let mut metrics: BTreeMap<String, serde_json::Value> = BTreeMap::new();
        metrics.insert("iterations".into(), p.iterations.into());
        metrics.insert("resumed_from".into(), summary.resumed_from.into());
        metrics.insert(
            "data_wait_fraction".into(),
            summary.data_wait_fraction.into(),
        );
        metrics.insert("iterations_per_s".into(), summary.iterations_per_s.into());
        metrics.insert("precision".into(), p.precision.name().into());
        metrics.insert("skipped_steps".into(), summary.skipped_steps.into());
        metrics.insert("device".into(), format!("{:?}", self.device).into());
        for (name, v) in &summary.final_losses {
            metrics.insert(format!("final_loss_{name}"), (*v).into());
        }
        metrics.extend(extra_metrics);
        ctx.save_metrics(&metrics)?;
        trainer.resume_dir().clear()?;
        Ok(())
    }
}

/// What a stage adds to the common outputs of [`Session::finish`].
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

/// The input normalisation the initial weights expect: fixed by their origin (torchvision,
/// FDA's DeepLab), or for our own checkpoints the one in the `model.json` beside the file.
fn init_normalization(
    naming: WeightNaming,
    file: &Path,
) -> Result<Option<uda_models::Normalization>, SessionError> {
    if let Some(norm) = uda_models::Normalization::for_weights(naming) {
        return Ok(Some(norm));
    }
    let dir = file.parent().unwrap_or(Path::new("."));
    if !dir.join(MODEL_JSON).exists() {
        return Ok(None);
    }
    let info = ModelInfo::read(dir).map_err(|source| SessionError::InitInfo {
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(Some(info.normalization))
}

/// A weights file: the path itself, or the single `.safetensors` file inside a folder.
pub fn resolve_weights(path: &Path) -> Result<PathBuf, SessionError> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|source| SessionError::InitFolder {
            path: path.to_path_buf(),
            source,
        })?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(SessionError::NoInitWeights {
            path: path.to_path_buf(),
        }),
        count => Err(SessionError::SeveralInitWeights {
            path: path.to_path_buf(),
            count,
        }),
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
