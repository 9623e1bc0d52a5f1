//! The two looks: a "game" source and a "camera" target, applied to a rendered [`Canvas`].
//!
//! Order (linear light first, then display space, then the sensor):
//! palette (at render time) → illumination gradient, vignetting, regional cast, white balance,
//! haze, exposure (linear) → gamma 1/2.2 → contrast, saturation → blur → noise → 8-bit.

use crate::noise::{normal, rng_for, uniform};
use crate::params::ShiftParams;
use crate::render::{Canvas, Palette};
use crate::scene::Rgb;
use rand::Rng;
use uda_data::classes::NUM_CLASSES;

/// The two domains of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Domain {
    /// Labelled synthetic "game" images (written in the GTA5 layout).
    Source,
    /// "Camera" images (written in the Cityscapes layout).
    Target,
}

impl Domain {
    pub(crate) fn tag(self) -> u64 {
        match self {
            Domain::Source => 0x50_55_52,
            Domain::Target => 0x7A_72_67,
        }
    }
}

/// Domain-level constants of the target look, fixed per generator seed.
#[derive(Debug, Clone)]
pub(crate) struct TargetStyle {
    /// Direction of the white-balance change as per-channel log-gains (green fixed).
    pub wb_dir: Rgb,
    pub palette: Palette,
}

impl TargetStyle {
    pub fn new(seed: u64, shift: &ShiftParams) -> Self {
        let mut rng = rng_for(&[seed, Domain::Target.tag(), 0x57_59_4C_45]);
        // A cooler or warmer camera: red and blue move in opposite directions.
        let a = uniform(&mut rng, 0.6, 1.0) * if rng.random_bool(0.5) { 1.0 } else { -1.0 };
        let wb_dir = [a, 0.0, -a * uniform(&mut rng, 0.6, 1.0)];
        let mut palette = [[1.0; 3]; NUM_CLASSES];
        for tint in &mut palette {
            for c in tint.iter_mut() {
                *c = 1.0 + (shift.palette as f32) * uniform(&mut rng, -0.5, 0.5);
            }
        }
        Self { wb_dir, palette }
    }
}

/// Maps -1..1 ramps: a linear ramp across the image in direction `theta`, ±1 at the corners.
fn ramp(u: f32, v: f32, theta: f32) -> f32 {
    let (c, s) = (theta.cos(), theta.sin());
    2.0 * ((u - 0.5) * c + (v - 0.5) * s) / (c.abs() + s.abs())
}

/// Spatially varying target effects as a per-pixel, per-channel linear gain.
struct TargetLight {
    illum: f32,
    illum_theta: f32,
    vignette: f32,
    vig_centre: (f32, f32),
    cast: Rgb,
    cast_theta: f32,
    cast_offset: f32,
    cast_width: f32,
    haze: f32,
    haze_centre: (f32, f32),
    haze_radius: f32,
    wb: Rgb,
}

/// Colour of the veiling glare (warm white).
const HAZE: Rgb = [1.0, 0.93, 0.82];

impl TargetLight {
    fn sample(rng: &mut impl Rng, shift: &ShiftParams, style: &TargetStyle) -> Self {
        let tau = std::f32::consts::TAU;
        let warm = uniform(rng, 0.7, 1.0);
        let cast = [warm, uniform(rng, -0.2, 0.2), -warm];
        let wb_jitter = [uniform(rng, -0.3, 0.3), 0.0, uniform(rng, -0.3, 0.3)];
        Self {
            illum: (shift.illumination as f32) * uniform(rng, 0.5, 1.0),
            illum_theta: uniform(rng, 0.0, tau),
            vignette: (shift.vignetting as f32) * uniform(rng, 0.7, 1.0),
            vig_centre: (uniform(rng, 0.4, 0.6), uniform(rng, 0.4, 0.6)),
            cast: cast.map(|c| c * (shift.colour_cast as f32) * uniform(rng, 0.6, 1.0)),
            cast_theta: uniform(rng, 0.0, tau),
            cast_offset: uniform(rng, -0.4, 0.4),
            cast_width: uniform(rng, 0.15, 0.4),
            haze: (shift.haze as f32) * uniform(rng, 0.5, 1.0),
            haze_centre: (uniform(rng, 0.0, 1.0), uniform(rng, 0.0, 0.7)),
            haze_radius: uniform(rng, 0.25, 0.45),
            wb: [0, 1, 2]
                .map(|k| ((shift.white_balance as f32) * (style.wb_dir[k] + wb_jitter[k])).exp()),
        }
    }

    /// Additive veil at (u, v), linear light.
    fn veil(&self, u: f32, v: f32) -> Rgb {
        let (du, dv) = (u - self.haze_centre.0, v - self.haze_centre.1);
        let b =
            self.haze * (-(du * du + dv * dv) / (2.0 * self.haze_radius * self.haze_radius)).exp();
        HAZE.map(|c| c * b)
    }

    fn gain(&self, u: f32, v: f32) -> Rgb {
        let g = (self.illum * ramp(u, v, self.illum_theta)).exp();
        let (du, dv) = (u - self.vig_centre.0, v - self.vig_centre.1);
        let r2 = ((du * du + dv * dv) / 0.5).min(1.5);
        let vig = (1.0 - self.vignette * r2).max(0.02);
        let s = ((ramp(u, v, self.cast_theta) - self.cast_offset) / self.cast_width).tanh();
        [0, 1, 2].map(|k| g * vig * (self.cast[k] * s).exp() * self.wb[k])
    }
}

