//! Channels-last ("NHWC") memory layout for 4-D tensors, which oneDNN's CPU convolutions (and
//! cuDNN's tensor-core kernels) run faster in, above all in bf16. tch has no memory-format
//! argument, so the layout is made by strides: `permute` to NHWC, `contiguous`, `permute` back
//! gives a tensor of the same shape whose channels are innermost in memory (PyTorch's
//! `torch.channels_last`). Convolutions propagate the layout to their outputs.

use tch::Tensor;
use tch::nn::VarStore;

/// `t` (4-D) laid out channels-last; other ranks are returned as they are.
pub fn channels_last(t: &Tensor) -> Tensor {
    if t.dim() != 4 {
        return t.shallow_clone();
    }
    t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// Whether `t` is a 4-D tensor laid out channels-last: its NHWC view is contiguous. As in
/// PyTorch's `is_contiguous(memory_format=torch.channels_last)`, the strides of size-1 dims do
/// not count, so a 1×1 kernel or a one-channel tensor can be both layouts at once.
pub fn is_channels_last(t: &Tensor) -> bool {
    t.dim() == 4 && t.permute([0, 2, 3, 1]).is_contiguous()
}

/// Lays every 4-D variable of `vs` (the convolution weights) out channels-last, in place (the
/// variables stay the same tensors, as `model.to(memory_format=torch.channels_last)`). Weights
/// written by [`crate::save_safetensors`] are made contiguous first, so files do not change.
pub fn convert_to_channels_last(vs: &VarStore) {
    tch::no_grad(|| {
        for (_, mut t) in vs.variables() {
            if t.dim() == 4 {
                let cl = channels_last(&t);
                t.set_data(&cl);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn channels_last_keeps_values_and_shape_and_convolutions_agree() {
        let x = Tensor::randn([2, 3, 5, 7], (Kind::Float, Device::Cpu));
        let y = channels_last(&x);
        assert!(!is_channels_last(&x) && is_channels_last(&y));
        assert_eq!(x.size(), y.size());
        assert!(x.equal(&y));
        let vs = VarStore::new(Device::Cpu);
        let w = vs.root().randn("w", &[4, 3, 3, 3], 0.0, 1.0);
        let plain = x.conv2d(&w, None::<Tensor>, [1, 1], [1, 1], [1, 1], 1);
        convert_to_channels_last(&vs);
        let w2 = vs.variables()["w"].shallow_clone();
        assert!(is_channels_last(&w2));
        let fast = y.conv2d(&w2, None::<Tensor>, [1, 1], [1, 1], [1, 1], 1);
        assert!(is_channels_last(&fast), "the layout did not propagate");
        assert!(fast.allclose(&plain, 1e-5, 1e-5, false));
    }
}
