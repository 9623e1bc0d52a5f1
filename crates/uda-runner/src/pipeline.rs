//! Reading `pipeline.yaml` into declarations (before sweeps are expanded and stages described).
//!
//! ```yaml
//! name: gta2cs              # optional; default: the file name without extension
//! cache: cache              # optional; relative to this file; default `cache`
//! params: {seed: 0, size: [128, 256]}
//! stages:
//!   src:
//!     kind: preprocess-resize            # the stage binary
//!     inputs: {root: ./data/gta5}        # external folder (starts with ./ ../ / or ~/, or {path: ...})
//!     params: {size: ${params.size}}
//!     resources: {cpus: 2, memory_gb: 4, gpus: 0}
//!   fda:
//!     kind: fda-translate-cache
//!     inputs: {source: src, target: trg/images}   # a stage's output, or a path inside it
//!     foreach: {beta: [0.01, 0.05, 0.09]}         # -> fda[beta=0.01], fda[beta=0.05], ...
//!   train:
//!     kind: pretrain
//!     inputs: {images: fda}              # one train instance per fda instance (train[beta=0.01] ...)
//!     matrix: {seed: [0, 1]}             # ... times each seed: train[beta=0.01,seed=0] ...
//!   table:
//!     kind: evaluate
//!     inputs: {runs: {all: train}}       # one folder with a link per train instance
//! ```

use crate::error::Issues;
use crate::interp::{self, Globals};
pub use crate::refs::{
    StageRef, is_external_path, parse_instance_name, parse_stage_ref, render_value,
};
use crate::refs::{expand_home, parse_input};
use crate::sweep::parse_sweep;
use crate::yaml::{Loc, Yaml, YamlValue};
use std::path::{Path, PathBuf};

/// A parsed pipeline file (globals resolved, `--set` overrides applied).
#[derive(Debug)]
pub struct PipelineFile {
    /// The path as the user gave it (for messages).
    pub path: PathBuf,
    /// Absolute folder of the file; relative paths in it are relative to this.
    pub dir: PathBuf,
    pub name: String,
    pub cache_dir: PathBuf,
    pub globals: Globals,
    pub stages: Vec<StageDecl>,
    /// `--set 'stage[var=value].param=...'`: applied to matching instances only.
    pub instance_overrides: Vec<InstanceOverride>,
    /// The `executor:` block (checked here; `--executor` and `UDA_EXECUTOR` win over it).
    pub executor: Option<serde_json::Value>,
}

#[derive(Debug, Clone)]
pub struct InstanceOverride {
    pub stage: String,
    pub selector: Vec<(String, String)>,
    pub path: Vec<String>,
    pub value: serde_json::Value,
    pub used: std::cell::Cell<bool>,
}

#[derive(Debug, Clone)]
pub struct StageDecl {
    pub name: String,
    pub loc: Loc,
    pub kind: String,
    pub kind_loc: Loc,
    /// Raw params (references to sweep variables are resolved per instance).
    pub params: Yaml,
    pub inputs: Vec<InputDecl>,
    /// Extra files/folders the stage must have written (checked after it ran).
    pub outputs: Vec<(String, Loc)>,
    pub resources: Resources,
    pub sweep: Vec<Vec<(String, serde_json::Value)>>,
    /// Names of the sweep variables, in order.
    pub sweep_vars: Vec<String>,
    pub sweep_loc: Loc,
}

/// Resources a stage instance holds while it runs (the scheduler's budget).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resources {
    pub cpus: u32,
    pub gpus: u32,
    pub memory_gb: f64,
    /// `time`: the job's time limit in seconds (Slurm's `--time`; the local executor does not
    /// enforce it).
    pub time_s: Option<u64>,
    /// `shards`: array tasks for a shardable stage on Slurm (0: not set, one job).
    pub shards: u32,
}

