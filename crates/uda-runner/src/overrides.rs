//! `--set KEY=VALUE` overrides, applied to the located YAML tree before anything else, so an
//! override behaves exactly as if it had been written in the file (and a global override reaches
//! every `${...}` that references it).

use crate::error::Issues;
use crate::pipeline::{InstanceOverride, parse_instance_name};
use crate::yaml::{Loc, Yaml, YamlValue};

/// Applies `--set` overrides to the raw tree; returns the per-instance ones.
pub fn apply_sets(root: &mut Yaml, sets: &[String], issues: &mut Issues) -> Vec<InstanceOverride> {
    let mut per_instance = Vec::new();
    for set in sets {
        let loc = Loc::default();
        let Some((key, raw)) = split_set(set) else {
            issues.add(
                loc,
                None,
                format!("--set '{set}': expected KEY=VALUE, e.g. --set fda.beta=0.05"),
            );
            continue;
        };
        let value: serde_json::Value = match crate::yaml::parse_value(raw) {
            Ok(y) => y.to_json(),
            Err(_) if raw.trim().is_empty() => serde_json::Value::String(String::new()),
            Err(e) => {
                issues.add(
                    loc,
                    None,
                    format!("--set '{set}': the value is not valid YAML ({e})"),
                );
                continue;
            }
        };
        let stage_names: Vec<String> = root
            .get("stages")
            .and_then(Yaml::as_map)
            .map(|m| m.iter().map(|(k, _)| k.key_string()).collect())
            .unwrap_or_default();
        let global_names: Vec<String> = root
            .get("params")
            .and_then(Yaml::as_map)
            .map(|m| m.iter().map(|(k, _)| k.key_string()).collect())
            .unwrap_or_default();
        let (head, rest) = split_head(key);
        let rest: Vec<String> = rest
            .map(|r| r.split('.').map(str::to_string).collect())
            .unwrap_or_default();
        if head == "params" && !rest.is_empty() {
            set_path(root, &["params".into()], &rest, &value);
        } else if let Ok((stage, selector)) = parse_instance_name(head)
            && stage_names.contains(&stage)
        {
            if rest.is_empty() {
                issues.add(
                    loc,
                    Some(&stage),
                    format!("--set '{set}': name a param, e.g. --set {stage}.PARAM=VALUE"),
                );
            } else if !selector.is_empty() {
                per_instance.push(InstanceOverride {
                    stage,
                    selector,
                    path: rest,
                    value,
                    used: std::cell::Cell::new(false),
                });
            } else {
                let st = root.get("stages").and_then(|s| s.get(&stage));
                let sweep_key = ["foreach", "matrix"].into_iter().find(|k| {
                    st.and_then(|s| s.get(k))
                        .and_then(|f| f.get(&rest[0]))
                        .is_some()
                        && rest.len() == 1
                });
                match sweep_key {
                    Some(k) => {
                        let v = if value.is_array() {
                            value.clone()
                        } else {
                            serde_json::Value::Array(vec![value.clone()])
                        };
                        set_path(root, &["stages".into(), stage.clone(), k.into()], &rest, &v);
                    }
                    None => set_path(
                        root,
                        &["stages".into(), stage.clone(), "params".into()],
                        &rest,
                        &value,
                    ),
                }
            }
        } else if global_names.iter().any(|g| g == head) {
            let mut path = vec![head.to_string()];
            path.extend(rest);
            set_path(root, &["params".into()], &path, &value);
        } else {
            issues.add(
                loc,
                None,
                format!(
                    "--set '{set}': '{head}' is neither a stage ({}) nor a global param ({})",
                    stage_names.join(", "),
                    if global_names.is_empty() {
                        "none".into()
                    } else {
                        global_names.join(", ")
                    }
                ),
            );
        }
    }
    per_instance
}

/// Splits `KEY=VALUE` at the first '=' outside `[...]`.
fn split_set(s: &str) -> Option<(&str, &str)> {
    let mut depth = 0i32;
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            '=' if depth == 0 => {
                return Some((&s[..i], &s[i + 1..])).filter(|(k, _)| !k.is_empty());
            }
            _ => {}
        }
    }
    None
}

/// Splits `fda[beta=0.01].a.b` into (`fda[beta=0.01]`, `a.b`).
fn split_head(key: &str) -> (&str, Option<&str>) {
    let search_from = key.find(']').map(|i| i + 1).unwrap_or(0);
    match key[search_from..].find('.') {
        Some(i) => (&key[..search_from + i], Some(&key[search_from + i + 1..])),
        None => (key, None),
    }
}

fn set_path(root: &mut Yaml, prefix: &[String], path: &[String], value: &serde_json::Value) {
    let mut cur = root;
    for part in prefix.iter().chain(path.iter()) {
        if !matches!(cur.value, YamlValue::Map(_)) {
            cur.value = YamlValue::Map(Vec::new());
        }
        let YamlValue::Map(m) = &mut cur.value else {
            unreachable!("made a map above")
        };
        let idx = match m.iter().position(|(k, _)| k.key_string() == *part) {
            Some(i) => i,
            None => {
                m.push((
                    Yaml::new(YamlValue::Str(part.clone()), Loc::default()),
                    Yaml::new(YamlValue::Null, Loc::default()),
                ));
                m.len() - 1
            }
        };
        cur = &mut m[idx].1;
    }
    let loc = cur.loc;
    *cur = Yaml::from_json(value, loc);
}
