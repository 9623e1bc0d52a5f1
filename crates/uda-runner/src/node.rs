//! One node of a run: take the key's lock, re-check the cache, run the stage, commit its entry.
//!
//! Everything that can go wrong here ends as an [`Outcome::Failed`] with its reason printed as a
//! `✗` line and kept in `cache/failed/<key>.log` (what `uda-pipe log` shows), whether the stage
//! failed or the runner's own work around it did (a full disk, an unwritable cache folder).

use crate::cache::{BinaryRecord, Cache, ENTRY_FORMAT, EntryMeta, Verified};
use crate::error::{IoContext, Result, RunnerError};
use crate::executor::{Executor, Job, log_tail};
use crate::graph::Source;
use crate::hashing;
use crate::plan::{self, Reason, short};
use crate::run::{Context, Outcome};
use crate::ui::{Ui, human_bytes, human_duration};
use std::ffi::OsString;
use std::io::Write;

/// How a node is to be run (what the scheduler decided for it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct NodeRun<'a> {
    pub i: usize,
    /// Its key, computed from its inputs as they are now.
    pub key: &'a str,
    /// The keys of every node so far (its inputs' entries are found by them).
    pub keys: &'a [Option<String>],
    pub forced: bool,
    /// Re-hash every output when re-checking the cache (`--verify`).
    pub verify: bool,
    pub reasons: &'a [Reason],
    /// `--shards`: array tasks for shardable stages (over `resources.shards`).
    pub shards: Option<u32>,
}

/// Runs one node; never panics out and never returns without saying what happened.
pub(crate) fn run_node(
    ctx: &Context,
    node: NodeRun<'_>,
    gpus: Vec<String>,
    exec: &dyn Executor,
    ui: &Ui,
) -> Outcome {
    let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        execute_node(ctx, node, gpus, exec, ui)
    }));
    let reason = match attempt {
        Ok(Ok(outcome)) => return outcome,
        Ok(Err(e)) => e.to_string(),
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("unknown panic");
            format!("internal error in uda-pipe: {what}")
        }
    };
    let n = &ctx.graph.nodes[node.i];
    let failed_log = ctx.cache.failed_log(node.key);
    let kept = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&failed_log)
        .and_then(|mut f| writeln!(f, "uda-pipe could not complete {}: {reason}", n.id));
    let log_note = match kept {
        Ok(()) => format!("\n  log: {}", failed_log.display()),
        Err(e) => format!(
            "\n  (the reason could not be kept in {} either: {e})",
            failed_log.display()
        ),
    };
    ui.finished(&n.id, &format!("✗ {} failed: {reason}{log_note}", n.id));
    Outcome::Failed(reason)
}

