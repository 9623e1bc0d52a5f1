//! The training recipe every training stage shares (the paper's §4 settings: backbone, crops,
//! optimiser, schedule, entropy term, loader), as the flat params object of `pipeline.yaml`,
//! with its checks.
//!
//! The serialized names and defaults are part of the runner's cache keys and of pipeline files:
//! renaming a field or changing a default changes every cached result.

use crate::class_weights::ClassWeighting;
use crate::losses::{DEFAULT_CHARBONNIER_EPS, DEFAULT_ETA, EntropyAt, charbonnier_entropy};
use crate::optim::ParamListing;
use crate::{LrSchedule, OptimizerConfig};
use serde::{Deserialize, Serialize};
use uda_models::tch::Tensor;
use uda_models::{Backbone, BatchNormMode, ModelConfig, Precision, WeightNaming};
use uda_stage::{ParamProblem, ParamProblems};

/// Which optimiser; `auto` is the paper's choice for the backbone (SGD + poly for DeepLabV2 and
/// ENet, Adam + step decay for FCN-8s VGG16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerChoice {
    Auto,
    Sgd,
    Adam,
}

/// Learning-rate schedule: `auto` is the paper's (poly for SGD, ×0.1 steps every 50k for Adam).
/// `poly` with Adam decays to zero by the last iteration, so the final weights — the ones a
/// run is scored on, with no checkpoint picked on target labels — are not one noisy step of a
/// constant-rate run (ENet on the synthetic benchmark at constant Adam 1e-3: the oracle scored
/// 42.6 mIoU after 1000 iterations and 32.3 after 800).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleChoice {
    Auto,
    Poly,
    Step,
}

/// The recipe's params (all optional; defaults are the paper's where it gives them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainRecipe {
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
    /// Class weights of the supervised (source) cross-entropy: `none` (FDA's and the paper's) or
    /// `enet` (ENet's `1 / ln(1.02 + p_c)` from the training labels; see [`crate::class_weights`]).
    pub class_weights: ClassWeighting,
    /// Charbonnier exponent η of ρ(x) = (x² + ε²)^η.
    pub eta: f64,
    /// Charbonnier ε (the paper: 0.001; FDA's code: 1e-4, i.e. `+ 1e-8` inside).
    pub charbonnier_eps: f64,
    /// First iteration at which the entropy term counts (FDA switches it on at 50000; the paper
    /// does not say, so 0).
    pub ent_start: u64,
    /// Which map the entropy is computed on: `logits` (the network's own output, stride 8 for
    /// DeepLabV2, as FDA's `model/deeplab.py`) or `input` (logits first upsampled to the input
    /// size). The same for stride-1 networks (FCN-8s, ENet).
    pub entropy_at: EntropyAt,
    pub optimizer: OptimizerChoice,
    /// Base learning rate; `null`: 2.5e-4 for SGD, 1e-5 for Adam.
    pub lr: Option<f64>,
    /// SGD momentum.
    pub momentum: f64,
    /// L2 weight decay; `null`: 5e-4 for SGD, 0 for Adam.
    pub weight_decay: Option<f64>,
    /// Adam (β1, β2).
    pub adam_betas: [f64; 2],
    /// `auto` (SGD: poly; Adam: step), `poly` or `step`; see [`ScheduleChoice`].
    pub schedule: ScheduleChoice,
    /// Power of the poly schedule.
    pub poly_power: f64,
    /// Learning-rate multiplier of the classifier head (FDA: 10).
    pub head_lr_mult: f64,
    /// How BatchNorm trains: `frozen`, `fda` or `train` (see [`BatchNormMode`]); `null`: FDA's
    /// semantics for DeepLabV2 (`fda`), ordinary BatchNorm for ENet (`train`).
    pub batch_norm: Option<BatchNormMode>,
    /// The old spelling of `batch_norm` (a bool); rejected with the replacement to write.
    pub freeze_bn: Option<bool>,
    /// How often the optimiser updates each variable per step: `unique` (once) or `fda-listing`
    /// (as often as FDA's DeepLab optimiser lists it: most trunk convolutions three times; see
    /// [`ParamListing`]).
    pub param_listing: ParamListing,
    /// Arithmetic of the forward passes: `fp32`, `bf16` (autocast) or `fp16` (autocast with loss
    /// scaling). Loss terms and the contrastive similarity are fp32 at every precision; weights,
    /// optimiser state and checkpoints stay fp32.
    pub precision: Precision,
    /// Lay the convolution weights out channels-last (NHWC), which oneDNN and cuDNN convolve
    /// faster, above all in bf16 (DeepLabV2 bf16 step on this CPU: see docs/benchmarks.md).
    pub channels_last: bool,
    /// cuDNN's benchmark mode (CUDA only): times the convolution algorithms on the first steps and
    /// keeps the fastest, as FDA's `train.py` does; the choice can differ between runs, so results
    /// are then not bit-reproducible. Off by default.
    pub cudnn_benchmark: bool,
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

