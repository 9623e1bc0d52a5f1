//! `uda-pipe accept STAGE... [--downstream]`: after a code change the user knows leaves results
//! unchanged (a refactor, a comment, a faster kernel with identical output), the existing
//! entries stand for the new build without rerunning: the analogue of `dvc commit`.
//!
//! Only the code may differ: the node's previous entry must be exactly what the node's key
//! would be with the old binary (same kind, params and input content). The new entry shares the
//! old one's files (hard links) and records the acceptance, which `status`, `show` and the run
//! history show. With content keys, everything downstream of an accepted entry stays cached.

use crate::cache::{Acceptance, BinaryRecord, EntryMeta};
use crate::error::{IoContext, Result, RunnerError};
use crate::hashing;
use crate::history::{self, HistoryRow};
use crate::plan::{self, short};
use crate::run::Context;
use std::io::Write;
use std::path::Path;

/// What `accept` did with one node.
#[derive(Debug, Clone, PartialEq)]
pub enum Accepted {
    /// A new entry for the current build now stands in for the previous one.
    Carried {
        node: String,
        from: String,
        to: String,
    },
    /// The current build's entry exists already (its code did not change).
    UpToDate { node: String },
}

/// Accepts the selected nodes (and, with `downstream`, everything below them) in pipeline order.
/// Refuses, naming the node and what to do, when a node has no previous entry or its previous
/// entry differs in more than the code.
pub fn accept(
    ctx: &Context,
    patterns: &[String],
    downstream: bool,
    out: &mut dyn Write,
) -> Result<Vec<Accepted>> {
    let g = &ctx.graph;
    let mut selected = Vec::new();
    for p in patterns {
        selected.extend(g.select(p).map_err(RunnerError::Usage)?);
    }
    if downstream {
        let more = g.downstream(&selected);
        selected.extend(more);
    }
    selected.sort_unstable();
    selected.dedup();
    let mut keys = ctx.keys.clone();
    let mut done = Vec::new();
    let mut rows = Vec::new();
    let run_id = format!("{}-{}-accept", crate::cache::now_ms(), std::process::id());
    for &i in &selected {
        let n = &g.nodes[i];
        let outputs = |u: usize| {
            keys[u]
                .as_deref()
                .and_then(|k| ctx.cache.read_entry(k))
                .map(|m| m.outputs_hash)
        };
        let binary = hashing::hex(&n.binary.hash);
        let Some(key) = plan::node_key(g, i, &binary, &ctx.externals, &outputs) else {
            return Err(RunnerError::Usage(format!(
                "accept {}: its inputs are not all in the cache (an upstream has no entry); run the pipeline first",
                n.id
            )));
        };
        if ctx.cache.has_entry(&key) {
            ctx.cache.set_latest(&g.name, &n.id, &key)?;
            keys[i] = Some(key);
            done.push(Accepted::UpToDate { node: n.id.clone() });
            continue;
        }
        let Some(prev) = ctx.cache.latest_entry(&g.name, &n.id) else {
            return Err(RunnerError::Usage(format!(
                "accept {}: no entry of it exists in this cache, so there is nothing to carry over to the new build; run it (uda-pipe run --stage '{}')",
                n.id, n.id
            )));
        };
        let old_key = plan::node_key(g, i, &prev.binary.blake3, &ctx.externals, &outputs);
        if old_key.as_deref() != Some(prev.key.as_str()) {
            return Err(RunnerError::Usage(format!(
                "accept {}: its previous entry {} differs in more than its code (params, inputs or kind changed too), so it cannot stand for the new build; run it ({})",
                n.id,
                short(&prev.key),
                plan::join(&plan::explain(g, &ctx.cache, &keys, &ctx.externals, i))
            )));
        }
        carry_over(ctx, &prev, &key, &n.binary.path, &binary)?;
        ctx.cache.set_latest(&g.name, &n.id, &key)?;
        writeln!(
            out,
            "accepted {}: entry {} (blake3 {}) now stands for blake3 {} as {}",
            n.id,
            short(&prev.key),
            short(&prev.binary.blake3),
            short(&binary),
            short(&key)
        )
        .ctx(|| "writing output".into())?;
        rows.push(HistoryRow {
            run_id: run_id.clone(),
            pipeline: g.name.clone(),
            node: n.id.clone(),
            stage: n.stage.clone(),
            kind: n.kind.clone(),
            key: key.clone(),
            outcome: "accepted".into(),
            start_ms: crate::cache::now_ms(),
            duration_s: 0.0,
            peak_rss_bytes: None,
            exit_status: None,
            executor: None,
            job_id: None,
        });
        done.push(Accepted::Carried {
            node: n.id.clone(),
            from: prev.key.clone(),
            to: key.clone(),
        });
        keys[i] = Some(key);
    }
    if !rows.is_empty() {
        history::write_run(&ctx.cache.history_dir(), &run_id, &rows)?;
    }
    let fresh = done
        .iter()
        .filter(|a| matches!(a, Accepted::UpToDate { .. }))
        .count();
    writeln!(
        out,
        "{} accepted, {fresh} already up to date",
        done.len() - fresh
    )
    .ctx(|| "writing output".into())?;
    Ok(done)
}

/// Makes entry `key` from `prev`: its files hard-linked (same bytes, same stat, so the manifest
/// still verifies), its record rewritten for the new binary with the acceptance.
fn carry_over(
    ctx: &Context,
    prev: &EntryMeta,
    key: &str,
    binary_path: &Path,
    binary: &str,
) -> Result<()> {
    let cache = &ctx.cache;
    let _lock = cache.lock(key, |_| {})?;
    let staging = cache.staging(key)?;
    let from = cache.entry_dir(&prev.key);
    for entry in walkdir::WalkDir::new(&from).follow_links(false) {
        let entry = entry.map_err(|e| {
            RunnerError::io(
                format!("reading entry {}", prev.key),
                std::io::Error::other(e.to_string()),
            )
        })?;
        let rel = entry.path().strip_prefix(&from).unwrap_or(entry.path());
        if rel.as_os_str().is_empty() || rel == Path::new(crate::cache::ENTRY_FILE) {
            continue;
        }
        let to = staging.join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&to).ctx(|| format!("creating {}", to.display()))?;
        } else if entry.file_type().is_symlink() {
            let target = std::fs::read_link(entry.path())
                .ctx(|| format!("reading link {}", entry.path().display()))?;
            std::os::unix::fs::symlink(&target, &to).ctx(|| format!("linking {}", to.display()))?;
        } else {
            std::fs::hard_link(entry.path(), &to)
                .ctx(|| format!("linking {} to {}", entry.path().display(), to.display()))?;
        }
    }
    let mut meta = prev.clone();
    meta.format = crate::cache::ENTRY_FORMAT;
    meta.key = key.to_string();
    meta.binary = BinaryRecord {
        path: binary_path.to_path_buf(),
        blake3: binary.to_string(),
    };
    meta.accepted = Some(Acceptance {
        from_key: prev.key.clone(),
        computed_by: prev.binary.clone(),
        at: crate::cache::rfc3339(crate::cache::now_ms()),
        by: format!(
            "{}@{}",
            std::env::var("USER").unwrap_or_else(|_| "unknown".into()),
            crate::cache::hostname()
        ),
    });
    cache.commit(&staging, &meta)
}
