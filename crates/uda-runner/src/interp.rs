//! `${...}` references in pipeline values.
//!
//! A value that is exactly one reference (`seed: ${params.seed}`) takes the referenced value with
//! its type (a list stays a list); a reference inside a longer string is rendered into it
//! (`name: run-${seed}`: strings as they are, other values as JSON). `$${` writes a literal `${`.
//! Names: `params.NAME` is a global param; a bare `NAME` is a sweep variable of the stage
//! instance, else a global param. Dots walk into mappings, numbers index lists (`${size.0}`).

use crate::yaml::{Loc, Yaml, YamlValue};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::HashMap;

/// Looks a reference up: `Ok(None)` for an unknown name, `Err` for e.g. a reference cycle.
pub type Lookup<'a> = dyn Fn(&str) -> Result<Option<Value>, String> + 'a;

/// Replaces every reference in `y` (recursively); errors carry the location of the string.
pub fn interpolate(y: &Yaml, lookup: &Lookup) -> Result<Yaml, (String, Loc)> {
    let value = match &y.value {
        YamlValue::Str(s) if s.contains("${") => return interpolate_str(s, y.loc, lookup),
        YamlValue::Seq(items) => YamlValue::Seq(
            items
                .iter()
                .map(|i| interpolate(i, lookup))
                .collect::<Result<_, _>>()?,
        ),
        YamlValue::Map(m) => YamlValue::Map(
            m.iter()
                .map(|(k, v)| Ok((k.clone(), interpolate(v, lookup)?)))
                .collect::<Result<_, (String, Loc)>>()?,
        ),
        other => other.clone(),
    };
    Ok(Yaml::new(value, y.loc))
}

