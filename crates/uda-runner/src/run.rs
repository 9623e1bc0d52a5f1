//! `uda-pipe run`: choose the nodes, decide what is out of date, and run it in dependency order,
//! in parallel within the CPU/GPU/memory budget.
//!
//! Guarantees: a node runs only under its key's lock and re-checks the cache after taking it, so
//! two `uda-pipe run` processes on one cache never compute the same entry twice (the second waits
//! and then reuses). Stages write into a private staging folder that becomes `entries/<key>` by a
//! single rename after success; a failed or killed stage leaves nothing that is trusted.

use crate::cache::{BinaryRecord, Cache, ENTRY_FORMAT, EntryMeta, Verified};
use crate::error::{IoContext, Result, RunnerError};
use crate::executor::{Executor, Job, JobResult, log_tail};
use crate::graph::{Graph, Source};
use crate::hashing;
use crate::history::{self, HistoryRow};
use crate::plan::{self, Decision, External, short};
use crate::resources::Pool;
pub use crate::resources::detect_gpus;
use crate::ui::{Ui, human_bytes, human_duration};
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `--stage`: stage names or instances (`fda`, `fda[beta=0.01]`); empty = all.
    pub stages: Vec<String>,
    pub downstream: bool,
    pub force: bool,
    pub dry_run: bool,
    /// CPU budget (`--jobs`); 0 = number of CPUs.
    pub jobs: usize,
    /// Re-hash every cached output instead of trusting unchanged stats.
    pub verify: bool,
    /// Keep starting independent stages after a failure.
    pub keep_going: bool,
}

/// A loaded pipeline with its keys: what every command works on.
#[derive(Debug)]
pub struct Context {
    pub graph: Graph,
    pub cache: Cache,
    pub keys: Vec<String>,
    pub externals: HashMap<PathBuf, External>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Cached,
    Ran(JobResult),
    Failed(String),
    Skipped(String),
}

#[derive(Debug, Default)]
pub struct RunSummary {
    pub outcomes: Vec<(usize, Outcome)>,
    pub history: Option<PathBuf>,
    pub elapsed: Duration,
}

impl RunSummary {
    pub fn failed(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Failed(_) | Outcome::Skipped(_)))
            .count()
    }
}

/// The nodes a run considers: the selection (+ downstream), and which are forced.
pub fn selection(graph: &Graph, opts: &RunOptions) -> Result<(Vec<usize>, Vec<usize>)> {
    let mut targets: Vec<usize> = if opts.stages.is_empty() {
        (0..graph.nodes.len()).collect()
    } else {
        let mut t = Vec::new();
        for s in &opts.stages {
            t.extend(graph.select(s).map_err(RunnerError::Usage)?);
        }
        t
    };
    if opts.downstream {
        let more = graph.downstream(&targets);
        targets.extend(more);
    }
    targets.sort_unstable();
    targets.dedup();
    let forced = if opts.force {
        targets.clone()
    } else {
        Vec::new()
    };
    Ok((targets, forced))
}

/// Targets plus all their ancestors, in order.
pub fn with_ancestors(graph: &Graph, targets: &[usize]) -> Vec<usize> {
    let mut mark = vec![false; graph.nodes.len()];
    for &t in targets {
        mark[t] = true;
    }
    for i in (0..graph.nodes.len()).rev() {
        if mark[i] {
            for d in graph.nodes[i].deps() {
                mark[d] = true;
            }
        }
    }
    (0..graph.nodes.len()).filter(|&i| mark[i]).collect()
}

/// The order in which ready stages are started: longest chain of dependents first, so that the
/// chain that bounds the run's wall time (e.g. pretrain → pseudo-labels → contrastive training →
/// evaluation) starts before independent side branches take the cores; ties in pipeline order.
/// `included` must be topologically sorted (dependencies first), as nodes are.
fn longest_chain_first(included: &[usize], deps: impl Fn(usize) -> Vec<usize>) -> Vec<usize> {
    let mut chain: HashMap<usize, usize> = included.iter().map(|&i| (i, 1)).collect();
    for &i in included.iter().rev() {
        let below = chain[&i] + 1;
        for d in deps(i) {
            if let Some(c) = chain.get_mut(&d) {
                *c = (*c).max(below);
            }
        }
    }
    let mut order = included.to_vec();
    order.sort_by_key(|i| std::cmp::Reverse(chain[i]));
    order
}

