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
mod naming;
mod normalization;
mod resnet;
mod vgg;
mod weights;

pub use device::{check_device_spec, cuda_runtime_loaded, device_from_spec};
pub use error::{ModelError, ShapeMismatch, WeightMismatch};
pub use normalization::Normalization;
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

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub backbone: Backbone,
    pub num_classes: i64,
    /// Every BatchNorm uses its stored statistics, also while training, and its affine
    /// parameters get no gradient (FDA's DeepLab). FCN-8s has no BatchNorm.
    pub freeze_bn: bool,
}

impl ModelConfig {
    /// The paper's setting: 19 classes, BatchNorm frozen for DeepLabV2 only.
    pub fn paper(backbone: Backbone) -> Self {
        Self {
            backbone,
            num_classes: 19,
            freeze_bn: backbone == Backbone::Deeplabv2Resnet101,
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
/// group [`GROUP_BACKBONE`], the classifier head's in [`GROUP_HEAD`]; frozen BatchNorm
/// parameters, running statistics and FCN's fixed bilinear upsampling kernels are variables
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
                cfg.freeze_bn,
            ))),
            Backbone::Fcn8sVgg16 => {
                Net::Fcn8s(Box::new(fcn8s::Fcn8s::new(&trunk, &head, cfg.num_classes)))
            }
            Backbone::Enet => Net::Enet(Box::new(enet::ENet::new(
                &trunk,
                &head,
                cfg.num_classes,
                cfg.freeze_bn,
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
    /// switches dropout and BatchNorm batch statistics (except frozen BatchNorm).
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
