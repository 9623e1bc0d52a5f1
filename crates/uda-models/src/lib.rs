//! Segmentation backbones of the paper in tch: DeepLabV2-ResNet101 (FDA's), FCN-8s-VGG16 and
//! ENet, with weight loading from safetensors in torchvision's, FDA's and our own naming.
//!
//! This is the one crate that depends on tch; the rest of the workspace uses it through the
//! [`tch`] re-export so that a single libtorch binding is ever linked.
//!
//! Variable names equal the PyTorch `state_dict` keys of the reference implementations
//! (FDA's `model/deeplab.py` and `model/fcn8s.py`, davidtvs/PyTorch-ENet), so checkpoints of
//! those repositories load with [`WeightNaming::Native`] after `scripts/convert_pth.py`.
//!
//! # Initial weights
//! `.pth` files become safetensors with the project venv; the converter reads them with
//! `torch.load(..., weights_only=True)`, so no pickled code ever runs:
//! ```text
//! .venv/bin/python scripts/convert_pth.py resnet101-63fe2227.pth resnet101.safetensors   # -> WeightNaming::Torchvision
//! .venv/bin/python scripts/convert_pth.py vgg16-397923af.pth vgg16.safetensors           # -> WeightNaming::Torchvision
//! .venv/bin/python scripts/convert_pth.py DeepLab_init.pth deeplab_init.safetensors      # -> WeightNaming::FdaDeeplab
//! .venv/bin/python scripts/convert_pth.py snap.pth snap.safetensors --key state_dict --prefix-strip module.
//! ```
//! then [`load_safetensors`] with the naming of the file's origin; anything missing, unexpected
//! or of the wrong shape is an error that lists it.
//!
//! # Devices
//! [`device_from_spec`] turns `cpu` / `cuda` / `cuda:N` / `auto` into a device, loading
//! libtorch's CUDA library at run time only when a GPU is asked for (see `device.rs`).

pub use tch;

mod deeplab;
mod device;
mod enet;
mod error;
mod fcn8s;
mod layers;
mod memory_format;
mod naming;
mod normalization;
mod precision;
mod resnet;
mod vgg;
mod weights;

pub use device::{check_device_spec, cuda_runtime_loaded, device_from_spec};
pub use error::{ModelError, ShapeMismatch, WeightMismatch};
pub use memory_format::{channels_last, convert_to_channels_last, is_channels_last};
pub use normalization::Normalization;
pub use precision::{Autocast, Precision, in_fp32, with_precision};
pub use weights::{
    LoadReport, WeightNaming, load_safetensors, load_safetensors_under, save_safetensors,
    save_safetensors_where,
};

use serde::{Deserialize, Serialize};
use tch::Tensor;
use tch::nn::Path;

/// Optimiser group of the trunk's trainable parameters.
pub const GROUP_BACKBONE: usize = 0;
/// Optimiser group of the classifier head (FDA trains it at 10× the learning rate).
pub const GROUP_HEAD: usize = 1;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Backbone {
    /// yaml: `deeplabv2-resnet101`
    Deeplabv2Resnet101,
    /// yaml: `fcn8s-vgg16`
    Fcn8sVgg16,
    /// yaml: `enet`
    Enet,
}

impl Backbone {
    pub const ALL: [Backbone; 3] = [
        Backbone::Deeplabv2Resnet101,
        Backbone::Fcn8sVgg16,
        Backbone::Enet,
    ];

    /// The yaml spelling.
    pub fn name(self) -> &'static str {
        match self {
            Backbone::Deeplabv2Resnet101 => "deeplabv2-resnet101",
            Backbone::Fcn8sVgg16 => "fcn8s-vgg16",
            Backbone::Enet => "enet",
        }
    }
}

impl std::fmt::Display for Backbone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How BatchNorm layers behave while training. Evaluation and inference always normalise with
/// the running statistics (PyTorch's `model.eval()`), in every mode.
///
/// FDA's `train.py` calls `model.train()` on its DeepLab and only sets `requires_grad = False`
/// on the BatchNorm affine parameters (`model/deeplab.py`): training normalises with batch
/// statistics (batch 1) and every forward pass, source and target alike, moves the running
/// statistics the saved model predicts with. That is [`BatchNormMode::Fda`]; the other two are
/// the usual alternatives.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "kebab-case")]
pub enum BatchNormMode {
    /// Stored statistics, also while training, never updated; affine parameters fixed. (The
    /// usual reading of "frozen BN" in DeepLab fine-tuning; not what FDA's code does.)
    Frozen,
    /// FDA's semantics: batch statistics while training, running statistics updated by every
    /// training-mode pass (momentum 0.1), affine parameters fixed.
    Fda,
    /// Ordinary BatchNorm: batch statistics, running statistics updated, affine trained.
    #[default]
    Train,
}