/// Turns a rendered canvas into 8-bit RGB in the given domain's look.
pub(crate) fn finish(
    canvas: &Canvas,
    domain: Domain,
    shift: &ShiftParams,
    style: &TargetStyle,
    rng: &mut impl Rng,
) -> Vec<u8> {
    let (w, h) = (canvas.width, canvas.height);
    let exposure = uniform(rng, 0.85, 1.15);
    let light = (domain == Domain::Target).then(|| TargetLight::sample(rng, shift, style));
    let (sat, con) = match domain {
        Domain::Source => (
            1.0 + (shift.saturation as f32) / 2.0,
            1.0 + (shift.contrast as f32) / 2.0,
        ),
        Domain::Target => (
            1.0 - (shift.saturation as f32) / 2.0,
            1.0 - (shift.contrast as f32) / 2.0,
        ),
    };
    let mut img = vec![0.0f32; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let (u, v) = ((x as f32 + 0.5) / w as f32, (y as f32 + 0.5) / h as f32);
            let (gain, veil) = match &light {
                Some(l) => (l.gain(u, v), l.veil(u, v)),
                None => ([1.0; 3], [0.0; 3]),
            };
            let d: Rgb = [0, 1, 2].map(|k| {
                ((canvas.rgb[i][k] * gain[k] + veil[k]) * exposure)
                    .max(0.0)
                    .powf(1.0 / 2.2)
                    .min(1.3)
            });
            let d = d.map(|v| 0.5 + (v - 0.5) * con);
            let luma = 0.299 * d[0] + 0.587 * d[1] + 0.114 * d[2];
            for k in 0..3 {
                img[i * 3 + k] = luma + (d[k] - luma) * sat;
            }
        }
    }
    if domain == Domain::Target {
        if shift.blur_sigma > 0.0 {
            gaussian_blur(&mut img, w, h, shift.blur_sigma as f32);
        }
        if shift.noise_sigma > 0.0 {
            let s = (shift.noise_sigma as f32) / 255.0;
            for v in img.iter_mut() {
                *v += s * normal(rng);
            }
        }
    }
    img.iter()
        .map(|v| (v * 255.0).round().clamp(0.0, 255.0) as u8)
        .collect()
}

/// Separable Gaussian blur of interleaved RGB, edges clamped.
pub(crate) fn gaussian_blur(img: &mut [f32], w: usize, h: usize, sigma: f32) {
    let r = (3.0 * sigma).ceil() as i64;
    let mut k: Vec<f32> = (-r..=r)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let sum: f32 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= sum);
    let mut tmp = vec![0.0f32; img.len()];
    let (wi, hi) = (w as i64, h as i64);
    for y in 0..hi {
        for x in 0..wi {
            for c in 0..3 {
                let mut acc = 0.0;
                for (j, kv) in k.iter().enumerate() {
                    let xx = (x + j as i64 - r).clamp(0, wi - 1);
                    acc += kv * img[((y * wi + xx) * 3 + c) as usize];
                }
                tmp[((y * wi + x) * 3 + c) as usize] = acc;
            }
        }
    }
    for y in 0..hi {
        for x in 0..wi {
            for c in 0..3 {
                let mut acc = 0.0;
                for (j, kv) in k.iter().enumerate() {
                    let yy = (y + j as i64 - r).clamp(0, hi - 1);
                    acc += kv * tmp[((yy * wi + x) * 3 + c) as usize];
                }
                img[((y * wi + x) * 3 + c) as usize] = acc;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blur_preserves_constants_and_mass_and_smooths() {
        let (w, h) = (9, 7);
        let mut flat = vec![0.3f32; w * h * 3];
        gaussian_blur(&mut flat, w, h, 1.0);
        assert!(flat.iter().all(|v| (v - 0.3).abs() < 1e-5));
        let mut dot = vec![0.0f32; w * h * 3];
        dot[(3 * w + 4) * 3 + 1] = 1.0;
        gaussian_blur(&mut dot, w, h, 0.8);
        let total: f32 = dot.iter().sum();
        assert!((total - 1.0).abs() < 1e-4, "{total}");
        assert!(dot[(3 * w + 4) * 3 + 1] < 0.5 && dot[(3 * w + 5) * 3 + 1] > 0.05);
        assert_eq!(dot[(3 * w + 4) * 3], 0.0, "channels must not mix");
    }

    #[test]
    fn ramp_spans_minus_one_to_one_at_corners() {
        for theta in [0.0f32, 0.7, 2.0, 4.0] {
            let corners = [
                ramp(0.0, 0.0, theta),
                ramp(1.0, 0.0, theta),
                ramp(0.0, 1.0, theta),
                ramp(1.0, 1.0, theta),
            ];
            let max = corners.iter().cloned().fold(f32::MIN, f32::max);
            let min = corners.iter().cloned().fold(f32::MAX, f32::min);
            assert!(
                (max - 1.0).abs() < 1e-5 && (min + 1.0).abs() < 1e-5,
                "{theta}: {corners:?}"
            );
        }
    }

    #[test]
    fn zero_shift_target_gain_is_uniform_white_balance_free() {
        let mut rng = rng_for(&[3]);
        let shift = ShiftParams::none();
        let style = TargetStyle::new(0, &shift);
        let light = TargetLight::sample(&mut rng, &shift, &style);
        for (u, v) in [(0.0, 0.0), (0.5, 0.5), (1.0, 0.3)] {
            assert_eq!(light.gain(u, v), [1.0; 3]);
            assert_eq!(light.veil(u, v), [0.0; 3]);
        }
        assert!(style.palette.iter().flatten().all(|&t| t == 1.0));
    }
}