/// Runs (or, with `dry_run`, describes) what is out of date.
pub fn run(ctx: &Context, opts: &RunOptions, exec: &dyn Executor, ui: &Ui) -> Result<RunSummary> {
    let t0 = Instant::now();
    let g = &ctx.graph;
    let (targets, forced) = selection(g, opts)?;
    let included = with_ancestors(g, &targets);
    let decisions = plan::decide(
        g,
        &ctx.cache,
        &ctx.keys,
        &ctx.externals,
        &included,
        &forced,
        opts.verify,
    );
    for &i in &included {
        if !targets.contains(&i) && matches!(decisions[i], Decision::Run(_)) {
            let needed_by: Vec<&str> = targets
                .iter()
                .filter(|&&t| crate::run::with_ancestors(g, &[t]).contains(&i))
                .map(|&t| g.nodes[t].id.as_str())
                .collect();
            ui.line(&format!(
                "note: {} is needed by {} and is not in the cache: running it first",
                g.nodes[i].id,
                needed_by.join(", ")
            ));
        }
    }
    if opts.dry_run {
        let mut any = false;
        for &i in &included {
            if let Decision::Run(reasons) = &decisions[i] {
                any = true;
                ui.line(&format!(
                    "would run {} (key {})",
                    g.nodes[i].id,
                    short(&ctx.keys[i])
                ));
                for r in reasons {
                    ui.line(&format!("    because {r}"));
                }
            }
        }
        let cached: Vec<&str> = included
            .iter()
            .filter(|&&i| decisions[i] == Decision::Cached)
            .map(|&i| g.nodes[i].id.as_str())
            .collect();
        if !cached.is_empty() {
            ui.line(&format!("up to date: {}", cached.join(", ")));
        }
        if !any {
            ui.line("nothing to run");
        }
        return Ok(RunSummary {
            outcomes: Vec::new(),
            history: None,
            elapsed: t0.elapsed(),
        });
    }

    let mut pool = Pool::new(opts.jobs);
    for &i in &included {
        let r = &g.nodes[i].resources;
        if r.gpus > pool.gpus_total {
            ui.line(&format!(
                "warning: {} asks for {} GPU(s) but {} are available; it runs with {}",
                g.nodes[i].id, r.gpus, pool.gpus_total, pool.gpus_total
            ));
        }
    }
    let mut state: Vec<Option<Outcome>> = vec![None; g.nodes.len()];
    let mut running = vec![false; g.nodes.len()];
    let mut held: HashMap<usize, Vec<String>> = HashMap::new();
    let mut stop = false;
    let mut order_done: Vec<usize> = Vec::new();
    let (tx, rx) = crossbeam_channel::unbounded::<(usize, Outcome)>();
    let start_order = longest_chain_first(&included, |i| g.nodes[i].deps());
    std::thread::scope(|s| -> Result<()> {
        loop {
            // Start everything that is ready and fits, until nothing changes.
            let mut changed = true;
            while changed {
                changed = false;
                for &i in &start_order {
                    if state[i].is_some() || running[i] {
                        continue;
                    }
                    let deps = g.nodes[i].deps();
                    if let Some(&bad) = deps.iter().find(|&&d| {
                        matches!(state[d], Some(Outcome::Failed(_) | Outcome::Skipped(_)))
                    }) {
                        state[i] = Some(Outcome::Skipped(format!(
                            "upstream {} did not complete",
                            g.nodes[bad].id
                        )));
                        order_done.push(i);
                        changed = true;
                        continue;
                    }
                    if !deps
                        .iter()
                        .all(|&d| matches!(state[d], Some(Outcome::Cached | Outcome::Ran(_))))
                        || stop
                    {
                        continue;
                    }
                    let is_forced = forced.contains(&i);
                    if !is_forced && decisions[i] == Decision::Cached {
                        // Checked while planning; only an upstream that ran since can change that.
                        let upstream_ran = deps
                            .iter()
                            .any(|&d| matches!(state[d], Some(Outcome::Ran(_))));
                        let ups = vec![Some(Decision::Cached); g.nodes.len()];
                        if !upstream_ran
                            || plan::decide_one(
                                g,
                                &ctx.cache,
                                &ctx.keys,
                                &ctx.externals,
                                i,
                                &ups,
                                false,
                            ) == Decision::Cached
                        {
                            ctx.cache
                                .set_latest(&g.name, &g.nodes[i].id, &ctx.keys[i])?;
                            state[i] = Some(Outcome::Cached);
                            order_done.push(i);
                            changed = true;
                            continue;
                        }
                    }
                    if !pool.fits(&g.nodes[i].resources) {
                        continue;
                    }
                    let gpus = pool.take(&g.nodes[i].resources);
                    held.insert(i, gpus.clone());
                    running[i] = true;
                    changed = true;
                    let tx = tx.clone();
                    let why = match &decisions[i] {
                        Decision::Run(r) => r.join("; "),
                        Decision::Cached => "an upstream entry was recomputed".into(),
                    };
                    s.spawn(move || {
                        let outcome = execute_node(ctx, i, is_forced, &why, gpus, exec, ui)
                            .unwrap_or_else(|e| Outcome::Failed(e.to_string()));
                        let _ = tx.send((i, outcome));
                    });
                }
            }
            if running.iter().all(|r| !r) {
                break;
            }
            let Ok((i, outcome)) = rx.recv() else { break };
            running[i] = false;
            pool.give(&g.nodes[i].resources, held.remove(&i).unwrap_or_default());
            if matches!(outcome, Outcome::Failed(_)) && !opts.keep_going {
                stop = true;
            }
            state[i] = Some(outcome);
            order_done.push(i);
        }
        Ok(())
    })?;
    for &i in &included {
        if state[i].is_none() {
            state[i] = Some(Outcome::Skipped("not started: the run stopped after a failure (use --keep-going to continue other stages)".into()));
            order_done.push(i);
        }
    }
    let outcomes: Vec<(usize, Outcome)> = order_done
        .iter()
        .map(|&i| (i, state[i].clone().unwrap_or(Outcome::Cached)))
        .collect();
    let run_id = format!("{}-{}", crate::cache::now_ms(), std::process::id());
    let rows: Vec<HistoryRow> = outcomes
        .iter()
        .map(|(i, o)| {
            let n = &g.nodes[*i];
            let (outcome, start, dur, rss, exit) = match o {
                Outcome::Cached => ("cached", crate::cache::now_ms(), 0.0, None, None),
                Outcome::Ran(r) => (
                    "ran",
                    r.started_ms,
                    r.duration.as_secs_f64(),
                    Some(r.peak_rss_bytes),
                    Some(r.exit_status()),
                ),
                Outcome::Failed(_) => ("failed", crate::cache::now_ms(), 0.0, None, None),
                Outcome::Skipped(_) => ("skipped", crate::cache::now_ms(), 0.0, None, None),
            };
            HistoryRow {
                run_id: run_id.clone(),
                pipeline: g.name.clone(),
                node: n.id.clone(),
                stage: n.stage.clone(),
                kind: n.kind.clone(),
                key: ctx.keys[*i].clone(),
                outcome: outcome.into(),
                start_ms: start,
                duration_s: dur,
                peak_rss_bytes: rss,
                exit_status: exit,
            }
        })
        .collect();
    let history = match history::write_run(&ctx.cache.history_dir(), &run_id, &rows) {
        Ok(p) => Some(p),
        Err(e) => {
            ui.line(&format!("warning: could not write the run history: {e}"));
            None
        }
    };
    Ok(RunSummary {
        outcomes,
        history,
        elapsed: t0.elapsed(),
    })
}

