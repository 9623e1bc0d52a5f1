//! The resumable state of a training run, kept in a *resume folder* outside the stage's private
//! output folder (which is deleted when a stage fails or is killed).
//!
//! A checkpoint is three files:
//! * `state-<iteration>.safetensors`: the model's variables under `model/<name>` (trainable and
//!   not, e.g. batch-norm statistics) and the optimiser's buffers under `optim.*`;
//! * `log-<iteration>.parquet`: the training log up to that iteration;
//! * `checkpoint.json`: a [`CheckpointMeta`] naming the two files above.
//!
//! Each file is written to a temporary name, flushed to disk and renamed; `checkpoint.json` goes
//! last, so its rename is the commit point: a run killed at any moment leaves either the previous
//! complete checkpoint or the new one. Files of older checkpoints are deleted after the commit.

use crate::TrainError;
use crate::log::TrainLog;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use uda_models::tch::{Device, Tensor, nn};

/// The commit file of a resume folder.
pub const META_FILE: &str = "checkpoint.json";
/// Version of the checkpoint layout.
pub const FORMAT: u32 = 1;
const MODEL_PREFIX: &str = "model/";

/// What `checkpoint.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointMeta {
    pub format: u32,
    /// Identifies the run configuration; a resume folder is only resumed by the same run.
    pub fingerprint: String,
    /// Iterations completed; the run continues with iteration number `iteration` (0-based).
    pub iteration: u64,
    /// The run's seed (data order, augmentation and libtorch RNG are all derived from it and the
    /// iteration, so this is the whole RNG state).
    pub seed: u64,
    /// Learning rate of the last update before the checkpoint.
    pub lr: f64,
    pub tensors_file: String,
    pub log_file: String,
}

/// A loaded checkpoint.
#[derive(Debug)]
pub struct Checkpoint {
    pub meta: CheckpointMeta,
    /// Every tensor of the state file (model and optimiser), on the CPU.
    pub tensors: HashMap<String, Tensor>,
    pub log: TrainLog,
}

/// A resume folder.
#[derive(Debug, Clone)]
pub struct ResumeDir {
    dir: PathBuf,
}

