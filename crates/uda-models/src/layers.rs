//! Minimal layers on raw tensors. tch's `nn` layers fix their variable names and cannot express
//! what the reference networks need (non-square kernels with their own padding, transposed
//! convolutions whose output size is given at call time, BatchNorm in FDA's mode), so the networks are
//! written on these instead; every variable name equals the PyTorch `state_dict` key.

use crate::BatchNormMode;
use tch::Tensor;
use tch::nn::{Init, Path};

/// How a convolution's weight starts; the reference repositories differ per network.
#[derive(Debug, Clone, Copy)]
pub(crate) enum WeightInit {
    /// PyTorch's `reset_parameters`: kaiming-uniform with a = √5, i.e. U(±1/√fan_in).
    TorchDefault,
    /// N(0, std), as FDA's DeepLab initialises every convolution.
    Normal(f64),
    /// All zeros, as FCN's score layers.
    Zeros,
}

fn uniform_bound(fan_in: i64) -> f64 {
    1.0 / (fan_in.max(1) as f64).sqrt()
}

fn weight_var(p: &Path, dims: &[i64], fan_in: i64, init: WeightInit) -> Tensor {
    match init {
        WeightInit::TorchDefault => {
            let b = uniform_bound(fan_in);
            p.var("weight", dims, Init::Uniform { lo: -b, up: b })
        }
        WeightInit::Normal(stdev) => p.var("weight", dims, Init::Randn { mean: 0.0, stdev }),
        WeightInit::Zeros => p.var("weight", dims, Init::Const(0.0)),
    }
}

