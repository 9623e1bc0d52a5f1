//! The training core shared by the training stages (`pretrain`, `contrastive-train`).
//!
//! * [`recipe`]: the training recipe ([`TrainRecipe`]): the params every training stage shares,
//!   with their defaults and checks; [`session`]: the steps around a stage's own loss (network
//!   and initial weights, resumable trainer, loaders, the outputs written at the end).
//! * [`loader`]: worker threads read ImageSet Zarr arrays ([`source`]), crop/flip/grayscale and
//!   normalise ([`augment`]) the batches of upcoming iterations, in an order fixed by
//!   `(seed, iteration)` ([`sampler`]), and hand them over bounded channels; time spent waiting
//!   is measured.
//! * [`optim`] (SGD, Adam with savable state) and [`schedule`] (poly, step).
//! * [`losses`]: segmentation cross-entropy (optionally class-weighted: [`class_weights`]) and
//!   Charbonnier entropy; [`contrastive`]: the pixel
//!   contrastive loss of the second model and its projection head.
//! * [`trainer`]: the loop — NaN/inf checks, Parquet log ([`log`]), progress, checkpoints and
//!   exact resume ([`checkpoint`]).
//! * [`model_info`]: `model.json`, how a later stage rebuilds a trained model;
//!   [`inference`]: loading and running it (evaluation, pseudo-labels).
//!
//! # Resume folder (for the runner and for people)
//!
//! A stage's `--out` folder is private staging that vanishes when the stage fails or is killed,
//! so checkpoints live elsewhere, in a *resume folder*:
//!
//! * if the environment variable [`RESUME_DIR_ENV`] (`UDA_RESUME_DIR`) is set and non-empty, that
//!   folder (the runner should point it at a stable per-cache-key folder such as
//!   `cache/resume/<key>/`);
//! * otherwise `<out>.resume/` beside the final `--out` folder.
//!
//! A stage started again with the same configuration (same params that affect the result, same
//! inputs: see [`fingerprint`]) resumes from the latest checkpoint there: weights, optimiser state
//! and iteration; data order and RNG streams are functions of `(seed, iteration)`, so nothing else
//! is needed and the result equals an uninterrupted run's (bitwise on the CPU with the same thread
//! count). A folder holding another configuration's checkpoint is an error (never silently
//! discarded). The folder is deleted when the stage succeeds and when training hits a NaN/inf
//! loss (resuming could only hit it again); it is kept when the stage is killed or fails otherwise.

pub mod augment;
pub mod checkpoint;
pub mod class_weights;
pub mod contrastive;
pub mod ensemble;
mod error;
pub mod inference;
pub mod loader;
pub mod log;
pub mod losses;
pub mod model_info;
pub mod optim;
mod preview;
pub mod recipe;
pub mod sampler;
pub mod scaler;
pub mod schedule;
pub mod session;
pub mod source;
pub mod step;
pub mod trainer;

pub use error::TrainError;
pub use loader::{Batch, Loader, LoaderConfig};
pub use model_info::ModelInfo;
pub use optim::{Optimizer, OptimizerConfig, ParamListing};
pub use preview::PreviewError;
pub use recipe::{OptimizerChoice, ScheduleChoice, TrainRecipe};
pub use schedule::LrSchedule;
pub use session::{FinishOptions, Session, SessionError};
pub use trainer::{StepLosses, TrainSummary, Trainer, TrainerConfig, WaitMeter};

use std::path::{Path, PathBuf};

/// Environment variable naming the resume folder (see the crate docs).
pub const RESUME_DIR_ENV: &str = "UDA_RESUME_DIR";

/// The resume folder of a stage whose (staging) output folder is `out_dir`: `$UDA_RESUME_DIR`
/// when set, else `<final out>.resume` (the staging suffix `.partial-<pid>` stripped).
pub fn resume_dir(out_dir: &Path) -> PathBuf {
    if let Some(dir) = std::env::var_os(RESUME_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let name = out_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let base = match name.rsplit_once(".partial-") {
        Some((base, pid)) if !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) => {
            base.to_string()
        }
        _ => name,
    };
    out_dir.with_file_name(format!("{base}.resume"))
}

/// A short stable hash of a run's configuration (the params that affect the result and the
/// identity of its inputs), to tell whether a resume folder belongs to this run.
pub fn fingerprint(kind: &str, config: &serde_json::Value) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"uda-train run v1\0");
    h.update(kind.as_bytes());
    h.update(b"\0");
    h.update(canonical_json(config).as_bytes());
    h.finalize().to_hex()[..32].to_string()
}

