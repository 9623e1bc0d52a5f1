//! The transform itself: a pruned 2-D real FFT that computes only the window's frequencies, and
//! its inverse applied to the change of spectrum.
//!
//! Why pruned: the swap changes only the `(2bh+1)×(bw+1)` window of the half spectrum, so the
//! translated image is `source + IFFT2(ΔX)` with `ΔX` zero outside the window (exactly, not as an
//! approximation). A 2-D transform is a row pass and a column pass; the rows must all be
//! transformed (every row contributes to every frequency), but only the `bw+1` columns inside the
//! window need the column pass, in both directions. A translation therefore costs one real FFT
//! and one inverse real FFT per image row and channel, plus `2(bw+1)` column FFTs per channel —
//! about half of a full forward + inverse 2-D transform pair, and no full-size spectrum is stored.
//!
//! Data layout: images are interleaved `HWC` bytes. The row pass writes, per row, the first
//! `K = bw+1` coefficients of each channel (`rowcoef[y][c][kx]`) so rows run in parallel over
//! disjoint chunks; the column pass gathers a column `(c, kx)` from it, and writes the window as
//! `window[c][kx][r]` with `r = ky + bh`. The inverse column pass runs in place on
//! `columns[c][kx][y]` and the inverse row pass reads from it and writes whole output rows.
//! Every buffer is per plan and reused: rows/columns/image workspaces come from small pools, so a
//! steady stream of translations allocates nothing.

use crate::WindowExtent;
use rayon::prelude::*;
use realfft::num_complex::Complex;
use realfft::num_traits::{Float, ToPrimitive, Zero};
use realfft::{ComplexToReal, FftNum, RealFftPlanner, RealToComplex};
use rustfft::{Fft, FftPlanner};
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

/// The floating-point types the transform runs in (`f64` by default; `f32` for benchmarks).
pub trait Real: FftNum + Float + ToPrimitive {
    fn from_byte(byte: u8) -> Self;
    /// Clipped to 0..255 and rounded half to even (as `np.rint`), as a byte.
    fn to_byte(self) -> u8;
}

// Adding 1.5·2^(mantissa bits) to a value in 0..=255 rounds it half to even (the default
// rounding mode) and leaves the integer in the low mantissa bits: `round_ties_even` plus a
// float→int conversion without the libm call per pixel that `round_ties_even` compiles to on
// the baseline x86-64 target (no SSE4.1), nor the saturating-cast checks (together they were a
// third of a translation).
impl Real for f32 {
    #[inline]
    fn from_byte(byte: u8) -> Self {
        f32::from(byte)
    }
    #[inline]
    fn to_byte(self) -> u8 {
        const MAGIC: f32 = 12_582_912.0;
        (self.clamp(0.0, 255.0) + MAGIC).to_bits() as u8
    }
}

impl Real for f64 {
    #[inline]
    fn from_byte(byte: u8) -> Self {
        f64::from(byte)
    }
    #[inline]
    fn to_byte(self) -> u8 {
        const MAGIC: f64 = 6_755_399_441_055_744.0;
        (self.clamp(0.0, 255.0) + MAGIC).to_bits() as u8
    }
}

/// What a translated pixel is written as: bytes (rounded half to even, like `np.rint`, then
/// clipped to 0..255) or the unrounded value (for parity checks and further float processing).
pub trait Pixel: Copy + Send + Sync {
    fn from_value<T: Real>(value: T) -> Self;
}

impl Pixel for u8 {
    #[inline]
    fn from_value<T: Real>(value: T) -> Self {
        value.to_byte()
    }
}

impl Pixel for f64 {
    #[inline]
    fn from_value<T: Real>(value: T) -> Self {
        value.to_f64().unwrap_or(f64::NAN)
    }
}

impl Pixel for f32 {
    #[inline]
    fn from_value<T: Real>(value: T) -> Self {
        value.to_f32().unwrap_or(f32::NAN)
    }
}

/// Splits one interleaved row of `N`-channel bytes into `N` planar float rows (`planes` holds
/// `N × width` values). `N` is a constant so the per-pixel loop has no stride arithmetic.
#[inline]
fn deinterleave<T: Real, const N: usize>(pixels: &[u8], planes: &mut [T]) {
    let width = pixels.len() / N;
    let (planes, _) = planes.split_at_mut(N * width);
    let rows: [&mut [T]; N] = {
        let mut rest = planes;
        std::array::from_fn(|_| {
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(width);
            rest = tail;
            head
        })
    };
    for (x, px) in pixels.chunks_exact(N).enumerate() {
        for c in 0..N {
            rows[c][x] = T::from_byte(px[c]);
        }
    }
}

