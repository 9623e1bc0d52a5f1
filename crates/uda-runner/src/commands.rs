//! The `uda-pipe` subcommands other than `run` (which lives in [`crate::run`]): `status`, `dag`,
//! `show`, `log`, `gc` and `report` (the latter in [`crate::report`], re-exported here). Each
//! writes its text to the given writer.

use crate::cache::{Cache, remove_tree};
use crate::error::{IoContext, Result, RunnerError};
use crate::graph::{Graph, Source, params_summary};
use crate::plan::{self, Decision, short};
pub use crate::report::{
    Instance, ReportTarget, instance_of_folder, report, report_history, report_parquet,
    resolve_report_targets,
};
use crate::run::Context;
use crate::ui::{human_bytes, human_duration};
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn w(out: &mut dyn Write, s: impl AsRef<str>) -> Result<()> {
    writeln!(out, "{}", s.as_ref()).ctx(|| "writing output".into())
}

/// `status`: every node, up to date or why it would run.
pub fn status(ctx: &Context, verify: bool, out: &mut dyn Write) -> Result<usize> {
    let g = &ctx.graph;
    let all: Vec<usize> = (0..g.nodes.len()).collect();
    let decisions = plan::decide(g, &ctx.cache, &ctx.keys, &ctx.externals, &all, &[], verify);
    w(
        out,
        format!(
            "pipeline {} ({}), cache {}",
            g.name,
            g.file.display(),
            ctx.cache.root().display()
        ),
    )?;
    let width = g.nodes.iter().map(|n| n.id.len()).max().unwrap_or(0);
    let mut stale = 0;
    for (i, n) in g.nodes.iter().enumerate() {
        match &decisions[i] {
            Decision::Cached => {
                let key = ctx.keys[i].as_deref().unwrap_or_default();
                let meta = ctx.cache.read_entry(key);
                let accepted = meta
                    .as_ref()
                    .and_then(|m| m.accepted.as_ref())
                    .map(|a| format!("  {a}"))
                    .unwrap_or_default();
                let when = meta
                    .map(|m| {
                        format!(
                            "ran {} in {}",
                            m.started,
                            human_duration(Duration::from_secs_f64(m.duration_s))
                        )
                    })
                    .unwrap_or_default();
                w(
                    out,
                    format!(
                        "  ✓ {:width$}  up to date  key {}  {when}{accepted}",
                        n.id,
                        short(key)
                    ),
                )?;
            }
            Decision::Depends(ups) => {
                w(
                    out,
                    format!(
                        "  … {:width$}  runs only if the outputs of {} change",
                        n.id,
                        crate::run::ids(g, ups)
                    ),
                )?;
            }
            Decision::Run(reasons) => {
                stale += 1;
                w(
                    out,
                    format!("  ✗ {:width$}  will run: {}", n.id, plan::join(reasons)),
                )?;
            }
        }
    }
    for (p, e) in &ctx.externals {
        if e.rehashed > 0 {
            w(
                out,
                format!(
                    "  (hashed {} changed or new files under {})",
                    e.rehashed,
                    p.display()
                ),
            )?;
        }
    }
    Ok(stale)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DagFormat {
    #[default]
    Text,
    Dot,
    Mermaid,
}

/// `dag`: the graph as text, Graphviz dot or Mermaid.
pub fn dag(g: &Graph, format: DagFormat, out: &mut dyn Write) -> Result<()> {
    let mut externals: Vec<&PathBuf> = Vec::new();
    for n in &g.nodes {
        for i in &n.inputs {
            if let Source::External(p) = &i.source
                && !externals.contains(&p)
            {
                externals.push(p);
            }
        }
    }
    let ext_name = |p: &Path| -> String {
        p.strip_prefix(&g.dir)
            .map(|r| format!("./{}", r.display()))
            .unwrap_or_else(|_| p.display().to_string())
    };
    let edges = |n: &crate::graph::Node| -> Vec<(String, String, bool)> {
        let mut v = Vec::new();
        for i in &n.inputs {
            match &i.source {
                Source::Node { node, subpath } => {
                    let label = match subpath {
                        Some(s) => format!("{} ({s})", i.name),
                        None => i.name.clone(),
                    };
                    v.push((g.nodes[*node].id.clone(), label, false));
                }
                Source::All { nodes } => v.extend(
                    nodes
                        .iter()
                        .map(|&u| (g.nodes[u].id.clone(), format!("{} (all)", i.name), false)),
                ),
                Source::External(p) => v.push((ext_name(p), i.name.clone(), true)),
            }
        }
        v
    };
    match format {
        DagFormat::Text => {
            for n in &g.nodes {
                let e = edges(n);
                let ins = if e.is_empty() {
                    String::new()
                } else {
                    format!(
                        "  <- {}",
                        e.iter()
                            .map(|(from, label, _)| format!("{label}: {from}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                w(out, format!("{} [{}]{ins}", n.id, n.kind))?;
            }
        }
        DagFormat::Dot => {
            w(
                out,
                format!(
                    "digraph \"{}\" {{\n  rankdir=LR;\n  node [shape=box, style=rounded];",
                    g.name
                ),
            )?;
            for p in &externals {
                w(out, format!("  \"{}\" [shape=folder];", ext_name(p)))?;
            }
            for n in &g.nodes {
                w(
                    out,
                    format!("  \"{}\" [label=\"{}\\n{}\"];", n.id, n.id, n.kind),
                )?;
                for (from, label, _) in edges(n) {
                    w(
                        out,
                        format!("  \"{from}\" -> \"{}\" [label=\"{label}\"];", n.id),
                    )?;
                }
            }
            w(out, "}")?;
        }
        DagFormat::Mermaid => {
            w(out, "flowchart LR")?;
            let id_of = |name: &str| -> String {
                if let Some(i) = g.nodes.iter().position(|n| n.id == name) {
                    format!("n{i}")
                } else {
                    format!(
                        "e{}",
                        externals
                            .iter()
                            .position(|p| ext_name(p) == name)
                            .unwrap_or(0)
                    )
                }
            };
            for (k, p) in externals.iter().enumerate() {
                w(out, format!("  e{k}[(\"{}\")]", ext_name(p)))?;
            }
            for (i, n) in g.nodes.iter().enumerate() {
                w(
                    out,
                    format!("  n{i}[\"{}<br/><small>{}</small>\"]", n.id, n.kind),
                )?;
            }
            for n in &g.nodes {
                for (from, label, _) in edges(n) {
                    w(
                        out,
                        format!("  {} -->|{label}| {}", id_of(&from), id_of(&n.id)),
                    )?;
                }
            }
        }
    }
    Ok(())
}

/// `show STAGE`: path, params, key, state, timings and metrics of each selected node.
pub fn show(ctx: &Context, pattern: &str, out: &mut dyn Write) -> Result<()> {
    let g = &ctx.graph;
    let sel = g.select(pattern).map_err(RunnerError::Usage)?;
    let all: Vec<usize> = (0..g.nodes.len()).collect();
    let decisions = plan::decide(g, &ctx.cache, &ctx.keys, &ctx.externals, &all, &[], false);
    for (k, &i) in sel.iter().enumerate() {
        if k > 0 {
            w(out, "")?;
        }
        let n = &g.nodes[i];
        let key = ctx.keys[i].as_deref().unwrap_or_default();
        w(out, format!("{}  [{}]", n.id, n.kind))?;
        w(
            out,
            format!(
                "  binary:  {} (blake3 {})",
                n.binary.path.display(),
                short(&crate::hashing::hex(&n.binary.hash))
            ),
        )?;
        if key.is_empty() {
            w(out, "  key:     known once its upstream has run")?;
        } else {
            w(out, format!("  key:     {key}"))?;
        }
        let (meta, state) = match &decisions[i] {
            Decision::Cached => (ctx.cache.read_entry(key), "up to date".to_string()),
            Decision::Run(r) => (
                ctx.cache.latest_entry(&g.name, &n.id),
                format!("out of date: {}", plan::join(r)),
            ),
            Decision::Depends(ups) => (
                ctx.cache.latest_entry(&g.name, &n.id),
                format!(
                    "runs only if the outputs of {} change",
                    crate::run::ids(g, ups)
                ),
            ),
        };
        if let Some(a) = meta.as_ref().and_then(|m| m.accepted.as_ref()) {
            w(out, format!("  {a}"))?;
        }
        w(out, format!("  state:   {state}"))?;
        w(
            out,
            format!(
                "  link:    {}",
                ctx.cache.latest_link(&g.name, &n.id).display()
            ),
        )?;
        match &meta {
            Some(m) => {
                let note = if m.key == *key {
                    String::new()
                } else {
                    format!("  (previous result, key {})", m.key)
                };
                w(
                    out,
                    format!("  path:    {}{note}", ctx.cache.out_dir(&m.key).display()),
                )?;
                w(
                    out,
                    format!(
                        "  ran:     {} for {}, peak memory {}, exit status {}",
                        m.started,
                        human_duration(Duration::from_secs_f64(m.duration_s)),
                        human_bytes(m.peak_rss_bytes),
                        m.exit_status
                    ),
                )?;
                if let Some(r) = &m.scheduler {
                    w(out, format!("  {}", describe_remote(r)))?;
                }
                w(
                    out,
                    format!(
                        "  outputs: {} files, {}",
                        m.manifest.len(),
                        human_bytes(m.manifest.iter().map(|f| f.size).sum())
                    ),
                )?;
            }
            None => w(out, "  path:    (not computed yet)")?,
        }
        w(out, format!("  params:  {}", params_summary(&n.params)))?;
        for inp in &n.inputs {
            let from = match &inp.source {
                Source::Node { node, subpath } => format!(
                    "{}{}",
                    g.nodes[*node].id,
                    subpath
                        .as_ref()
                        .map(|s| format!("/{s}"))
                        .unwrap_or_default()
                ),
                Source::All { nodes } => format!(
                    "all of {}",
                    nodes
                        .iter()
                        .map(|&u| g.nodes[u].id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Source::External(p) => format!(
                    "{} (content {})",
                    p.display(),
                    short(&ctx.externals[p].content)
                ),
            };
            w(out, format!("  input:   {} <- {from}", inp.name))?;
        }
        if let Some(metrics) = meta
            .as_ref()
            .and_then(|m| m.metrics.as_ref())
            .and_then(|m| m.as_object())
        {
            w(out, "  metrics:")?;
            for (k, v) in metrics {
                w(out, format!("    {k}: {v}"))?;
            }
        }
    }
    Ok(())
}

/// `log STAGE`: the log of the current entry, else of the last failed attempt, else the previous entry.
pub fn log(ctx: &Context, pattern: &str, out: &mut dyn Write) -> Result<()> {
    let g = &ctx.graph;
    for i in g.select(pattern).map_err(RunnerError::Usage)? {
        let n = &g.nodes[i];
        let key = ctx.keys[i].as_deref().unwrap_or_default();
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let failed_since = modified(&ctx.cache.failed_log(key)).is_some_and(|f| {
            modified(&ctx.cache.entry_dir(key).join(crate::cache::ENTRY_FILE))
                .is_none_or(|e| f >= e)
        });
        let (path, note) = if ctx.cache.has_entry(key) && !failed_since {
            (
                ctx.cache.entry_dir(key).join("log.txt"),
                "current result".to_string(),
            )
        } else if failed_since {
            (ctx.cache.failed_log(key), "last attempt FAILED".to_string())
        } else if let Some(m) = ctx.cache.latest_entry(&g.name, &n.id) {
            (
                ctx.cache.entry_dir(&m.key).join("log.txt"),
                format!("previous result {}, out of date", short(&m.key)),
            )
        } else {
            w(out, format!("== {}: no log (never ran)", n.id))?;
            continue;
        };
        w(out, format!("== {} ({note}): {}", n.id, path.display()))?;
        let text = std::fs::read_to_string(&path).ctx(|| format!("reading {}", path.display()))?;
        write!(out, "{text}").ctx(|| "writing output".into())?;
    }
    Ok(())
}

/// What `gc` removed (or would remove).
#[derive(Debug, Default)]
pub struct GcReport {
    pub entries: Vec<String>,
    pub bytes: u64,
    pub other: usize,
    /// Entries that were not reachable but are leased by a running pipeline (left alone).
    pub in_use: Vec<String>,
}

/// `gc`: removes entries not reachable from the given pipelines (all sharing `cache`), plus
/// trash, staging folders of dead runs, failed logs and listings nobody needs.
pub fn gc(
    cache: &Cache,
    contexts: &[Context],
    dry_run: bool,
    out: &mut dyn Write,
) -> Result<GcReport> {
    let mut keep: HashSet<String> = HashSet::new();
    let mut keep_trees: HashSet<String> = HashSet::new();
    for c in contexts {
        keep.extend(c.keys.iter().flatten().cloned());
        // A node whose key is not known yet (below one without an entry) may come back to its
        // previous entry when the upstream's outputs come out the same: keep that one too.
        keep.extend(
            c.graph
                .nodes
                .iter()
                .zip(&c.keys)
                .filter(|(_, k)| k.is_none())
                .filter_map(|(n, _)| c.cache.latest_entry(&c.graph.name, &n.id))
                .map(|m| m.key),
        );
        keep_trees.extend(c.externals.values().map(|e| e.content.clone()));
    }
    let mut rep = GcReport::default();
    let verb = if dry_run { "would remove" } else { "removed" };
    for key in cache.keys() {
        if keep.contains(&key) {
            if let Some(m) = cache.read_entry(&key) {
                for r in m.inputs.values() {
                    if let crate::cache::InputRecord::External { content, .. } = r {
                        keep_trees.insert(content.clone());
                    }
                }
            }
            continue;
        }
        let dir = cache.entry_dir(&key);
        let size = dir_size(&dir);
        let what = cache
            .read_entry(&key)
            .map(|m| format!("{} [{}]", m.node, m.kind))
            .unwrap_or_else(|| "unreadable entry".into());
        // A running pipeline holds a shared lease on every entry it may read: leave those.
        let Some(_claim) = cache.try_claim(&key)? else {
            w(
                out,
                format!("kept {key}  {what}: in use by a running uda-pipe (run gc again later)"),
            )?;
            rep.in_use.push(key);
            continue;
        };
        w(out, format!("{verb} {key}  {what}  {}", human_bytes(size)))?;
        if !dry_run {
            // Hold the key's lock too, so a run about to compute it waits.
            let _l = cache.lock(&key, |_| {})?;
            remove_tree(&dir);
        }
        rep.bytes += size;
        rep.entries.push(key);
    }
    let mut extra: Vec<PathBuf> = Vec::new();
    if let Ok(rd) = std::fs::read_dir(cache.root().join("trash")) {
        extra.extend(rd.flatten().map(|e| e.path()));
    }
    if let Ok(rd) = std::fs::read_dir(cache.state_dir().join("trees")) {
        extra.extend(rd.flatten().map(|e| e.path()).filter(|p| {
            !p.file_stem()
                .is_some_and(|s| keep_trees.contains(&*s.to_string_lossy()))
        }));
    }
    if let Ok(rd) = std::fs::read_dir(cache.root().join("failed")) {
        extra.extend(rd.flatten().map(|e| e.path()).filter(|p| {
            !p.file_stem()
                .is_some_and(|s| keep.contains(&*s.to_string_lossy()))
        }));
    }
    // Staging folders whose key lock is free belong to dead runs.
    if let Ok(rd) = std::fs::read_dir(cache.root().join("tmp")) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let key = name.split('.').next().unwrap_or_default().to_string();
            let lock = cache.root().join("locks").join(format!("{key}.lock"));
            let free = std::fs::File::open(&lock)
                .map(|f| f.try_lock().is_ok())
                .unwrap_or(true)
                // A Slurm job whose submitter died may still be writing there.
                && crate::owner::read(&lock.with_extension("owner"))
                    .is_none_or(|r| crate::owner::is_stale(&r, &crate::owner::SystemProbe));
            if free {
                extra.push(e.path());
            }
        }
    }
    for p in &extra {
        let size = dir_size(p);
        rep.bytes += size;
        rep.other += 1;
        w(
            out,
            format!(
                "{verb} {}  {}",
                p.strip_prefix(cache.root()).unwrap_or(p).display(),
                human_bytes(size)
            ),
        )?;
        if !dry_run {
            if p.is_dir() {
                remove_tree(p);
            } else {
                let _ = std::fs::remove_file(p);
            }
        }
    }
    // Links to removed entries.
    if !dry_run && let Ok(rd) = std::fs::read_dir(cache.root().join("latest")) {
        for pipe in rd.flatten() {
            for l in std::fs::read_dir(pipe.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                if !l.path().exists() {
                    let _ = std::fs::remove_file(l.path());
                }
            }
        }
    }
    w(
        out,
        format!(
            "{verb} {} entries and {} other items, {}",
            rep.entries.len(),
            rep.other,
            human_bytes(rep.bytes)
        ),
    )?;
    Ok(rep)
}

fn dir_size(p: &Path) -> u64 {
    walkdir::WalkDir::new(p)
        .into_iter()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// `show`'s line for an entry a batch scheduler computed.
fn describe_remote(r: &crate::executor::RemoteRecord) -> String {
    let mut s = format!(
        "{}:   job {}, {}, queued {:.1} s, on {}",
        r.executor,
        r.job_ids.join(","),
        r.state.name(),
        r.queued_s,
        if r.nodes.is_empty() {
            "(node unknown)".to_string()
        } else {
            r.nodes.join(",")
        }
    );
    if r.shards > 1 {
        s.push_str(&format!(", {} shards", r.shards));
    }
    if r.attempts > 1 {
        s.push_str(&format!(", attempt {}", r.attempts));
    }
    s
}