impl ResumeDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The latest checkpoint, or `None` when the folder has none. A checkpoint of another run
    /// (different fingerprint) is an error rather than silently thrown away.
    pub fn load(&self, fingerprint: &str) -> Result<Option<Checkpoint>, TrainError> {
        let meta_path = self.dir.join(META_FILE);
        if !meta_path.exists() {
            return Ok(None);
        }
        let bad = |m: String| TrainError::Checkpoint {
            path: meta_path.clone(),
            message: m,
        };
        let text = std::fs::read_to_string(&meta_path).map_err(|e| bad(e.to_string()))?;
        let meta: CheckpointMeta =
            serde_json::from_str(&text).map_err(|e| bad(format!("not a checkpoint: {e}")))?;
        if meta.format != FORMAT {
            return Err(bad(format!(
                "checkpoint format {} (this build reads {FORMAT}); remove the folder",
                meta.format
            )));
        }
        if meta.fingerprint != fingerprint {
            return Err(TrainError::ResumeMismatch {
                dir: self.dir.clone(),
                expected: fingerprint.to_string(),
                found: meta.fingerprint,
            });
        }
        let tensors_path = self.dir.join(&meta.tensors_file);
        let tensors = Tensor::read_safetensors(&tensors_path)
            .map_err(|e| TrainError::checkpoint(&tensors_path, e))?;
        let log = TrainLog::read_parquet(&self.dir.join(&meta.log_file))?;
        Ok(Some(Checkpoint {
            meta,
            tensors: tensors.into_iter().collect(),
            log,
        }))
    }

    /// Writes a checkpoint atomically (see the module docs) and removes older ones.
    pub fn save(
        &self,
        mut meta: CheckpointMeta,
        tensors: &[(String, Tensor)],
        log: &TrainLog,
    ) -> Result<(), TrainError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| {
            TrainError::io(format!("creating resume folder {}", self.dir.display()), e)
        })?;
        meta.format = FORMAT;
        meta.tensors_file = format!("state-{}.safetensors", meta.iteration);
        meta.log_file = format!("log-{}.parquet", meta.iteration);

        let tensors_path = self.dir.join(&meta.tensors_file);
        // Row-major for the file: variables and optimiser buffers may be laid out channels-last
        // (`channels_last`), which safetensors cannot write.
        let tensors: Vec<(&str, Tensor)> = tensors
            .iter()
            .map(|(name, t)| (name.as_str(), t.contiguous()))
            .collect();
        self.write_atomic(&tensors_path, |tmp| {
            Tensor::write_safetensors(&tensors, tmp).map_err(|e| e.to_string())
        })?;
        let log_path = self.dir.join(&meta.log_file);
        self.write_atomic(&log_path, |tmp| {
            log.write_parquet(tmp).map_err(|e| e.to_string())
        })?;
        let text = serde_json::to_string_pretty(&meta)
            .map_err(|e| TrainError::checkpoint(&self.dir.join(META_FILE), e))?;
        self.write_atomic(&self.dir.join(META_FILE), |tmp| {
            std::fs::write(tmp, &text).map_err(|e| e.to_string())
        })?;
        if let Ok(dir) = std::fs::File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        // Older checkpoints are now unreachable; a failure to delete them is harmless.
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let stale = (name.starts_with("state-") || name.starts_with("log-"))
                    && name != meta.tensors_file
                    && name != meta.log_file;
                if stale {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        Ok(())
    }

    fn write_atomic(
        &self,
        path: &Path,
        write: impl FnOnce(&Path) -> Result<(), String>,
    ) -> Result<(), TrainError> {
        let bad = |m: String| TrainError::Checkpoint {
            path: path.to_path_buf(),
            message: m,
        };
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        write(&tmp).map_err(&bad)?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| bad(e.to_string()))?;
        std::fs::rename(&tmp, path).map_err(|e| bad(e.to_string()))?;
        Ok(())
    }

    /// Deletes the folder (after a finished run, or when its state is known to be useless).
    pub fn clear(&self) -> Result<(), TrainError> {
        match std::fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(TrainError::io(
                format!("removing resume folder {}", self.dir.display()),
                e,
            )),
            _ => Ok(()),
        }
    }
}

/// The model's variables as `model/<name>` CPU tensors, sorted by name.
pub fn model_tensors(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut vars: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .map(|(name, t)| {
            (
                format!("{MODEL_PREFIX}{name}"),
                t.detach().to_device(Device::Cpu).contiguous(),
            )
        })
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// Copies `model/<name>` tensors of a checkpoint into the var store; every variable must be there
/// with its shape.
pub fn restore_model(
    vs: &nn::VarStore,
    tensors: &HashMap<String, Tensor>,
    path: &Path,
) -> Result<(), TrainError> {
    let bad = |m: String| TrainError::Checkpoint {
        path: path.to_path_buf(),
        message: m,
    };
    let mut vars = vs.variables();
    let extra: Vec<&String> = tensors
        .keys()
        .filter_map(|k| k.strip_prefix(MODEL_PREFIX).map(|n| (k, n)))
        .filter(|(_, n)| !vars.contains_key(*n))
        .map(|(k, _)| k)
        .collect();
    if let Some(k) = extra.first() {
        return Err(bad(format!(
            "holds '{k}', which this model does not have (a checkpoint of another model?)"
        )));
    }
    uda_models::tch::no_grad(|| {
        for (name, var) in vars.iter_mut() {
            let saved = tensors
                .get(&format!("{MODEL_PREFIX}{name}"))
                .ok_or_else(|| bad(format!("has no value for model variable '{name}'")))?;
            if saved.size() != var.size() {
                return Err(bad(format!(
                    "'{name}' has shape {:?}, the model {:?}",
                    saved.size(),
                    var.size()
                )));
            }
            var.f_copy_(saved)
                .map_err(|e| bad(format!("'{name}': {e}")))?;
        }
        Ok(())
    })
}