/// `out = pixels + scale · planes`, interleaved again (the inverse of [`deinterleave`]).
#[inline]
fn interleave_add<T: Real, O: Pixel, const N: usize>(
    pixels: &[u8],
    planes: &[T],
    scale: T,
    out: &mut [O],
) {
    let width = pixels.len() / N;
    let rows: [&[T]; N] = std::array::from_fn(|c| &planes[c * width..(c + 1) * width]);
    for (x, (o, px)) in out
        .chunks_exact_mut(N)
        .zip(pixels.chunks_exact(N))
        .enumerate()
    {
        for c in 0..N {
            o[c] = O::from_value(T::from_byte(px[c]) + rows[c][x] * scale);
        }
    }
}

/// Runtime channel count → the constant-`N` loops above (RGB and grey specialised).
fn deinterleave_any<T: Real>(channels: usize, pixels: &[u8], planes: &mut [T]) {
    match channels {
        3 => deinterleave::<T, 3>(pixels, planes),
        1 => deinterleave::<T, 1>(pixels, planes),
        n => {
            let width = pixels.len() / n;
            for (x, px) in pixels.chunks_exact(n).enumerate() {
                for (c, &v) in px.iter().enumerate() {
                    planes[c * width + x] = T::from_byte(v);
                }
            }
        }
    }
}

fn interleave_add_any<T: Real, O: Pixel>(
    channels: usize,
    pixels: &[u8],
    planes: &[T],
    scale: T,
    out: &mut [O],
) {
    match channels {
        3 => interleave_add::<T, O, 3>(pixels, planes, scale, out),
        1 => interleave_add::<T, O, 1>(pixels, planes, scale, out),
        n => {
            let width = pixels.len() / n;
            for (x, (o, px)) in out
                .chunks_exact_mut(n)
                .zip(pixels.chunks_exact(n))
                .enumerate()
            {
                for c in 0..n {
                    o[c] = O::from_value(T::from_byte(px[c]) + planes[c * width + x] * scale);
                }
            }
        }
    }
}

/// Rows handed to one rayon task: keeps task overhead small next to ~µs row FFTs.
const ROWS_PER_TASK: usize = 8;

/// Per-thread row buffers: `planes` holds one row of every channel (`channels × width`).
struct RowScratch<T> {
    planes: Vec<T>,
    spectrum: Vec<Complex<T>>,
    fft: Vec<Complex<T>>,
}

struct ColScratch<T> {
    column: Vec<Complex<T>>,
    fft: Vec<Complex<T>>,
}

/// Per-image intermediate buffers (a few hundred KB at 1024×512, β = 0.01).
pub(crate) struct ImageWork<T> {
    rowcoef: Vec<Complex<T>>,
    pub(crate) window: Vec<Complex<T>>,
    columns: Vec<Complex<T>>,
}

/// A free list of reusable buffers; the guard puts its buffer back when dropped.
struct Pool<S> {
    free: Mutex<Vec<S>>,
    make: Box<dyn Fn() -> S + Send + Sync>,
}

impl<S> Pool<S> {
    fn new(make: impl Fn() -> S + Send + Sync + 'static) -> Self {
        Self {
            free: Mutex::new(Vec::new()),
            make: Box::new(make),
        }
    }

    fn take(&self) -> Pooled<'_, S> {
        let item = self
            .free
            .lock()
            .map(|mut f| f.pop())
            .unwrap_or(None)
            .unwrap_or_else(|| (self.make)());
        Pooled {
            pool: self,
            item: Some(item),
        }
    }
}

struct Pooled<'a, S> {
    pool: &'a Pool<S>,
    item: Option<S>,
}

impl<S> Deref for Pooled<'_, S> {
    type Target = S;
    fn deref(&self) -> &S {
        self.item.as_ref().expect("pooled item present until drop")
    }
}

impl<S> DerefMut for Pooled<'_, S> {
    fn deref_mut(&mut self) -> &mut S {
        self.item.as_mut().expect("pooled item present until drop")
    }
}

impl<S> Drop for Pooled<'_, S> {
    fn drop(&mut self) {
        if let (Some(item), Ok(mut free)) = (self.item.take(), self.pool.free.lock()) {
            free.push(item);
        }
    }
}

