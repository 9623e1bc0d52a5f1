//! `foreach:` and `matrix:`: the sweep variable bindings of a stage's instances.

use crate::error::Issues;
use crate::pipeline::Resolve;
use crate::yaml::{Loc, Yaml, YamlValue};

pub(crate) type Sweep = (Vec<Vec<(String, serde_json::Value)>>, Vec<String>, Loc);

/// `foreach: {var: [..]}` (one variable), `foreach: [{a: .., b: ..}, ..]` (explicit list) or
/// `matrix: {a: [..], b: [..]}` (every combination).
pub(crate) fn parse_sweep(
    y: &Yaml,
    issues: &mut Issues,
    st: Option<&str>,
    resolve: &Resolve,
) -> Sweep {
    let sweep = sweep_rows(y, issues, st, resolve);
    let mut bad = false;
    for (var, value) in sweep.0.iter().flatten() {
        if let Some(why) = unsafe_in_names(value) {
            issues.add(
                sweep.2,
                st,
                format!("sweep variable '{var}': value {value} {why}; sweep values become part of node names and of paths under cache/latest/, so use a plain name (a param can map it to a path)"),
            );
            bad = true;
        }
    }
    if bad {
        return (vec![Vec::new()], Vec::new(), Loc::default());
    }
    sweep
}

/// Why a sweep value cannot be part of a node name and a file name, if it cannot.
fn unsafe_in_names(value: &serde_json::Value) -> Option<&'static str> {
    let text = match value {
        serde_json::Value::String(s) => s.as_str(),
        serde_json::Value::Array(_) | serde_json::Value::Object(_) => {
            return Some("is a list or mapping");
        }
        _ => return None,
    };
    if text.contains('/') || text.contains('\\') {
        Some("contains a path separator")
    } else if text == "." || text == ".." {
        Some("is a relative folder name")
    } else if text.is_empty() {
        Some("is empty")
    } else if text.chars().any(|c| c.is_control()) {
        Some("contains a control character")
    } else if text.contains([',', '=', '[', ']']) {
        Some("contains one of , = [ ] (they delimit instance names)")
    } else {
        None
    }
}

fn sweep_rows(y: &Yaml, issues: &mut Issues, st: Option<&str>, resolve: &Resolve) -> Sweep {
    let foreach = y.get("foreach").and_then(|v| resolve(v, issues, st));
    let matrix = y.get("matrix").and_then(|v| resolve(v, issues, st));
    let none = (vec![Vec::new()], Vec::new(), Loc::default());
    let list_of = |v: &Yaml, var: &str, issues: &mut Issues| -> Option<Vec<serde_json::Value>> {
        match &v.value {
            YamlValue::Seq(items) if !items.is_empty() => {
                Some(items.iter().map(Yaml::to_json).collect())
            }
            YamlValue::Seq(_) => {
                issues.add(
                    v.loc,
                    st,
                    format!("sweep variable '{var}' has an empty list of values"),
                );
                None
            }
            _ => Some(vec![v.to_json()]),
        }
    };
    match (foreach, matrix) {
        (Some(f), Some(_)) => {
            issues.add(f.loc, st, "use either `foreach:` or `matrix:`, not both");
            none
        }
        (Some(f), None) => match &f.value {
            YamlValue::Map(m) if m.len() == 1 => {
                let var = m[0].0.key_string();
                match list_of(&m[0].1, &var, issues) {
                    Some(vals) => (
                        vals.into_iter().map(|v| vec![(var.clone(), v)]).collect(),
                        vec![var],
                        f.loc,
                    ),
                    None => none,
                }
            }
            YamlValue::Map(_) => {
                issues.add(f.loc, st, "`foreach` takes one variable ({beta: [..]}); use `matrix:` for every combination of several, or a list of mappings");
                none
            }
            YamlValue::Seq(items) if !items.is_empty() => {
                let mut rows = Vec::new();
                let mut vars: Vec<String> = Vec::new();
                for it in items {
                    let Some(m) = it.as_map() else {
                        issues.add(
                            it.loc,
                            st,
                            "each `foreach` entry must be a mapping of variables to values",
                        );
                        return none;
                    };
                    let row: Vec<(String, serde_json::Value)> = m
                        .iter()
                        .map(|(k, v)| (k.key_string(), v.to_json()))
                        .collect();
                    let names: Vec<String> = row.iter().map(|(k, _)| k.clone()).collect();
                    if vars.is_empty() {
                        vars = names;
                    } else if names != vars {
                        issues.add(
                            it.loc,
                            st,
                            format!(
                                "every `foreach` entry must set the same variables ({})",
                                vars.join(", ")
                            ),
                        );
                        return none;
                    }
                    rows.push(row);
                }
                (rows, vars, f.loc)
            }
            _ => {
                issues.add(
                    f.loc,
                    st,
                    "`foreach` must be {var: [values]} or a non-empty list of mappings",
                );
                none
            }
        },
        (None, Some(mx)) => {
            let Some(m) = mx.as_map().filter(|m| !m.is_empty()) else {
                issues.add(
                    mx.loc,
                    st,
                    "`matrix` must be a mapping of variables to lists of values",
                );
                return none;
            };
            let mut rows: Vec<Vec<(String, serde_json::Value)>> = vec![Vec::new()];
            let mut vars = Vec::new();
            for (k, v) in m {
                let var = k.key_string();
                let Some(vals) = list_of(v, &var, issues) else {
                    return none;
                };
                rows = rows
                    .into_iter()
                    .flat_map(|row| {
                        vals.iter().map(move |val| {
                            let mut r = row.clone();
                            r.push((k.key_string(), val.clone()));
                            r
                        })
                    })
                    .collect();
                vars.push(var);
            }
            (rows, vars, mx.loc)
        }
        (None, None) => none,
    }
}
