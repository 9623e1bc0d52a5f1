//! Which evaluate outputs go into a table, under which names, and which of them are one row.

use crate::error::{ReportError, Result};
use std::path::{Path, PathBuf};

/// The evaluate stage's per-class file (`uda_metrics::report::PER_CLASS`; repeated here so this
/// crate does not link the metric core and its Zarr/PNG dependencies into the CLI).
pub const PER_CLASS: &str = "per_class.parquet";
/// The evaluate stage's one-row summary (`uda_metrics::report::SUMMARY`).
pub const SUMMARY: &str = "summary.parquet";
/// The sweep variable whose instances are repeats of one experiment, aggregated as mean ± std.
pub const SEED: &str = "seed";

/// One evaluate output: a row of the table before seeds are aggregated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// Instance id (`eval_ours`, `eval[beta=0.05,seed=1]`) or folder name: what the table shows.
    pub name: String,
    /// The pipeline stage the instance belongs to (`eval` for `eval[beta=0.05]`). Seeds are only
    /// aggregated within one stage, so two stages evaluating different models never merge.
    pub stage: String,
    /// Sweep variables (`beta`, `seed`), values as rendered in instance ids.
    pub params: Vec<(String, String)>,
    /// The folder holding `per_class.parquet` and `summary.parquet`.
    pub dir: PathBuf,
    /// How the evaluated model was trained, when known (the CLI finds it in the cache entry of
    /// the training stage the evaluation read); the component layout's check marks come from it.
    pub training: Option<crate::components::Training>,
}

impl Run {
    /// A run named like a pipeline instance: `stage` or `stage[var=value,...]`. The stage and
    /// variables are parsed from the name, so `cache/latest/<pipeline>/eval[seed=1]` folders keep
    /// their meaning even when given as plain paths.
    pub fn new(name: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        let name = name.into();
        let (stage, params) = parse_instance_name(&name).unwrap_or_else(|| (name.clone(), vec![]));
        Self {
            name,
            stage,
            params,
            dir: dir.into(),
            training: None,
        }
    }

    /// A run named after its folder (`.../eval_ours` → `eval_ours`).
    pub fn from_dir(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        Self::new(name, dir)
    }

    /// Sets the stage and sweep variables explicitly (the runner knows them from the pipeline).
    pub fn with_stage(mut self, stage: impl Into<String>, params: Vec<(String, String)>) -> Self {
        self.stage = stage.into();
        self.params = params;
        self
    }

    /// Records how the evaluated model was trained (see [`Run::training`]).
    pub fn with_training(mut self, training: Option<crate::components::Training>) -> Self {
        self.training = training;
        self
    }

    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The row this run belongs to: instances that differ only in `seed` share one
    /// (`eval[beta=0.01,seed=2]` → `eval[beta=0.01]`, `eval[seed=2]` → `eval`); other runs are
    /// their own row.
    pub fn row_name(&self, aggregate_seeds: bool) -> String {
        if !aggregate_seeds || self.param(SEED).is_none() {
            return self.name.clone();
        }
        let rest: Vec<String> = self
            .params
            .iter()
            .filter(|(k, _)| k != SEED)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if rest.is_empty() {
            self.stage.clone()
        } else {
            format!("{}[{}]", self.stage, rest.join(","))
        }
    }

    /// Fails with a message naming the folder when it is not an evaluate output.
    pub fn check(&self) -> Result<()> {
        check_folder(&self.name, &self.dir)
    }
}

/// `stage[k=v,...]` → (stage, vars); `None` when the name is not of that shape (then it is
/// taken whole as the stage).
fn parse_instance_name(name: &str) -> Option<(String, Vec<(String, String)>)> {
    let Some(open) = name.find('[') else {
        return Some((name.to_string(), vec![]));
    };
    let inner = name[open + 1..].strip_suffix(']')?;
    let vars = inner
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect::<Option<Vec<_>>>()?;
    Some((name[..open].to_string(), vars))
}