/// FFT plans for one image shape and window, planned once and shared by all threads.
pub(crate) struct Plan<T: Real> {
    height: usize,
    width: usize,
    channels: usize,
    extent: WindowExtent,
    r2c: Arc<dyn RealToComplex<T>>,
    c2r: Arc<dyn ComplexToReal<T>>,
    col_fwd: Arc<dyn Fft<T>>,
    col_inv: Arc<dyn Fft<T>>,
    /// `1/(H·W)`: rustfft/realfft inverses are unnormalised.
    scale: T,
    rows: Pool<RowScratch<T>>,
    cols: Pool<ColScratch<T>>,
    images: Pool<ImageWork<T>>,
}

impl<T: Real> Plan<T> {
    pub(crate) fn new(height: usize, width: usize, channels: usize, extent: WindowExtent) -> Self {
        let mut real_planner = RealFftPlanner::<T>::new();
        let r2c = real_planner.plan_fft_forward(width);
        let c2r = real_planner.plan_fft_inverse(width);
        let mut planner = FftPlanner::<T>::new();
        let col_fwd = planner.plan_fft_forward(height);
        let col_inv = planner.plan_fft_inverse(height);
        let scale = T::one() / T::from_usize(height * width).expect("pixel count fits a float");

        let (rf, ri) = (Arc::clone(&r2c), Arc::clone(&c2r));
        let rows = Pool::new(move || {
            let fft_len = rf.get_scratch_len().max(ri.get_scratch_len());
            RowScratch {
                planes: vec![T::zero(); channels * width],
                spectrum: rf.make_output_vec(),
                fft: vec![Complex::zero(); fft_len],
            }
        });
        let (cf, ci) = (Arc::clone(&col_fwd), Arc::clone(&col_inv));
        let cols = Pool::new(move || ColScratch {
            column: vec![Complex::zero(); height],
            fft: vec![
                Complex::zero();
                cf.get_inplace_scratch_len()
                    .max(ci.get_inplace_scratch_len())
            ],
        });
        let k = extent.half_cols();
        let images = Pool::new(move || ImageWork {
            rowcoef: vec![Complex::zero(); height * channels * k],
            window: vec![Complex::zero(); channels * k * extent.rows()],
            columns: vec![Complex::zero(); channels * k * height],
        });
        Self {
            height,
            width,
            channels,
            extent,
            r2c,
            c2r,
            col_fwd,
            col_inv,
            scale,
            rows,
            cols,
            images,
        }
    }

    /// Length of a window buffer: `channels × (bw+1) × (2bh+1)`, laid out `[c][kx][r]`.
    pub(crate) fn window_len(&self) -> usize {
        self.channels * self.extent.half_cols() * self.extent.rows()
    }

    /// Index along a column of length H holding frequency `ky = r - bh`.
    #[inline]
    fn row_index(&self, r: usize) -> usize {
        let bh = self.extent.half_height;
        if r >= bh {
            r - bh
        } else {
            self.height + r - bh
        }
    }

    /// Runs `f` with a workspace whose `window` holds the image's low-frequency spectrum.
    pub(crate) fn with_window<R>(&self, image: &[u8], f: impl FnOnce(&mut ImageWork<T>) -> R) -> R {
        let mut work = self.images.take();
        self.forward_window(image, &mut work);
        f(&mut work)
    }

    fn forward_window(&self, image: &[u8], work: &mut ImageWork<T>) {
        let (w, c_n, k) = (self.width, self.channels, self.extent.half_cols());
        let ImageWork {
            rowcoef, window, ..
        } = work;
        rowcoef
            .par_chunks_mut(c_n * k)
            .enumerate()
            .with_min_len(ROWS_PER_TASK)
            .for_each_init(
                || self.rows.take(),
                |s, (y, coef_row)| {
                    let RowScratch {
                        planes,
                        spectrum,
                        fft,
                    } = &mut **s;
                    deinterleave_any(c_n, &image[y * w * c_n..(y + 1) * w * c_n], planes);
                    for (c, input) in planes.chunks_exact_mut(w).enumerate() {
                        self.r2c
                            .process_with_scratch(input, spectrum, fft)
                            .expect("row buffers sized by the plan");
                        coef_row[c * k..(c + 1) * k].copy_from_slice(&spectrum[..k]);
                    }
                },
            );
        let rowcoef = &*rowcoef;
        let rows = self.extent.rows();
        window.par_chunks_mut(rows).enumerate().for_each_init(
            || self.cols.take(),
            |s, (ck, win)| {
                let (c, kx) = (ck / k, ck % k);
                let ColScratch { column, fft } = &mut **s;
                for (y, v) in column.iter_mut().enumerate() {
                    *v = rowcoef[(y * c_n + c) * k + kx];
                }
                self.col_fwd.process_with_scratch(column, fft);
                for (r, v) in win.iter_mut().enumerate() {
                    *v = column[self.row_index(r)];
                }
            },
        );
    }

