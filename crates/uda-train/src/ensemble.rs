//! Equal-weight softmax ensembles of checkpoints: FDA's multi-band transfer ("MBT", Yang and
//! Soatto, CVPR 2020), which averages the softmax of models trained with different β
//! (`evaluation_multi.py` for scores, `getSudoLabel_multi.py` for pseudo-labels). Both
//! `evaluate` and `pseudolabel-dump` run one, so they find members, combine them and fail the
//! same way.
//!
//! A stage's `model` input names either one checkpoint folder or a folder of them (the runner's
//! `{all: stage}` input: one link per sweep instance); [`ModelInput::find`] tells which. Members
//! must predict the same classes: an average of probabilities over different label sets means
//! nothing, so [`Ensemble::load`] compares their `model.json` before reading any weights.
//!
//! Order of operations: FDA averages at the networks' output resolution and then resizes; here
//! each member's scores are resized first (bilinear, aligned corners) and then averaged.
//! Bilinear resizing is linear, so the two agree up to float rounding, and members of different
//! output strides can be mixed. One member gives exactly that model's plain inference.

use crate::inference::{Checkpoint, InferenceError, Upsample, argmax_classes};
use crate::model_info::{MODEL_JSON, ModelInfo};
use std::path::{Path, PathBuf};
use uda_models::tch::{Device, Kind, TchError, Tensor};

/// Why an ensemble's members could not be found or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnsembleError {
    /// The `model` folder could not be listed.
    #[error("reading the model folder {dir}")]
    ReadDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Neither the folder nor any of its sub-folders is a checkpoint.
    #[error(
        "{dir} holds no {MODEL_JSON}, nor do its sub-folders; pass the output folder of a training stage \
         (pretrain, contrastive-train) or a folder of them (`{{all: STAGE}}` in a pipeline)"
    )]
    NoCheckpoint { dir: PathBuf },
    /// [`Ensemble::load`] was given no folders.
    #[error("an ensemble needs at least one checkpoint folder")]
    NoMembers,
    /// Two members predict different numbers of classes.
    #[error(
        "{folder}: the ensemble's members disagree on num_classes: '{first}' predicts {first_classes}, \
         '{member}' predicts {classes}; the ensemble averages class probabilities, so gather only checkpoints \
         trained for the same classes"
    )]
    Classes {
        folder: PathBuf,
        first: String,
        first_classes: i64,
        member: String,
        classes: i64,
    },
    /// A member's description, weights or forward pass failed.
    #[error(transparent)]
    Inference(#[from] InferenceError),
}

/// What a stage's `model` input is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelInput {
    /// The folder holds `model.json` itself.
    Checkpoint(PathBuf),
    /// A folder of checkpoint folders (or links to them), e.g. an `{all: stage}` input.
    Members {
        folder: PathBuf,
        /// The sub-folders that hold `model.json`, in name order (so the order, and with it the
        /// float summation order, does not depend on the file system).
        dirs: Vec<PathBuf>,
    },
}

impl ModelInput {
    /// The checkpoint itself when `input` holds `model.json`, else its sub-folders (or links)
    /// that do; other entries (files, folders without `model.json`) are ignored.
    pub fn find(input: &Path) -> Result<Self, EnsembleError> {
        if input.join(MODEL_JSON).is_file() {
            return Ok(Self::Checkpoint(input.to_path_buf()));
        }
        let read_dir = |source| EnsembleError::ReadDir {
            dir: input.to_path_buf(),
            source,
        };
        let mut dirs = Vec::new();
        for entry in std::fs::read_dir(input).map_err(read_dir)? {
            let path = entry.map_err(read_dir)?.path();
            if path.join(MODEL_JSON).is_file() {
                dirs.push(path);
            }
        }
        if dirs.is_empty() {
            return Err(EnsembleError::NoCheckpoint {
                dir: input.to_path_buf(),
            });
        }
        dirs.sort();
        Ok(Self::Members {
            folder: input.to_path_buf(),
            dirs,
        })
    }

    /// The checkpoint folders, one per member.
    pub fn dirs(&self) -> &[PathBuf] {
        match self {
            Self::Checkpoint(dir) => std::slice::from_ref(dir),
            Self::Members { dirs, .. } => dirs,
        }
    }
}

