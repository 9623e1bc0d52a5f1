//! The training loop shared by the training stages: learning-rate schedule, optimiser step,
//! NaN/inf checks, Parquet log, progress, and checkpoint/resume.
//!
//! The stage supplies the per-iteration work as a closure that fetches its batches, runs the
//! model and returns named loss terms ([`StepLosses`]); the trainer does everything around it.
//!
//! Determinism: each iteration first seeds libtorch's RNG from `(seed, iteration)` (dropout and
//! any other random op), and the data loaders derive batches from `(seed, iteration)` too, so a run
//! resumed from a checkpoint at iteration k computes exactly what an uninterrupted run computes
//! from k on. On the CPU with the same thread count the final weights are bitwise equal.

use crate::TrainError;
use crate::checkpoint::{CheckpointMeta, ResumeDir, model_tensors, restore_model};
use crate::log::{LogWindow, TrainLog};
use crate::optim::Optimizer;
use crate::sampler::derive_seed;
use crate::scaler::LossScaler;
use crate::schedule::LrSchedule;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use uda_models::tch::{Device, Kind, Tensor, nn};
use uda_models::{Autocast, Precision};
use uda_stage::Progress;

/// Time the training loop spent blocked on a data loader; shared between loader and trainer.
#[derive(Debug, Clone, Default)]
pub struct WaitMeter(Arc<AtomicU64>);

impl WaitMeter {
    pub fn add(&self, d: Duration) {
        self.0.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    pub fn total(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::Relaxed))
    }
}

/// The loss terms of one iteration: each has a name (a log column), a weight and a scalar tensor.
/// The back-propagated total is `Σ weight · value` over the terms with a non-zero weight; terms
/// are logged unweighted.
#[derive(Debug, Default)]
pub struct StepLosses {
    terms: Vec<(String, f64, Tensor)>,
}

impl StepLosses {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a term (builder style).
    pub fn with(mut self, name: &str, weight: f64, value: Tensor) -> Self {
        self.push(name, weight, value);
        self
    }

    pub fn push(&mut self, name: &str, weight: f64, value: Tensor) {
        self.terms.push((name.to_string(), weight, value));
    }

    /// The unweighted value of term `name`, if there is one.
    pub fn value(&self, name: &str) -> Option<f64> {
        self.terms
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, _, v)| v.double_value(&[]))
    }

    pub fn names(&self) -> Vec<String> {
        self.terms.iter().map(|(n, _, _)| n.clone()).collect()
    }

    /// `Σ weight · value` over the terms with a non-zero weight (what the trainer
    /// back-propagates); `None` when every weight is 0.
    pub fn total(&self) -> Option<Tensor> {
        self.terms
            .iter()
            .filter(|(_, w, _)| *w != 0.0)
            .map(|(_, w, v)| v * *w)
            .reduce(|a, b| a + b)
    }
}

/// How long and how to train.
#[derive(Debug, Clone)]
pub struct TrainerConfig {
    /// Total iterations (a resumed run stops at the same total).
    pub iterations: u64,
    pub schedule: LrSchedule,
    /// Base seed (libtorch RNG per iteration; loaders take their own derived seeds).
    pub seed: u64,
    /// Write a log row every this many iterations (>= 1).
    pub log_every: u64,
    /// Write a checkpoint every this many iterations (0: only at the end).
    pub checkpoint_every: u64,
    /// Where checkpoints live (see [`crate::resume_dir`]).
    pub resume_dir: PathBuf,
    /// Identifies the configuration (params and inputs); a checkpoint is only resumed by a run
    /// with the same fingerprint.
    pub fingerprint: String,
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// The iteration this process started from (0 unless resumed).
    pub resumed_from: u64,
    pub iterations: u64,
    /// Mean of each loss term (and `total`) over the last logged window.
    pub final_losses: BTreeMap<String, f64>,
    /// Fraction of wall time spent waiting for data over the whole log.
    pub data_wait_fraction: f64,
    /// Iterations per second in this process.
    pub iterations_per_s: f64,
    /// Optimiser steps the fp16 loss scaler skipped in this process (0 at other precisions).
    pub skipped_steps: u64,
}