impl BatchNormMode {
    /// The yaml spelling.
    pub fn name(self) -> &'static str {
        match self {
            Self::Frozen => "frozen",
            Self::Fda => "fda",
            Self::Train => "train",
        }
    }

    /// The mode a saved description (`model.json`) records: `batch_norm`, or in files written
    /// before the three modes existed `freeze_bn` (true: [`Self::Frozen`], false: [`Self::Train`]).
    pub fn from_saved(batch_norm: Option<Self>, freeze_bn: Option<bool>) -> Result<Self, String> {
        match (batch_norm, freeze_bn) {
            (Some(m), None) => Ok(m),
            (None, Some(true)) => Ok(Self::Frozen),
            (None, Some(false)) => Ok(Self::Train),
            (None, None) => Err("missing field `batch_norm`".into()),
            (Some(_), Some(_)) => Err(
                "has both `batch_norm` and its old spelling `freeze_bn`: keep `batch_norm`".into(),
            ),
        }
    }

    /// Whether training-mode passes normalise with (and record) batch statistics.
    pub fn uses_batch_statistics(self) -> bool {
        !matches!(self, Self::Frozen)
    }

    /// Whether the affine parameters are trainable variables.
    pub fn trains_affine(self) -> bool {
        matches!(self, Self::Train)
    }
}

impl std::fmt::Display for BatchNormMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(try_from = "ModelConfigFile")]
pub struct ModelConfig {
    pub backbone: Backbone,
    pub num_classes: i64,
    /// How BatchNorm trains (FCN-8s has none; the field is kept for a uniform `model.json`).
    pub batch_norm: BatchNormMode,
}

/// `model.json` as written before BatchNorm had three modes (`freeze_bn: bool`) or after; both
/// load, so checkpoints of earlier versions keep working.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelConfigFile {
    backbone: Backbone,
    num_classes: i64,
    #[serde(default)]
    batch_norm: Option<BatchNormMode>,
    #[serde(default)]
    freeze_bn: Option<bool>,
}

impl TryFrom<ModelConfigFile> for ModelConfig {
    type Error = String;

    fn try_from(f: ModelConfigFile) -> Result<Self, String> {
        Ok(Self {
            backbone: f.backbone,
            num_classes: f.num_classes,
            batch_norm: BatchNormMode::from_saved(f.batch_norm, f.freeze_bn)?,
        })
    }
}

impl ModelConfig {
    /// The paper's setting: 19 classes; BatchNorm as FDA's code trains DeepLabV2
    /// ([`BatchNormMode::Fda`]), ordinary BatchNorm for ENet (trained from scratch).
    pub fn paper(backbone: Backbone) -> Self {
        Self {
            backbone,
            num_classes: 19,
            batch_norm: match backbone {
                Backbone::Deeplabv2Resnet101 => BatchNormMode::Fda,
                Backbone::Fcn8sVgg16 | Backbone::Enet => BatchNormMode::Train,
            },
        }
    }

    pub fn validate(&self) -> Result<(), ModelError> {
        if self.num_classes < 1 {
            return Err(ModelError::Config(format!(
                "num_classes must be at least 1, got {}",
                self.num_classes
            )));
        }
        Ok(())
    }
}

/// How many times FDA's DeepLab optimiser lists a variable (`get_1x_lr_params_NOscale` in
/// `model/deeplab.py`). It walks `self.modules()` of conv1, bn1 and layer1..4 and yields each
/// module's *recursive* `parameters()`, so a trunk variable appears once per enclosing module:
/// `conv1.weight` once, `layer1.0.conv1.weight` three times (layer1, layer1.0, the conv),
/// `layer1.0.downsample.0.weight` four. The head (`layer5`) is listed once. PyTorch's SGD then
/// applies the update once per listing. `name` is a variable name of this crate's DeepLabV2
/// (the same as FDA's `state_dict` keys); other backbones list every variable once.
pub fn fda_listing_count(backbone: Backbone, name: &str) -> usize {
    if backbone != Backbone::Deeplabv2Resnet101 || naming::is_head_var(name) {
        return 1;
    }
    name.split('.').count().saturating_sub(1).max(1)
}

