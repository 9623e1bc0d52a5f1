//! The low-frequency window whose amplitudes are swapped.
//!
//! Both shapes are symmetric around the zero frequency: they cover the frequencies
//! `ky ∈ [-bh, bh]` (rows) × `kx ∈ [-bw, bw]` (columns), counted modulo the image size. That is
//! what the official numpy function does after `fftshift` (the centre index `floor(n/2)` of the
//! shifted axis holds frequency 0 for odd and even `n` alike), and it keeps the mutated spectrum
//! Hermitian, so the inverse transform is real and a half-spectrum (real-to-complex) path computes
//! it exactly.

use crate::FdaError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Which window the amplitude swap uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Window {
    /// The official FDA numpy function (`low_freq_mutate_np`): a square of side `2b+1` with
    /// `b = floor(min(H, W)·β)`. What the published FDA results were trained with.
    #[default]
    Square,
    /// The paper's eq. 1 mask `[-βH:βH, -βW:βW]`: `bh = floor(H·β)`, `bw = floor(W·β)`, a
    /// `(2bh+1)×(2bw+1)` rectangle (wider than tall for landscape images).
    Rect,
}

impl Window {
    pub const NAMES: &'static str = "square (official FDA numpy), rect (paper eq. 1)";

    /// The window's half-sizes for an image of `height × width` at `beta`, checking that `beta` is
    /// in (0, 1) and that the window fits inside the image.
    pub fn extent(self, height: usize, width: usize, beta: f64) -> Result<WindowExtent, FdaError> {
        check_beta(beta)?;
        if height == 0 || width == 0 {
            return Err(FdaError::EmptyImage { height, width });
        }
        let half = |n: usize| (n as f64 * beta).floor() as usize;
        let (half_height, half_width) = match self {
            Window::Square => {
                let b = half(height.min(width));
                (b, b)
            }
            Window::Rect => (half(height), half(width)),
        };
        let extent = WindowExtent {
            half_height,
            half_width,
        };
        if extent.rows() > height || extent.cols() > width {
            return Err(FdaError::WindowTooLarge {
                window: self,
                beta,
                height,
                width,
                extent,
            });
        }
        Ok(extent)
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Window::Square => "square",
            Window::Rect => "rect",
        })
    }
}

impl FromStr for Window {
    type Err = FdaError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "square" => Ok(Window::Square),
            "rect" | "rectangle" => Ok(Window::Rect),
            _ => Err(FdaError::UnknownWindow(s.to_string())),
        }
    }
}

/// Checks that β lies in the open interval (0, 1) (the paper's domain for it).
pub fn check_beta(beta: f64) -> Result<(), FdaError> {
    if beta.is_finite() && beta > 0.0 && beta < 1.0 {
        Ok(())
    } else {
        Err(FdaError::Beta(beta))
    }
}

/// Half-sizes of a window: frequencies `-half..=half` along each axis are swapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowExtent {
    pub half_height: usize,
    pub half_width: usize,
}

impl WindowExtent {
    /// Number of frequency rows in the window (`2bh+1`).
    pub fn rows(&self) -> usize {
        2 * self.half_height + 1
    }

    /// Number of frequency columns in the full window (`2bw+1`).
    pub fn cols(&self) -> usize {
        2 * self.half_width + 1
    }

    /// Columns kept in the half spectrum (`kx = 0..=bw`): the rest follow by conjugate symmetry.
    pub fn half_cols(&self) -> usize {
        self.half_width + 1
    }
}

impl fmt::Display for WindowExtent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}×{} frequencies", self.rows(), self.cols())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn square_matches_official_b() {
        // 1024×512 at β = 0.01: b = floor(512·0.01) = 5 (method notes).
        let e = Window::Square.extent(512, 1024, 0.01).unwrap();
        assert_eq!((e.half_height, e.half_width), (5, 5));
        let e = Window::Square.extent(512, 1024, 0.09).unwrap();
        assert_eq!((e.half_height, e.half_width), (46, 46));
    }

    #[test]
    fn rect_scales_each_axis() {
        let e = Window::Rect.extent(512, 1024, 0.09).unwrap();
        assert_eq!((e.half_height, e.half_width), (46, 92));
        assert_eq!((e.rows(), e.cols(), e.half_cols()), (93, 185, 93));
    }

    #[test]
    fn beta_outside_open_unit_interval_is_rejected() {
        for beta in [0.0, 1.0, -0.1, 1.5, f64::NAN, f64::INFINITY] {
            let err = Window::Square.extent(64, 64, beta).unwrap_err();
            assert!(matches!(err, FdaError::Beta(_)), "{beta}: {err}");
            assert!(err.to_string().contains("beta"), "{err}");
        }
    }

    #[test]
    fn window_larger_than_image_is_rejected() {
        // Even size: b = 32 gives 65 rows > 64.
        let err = Window::Square.extent(64, 64, 0.5).unwrap_err();
        assert!(matches!(err, FdaError::WindowTooLarge { .. }), "{err}");
        assert!(err.to_string().contains("window"), "{err}");
        // Odd size: b = 32 gives 65 rows = 65, which fits.
        assert!(Window::Square.extent(65, 65, 0.5).is_ok());
        // Rect: the wide axis overflows first only if it is the limiting one.
        assert!(Window::Rect.extent(10, 100, 0.49).is_ok());
        assert!(Window::Rect.extent(10, 100, 0.55).is_err());
    }

    #[test]
    fn parses_names() {
        assert_eq!("square".parse::<Window>().unwrap(), Window::Square);
        assert_eq!("Rect".parse::<Window>().unwrap(), Window::Rect);
        let err = "circle".parse::<Window>().unwrap_err().to_string();
        assert!(err.contains("circle") && err.contains("square"), "{err}");
    }
}
