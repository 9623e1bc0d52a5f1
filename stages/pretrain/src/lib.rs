//! The `pretrain` stage (paper §4.1): the first model, trained on grayscale images of both
//! domains with cross-entropy on the labelled source and λ_ent · Charbonnier entropy on the
//! unlabelled target. With `grayscale: false` and `lambda_ent: 0` it is the "source only"
//! baseline (the target input is then not needed).
//!
//! Inputs: `source` (an ImageSet folder with labels), `target` (an ImageSet folder; labels
//! unused), optional `init` (initial weights: a `.safetensors` file, or a folder holding exactly
//! one, named as `init_naming` says).
//! Outputs: `model.safetensors` + `model.json` (see [`uda_train::ModelInfo`]), `train_log.parquet`
//! (see [`uda_train::log`]), `preview.png` (target images, as fed, beside the model's
//! predictions), `metrics.json`.
//!
//! Checkpoints go to the resume folder described in [`uda_train`] (`UDA_RESUME_DIR`, or
//! `<out>.resume/`); a killed run started again with the same params and inputs resumes there.

mod preview;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use uda_models::tch::nn;
use uda_models::{Backbone, ModelConfig, SegNet, WeightNaming};
use uda_stage::{InputSpec, OutputSpec, Stage, StageContext};
use uda_train::losses::{
    DEFAULT_CHARBONNIER_EPS, DEFAULT_ETA, charbonnier_entropy, segmentation_cross_entropy,
};
use uda_train::model_info::{MODEL_JSON, MODEL_WEIGHTS};
use uda_train::sampler::derive_seed;
use uda_train::source::{ImageSetSource, SampleSource};
use uda_train::{
    Loader, LoaderConfig, LrSchedule, ModelInfo, Optimizer, OptimizerConfig, StepLosses, Trainer,
    TrainerConfig,
};

/// File name of the training log.
pub const TRAIN_LOG: &str = "train_log.parquet";
/// File name of the prediction preview.
pub const PREVIEW: &str = "preview.png";

/// The stage.
#[derive(Debug)]
pub struct Pretrain;

/// Which optimiser; `auto` is the paper's choice for the backbone (SGD + poly for DeepLabV2 and
/// ENet, Adam + step decay for FCN-8s VGG16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerChoice {
    Auto,
    Sgd,
    Adam,
}

/// Params (all optional; defaults are the paper's where it gives them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PretrainParams {
    pub backbone: Backbone,
    pub iterations: u64,
    /// Images per batch, from each domain.
    pub batch: usize,
    /// Random crop of the source images, `[width, height]` (the paper: 1024×512 out of 1280×720).
    pub crop: [usize; 2],
    /// Random crop of the target images, `[width, height]`; `null` takes whole images (the paper
    /// feeds Cityscapes at 1024×512 uncropped).
    pub target_crop: Option<[usize; 2]>,
    /// Random horizontal flips (not used by the paper or FDA).
    pub flip: bool,
    /// Train on grayscale images (PIL luma replicated to 3 channels), as the paper's first model.
    pub grayscale: bool,
    /// Weight of the entropy term on the target; 0 skips the target entirely.
    pub lambda_ent: f64,
    /// Charbonnier exponent η of ρ(x) = (x² + ε²)^η.
    pub eta: f64,
    /// Charbonnier ε (the paper: 0.001; FDA's code: 1e-4, i.e. `+ 1e-8` inside).
    pub charbonnier_eps: f64,
    /// First iteration at which the entropy term counts (FDA switches it on at 50000; the paper
    /// does not say, so 0).
    pub ent_start: u64,
    pub optimizer: OptimizerChoice,
    /// Base learning rate; `null`: 2.5e-4 for SGD, 1e-5 for Adam.
    pub lr: Option<f64>,
    /// SGD momentum.
    pub momentum: f64,
    /// L2 weight decay; `null`: 5e-4 for SGD, 0 for Adam.
    pub weight_decay: Option<f64>,
    /// Adam (β1, β2).
    pub adam_betas: [f64; 2],
    /// Power of the poly schedule (SGD).
    pub poly_power: f64,
    /// Learning-rate multiplier of the classifier head (FDA: 10).
    pub head_lr_mult: f64,
    /// Freeze BatchNorm (statistics and affine); `null`: the paper's choice (DeepLabV2 only).
    pub freeze_bn: Option<bool>,
    /// Naming of the `init` weights; `null`: fda-deeplab for DeepLabV2, torchvision for VGG16,
    /// native for ENet.
    pub init_naming: Option<WeightNaming>,
    pub seed: u64,
    /// `cpu`, `cuda`, `cuda:N` or `auto`.
    pub device: String,
    /// libtorch intra-op threads; 0 keeps libtorch's default.
    pub threads: usize,
    /// Data-loader worker threads per domain.
    pub workers: usize,
    /// Batches prepared ahead per domain.
    pub prefetch: usize,
    /// Iterations per training-log row.
    pub log_every: u64,
    /// Iterations between checkpoints (0: only at the end).
    pub checkpoint_every: u64,
}