fn bias_var(p: &Path, n: i64, fan_in: i64, init: WeightInit) -> Tensor {
    match init {
        WeightInit::Zeros => p.var("bias", &[n], Init::Const(0.0)),
        // PyTorch keeps its default bias init even where the weight init is overridden.
        WeightInit::TorchDefault | WeightInit::Normal(_) => {
            let b = uniform_bound(fan_in);
            p.var("bias", &[n], Init::Uniform { lo: -b, up: b })
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct ConvOpts {
    pub stride: [i64; 2],
    pub padding: [i64; 2],
    pub dilation: [i64; 2],
    pub bias: bool,
    pub init: WeightInit,
}

impl Default for ConvOpts {
    fn default() -> Self {
        Self {
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            bias: true,
            init: WeightInit::TorchDefault,
        }
    }
}

impl ConvOpts {
    pub fn stride(mut self, s: i64) -> Self {
        self.stride = [s, s];
        self
    }
    pub fn padding(mut self, p: i64) -> Self {
        self.padding = [p, p];
        self
    }
    pub fn padding2(mut self, ph: i64, pw: i64) -> Self {
        self.padding = [ph, pw];
        self
    }
    pub fn dilation(mut self, d: i64) -> Self {
        self.dilation = [d, d];
        self
    }
    pub fn no_bias(mut self) -> Self {
        self.bias = false;
        self
    }
    pub fn init(mut self, init: WeightInit) -> Self {
        self.init = init;
        self
    }
}

#[derive(Debug)]
pub(crate) struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    opts: ConvOpts,
}

impl Conv2d {
    pub fn new(p: &Path, cin: i64, cout: i64, kernel: [i64; 2], opts: ConvOpts) -> Self {
        let fan_in = cin * kernel[0] * kernel[1];
        let weight = weight_var(p, &[cout, cin, kernel[0], kernel[1]], fan_in, opts.init);
        let bias = opts.bias.then(|| bias_var(p, cout, fan_in, opts.init));
        Self { weight, bias, opts }
    }

    pub fn square(p: &Path, cin: i64, cout: i64, k: i64, opts: ConvOpts) -> Self {
        Self::new(p, cin, cout, [k, k], opts)
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.conv2d(
            &self.weight,
            self.bias.as_ref(),
            self.opts.stride,
            self.opts.padding,
            self.opts.dilation,
            1,
        )
    }
}

/// A transposed convolution; `forward_to` picks the output padding that reaches a requested
/// size, as PyTorch's `ConvTranspose2d(x, output_size=...)` does.
#[derive(Debug)]
pub(crate) struct ConvTranspose2d {
    weight: Tensor,
    kernel: i64,
    stride: i64,
    padding: i64,
}

/// Initial weights of a transposed convolution.
#[derive(Debug, Clone, Copy)]
pub(crate) enum TransposeInit {
    /// Trainable, PyTorch's default (fan-in computed from dim 1, as PyTorch does).
    TorchDefault,
    /// Fixed bilinear upsampling kernel, channel to same channel, not trainable (FCN's upscore
    /// layers: FDA never hands them to the optimiser).
    FrozenBilinear,
}

impl ConvTranspose2d {
    pub fn new(
        p: &Path,
        cin: i64,
        cout: i64,
        kernel: i64,
        stride: i64,
        padding: i64,
        init: TransposeInit,
    ) -> Self {
        let dims = [cin, cout, kernel, kernel];
        let weight = match init {
            TransposeInit::TorchDefault => {
                weight_var(p, &dims, cout * kernel * kernel, WeightInit::TorchDefault)
            }
            TransposeInit::FrozenBilinear => {
                let mut w = p.zeros_no_train("weight", &dims);
                tch::no_grad(|| w.copy_(&bilinear_kernel(cin, cout, kernel).to_device(w.device())));
                w
            }
        };
        Self {
            weight,
            kernel,
            stride,
            padding,
        }
    }

    /// Output size without output padding.
    pub fn min_size(&self, input: i64) -> i64 {
        (input - 1) * self.stride - 2 * self.padding + self.kernel
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.forward_padded(x, [0, 0])
    }

    /// Output of spatial size `size` = (h, w); panics if that size is not reachable, which
    /// would be a bug in the network that asks for it.
    pub fn forward_to(&self, x: &Tensor, size: [i64; 2]) -> Tensor {
        let (h, w) = (x.size()[2], x.size()[3]);
        let pad = [size[0] - self.min_size(h), size[1] - self.min_size(w)];
        assert!(
            pad.iter().all(|&p| (0..self.stride.max(1)).contains(&p)),
            "transposed conv cannot reach {size:?} from {h}x{w}"
        );
        self.forward_padded(x, pad)
    }

    fn forward_padded(&self, x: &Tensor, output_padding: [i64; 2]) -> Tensor {
        x.conv_transpose2d(
            &self.weight,
            None::<Tensor>,
            [self.stride, self.stride],
            [self.padding, self.padding],
            output_padding,
            1,
            [1, 1],
        )
    }
}

/// The 2-D bilinear kernel of FCN's `get_upsampling_weight`: channel i maps to channel i only.
pub(crate) fn bilinear_kernel(cin: i64, cout: i64, k: i64) -> Tensor {
    let factor = (k + 1) / 2;
    let center = if k % 2 == 1 {
        (factor - 1) as f64
    } else {
        factor as f64 - 0.5
    };
    let mut filt = Vec::with_capacity((k * k) as usize);
    for i in 0..k {
        for j in 0..k {
            let a = 1.0 - (i as f64 - center).abs() / factor as f64;
            let b = 1.0 - (j as f64 - center).abs() / factor as f64;
            filt.push((a * b) as f32);
        }
    }
    let filt = Tensor::from_slice(&filt).reshape([k, k]);
    let w = Tensor::zeros([cin, cout, k, k], (tch::Kind::Float, tch::Device::Cpu));
    for c in 0..cin.min(cout) {
        w.get(c).get(c).copy_(&filt);
    }
    w
}

/// BatchNorm2d with PyTorch's defaults (eps 1e-5, momentum 0.1), in one of the three
/// [`BatchNormMode`]s the training stages offer.
#[derive(Debug)]
pub(crate) struct BatchNorm2d {
    weight: Tensor,
    bias: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
    mode: BatchNormMode,
}

impl BatchNorm2d {
    pub fn new(p: &Path, n: i64, mode: BatchNormMode) -> Self {
        let (weight, bias) = if mode.trains_affine() {
            (p.ones("weight", &[n]), p.zeros("bias", &[n]))
        } else {
            (
                p.ones_no_train("weight", &[n]),
                p.zeros_no_train("bias", &[n]),
            )
        };
        let running_mean = p.zeros_no_train("running_mean", &[n]);
        let running_var = p.ones_no_train("running_var", &[n]);
        Self {
            weight,
            bias,
            running_mean,
            running_var,
            mode,
        }
    }

    /// `train`: the network is in training mode (PyTorch's `model.train()`); whether that
    /// means batch statistics depends on the mode.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        x.batch_norm(
            Some(&self.weight),
            Some(&self.bias),
            Some(&self.running_mean),
            Some(&self.running_var),
            train && self.mode.uses_batch_statistics(),
            0.1,
            1e-5,
            true,
        )
    }
}

/// PReLU with one shared slope (PyTorch's `nn.PReLU()` default, initial 0.25).
#[derive(Debug)]
pub(crate) struct PRelu {
    weight: Tensor,
}

