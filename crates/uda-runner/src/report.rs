//! `uda-pipe report` on the runner's side: resolving targets (paths, stages, instances) to result
//! folders with the instance that made them, and printing Parquet files as they are. The IoU
//! table of evaluate outputs is the `uda-report` crate's (called by the CLI), so polars stays out
//! of this crate.

use crate::error::{IoContext, Result, RunnerError};
use crate::history;
use crate::run::{Context, load};
use std::io::Write;
use std::path::{Path, PathBuf};

fn w(out: &mut dyn Write, s: impl AsRef<str>) -> Result<()> {
    writeln!(out, "{}", s.as_ref()).ctx(|| "writing output".into())
}

/// A file or folder that `report` prints, resolved from the command line.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportTarget {
    pub path: PathBuf,
    /// The pipeline instance that produced it: named on the command line, or found through the
    /// cache entry's `entry.json` when a folder inside the cache is given as a path.
    pub instance: Option<Instance>,
}

/// A stage instance as the report names it.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// `eval_ours` or `eval[beta=0.05,seed=1]`.
    pub id: String,
    pub stage: String,
    /// Sweep variables, values rendered as in the id.
    pub vars: Vec<(String, String)>,
}

/// Resolves `report` targets: existing files and folders are taken as they are; other names
/// are stages or instances of the pipeline (`eval` = all its instances), whose current (else
/// latest) result folder is taken. With no targets, every node of the pipeline that has a
/// result, in pipeline order.
pub fn resolve_report_targets(
    targets: &[String],
    pipeline: Option<&Path>,
    sets: &[String],
    cache: Option<&Path>,
) -> Result<Vec<ReportTarget>> {
    let mut ctx: Option<Context> = None;
    let context = |what: &str| -> Result<Context> {
        let pf = pipeline.ok_or_else(|| {
            RunnerError::Usage(format!(
                "{what}; to name stages give the pipeline file (-f FILE)"
            ))
        })?;
        load(pf, sets, cache)
    };
    let mut out = Vec::new();
    if targets.is_empty() {
        let c = context("nothing to report: name Parquet files, folders or stages")?;
        for i in 0..c.graph.nodes.len() {
            if let Some(t) = node_target(&c, i) {
                out.push(t);
            }
        }
        return Ok(out);
    }
    for t in targets {
        let p = Path::new(t);
        if p.exists() {
            out.push(ReportTarget {
                path: p.to_path_buf(),
                instance: instance_of_folder(p),
            });
            continue;
        }
        if ctx.is_none() {
            ctx = Some(context(&format!("'{t}' is not a file or folder"))?);
        }
        let c = ctx
            .as_ref()
            .ok_or_else(|| RunnerError::Usage("no pipeline".into()))?;
        for i in c.graph.select(t).map_err(RunnerError::Usage)? {
            out.push(node_target(c, i).ok_or_else(|| {
                RunnerError::Usage(format!(
                    "{} has no result yet; run it first",
                    c.graph.nodes[i].id
                ))
            })?);
        }
    }
    Ok(out)
}

/// The result folder of node `i`: its current entry, else the one its `latest` link points to.
fn node_target(c: &Context, i: usize) -> Option<ReportTarget> {
    let n = &c.graph.nodes[i];
    let key = c.keys[i].as_deref().unwrap_or_default();
    let path = if !key.is_empty() && c.cache.has_entry(key) {
        c.cache.out_dir(key)
    } else {
        c.cache
            .out_dir(&c.cache.latest_entry(&c.graph.name, &n.id)?.key)
    };
    Some(ReportTarget {
        path,
        instance: Some(Instance {
            id: n.id.clone(),
            stage: n.stage.clone(),
            vars: n
                .vars
                .iter()
                .map(|(k, v)| (k.clone(), crate::refs::render_value(v)))
                .collect(),
        }),
    })
}

/// For a cache entry's `out/` folder (directly or through a `latest` link), the instance recorded
/// in its `entry.json`; `None` for folders outside the cache.
pub fn instance_of_folder(path: &Path) -> Option<Instance> {
    let real = path.canonicalize().ok()?;
    if real.file_name()? != "out" {
        return None;
    }
    let text = std::fs::read_to_string(real.parent()?.join(crate::cache::ENTRY_FILE)).ok()?;
    let meta: crate::cache::EntryMeta = serde_json::from_str(&text).ok()?;
    let (stage, vars) = crate::refs::parse_instance_name(&meta.node).ok()?;
    Some(Instance {
        id: meta.node,
        stage,
        vars,
    })
}

/// `report --history`: the run history of the pipeline's cache (or of `cache`).
pub fn report_history(
    pipeline: Option<&Path>,
    cache: Option<&Path>,
    limit: usize,
    out: &mut dyn Write,
) -> Result<()> {
    let root = match (cache, pipeline) {
        (Some(c), _) => c.to_path_buf(),
        (None, Some(p)) => load(p, &[], None)?.cache.root().to_path_buf(),
        (None, None) => {
            return Err(RunnerError::Usage(
                "report --history needs the pipeline file (or --cache) to find the cache".into(),
            ));
        }
    };
    let batches: Vec<_> = history::history_files(&root.join("history"))
        .iter()
        .map(|f| history::read_parquet(f))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .map(|b| history::to_current_schema(&b))
        .collect::<Result<Vec<_>>>()?;
    w(out, history::pretty(&batches, limit)?)
}

/// Prints every Parquet file of the targets (a file, or all files under a folder) as a table.
pub fn report_parquet(targets: &[ReportTarget], limit: usize, out: &mut dyn Write) -> Result<()> {
    let mut files: Vec<PathBuf> = Vec::new();
    for t in targets {
        if t.path.is_dir() {
            files.extend(parquet_files(&t.path));
        } else {
            files.push(t.path.clone());
        }
    }
    if files.is_empty() {
        return Err(RunnerError::Usage("no Parquet files found".into()));
    }
    for f in files {
        w(out, format!("== {}", f.display()))?;
        let batches = history::read_parquet(&f)?;
        w(out, history::pretty(&batches, limit)?)?;
    }
    Ok(())
}

/// `report`: prints Parquet files (paths, folders, or the outputs of a stage) or the run history.
pub fn report(
    targets: &[String],
    pipeline: Option<&Path>,
    history_only: bool,
    limit: usize,
    out: &mut dyn Write,
) -> Result<()> {
    if history_only {
        return report_history(pipeline, None, limit, out);
    }
    if targets.is_empty() {
        return Err(RunnerError::Usage("no Parquet files found".into()));
    }
    let targets = resolve_report_targets(targets, pipeline, &[], None)?;
    report_parquet(&targets, limit, out)
}

fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "parquet"))
        .map(|e| e.path().to_path_buf())
        .collect();
    v.sort();
    v
}