impl Default for TrainRecipe {
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
            class_weights: ClassWeighting::None,
            eta: DEFAULT_ETA,
            charbonnier_eps: DEFAULT_CHARBONNIER_EPS,
            ent_start: 0,
            entropy_at: EntropyAt::Logits,
            optimizer: OptimizerChoice::Auto,
            lr: None,
            momentum: 0.9,
            weight_decay: None,
            adam_betas: [0.9, 0.99],
            schedule: ScheduleChoice::Auto,
            poly_power: 0.9,
            head_lr_mult: 10.0,
            batch_norm: None,
            freeze_bn: None,
            param_listing: ParamListing::Unique,
            precision: Precision::Fp32,
            channels_last: false,
            cudnn_benchmark: false,
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

/// The recipe without the settings that do not change the trained weights (device, threads,
/// loader sizes, log and checkpoint intervals), serialized under the same names: what the resume
/// fingerprint covers, so a run can be resumed with, e.g., more loader threads.
#[derive(Serialize)]
struct ResultPart<'a> {
    backbone: &'a Backbone,
    iterations: &'a u64,
    batch: &'a usize,
    crop: &'a [usize; 2],
    target_crop: &'a Option<[usize; 2]>,
    flip: &'a bool,
    grayscale: &'a bool,
    lambda_ent: &'a f64,
    class_weights: &'a ClassWeighting,
    eta: &'a f64,
    charbonnier_eps: &'a f64,
    ent_start: &'a u64,
    entropy_at: &'a EntropyAt,
    optimizer: &'a OptimizerChoice,
    lr: &'a Option<f64>,
    momentum: &'a f64,
    weight_decay: &'a Option<f64>,
    adam_betas: &'a [f64; 2],
    schedule: &'a ScheduleChoice,
    poly_power: &'a f64,
    head_lr_mult: &'a f64,
    batch_norm: &'a Option<BatchNormMode>,
    param_listing: &'a ParamListing,
    precision: &'a Precision,
    channels_last: &'a bool,
    cudnn_benchmark: &'a bool,
    init_naming: &'a Option<WeightNaming>,
    seed: &'a u64,
}

