//! ENet (Paszke et al., 2016) in the structure and naming of the widely used PyTorch port
//! (davidtvs/PyTorch-ENet `models/enet.py`): PReLU in the encoder, ReLU in the decoder, no
//! biases, max-unpooling with the encoder's indices, PyTorch default initialisation (the
//! paper trains ENet from scratch).
//!
//! The reference builds one activation module per block and reuses it at every position of
//! that block, so a PReLU block has a single slope: PyTorch's `state_dict` lists it under
//! every position (`ext_conv1.2.weight`, ..., `out_prelu.weight`); here it exists once, as
//! `<block>.out_prelu.weight`, and the loader treats the other names as aliases of it.

use crate::BatchNormMode;
use tch::Tensor;
use tch::nn::Path;

use crate::layers::{Activation, BatchNorm2d, Conv2d, ConvOpts, ConvTranspose2d, TransposeInit};

/// Channels of the encoder output, used as the contrastive feature map (stride 8).
pub(crate) const FEATURE_DIM: i64 = 128;
const INTERNAL_RATIO: i64 = 4;

/// conv → BN → activation, named `<p>.0` / `<p>.1` like the reference's `nn.Sequential`.
#[derive(Debug)]
struct ConvBn {
    conv: Conv2d,
    bn: BatchNorm2d,
}

impl ConvBn {
    fn new(
        p: &Path,
        first: usize,
        cin: i64,
        cout: i64,
        kernel: [i64; 2],
        opts: ConvOpts,
        bn: BatchNormMode,
    ) -> Self {
        Self {
            conv: Conv2d::new(&(p / first), cin, cout, kernel, opts.no_bias()),
            bn: BatchNorm2d::new(&(p / (first + 1)), cout, bn),
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.bn.forward_t(&self.conv.forward(x), train)
    }
}

#[derive(Debug)]
struct InitialBlock {
    main_branch: Conv2d,
    batch_norm: BatchNorm2d,
    act: Activation,
}

impl InitialBlock {
    fn new(p: &Path, out: i64, relu: bool, bn: BatchNormMode) -> Self {
        Self {
            main_branch: Conv2d::square(
                &(p / "main_branch"),
                3,
                out - 3,
                3,
                ConvOpts::default().stride(2).padding(1).no_bias(),
            ),
            batch_norm: BatchNorm2d::new(&(p / "batch_norm"), out, bn),
            act: Activation::new(&(p / "out_prelu"), relu),
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let main = self.main_branch.forward(x);
        let ext = x.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        self.act.forward(
            &self
                .batch_norm
                .forward_t(&Tensor::cat(&[main, ext], 1), train),
        )
    }
}

/// Shape of a regular bottleneck's middle convolution.
#[derive(Debug, Clone, Copy)]
enum Middle {
    /// 3×3 with this dilation (1 = regular).
    Dilated(i64),
    /// 5×1 then 1×5.
    Asymmetric5,
}

#[derive(Debug)]
struct RegularBottleneck {
    ext_conv1: ConvBn,
    ext_conv2: Vec<ConvBn>,
    ext_conv3: ConvBn,
    dropout: f64,
    act: Activation,
}

impl RegularBottleneck {
    fn new(p: &Path, ch: i64, middle: Middle, dropout: f64, relu: bool, bn: BatchNormMode) -> Self {
        let internal = ch / INTERNAL_RATIO;
        let one = ConvOpts::default();
        let ext_conv2 = match middle {
            Middle::Dilated(d) => {
                vec![ConvBn::new(
                    &(p / "ext_conv2"),
                    0,
                    internal,
                    internal,
                    [3, 3],
                    one.padding(d).dilation(d),
                    bn,
                )]
            }
            Middle::Asymmetric5 => vec![
                ConvBn::new(
                    &(p / "ext_conv2"),
                    0,
                    internal,
                    internal,
                    [5, 1],
                    one.padding2(2, 0),
                    bn,
                ),
                ConvBn::new(
                    &(p / "ext_conv2"),
                    3,
                    internal,
                    internal,
                    [1, 5],
                    one.padding2(0, 2),
                    bn,
                ),
            ],
        };
        Self {
            ext_conv1: ConvBn::new(&(p / "ext_conv1"), 0, ch, internal, [1, 1], one, bn),
            ext_conv2,
            ext_conv3: ConvBn::new(&(p / "ext_conv3"), 0, internal, ch, [1, 1], one, bn),
            dropout,
            act: Activation::new(&(p / "out_prelu"), relu),
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut ext = self.act.forward(&self.ext_conv1.forward_t(x, train));
        for cb in &self.ext_conv2 {
            ext = self.act.forward(&cb.forward_t(&ext, train));
        }
        let ext = self.act.forward(&self.ext_conv3.forward_t(&ext, train));
        let ext = ext.feature_dropout(self.dropout, train);
        self.act.forward(&(x + ext))
    }
}

#[derive(Debug)]
struct DownsamplingBottleneck {
    ext_conv1: ConvBn,
    ext_conv2: ConvBn,
    ext_conv3: ConvBn,
    dropout: f64,
    act: Activation,
}

impl DownsamplingBottleneck {
    fn new(p: &Path, cin: i64, cout: i64, dropout: f64, relu: bool, bn: BatchNormMode) -> Self {
        let internal = cin / INTERNAL_RATIO;
        let one = ConvOpts::default();
        Self {
            ext_conv1: ConvBn::new(
                &(p / "ext_conv1"),
                0,
                cin,
                internal,
                [2, 2],
                one.stride(2),
                bn,
            ),
            ext_conv2: ConvBn::new(
                &(p / "ext_conv2"),
                0,
                internal,
                internal,
                [3, 3],
                one.padding(1),
                bn,
            ),
            ext_conv3: ConvBn::new(&(p / "ext_conv3"), 0, internal, cout, [1, 1], one, bn),
            dropout,
            act: Activation::new(&(p / "out_prelu"), relu),
        }
    }

