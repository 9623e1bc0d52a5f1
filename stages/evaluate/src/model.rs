//! Running a model: the [`Predictor`] seam and its libtorch implementation over
//! [`uda_train::ensemble::Ensemble`] (shared with `pseudolabel-dump`).
//!
//! Input `model` is one checkpoint folder (what `pretrain` and `contrastive-train` write:
//! `model.json` ([`uda_train::ModelInfo`]) and the weights it names) or a folder of them (the
//! runner's `{all: stage}`), told apart as [`ModelInput::find`] does. One checkpoint is scored
//! as it predicts; several as FDA's ensemble (`evaluation_multi.py`): the arg-max of their mean
//! softmax. What the model was is kept in `summary.parquet`'s `model_meta` ([`model_meta`]).
//!
//! The scoring loop only sees [`Predictor`], so it is tested with fake predictors as well as
//! with real (tiny, random) networks.

use crate::EvaluateParams;
use std::collections::BTreeMap;
use std::path::Path;
use uda_models::tch::Device;
use uda_train::ensemble::{Ensemble, ModelInput};

pub use uda_train::inference::Upsample;

/// Turns a batch of images into train-id maps at the label size.
pub trait Predictor {
    /// `images`: `count` RGB images of `size = [height, width]`, (N, H, W, 3) u8 row-major.
    /// Returns `count` train-id maps of `out_size = [height, width]`, contiguous.
    fn predict(
        &mut self,
        images: &[u8],
        count: usize,
        size: [usize; 2],
        out_size: [usize; 2],
    ) -> anyhow::Result<Vec<u8>>;
}

/// One checkpoint, or an equal-weight softmax ensemble of several, predicting the arg-max of
/// its scores upsampled as `upsample` says.
#[derive(Debug)]
pub struct TchPredictor {
    input: ModelInput,
    ensemble: Ensemble,
    upsample: Upsample,
}

impl TchPredictor {
    /// Loads the checkpoint folder `input`, or every checkpoint folder inside it (see the module
    /// docs); the members must agree on their classes. `params` gives the upsampling and how
    /// the forward passes run (`precision`, `channels_last`).
    pub fn load(input: &Path, device: Device, params: &EvaluateParams) -> anyhow::Result<Self> {
        // The runner's CPU budget for this stage (`UDA_THREADS`), not every core.
        uda_train::set_threads(0);
        let input = ModelInput::find(input)?;
        let ensemble = Ensemble::load(input.dirs(), device)?
            .with_precision(params.precision)
            .with_channels_last(params.channels_last);
        Ok(Self {
            input,
            ensemble,
            upsample: params.upsample,
        })
    }

    /// What input `model` was found to be.
    pub fn input(&self) -> &ModelInput {
        &self.input
    }

    pub fn ensemble(&self) -> &Ensemble {
        &self.ensemble
    }

    /// `summary.parquet`'s `model_meta`; see [`model_meta`].
    pub fn model_meta(&self) -> String {
        model_meta(&self.input, &self.ensemble)
    }

    /// For `metrics.json`, only for a folder of checkpoints: `members` (their folder names,
    /// e.g. the runner's `beta=0.01` labels) and `models` (where each lives).
    pub fn ensemble_metrics(&self) -> BTreeMap<String, serde_json::Value> {
        let mut m = BTreeMap::new();
        if let ModelInput::Members { dirs, .. } = &self.input {
            m.insert(
                "members".into(),
                dirs.iter().map(|d| member_name(d)).collect(),
            );
            m.insert("models".into(), dirs.iter().map(|d| resolved(d)).collect());
        }
        m
    }
}

impl Predictor for TchPredictor {
    fn predict(
        &mut self,
        images: &[u8],
        count: usize,
        size: [usize; 2],
        out_size: [usize; 2],
    ) -> anyhow::Result<Vec<u8>> {
        Ok(self
            .ensemble
            .classes(images, count, size, out_size, self.upsample)?)
    }
}

/// The folder name a member is known by (the runner names `{all: stage}` links by the
/// instance's sweep variables).
fn member_name(dir: &Path) -> String {
    dir.file_name().map_or_else(
        || dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Where a folder lives: a gathered `{all: ...}` input is a folder of links the runner makes
/// for the run, so the links' targets are what stays meaningful.
fn resolved(dir: &Path) -> String {
    std::fs::canonicalize(dir)
        .unwrap_or_else(|_| dir.to_path_buf())
        .display()
        .to_string()
}

/// What produced the predictions, for `summary.parquet`'s `model_meta`: one checkpoint's
/// `model.json` text verbatim (as before ensembles existed); for a folder of checkpoints a JSON
/// object `{"ensemble": [{"member": NAME, "path": RESOLVED, "model": MODEL_JSON}, ...]}` in
/// member order, so a report can tell an ensemble from a single model and name its members.
pub fn model_meta(input: &ModelInput, ensemble: &Ensemble) -> String {
    match input {
        ModelInput::Checkpoint(_) => ensemble.members()[0].model_json().to_string(),
        ModelInput::Members { .. } => {
            let members: Vec<serde_json::Value> = ensemble
                .members()
                .iter()
                .map(|m| {
                    // Parsed when the checkpoint was loaded, so this cannot fail; the text is
                    // kept as a string if it ever does.
                    let model = serde_json::from_str(m.model_json())
                        .unwrap_or_else(|_| serde_json::Value::String(m.model_json().into()));
                    serde_json::json!({
                        "member": member_name(m.dir()),
                        "path": resolved(m.dir()),
                        "model": model,
                    })
                })
                .collect();
            serde_json::to_string_pretty(&serde_json::json!({ "ensemble": members }))
                .expect("JSON values serialise")
        }
    }
}