impl Default for Resources {
    fn default() -> Self {
        Self {
            cpus: 1,
            gpus: 0,
            memory_gb: 0.0,
            time_s: None,
            shards: 0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct InputDecl {
    pub name: String,
    pub loc: Loc,
    pub source: InputRef,
}

#[derive(Debug, Clone, PartialEq)]
pub enum InputRef {
    /// Output of a stage (`stage`, `stage/sub/path`, `stage[beta=0.01]`).
    Stage {
        stage: String,
        selector: Vec<(String, String)>,
        subpath: Option<String>,
    },
    /// One folder holding a link per selected instance of a stage (`{all: stage}`).
    All {
        stage: String,
        selector: Vec<(String, String)>,
    },
    /// A file or folder outside the cache, content-hashed.
    External(PathBuf),
}

const STAGE_KEYS: &[&str] = &[
    "kind",
    "params",
    "inputs",
    "outputs",
    "resources",
    "foreach",
    "matrix",
    "doc",
];
const TOP_KEYS: &[&str] = &["name", "cache", "params", "stages", "executor"];

/// Reads and checks a pipeline file, applying `--set KEY=VALUE` overrides.
pub fn load(path: &Path, sets: &[String], issues: &mut Issues) -> Option<PipelineFile> {
    issues.file = path.to_path_buf();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            issues.add(
                Loc::default(),
                None,
                format!("cannot read the pipeline file: {e}"),
            );
            return None;
        }
    };
    let mut root = match Yaml::parse(&text) {
        Ok(y) => y,
        Err((m, loc)) => {
            issues.add(loc, None, format!("not valid YAML: {m}"));
            return None;
        }
    };
    if matches!(root.value, YamlValue::Null) {
        root.value = YamlValue::Map(Vec::new());
    }
    let Some(top) = root.as_map() else {
        issues.add(
            root.loc,
            None,
            format!(
                "expected a mapping with `stages:` at the top, found {}",
                root.type_name()
            ),
        );
        return None;
    };
    for (k, _) in top {
        if !TOP_KEYS.contains(&k.key_string().as_str()) {
            issues.add(
                k.loc,
                None,
                format!(
                    "unknown top-level key '{}' (expected one of: {})",
                    k.key_string(),
                    TOP_KEYS.join(", ")
                ),
            );
        }
    }
    let instance_overrides = crate::overrides::apply_sets(&mut root, sets, issues);
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = abs
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pipeline".into());
    let name = match root.get("name") {
        None => stem,
        Some(y) => match y.as_str() {
            Some(s) if is_plain_name(s) => s.to_string(),
            _ => {
                issues.add(
                    y.loc,
                    None,
                    "`name` must be a plain name (letters, digits, '-', '_', '.')",
                );
                stem
            }
        },
    };
    let globals = match root.get("params") {
        None => Globals::new(Vec::new()),
        Some(y) => match &y.value {
            YamlValue::Map(m) => {
                Globals::new(m.iter().map(|(k, v)| (k.key_string(), v.clone())).collect())
            }
            YamlValue::Null => Globals::new(Vec::new()),
            _ => {
                issues.add(
                    y.loc,
                    None,
                    format!(
                        "`params` must be a mapping of names to values, found {}",
                        y.type_name()
                    ),
                );
                Globals::new(Vec::new())
            }
        },
    };
    if let Err((m, loc)) = globals.resolve_all() {
        issues.add(loc, None, m);
    }
    let resolve = |y: &Yaml, issues: &mut Issues, stage: Option<&str>| -> Option<Yaml> {
        match interp::interpolate(y, &|r: &str| globals.lookup(r, &[]).map_err(|(m, _)| m)) {
            Ok(v) => Some(v),
            Err((m, loc)) => {
                issues.add(loc, stage, m);
                None
            }
        }
    };
    let cache_dir = match root.get("cache").and_then(|y| resolve(y, issues, None)) {
        None => dir.join("cache"),
        Some(y) => match y.as_str() {
            Some(s) => match expand_home(s) {
                Ok(p) => dir.join(p),
                Err(m) => {
                    issues.add(y.loc, None, format!("`cache`: {m}"));
                    dir.join("cache")
                }
            },
            None => {
                issues.add(y.loc, None, "`cache` must be a path");
                dir.join("cache")
            }
        },
    };
    let executor = root
        .get("executor")
        .and_then(|y| resolve(y, issues, None))
        .map(|y| {
            let v = y.to_json();
            if let Err(m) = crate::slurm::config::parse_executor_block(&v) {
                issues.add(y.loc, None, m);
            }
            v
        });
    let mut stages = Vec::new();
    match root.get("stages") {
        None => issues.add(
            root.loc,
            None,
            "no `stages:` mapping; a pipeline needs at least one stage",
        ),
        Some(y) => match y.as_map() {
            None => issues.add(
                y.loc,
                None,
                format!(
                    "`stages` must be a mapping of stage names to stages, found {}",
                    y.type_name()
                ),
            ),
            Some(map) => {
                for (k, v) in map {
                    if let Some(s) = parse_stage(k, v, issues, &resolve) {
                        stages.push(s);
                    }
                }
            }
        },
    }
    Some(PipelineFile {
        path: path.to_path_buf(),
        dir,
        name,
        cache_dir,
        globals,
        stages,
        instance_overrides,
        executor,
    })
}

pub(crate) type Resolve<'a> = dyn Fn(&Yaml, &mut Issues, Option<&str>) -> Option<Yaml> + 'a;

fn parse_stage(key: &Yaml, y: &Yaml, issues: &mut Issues, resolve: &Resolve) -> Option<StageDecl> {
    let name = key.key_string();
    if !is_plain_name(&name) {
        issues.add(
            key.loc,
            None,
            format!("stage name '{name}' must use only letters, digits, '-', '_' and '.'"),
        );
        return None;
    }
    let st = Some(name.as_str());
    let Some(map) = y.as_map() else {
        issues.add(
            y.loc,
            st,
            format!(
                "expected a mapping with at least `kind:`, found {}",
                y.type_name()
            ),
        );
        return None;
    };
    for (k, _) in map {
        let ks = k.key_string();
        if !STAGE_KEYS.contains(&ks.as_str()) {
            issues.add(
                k.loc,
                st,
                format!(
                    "unknown key '{ks}' (a stage takes: {})",
                    STAGE_KEYS.join(", ")
                ),
            );
        }
    }
    let (kind, kind_loc) = match y.get("kind") {
        Some(k) if k.as_str().is_some_and(is_plain_name) => {
            (k.as_str().unwrap_or_default().to_string(), k.loc)
        }
        Some(k) => {
            issues.add(
                k.loc,
                st,
                "`kind` must be the name of a stage binary, e.g. preprocess-resize",
            );
            return None;
        }
        None => {
            issues.add(
                key.loc,
                st,
                "missing `kind:` (the stage binary to run, e.g. preprocess-resize)",
            );
            return None;
        }
    };
    let params = match y.get("params") {
        None => Yaml::new(YamlValue::Map(Vec::new()), key.loc),
        Some(p) if matches!(p.value, YamlValue::Null) => {
            Yaml::new(YamlValue::Map(Vec::new()), p.loc)
        }
        Some(p) if p.as_map().is_some() => p.clone(),
        Some(p) => {
            issues.add(
                p.loc,
                st,
                format!("`params` must be a mapping, found {}", p.type_name()),
            );
            Yaml::new(YamlValue::Map(Vec::new()), p.loc)
        }
    };
    let mut inputs = Vec::new();
    if let Some(iy) = y.get("inputs").and_then(|v| resolve(v, issues, st)) {
        match iy.as_map() {
            Some(m) => {
                for (k, v) in m {
                    if let Some(source) = parse_input(v, issues, st) {
                        inputs.push(InputDecl {
                            name: k.key_string(),
                            loc: k.loc,
                            source,
                        });
                    }
                }
            }
            None if matches!(iy.value, YamlValue::Null) => {}
            None => issues.add(
                iy.loc,
                st,
                "`inputs` must be a mapping of input names to sources",
            ),
        }
    }
    let mut outputs = Vec::new();
    if let Some(oy) = y.get("outputs").and_then(|v| resolve(v, issues, st)) {
        match &oy.value {
            YamlValue::Seq(items) => {
                for i in items {
                    match i.as_str() {
                        Some(s) if !s.is_empty() && !s.starts_with('/') && !s.split('/').any(|c| c == "..") => {
                            outputs.push((s.trim_end_matches('/').to_string(), i.loc))
                        }
                        _ => issues.add(i.loc, st, "each entry of `outputs` must be a relative path inside the stage's output folder"),
                    }
                }
            }
            _ => issues.add(oy.loc, st, "`outputs` must be a list of relative paths"),
        }
    }
    let resources = y
        .get("resources")
        .and_then(|v| resolve(v, issues, st))
        .map(|r| parse_resources(&r, issues, st))
        .unwrap_or_default();
    let (sweep, sweep_vars, sweep_loc) = parse_sweep(y, issues, st, resolve);
    Some(StageDecl {
        name: name.clone(),
        loc: key.loc,
        kind,
        kind_loc,
        params,
        inputs,
        outputs,
        resources,
        sweep,
        sweep_vars,
        sweep_loc,
    })
}

fn parse_resources(y: &Yaml, issues: &mut Issues, st: Option<&str>) -> Resources {
    let mut r = Resources::default();
    let Some(m) = y.as_map() else {
        issues.add(
            y.loc,
            st,
            "`resources` must be a mapping like {cpus: 2, gpus: 0, memory_gb: 4}",
        );
        return r;
    };
    for (k, v) in m {
        if k.key_string() == "time" {
            let text = match &v.value {
                YamlValue::Str(s) => Some(s.clone()),
                YamlValue::Int(i) => Some(i.to_string()),
                _ => None,
            };
            match text.map(|t| crate::slurm::config::parse_time_limit(&t)) {
                Some(Ok(secs)) => r.time_s = Some(secs),
                Some(Err(m)) => issues.add(v.loc, st, format!("resources.time: {m}")),
                None => issues.add(
                    v.loc,
                    st,
                    "resources.time must be minutes or a text like \"2:00:00\" (sbatch --time)",
                ),
            }
            continue;
        }
        let n = match v.value {
            YamlValue::Int(i) if i >= 0 => i as f64,
            YamlValue::Float(f) if f >= 0.0 => f,
            _ => {
                issues.add(
                    v.loc,
                    st,
                    format!("resources.{} must be a non-negative number", k.key_string()),
                );
                continue;
            }
        };
        match k.key_string().as_str() {
            "cpus" => r.cpus = (n.ceil() as u32).max(1),
            "gpus" => r.gpus = n.ceil() as u32,
            "memory_gb" => r.memory_gb = n,
            "shards" => r.shards = n.ceil() as u32,
            other => issues.add(
                k.loc,
                st,
                format!("unknown resource '{other}' (known: cpus, gpus, memory_gb, time, shards)"),
            ),
        }
    }
    r
}

pub fn is_plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !s.starts_with('.')
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;
