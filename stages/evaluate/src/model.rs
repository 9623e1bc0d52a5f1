//! Running a checkpoint: the [`Predictor`] seam and its libtorch implementation over
//! [`uda_train::inference::Checkpoint`] (shared with `pseudolabel-dump`).
//!
//! A checkpoint folder (what `pretrain` and `contrastive-train` write) holds `model.json`
//! ([`uda_train::ModelInfo`]) and the weights it names; the file's text is kept verbatim in
//! `summary.parquet`'s `model_meta`.
//!
//! The scoring loop only sees [`Predictor`], so it is tested with fake predictors as well as
//! with a real (tiny, random) network.

use std::path::Path;
use uda_models::tch::Device;
use uda_train::inference::{Checkpoint, argmax_classes};

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

/// A checkpoint predicting the arg-max of its (upsampled) scores.
#[derive(Debug)]
pub struct TchPredictor {
    checkpoint: Checkpoint,
    upsample: Upsample,
}

impl TchPredictor {
    /// Loads a checkpoint folder (see the module docs).
    pub fn load(dir: &Path, device: Device, upsample: Upsample) -> anyhow::Result<Self> {
        // The runner's CPU budget for this stage (`UDA_THREADS`), not every core.
        uda_train::set_threads(0);
        Ok(Self {
            checkpoint: Checkpoint::load(dir, device)?,
            upsample,
        })
    }

    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
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
        let ckpt = &self.checkpoint;
        let scores = ckpt.scores(images, count, size, out_size, self.upsample)?;
        Ok(argmax_classes(&scores).map_err(|e| ckpt.torch_error(e))?)
    }
}
