//! DeepLabV2: the dilated ResNet-101 trunk plus FDA's `Classifier_Module` (ASPP as a sum of four
//! 3×3 convolutions with dilation = padding = 6, 12, 18, 24), under FDA's names (`layer5.*`).

use crate::BatchNormMode;
use tch::Tensor;
use tch::nn::Path;

use crate::layers::{Conv2d, ConvOpts, WeightInit};
use crate::resnet::{FEATURE_DIM, ResNet101Trunk};

pub(crate) const ASPP_DILATIONS: [i64; 4] = [6, 12, 18, 24];

#[derive(Debug)]
pub(crate) struct DeepLabV2 {
    trunk: ResNet101Trunk,
    aspp: Vec<Conv2d>,
}

impl DeepLabV2 {
    /// `trunk` and `head` are the same root with different optimiser groups.
    pub fn new(trunk: &Path, head: &Path, num_classes: i64, bn: BatchNormMode) -> Self {
        let list = head / "layer5" / "conv2d_list";
        let aspp = ASPP_DILATIONS
            .iter()
            .enumerate()
            .map(|(i, &d)| {
                let opts = ConvOpts::default()
                    .padding(d)
                    .dilation(d)
                    .init(WeightInit::Normal(0.01));
                Conv2d::square(&(&list / i), FEATURE_DIM, num_classes, 3, opts)
            })
            .collect();
        Self {
            trunk: ResNet101Trunk::new(trunk, bn),
            aspp,
        }
    }

    /// (logits at stride 8, layer4 features).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> (Tensor, Tensor) {
        let features = self.trunk.forward_t(x, train);
        let mut logits = self.aspp[0].forward(&features);
        for conv in &self.aspp[1..] {
            logits += conv.forward(&features);
        }
        (logits, features)
    }
}
