//! `uda-pipe report --html OUT.html` and `--plots DIR`: gathers the page's inputs
//! ([`uda_report::Sources`]) from the pipeline and its cache, and hands them to `uda_report`.
//!
//! Problems with single inputs (a named run that has no result yet, a folder that is not an
//! evaluate output) become notes at the top of the page instead of errors, so a half-finished
//! pipeline still gets a report that says what is missing.

use crate::ReportArgs;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;
use uda_report::{DagNode, PageOptions, Run, Sources};
use uda_runner::commands;

/// `per_class.parquet` / `summary.parquet` named directly stand for their folder.
fn dir_of(t: &commands::ReportTarget) -> PathBuf {
    let named = t.path.file_name().and_then(|n| n.to_str());
    match (named, t.path.parent()) {
        (Some(uda_report::PER_CLASS | uda_report::SUMMARY), Some(p)) => p.to_path_buf(),
        _ => t.path.clone(),
    }
}

fn to_run(t: &commands::ReportTarget) -> Run {
    match &t.instance {
        Some(i) => Run::new(&i.id, dir_of(t)).with_stage(&i.stage, i.vars.clone()),
        None => Run::from_dir(dir_of(t)),
    }
}

/// The page's inputs: the evaluate outputs named (default: all of the pipeline's), every result
/// of the pipeline (for train logs and pseudo-labels), the run history and the DAG.
fn gather(a: &ReportArgs) -> anyhow::Result<Sources> {
    let cache = a.p.cache.as_deref();
    let pipeline = Some(a.p.pipeline.as_path()).filter(|p| p.exists());
    let mut s = Sources::default();
    if let Some(file) = pipeline {
        let ctx = uda_runner::load(file, &a.p.sets, cache)?;
        let all = commands::resolve_report_targets(&[], Some(file), &a.p.sets, cache)?;
        s.results = all.iter().map(to_run).collect();
        let absent: Vec<&str> = ctx
            .graph
            .nodes
            .iter()
            .map(|n| n.id.as_str())
            .filter(|id| !s.results.iter().any(|r| r.name == *id))
            .collect();
        if !absent.is_empty() {
            s.notes.push(format!(
                "no result yet for {} (not run, or failed: `uda-pipe status`, `uda-pipe log STAGE`)",
                absent.join(", ")
            ));
        }
        s.history = Some(ctx.cache.root().join("history"));
        s.pipeline = Some(ctx.graph.name.clone());
        s.dag = ctx
            .graph
            .nodes
            .iter()
            .map(|n| DagNode {
                id: n.id.clone(),
                deps: n.deps(),
            })
            .collect();
    } else if let Some(c) = cache {
        s.history = Some(c.join("history"));
    }
    if a.targets.is_empty() {
        if pipeline.is_none() {
            anyhow::bail!(
                "report --html/--plots: no {} here; name evaluate folders or give -f FILE",
                a.p.pipeline.display()
            );
        }
        s.runs = s
            .results
            .iter()
            .filter(|r| uda_report::is_evaluate_output(&r.dir))
            .cloned()
            .collect();
    } else {
        for t in &a.targets {
            match commands::resolve_report_targets(
                std::slice::from_ref(t),
                pipeline,
                &a.p.sets,
                cache,
            ) {
                Ok(found) => {
                    for f in &found {
                        let r = to_run(f);
                        if uda_report::is_evaluate_output(&r.dir) {
                            s.runs.push(r);
                        } else {
                            s.notes.push(format!(
                                "{t}: {} is not an evaluate output (no per_class.parquet and \
                                 summary.parquet); left out of the table",
                                r.dir.display()
                            ));
                            if !s.results.iter().any(|x| x.dir == r.dir) {
                                s.results.push(r);
                            }
                        }
                    }
                }
                Err(e) => s.notes.push(format!("{t}: {e}")),
            }
        }
        if pipeline.is_none() {
            s.results.extend(s.runs.iter().cloned());
        }
    }
    Ok(s)
}

pub(crate) fn report_pages(a: &ReportArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let started = Instant::now();
    let sources = gather(a)?;
    let opts = PageOptions {
        table: a.table_options()?,
        baseline: a.baseline.clone(),
        confusion: a.confusion.clone(),
        title: match &sources.pipeline {
            Some(p) => format!("{p}: uda-pipe report"),
            None => "uda-pipe report".into(),
        },
        ..PageOptions::default()
    };
    if let Some(path) = &a.html {
        let w = uda_report::write_html(&sources, &opts, path)?;
        writeln!(
            out,
            "wrote {} ({:.0} KB, {} notes) in {:.2} s",
            path.display(),
            w.bytes as f64 / 1024.0,
            w.notes,
            started.elapsed().as_secs_f64()
        )?;
    }
    if let Some(dir) = &a.plots {
        let w = uda_report::write_plots(&sources, &opts, dir)?;
        writeln!(
            out,
            "wrote {} files to {} ({:.0} KB, {} notes) in {:.2} s",
            w.files.len(),
            dir.display(),
            w.bytes as f64 / 1024.0,
            w.notes,
            started.elapsed().as_secs_f64()
        )?;
    }
    Ok(())
}