    /// (output, max-pool indices for the matching upsampling block).
    fn forward_t(&self, x: &Tensor, train: bool) -> (Tensor, Tensor) {
        let (main, indices) = x.max_pool2d_with_indices([2, 2], [2, 2], [0, 0], [1, 1], false);
        let ext = self.act.forward(&self.ext_conv1.forward_t(x, train));
        let ext = self.act.forward(&self.ext_conv2.forward_t(&ext, train));
        let ext = self.act.forward(&self.ext_conv3.forward_t(&ext, train));
        let ext = ext.feature_dropout(self.dropout, train);
        let (n, c_ext, h, w) = ext.size4().expect("4-D activations");
        let pad = Tensor::zeros(
            [n, c_ext - main.size()[1], h, w],
            (main.kind(), main.device()),
        );
        let main = Tensor::cat(&[main, pad], 1);
        (self.act.forward(&(main + ext)), indices)
    }
}

#[derive(Debug)]
struct UpsamplingBottleneck {
    main_conv1: ConvBn,
    ext_conv1: ConvBn,
    ext_tconv1: ConvTranspose2d,
    ext_tconv1_bnorm: BatchNorm2d,
    ext_conv2: ConvBn,
    dropout: f64,
    act: Activation,
}

impl UpsamplingBottleneck {
    fn new(p: &Path, cin: i64, cout: i64, dropout: f64, relu: bool, bn: BatchNormMode) -> Self {
        let internal = cin / INTERNAL_RATIO;
        let one = ConvOpts::default();
        Self {
            main_conv1: ConvBn::new(&(p / "main_conv1"), 0, cin, cout, [1, 1], one, bn),
            ext_conv1: ConvBn::new(&(p / "ext_conv1"), 0, cin, internal, [1, 1], one, bn),
            ext_tconv1: ConvTranspose2d::new(
                &(p / "ext_tconv1"),
                internal,
                internal,
                2,
                2,
                0,
                TransposeInit::TorchDefault,
            ),
            ext_tconv1_bnorm: BatchNorm2d::new(&(p / "ext_tconv1_bnorm"), internal, bn),
            ext_conv2: ConvBn::new(&(p / "ext_conv2"), 0, internal, cout, [1, 1], one, bn),
            dropout,
            act: Activation::new(&(p / "out_prelu"), relu),
        }
    }