impl Default for PretrainParams {
    fn default() -> Self {
        Self {
            backbone: Backbone::Deeplabv2Resnet101,
            iterations: 30_000,
            batch: 1,
            crop: [1024, 512],
            target_crop: None,
            flip: false,
            grayscale: true,
            lambda_ent: 0.005,
            eta: DEFAULT_ETA,
            charbonnier_eps: DEFAULT_CHARBONNIER_EPS,
            ent_start: 0,
            optimizer: OptimizerChoice::Auto,
            lr: None,
            momentum: 0.9,
            weight_decay: None,
            adam_betas: [0.9, 0.99],
            poly_power: 0.9,
            head_lr_mult: 10.0,
            freeze_bn: None,
            init_naming: None,
            seed: 0,
            device: "auto".into(),
            threads: 0,
            workers: 4,
            prefetch: 8,
            log_every: 10,
            checkpoint_every: 500,
        }
    }
}

/// Params that do not change the trained weights, left out of the resume fingerprint so a run
/// can be resumed with, e.g., more loader threads.
const NON_RESULT_PARAMS: [&str; 6] = [
    "device",
    "threads",
    "workers",
    "prefetch",
    "log_every",
    "checkpoint_every",
];

impl PretrainParams {
    fn use_adam(&self) -> bool {
        match self.optimizer {
            OptimizerChoice::Auto => self.backbone == Backbone::Fcn8sVgg16,
            OptimizerChoice::Sgd => false,
            OptimizerChoice::Adam => true,
        }
    }

    /// The optimiser and schedule these params ask for.
    pub fn optimization(&self) -> (OptimizerConfig, LrSchedule) {
        if self.use_adam() {
            let [beta1, beta2] = self.adam_betas;
            let opt = OptimizerConfig::Adam {
                beta1,
                beta2,
                eps: 1e-8,
                weight_decay: self.weight_decay.unwrap_or(0.0),
            };
            (opt, LrSchedule::vgg_step(self.lr.unwrap_or(1e-5)))
        } else {
            let opt = OptimizerConfig::Sgd {
                momentum: self.momentum,
                weight_decay: self.weight_decay.unwrap_or(5e-4),
            };
            let schedule = LrSchedule::Poly {
                base_lr: self.lr.unwrap_or(2.5e-4),
                power: self.poly_power,
                max_iter: self.iterations,
            };
            (opt, schedule)
        }
    }

    pub fn model_config(&self) -> ModelConfig {
        let paper = ModelConfig::paper(self.backbone);
        ModelConfig {
            freeze_bn: self.freeze_bn.unwrap_or(paper.freeze_bn),
            ..paper
        }
    }

    fn init_naming(&self) -> WeightNaming {
        self.init_naming.unwrap_or(match self.backbone {
            Backbone::Deeplabv2Resnet101 => WeightNaming::FdaDeeplab,
            Backbone::Fcn8sVgg16 => WeightNaming::Torchvision,
            Backbone::Enet => WeightNaming::Native,
        })
    }

