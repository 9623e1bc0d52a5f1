//! Device selection, and the run-time remedy for a linker trap of tch 0.24.
//!
//! Nothing in a tch binary references a symbol of `libtorch_cuda.so`, so the linker's
//! `--as-needed` drops it and CUDA is then reported unavailable even on a GPU machine. Linking
//! it always would cost every process about a second and ~500 MB at start (measured on a
//! 2-core machine), which CPU-only stages and tests do not need. Instead, when `cuda` or `auto`
//! is asked for, [`device_from_spec`] loads `libtorch_cuda.so` with `RTLD_GLOBAL` before the
//! first CUDA query; its static initialisers register the CUDA backend with libtorch.
//!
//! Callers must let this happen before anything else asks libtorch about CUDA (libtorch caches
//! the first answer): call `device_from_spec` first, not `tch::Cuda::is_available`.

use std::path::PathBuf;
use std::sync::OnceLock;

use tch::{Cuda, Device};

use crate::error::ModelError;

const CUDA_LIB: &str = "libtorch_cuda.so";

static CUDA_LOAD: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// Where to look for `libtorch_cuda.so`: beside the `libtorch_cpu.so` this process already
/// mapped (the venv's torch here, the GPU machine's torch there), then the loader's own search
/// (LD_LIBRARY_PATH, the binary's rpath).
fn candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(maps) = std::fs::read_to_string("/proc/self/maps") {
        let cpu = maps
            .lines()
            .filter_map(|l| l.split_whitespace().nth(5))
            .find(|p| p.ends_with("/libtorch_cpu.so"));
        if let Some(dir) = cpu.and_then(|p| std::path::Path::new(p).parent()) {
            out.push(dir.join(CUDA_LIB));
        }
    }
    out.push(PathBuf::from(CUDA_LIB));
    out
}

/// Loads `libtorch_cuda.so` once per process (it stays loaded); the path it came from, or
/// why it could not be loaded.
fn load_cuda_runtime() -> &'static Result<PathBuf, String> {
    CUDA_LOAD.get_or_init(|| {
        let mut errors = Vec::new();
        for candidate in candidates() {
            if candidate.components().count() > 1 && !candidate.exists() {
                continue;
            }
            match open_global(&candidate) {
                Ok(()) => return Ok(candidate),
                Err(e) => errors.push(format!("{}: {e}", candidate.display())),
            }
        }
        Err(errors.join("; "))
    })
}

#[allow(unsafe_code)]
fn open_global(path: &std::path::Path) -> Result<(), String> {
    use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
    // SAFETY: loading runs the library's static initialisers. libtorch_cuda.so is the CUDA half
    // of the very libtorch this process already uses (same directory, same build); its
    // initialisers only register CUDA kernels and hooks with that libtorch. It is never
    // unloaded (the handle is leaked), so no symbol outlives its library.
    let lib =
        unsafe { Library::open(Some(path), RTLD_NOW | RTLD_GLOBAL) }.map_err(|e| e.to_string())?;
    std::mem::forget(lib);
    Ok(())
}

/// Whether this process has loaded libtorch's CUDA library (only `cuda`/`auto` specs do).
pub fn cuda_runtime_loaded() -> bool {
    matches!(CUDA_LOAD.get(), Some(Ok(_)))
}

/// What a device spec asks for, before any device is looked at.
enum Spec {
    Cpu,
    Auto,
    Cuda(usize),
}

fn parse_spec(spec: &str) -> Result<Spec, ModelError> {
    match spec {
        "cpu" => Ok(Spec::Cpu),
        "auto" => Ok(Spec::Auto),
        "cuda" => Ok(Spec::Cuda(0)),
        _ => match spec.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => Ok(Spec::Cuda(n)),
            _ => Err(ModelError::DeviceSpec(spec.to_owned())),
        },
    }
}

/// Checks that `spec` is written as [`device_from_spec`] reads it, without loading CUDA or
/// looking for devices: what a stage's param check can say before it runs.
pub fn check_device_spec(spec: &str) -> Result<(), ModelError> {
    parse_spec(spec.trim()).map(|_| ())
}

/// `cpu`, `cuda` (= `cuda:0`), `cuda:N`, or `auto` (the first GPU if CUDA works, else CPU).
pub fn device_from_spec(spec: &str) -> Result<Device, ModelError> {
    let spec = spec.trim();
    let ordinal = match parse_spec(spec)? {
        Spec::Cpu => return Ok(Device::Cpu),
        Spec::Auto => {
            return Ok(match cuda_ready() {
                Ok(()) => Device::Cuda(0),
                Err(_) => Device::Cpu,
            });
        }
        Spec::Cuda(n) => n,
    };
    cuda_ready().map_err(|reason| ModelError::CudaUnavailable {
        spec: spec.to_owned(),
        reason,
    })?;
    let count = Cuda::device_count();
    if ordinal as i64 >= count {
        return Err(ModelError::CudaUnavailable {
            spec: spec.to_owned(),
            reason: format!("only {count} CUDA device(s) visible"),
        });
    }
    Ok(Device::Cuda(ordinal))
}

fn cuda_ready() -> Result<(), String> {
    let loaded = load_cuda_runtime().clone();
    if Cuda::is_available() {
        return Ok(());
    }
    Err(match loaded {
        Ok(path) => format!(
            "{} is loaded but libtorch finds no usable GPU (no NVIDIA driver or device, or CUDA_VISIBLE_DEVICES hides it)",
            path.display()
        ),
        Err(e) => format!(
            "could not load {CUDA_LIB} ({e}); on a GPU machine point LD_LIBRARY_PATH at its torch/lib (see docs/gpu.md)"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_spec_loads_nothing() {
        assert_eq!(device_from_spec("cpu").unwrap(), Device::Cpu);
        assert_eq!(device_from_spec(" cpu ").unwrap(), Device::Cpu);
    }

    #[test]
    fn bad_specs_are_rejected_with_the_accepted_forms() {
        for bad in ["gpu", "cuda:", "cuda:x", "CPU", ""] {
            let e = device_from_spec(bad).unwrap_err().to_string();
            assert!(e.contains("cpu, cuda, cuda:N, auto"), "{bad}: {e}");
            assert!(check_device_spec(bad).is_err(), "{bad}");
        }
        // The check looks at the spelling only: no CUDA needed for cuda:7.
        for good in ["cpu", "auto", "cuda", "cuda:7", " cuda:0 "] {
            check_device_spec(good).unwrap();
        }
    }

    #[test]
    fn cuda_without_a_gpu_errors_and_auto_falls_back() {
        // `auto` first: it must be what loads the CUDA library, before any CUDA query.
        if device_from_spec("auto").unwrap() != Device::Cpu {
            return; // a GPU machine: nothing to check here
        }
        // The CUDA half of the venv's libtorch is found next to the CPU half and stays loaded.
        assert!(cuda_runtime_loaded(), "{:?}", CUDA_LOAD.get());
        let e = device_from_spec("cuda").unwrap_err().to_string();
        assert!(e.contains("CUDA is not usable"), "{e}");
        assert!(device_from_spec("cuda:3").is_err());
    }
}