/// What a forward pass gives.
#[derive(Debug)]
pub struct SegOutput {
    /// (B, C, h, w) at the network's own output stride ([`SegNet::logits_stride`]): 8 for
    /// DeepLabV2 (upsample to the label size for the loss), 1 for FCN-8s and ENet.
    pub logits: Tensor,
    /// (B, F, h', w') penultimate features for a contrastive projection head, F =
    /// [`SegNet::feature_dim`]: DeepLabV2 layer4 (2048, stride 8); FCN-8s fc7 (4096, stride 32,
    /// cell q centred on input pixel 32q + 12.5); ENet encoder output (128, stride 8).
    pub features: Tensor,
}

#[derive(Debug)]
enum Net {
    Deeplab(Box<deeplab::DeepLabV2>),
    Fcn8s(Box<fcn8s::Fcn8s>),
    Enet(Box<enet::ENet>),
}

/// A segmentation network on a tch `nn::Path`. Trainable trunk parameters are in optimiser
/// group [`GROUP_BACKBONE`], the classifier head's in [`GROUP_HEAD`]; BatchNorm affine
/// parameters outside [`BatchNormMode::Train`], running statistics and FCN's fixed bilinear upsampling kernels are variables
/// (saved and loaded) but not trainable.
#[derive(Debug)]
pub struct SegNet {
    cfg: ModelConfig,
    net: Net,
    norm: Normalization,
}

impl SegNet {
    /// Panics if `cfg` fails [`ModelConfig::validate`]; check it first where it comes from a user.
    pub fn new(root: &Path, cfg: &ModelConfig) -> Self {
        if let Err(e) = cfg.validate() {
            panic!("{e}");
        }
        let trunk = root.set_group(GROUP_BACKBONE);
        let head = root.set_group(GROUP_HEAD);
        let net = match cfg.backbone {
            Backbone::Deeplabv2Resnet101 => Net::Deeplab(Box::new(deeplab::DeepLabV2::new(
                &trunk,
                &head,
                cfg.num_classes,
                cfg.batch_norm,
            ))),
            Backbone::Fcn8sVgg16 => {
                Net::Fcn8s(Box::new(fcn8s::Fcn8s::new(&trunk, &head, cfg.num_classes)))
            }
            Backbone::Enet => Net::Enet(Box::new(enet::ENet::new(
                &trunk,
                &head,
                cfg.num_classes,
                cfg.batch_norm,
            ))),
        };
        Self {
            cfg: *cfg,
            net,
            norm: Normalization::for_backbone(cfg.backbone),
        }
    }

    /// Inputs must be normalised the way the initial weights were trained (a torchvision
    /// ImageNet trunk with ImageNet statistics, FDA's Caffe DeepLab with BGR mean subtraction):
    /// fed the other way, frozen BatchNorm layers see inputs ~60× off scale and the network
    /// diverges. Set this after loading weights whose origin differs from the backbone's default.
    pub fn set_input_normalization(&mut self, norm: Normalization) {
        self.norm = norm;
    }

    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// `x`: (B, 3, H, W), already normalised with [`SegNet::input_normalization`]. `train`
    /// switches dropout and BatchNorm batch statistics (except [`BatchNormMode::Frozen`]).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> SegOutput {
        let (logits, features) = match &self.net {
            Net::Deeplab(n) => n.forward_t(x, train),
            Net::Fcn8s(n) => n.forward_t(x, train),
            Net::Enet(n) => n.forward_t(x, train),
        };
        SegOutput { logits, features }
    }

    pub fn feature_dim(&self) -> i64 {
        match self.cfg.backbone {
            Backbone::Deeplabv2Resnet101 => resnet::FEATURE_DIM,
            Backbone::Fcn8sVgg16 => vgg::FC_DIM,
            Backbone::Enet => enet::FEATURE_DIM,
        }
    }

    /// Input pixels per logit cell along each axis (approximate for DeepLabV2's odd sizes:
    /// 1024×512 gives 129×65 logits).
    pub fn logits_stride(&self) -> i64 {
        match self.cfg.backbone {
            Backbone::Deeplabv2Resnet101 => 8,
            Backbone::Fcn8sVgg16 | Backbone::Enet => 1,
        }
    }

    /// Input pixels per feature cell along each axis.
    pub fn feature_stride(&self) -> i64 {
        match self.cfg.backbone {
            Backbone::Deeplabv2Resnet101 | Backbone::Enet => 8,
            Backbone::Fcn8sVgg16 => 32,
        }
    }

    /// How inputs are normalised: [`Normalization::for_backbone`] unless set with
    /// [`SegNet::set_input_normalization`].
    pub fn input_normalization(&self) -> Normalization {
        self.norm
    }
}

#[cfg(test)]
mod tests;
