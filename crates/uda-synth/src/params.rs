//! Generator params: sizes, counts and the strength of each source→target shift.
//!
//! Every strength is 0 for "no difference between the domains"; with the whole [`ShiftParams`]
//! at zero, source and target images are drawn from one distribution (only their seeds differ),
//! which is the "same domain" control of the calibration.

use crate::SynthError;
use serde::{Deserialize, Serialize};

/// Params of the synthetic benchmark (the `synth-scenes` stage params).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SynthParams {
    /// Generator seed. Each image is a pure function of (seed, split, index), so outputs do
    /// not depend on the thread count; source and target draw from different sub-seeds.
    pub seed: u64,
    /// Image height in pixels. At least 100 so that FDA's β = 0.01 window is non-trivial
    /// (b = floor(min(H, W)·β) ≥ 1); smaller sizes are allowed down to 32 for quick tests.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
    /// Number of labelled source ("game", GTA5 layout) images.
    pub n_source: usize,
    /// Number of target ("camera", Cityscapes layout) training images; their labels are written
    /// too (for the oracle and for pseudo-label scoring), adaptation must not train on them.
    pub n_target_train: usize,
    /// Number of target validation images (the evaluation set).
    pub n_target_val: usize,
    /// Preview panels written per split (image | colourised labels), plus as many panels showing
    /// one scene in both looks.
    pub n_previews: usize,
    /// Multiplier (0.3..=1) of the far end of the depth range where persons and poles (with
    /// their signs and lights) stand: 30 m for persons and 32 m for poles at 1. Below 1 they
    /// stand nearer the camera and so cover more pixels, which keeps the thin classes (pole,
    /// light, sign, person) learnable at image sizes smaller than Cityscapes'; both domains
    /// share it, so it is no part of the shift.
    pub thing_depth_scale: f64,
    /// How the target domain differs from the source.
    pub shift: ShiftParams,
}

impl Default for SynthParams {
    fn default() -> Self {
        Self {
            seed: 0,
            height: 128,
            width: 256,
            n_source: 600,
            n_target_train: 600,
            n_target_val: 200,
            n_previews: 4,
            thing_depth_scale: 1.0,
            shift: ShiftParams::default(),
        }
    }
}

/// Strength of each difference between the source ("game") and target ("camera") looks.
///
/// Global effects (white balance, saturation, contrast) are what per-image colour normalisation
/// can undo; the spatially varying low-frequency ones (illumination, vignetting, colour cast,
/// haze) are
/// what FDA's small low-frequency window can transfer and a global normalisation cannot; blur,
/// noise, palette and layout are bridged by neither and keep the gap from flattering FDA.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShiftParams {
    /// Per-channel gain difference of the target camera (a colour temperature change): the
    /// target's red and blue gains move by up to ± this fraction (0..1).
    pub white_balance: f64,
    /// Saturation difference: the source is saturated by 1 + s/2, the target by 1 − s/2 (0..1.5).
    pub saturation: f64,
    /// Contrast difference around mid-grey, split between the domains like `saturation` (0..1.5).
    pub contrast: f64,
    /// Per-class albedo tint of the target (a different palette), up to ± half this fraction per
    /// channel, fixed per generator seed (0..1).
    pub palette: f64,
    /// Target illumination gradient across the image in a random direction, as a log-gain:
    /// brightness goes from e^{−s} to e^{+s} (0..2).
    pub illumination: f64,
    /// Target vignetting: corner brightness 1 − v (0..0.95).
    pub vignetting: f64,
    /// Target regional colour cast: a soft boundary in a random direction with a warm side and
    /// a cool side, as a per-channel log-gain (0..1).
    pub colour_cast: f64,
    /// Target veiling glare / haze: an additive, warm-white, broad blob (linear light, up to
    /// this value at its centre) that lifts and flattens one region of the image (0..1).
    pub haze: f64,
    /// Gaussian blur of the target, in pixels (0 = none; above ~0.7 it erases 1-px textures).
    pub blur_sigma: f64,
    /// Gaussian sensor noise of the target, std in 0..255 units.
    pub noise_sigma: f64,
    /// Layout shift of the target (0..1): higher horizon, wider roads, more cars, fewer trees.
    pub layout: f64,
}

