//! Averaged softmax of one or several checkpoints, at image resolution.

use crate::thresholds::quantize;
use std::path::{Path, PathBuf};
use uda_data::classes::NUM_CLASSES;
use uda_models::SegNet;
use uda_models::tch::{self, Device, Kind, Tensor, nn::VarStore};
use uda_train::ModelInfo;

#[derive(Debug)]
struct Member {
    // Owns the variables `net` refers to.
    _vs: VarStore,
    net: SegNet,
    info: ModelInfo,
    dir: PathBuf,
}

/// Equal-weight softmax ensemble (FDA's MBT with one model per β; one member is plain
/// inference).
#[derive(Debug)]
pub struct Ensemble {
    members: Vec<Member>,
    device: Device,
}

impl Ensemble {
    pub fn load(dirs: &[PathBuf], device: Device) -> anyhow::Result<Self> {
        let mut members = Vec::with_capacity(dirs.len());
        for dir in dirs {
            let mut vs = VarStore::new(device);
            let (info, net) = ModelInfo::load_model(dir, &mut vs)?;
            anyhow::ensure!(
                info.num_classes == NUM_CLASSES as i64,
                "{}: the model predicts {} classes; pseudo-labels need the {NUM_CLASSES} train ids",
                dir.join(uda_train::model_info::MODEL_JSON).display(),
                info.num_classes
            );
            members.push(Member {
                _vs: vs,
                net,
                info,
                dir: dir.clone(),
            });
        }
        Ok(Self { members, device })
    }

    /// Mean softmax `(count, 19, h, w)` of `count` RGB images `(count, h, w, 3)` u8, each
    /// member's resized bilinearly (aligned corners) from its output size to `(h, w)`.
    pub fn probabilities(
        &self,
        rgb: &[u8],
        count: usize,
        h: usize,
        w: usize,
    ) -> anyhow::Result<Tensor> {
        tch::no_grad(|| -> anyhow::Result<Tensor> {
            let mut sum: Option<Tensor> = None;
            for m in &self.members {
                let x = m
                    .info
                    .input_tensor(rgb, count, h, w, self.device)
                    .map_err(|e| member_error(&m.dir, e))?;
                let logits = m.net.forward_t(&x, false).logits;
                // Bilinear resizing is linear, so resizing each member before averaging equals
                // FDA's average-then-resize, and members of different output strides can mix.
                let p = logits
                    .f_softmax(1, Kind::Float)
                    .and_then(|p| p.f_upsample_bilinear2d([h as i64, w as i64], true, None, None))
                    .map_err(|e| member_error(&m.dir, e))?;
                sum = Some(match sum {
                    Some(s) => s + p,
                    None => p,
                });
            }
            Ok(sum.expect("an ensemble has members") / self.members.len() as f64)
        })
    }

    /// Arg-max train ids and quantised confidences (`round(255 · max p)`), `count · h · w` each.
    pub fn predict(
        &self,
        rgb: &[u8],
        count: usize,
        h: usize,
        w: usize,
    ) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
        let probs = self.probabilities(rgb, count, h, w)?;
        let (max, arg) = probs.max_dim(1, false);
        let pred = Vec::<u8>::try_from(
            arg.to_kind(Kind::Uint8)
                .to_device(Device::Cpu)
                .contiguous()
                .view([-1]),
        )?;
        let conf: Vec<f32> = Vec::<f32>::try_from(
            max.to_kind(Kind::Float)
                .to_device(Device::Cpu)
                .contiguous()
                .view([-1]),
        )?;
        Ok((pred, conf.into_iter().map(quantize).collect()))
    }
}

fn member_error(dir: &Path, e: tch::TchError) -> anyhow::Error {
    anyhow::anyhow!("running the model of {}: {e}", dir.display())
}
