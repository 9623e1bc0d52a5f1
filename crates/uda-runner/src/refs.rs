//! How inputs name their sources: `stage`, `stage/path`, `stage[var=value]`, `{all: stage}`,
//! external paths; and how sweep values are written in instance names.

use crate::error::Issues;
use crate::pipeline::{InputRef, is_plain_name};
use crate::yaml::{Yaml, YamlValue};
use std::path::PathBuf;

pub(crate) fn parse_input(v: &Yaml, issues: &mut Issues, st: Option<&str>) -> Option<InputRef> {
    match &v.value {
        YamlValue::Str(s) => {
            if is_external_path(s) {
                return external(s, v, issues, st);
            }
            match parse_stage_ref(s) {
                Ok((stage, selector, subpath)) => Some(InputRef::Stage {
                    stage,
                    selector,
                    subpath,
                }),
                Err(m) => {
                    issues.add(v.loc, st, m);
                    None
                }
            }
        }
        YamlValue::Map(m) if m.len() == 1 => {
            let (k, val) = &m[0];
            let Some(s) = val.as_str() else {
                issues.add(val.loc, st, format!("`{}:` takes a string", k.key_string()));
                return None;
            };
            match k.key_string().as_str() {
                "path" => external(s, val, issues, st),
                "all" => match parse_stage_ref(s) {
                    Ok((stage, selector, None)) => Some(InputRef::All { stage, selector }),
                    Ok((_, _, Some(_))) => {
                        issues.add(val.loc, st, "`all:` takes a stage name (optionally with [var=value]), not a path inside it");
                        None
                    }
                    Err(m) => {
                        issues.add(val.loc, st, m);
                        None
                    }
                },
                other => {
                    issues.add(k.loc, st, format!("unknown input form '{other}:' (use a stage name, `path: ...` or `all: stage`)"));
                    None
                }
            }
        }
        _ => {
            issues.add(v.loc, st, "an input is a stage name (`src`, `src/sub/dir`, `fda[beta=0.01]`), an external path (`./data/x`, `{path: data/x}`) or `{all: stage}`");
            None
        }
    }
}

/// External paths are written so they cannot be mistaken for stage names.
pub fn is_external_path(s: &str) -> bool {
    s.starts_with("./")
        || s.starts_with("../")
        || s.starts_with('/')
        || s.starts_with("~/")
        || s == "."
        || s == ".."
}

/// `~/rest` is `$HOME/rest`; without a usable `HOME` it is an error (never a folder named `~`).
pub(crate) fn expand_home(s: &str) -> Result<String, String> {
    let Some(rest) = s.strip_prefix("~/") else {
        return Ok(s.to_string());
    };
    match std::env::var("HOME") {
        Ok(home) if !home.is_empty() => Ok(format!("{}/{rest}", home.trim_end_matches('/'))),
        _ => Err(format!(
            "'{s}' starts with ~/ but HOME is not set; set HOME or write the full path"
        )),
    }
}

/// An external input path, with `~/` expanded (an issue when it cannot be).
fn external(s: &str, v: &Yaml, issues: &mut Issues, st: Option<&str>) -> Option<InputRef> {
    match expand_home(s) {
        Ok(p) => Some(InputRef::External(PathBuf::from(p))),
        Err(m) => {
            issues.add(v.loc, st, m);
            None
        }
    }
}

/// (stage, selector, path inside its output).
pub type StageRef = (String, Vec<(String, String)>, Option<String>);

/// Parses `stage`, `stage/sub/path`, `stage[a=1,b=x]`, `stage[a=1]/sub`.
pub fn parse_stage_ref(s: &str) -> Result<StageRef, String> {
    let (head, subpath) = match s.find(['/', '[']) {
        Some(i) if s.as_bytes()[i] == b'[' => {
            let close = s[i..]
                .find(']')
                .map(|j| i + j)
                .ok_or_else(|| format!("'{s}': missing ']'"))?;
            let after = &s[close + 1..];
            let sub = match after {
                "" => None,
                a if a.starts_with('/') => Some(a[1..].to_string()),
                _ => return Err(format!("'{s}': expected '/' after ']'")),
            };
            (&s[..close + 1], sub)
        }
        Some(i) => (&s[..i], Some(s[i + 1..].to_string())),
        None => (s, None),
    };
    let subpath = subpath
        .map(|p| p.trim_end_matches('/').to_string())
        .filter(|p| !p.is_empty());
    if let Some(p) = &subpath
        && p.split('/').any(|c| c == "..")
    {
        return Err(format!(
            "'{s}': a path inside a stage's output may not contain '..'"
        ));
    }
    let (name, selector) = parse_instance_name(head)?;
    if !is_plain_name(&name) {
        return Err(format!(
            "'{s}' is neither a stage name nor an external path (write external paths as ./{s} or {{path: {s}}})"
        ));
    }
    Ok((name, selector, subpath))
}

/// Splits `fda[beta=0.01,seed=1]` into the stage name and its selector.
pub fn parse_instance_name(s: &str) -> Result<(String, Vec<(String, String)>), String> {
    let Some(open) = s.find('[') else {
        return Ok((s.to_string(), Vec::new()));
    };
    let inner = s[open + 1..]
        .strip_suffix(']')
        .ok_or_else(|| format!("'{s}': missing ']' at the end"))?;
    let mut sel = Vec::new();
    for part in inner.split(',').filter(|p| !p.trim().is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("'{s}': '{part}' is not var=value"))?;
        sel.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok((s[..open].to_string(), sel))
}

/// Renders a sweep value for instance names (`0.01`, `gta5`, `true`).
pub fn render_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
