//! Image-level FDA: amplitude windows of style images, and translations of content images.

use crate::spectral::{Pixel, Plan, Real};
use crate::{FdaError, Window, WindowExtent};
use std::fmt;

/// Translates `height × width × channels` byte images (interleaved `HWC`, values 0..255) into the
/// style of others, for one β and window.
///
/// The style image enters only through its low-frequency amplitude ([`Fda::amplitude`]), computed
/// once and reused for every image translated into that style.
pub struct Fda<T: Real = f64> {
    plan: Plan<T>,
    height: usize,
    width: usize,
    channels: usize,
    beta: f64,
    window: Window,
    extent: WindowExtent,
}

impl<T: Real> fmt::Debug for Fda<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fda")
            .field("height", &self.height)
            .field("width", &self.width)
            .field("channels", &self.channels)
            .field("beta", &self.beta)
            .field("window", &self.window)
            .field("extent", &self.extent)
            .finish()
    }
}

/// The low-frequency amplitude `|F(style)|` inside the window, per channel: the only part of a
/// style image that a translation uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Amplitude<T = f64> {
    height: usize,
    width: usize,
    channels: usize,
    extent: WindowExtent,
    /// `[c][kx][r]`: channel, column `kx = 0..=bw`, row `r = ky + bh`.
    values: Vec<T>,
}

impl<T: Copy> Amplitude<T> {
    /// Values laid out `[channel][kx][ky + bh]` for `kx = 0..=bw`, `ky = -bh..=bh`.
    pub fn values(&self) -> &[T] {
        &self.values
    }

    pub fn extent(&self) -> WindowExtent {
        self.extent
    }

    /// Amplitude at frequency `(ky, kx)` (either sign; negative `kx` by conjugate symmetry).
    pub fn get(&self, channel: usize, ky: isize, kx: isize) -> Option<T> {
        let (bh, bw) = (
            self.extent.half_height as isize,
            self.extent.half_width as isize,
        );
        if channel >= self.channels || ky.abs() > bh || kx.abs() > bw {
            return None;
        }
        let (ky, kx) = if kx < 0 { (-ky, -kx) } else { (ky, kx) };
        let idx = (channel * self.extent.half_cols() + kx as usize) * self.extent.rows()
            + (ky + bh) as usize;
        Some(self.values[idx])
    }

    /// Bytes held (what a cache of amplitudes for many style images costs).
    pub fn size_bytes(&self) -> usize {
        self.values.len() * std::mem::size_of::<T>()
    }
}

impl<T: Real> Fda<T> {
    /// Plans the transforms for one image shape, β and window; fails with a message naming β or
    /// the window when they do not fit the image.
    pub fn new(
        height: usize,
        width: usize,
        channels: usize,
        beta: f64,
        window: Window,
    ) -> Result<Self, FdaError> {
        if channels == 0 {
            return Err(FdaError::Shape {
                what: "image channels".into(),
                expected: "at least 1".into(),
                got: "0".into(),
            });
        }
        let extent = window.extent(height, width, beta)?;
        Ok(Self {
            plan: Plan::new(height, width, channels, extent),
            height,
            width,
            channels,
            beta,
            window,
            extent,
        })
    }

    pub fn height(&self) -> usize {
        self.height
    }
    pub fn width(&self) -> usize {
        self.width
    }
    pub fn channels(&self) -> usize {
        self.channels
    }
    pub fn beta(&self) -> f64 {
        self.beta
    }
    pub fn window(&self) -> Window {
        self.window
    }
    pub fn extent(&self) -> WindowExtent {
        self.extent
    }

    /// Bytes in one image (`H·W·C`).
    pub fn image_len(&self) -> usize {
        self.height * self.width * self.channels
    }

    /// The style of `image`: its low-frequency amplitude window.
    pub fn amplitude(&self, image: &[u8]) -> Result<Amplitude<T>, FdaError> {
        self.check_image("style image", image.len())?;
        let values = self
            .plan
            .with_window(image, |work| work.window.iter().map(|z| z.norm()).collect());
        Ok(Amplitude {
            height: self.height,
            width: self.width,
            channels: self.channels,
            extent: self.extent,
            values,
        })
    }

    /// Translates `source` into the style `style`, writing bytes (rounded half to even, clipped
    /// to 0..255) into `out` (same length as `source`).
    pub fn translate(
        &self,
        source: &[u8],
        style: &Amplitude<T>,
        out: &mut [u8],
    ) -> Result<(), FdaError> {
        self.translate_into(source, style, out)
    }

    /// Like [`Fda::translate`] but writes the values before rounding and clipping (what the
    /// reference numpy function returns), e.g. for parity checks.
    pub fn translate_real(
        &self,
        source: &[u8],
        style: &Amplitude<T>,
        out: &mut [f64],
    ) -> Result<(), FdaError> {
        self.translate_into(source, style, out)
    }

    fn translate_into<O: Pixel>(
        &self,
        source: &[u8],
        style: &Amplitude<T>,
        out: &mut [O],
    ) -> Result<(), FdaError> {
        self.check_image("source image", source.len())?;
        self.check_image("output buffer", out.len())?;
        self.check_style(style)?;
        self.plan.with_window(source, |work| {
            // The reference recombines amp·exp(i·angle(F)); inside the window amp is the
            // style's, so the change is A_t·e^{iφ_s} − F_s (atan2/sin/cos keep numpy's handling
            // of F_s = 0, where the phase is 0 or ±π by the sign of zero).
            for (z, &a) in work.window.iter_mut().zip(&style.values) {
                let (sin, cos) = z.im.atan2(z.re).sin_cos();
                z.re = a * cos - z.re;
                z.im = a * sin - z.im;
            }
            self.plan.add_inverse(source, work, out);
        });
        Ok(())
    }

    fn check_image(&self, what: &str, len: usize) -> Result<(), FdaError> {
        if len == self.image_len() {
            return Ok(());
        }
        Err(FdaError::Shape {
            what: what.into(),
            expected: format!(
                "{} bytes ({}×{}×{} HWC)",
                self.image_len(),
                self.height,
                self.width,
                self.channels
            ),
            got: format!("{len} bytes"),
        })
    }

    fn check_style(&self, style: &Amplitude<T>) -> Result<(), FdaError> {
        let ours = (self.height, self.width, self.channels, self.extent);
        let theirs = (style.height, style.width, style.channels, style.extent);
        if ours == theirs && style.values.len() == self.plan.window_len() {
            return Ok(());
        }
        Err(FdaError::Shape {
            what: "style amplitude".into(),
            expected: format!(
                "{}×{}×{} image, {}",
                self.height, self.width, self.channels, self.extent
            ),
            got: format!(
                "{}×{}×{} image, {}",
                style.height, style.width, style.channels, style.extent
            ),
        })
    }
}

#[cfg(test)]
mod tests;
