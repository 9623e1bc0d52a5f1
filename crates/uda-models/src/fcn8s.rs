//! FCN-8s head on VGG16, as FDA trains it ("at-once" FCN-8s: pool4 scaled by 0.01 and pool3 by
//! 1e-4 before their score layers, crops 5 / 9 / 31 that align every map with the input,
//! score layers zero-initialised, upsampling layers fixed bilinear kernels).

use tch::Tensor;
use tch::nn::Path;

use crate::layers::{Conv2d, ConvOpts, ConvTranspose2d, TransposeInit, WeightInit};
use crate::vgg::{FC_DIM, Vgg16Fcn};

#[derive(Debug)]
pub(crate) struct Fcn8s {
    vgg: Vgg16Fcn,
    score_fr: Conv2d,
    score_pool3: Conv2d,
    score_pool4: Conv2d,
    upscore2: ConvTranspose2d,
    upscore_pool4: ConvTranspose2d,
    upscore8: ConvTranspose2d,
}

/// Offsets of FCN-8s's crops: where the upsampled coarse map lines up with the finer one.
const CROP_POOL4: i64 = 5;
const CROP_POOL3: i64 = 9;
const CROP_OUT: i64 = 31;

fn crop(x: &Tensor, offset: i64, h: i64, w: i64) -> Tensor {
    x.narrow(2, offset, h).narrow(3, offset, w)
}

impl Fcn8s {
    pub fn new(trunk: &Path, head: &Path, num_classes: i64) -> Self {
        let score = |name: &str, cin: i64| {
            Conv2d::square(
                &(head / name),
                cin,
                num_classes,
                1,
                ConvOpts::default().init(WeightInit::Zeros),
            )
        };
        let up = |name: &str, k: i64, s: i64| {
            ConvTranspose2d::new(
                &(head / name),
                num_classes,
                num_classes,
                k,
                s,
                0,
                TransposeInit::FrozenBilinear,
            )
        };
        Self {
            vgg: Vgg16Fcn::new(trunk),
            score_fr: score("score_fr", FC_DIM),
            score_pool3: score("score_pool3", 256),
            score_pool4: score("score_pool4", 512),
            upscore2: up("upscore2", 4, 2),
            upscore_pool4: up("upscore_pool4", 4, 2),
            upscore8: up("upscore8", 16, 8),
        }
    }

    /// (logits at input resolution, fc7 features). fc7 cell q is centred on input pixel
    /// 32·q + 12.5 (from conv1_1's padding of 100 through the poolings and the 7×7 fc6), so the
    /// feature grid is the input's stride-32 grid shifted by 3 pixels.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> (Tensor, Tensor) {
        let (h_in, w_in) = (x.size()[2], x.size()[3]);
        let v = self.vgg.forward_t(x, train);

        let upscore2 = self.upscore2.forward(&self.score_fr.forward(&v.fc7));
        let (h2, w2) = (upscore2.size()[2], upscore2.size()[3]);
        let score_pool4 = self.score_pool4.forward(&(&v.pool4 * 0.01));
        let fuse4 = upscore2 + crop(&score_pool4, CROP_POOL4, h2, w2);

        let upscore_pool4 = self.upscore_pool4.forward(&fuse4);
        let (h4, w4) = (upscore_pool4.size()[2], upscore_pool4.size()[3]);
        let score_pool3 = self.score_pool3.forward(&(&v.pool3 * 0.0001));
        let fuse3 = upscore_pool4 + crop(&score_pool3, CROP_POOL3, h4, w4);

        let logits = crop(&self.upscore8.forward(&fuse3), CROP_OUT, h_in, w_in).contiguous();
        (logits, v.fc7)
    }
}
