//! Params: the shared training recipe ([`TrainRecipe`]) plus the contrastive options, written
//! side by side in one flat object (`lr: ..., lambda_cl: ...`) as in `pipeline.yaml`.
//!
//! serde's `flatten` cannot be combined with `deny_unknown_fields`, so the object is split by
//! key: the contrastive keys go to [`ContrastiveOptions`], the rest to [`TrainRecipe`], each
//! still rejecting unknown keys by name.

use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uda_stage::{ParamProblem, ParamProblems};
use uda_train::TrainRecipe;

/// Where the target's contrastive labels come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelSource {
    /// `pseudolabel-dump` output (input `pseudo`): the method.
    Pseudo,
    /// The target's own labels: the paper's "CL using GT" upper bound.
    GroundTruth,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContrastiveOptions {
    /// Weight of the cross-entropy on source-in-target-style images.
    pub lambda_ce: f64,
    /// Weight of the pixel contrastive loss (0 skips the translated view: the "CE only" row).
    pub lambda_cl: f64,
    /// Weight of a cross-entropy on the target images against their labels (`labels`: the
    /// pseudo-labels, 255 ignored): FDA's self-training (`SStrain.py`: CE on s→t + CE on the
    /// pseudo-labelled target + λ_ent · entropy), the second round of FDA-MBT. 0: off (the paper's
    /// method has no such term).
    pub lambda_pl: f64,
    pub labels: LabelSource,
    /// Temperature τ of eq. 4 (ContrastiveSeg: 0.1).
    pub temperature: f64,
    /// Dimension d of the projection head's unit features (ContrastiveSeg: 256).
    pub proj_dim: i64,
    /// Anchors of one class drawn per image (`null`: all; exact but memory grows with the image).
    pub max_anchors_per_class: Option<usize>,
    /// Keys of one class drawn per image (`null`: all).
    pub max_keys_per_class: Option<usize>,
    /// First iteration at which the contrastive term counts.
    pub cl_start: u64,
    /// Pass each target batch through the network in training mode even when no loss uses it
    /// (no gradient), so the BatchNorm running statistics that the saved model predicts with are
    /// pulled toward the target: AdaBN-like adaptation without any target loss. Off by default;
    /// the `ce_target_bn` ablation row measures how much of a target-seeing model's gain this is.
    pub target_bn: bool,
}

impl Default for ContrastiveOptions {
    fn default() -> Self {
        Self {
            lambda_ce: 1.0,
            lambda_cl: 1.0,
            lambda_pl: 0.0,
            labels: LabelSource::Pseudo,
            temperature: 0.1,
            proj_dim: 256,
            max_anchors_per_class: Some(256),
            max_keys_per_class: Some(512),
            cl_start: 0,
            target_bn: false,
        }
    }
}

impl ContrastiveOptions {
    /// Checks every value, naming each bad param.
    pub fn validate(&self) -> Result<(), Vec<ParamProblem>> {
        let mut problems = ParamProblems::new();
        for (name, v) in [
            ("lambda_ce", self.lambda_ce),
            ("lambda_cl", self.lambda_cl),
            ("lambda_pl", self.lambda_pl),
        ] {
            problems.ensure(
                v.is_finite() && v >= 0.0,
                name,
                format!("must be >= 0, got {v}"),
            );
        }
        problems.ensure(
            self.temperature.is_finite() && self.temperature > 0.0,
            "temperature",
            format!("must be > 0, got {}", self.temperature),
        );
        problems.ensure(self.proj_dim > 0, "proj_dim", "must be at least 1");
        for (name, v) in [
            ("max_anchors_per_class", self.max_anchors_per_class),
            ("max_keys_per_class", self.max_keys_per_class),
        ] {
            problems.ensure(v != Some(0), name, "must be at least 1 (or null for all)");
        }
        problems.into_result()
    }
}