/// JSON text with object keys sorted at every level (serde_json may preserve insertion order,
/// depending on features other crates enable).
fn canonical_json(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let items: Vec<String> = keys
                .into_iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        serde_json::Value::String(k.clone()),
                        canonical_json(&map[k])
                    )
                })
                .collect();
            format!("{{{}}}", items.join(","))
        }
        serde_json::Value::Array(items) => {
            format!(
                "[{}]",
                items
                    .iter()
                    .map(canonical_json)
                    .collect::<Vec<_>>()
                    .join(",")
            )
        }
        other => other.to_string(),
    }
}

/// A warning for CPU training with several libtorch threads while `OMP_WAIT_POLICY` is unset.
///
/// libtorch's OpenMP threads spin while they wait for each other; when the cores are shared (the
/// loader's workers, other processes) a spinning thread burns the slice its partner needs.
/// Measured on the 2-core development machine under load, ENet on 96×48 crops: 0.7 it/s with
/// 2 threads, 8.5 it/s with `OMP_WAIT_POLICY=PASSIVE`, 9.5 it/s with 1 thread. The policy is read
/// when libgomp loads, so it must be set in the environment before the process starts.
pub fn cpu_threads_hint(device: uda_models::tch::Device, threads: usize) -> Option<String> {
    let effective = if threads > 0 {
        threads
    } else {
        uda_models::tch::get_num_threads().max(1) as usize
    };
    let unset = std::env::var_os("OMP_WAIT_POLICY").is_none_or(|v| v.is_empty());
    (device == uda_models::tch::Device::Cpu && effective > 1 && unset).then(|| {
        format!(
            "training on the CPU with {effective} libtorch threads and OMP_WAIT_POLICY unset: if other work shares \
             the cores this can run ~10x slower; set OMP_WAIT_POLICY=PASSIVE in the environment or param threads=1"
        )
    })
}

/// Sets libtorch's intra-op thread count when `threads > 0` (0 keeps libtorch's default).
pub fn set_threads(threads: usize) {
    if let Some(n) = effective_threads(threads, std::env::var(THREADS_ENV).ok().as_deref()) {
        uda_models::tch::set_num_threads(i32::try_from(n).unwrap_or(i32::MAX));
    }
}

/// The CPU budget the runner gives a stage (its `resources.cpus`).
pub const THREADS_ENV: &str = "UDA_THREADS";

/// Intra-op threads: the `threads` param when set, else the runner's `UDA_THREADS`, else
/// libtorch's default (every core). Without the runner's budget two trainings the runner starts
/// side by side each spread over every core: on 2 cores that doubled the step time and spent
/// half the CPU in the kernel waking threads (measured with strace: ~10k futex calls/s).
fn effective_threads(param: usize, env: Option<&str>) -> Option<usize> {
    if param > 0 {
        return Some(param);
    }
    env.and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_come_from_the_param_then_the_runner() {
        assert_eq!(effective_threads(3, Some("1")), Some(3));
        assert_eq!(effective_threads(0, Some("1")), Some(1));
        assert_eq!(effective_threads(0, Some(" 2 ")), Some(2));
        assert_eq!(effective_threads(0, None), None);
        assert_eq!(effective_threads(0, Some("0")), None);
        assert_eq!(effective_threads(0, Some("many")), None);
    }

    #[test]
    fn resume_dir_strips_the_staging_suffix() {
        // The environment variable is not set in unit tests of this crate.
        if std::env::var_os(RESUME_DIR_ENV).is_some() {
            return;
        }
        assert_eq!(
            resume_dir(Path::new("/c/run.partial-123")),
            PathBuf::from("/c/run.resume")
        );
        assert_eq!(
            resume_dir(Path::new("/c/run")),
            PathBuf::from("/c/run.resume")
        );
        assert_eq!(
            resume_dir(Path::new("/c/a.partial-x")),
            PathBuf::from("/c/a.partial-x.resume")
        );
    }

    #[test]
    fn fingerprint_is_order_independent_and_value_sensitive() {
        let a = serde_json::json!({"lr": 0.1, "batch": 1});
        let b = serde_json::json!({"batch": 1, "lr": 0.1});
        let c = serde_json::json!({"batch": 1, "lr": 0.2});
        let nested_a = serde_json::json!({"x": {"b": 1, "a": [1, {"d": 2, "c": 3}]}});
        let nested_b = serde_json::json!({"x": {"a": [1, {"c": 3, "d": 2}], "b": 1}});
        assert_eq!(fingerprint("k", &nested_a), fingerprint("k", &nested_b));
        assert_eq!(fingerprint("pretrain", &a), fingerprint("pretrain", &b));
        assert_ne!(fingerprint("pretrain", &a), fingerprint("pretrain", &c));
        assert_ne!(fingerprint("pretrain", &a), fingerprint("other", &a));
    }
}