impl TrainRecipe {
    /// The params that change the trained weights, as a JSON object under their usual names.
    pub fn result_params(&self) -> serde_json::Map<String, serde_json::Value> {
        // Exhaustive, so a new field has to be put on one side or the other.
        let Self {
            backbone,
            iterations,
            batch,
            crop,
            target_crop,
            flip,
            grayscale,
            lambda_ent,
            class_weights,
            eta,
            charbonnier_eps,
            ent_start,
            entropy_at,
            optimizer,
            lr,
            momentum,
            weight_decay,
            adam_betas,
            schedule,
            poly_power,
            head_lr_mult,
            batch_norm,
            // Rejected by `validate` when set, so always `None` in a run.
            freeze_bn: _,
            param_listing,
            precision,
            channels_last,
            cudnn_benchmark,
            init_naming,
            seed,
            device: _,
            threads: _,
            workers: _,
            prefetch: _,
            log_every: _,
            checkpoint_every: _,
        } = self;
        let part = ResultPart {
            backbone,
            iterations,
            batch,
            crop,
            target_crop,
            flip,
            grayscale,
            lambda_ent,
            class_weights,
            eta,
            charbonnier_eps,
            ent_start,
            entropy_at,
            optimizer,
            lr,
            momentum,
            weight_decay,
            adam_betas,
            schedule,
            poly_power,
            head_lr_mult,
            batch_norm,
            param_listing,
            precision,
            channels_last,
            cudnn_benchmark,
            init_naming,
            seed,
        };
        match serde_json::to_value(part) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => unreachable!("a struct of plain values serializes to an object"),
        }
    }

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
            let base_lr = self.lr.unwrap_or(1e-5);
            let schedule = match self.schedule {
                ScheduleChoice::Poly => self.poly(base_lr),
                ScheduleChoice::Auto | ScheduleChoice::Step => LrSchedule::vgg_step(base_lr),
            };
            (opt, schedule)
        } else {
            let opt = OptimizerConfig::Sgd {
                momentum: self.momentum,
                weight_decay: self.weight_decay.unwrap_or(5e-4),
            };
            let base_lr = self.lr.unwrap_or(2.5e-4);
            let schedule = match self.schedule {
                ScheduleChoice::Step => LrSchedule::vgg_step(base_lr),
                ScheduleChoice::Auto | ScheduleChoice::Poly => self.poly(base_lr),
            };
            (opt, schedule)
        }
    }

    /// The optimiser over the trainable variables of `vs` (the head group at `head_lr_mult`,
    /// FDA's repeated listings under `param_listing: fda-listing`) and its schedule.
    pub fn optimizer(
        &self,
        vs: &uda_models::tch::nn::VarStore,
    ) -> Result<(crate::Optimizer, LrSchedule), crate::TrainError> {
        let (config, schedule) = self.optimization();
        let mut optimizer = crate::Optimizer::new(vs, config, &[1.0, self.head_lr_mult])?;
        match (self.param_listing, self.backbone) {
            (ParamListing::Unique, _) => {}
            (ParamListing::FdaListing, Backbone::Fcn8sVgg16) => {
                let bias_lr = 2.0 * schedule.lr_at(0);
                optimizer =
                    optimizer.with_fixed_rates(|name| name.ends_with(".bias").then_some(bias_lr));
            }
            (ParamListing::FdaListing, backbone) => {
                optimizer = optimizer
                    .with_listings(|name| uda_models::fda_listing_count(backbone, name))?;
            }
        }
        Ok((optimizer, schedule))
    }

    fn poly(&self, base_lr: f64) -> LrSchedule {
        LrSchedule::Poly {
            base_lr,
            power: self.poly_power,
            max_iter: self.iterations,
        }
    }

    /// The recipe's entropy term (`eta`, `charbonnier_eps`, `entropy_at`) of the `logits` the
    /// network gave for `images` `(B, 3, H, W)`.
    pub fn entropy(&self, logits: &Tensor, images: &Tensor) -> Tensor {
        let size = images.size();
        let hw = [size[size.len() - 2], size[size.len() - 1]];
        charbonnier_entropy(logits, self.entropy_at, hw, self.eta, self.charbonnier_eps)
    }

    pub fn model_config(&self) -> ModelConfig {
        let paper = ModelConfig::paper(self.backbone);
        ModelConfig {
            batch_norm: self.batch_norm.unwrap_or(paper.batch_norm),
            ..paper
        }
    }

    pub fn init_naming(&self) -> WeightNaming {
        self.init_naming.unwrap_or(match self.backbone {
            Backbone::Deeplabv2Resnet101 => WeightNaming::FdaDeeplab,
            Backbone::Fcn8sVgg16 => WeightNaming::Torchvision,
            Backbone::Enet => WeightNaming::Native,
        })
    }

    /// Checks every value that needs no input, naming each bad param (what
    /// [`uda_stage::Stage::validate`] of the training stages returns).
    pub fn validate(&self) -> Result<(), Vec<ParamProblem>> {
        let mut problems = ParamProblems::new();
        for (name, v) in [
            ("iterations", self.iterations),
            ("batch", self.batch as u64),
            ("workers", self.workers as u64),
            ("prefetch", self.prefetch as u64),
            ("log_every", self.log_every),
        ] {
            problems.ensure(v > 0, name, "must be at least 1");
        }
        problems.ensure(
            !self.crop.contains(&0),
            "crop",
            format!("must be [width, height] with both > 0, got {:?}", self.crop),
        );
        if let Some(c) = self.target_crop {
            problems.ensure(
                !c.contains(&0),
                "target_crop",
                format!("must be [width, height] with both > 0 (or null), got {c:?}"),
            );
        }
        let non_negative = |v: f64| v.is_finite() && v >= 0.0;
        for (name, v) in [
            ("lambda_ent", Some(self.lambda_ent)),
            ("charbonnier_eps", Some(self.charbonnier_eps)),
            ("weight_decay", self.weight_decay),
            ("poly_power", Some(self.poly_power)),
        ] {
            if let Some(v) = v {
                problems.ensure(non_negative(v), name, format!("must be >= 0, got {v}"));
            }
        }
        for (name, v) in [
            ("eta", Some(self.eta)),
            ("head_lr_mult", Some(self.head_lr_mult)),
            ("lr", self.lr),
        ] {
            if let Some(v) = v {
                problems.ensure(
                    v.is_finite() && v > 0.0,
                    name,
                    format!("must be a positive number, got {v}"),
                );
            }
        }
        problems.ensure(
            (0.0..1.0).contains(&self.momentum),
            "momentum",
            format!("must lie in [0, 1), got {}", self.momentum),
        );
        problems.ensure(
            self.adam_betas.iter().all(|b| (0.0..1.0).contains(b)),
            "adam_betas",
            format!("both must lie in [0, 1), got {:?}", self.adam_betas),
        );
        problems.ensure(
            self.param_listing == ParamListing::Unique
                || (self.backbone == Backbone::Fcn8sVgg16) == self.use_adam(),
            "param_listing",
            "fda-listing reproduces FDA's optimisers: SGD for DeepLabV2 and ENet, Adam for FCN-8s",
        );
        if let Some(frozen) = self.freeze_bn {
            let mode = if frozen { "frozen" } else { "train" };
            problems.push(
                "freeze_bn",
                format!(
                    "is now `batch_norm: frozen | fda | train`; replace `freeze_bn: {frozen}` with \
                     `batch_norm: {mode}` (FDA's own training is `batch_norm: fda`)"
                ),
            );
        }
        if let Err(e) = uda_models::check_device_spec(&self.device) {
            problems.push("device", e.to_string());
        }
        if problems.is_empty()
            && let Err(e) = self.optimization().1.validate()
        {
            problems.push("lr", e);
        }
        problems.into_result()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(optimizer: OptimizerChoice, schedule: ScheduleChoice) -> TrainRecipe {
        TrainRecipe {
            backbone: Backbone::Enet,
            iterations: 800,
            optimizer,
            schedule,
            lr: Some(1e-3),
            ..TrainRecipe::default()
        }
    }

    #[test]
    fn schedules_default_to_the_paper_and_poly_decays_adam_to_zero() {
        let (_, s) = params(OptimizerChoice::Adam, ScheduleChoice::Auto).optimization();
        assert!(matches!(s, LrSchedule::Step { step: 50_000, .. }), "{s:?}");
        let (_, s) = params(OptimizerChoice::Sgd, ScheduleChoice::Auto).optimization();
        assert!(matches!(s, LrSchedule::Poly { max_iter: 800, .. }), "{s:?}");
        let (opt, s) = params(OptimizerChoice::Adam, ScheduleChoice::Poly).optimization();
        assert!(matches!(opt, OptimizerConfig::Adam { .. }), "{opt:?}");
        assert_eq!(s.lr_at(0), 1e-3);
        assert!(
            s.lr_at(400) < 0.6e-3 && s.lr_at(400) > 0.5e-3,
            "{}",
            s.lr_at(400)
        );
        assert!(s.lr_at(799) < 1e-5, "{}", s.lr_at(799));
        let (_, s) = params(OptimizerChoice::Sgd, ScheduleChoice::Step).optimization();
        assert!(matches!(s, LrSchedule::Step { .. }), "{s:?}");
    }

    #[test]
    fn batch_norm_defaults_to_fda_semantics_for_deeplab_only() {
        let deeplab = TrainRecipe::default();
        assert_eq!(deeplab.model_config().batch_norm, BatchNormMode::Fda);
        let enet = TrainRecipe {
            backbone: Backbone::Enet,
            ..TrainRecipe::default()
        };
        assert_eq!(enet.model_config().batch_norm, BatchNormMode::Train);
        let frozen = TrainRecipe {
            batch_norm: Some(BatchNormMode::Frozen),
            ..TrainRecipe::default()
        };
        assert_eq!(frozen.model_config().batch_norm, BatchNormMode::Frozen);
        let yaml: TrainRecipe = serde_json::from_str(
            r#"{"batch_norm": "fda", "entropy_at": "input", "param_listing": "fda-listing"}"#,
        )
        .unwrap();
        assert_eq!(yaml.batch_norm, Some(BatchNormMode::Fda));
        assert_eq!(yaml.entropy_at, EntropyAt::Input);
        assert_eq!(yaml.param_listing, ParamListing::FdaListing);
    }

    /// FDA's FCN-8s optimiser: biases in a group at 2× the base rate that its
    /// `adjust_learning_rate` never decays; weights on the ×0.1-per-50k schedule.
    #[test]
    fn fda_listing_for_fcn8s_keeps_biases_at_twice_the_base_rate() {
        use uda_models::tch::{Device, Kind, Tensor, nn};
        let recipe = TrainRecipe {
            backbone: Backbone::Fcn8sVgg16,
            param_listing: ParamListing::FdaListing,
            lr: Some(1e-3),
            iterations: 200_000,
            ..TrainRecipe::default()
        };
        recipe.validate().unwrap();
        let vs = nn::VarStore::new(Device::Cpu);
        let w = (vs.root() / "conv").var_copy("weight", &Tensor::from_slice(&[1.0f32]));
        let b = (vs.root() / "conv").var_copy("bias", &Tensor::from_slice(&[1.0f32]));
        let (mut opt, schedule) = recipe.optimizer(&vs).unwrap();
        // At iteration 100k the schedule is at 1e-5; Adam's first step moves a variable by
        // about its learning rate, so the bias moves ~2e-3 and the weight ~1e-5.
        let lr = schedule.lr_at(100_000);
        assert!((lr - 1e-5).abs() < 1e-12, "{lr}");
        opt.zero_grad();
        (&w + &b).sum(Kind::Float).backward();
        opt.step(lr);
        let moved = |t: &Tensor| 1.0 - t.double_value(&[0]);
        assert!((moved(&b) - 2e-3).abs() < 1e-5, "bias moved {}", moved(&b));
        assert!(
            (moved(&w) - 1e-5).abs() < 1e-7,
            "weight moved {}",
            moved(&w)
        );
        let sgd = TrainRecipe {
            optimizer: OptimizerChoice::Sgd,
            ..recipe
        };
        assert!(
            sgd.validate().is_err(),
            "fda-listing with SGD on FCN-8s is not FDA's"
        );
    }

    #[test]
    fn result_params_leave_out_exactly_the_run_settings() {
        let p = TrainRecipe::default();
        let all = match serde_json::to_value(&p).unwrap() {
            serde_json::Value::Object(m) => m,
            _ => unreachable!(),
        };
        let result = p.result_params();
        let left_out: Vec<&str> = all
            .keys()
            .filter(|k| !result.contains_key(*k))
            .map(String::as_str)
            .collect();
        let mut left_out = left_out;
        left_out.sort();
        assert_eq!(
            left_out,
            [
                "checkpoint_every",
                "device",
                "freeze_bn",
                "log_every",
                "prefetch",
                "threads",
                "workers"
            ]
        );
        for (k, v) in &result {
            assert_eq!(&all[k], v, "{k}");
        }
    }

    #[test]
    fn validate_names_every_bad_param() {
        TrainRecipe::default().validate().unwrap();
        let bad = TrainRecipe {
            iterations: 0,
            crop: [0, 512],
            eta: -1.0,
            lr: Some(0.0),
            momentum: 1.0,
            device: "gpu".into(),
            freeze_bn: Some(true),
            ..TrainRecipe::default()
        };
        let problems = bad.validate().unwrap_err();
        let names: Vec<&str> = problems.iter().map(|p| p.param.as_str()).collect();
        assert_eq!(
            names,
            [
                "iterations",
                "crop",
                "eta",
                "lr",
                "momentum",
                "freeze_bn",
                "device"
            ],
            "{problems:?}"
        );
        assert!(
            problems[5].message.contains("batch_norm: frozen"),
            "{problems:?}"
        );
        assert!(problems[6].message.contains("cpu, cuda"), "{problems:?}");
    }
}
