//! Checking params without running: [`ParamProblem`], the per-key reading of parse errors, and
//! what `--check` prints.
//!
//! The runner checks every node's params before any stage runs, so a bad value fails in a
//! second instead of after hours of upstream work; that only works when each problem names its
//! param (the runner points at the line of that key in `pipeline.yaml`).

use crate::{ContractError, Stage, StageArgs};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// One thing wrong with a stage's params.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParamProblem {
    /// The param's key, dotted for nested params (`beta`, `shift.contrast`); empty when the
    /// problem is with the params as a whole.
    pub param: String,
    /// What is wrong, and where it helps, what would be right.
    pub message: String,
}

impl ParamProblem {
    pub fn new(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            param: param.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ParamProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.param.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "param {}: {}", self.param, self.message)
        }
    }
}

/// Collects the problems a stage's [`Stage::validate`] finds, so it reports every bad value at
/// once rather than the first.
#[derive(Debug, Default)]
pub struct ParamProblems(Vec<ParamProblem>);

impl ParamProblems {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, param: impl Into<String>, message: impl Into<String>) {
        self.0.push(ParamProblem::new(param, message));
    }

    /// Records `message` for `param` unless `ok`.
    pub fn ensure(&mut self, ok: bool, param: &str, message: impl Into<String>) {
        if !ok {
            self.push(param, message);
        }
    }

    /// Adds the problems of a nested check (e.g. a shared part of the params).
    pub fn extend(&mut self, other: Result<(), Vec<ParamProblem>>) {
        if let Err(problems) = other {
            self.0.extend(problems);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// What [`Stage::validate`] returns.
    pub fn into_result(self) -> Result<(), Vec<ParamProblem>> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0)
        }
    }
}

/// What `STAGE --check` prints on stdout: `{"ok": true}` or
/// `{"ok": false, "problems": [{"param": .., "message": ..}, ..]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    pub ok: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<ParamProblem>,
}

impl CheckReport {
    fn from_problems(problems: Vec<ParamProblem>) -> Self {
        Self {
            ok: problems.is_empty(),
            problems,
        }
    }
}

/// Parses and validates the params of `args` for stage `S` (what `--check` does), without
/// looking at `--out` or the inputs. Bad values, unknown keys and mistyped values are problems
/// in the report; only a params file that cannot be read is an error.
pub fn check_params<S: Stage>(args: &StageArgs) -> Result<CheckReport, ContractError> {
    let (value, mut problems) = args.params_value_and_problems()?;
    if !problems.is_empty() {
        // A value that is not even YAML: typing the rest would only repeat that key.
        return Ok(CheckReport::from_problems(problems));
    }
    match parse_params::<S::Params>(value) {
        Ok(params) => {
            if let Err(found) = S::validate(&params) {
                problems.extend(found);
            }
        }
        Err(found) => problems.extend(found),
    }
    Ok(CheckReport::from_problems(problems))
}

/// Parses params from a JSON object; on failure, one problem per offending key.
///
/// serde's error names an unknown key but not the key of a mistyped value, and stops at the
/// first; so each top-level key is tried alone over the defaults (params structs are
/// `#[serde(default)]`), descending into nested objects whose struct has defaults too.
pub(crate) fn parse_params<P: DeserializeOwned>(
    value: serde_json::Value,
) -> Result<P, Vec<ParamProblem>> {
    let whole = match serde_json::from_value::<P>(value.clone()) {
        Ok(p) => return Ok(p),
        Err(e) => e,
    };
    let mut problems = Vec::new();
    match &value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                locate::<P>(&[key.as_str()], v, &mut problems);
            }
        }
        _ => problems.push(ParamProblem::new(
            "",
            "params must be a mapping of param names to values",
        )),
    }
    if problems.is_empty() {
        // Only the combination fails (a custom deserializer); report serde's own words.
        problems.push(ParamProblem::new("", whole.to_string()));
    }
    Err(problems)
}

/// `{path[0]: {path[1]: .. value}}`.
fn nest(path: &[&str], value: serde_json::Value) -> serde_json::Value {
    path.iter().rev().fold(value, |inner, key| {
        let mut map = serde_json::Map::new();
        map.insert((*key).to_string(), inner);
        serde_json::Value::Object(map)
    })
}

fn locate<P: DeserializeOwned>(
    path: &[&str],
    value: &serde_json::Value,
    problems: &mut Vec<ParamProblem>,
) {
    let err = match serde_json::from_value::<P>(nest(path, value.clone())) {
        Ok(_) => return,
        Err(e) => e,
    };
    if let serde_json::Value::Object(children) = value {
        // Descend only where an empty object is fine, i.e. the nested struct has defaults;
        // otherwise every child alone would fail for the missing others.
        let empty = nest(path, serde_json::Value::Object(Default::default()));
        if !children.is_empty() && serde_json::from_value::<P>(empty).is_ok() {
            let before = problems.len();
            for (key, v) in children {
                let mut child = path.to_vec();
                child.push(key);
                locate::<P>(&child, v, problems);
            }
            if problems.len() > before {
                return;
            }
        }
    }
    problems.push(ParamProblem::new(path.join("."), err.to_string()));
}
