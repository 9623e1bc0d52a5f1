//! Learning-rate schedules of the paper, as pure functions of the iteration so that a resumed run
//! needs nothing but the iteration number to be back on the same curve.

use serde::{Deserialize, Serialize};

/// A learning-rate schedule over `0..max_iter` iterations (iteration 0 is the first update).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum LrSchedule {
    /// `base · (1 − i/max_iter)^power` (DeepLab "poly"; the paper and FDA use power 0.9 with SGD).
    Poly {
        base_lr: f64,
        power: f64,
        max_iter: u64,
    },
    /// `base · gamma^⌊min(i, max_steps)/step⌋` (the paper's VGG16 Adam: ×0.1 every 50k steps, up
    /// to 150k steps; past `max_steps` the rate stays where it was).
    Step {
        base_lr: f64,
        gamma: f64,
        step: u64,
        max_steps: u64,
    },
    /// A fixed rate (tests, fine-tuning).
    Constant { base_lr: f64 },
}

impl LrSchedule {
    /// The paper's SGD schedule for DeepLabV2 / ENet over `max_iter` iterations.
    pub fn poly(base_lr: f64, max_iter: u64) -> Self {
        Self::Poly {
            base_lr,
            power: 0.9,
            max_iter,
        }
    }

    /// The paper's Adam schedule for FCN-8s VGG16 (×0.1 every 50k steps up to 150k).
    pub fn vgg_step(base_lr: f64) -> Self {
        Self::Step {
            base_lr,
            gamma: 0.1,
            step: 50_000,
            max_steps: 150_000,
        }
    }

    pub fn base_lr(&self) -> f64 {
        match *self {
            Self::Poly { base_lr, .. }
            | Self::Step { base_lr, .. }
            | Self::Constant { base_lr } => base_lr,
        }
    }

    /// The learning rate used for the update of iteration `iteration` (0-based).
    pub fn lr_at(&self, iteration: u64) -> f64 {
        match *self {
            Self::Poly {
                base_lr,
                power,
                max_iter,
            } => {
                if max_iter == 0 {
                    return base_lr;
                }
                let frac = 1.0 - (iteration.min(max_iter) as f64) / (max_iter as f64);
                base_lr * frac.powf(power)
            }
            Self::Step {
                base_lr,
                gamma,
                step,
                max_steps,
            } => {
                if step == 0 {
                    return base_lr;
                }
                let decays = iteration.min(max_steps) / step;
                base_lr * gamma.powi(decays as i32)
            }
            Self::Constant { base_lr } => base_lr,
        }
    }

    /// Checks the values make sense, naming the bad one.
    pub fn validate(&self) -> Result<(), String> {
        let base = self.base_lr();
        if !(base.is_finite() && base > 0.0) {
            return Err(format!(
                "learning rate must be a positive number, got {base}"
            ));
        }
        match *self {
            Self::Poly { power, .. } if !(power.is_finite() && power >= 0.0) => {
                Err(format!("poly power must be >= 0, got {power}"))
            }
            Self::Step { gamma, step, .. } if !(gamma.is_finite() && gamma > 0.0) || step == 0 => {
                Err(format!(
                    "step schedule needs gamma > 0 and step > 0, got gamma {gamma}, step {step}"
                ))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poly_matches_fda_formula() {
        // FDA: lr_poly(base_lr, i, max_iter, power) = base_lr * ((1 - float(i) / max_iter) ** power)
        let s = LrSchedule::poly(2.5e-4, 1000);
        assert_eq!(s.lr_at(0), 2.5e-4);
        let expect = 2.5e-4 * (1.0f64 - 500.0 / 1000.0).powf(0.9);
        assert!((s.lr_at(500) - expect).abs() < 1e-18);
        assert_eq!(s.lr_at(1000), 0.0);
        assert_eq!(s.lr_at(5000), 0.0);
        assert!(s.lr_at(999) > 0.0 && s.lr_at(999) < s.lr_at(998));
    }

    #[test]
    fn step_decays_every_step_until_max() {
        let s = LrSchedule::vgg_step(1e-5);
        assert_eq!(s.lr_at(0), 1e-5);
        assert_eq!(s.lr_at(49_999), 1e-5);
        assert!((s.lr_at(50_000) - 1e-6).abs() < 1e-20);
        assert!((s.lr_at(100_000) - 1e-7).abs() < 1e-21);
        assert!((s.lr_at(150_000) - 1e-8).abs() < 1e-22);
        assert_eq!(s.lr_at(300_000), s.lr_at(150_000));
    }

    #[test]
    fn serde_round_trip_and_validation() {
        let s = LrSchedule::poly(1e-3, 10);
        let j = serde_json::to_string(&s).unwrap();
        assert!(j.contains("\"kind\":\"poly\""));
        assert_eq!(serde_json::from_str::<LrSchedule>(&j).unwrap(), s);
        assert!(LrSchedule::Constant { base_lr: -1.0 }.validate().is_err());
        assert!(
            LrSchedule::Step {
                base_lr: 1.0,
                gamma: 0.1,
                step: 0,
                max_steps: 1
            }
            .validate()
            .is_err()
        );
        assert!(s.validate().is_ok());
    }
}