/// Takes the key's lock, re-checks the cache, runs the stage and commits its entry.
fn execute_node(
    ctx: &Context,
    i: usize,
    forced: bool,
    why: &str,
    gpus: Vec<String>,
    exec: &dyn Executor,
    ui: &Ui,
) -> Result<Outcome> {
    let g = &ctx.graph;
    let n = &g.nodes[i];
    let key = &ctx.keys[i];
    let cache = &ctx.cache;
    let mut waited = false;
    let _lock = cache.lock(key, |holder| {
        waited = true;
        ui.line(&format!(
            "… {}: waiting for another uda-pipe ({holder}) that is computing the same entry",
            n.id
        ));
    })?;
    if !forced {
        let ups = vec![Some(Decision::Cached); g.nodes.len()];
        if plan::decide_one(g, cache, &ctx.keys, &ctx.externals, i, &ups, false) == Decision::Cached
        {
            cache.set_latest(&g.name, &n.id, key)?;
            let how = if waited || why.starts_with("never") || !why.contains("upstream") {
                "computed by another uda-pipe process meanwhile"
            } else {
                "its upstream reran with identical outputs"
            };
            ui.line(&format!("✓ {} cached ({how})", n.id));
            return Ok(Outcome::Cached);
        }
    }
    if let Verified::Corrupt(details) = cache.verify(key, false) {
        let to = cache.discard(key)?;
        ui.line(&format!(
            "warning: entry {key} of {} is corrupted ({details}); moved to {} and recomputing",
            n.id,
            to.display()
        ));
    }
    let staging = cache.staging(key)?;
    let out = staging.join("out");
    let mut args: Vec<OsString> = vec!["--out".into(), out.clone().into()];
    for inp in &n.inputs {
        let path = match &inp.source {
            Source::Node { node, subpath } => {
                let base = cache.out_dir(&ctx.keys[*node]);
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
                    std::os::unix::fs::symlink(cache.out_dir(&ctx.keys[u]), &link)
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
    let params_text =
        serde_json::to_vec_pretty(&n.params).map_err(|e| RunnerError::Usage(e.to_string()))?;
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
    let job = Job {
        node: n.id.clone(),
        binary: n.binary.path.clone(),
        args,
        workdir: staging.clone(),
        log: staging.join("log.txt"),
        env,
        resources: n.resources,
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
    let failure = if !result.success() {
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
        key: key.clone(),
        kind: n.kind.clone(),
        pipeline: g.name.clone(),
        node: n.id.clone(),
        binary: BinaryRecord {
            path: n.binary.path.clone(),
            blake3: hashing::hex(&n.binary.hash),
        },
        params: n.params.clone(),
        inputs: plan::input_records(g, cache, &ctx.keys, &ctx.externals, i),
        started: crate::cache::rfc3339(result.started_ms),
        started_unix_ms: result.started_ms,
        duration_s: result.duration.as_secs_f64(),
        peak_rss_bytes: result.peak_rss_bytes,
        exit_status: result.exit_status(),
        outputs_hash,
        manifest,
        metrics,
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

/// Loads a pipeline file into a [`Context`] (parse, validate against the stage binaries, hash).
pub fn load(path: &Path, sets: &[String], cache_override: Option<&Path>) -> Result<Context> {
    let mut issues = crate::pipeline::Issues::default();
    let p = crate::pipeline::load(path, sets, &mut issues);
    let Some(p) = p.filter(|_| issues.list.is_empty()) else {
        return Err(RunnerError::Invalid(issues.list));
    };
    let cache_dir = cache_override
        .map(Path::to_path_buf)
        .unwrap_or_else(|| p.cache_dir.clone());
    let cache = Cache::open(&cache_dir)?;
    let registry = crate::describe::Registry::new(&cache.state_dir());
    let Some(mut graph) = crate::graph::build(&p, &registry, &mut issues) else {
        return Err(RunnerError::Invalid(issues.list));
    };
    graph.cache_dir = cache_dir;
    let (keys, externals) = plan::keys(&graph, &cache)?;
    Ok(Context {
        graph,
        cache,
        keys,
        externals,
    })
}

#[cfg(test)]
mod tests {
    use super::longest_chain_first;

    #[test]
    fn the_longest_chain_starts_first() {
        // 0 data → 1 side (→ 2 eval_side); 0 → 3 pretrain → 4 pseudo → 5 ours → 6 eval_ours
        let deps = |i: usize| match i {
            1 | 3 => vec![0],
            2 => vec![1],
            4 => vec![3],
            5 => vec![4],
            6 => vec![5],
            _ => vec![],
        };
        let order = longest_chain_first(&[0, 1, 2, 3, 4, 5, 6], deps);
        assert_eq!(order, vec![0, 3, 4, 1, 5, 2, 6]);
        let pos = |n: usize| order.iter().position(|&x| x == n).unwrap();
        assert!(
            pos(3) < pos(1),
            "pretrain starts before the side branch: {order:?}"
        );
    }
}
