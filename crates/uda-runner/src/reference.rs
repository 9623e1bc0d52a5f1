//! `uda-pipe stages`: the reference of the project's stages (inputs, outputs, params with their
//! defaults), rendered from each binary's own `--describe`, so that `docs/stages.md` is generated
//! and a test keeps it from drifting.

use crate::describe::{Description, KNOWN_STAGES, Registry};
use crate::error::{Result, RunnerError};
use serde_json::Value;
use std::fmt::Write as _;

/// The descriptions of the project's stages, in pipeline order (binaries beside `uda-pipe` or on
/// `UDA_STAGE_PATH`). A stage that is not built is an error naming it.
pub fn project_stages() -> Result<Vec<Description>> {
    let state = std::env::temp_dir().join(format!("uda-pipe-describe-{}", std::process::id()));
    let registry = Registry::new(&state);
    let mut found = Vec::new();
    for kind in KNOWN_STAGES {
        match registry.get(kind)? {
            Some(b) => found.push(b.description),
            None => {
                return Err(RunnerError::Usage(format!(
                    "stage binary {kind} not found beside uda-pipe or on ${}: build the workspace (cargo build --workspace)",
                    crate::describe::STAGE_PATH_ENV
                )));
            }
        }
    }
    crate::cache::remove_tree(&state);
    Ok(found)
}

/// The stage reference as Markdown.
pub fn markdown(stages: &[Description]) -> String {
    let mut s = String::new();
    s.push_str("# Stage reference\n\n");
    s.push_str(
        "Generated from each stage binary's `--describe` by `uda-pipe stages --markdown`; \
         `tests/stage_reference.rs` fails when this file is out of date. The contract every \
         stage follows is in [writing-a-stage.md](writing-a-stage.md). A param's type is the \
         JSON type of its default; set params in `pipeline.yaml` under the stage's `params:`.\n",
    );
    for d in stages {
        let _ = write!(s, "\n## `{}`\n\n{}\n", d.kind, d.doc);
        s.push_str("\n**Inputs**\n\n");
        if d.inputs.is_empty() {
            s.push_str("None.\n");
        } else {
            s.push_str("| name | required | what |\n| --- | --- | --- |\n");
            for i in &d.inputs {
                let req = if i.required { "yes" } else { "no" };
                let _ = writeln!(s, "| `{}` | {req} | {} |", i.name, cell(&i.doc));
            }
        }
        s.push_str("\n**Outputs** (inside the entry's `out/`)\n\n");
        if d.outputs.is_empty() {
            s.push_str("Not declared.\n");
        } else {
            s.push_str("| name | what |\n| --- | --- |\n");
            for o in &d.outputs {
                let _ = writeln!(s, "| `{}` | {} |", o.name, cell(&o.doc));
            }
        }
        s.push_str("\n**Params**\n\n");
        let params = flat_params(&d.params);
        if params.is_empty() {
            s.push_str("None.\n");
        } else {
            s.push_str("| param | type | default |\n| --- | --- | --- |\n");
            for (k, v) in params {
                let _ = writeln!(
                    s,
                    "| `{k}` | {} | `{}` |",
                    type_name(&v),
                    cell(&v.to_string())
                );
            }
        }
    }
    s
}

/// Params as dotted keys (nested objects are groups of params, e.g. `shift.contrast`).
fn flat_params(v: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    fn walk(v: &Value, prefix: &str, out: &mut Vec<(String, Value)>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, x) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(x, &key, out);
                }
            }
            other if !prefix.is_empty() => out.push((prefix.to_string(), other.clone())),
            _ => {}
        }
    }
    walk(v, "", &mut out);
    out
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "optional",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "mapping",
    }
}

/// Text safe inside a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::describe::{DescribedInput, DescribedOutput};

    #[test]
    fn the_reference_lists_inputs_outputs_and_typed_params() {
        let d = Description {
            kind: "k".into(),
            doc: "Does a | thing".into(),
            inputs: vec![DescribedInput {
                name: "src".into(),
                doc: "a folder".into(),
                required: true,
            }],
            outputs: vec![DescribedOutput {
                name: "x.parquet".into(),
                doc: "rows".into(),
            }],
            params: serde_json::json!({"beta": 0.01, "n": 3, "shift": {"on": true}, "name": "a"}),
            checks: true,
            shardable: false,
        };
        let md = markdown(&[d]);
        assert!(md.contains("## `k`\n\nDoes a | thing"), "{md}");
        assert!(md.contains("| `src` | yes | a folder |"), "{md}");
        assert!(md.contains("| `x.parquet` | rows |"), "{md}");
        assert!(md.contains("| `beta` | number | `0.01` |"), "{md}");
        assert!(md.contains("| `n` | integer | `3` |"), "{md}");
        assert!(md.contains("| `shift.on` | bool | `true` |"), "{md}");
        assert!(md.contains("| `name` | string | `\"a\"` |"), "{md}");
    }
}
