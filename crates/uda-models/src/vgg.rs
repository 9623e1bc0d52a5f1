//! VGG16 as FCN uses it (FDA's `model/fcn8s.py`, after Long et al.): conv1_1 padded by 100 so
//! that any input size survives the five poolings and the 7×7 `fc6`, `ceil_mode` poolings, and
//! the classifier's fully connected layers recast as convolutions (`fc6` 7×7, `fc7` 1×1).
//! torchvision's `vgg16` weights map onto it one to one (see `naming.rs`).

use tch::Tensor;
use tch::nn::Path;

use crate::layers::{Conv2d, ConvOpts};

/// (name, in, out) of the 13 convolutions, grouped by pooling stage.
pub(crate) const CONVS: [&[(&str, i64, i64)]; 5] = [
    &[("conv1_1", 3, 64), ("conv1_2", 64, 64)],
    &[("conv2_1", 64, 128), ("conv2_2", 128, 128)],
    &[
        ("conv3_1", 128, 256),
        ("conv3_2", 256, 256),
        ("conv3_3", 256, 256),
    ],
    &[
        ("conv4_1", 256, 512),
        ("conv4_2", 512, 512),
        ("conv4_3", 512, 512),
    ],
    &[
        ("conv5_1", 512, 512),
        ("conv5_2", 512, 512),
        ("conv5_3", 512, 512),
    ],
];

pub(crate) const FC_DIM: i64 = 4096;
const DROPOUT: f64 = 0.5;

/// Outputs the FCN-8s head needs.
#[derive(Debug)]
pub(crate) struct VggOutputs {
    pub pool3: Tensor,
    pub pool4: Tensor,
    pub fc7: Tensor,
}

#[derive(Debug)]
pub(crate) struct Vgg16Fcn {
    stages: Vec<Vec<Conv2d>>,
    fc6: Conv2d,
    fc7: Conv2d,
}

impl Vgg16Fcn {
    pub fn new(p: &Path) -> Self {
        let stages = CONVS
            .iter()
            .map(|stage| {
                stage
                    .iter()
                    .map(|&(name, cin, cout)| {
                        let pad = if name == "conv1_1" { 100 } else { 1 };
                        Conv2d::square(&(p / name), cin, cout, 3, ConvOpts::default().padding(pad))
                    })
                    .collect()
            })
            .collect();
        Self {
            stages,
            fc6: Conv2d::square(&(p / "fc6"), 512, FC_DIM, 7, ConvOpts::default()),
            fc7: Conv2d::square(&(p / "fc7"), FC_DIM, FC_DIM, 1, ConvOpts::default()),
        }
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> VggOutputs {
        let mut h = x.shallow_clone();
        let mut pools = Vec::with_capacity(5);
        for stage in &self.stages {
            for conv in stage {
                h = conv.forward(&h).relu_();
            }
            h = h.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], true);
            pools.push(h.shallow_clone());
        }
        let h = self.fc6.forward(&h).relu_().feature_dropout(DROPOUT, train);
        let fc7 = self.fc7.forward(&h).relu_().feature_dropout(DROPOUT, train);
        let pool4 = pools.swap_remove(3);
        let pool3 = pools.swap_remove(2);
        VggOutputs { pool3, pool4, fc7 }
    }
}