/// Whether `dir` holds the evaluate stage's `per_class.parquet` and `summary.parquet`.
pub fn is_evaluate_output(dir: &Path) -> bool {
    dir.join(PER_CLASS).is_file() && dir.join(SUMMARY).is_file()
}

/// Fails with a message naming `dir` when it is not an evaluate output.
pub fn check_evaluate_output(dir: &Path) -> Result<()> {
    check_folder(&Run::from_dir(dir).name, dir)
}

fn check_folder(name: &str, dir: &Path) -> Result<()> {
    for missing in [PER_CLASS, SUMMARY] {
        if !dir.join(missing).is_file() {
            return Err(ReportError::NotEvaluateOutput {
                name: name.to_string(),
                path: dir.to_path_buf(),
                missing,
            });
        }
    }
    Ok(())
}

/// Parses `--where KEY=VALUE`.
pub fn parse_filter(s: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(ReportError::BadFilter(s.to_string())),
    }
}

/// Keeps the runs whose params match every filter; drops exact repeats (one instance named
/// twice, e.g. `eval` and `eval[seed=1]`); rejects one name for two folders.
pub fn select(runs: &[Run], filters: &[(String, String)]) -> Result<Vec<Run>> {
    let mut out: Vec<Run> = Vec::new();
    for r in runs {
        if !filters.iter().all(|(k, v)| r.param(k) == Some(v.as_str())) {
            continue;
        }
        match out.iter().find(|o| o.name == r.name) {
            Some(o) if same_dir(&o.dir, &r.dir) => {}
            Some(o) => {
                return Err(ReportError::DuplicateRun {
                    name: r.name.clone(),
                    first: o.dir.clone(),
                    second: r.dir.clone(),
                });
            }
            None => out.push(r.clone()),
        }
    }
    if out.is_empty() {
        if runs.is_empty() {
            return Err(ReportError::NoRuns);
        }
        return Err(ReportError::NothingSelected {
            filters: filters
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
            runs: runs
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(out)
}

fn same_dir(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_into_stage_and_vars_and_seeds_share_a_row() {
        let r = Run::new("eval[beta=0.01,seed=2]", "/x");
        assert_eq!(r.stage, "eval");
        assert_eq!(r.param("beta"), Some("0.01"));
        assert_eq!(r.row_name(true), "eval[beta=0.01]");
        assert_eq!(r.row_name(false), "eval[beta=0.01,seed=2]");
        assert_eq!(Run::new("eval[seed=2]", "/x").row_name(true), "eval");
        let plain = Run::from_dir("/a/eval_ours");
        assert_eq!(
            (plain.name.as_str(), plain.stage.as_str()),
            ("eval_ours", "eval_ours")
        );
        assert_eq!(plain.row_name(true), "eval_ours");
        assert_eq!(Run::new("odd[name", "/x").stage, "odd[name");
    }

    #[test]
    fn select_filters_dedupes_and_rejects_clashing_names() {
        let a = Run::new("e[seed=1]", "/a");
        let b = Run::new("e[seed=2]", "/b");
        let got = select(
            &[a.clone(), b.clone(), a.clone()],
            &[parse_filter("seed=2").unwrap()],
        )
        .unwrap();
        assert_eq!(got, vec![b.clone()]);
        assert_eq!(select(&[a.clone(), a.clone()], &[]).unwrap().len(), 1);
        let clash = Run::new("e[seed=1]", "/c");
        assert!(matches!(
            select(&[a.clone(), clash], &[]),
            Err(ReportError::DuplicateRun { .. })
        ));
        let none = select(&[a, b], &[parse_filter("seed=9").unwrap()]).unwrap_err();
        assert!(
            none.to_string().contains("no run matches --where seed=9"),
            "{none}"
        );
        assert!(parse_filter("seed").is_err());
    }
}
