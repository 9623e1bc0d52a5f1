//! Fourier domain adaptation (FDA, Yang & Soatto 2020; eq. 1 of the paper): an image keeps its
//! phase spectrum and takes the low-frequency amplitude spectrum of an image from the other
//! domain, which moves its global colour and illumination ("style") there without moving edges.
//!
//! The pipeline needs it both ways (source in target style for the cross-entropy loss, target in
//! source style for pseudo-labels and the contrastive pair), over tens of thousands of images, so
//! it is built to be exact *and* fast:
//!
//! * Exact: by default the window is the one of the official numpy function
//!   (`low_freq_mutate_np`: a `(2b+1)²` square centred on frequency 0, `b = floor(min(H,W)·β)`);
//!   the paper's rectangle `[−βH:βH, −βW:βW]` is [`Window::Rect`]. Amplitude and phase are
//!   recombined as numpy does (`|F|`, `atan2`, `amp·e^{iφ}`), in `f64`. The parity test
//!   (`tests/parity.rs`) runs the numpy formulation on the same inputs.
//! * Fast: the style enters only through its amplitude window ([`Amplitude`], computed once per
//!   style image), and the translated image equals `source + IFFT2(ΔF)` with `ΔF` non-zero only
//!   in the window, so only the window's columns need a column transform ([`spectral`] explains
//!   the pruned real FFT). Plans are made once per shape; rows and columns run in parallel with
//!   rayon; buffers are pooled.
//!
//! [`pairing`] assigns partners deterministically from a seed; [`translate_png`] is the one-image
//! tool behind `uda-pipe fda`.

pub mod baselines;
mod fda;
pub mod pairing;
mod png;
pub mod spectral;
mod window;

pub use fda::{Amplitude, Fda};
pub use pairing::{Pairing, balanced_partners};
pub use png::{translate_image, translate_png};
pub use spectral::{Pixel, Real};
pub use window::{Window, WindowExtent, check_beta};

use std::path::PathBuf;

/// Everything that can go wrong; each message names the parameter, image or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum FdaError {
    #[error(
        "beta = {0} is outside (0, 1): β is the window's half-size as a fraction of the image \
         (the paper uses 0.01, 0.05, 0.09)"
    )]
    Beta(f64),
    #[error("unknown window '{0}'; choose one of: {names}", names = Window::NAMES)]
    UnknownWindow(String),
    #[error("image of {height}×{width} pixels is empty")]
    EmptyImage { height: usize, width: usize },
    #[error(
        "{window} window at beta = {beta} spans {extent} but the image is only {height}×{width} \
         pixels (H×W); use a smaller beta"
    )]
    WindowTooLarge {
        window: Window,
        beta: f64,
        height: usize,
        width: usize,
        extent: WindowExtent,
    },
    #[error("{what}: expected {expected}, got {got}")]
    Shape {
        what: String,
        expected: String,
        got: String,
    },
    #[error(
        "image sizes differ: {source_name} is {source_width}×{source_height} (W×H) but \
         {target_name} is {target_width}×{target_height}; FDA swaps spectra of equally sized \
         images, so resize one to the other's size first"
    )]
    SizeMismatch {
        source_name: String,
        source_width: usize,
        source_height: usize,
        target_name: String,
        target_width: usize,
        target_height: usize,
    },
    #[error("cannot read image {path}: {source}")]
    ReadImage {
        path: PathBuf,
        source: image::ImageError,
    },
    #[error("cannot write image {path}: {source}")]
    WriteImage {
        path: PathBuf,
        source: image::ImageError,
    },
}
