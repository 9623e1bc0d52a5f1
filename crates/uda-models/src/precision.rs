//! Mixed precision through libtorch's autocast, on the CPU as on CUDA.
//!
//! tch binds only the old CUDA-only switch (`at::autocast::set_enabled`); libtorch's per-device
//! functions (`at::autocast::set_autocast_enabled(DeviceType, bool)` and friends) are exported by
//! `libtorch_cpu.so` but not bound, so [`Autocast`] declares them here under their C++ symbol
//! names. Under autocast, convolutions and matrix products run in the reduced type, per
//! libtorch's own op lists, as `torch.autocast(device, dtype)` does in Python; the weights stay
//! fp32. libtorch's CPU lists do not send softmax or the losses to fp32, so the loss code casts
//! logits and features to fp32 itself (`uda_train::losses`, `uda_train::contrastive`).

use serde::{Deserialize, Serialize};
use tch::{Device, Kind};

/// The arithmetic of the forward pass (a param of every training and inference stage).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Precision {
    /// Everything in fp32.
    #[default]
    Fp32,
    /// Autocast to bfloat16: fp32's range, 8 bits of mantissa; needs no loss scaling.
    Bf16,
    /// Autocast to float16: more mantissa, little range; training needs loss scaling.
    Fp16,
}

impl Precision {
    /// The reduced type autocast casts to, `None` for fp32.
    pub fn reduced_kind(self) -> Option<Kind> {
        match self {
            Self::Fp32 => None,
            Self::Bf16 => Some(Kind::BFloat16),
            Self::Fp16 => Some(Kind::Half),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Fp32 => "fp32",
            Self::Bf16 => "bf16",
            Self::Fp16 => "fp16",
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

// `c10::DeviceType` and `c10::ScalarType` are `enum class : int8_t`; the values are fixed by
// c10's headers (DeviceType: CPU 0, CUDA 1; ScalarType: Half 5, BFloat16 15).
const DEVICE_CPU: i8 = 0;
const DEVICE_CUDA: i8 = 1;
const SCALAR_HALF: i8 = 5;
const SCALAR_BFLOAT16: i8 = 15;

#[allow(unsafe_code)]
// SAFETY (of the declarations): the signatures are libtorch 2.x's `at::autocast` functions,
// whose mangled names encode exactly these parameter types (DeviceType, bool / ScalarType).
unsafe extern "C" {
    #[link_name = "_ZN2at8autocast20set_autocast_enabledEN3c1010DeviceTypeEb"]
    fn at_set_autocast_enabled(device_type: i8, enabled: bool);
    #[link_name = "_ZN2at8autocast19is_autocast_enabledEN3c1010DeviceTypeE"]
    fn at_is_autocast_enabled(device_type: i8) -> bool;
    #[link_name = "_ZN2at8autocast18set_autocast_dtypeEN3c1010DeviceTypeENS1_10ScalarTypeE"]
    fn at_set_autocast_dtype(device_type: i8, dtype: i8);
    #[link_name = "_ZN2at8autocast18get_autocast_dtypeEN3c1010DeviceTypeE"]
    fn at_get_autocast_dtype(device_type: i8) -> i8;
    #[link_name = "_ZN2at8autocast17increment_nestingEv"]
    fn at_increment_nesting() -> i32;
    #[link_name = "_ZN2at8autocast17decrement_nestingEv"]
    fn at_decrement_nesting() -> i32;
    #[link_name = "_ZN2at8autocast11clear_cacheEv"]
    fn at_clear_cache();
}

/// Autocast switched on for one device while this value lives (libtorch's state is per thread,
/// so create it on the thread that runs the forward pass). On drop the previous state comes
/// back and, at the outermost level, the cache of cast weights is cleared, as Python's
/// `torch.autocast.__exit__` does (the weights change at every optimiser step).
#[derive(Debug)]
pub struct Autocast {
    device_type: i8,
    was_enabled: bool,
    was_dtype: i8,
}

impl Autocast {
    /// `None` for [`Precision::Fp32`] (nothing to switch) and for devices without autocast.
    pub fn enter(device: Device, precision: Precision) -> Option<Self> {
        let dtype = match precision {
            Precision::Fp32 => return None,
            Precision::Bf16 => SCALAR_BFLOAT16,
            Precision::Fp16 => SCALAR_HALF,
        };
        let device_type = match device {
            Device::Cpu => DEVICE_CPU,
            Device::Cuda(_) => DEVICE_CUDA,
            _ => return None,
        };
        #[allow(unsafe_code)]
        // SAFETY: plain C++ functions of libtorch_cpu (linked through tch) taking and returning
        // integers and bools; the enum values are the ones of c10's headers above. They touch
        // only libtorch's thread-local autocast state.
        let (was_enabled, was_dtype) = unsafe {
            let state = (
                at_is_autocast_enabled(device_type),
                at_get_autocast_dtype(device_type),
            );
            at_set_autocast_dtype(device_type, dtype);
            at_set_autocast_enabled(device_type, true);
            at_increment_nesting();
            state
        };
        Some(Self {
            device_type,
            was_enabled,
            was_dtype,
        })
    }

    /// Whether autocast is on for `device` on this thread (for tests and assertions).
    pub fn is_enabled(device: Device) -> bool {
        let device_type = match device {
            Device::Cpu => DEVICE_CPU,
            Device::Cuda(_) => DEVICE_CUDA,
            _ => return false,
        };
        #[allow(unsafe_code)]
        // SAFETY: as in `enter`.
        unsafe {
            at_is_autocast_enabled(device_type)
        }
    }
}

impl Drop for Autocast {
    fn drop(&mut self) {
        #[allow(unsafe_code)]
        // SAFETY: as in `enter`; restores the state read there.
        unsafe {
            if at_decrement_nesting() == 0 {
                at_clear_cache();
            }
            at_set_autocast_enabled(self.device_type, self.was_enabled);
            at_set_autocast_dtype(self.device_type, self.was_dtype);
        }
    }
}

/// Runs `f` with autocast off on the CPU and CUDA (each restored afterwards): for the parts that
/// must stay fp32 under autocast (loss terms, the contrastive similarity), which would otherwise
/// have their matrix products cast down again. Cast reduced-precision inputs with
/// `to_kind(Kind::Float)` inside.
pub fn in_fp32<T>(f: impl FnOnce() -> T) -> T {
    struct Restore([bool; 2]);
    impl Drop for Restore {
        fn drop(&mut self) {
            #[allow(unsafe_code)]
            // SAFETY: as in `Autocast::enter`.
            unsafe {
                at_set_autocast_enabled(DEVICE_CPU, self.0[0]);
                at_set_autocast_enabled(DEVICE_CUDA, self.0[1]);
            }
        }
    }
    #[allow(unsafe_code)]
    // SAFETY: as in `Autocast::enter`.
    let _restore = unsafe {
        let was = [
            at_is_autocast_enabled(DEVICE_CPU),
            at_is_autocast_enabled(DEVICE_CUDA),
        ];
        at_set_autocast_enabled(DEVICE_CPU, false);
        at_set_autocast_enabled(DEVICE_CUDA, false);
        Restore(was)
    };
    f()
}

/// Runs `f` under autocast at `precision` on `device` (plain `f()` for fp32).
pub fn with_precision<T>(device: Device, precision: Precision, f: impl FnOnce() -> T) -> T {
    let _guard = Autocast::enter(device, precision);
    f()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Tensor;

    #[test]
    fn autocast_runs_convolutions_in_the_reduced_type_and_restores_the_state() {
        let x = Tensor::randn([1, 3, 8, 8], (Kind::Float, Device::Cpu));
        let w = Tensor::randn([4, 3, 3, 3], (Kind::Float, Device::Cpu));
        let conv = |x: &Tensor| x.conv2d(&w, None::<Tensor>, [1, 1], [1, 1], [1, 1], 1);
        assert_eq!(conv(&x).kind(), Kind::Float);
        assert!(!Autocast::is_enabled(Device::Cpu));
        for (p, kind) in [
            (Precision::Bf16, Kind::BFloat16),
            (Precision::Fp16, Kind::Half),
        ] {
            let y = with_precision(Device::Cpu, p, || {
                assert!(Autocast::is_enabled(Device::Cpu));
                conv(&x)
            });
            assert_eq!(y.kind(), kind, "{p}");
            assert!(!Autocast::is_enabled(Device::Cpu), "{p} left autocast on");
            let exact = conv(&x);
            let err = (y.to_kind(Kind::Float) - &exact)
                .abs()
                .max()
                .double_value(&[]);
            let scale = exact.abs().max().double_value(&[]);
            assert!(err > 0.0 && err < 0.02 * scale, "{p}: {err} of {scale}");
        }
        let inside = with_precision(Device::Cpu, Precision::Bf16, || {
            let y = in_fp32(|| conv(&x));
            assert!(
                Autocast::is_enabled(Device::Cpu),
                "in_fp32 did not restore autocast"
            );
            y
        });
        assert_eq!(inside.kind(), Kind::Float);
        assert!(Autocast::enter(Device::Cpu, Precision::Fp32).is_none());
        let nested = Autocast::enter(Device::Cpu, Precision::Bf16);
        {
            let _inner = Autocast::enter(Device::Cpu, Precision::Bf16);
        }
        assert!(
            Autocast::is_enabled(Device::Cpu),
            "inner guard switched the outer off"
        );
        drop(nested);
        assert!(!Autocast::is_enabled(Device::Cpu));
    }
}
