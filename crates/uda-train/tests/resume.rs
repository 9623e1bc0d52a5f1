//! Exact resume: a run stopped after a checkpoint and started again ends with the same weights,
//! bit for bit, as an uninterrupted run (CPU, one libtorch thread). Also: NaN handling and
//! refusing another run's checkpoint.

use std::path::Path;
use std::sync::Arc;
use uda_models::tch::{Device, Kind, Tensor, nn};
use uda_models::{Normalization, Precision};
use uda_stage::{Progress, ProgressMode};
use uda_train::losses::{EntropyAt, charbonnier_entropy, segmentation_cross_entropy};
use uda_train::source::MemorySource;
use uda_train::{
    Loader, LoaderConfig, LrSchedule, Optimizer, OptimizerConfig, StepLosses, TrainError, Trainer,
    TrainerConfig,
};

/// A small net with the features that make resuming hard: batch-norm statistics, dropout (libtorch
/// RNG), two optimiser groups, logits at stride 2.
#[derive(Debug)]
struct Tiny {
    c1: nn::Conv2D,
    bn: nn::BatchNorm,
    head: nn::Conv2D,
}

impl Tiny {
    fn new(vs: &nn::VarStore) -> Self {
        let trunk = vs.root().set_group(0);
        let head = vs.root().set_group(1);
        let c1 = nn::conv2d(
            &trunk / "c1",
            3,
            8,
            3,
            nn::ConvConfig {
                stride: 2,
                padding: 1,
                ..Default::default()
            },
        );
        let bn = nn::batch_norm2d(&trunk / "bn", 8, Default::default());
        let head = nn::conv2d(&head / "head", 8, 5, 1, Default::default());
        Self { c1, bn, head }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        use uda_models::tch::nn::{Module, ModuleT};
        let h = self.c1.forward(x);
        let h = self.bn.forward_t(&h, true).relu().dropout(0.3, true);
        self.head.forward(&h)
    }
}

fn data(n: usize, seed: u64) -> MemorySource {
    let (h, w) = (12, 16);
    let mut state = seed;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as u8
    };
    let images: Vec<u8> = (0..n * h * w * 3).map(|_| next()).collect();
    let labels: Vec<u8> = images
        .chunks_exact(3)
        .map(|p| if p[0] > 240 { 255 } else { p[0] % 5 })
        .collect();
    MemorySource {
        height: h,
        width: w,
        images,
        labels: Some(labels),
    }
}

fn loader_cfg(seed: u64, labels: bool) -> LoaderConfig {
    LoaderConfig {
        batch: 2,
        crop: Some((8, 8)),
        flip: true,
        grayscale: false,
        norm: Normalization::UNIT_RGB,
        labels,
        seed,
        workers: 2,
        prefetch: 3,
    }
}

const ITERATIONS: u64 = 12;

/// Final variables (sorted by name) and the logged loss totals of a run.
type Outcome = (Vec<(String, Tensor)>, Vec<f64>);

/// Trains (or resumes) into `resume_dir`; `fail_at` makes the step fail at that iteration, as a
/// kill would stop it. Returns the final variables and the log's loss totals.
fn train(
    resume_dir: &Path,
    init_seed: i64,
    optimizer: OptimizerConfig,
    fail_at: Option<u64>,
    precision: Precision,
) -> Result<Outcome, TrainError> {
    uda_models::tch::set_num_threads(1);
    uda_models::tch::manual_seed(init_seed);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = Tiny::new(&vs);
    let opt = Optimizer::new(&vs, optimizer, &[1.0, 10.0])?;
    let mut trainer = Trainer::new(
        &vs,
        opt,
        TrainerConfig {
            iterations: ITERATIONS,
            schedule: LrSchedule::poly(0.05, ITERATIONS),
            seed: 5,
            log_every: 2,
            checkpoint_every: 4,
            resume_dir: resume_dir.to_path_buf(),
            fingerprint: "tiny-test".into(),
        },
    )?
    .with_precision(Device::Cpu, precision);
    let start = trainer.resume()?;
    let mut src = Loader::new(
        Arc::new(data(7, 1)),
        loader_cfg(10, true),
        start,
        ITERATIONS,
    )?;
    let mut trg = Loader::new(
        Arc::new(data(5, 2)),
        loader_cfg(20, false),
        start,
        ITERATIONS,
    )?;
    trainer.watch(src.meter());
    trainer.watch(trg.meter());
    let progress = Progress::new(ProgressMode::Silent, "test", "train", ITERATIONS);
    trainer.run(&progress, |it| {
        if Some(it) == fail_at {
            return Err(TrainError::Data {
                context: "test".into(),
                message: "simulated kill".into(),
            });
        }
        let s = src.batch_for(it)?;
        let t = trg.batch_for(it)?;
        let ce = segmentation_cross_entropy(&net.forward(&s.images), s.labels.as_ref().unwrap());
        let ent = charbonnier_entropy(
            &net.forward(&t.images),
            EntropyAt::Logits,
            [8, 8],
            2.0,
            1e-3,
        );
        Ok(StepLosses::new().with("ce", 1.0, ce).with("ent", 0.1, ent))
    })?;
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let totals = trainer
        .log()
        .unwrap()
        .rows()
        .iter()
        .map(|r| r.loss_total)
        .collect();
    Ok((vars, totals))
}