    /// Writes `out = image + IFFT2(delta)` where `delta` is the workspace's window (the change
    /// of spectrum, zero elsewhere), converting each value with [`Pixel::from_value`].
    pub(crate) fn add_inverse<O: Pixel>(
        &self,
        image: &[u8],
        work: &mut ImageWork<T>,
        out: &mut [O],
    ) {
        let (h, w, c_n, k, rows) = (
            self.height,
            self.width,
            self.channels,
            self.extent.half_cols(),
            self.extent.rows(),
        );
        let ImageWork {
            window, columns, ..
        } = work;
        let window = &*window;
        columns.par_chunks_mut(h).enumerate().for_each_init(
            || self.cols.take(),
            |s, (ck, column)| {
                column.fill(Complex::zero());
                for (r, v) in window[ck * rows..(ck + 1) * rows].iter().enumerate() {
                    column[self.row_index(r)] = *v;
                }
                self.col_inv.process_with_scratch(column, &mut s.fft);
            },
        );
        let columns = &*columns;
        out.par_chunks_mut(w * c_n)
            .enumerate()
            .with_min_len(ROWS_PER_TASK)
            .for_each_init(
                || self.rows.take(),
                |s, (y, out_row)| {
                    let RowScratch {
                        planes,
                        spectrum,
                        fft,
                    } = &mut **s;
                    for (c, output) in planes.chunks_exact_mut(w).enumerate() {
                        // c2r uses its input as scratch: the zeros must be rewritten every row.
                        spectrum.fill(Complex::zero());
                        for kx in 0..k {
                            spectrum[kx] = columns[(c * k + kx) * h + y];
                        }
                        // Taking the real part of the full inverse (what numpy does) is the same as
                        // treating the DC column as real in the half-spectrum inverse.
                        spectrum[0].im = T::zero();
                        self.c2r
                            .process_with_scratch(spectrum, output, fft)
                            .expect("row buffers sized by the plan");
                    }
                    let pixels = &image[y * w * c_n..(y + 1) * w * c_n];
                    interleave_add_any(c_n, pixels, planes, self.scale, out_row);
                },
            );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rint(v: f64) -> u8 {
        v.round_ties_even().clamp(0.0, 255.0) as u8
    }

    #[test]
    fn to_byte_rounds_half_to_even_and_clips() {
        let cases = [
            -3.0, -0.5, 0.0, 0.49, 0.5, 1.5, 2.5, 2.5001, 127.4999, 253.5, 254.5, 255.0, 255.4,
            300.0, 1e9,
        ];
        for v in cases {
            assert_eq!(v.to_byte(), rint(v), "f64 {v}");
            assert_eq!((v as f32).to_byte(), rint(f64::from(v as f32)), "f32 {v}");
        }
        for i in 0..=2560 {
            let v = f64::from(i) / 10.0 - 0.05;
            assert_eq!(v.to_byte(), rint(v), "{v}");
        }
        assert_eq!(f64::NAN.to_byte(), 0);
    }

    #[test]
    fn interleave_round_trips_for_any_channel_count() {
        for n in [1usize, 2, 3, 4] {
            let width = 7;
            let pixels: Vec<u8> = (0..width * n).map(|i| (i * 37 % 256) as u8).collect();
            let mut planes = vec![0.0f64; n * width];
            deinterleave_any(n, &pixels, &mut planes);
            for x in 0..width {
                for c in 0..n {
                    assert_eq!(planes[c * width + x], f64::from(pixels[x * n + c]));
                }
            }
            // Adding 0.5 to every pixel lands on ties: they must round to even.
            let half = vec![0.5f64; n * width];
            let mut out = vec![0u8; pixels.len()];
            interleave_add_any(n, &pixels, &half, 1.0, &mut out);
            let want: Vec<u8> = pixels.iter().map(|&p| rint(f64::from(p) + 0.5)).collect();
            assert_eq!(out, want, "{n} channels");
        }
    }
}