/// Takes the key's lock, re-checks the cache, runs the stage and commits its entry.
fn execute_node(
    ctx: &Context,
    node: NodeRun<'_>,
    gpus: Vec<String>,
    exec: &dyn Executor,
    ui: &Ui,
) -> Result<Outcome> {
    let NodeRun {
        i,
        key,
        keys,
        forced,
        verify,
        reasons,
        shards,
    } = node;
    let why = plan::join(reasons);
    let g = &ctx.graph;
    let n = &g.nodes[i];
    let cache = &ctx.cache;
    let lock = cache.lock(key, |holder| {
        ui.line(&format!(
            "… {}: waiting for another uda-pipe ({holder}) that is computing the same entry",
            n.id
        ));
    })?;
    if !forced && cache.verify(key, verify) == Verified::Ok {
        cache.set_latest(&g.name, &n.id, key)?;
        ui.line(&format!(
            "✓ {} cached (computed by another uda-pipe process meanwhile)",
            n.id
        ));
        return Ok(Outcome::Cached);
    }
    if let Some(sig) = crate::process::cancel_signal() {
        return Ok(Outcome::Skipped(format!(
            "not started: the run was cancelled ({})",
            crate::process::signal_name(sig)
        )));
    }
    if let Verified::Corrupt(details) = cache.verify(key, verify) {
        let to = cache.discard(key)?;
        ui.line(&format!(
            "warning: entry {key} of {} is corrupted ({details}); moved to {} and recomputing",
            n.id,
            to.display()
        ));
    }
    let staging = cache.staging(key)?;
    let out = staging.join("out");
    let mut args: Vec<OsString> = Vec::new();
    for inp in &n.inputs {
        let path = match &inp.source {
            Source::Node { node, subpath } => {
                let base = cache.out_dir(keys[*node].as_deref().unwrap_or_default());
                match subpath {
                    Some(sp) => base.join(sp),
                    None => base,
                }
            }
            Source::External(p) => p.clone(),
            Source::All { nodes } => {
                let dir = staging.join("inputs").join(&inp.name);
                std::fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
                for &u in nodes {
                    let link = dir.join(g.nodes[u].vars_label());
                    std::os::unix::fs::symlink(
                        cache.out_dir(keys[u].as_deref().unwrap_or_default()),
                        &link,
                    )
                    .ctx(|| format!("linking {}", link.display()))?;
                }
                dir
            }
        };
        let mut a = OsString::from(format!("{}=", inp.name));
        a.push(path.as_os_str());
        args.push("--input".into());
        args.push(a);
    }
    let params_path = staging.join("params.json");
    let params_text = serde_json::to_vec_pretty(&n.params)
        .map_err(|e| RunnerError::json("writing params.json", e))?;
    std::fs::write(&params_path, params_text)
        .ctx(|| format!("writing {}", params_path.display()))?;
    args.push("--params".into());
    args.push(params_path.into());
    let mut env = Vec::new();
    if !gpus.is_empty() || n.resources.gpus > 0 {
        env.push(("CUDA_VISIBLE_DEVICES".to_string(), gpus.join(",")));
    }
    env.push(("UDA_THREADS".to_string(), n.resources.cpus.to_string()));
    env.push((
        "UDA_RESUME_DIR".to_string(),
        cache.resume_dir(key).display().to_string(),
    ));
    // libgomp's spinning waits make CPU training ~10x slower when cores are shared (measured:
    // uda_train::cpu_threads_hint); a user's own setting wins.
    if std::env::var_os("OMP_WAIT_POLICY").is_none() {
        env.push(("OMP_WAIT_POLICY".to_string(), "PASSIVE".to_string()));
    }
    env.push((
        "RAYON_NUM_THREADS".to_string(),
        n.resources.cpus.to_string(),
    ));
    let shards = if n.binary.description.shardable {
        shards
            .or((n.resources.shards > 0).then_some(n.resources.shards))
            .unwrap_or(1)
            .max(1)
    } else {
        1
    };
    let job = Job {
        pipeline: g.name.clone(),
        node: n.id.clone(),
        binary: n.binary.path.clone(),
        out: out.clone(),
        shards,
        args,
        workdir: staging.clone(),
        log: staging.join("log.txt"),
        env,
        resources: n.resources,
        lock_fd: Some(lock.raw_fd()),
        lock_owner: Some(lock.owner_path().to_path_buf()),
    };
    ui.started(&n.id, &format!("running ({why})"));
    let result = exec.execute(&job, &|u| ui.progress(&n.id, &u));
    let result = match result {
        Ok(r) => r,
        Err(e) => {
            ui.finished(&n.id, &format!("✗ {} could not be started: {e}", n.id));
            crate::cache::remove_tree(&staging);
            return Ok(Outcome::Failed(e.to_string()));
        }
    };
    let failure = if let Some(sig) = crate::process::cancel_signal() {
        Some(format!(
            "cancelled: uda-pipe received {} and stopped the stage ({})",
            crate::process::signal_name(sig),
            result.describe()
        ))
    } else if !result.success() {
        Some(result.describe())
    } else if !out.is_dir() {
        Some(format!(
            "the stage exited with success but did not create its output folder {}",
            out.display()
        ))
    } else {
        n.outputs
            .iter()
            .find(|o| !out.join(o).exists())
            .map(|o| format!("the stage did not write the declared output '{o}'"))
            .or_else(|| {
                crate::cache::find_symlink(&out).map(|l| {
                    format!(
                        "the stage wrote a symbolic link {} in its output; outputs must be plain files and folders (copy the file instead)",
                        l.strip_prefix(&out).unwrap_or(&l).display()
                    )
                })
            })
    };
    if let Some(what) = failure {
        let failed_log = cache.failed_log(key);
        let _ = std::fs::copy(&job.log, &failed_log);
        let tail = log_tail(&job.log, 20);
        crate::cache::remove_tree(&staging);
        let indented: String = tail.lines().map(|l| format!("    | {l}\n")).collect();
        ui.finished(
            &n.id,
            &format!(
                "✗ {} failed after {}: {what}\n  log: {}\n{indented}",
                n.id,
                human_duration(result.duration),
                failed_log.display()
            ),
        );
        return Ok(Outcome::Failed(format!(
            "{what} (log: {})",
            failed_log.display()
        )));
    }
    let (manifest, outputs_hash) = Cache::manifest(&out)?;
    let metrics = std::fs::read_to_string(out.join(uda_stage::METRICS_FILE))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let meta = EntryMeta {
        format: ENTRY_FORMAT,
        key: key.to_string(),
        kind: n.kind.clone(),
        pipeline: g.name.clone(),
        node: n.id.clone(),
        binary: BinaryRecord {
            path: n.binary.path.clone(),
            blake3: hashing::hex(&n.binary.hash),
        },
        params: n.params.clone(),
        inputs: plan::input_records(g, cache, keys, &ctx.externals, i),
        started: crate::cache::rfc3339(result.started_ms),
        started_unix_ms: result.started_ms,
        duration_s: result.duration.as_secs_f64(),
        peak_rss_bytes: result.peak_rss_bytes,
        exit_status: result.exit_status(),
        outputs_hash,
        manifest,
        metrics,
        accepted: None,
        scheduler: result.remote.clone(),
    };
    cache.commit(&staging, &meta)?;
    let _ = std::fs::remove_file(cache.failed_log(key));
    cache.set_latest(&g.name, &n.id, key)?;
    ui.finished(
        &n.id,
        &format!(
            "✓ {} done in {} (peak {}, {} files, key {})",
            n.id,
            human_duration(result.duration),
            human_bytes(result.peak_rss_bytes),
            meta.manifest.len(),
            short(key)
        ),
    );
    Ok(Outcome::Ran(result))
}