    /// Checks every value, naming the bad param.
    pub fn validate(&self) -> anyhow::Result<()> {
        let positive = |name: &str, v: f64| -> anyhow::Result<()> {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                bail!("param {name} must be a positive number, got {v}")
            }
        };
        if self.iterations == 0
            || self.batch == 0
            || self.workers == 0
            || self.prefetch == 0
            || self.log_every == 0
        {
            bail!(
                "params iterations, batch, workers, prefetch and log_every must all be at least 1"
            );
        }
        if self.crop.contains(&0) || self.target_crop.is_some_and(|c| c.contains(&0)) {
            bail!("params crop / target_crop must be [width, height] with both > 0");
        }
        if !(self.lambda_ent.is_finite() && self.lambda_ent >= 0.0) {
            bail!("param lambda_ent must be >= 0, got {}", self.lambda_ent);
        }
        positive("eta", self.eta)?;
        positive("head_lr_mult", self.head_lr_mult)?;
        if let Some(lr) = self.lr {
            positive("lr", lr)?;
        }
        if !(self.charbonnier_eps.is_finite() && self.charbonnier_eps >= 0.0) {
            bail!(
                "param charbonnier_eps must be >= 0, got {}",
                self.charbonnier_eps
            );
        }
        if self
            .weight_decay
            .is_some_and(|w| !(w.is_finite() && w >= 0.0))
        {
            bail!("param weight_decay must be >= 0");
        }
        if !(0.0..1.0).contains(&self.momentum)
            || self.adam_betas.iter().any(|b| !(0.0..1.0).contains(b))
        {
            bail!("params momentum and adam_betas must lie in [0, 1)");
        }
        self.optimization()
            .1
            .validate()
            .map_err(|e| anyhow::anyhow!("param lr / poly_power: {e}"))?;
        Ok(())
    }
}

impl Stage for Pretrain {
    const KIND: &'static str = "pretrain";
    const DOC: &'static str = "Train the first model: CE on (grayscale) source + lambda_ent * Charbonnier entropy on target (paper 4.1)";
    type Params = PretrainParams;

    fn inputs() -> Vec<InputSpec> {
        vec![
            InputSpec {
                name: "source",
                doc: "ImageSet folder of the labelled source domain (GTA5)",
                required: true,
            },
            InputSpec {
                name: "target",
                doc: "ImageSet folder of the unlabelled target domain (Cityscapes train); needed when lambda_ent > 0",
                required: false,
            },
            InputSpec {
                name: "init",
                doc: "initial weights: a .safetensors file or a folder with one (naming: param init_naming)",
                required: false,
            },
        ]
    }

    fn outputs() -> Vec<OutputSpec> {
        vec![
            OutputSpec {
                name: MODEL_WEIGHTS,
                doc: "trained weights (uda-models native naming)",
            },
            OutputSpec {
                name: MODEL_JSON,
                doc: "backbone, classes, input normalisation, grayscale flag",
            },
            OutputSpec {
                name: TRAIN_LOG,
                doc: "iteration, lr, loss terms, data_wait_s, step_s per log window",
            },
            OutputSpec {
                name: PREVIEW,
                doc: "target images as fed to the model beside its predictions",
            },
            OutputSpec {
                name: uda_stage::METRICS_FILE,
                doc: "final losses, data-wait fraction, speed",
            },
        ]
    }

    fn run(ctx: &StageContext, p: &PretrainParams) -> anyhow::Result<()> {
        run(ctx, p)
    }
}