/// libtorch's RNG (`manual_seed`, dropout) and thread count are process-global, and tests of one
/// binary run on parallel threads: each test holds this lock so no other test reseeds or draws
/// from the generator in the middle of its runs (that made the bitwise comparison flaky).
static TORCH_GLOBALS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn torch_lock() -> std::sync::MutexGuard<'static, ()> {
    TORCH_GLOBALS.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn resumed_run_ends_bitwise_equal_to_uninterrupted_run() {
    let _torch = torch_lock();
    // Exact for a given precision: fp32 with both optimisers, bf16 and fp16 (loss scaler state
    // in the checkpoint) with SGD.
    let mut sgd_finals = Vec::new();
    for (optimizer, precision) in [
        (OptimizerConfig::PAPER_SGD, Precision::Fp32),
        (OptimizerConfig::PAPER_ADAM, Precision::Fp32),
        (OptimizerConfig::PAPER_SGD, Precision::Bf16),
        (OptimizerConfig::PAPER_SGD, Precision::Fp16),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (straight, straight_log) =
            train(&dir.path().join("a"), 1, optimizer, None, precision).unwrap();

        let resume = dir.path().join("b");
        let e = train(&resume, 1, optimizer, Some(6), precision).unwrap_err();
        assert!(e.to_string().contains("simulated kill"));
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(resume.join("checkpoint.json")).unwrap())
                .unwrap();
        assert_eq!(meta["iteration"], 4);
        // A different initialisation proves the weights come from the checkpoint.
        let (resumed, resumed_log) = train(&resume, 99, optimizer, None, precision).unwrap();

        assert_eq!(straight.len(), resumed.len());
        assert!(straight.iter().any(|(n, _)| n.contains("running_mean")));
        for ((na, a), (nb, b)) in straight.iter().zip(&resumed) {
            assert_eq!(na, nb);
            assert!(
                a.equal(b),
                "{optimizer:?} {precision}: variable {na} differs after resume"
            );
        }
        assert_eq!(
            straight_log, resumed_log,
            "{optimizer:?} {precision}: logged losses differ"
        );
        // The weights moved at all (the comparison is not between two untouched models).
        let (init, _) = {
            uda_models::tch::manual_seed(1);
            let vs = nn::VarStore::new(Device::Cpu);
            let _ = Tiny::new(&vs);
            let mut v: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            (v, ())
        };
        let moved = init
            .iter()
            .zip(&straight)
            .filter(|((_, a), (_, b))| !a.equal(b))
            .count();
        assert!(moved >= 4, "only {moved} variables changed");
        if optimizer == OptimizerConfig::PAPER_SGD {
            sgd_finals.push((precision, straight));
        }
    }
    // The precision was applied: bf16 and fp16 end elsewhere than fp32.
    let (fp32, reduced) = sgd_finals.split_first().unwrap();
    for (precision, vars) in reduced {
        assert!(
            vars.iter().zip(&fp32.1).any(|((_, a), (_, b))| !a.equal(b)),
            "{precision} training ended bitwise equal to fp32"
        );
    }
}

#[test]
fn nan_loss_stops_with_iteration_and_term_and_clears_the_resume_folder() {
    let _torch = torch_lock();
    uda_models::tch::set_num_threads(1);
    let dir = tempfile::tempdir().unwrap();
    let resume = dir.path().join("r");
    let vs = nn::VarStore::new(Device::Cpu);
    let w = vs.root().var("w", &[3], nn::Init::Const(1.0));
    let opt = Optimizer::new(&vs, OptimizerConfig::PAPER_SGD, &[1.0]).unwrap();
    let mut trainer = Trainer::new(
        &vs,
        opt,
        TrainerConfig {
            iterations: 10,
            schedule: LrSchedule::Constant { base_lr: 0.1 },
            seed: 0,
            log_every: 1,
            checkpoint_every: 2,
            resume_dir: resume.clone(),
            fingerprint: "nan".into(),
        },
    )
    .unwrap();
    let progress = Progress::new(ProgressMode::Silent, "test", "train", 10);
    let err = trainer
        .run(&progress, |it| {
            let fine = (&w * &w).sum(Kind::Float);
            let ent = if it == 5 {
                &fine * f64::NAN
            } else {
                fine.shallow_clone() * 0.5
            };
            Ok(StepLosses::new()
                .with("ce", 1.0, fine)
                .with("ent", 0.01, ent))
        })
        .unwrap_err();
    match &err {
        TrainError::NonFinite {
            iteration, term, ..
        } => {
            assert_eq!((*iteration, term.as_str()), (5, "ent"));
        }
        other => panic!("expected NonFinite, got {other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("'ent'") && msg.contains("iteration 5"),
        "{msg}"
    );
    assert!(!resume.exists(), "resume folder should be gone after a NaN");
}

#[test]
fn another_runs_checkpoint_is_refused() {
    let _torch = torch_lock();
    let dir = tempfile::tempdir().unwrap();
    let resume = dir.path().join("r");
    let make = |fingerprint: &str| {
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().var("w", &[2], nn::Init::Const(1.0));
        let opt = Optimizer::new(&vs, OptimizerConfig::PAPER_SGD, &[1.0]).unwrap();
        let cfg = TrainerConfig {
            iterations: 2,
            schedule: LrSchedule::Constant { base_lr: 0.1 },
            seed: 0,
            log_every: 1,
            checkpoint_every: 1,
            resume_dir: resume.clone(),
            fingerprint: fingerprint.into(),
        };
        (vs, w, opt, cfg)
    };
    let (vs, w, opt, cfg) = make("first");
    let mut t = Trainer::new(&vs, opt, cfg).unwrap();
    let progress = Progress::new(ProgressMode::Silent, "test", "train", 2);
    t.run(&progress, |_| {
        Ok(StepLosses::new().with("l", 1.0, (&w * &w).sum(Kind::Float)))
    })
    .unwrap();
    let (vs2, _w2, opt2, cfg2) = make("second");
    let mut t2 = Trainer::new(&vs2, opt2, cfg2).unwrap();
    let e = t2.resume().unwrap_err().to_string();
    assert!(
        e.contains("different run") && e.contains("remove the folder"),
        "{e}"
    );
}