fn interpolate_str(s: &str, loc: Loc, lookup: &Lookup) -> Result<Yaml, (String, Loc)> {
    let resolve = |name: &str| -> Result<Value, (String, Loc)> {
        match lookup(name.trim()) {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err((
                format!(
                    "unknown reference ${{{name}}} (define it under `params:` at the top of the file, or as a sweep variable of this stage)"
                ),
                loc,
            )),
            Err(e) => Err((format!("in ${{{name}}}: {e}"), loc)),
        }
    };
    // A whole-value reference keeps the referenced type.
    if let Some(inner) = s.strip_prefix("${").and_then(|r| r.strip_suffix('}'))
        && !inner.contains('}')
        && !inner.contains("${")
    {
        return Ok(Yaml::from_json(&resolve(inner)?, loc));
    }
    let mut out = String::new();
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(r) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = r;
        } else if let Some(r) = after.strip_prefix("${") {
            let end = r
                .find('}')
                .ok_or_else(|| (format!("unclosed reference in '{s}' (missing '}}')"), loc))?;
            match resolve(&r[..end])? {
                Value::String(v) => out.push_str(&v),
                v => out.push_str(&v.to_string()),
            }
            rest = &r[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(Yaml::new(YamlValue::Str(out), loc))
}

/// Walks `a.b.0` into a JSON value.
pub fn walk<'v>(root: &'v Value, path: &[&str]) -> Option<&'v Value> {
    let mut cur = root;
    for part in path {
        cur = match cur {
            Value::Object(o) => o.get(*part)?,
            Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Resolves the global `params:` mapping, whose values may reference each other.
#[derive(Debug)]
pub struct Globals {
    raw: Vec<(String, Yaml)>,
    done: RefCell<HashMap<String, Value>>,
    stack: RefCell<Vec<String>>,
}

impl Globals {
    pub fn new(raw: Vec<(String, Yaml)>) -> Self {
        Self {
            raw,
            done: RefCell::new(HashMap::new()),
            stack: RefCell::new(Vec::new()),
        }
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.raw.iter().map(|(k, _)| k.as_str())
    }

    /// Resolves one global by name.
    pub fn get(&self, name: &str) -> Result<Option<Value>, (String, Loc)> {
        if let Some(v) = self.done.borrow().get(name) {
            return Ok(Some(v.clone()));
        }
        let Some((_, y)) = self.raw.iter().find(|(k, _)| k == name) else {
            return Ok(None);
        };
        if self.stack.borrow().iter().any(|s| s == name) {
            let chain = self.stack.borrow().join(" -> ");
            return Err((
                format!("reference cycle among params: {chain} -> {name}"),
                y.loc,
            ));
        }
        self.stack.borrow_mut().push(name.to_string());
        let resolved = interpolate(y, &|r: &str| self.lookup(r, &[]).map_err(|(m, _)| m));
        self.stack.borrow_mut().pop();
        let v = resolved?.to_json();
        self.done.borrow_mut().insert(name.to_string(), v.clone());
        Ok(Some(v))
    }

    /// All globals resolved, as one JSON object.
    pub fn resolve_all(&self) -> Result<serde_json::Map<String, Value>, (String, Loc)> {
        let mut out = serde_json::Map::new();
        for (k, _) in &self.raw {
            if let Some(v) = self.get(k)? {
                out.insert(k.clone(), v);
            }
        }
        Ok(out)
    }

    /// Looks up a reference: sweep `vars` first for bare names, then globals.
    pub fn lookup(
        &self,
        reference: &str,
        vars: &[(String, Value)],
    ) -> Result<Option<Value>, (String, Loc)> {
        let parts: Vec<&str> = reference.split('.').collect();
        let (head, tail, allow_vars) = match parts.as_slice() {
            ["params", head, tail @ ..] => (*head, tail, false),
            [head, tail @ ..] => (*head, tail, true),
            [] => return Ok(None),
        };
        if allow_vars && let Some((_, v)) = vars.iter().find(|(k, _)| k == head) {
            return Ok(walk(v, tail).cloned());
        }
        Ok(self.get(head)?.and_then(|v| walk(&v, tail).cloned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn globals(src: &str) -> Globals {
        let y = Yaml::parse(src).unwrap();
        Globals::new(
            y.as_map()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.key_string(), v.clone()))
                .collect(),
        )
    }

    fn interp(g: &Globals, vars: &[(String, Value)], s: &str) -> Result<Value, String> {
        let y = Yaml::new(YamlValue::Str(s.into()), Loc::default());
        interpolate(&y, &|r: &str| g.lookup(r, vars).map_err(|(m, _)| m))
            .map(|y| y.to_json())
            .map_err(|(m, _)| m)
    }

    #[test]
    fn whole_references_keep_types_and_embedded_ones_render() {
        let g = globals("seed: 3\nsize: [128, 256]\nname: gta\nroot: /data/${name}\n");
        assert_eq!(
            interp(&g, &[], "${params.size}").unwrap(),
            json!([128, 256])
        );
        assert_eq!(interp(&g, &[], "${size.1}").unwrap(), json!(256));
        assert_eq!(
            interp(&g, &[], "run-${seed}-${name}").unwrap(),
            json!("run-3-gta")
        );
        assert_eq!(interp(&g, &[], "${root}/x").unwrap(), json!("/data/gta/x"));
        assert_eq!(
            interp(&g, &[], "lit $${seed}").unwrap(),
            json!("lit ${seed}")
        );
        let vars = vec![("seed".to_string(), json!(7))];
        assert_eq!(interp(&g, &vars, "${seed}").unwrap(), json!(7));
        assert_eq!(interp(&g, &vars, "${params.seed}").unwrap(), json!(3));
    }

    #[test]
    fn unknown_references_and_cycles_are_errors() {
        let g = globals("a: ${b}\nb: ${a}\n");
        let e = interp(&g, &[], "${nope}").unwrap_err();
        assert!(e.contains("unknown reference ${nope}"), "{e}");
        let e = interp(&g, &[], "${a}").unwrap_err();
        assert!(e.contains("reference cycle"), "{e}");
        let e = interp(&g, &[], "x ${a").unwrap_err();
        assert!(e.contains("unclosed"), "{e}");
    }
}
