use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::{Backbone, WeightNaming};

/// How RGB pixel values in 0..255 become network input:
/// `x = (pixel[order] · scale − mean) / std`, per channel, in the network's channel order.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct Normalization {
    /// The network expects BGR (channels reversed before the mean is subtracted).
    pub bgr: bool,
    /// Applied to 0..255 values first: 1 or 1/255.
    pub scale: f32,
    /// Per channel, in the network's channel order, in scaled units.
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Normalization {
    /// FDA's (Caffe DeepLab's) input: BGR, 0..255, minus the BGR mean of FDA's `train.py`.
    pub const FDA_CAFFE: Normalization = Normalization {
        bgr: true,
        scale: 1.0,
        mean: [104.006_99, 116.668_77, 122.678_92],
        std: [1.0, 1.0, 1.0],
    };

    /// torchvision's ImageNet input: RGB in 0..1, ImageNet mean and std.
    pub const IMAGENET: Normalization = Normalization {
        bgr: false,
        scale: 1.0 / 255.0,
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
    };

    /// RGB in 0..1 and nothing else: `transforms.ToTensor()` only, as PyTorch-ENet trains.
    pub const UNIT_RGB: Normalization = Normalization {
        bgr: false,
        scale: 1.0 / 255.0,
        mean: [0.0; 3],
        std: [1.0; 3],
    };

    /// The choice per backbone follows where its initial weights come from:
    /// - DeepLabV2: [`Self::FDA_CAFFE`]; FDA's DeepLab init (COCO, Caffe-converted) and its
    ///   training pipeline expect BGR mean subtraction, and the paper builds on FDA.
    /// - FCN-8s-VGG16: [`Self::IMAGENET`]; its trunk starts from torchvision's ImageNet VGG16,
    ///   trained on that input. (FDA feeds BGR-mean inputs to a Caffe VGG instead.)
    /// - ENet: [`Self::UNIT_RGB`]; trained from scratch, as in the reference PyTorch port.
    pub fn for_backbone(backbone: Backbone) -> Normalization {
        match backbone {
            Backbone::Deeplabv2Resnet101 => Self::FDA_CAFFE,
            Backbone::Fcn8sVgg16 => Self::IMAGENET,
            Backbone::Enet => Self::UNIT_RGB,
        }
    }

    /// The input the weights of `naming` were trained on, where their origin fixes it:
    /// torchvision's ImageNet weights → [`Self::IMAGENET`], FDA's DeepLab init →
    /// [`Self::FDA_CAFFE`]; our own checkpoints (`Native`) carry theirs in `model.json`.
    pub fn for_weights(naming: WeightNaming) -> Option<Normalization> {
        match naming {
            WeightNaming::Torchvision => Some(Self::IMAGENET),
            WeightNaming::FdaDeeplab => Some(Self::FDA_CAFFE),
            WeightNaming::Native => None,
        }
    }

    fn per_channel(&self, v: [f32; 3], like: &Tensor) -> Tensor {
        Tensor::from_slice(&v)
            .to_device(like.device())
            .reshape([1, 3, 1, 1])
    }

    /// `rgb`: (B, 3, H, W) RGB values in 0..255 of any kind (e.g. an FDA-translated image,
    /// before any rounding). Returns float32 network input on the same device.
    pub fn apply(&self, rgb: &Tensor) -> Tensor {
        let x = rgb.to_kind(Kind::Float);
        let x = if self.bgr { x.flip([1]) } else { x };
        let mean = self.per_channel(self.mean, &x);
        let x = x * f64::from(self.scale) - mean;
        if self.std == [1.0; 3] {
            x
        } else {
            x / self.per_channel(self.std, rgb)
        }
    }

    /// `images`: (B, H, W, 3) u8 RGB, the layout images are stored in.
    pub fn apply_nhwc_u8(&self, images: &Tensor) -> Tensor {
        self.apply(&images.permute([0, 3, 1, 2]))
    }

    /// Back to (B, 3, H, W) RGB float in 0..255 (unclamped), for previews.
    pub fn invert(&self, x: &Tensor) -> Tensor {
        let x = x.to_kind(Kind::Float);
        let (std, mean) = (
            self.per_channel(self.std, &x),
            self.per_channel(self.mean, &x),
        );
        let x = (x * std + mean) / f64::from(self.scale);
        if self.bgr { x.flip([1]) } else { x }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn normalization_follows_the_origin_of_the_weights() {
        // A DeepLab initialised from torchvision's ImageNet ResNet-101 must see ImageNet inputs,
        // not the Caffe BGR means its backbone defaults to (frozen BN diverged on those).
        assert_eq!(
            Normalization::for_weights(WeightNaming::Torchvision),
            Some(Normalization::IMAGENET)
        );
        assert_eq!(
            Normalization::for_weights(WeightNaming::FdaDeeplab),
            Some(Normalization::FDA_CAFFE)
        );
        assert_eq!(Normalization::for_weights(WeightNaming::Native), None);
        assert_eq!(
            Normalization::for_backbone(Backbone::Deeplabv2Resnet101),
            Normalization::FDA_CAFFE
        );
    }

    #[test]
    fn fda_caffe_flips_to_bgr_then_subtracts_mean() {
        // One pixel R=10, G=20, B=30.
        let rgb = Tensor::from_slice(&[10f32, 20.0, 30.0]).reshape([1, 3, 1, 1]);
        let x = Normalization::FDA_CAFFE.apply(&rgb);
        let got: Vec<f32> = x.flatten(0, -1).try_into().unwrap();
        let want = [30.0 - 104.006_99, 20.0 - 116.668_77, 10.0 - 122.678_92];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-4, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn imagenet_matches_torchvision_formula_and_inverts() {
        let rgb = Tensor::randint(256, [2, 3, 4, 5], (Kind::Uint8, Device::Cpu));
        let n = Normalization::IMAGENET;
        let x = n.apply(&rgb);
        let r = rgb
            .to_kind(Kind::Float)
            .get(1)
            .get(2)
            .get(3)
            .get(4)
            .double_value(&[]);
        let expect = (r / 255.0 - 0.406) / 0.225;
        assert!((x.double_value(&[1, 2, 3, 4]) - expect).abs() < 1e-5);
        let back = n.invert(&x);
        assert!(back.allclose(&rgb.to_kind(Kind::Float), 1e-4, 1e-3, false));
        let nhwc = rgb.permute([0, 2, 3, 1]).contiguous();
        assert!(n.apply_nhwc_u8(&nhwc).allclose(&x, 0.0, 0.0, false));
    }
}