impl Default for ShiftParams {
    fn default() -> Self {
        Self {
            white_balance: 0.2,
            saturation: 0.3,
            contrast: 0.1,
            palette: 0.3,
            illumination: 0.8,
            vignetting: 0.6,
            colour_cast: 0.5,
            haze: 0.3,
            blur_sigma: 0.5,
            noise_sigma: 2.0,
            layout: 0.5,
        }
    }
}

impl ShiftParams {
    /// No difference between the domains.
    pub fn none() -> Self {
        Self {
            white_balance: 0.0,
            saturation: 0.0,
            contrast: 0.0,
            palette: 0.0,
            illumination: 0.0,
            vignetting: 0.0,
            colour_cast: 0.0,
            haze: 0.0,
            blur_sigma: 0.0,
            noise_sigma: 0.0,
            layout: 0.0,
        }
    }
}

fn check(key: &str, value: f64, lo: f64, hi: f64) -> Result<(), SynthError> {
    if value.is_finite() && (lo..=hi).contains(&value) {
        Ok(())
    } else {
        Err(SynthError::BadParam {
            key: key.into(),
            message: format!("{value} is outside {lo}..={hi}"),
        })
    }
}

impl SynthParams {
    /// Checks ranges; errors name the offending key.
    pub fn validate(&self) -> Result<(), SynthError> {
        let size = |key: &str, v: usize| {
            if (32..=4096).contains(&v) {
                Ok(())
            } else {
                Err(SynthError::BadParam {
                    key: key.into(),
                    message: format!("{v} pixels is outside 32..=4096"),
                })
            }
        };
        size("height", self.height)?;
        size("width", self.width)?;
        for (key, n) in [
            ("n_source", self.n_source),
            ("n_target_train", self.n_target_train),
            ("n_target_val", self.n_target_val),
        ] {
            if n == 0 || n > 999_999 {
                return Err(SynthError::BadParam {
                    key: key.into(),
                    message: format!("{n} images; need 1..=999999"),
                });
            }
        }
        check("thing_depth_scale", self.thing_depth_scale, 0.3, 1.0)?;
        let s = &self.shift;
        check("shift.white_balance", s.white_balance, 0.0, 1.0)?;
        check("shift.saturation", s.saturation, 0.0, 1.5)?;
        check("shift.contrast", s.contrast, 0.0, 1.5)?;
        check("shift.palette", s.palette, 0.0, 1.0)?;
        check("shift.illumination", s.illumination, 0.0, 2.0)?;
        check("shift.vignetting", s.vignetting, 0.0, 0.95)?;
        check("shift.colour_cast", s.colour_cast, 0.0, 1.0)?;
        check("shift.haze", s.haze, 0.0, 1.0)?;
        check("shift.blur_sigma", s.blur_sigma, 0.0, 10.0)?;
        check("shift.noise_sigma", s.noise_sigma, 0.0, 64.0)?;
        check("shift.layout", s.layout, 0.0, 1.0)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_values_name_the_key() {
        SynthParams::default().validate().unwrap();
        let mut p = SynthParams::default();
        p.shift.vignetting = 1.5;
        let e = p.validate().unwrap_err().to_string();
        assert!(e.contains("shift.vignetting"), "{e}");
        let p = SynthParams {
            height: 8,
            ..SynthParams::default()
        };
        assert!(p.validate().unwrap_err().to_string().contains("height"));
        let p = SynthParams {
            n_target_val: 0,
            ..SynthParams::default()
        };
        assert!(
            p.validate()
                .unwrap_err()
                .to_string()
                .contains("n_target_val")
        );
    }

    #[test]
    fn unknown_keys_are_rejected_and_partial_shift_keeps_defaults() {
        let bad = serde_json::json!({"shift": {"vignette": 0.1}});
        assert!(
            serde_json::from_value::<SynthParams>(bad)
                .unwrap_err()
                .to_string()
                .contains("vignette")
        );
        let p: SynthParams =
            serde_json::from_value(serde_json::json!({"shift": {"blur_sigma": 0.0}})).unwrap();
        assert_eq!(p.shift.blur_sigma, 0.0);
        assert_eq!(p.shift.illumination, ShiftParams::default().illumination);
    }
}