/// Owns the optimiser, the log and the resume folder of one run.
#[derive(Debug)]
pub struct Trainer<'a> {
    vs: &'a nn::VarStore,
    optimizer: Optimizer,
    config: TrainerConfig,
    resume: ResumeDir,
    log: Option<TrainLog>,
    start: u64,
    meters: Vec<WaitMeter>,
    /// Where the forward passes run and at which precision (autocast around each step).
    device: Device,
    precision: Precision,
    /// fp16 only.
    scaler: Option<LossScaler>,
    /// Steps skipped by the loss scaler (fp16 gradients with an inf or NaN).
    skipped: u64,
}

impl<'a> Trainer<'a> {
    pub fn new(
        vs: &'a nn::VarStore,
        optimizer: Optimizer,
        config: TrainerConfig,
    ) -> Result<Self, TrainError> {
        if config.log_every == 0 {
            return Err(TrainError::Config("log_every must be at least 1".into()));
        }
        if config.iterations == 0 {
            return Err(TrainError::Config("iterations must be at least 1".into()));
        }
        config.schedule.validate().map_err(TrainError::Config)?;
        let resume = ResumeDir::new(config.resume_dir.clone());
        Ok(Self {
            vs,
            optimizer,
            config,
            resume,
            log: None,
            start: 0,
            meters: Vec::new(),
            device: Device::Cpu,
            precision: Precision::Fp32,
            scaler: None,
            skipped: 0,
        })
    }

    /// Runs each step's forward passes under autocast at `precision` on `device` (the backward
    /// pass and the optimiser stay outside, as PyTorch recommends); fp16 adds loss scaling
    /// ([`LossScaler`]). Call before [`Trainer::resume`].
    pub fn with_precision(mut self, device: Device, precision: Precision) -> Self {
        self.device = device;
        self.precision = precision;
        self.scaler = (precision == Precision::Fp16).then(LossScaler::default);
        self
    }

    /// Loads the resume folder's checkpoint if there is one (weights, optimiser state, log) and
    /// returns the iteration to start from; build the data loaders from it.
    pub fn resume(&mut self) -> Result<u64, TrainError> {
        let Some(ckpt) = self.resume.load(&self.config.fingerprint)? else {
            return Ok(0);
        };
        let path = self.resume.path().join(&ckpt.meta.tensors_file);
        if ckpt.meta.iteration > self.config.iterations {
            return Err(TrainError::Checkpoint {
                path,
                message: format!(
                    "is at iteration {} but the run has only {} iterations",
                    ckpt.meta.iteration, self.config.iterations
                ),
            });
        }
        restore_model(self.vs, &ckpt.tensors, &path)?;
        self.optimizer.load_state(&ckpt.tensors)?;
        if let Some(scaler) = self.scaler.as_mut() {
            scaler.load_state(&ckpt.tensors)?;
        }
        let mut log = ckpt.log;
        log.truncate_after(ckpt.meta.iteration);
        self.log = Some(log);
        self.start = ckpt.meta.iteration;
        Ok(self.start)
    }

    /// Counts the time the loop waits on this loader's batches as data wait.
    pub fn watch(&mut self, meter: WaitMeter) {
        self.meters.push(meter);
    }

    pub fn log(&self) -> Option<&TrainLog> {
        self.log.as_ref()
    }

    pub fn resume_dir(&self) -> &ResumeDir {
        &self.resume
    }

    fn waited(&self) -> Duration {
        self.meters.iter().map(WaitMeter::total).sum()
    }

    fn checkpoint(&self, done: u64, lr: f64) -> Result<(), TrainError> {
        let mut tensors = model_tensors(self.vs);
        tensors.extend(self.optimizer.state_tensors());
        if let Some(scaler) = &self.scaler {
            tensors.extend(scaler.state_tensors());
        }
        let meta = CheckpointMeta {
            format: crate::checkpoint::FORMAT,
            fingerprint: self.config.fingerprint.clone(),
            iteration: done,
            seed: self.config.seed,
            lr,
            tensors_file: String::new(),
            log_file: String::new(),
        };
        let log = self.log.clone().unwrap_or_default();
        self.resume.save(meta, &tensors, &log)
    }

    /// Runs iterations `start..iterations`; `step(iteration)` returns that iteration's losses.
    /// A NaN/inf loss stops the run with [`TrainError::NonFinite`] and deletes the resume folder
    /// (resuming would only reach the same NaN again).
    pub fn run<F>(&mut self, progress: &Progress, mut step: F) -> Result<TrainSummary, TrainError>
    where
        F: FnMut(u64) -> Result<StepLosses, TrainError>,
    {
        let result = self.run_inner(progress, &mut step);
        if matches!(result, Err(TrainError::NonFinite { .. })) {
            let _ = self.resume.clear();
        }
        result
    }