/// Equal-weight softmax ensemble of checkpoints on one device (see the module docs).
#[derive(Debug)]
pub struct Ensemble {
    members: Vec<Checkpoint>,
}

/// The last component of a path, for messages.
fn name(dir: &Path) -> String {
    dir.file_name().map_or_else(
        || dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

impl Ensemble {
    /// Loads every checkpoint folder of `dirs` (in that order), after checking that their
    /// `model.json` agree on `num_classes`.
    pub fn load(dirs: &[PathBuf], device: Device) -> Result<Self, EnsembleError> {
        let first = dirs.first().ok_or(EnsembleError::NoMembers)?;
        let read = |dir: &PathBuf| {
            ModelInfo::read(dir).map_err(|source| InferenceError::Load {
                dir: dir.clone(),
                source,
            })
        };
        let first_classes = read(first)?.num_classes;
        for dir in &dirs[1..] {
            let classes = read(dir)?.num_classes;
            if classes != first_classes {
                return Err(EnsembleError::Classes {
                    folder: dir.parent().unwrap_or(dir).to_path_buf(),
                    first: name(first),
                    first_classes,
                    member: name(dir),
                    classes,
                });
            }
        }
        let members = dirs
            .iter()
            .map(|dir| Checkpoint::load(dir, device))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { members })
    }

    /// Every member's forward pass at `precision` (see [`Checkpoint::with_precision`]).
    pub fn with_precision(self, precision: uda_models::Precision) -> Self {
        self.map_members(|m| m.with_precision(precision))
    }

    /// Every member's weights laid out channels-last when `on` (see
    /// [`Checkpoint::with_channels_last`]).
    pub fn with_channels_last(self, on: bool) -> Self {
        self.map_members(|m| m.with_channels_last(on))
    }

    fn map_members(self, f: impl FnMut(Checkpoint) -> Checkpoint) -> Self {
        Self {
            members: self.members.into_iter().map(f).collect(),
        }
    }

    /// How the members' forward passes run, for a stage's log (see
    /// [`Checkpoint::forward_mode`]; all members share it).
    pub fn forward_mode(&self) -> String {
        self.members[0].forward_mode()
    }

    /// The members, in the order they were given.
    pub fn members(&self) -> &[Checkpoint] {
        &self.members
    }

    /// Mean class probabilities `(count, classes, out_h, out_w)` of `count` RGB images
    /// `(count, h, w, 3)` u8 of `size = [h, w]`. Each member's scores are resized to `out_size`
    /// as `what` says ([`Upsample::Softmax`]: its softmax, FDA's order; [`Upsample::Logits`]:
    /// its logits, then the softmax at `out_size`), then the members are summed in order and
    /// divided by their number.
    pub fn mean_probabilities(
        &self,
        images: &[u8],
        count: usize,
        size: [usize; 2],
        out_size: [usize; 2],
        what: Upsample,
    ) -> Result<Tensor, InferenceError> {
        let mut sum: Option<Tensor> = None;
        for m in &self.members {
            let scores = m.scores(images, count, size, out_size, what)?;
            let p = match what {
                Upsample::Softmax => scores,
                Upsample::Logits => scores
                    .f_softmax(1, Kind::Float)
                    .map_err(|e| m.torch_error(e))?,
            };
            sum = Some(match sum {
                Some(s) => s.f_add(&p).map_err(|e| m.torch_error(e))?,
                None => p,
            });
        }
        let first = &self.members[0];
        sum.expect("an ensemble has members (checked in load)")
            .f_div_scalar(self.members.len() as f64)
            .map_err(|e| first.torch_error(e))
    }

    /// Mean softmax `(count, classes, h, w)` at the images' own size `(h, w)`, what
    /// pseudo-labels are made from.
    pub fn probabilities(
        &self,
        rgb: &[u8],
        count: usize,
        h: usize,
        w: usize,
    ) -> Result<Tensor, InferenceError> {
        self.mean_probabilities(rgb, count, [h, w], [h, w], Upsample::Softmax)
    }

    /// The arg-max class of every pixel at `out_size`, `count · out_h · out_w` u8 row-major: of
    /// [`Self::mean_probabilities`], or for a single member of its own resized scores, so that
    /// a one-member ensemble is exactly that model's evaluation (the softmax does not move the
    /// arg-max, but it can round two close logits to one probability and so break a tie
    /// differently).
    pub fn classes(
        &self,
        images: &[u8],
        count: usize,
        size: [usize; 2],
        out_size: [usize; 2],
        what: Upsample,
    ) -> Result<Vec<u8>, InferenceError> {
        let (scores, first) = match self.members.as_slice() {
            [only] => (only.scores(images, count, size, out_size, what)?, only),
            members => (
                self.mean_probabilities(images, count, size, out_size, what)?,
                &members[0],
            ),
        };
        argmax_classes(&scores).map_err(|e| first.torch_error(e))
    }

    /// Arg-max train ids and the mean probability of that class, `count · h · w` each, at the
    /// images' own size (pseudo-labels and their confidences).
    pub fn classes_and_confidence(
        &self,
        rgb: &[u8],
        count: usize,
        h: usize,
        w: usize,
    ) -> Result<(Vec<u8>, Vec<f32>), InferenceError> {
        let probs = self.probabilities(rgb, count, h, w)?;
        let to_vec = || -> Result<(Vec<u8>, Vec<f32>), TchError> {
            let (max, arg) = probs.f_max_dim(1, false)?;
            let pred = Vec::<u8>::try_from(
                arg.f_to_kind(Kind::Uint8)?
                    .f_to_device(Device::Cpu)?
                    .f_contiguous()?
                    .f_view([-1])?,
            )?;
            let conf = Vec::<f32>::try_from(
                max.f_to_kind(Kind::Float)?
                    .f_to_device(Device::Cpu)?
                    .f_contiguous()?
                    .f_view([-1])?,
            )?;
            Ok((pred, conf))
        };
        to_vec().map_err(|e| self.members[0].torch_error(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uda_models::tch::nn::VarStore;
    use uda_models::{Normalization, SegNet};

    /// An ENet description, read as `model.json` text is (so the fixture does not depend on how
    /// the Rust fields are spelled; `freeze_bn` is the oldest spelling, which still loads).
    fn info(num_classes: i64, grayscale: bool) -> ModelInfo {
        serde_json::from_value(serde_json::json!({
            "backbone": "enet",
            "num_classes": num_classes,
            "freeze_bn": false,
            "normalization": Normalization::UNIT_RGB,
            "grayscale": grayscale,
            "weights": "model.safetensors",
            "produced_by": "pretrain",
            "iterations": 10,
        }))
        .unwrap()
    }

    /// A checkpoint folder of random ENet weights drawn from `seed`.
    fn random_checkpoint(dir: &Path, seed: i64, grayscale: bool) {
        std::fs::create_dir_all(dir).unwrap();
        uda_models::tch::manual_seed(seed);
        let vs = VarStore::new(Device::Cpu);
        let info = info(19, grayscale);
        let _net = SegNet::new(&vs.root(), &info.model_config());
        uda_models::save_safetensors(&vs, &info.weights_path(dir)).unwrap();
        info.write(dir).unwrap();
    }

    fn images(count: usize, h: usize, w: usize) -> Vec<u8> {
        (0..count * h * w * 3)
            .map(|p| ((p * 7 + (p / (3 * w)) * 13) % 256) as u8)
            .collect()
    }

    #[test]
    fn model_input_is_a_checkpoint_or_its_checkpoint_sub_folders_in_name_order() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        for m in ["b", "a"] {
            std::fs::create_dir_all(root.join("entries").join(m)).unwrap();
            info(19, false)
                .write(&root.join("entries").join(m))
                .unwrap();
        }
        assert_eq!(
            ModelInput::find(&root.join("entries/a")).unwrap(),
            ModelInput::Checkpoint(root.join("entries/a"))
        );
        // As the runner gathers `{all: stage}`: links, beside entries that are no checkpoint.
        let folder = root.join("gathered");
        std::fs::create_dir_all(folder.join("notes")).unwrap();
        std::fs::write(folder.join("README"), "x").unwrap();
        for m in ["b", "a"] {
            std::os::unix::fs::symlink(root.join("entries").join(m), folder.join(m)).unwrap();
        }
        let input = ModelInput::find(&folder).unwrap();
        assert_eq!(input.dirs(), [folder.join("a"), folder.join("b")]);
        assert!(matches!(input, ModelInput::Members { folder: f, .. } if f == folder));

        let e = ModelInput::find(&folder.join("notes")).unwrap_err();
        assert!(matches!(e, EnsembleError::NoCheckpoint { .. }), "{e}");
        assert!(e.to_string().contains("notes holds no model.json"), "{e}");
        let e = ModelInput::find(&root.join("missing")).unwrap_err();
        assert!(matches!(e, EnsembleError::ReadDir { .. }), "{e}");
        assert!(e.to_string().contains("missing"), "{e}");
    }

    #[test]
    fn members_must_agree_on_the_classes_before_weights_are_read() {
        let d = tempfile::tempdir().unwrap();
        let folder = d.path().join("members");
        // Descriptions only: the check must come before any weights are looked for.
        for (m, classes) in [("a", 19), ("b", 19), ("c", 7)] {
            std::fs::create_dir_all(folder.join(m)).unwrap();
            info(classes, false).write(&folder.join(m)).unwrap();
        }
        let input = ModelInput::find(&folder).unwrap();
        let e = Ensemble::load(input.dirs(), Device::Cpu).unwrap_err();
        match &e {
            EnsembleError::Classes {
                folder: f,
                first,
                first_classes: 19,
                member,
                classes: 7,
            } => assert_eq!((f, first.as_str(), member.as_str()), (&folder, "a", "c")),
            other => panic!("{other:?}"),
        }
        let text = e.to_string();
        assert!(
            text.starts_with(&format!("{}:", folder.display())) && text.contains("num_classes"),
            "{text}"
        );
        assert!(matches!(
            Ensemble::load(&[], Device::Cpu).unwrap_err(),
            EnsembleError::NoMembers
        ));
    }

    #[test]
    fn the_mean_is_the_average_of_the_members_and_one_member_is_the_model() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        random_checkpoint(&a, 1, false);
        random_checkpoint(&b, 2, true);
        let (size, out) = ([8, 16], [12, 20]);
        let rgb = images(2, 8, 16);
        let both = Ensemble::load(&[a.clone(), b.clone()], Device::Cpu).unwrap();
        let single =
            |dir: &PathBuf| Ensemble::load(std::slice::from_ref(dir), Device::Cpu).unwrap();
        for what in [Upsample::Softmax, Upsample::Logits] {
            let mean = both.mean_probabilities(&rgb, 2, size, out, what).unwrap();
            assert_eq!(mean.size(), [2, 19, 12, 20]);
            let want = (single(&a)
                .mean_probabilities(&rgb, 2, size, out, what)
                .unwrap()
                + single(&b)
                    .mean_probabilities(&rgb, 2, size, out, what)
                    .unwrap())
                / 2.0;
            let diff = (&mean - want).abs().max().double_value(&[]);
            assert!(diff < 1e-6, "{what:?}: {diff}");
            assert_eq!(
                both.classes(&rgb, 2, size, out, what).unwrap(),
                argmax_classes(&mean).unwrap()
            );
            // One member: exactly the checkpoint's own arg-max of its resized scores.
            let ckpt = Checkpoint::load(&a, Device::Cpu).unwrap();
            assert_eq!(
                single(&a).classes(&rgb, 2, size, out, what).unwrap(),
                argmax_classes(&ckpt.scores(&rgb, 2, size, out, what).unwrap()).unwrap()
            );
        }
        let (pred, conf) = both.classes_and_confidence(&rgb, 2, 8, 16).unwrap();
        let probs = both.probabilities(&rgb, 2, 8, 16).unwrap();
        assert_eq!(pred, argmax_classes(&probs).unwrap());
        let max = Vec::<f32>::try_from(probs.amax([1i64].as_slice(), false).view([-1])).unwrap();
        assert_eq!(conf, max);
        let e = both
            .classes(&rgb[1..], 2, size, out, Upsample::Logits)
            .unwrap_err();
        assert!(matches!(e, InferenceError::InputSize { .. }), "{e}");
    }
}
