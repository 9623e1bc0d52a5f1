//! ResNet-101 trunk in the form DeepLabV2 uses (FDA's `model/deeplab.py`, itself the Caffe
//! DeepLab port): output stride 8, with three differences from torchvision's `resnet101`:
//! - the stride of a downsampling bottleneck sits on its first 1×1 convolution, not the 3×3;
//! - the stem max-pool uses `ceil_mode=True`;
//! - layer3 and layer4 are dilated (2 and 4) in every block, the first one included.
//!
//! Parameter names and shapes equal torchvision's, so ImageNet weights in torchvision naming
//! load as they are (FDA and ADVENT load ImageNet/COCO weights into this same layout).

use crate::BatchNormMode;
use tch::Tensor;
use tch::nn::Path;

use crate::layers::{BatchNorm2d, Conv2d, ConvOpts, WeightInit};

/// FDA initialises every trunk convolution with N(0, 0.01) before loading pretrained weights.
const INIT: WeightInit = WeightInit::Normal(0.01);

#[derive(Debug)]
struct Bottleneck {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    bn2: BatchNorm2d,
    conv3: Conv2d,
    bn3: BatchNorm2d,
    downsample: Option<(Conv2d, BatchNorm2d)>,
}

impl Bottleneck {
    fn new(
        p: &Path,
        inplanes: i64,
        planes: i64,
        stride: i64,
        dilation: i64,
        downsample: bool,
        bn: BatchNormMode,
    ) -> Self {
        let opts = ConvOpts::default().no_bias().init(INIT);
        let downsample = downsample.then(|| {
            let d = p / "downsample";
            (
                Conv2d::square(&(&d / 0), inplanes, planes * 4, 1, opts.stride(stride)),
                BatchNorm2d::new(&(&d / 1), planes * 4, bn),
            )
        });
        Self {
            conv1: Conv2d::square(&(p / "conv1"), inplanes, planes, 1, opts.stride(stride)),
            bn1: BatchNorm2d::new(&(p / "bn1"), planes, bn),
            conv2: Conv2d::square(
                &(p / "conv2"),
                planes,
                planes,
                3,
                opts.padding(dilation).dilation(dilation),
            ),
            bn2: BatchNorm2d::new(&(p / "bn2"), planes, bn),
            conv3: Conv2d::square(&(p / "conv3"), planes, planes * 4, 1, opts),
            bn3: BatchNorm2d::new(&(p / "bn3"), planes * 4, bn),
            downsample,
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let out = self.bn1.forward_t(&self.conv1.forward(x), train).relu_();
        let out = self.bn2.forward_t(&self.conv2.forward(&out), train).relu_();
        let out = self.bn3.forward_t(&self.conv3.forward(&out), train);
        let residual = match &self.downsample {
            Some((conv, bn)) => bn.forward_t(&conv.forward(x), train),
            None => x.shallow_clone(),
        };
        (out + residual).relu_()
    }
}

/// The trunk up to layer4: (B, 3, H, W) → (B, 2048, ~H/8, ~W/8).
#[derive(Debug)]
pub(crate) struct ResNet101Trunk {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    layers: Vec<Vec<Bottleneck>>,
}

pub(crate) const FEATURE_DIM: i64 = 2048;

impl ResNet101Trunk {
    pub fn new(p: &Path, bn: BatchNormMode) -> Self {
        let conv1 = Conv2d::square(
            &(p / "conv1"),
            3,
            64,
            7,
            ConvOpts::default()
                .stride(2)
                .padding(3)
                .no_bias()
                .init(INIT),
        );
        let bn1 = BatchNorm2d::new(&(p / "bn1"), 64, bn);
        // (planes, blocks, stride, dilation) of layer1..layer4 for ResNet-101.
        let spec = [
            (64, 3, 1, 1),
            (128, 4, 2, 1),
            (256, 23, 1, 2),
            (512, 3, 1, 4),
        ];
        let mut inplanes = 64;
        let mut layers = Vec::with_capacity(spec.len());
        for (i, &(planes, blocks, stride, dilation)) in spec.iter().enumerate() {
            let lp = p / format!("layer{}", i + 1);
            let mut layer = Vec::with_capacity(blocks);
            for b in 0..blocks {
                let (s, ds) = if b == 0 {
                    // FDA's rule; true for every layer of ResNet-101.
                    (
                        stride,
                        stride != 1 || inplanes != planes * 4 || dilation == 2 || dilation == 4,
                    )
                } else {
                    (1, false)
                };
                layer.push(Bottleneck::new(
                    &(&lp / b),
                    inplanes,
                    planes,
                    s,
                    dilation,
                    ds,
                    bn,
                ));
                inplanes = planes * 4;
            }
            layers.push(layer);
        }
        Self { conv1, bn1, layers }
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut x = self.bn1.forward_t(&self.conv1.forward(x), train).relu_();
        x = x.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], true);
        for layer in &self.layers {
            for block in layer {
                x = block.forward_t(&x, train);
            }
        }
        x
    }
}