    fn forward_t(&self, x: &Tensor, indices: &Tensor, size: [i64; 2], train: bool) -> Tensor {
        let main = self
            .main_conv1
            .forward_t(x, train)
            .max_unpool2d(indices, size);
        let ext = self.act.forward(&self.ext_conv1.forward_t(x, train));
        let ext = self.ext_tconv1.forward_to(&ext, size);
        let ext = self
            .act
            .forward(&self.ext_tconv1_bnorm.forward_t(&ext, train));
        let ext = self.act.forward(&self.ext_conv2.forward_t(&ext, train));
        let ext = ext.feature_dropout(self.dropout, train);
        self.act.forward(&(main + ext))
    }
}

#[derive(Debug)]
pub(crate) struct ENet {
    initial_block: InitialBlock,
    downsample1_0: DownsamplingBottleneck,
    stage1: Vec<RegularBottleneck>,
    downsample2_0: DownsamplingBottleneck,
    /// Stage 2 (after its downsampling) and stage 3, which share one layout.
    stages23: Vec<RegularBottleneck>,
    upsample4_0: UpsamplingBottleneck,
    stage4: Vec<RegularBottleneck>,
    upsample5_0: UpsamplingBottleneck,
    regular5_1: RegularBottleneck,
    transposed_conv: ConvTranspose2d,
}

/// Blocks 1..=8 of stage 2 (stage 3 repeats them from 0 with the same middles).
const STAGE23_MIDDLES: [(&str, Middle); 8] = [
    ("regular", Middle::Dilated(1)),
    ("dilated", Middle::Dilated(2)),
    ("asymmetric", Middle::Asymmetric5),
    ("dilated", Middle::Dilated(4)),
    ("regular", Middle::Dilated(1)),
    ("dilated", Middle::Dilated(8)),
    ("asymmetric", Middle::Asymmetric5),
    ("dilated", Middle::Dilated(16)),
];

fn spatial(x: &Tensor) -> [i64; 2] {
    let s = x.size();
    [s[2], s[3]]
}

impl ENet {
    /// The encoder uses PReLU and the decoder ReLU, the reference's defaults.
    pub fn new(trunk: &Path, head: &Path, num_classes: i64, bn: BatchNormMode) -> Self {
        let (enc, dec) = (false, true);
        let regular = |name: String, ch: i64, middle: Middle, dropout: f64, relu: bool| {
            RegularBottleneck::new(&(trunk / name), ch, middle, dropout, relu, bn)
        };
        let stage1 = (1..=4)
            .map(|i| regular(format!("regular1_{i}"), 64, Middle::Dilated(1), 0.01, enc))
            .collect();
        let mut stages23 = Vec::with_capacity(16);
        for (stage, first) in [(2, 1), (3, 0)] {
            for (i, &(kind, middle)) in STAGE23_MIDDLES.iter().enumerate() {
                stages23.push(regular(
                    format!("{kind}{stage}_{}", i + first),
                    128,
                    middle,
                    0.1,
                    enc,
                ));
            }
        }
        let stage4 = (1..=2)
            .map(|i| regular(format!("regular4_{i}"), 64, Middle::Dilated(1), 0.1, dec))
            .collect();
        Self {
            initial_block: InitialBlock::new(&(trunk / "initial_block"), 16, enc, bn),
            downsample1_0: DownsamplingBottleneck::new(
                &(trunk / "downsample1_0"),
                16,
                64,
                0.01,
                enc,
                bn,
            ),
            stage1,
            downsample2_0: DownsamplingBottleneck::new(
                &(trunk / "downsample2_0"),
                64,
                128,
                0.1,
                enc,
                bn,
            ),
            stages23,
            upsample4_0: UpsamplingBottleneck::new(&(trunk / "upsample4_0"), 128, 64, 0.1, dec, bn),
            stage4,
            upsample5_0: UpsamplingBottleneck::new(&(trunk / "upsample5_0"), 64, 16, 0.1, dec, bn),
            regular5_1: regular("regular5_1".into(), 16, Middle::Dilated(1), 0.1, dec),
            transposed_conv: ConvTranspose2d::new(
                &(head / "transposed_conv"),
                16,
                num_classes,
                3,
                2,
                1,
                TransposeInit::TorchDefault,
            ),
        }
    }

    /// (logits at input resolution, encoder output at stride 8).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> (Tensor, Tensor) {
        let input_size = spatial(x);
        let x = self.initial_block.forward_t(x, train);
        let stage1_size = spatial(&x);
        let (mut x, idx1) = self.downsample1_0.forward_t(&x, train);
        for b in &self.stage1 {
            x = b.forward_t(&x, train);
        }
        let stage2_size = spatial(&x);
        let (mut x, idx2) = self.downsample2_0.forward_t(&x, train);
        for b in &self.stages23 {
            x = b.forward_t(&x, train);
        }
        let features = x.shallow_clone();
        let mut x = self.upsample4_0.forward_t(&x, &idx2, stage2_size, train);
        for b in &self.stage4 {
            x = b.forward_t(&x, train);
        }
        let x = self.upsample5_0.forward_t(&x, &idx1, stage1_size, train);
        let x = self.regular5_1.forward_t(&x, train);
        (self.transposed_conv.forward_to(&x, input_size), features)
    }
}

/// If `key` names one of the reference's repeated entries of a block's shared PReLU, the
/// canonical variable name (`<block>.out_prelu.weight`).
pub(crate) fn prelu_alias(key: &str) -> Option<String> {
    let block = key
        .strip_suffix(".ext_conv1.2.weight")
        .or_else(|| key.strip_suffix(".ext_conv2.2.weight"))
        .or_else(|| key.strip_suffix(".ext_conv2.5.weight"))
        .or_else(|| key.strip_suffix(".ext_conv3.2.weight"))
        .or_else(|| key.strip_suffix(".ext_tconv1_activation.weight"))?;
    Some(format!("{block}.out_prelu.weight"))
}