impl ContrastiveParams {
    /// The shared recipe's checks and the contrastive options'.
    pub fn validate(&self) -> Result<(), Vec<ParamProblem>> {
        let mut problems = ParamProblems::new();
        problems.extend(self.train.validate());
        problems.extend(self.contrastive.validate());
        problems.into_result()
    }
}

/// All params of `contrastive-train`.
#[derive(Debug, Clone, PartialEq)]
pub struct ContrastiveParams {
    /// The recipe shared with `pretrain`. Defaults differ in one place: `grayscale` is off (the
    /// final model trains on colour s→t images).
    pub train: TrainRecipe,
    pub contrastive: ContrastiveOptions,
}

impl Default for ContrastiveParams {
    fn default() -> Self {
        Self {
            train: TrainRecipe {
                grayscale: false,
                ..TrainRecipe::default()
            },
            contrastive: ContrastiveOptions::default(),
        }
    }
}

fn object(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match v {
        serde_json::Value::Object(m) => m,
        _ => unreachable!("params structs serialise to objects"),
    }
}

impl Serialize for ContrastiveParams {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut all = object(serde_json::to_value(&self.train).map_err(serde::ser::Error::custom)?);
        all.extend(object(
            serde_json::to_value(&self.contrastive).map_err(serde::ser::Error::custom)?,
        ));
        let mut map = s.serialize_map(Some(all.len()))?;
        for (k, v) in &all {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for ContrastiveParams {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let given = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let contrastive_keys =
            object(serde_json::to_value(ContrastiveOptions::default()).map_err(D::Error::custom)?);
        let defaults = Self::default();
        let mut train = object(serde_json::to_value(&defaults.train).map_err(D::Error::custom)?);
        let mut contrastive = serde_json::Map::new();
        for (k, v) in given {
            if contrastive_keys.contains_key(&k) {
                contrastive.insert(k, v);
            } else {
                // Unknown keys land here and are named by TrainRecipe' deny_unknown_fields.
                train.insert(k, v);
            }
        }
        Ok(Self {
            train: serde_json::from_value(train.into()).map_err(D::Error::custom)?,
            contrastive: serde_json::from_value(contrastive.into()).map_err(D::Error::custom)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_object_splits_into_both_parts_and_round_trips() {
        let p: ContrastiveParams = serde_json::from_value(serde_json::json!({
            "iterations": 7, "lambda_cl": 0.5, "labels": "ground_truth", "lr": 0.01
        }))
        .unwrap();
        assert_eq!(p.train.iterations, 7);
        assert_eq!(p.train.lr, Some(0.01));
        assert!(!p.train.grayscale, "contrastive-train defaults to colour");
        assert_eq!(p.contrastive.lambda_cl, 0.5);
        assert_eq!(p.contrastive.labels, LabelSource::GroundTruth);
        let back: ContrastiveParams =
            serde_json::from_value(serde_json::to_value(&p).unwrap()).unwrap();
        assert_eq!(back, p);
        let v = serde_json::to_value(ContrastiveParams::default()).unwrap();
        assert!(v.get("temperature").is_some() && v.get("backbone").is_some());
    }

    #[test]
    fn unknown_and_mistyped_keys_are_named() {
        let e = serde_json::from_value::<ContrastiveParams>(serde_json::json!({"lamda_cl": 1}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("lamda_cl"), "{e}");
        let e = serde_json::from_value::<ContrastiveParams>(serde_json::json!({"labels": "gt"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("gt"), "{e}");
    }

    #[test]
    fn validate_names_bad_params_of_both_parts() {
        ContrastiveParams::default().validate().unwrap();
        let mut bad = ContrastiveParams::default();
        bad.contrastive.temperature = 0.0;
        bad.contrastive.max_keys_per_class = Some(0);
        bad.train.batch = 0;
        let problems = bad.validate().unwrap_err();
        let names: Vec<&str> = problems.iter().map(|p| p.param.as_str()).collect();
        assert_eq!(
            names,
            ["batch", "temperature", "max_keys_per_class"],
            "{problems:?}"
        );
    }
}