    fn run_inner(
        &mut self,
        progress: &Progress,
        step: &mut dyn FnMut(u64) -> Result<StepLosses, TrainError>,
    ) -> Result<TrainSummary, TrainError> {
        let cfg = self.config.clone();
        let torch_seed = derive_seed(cfg.seed, "torch");
        progress.inc(self.start);
        let t_begin = Instant::now();
        let mut window = LogWindow::default();
        let mut last = Instant::now();
        let mut last_wait = self.waited();
        let wait_begin = last_wait;
        for it in self.start..cfg.iterations {
            uda_models::tch::manual_seed(
                torch_seed.wrapping_add(it.wrapping_mul(0x9E37_79B9_7F4A_7C15)) as i64,
            );
            self.optimizer.zero_grad();
            let losses = {
                let _autocast = Autocast::enter(self.device, self.precision);
                step(it)?
            };
            let names = losses.names();
            let log = self.log.get_or_insert_with(|| TrainLog::new(names.clone()));
            if log.terms() != names.as_slice() {
                return Err(TrainError::Config(format!(
                    "loss terms changed at iteration {it}: {:?} then {:?}",
                    log.terms(),
                    names
                )));
            }
            let total = losses.total().ok_or_else(|| {
                TrainError::Config("the step returned no loss term with a non-zero weight".into())
            })?;
            match &self.scaler {
                Some(scaler) => (&total * scaler.scale()).backward(),
                None => total.backward(),
            }
            let mut values = Vec::with_capacity(names.len());
            for (name, _, v) in &losses.terms {
                values.push(check_finite(it, name, v)?);
            }
            let total_value = check_finite(it, "total", &total)?;
            drop(losses);
            let lr = cfg.schedule.lr_at(it);
            match self.scaler.as_mut() {
                Some(scaler) => self.skipped += u64::from(!scaler.step(&mut self.optimizer, lr)),
                None => self.optimizer.step(lr),
            }

            let done = it + 1;
            let is_last = done == cfg.iterations;
            let now = Instant::now();
            let wait_now = self.waited();
            window.add(
                total_value,
                &values,
                (wait_now - last_wait).as_secs_f64(),
                (now - last).as_secs_f64(),
            );
            if done % cfg.log_every == 0 || is_last {
                let row = window.take(done, lr);
                self.log.as_mut().expect("created above").push(row);
            }
            if (cfg.checkpoint_every > 0 && done % cfg.checkpoint_every == 0) || is_last {
                self.checkpoint(done, lr)?;
            }
            progress.inc(1);
            let elapsed = t_begin.elapsed().as_secs_f64().max(1e-9);
            let rate = (done - self.start) as f64 / elapsed;
            let wait_pct = 100.0 * (wait_now - wait_begin).as_secs_f64() / elapsed;
            let terms: Vec<String> = names
                .iter()
                .zip(&values)
                .map(|(n, v)| format!("{n} {v:.4}"))
                .collect();
            progress.set_message(format!(
                "loss {total_value:.4} ({}) {rate:.2} it/s, data wait {wait_pct:.1}%",
                terms.join(", ")
            ));
            // Checkpoint and progress time go to the next window, so Σ step_s covers the run.
            last = now;
            last_wait = wait_now;
        }
        let log = self.log.clone().unwrap_or_default();
        let mut final_losses = BTreeMap::new();
        if let Some(row) = log.rows().last() {
            final_losses.insert("total".to_string(), row.loss_total);
            for (n, v) in log.terms().iter().zip(&row.terms) {
                final_losses.insert(n.clone(), *v);
            }
        }
        let ran = cfg.iterations - self.start;
        Ok(TrainSummary {
            resumed_from: self.start,
            iterations: cfg.iterations,
            final_losses,
            data_wait_fraction: log.data_wait_fraction(),
            iterations_per_s: ran as f64 / t_begin.elapsed().as_secs_f64().max(1e-9),
            skipped_steps: self.skipped,
        })
    }
}

fn check_finite(iteration: u64, term: &str, value: &Tensor) -> Result<f64, TrainError> {
    let v = value
        .detach()
        .to_kind(Kind::Double)
        .f_double_value(&[])
        .map_err(|e| {
            TrainError::torch(
                format!("reading loss term '{term}' at iteration {iteration}"),
                e,
            )
        })?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(TrainError::NonFinite {
            iteration,
            term: term.to_string(),
            value: v,
        })
    }
}