impl PRelu {
    pub fn new(p: &Path) -> Self {
        Self {
            weight: p.var("weight", &[1], Init::Const(0.25)),
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.prelu(&self.weight)
    }
}

/// ReLU or PReLU, as ENet's blocks choose per stage.
#[derive(Debug)]
pub(crate) enum Activation {
    Relu,
    PRelu(PRelu),
}

impl Activation {
    pub fn new(p: &Path, relu: bool) -> Self {
        if relu {
            Activation::Relu
        } else {
            Activation::PRelu(PRelu::new(p))
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        match self {
            Activation::Relu => x.relu(),
            Activation::PRelu(p) => p.forward(x),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::VarStore;
    use tch::{Device, Kind};

    #[test]
    fn bilinear_kernel_matches_fcn_surgery() {
        // get_upsampling_weight(1, 1, 4) from FCN's surgery.py: outer product of [.25 .75 .75 .25].
        let w = bilinear_kernel(2, 2, 4);
        let v = [0.25f32, 0.75, 0.75, 0.25];
        for i in 0..4 {
            for j in 0..4 {
                let got = w.double_value(&[1, 1, i, j]);
                assert!((got - (v[i as usize] * v[j as usize]) as f64).abs() < 1e-6);
            }
        }
        assert_eq!(
            w.get(0).get(1).abs().sum(Kind::Float).double_value(&[]),
            0.0
        );
    }

    #[test]
    fn transposed_conv_reaches_requested_sizes() {
        let vs = VarStore::new(Device::Cpu);
        let t = ConvTranspose2d::new(&vs.root(), 2, 3, 2, 2, 0, TransposeInit::TorchDefault);
        let x = Tensor::zeros([1, 2, 16, 17], (Kind::Float, Device::Cpu));
        assert_eq!(t.forward_to(&x, [33, 34]).size(), [1, 3, 33, 34]);
        assert_eq!(t.forward(&x).size(), [1, 3, 32, 34]);
    }

    #[test]
    fn frozen_batchnorm_ignores_train_flag_and_has_no_trainable_params() {
        let vs = VarStore::new(Device::Cpu);
        let bn = BatchNorm2d::new(&vs.root(), 4, BatchNormMode::Frozen);
        let x = Tensor::randn([2, 4, 3, 3], (Kind::Float, Device::Cpu)) * 3.0 + 1.0;
        let eval = bn.forward_t(&x, false);
        let train = bn.forward_t(&x, true);
        assert!(eval.allclose(&train, 0.0, 0.0, false));
        assert!(vs.trainable_variables().is_empty());
        // Running statistics stay as loaded.
        assert_eq!(
            bn.running_mean.abs().sum(Kind::Float).double_value(&[]),
            0.0
        );

        let vs2 = VarStore::new(Device::Cpu);
        let live = BatchNorm2d::new(&vs2.root(), 4, BatchNormMode::Train);
        let _ = live.forward_t(&x, true);
        assert!(live.running_mean.abs().sum(Kind::Float).double_value(&[]) > 0.0);
        assert_eq!(vs2.trainable_variables().len(), 2);
    }

    /// FDA's `model.train()` with `requires_grad = False` on the affine parameters, written
    /// with PyTorch's functional batch norm: batch statistics in the forward pass, running
    /// statistics moved by momentum 0.1 with the unbiased batch variance, no trainable tensor.
    #[test]
    fn fda_batchnorm_normalises_with_batch_statistics_and_updates_running_ones() {
        let vs = VarStore::new(Device::Cpu);
        let bn = BatchNorm2d::new(&vs.root(), 4, BatchNormMode::Fda);
        assert!(vs.trainable_variables().is_empty());
        let x = Tensor::randn([1, 4, 5, 6], (Kind::Float, Device::Cpu)) * 3.0 + 1.0;
        let y = bn.forward_t(&x, true);
        let mean = x.mean_dim([0i64, 2, 3].as_slice(), true, Kind::Float);
        let var_biased = x.var_dim([0i64, 2, 3].as_slice(), false, true);
        let want = (&x - &mean) / (var_biased + 1e-5).sqrt();
        assert!(y.allclose(&want, 1e-4, 1e-4, false));
        let var_unbiased = x.var_dim([0i64, 2, 3].as_slice(), true, false);
        let want_mean = mean.flatten(0, -1) * 0.1;
        let want_var = var_unbiased * 0.1 + 0.9;
        assert!(bn.running_mean.allclose(&want_mean, 1e-5, 1e-5, false));
        assert!(bn.running_var.allclose(&want_var, 1e-5, 1e-5, false));
        // Evaluation uses the running statistics, as PyTorch's `model.eval()`.
        let e = bn.forward_t(&x, false);
        let want_e =
            (&x - want_mean.reshape([1, 4, 1, 1])) / (want_var.reshape([1, 4, 1, 1]) + 1e-5).sqrt();
        assert!(e.allclose(&want_e, 1e-4, 1e-4, false));
    }
}