/// A weights file: the path itself, or the single `.safetensors` file inside a folder.
fn resolve_weights(path: &Path) -> anyhow::Result<PathBuf> {
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

fn loader_config(
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

fn run(ctx: &StageContext, p: &PretrainParams) -> anyhow::Result<()> {
    p.validate()?;
    uda_train::set_threads(p.threads);
    let device = uda_models::device_from_spec(&p.device)
        .with_context(|| format!("param device '{}'", p.device))?;
    if let Some(hint) = uda_train::cpu_threads_hint(device, p.threads) {
        eprintln!("pretrain: {hint}");
    }

    let source_dir = ctx.input("source")?;
    let source: Arc<dyn SampleSource> = Arc::new(ImageSetSource::open(source_dir, true)?);
    let target: Option<Arc<dyn SampleSource>> = if p.lambda_ent > 0.0 {
        let dir = ctx
            .optional_input("target")
            .context("input 'target' is required when lambda_ent > 0 (pass --input target=DIR, or set lambda_ent=0)")?;
        Some(Arc::new(ImageSetSource::open(dir, false)?))
    } else {
        None
    };

    let model_cfg = p.model_config();
    // Initial weights (of whatever `init` does not cover) follow from the seed too.
    uda_models::tch::manual_seed(derive_seed(p.seed, "init") as i64);
    let mut vs = nn::VarStore::new(device);
    let net = SegNet::new(&vs.root(), &model_cfg);
    if let Some(init) = ctx.optional_input("init") {
        let file = resolve_weights(init)?;
        let report = uda_models::load_safetensors(&mut vs, &file, p.init_naming(), true)
            .with_context(|| {
                format!(
                    "loading input 'init' {} as {} weights",
                    file.display(),
                    p.init_naming()
                )
            })?;
        eprintln!(
            "pretrain: initialised {} variables from {} ({} left as initialised: {})",
            report.loaded.len(),
            file.display(),
            report.not_covered.len(),
            report.not_covered.join(", ")
        );
    } else {
        eprintln!(
            "pretrain: no 'init' input; {} starts from random weights",
            p.backbone
        );
    }

    let (opt_cfg, schedule) = p.optimization();
    let optimizer = Optimizer::new(&vs, opt_cfg, &[1.0, p.head_lr_mult])?;
    let mut fp_params = serde_json::to_value(p)?;
    if let Some(obj) = fp_params.as_object_mut() {
        for k in NON_RESULT_PARAMS {
            obj.remove(k);
        }
    }
    let fp_inputs: BTreeMap<&str, serde_json::Value> = ["source", "target", "init"]
        .into_iter()
        .filter_map(|n| ctx.optional_input(n).map(|path| (n, input_identity(path))))
        .filter(|(n, _)| *n != "target" || target.is_some())
        .collect();
    let fingerprint = uda_train::fingerprint(
        Pretrain::KIND,
        &serde_json::json!({"params": fp_params, "inputs": fp_inputs}),
    );
    let resume_dir = uda_train::resume_dir(ctx.out_dir());
    let mut trainer = Trainer::new(
        &vs,
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
            "pretrain: resuming from iteration {start} (checkpoint in {})",
            resume_dir.display()
        );
    }

    let mut source_loader = Loader::new(
        Arc::clone(&source),
        loader_config(p, Some(p.crop), true, "source", &net),
        start,
        p.iterations,
    )?;
    trainer.watch(source_loader.meter());
    let mut target_loader = match &target {
        Some(t) => {
            let l = Loader::new(
                Arc::clone(t),
                loader_config(p, p.target_crop, false, "target", &net),
                start,
                p.iterations,
            )?;
            trainer.watch(l.meter());
            Some(l)
        }
        None => None,
    };

    let progress = ctx.progress("train", p.iterations);
    let summary = trainer.run(&progress, |it| {
        let batch = source_loader.batch_for(it)?.to_device(device);
        let labels = batch.labels.as_ref().expect("source loader reads labels");
        let out = net.forward_t(&batch.images, true);
        let mut losses =
            StepLosses::new().with("ce", 1.0, segmentation_cross_entropy(&out.logits, labels));
        if let Some(loader) = target_loader.as_mut() {
            let t = loader.batch_for(it)?.to_device(device);
            let size = t.images.size();
            let out_t = net.forward_t(&t.images, true);
            let ent =
                charbonnier_entropy(&out_t.logits, size[2], size[3], p.eta, p.charbonnier_eps);
            losses.push(
                "ent",
                if it >= p.ent_start { p.lambda_ent } else { 0.0 },
                ent,
            );
        }
        Ok(losses)
    })?;
    progress.finish();
    drop(source_loader);
    drop(target_loader);

    let out = ctx.out_dir();
    uda_models::save_safetensors(&vs, &out.join(MODEL_WEIGHTS))
        .context("writing model.safetensors")?;
    ModelInfo {
        backbone: model_cfg.backbone,
        num_classes: model_cfg.num_classes,
        freeze_bn: model_cfg.freeze_bn,
        normalization: net.input_normalization(),
        grayscale: p.grayscale,
        weights: MODEL_WEIGHTS.into(),
        produced_by: Pretrain::KIND.into(),
        iterations: p.iterations,
    }
    .write(out)?;
    let log = trainer.log().cloned().unwrap_or_default();
    log.write_parquet(&out.join(TRAIN_LOG))?;
    let preview_set = target.as_ref().unwrap_or(&source);
    preview::write(
        &out.join(PREVIEW),
        preview_set.as_ref(),
        &net,
        device,
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
    metrics.insert("device".into(), format!("{device:?}").into());
    for (name, v) in &summary.final_losses {
        metrics.insert(format!("final_loss_{name}"), (*v).into());
    }
    ctx.write_metrics(&metrics)?;
    trainer.resume_dir().clear()?;
    Ok(())
}
