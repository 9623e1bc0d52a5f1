//! Per-instance params (references resolved, sweep variables set, `--set` applied) and their
//! validation against the stage binary's `--describe`; small helpers on params and paths.

use crate::describe::{self, ParamProblem, StageBinary};
use crate::error::Issues;
use crate::graph::{NodeInput, matches_selector};
use crate::interp;
use crate::pipeline::{PipelineFile, StageDecl, render_value};
use crate::yaml::Loc;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Params of one instance: the stage's params with references resolved, its own sweep
/// variables set, then `--set 'stage[...].param=...'` overrides.
pub(crate) fn instance_params(
    p: &PipelineFile,
    decl: &StageDecl,
    id: &str,
    vars: &[(String, Value)],
    issues: &mut Issues,
) -> Option<Value> {
    let lookup = |r: &str| p.globals.lookup(r, vars).map_err(|(m, _)| m);
    let resolved = match interp::interpolate(&decl.params, &lookup) {
        Ok(y) => y,
        Err((m, loc)) => {
            issues.add(loc, Some(id), m);
            return None;
        }
    };
    let mut params = resolved.to_json();
    let obj = params.as_object_mut()?;
    for v in &decl.sweep_vars {
        if let Some((_, val)) = vars.iter().find(|(k, _)| k == v) {
            obj.insert(v.clone(), val.clone());
        }
    }
    for o in p
        .instance_overrides
        .iter()
        .filter(|o| o.stage == decl.name && matches_selector(vars, &o.selector))
    {
        o.used.set(true);
        let mut cur = &mut params;
        for (i, part) in o.path.iter().enumerate() {
            if !cur.is_object() {
                *cur = Value::Object(Default::default());
            }
            let map = cur.as_object_mut()?;
            if i + 1 == o.path.len() {
                map.insert(part.clone(), o.value.clone());
                break;
            }
            cur = map
                .entry(part.clone())
                .or_insert_with(|| Value::Object(Default::default()));
        }
    }
    Some(params)
}

/// Validates params and inputs against `--describe`; returns canonical params.
pub(crate) fn check_against(
    binary: &StageBinary,
    decl: &StageDecl,
    id: &str,
    params: Value,
    inputs: &[NodeInput],
    issues: &mut Issues,
) -> Option<Value> {
    let d = &binary.description;
    let defaults = d.params.as_object().cloned().unwrap_or_default();
    let param_loc = |key: &str| param_loc(decl, key);
    let value_loc = |key: &str| value_loc(decl, key);
    let before = issues.list.len();
    let obj = params.as_object().cloned().unwrap_or_default();
    for (k, v) in &obj {
        match defaults.get(k) {
            None => {
                let known: Vec<&str> = defaults.keys().map(String::as_str).collect();
                issues.add(
                    param_loc(k),
                    Some(id),
                    format!(
                        "unknown param '{k}' for kind {} (it takes: {})",
                        d.kind,
                        if known.is_empty() {
                            "no params".into()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
            }
            Some(def) => {
                if let Err(m) = describe::check_param(k, v, def) {
                    issues.add(value_loc(k), Some(id), format!("{m} (kind {})", d.kind));
                }
            }
        }
    }
    let declared: Vec<&str> = d.inputs.iter().map(|i| i.name.as_str()).collect();
    for inp in inputs {
        if !declared.contains(&inp.name.as_str()) {
            let loc = decl
                .inputs
                .iter()
                .find(|i| i.name == inp.name)
                .map(|i| i.loc)
                .unwrap_or(decl.loc);
            issues.add(
                loc,
                Some(id),
                format!(
                    "unknown input '{}' for kind {} (it takes: {})",
                    inp.name,
                    d.kind,
                    if declared.is_empty() {
                        "no inputs".into()
                    } else {
                        declared.join(", ")
                    }
                ),
            );
        }
    }
    for req in d.inputs.iter().filter(|i| i.required) {
        if !inputs.iter().any(|i| i.name == req.name) {
            issues.add(
                decl.loc,
                Some(id),
                format!(
                    "missing input '{}' (required by kind {}: {})",
                    req.name, d.kind, req.doc
                ),
            );
        }
    }
    if issues.list.len() > before {
        return None;
    }
    Some(describe::canonical_params(
        &Value::Object(obj),
        &Value::Object(defaults),
    ))
}

/// Where a param's key is written (or its sweep, or the stage, when it is not written).
fn param_loc(decl: &StageDecl, key: &str) -> Loc {
    decl.params
        .as_map()
        .and_then(|m| {
            m.iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(k, _)| k.loc)
        })
        .unwrap_or(if decl.sweep_vars.iter().any(|v| v == key) {
            decl.sweep_loc
        } else {
            decl.loc
        })
}

/// Where a param's value is written (falls back to [`param_loc`]).
fn value_loc(decl: &StageDecl, key: &str) -> Loc {
    decl.params
        .get(key)
        .map(|y| y.loc)
        .filter(Loc::is_known)
        .unwrap_or_else(|| param_loc(decl, key))
}

/// Adds what the stage's `--check` found, each at the line of the param it names (the first
/// part of a dotted key). Returns whether there was nothing to add.
pub(crate) fn report_check(
    problems: &[ParamProblem],
    decl: &StageDecl,
    id: &str,
    issues: &mut Issues,
) -> bool {
    for p in problems {
        let top = p.param.split('.').next().unwrap_or_default();
        let (loc, what) = if top.is_empty() {
            (decl.loc, p.message.clone())
        } else {
            (
                value_loc(decl, top),
                format!("param {}: {}", p.param, p.message),
            )
        };
        issues.add(loc, Some(id), format!("{what} (kind {})", decl.kind));
    }
    problems.is_empty()
}

/// Removes `.` and `..` components lexically (paths are shown to people and hashed by name).
pub fn normalize(p: &std::path::Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// A node's params as a YAML-ish one-line summary (for listings).
pub fn params_summary(params: &Value) -> String {
    let Some(o) = params.as_object() else {
        return params.to_string();
    };
    o.iter()
        .map(|(k, v)| format!("{k}={}", render_value(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Sorted `name -> value` view, for diffs.
pub fn flatten_params(v: &Value, prefix: &str, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(o) if !o.is_empty() => {
            for (k, x) in o {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten_params(x, &p, out);
            }
        }
        _ => {
            out.insert(prefix.to_string(), v.clone());
        }
    }
}
