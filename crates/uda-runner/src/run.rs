//! `uda-pipe run`: choose the nodes, decide what is out of date, and run it in dependency order,
//! in parallel within the CPU/GPU/memory budget.
//!
//! Guarantees: a node runs only under its key's lock and re-checks the cache after taking it, so
//! two `uda-pipe run` processes on one cache never compute the same entry twice (the second waits
//! and then reuses). Stages write into a private staging folder that becomes `entries/<key>` by a
//! single rename after success; a failed or killed stage leaves nothing that is trusted.

use crate::cache::Cache;
use crate::error::{Result, RunnerError};
use crate::executor::{Executor, JobResult};
use crate::graph::Graph;
use crate::history::{self, HistoryRow};
use crate::node::{NodeRun, run_node};
use crate::plan::{self, Decision, External, Reason, UpstreamChange, short};
use crate::resources::Pool;
pub use crate::resources::detect_gpus;
use crate::ui::Ui;
use std::collections::HashMap;
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
    /// `--shards N`: array tasks for every shardable stage (Slurm executor).
    pub shards: Option<u32>,
}

/// A loaded pipeline with its keys: what every command works on.
#[derive(Debug)]
pub struct Context {
    pub graph: Graph,
    pub cache: Cache,
    /// Each node's key as predicted from the cache; `None` below a node that has no entry yet
    /// (content keys are known once the inputs exist).
    pub keys: Vec<Option<String>>,
    pub externals: HashMap<PathBuf, External>,
    /// The pipeline file's `executor:` block, if any.
    pub executor: Option<serde_json::Value>,
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
    // Leases first, decisions second: an entry judged cached cannot be removed by a concurrent
    // `gc` before this run has read it.
    let mut leases = if opts.dry_run {
        Vec::new()
    } else {
        included
            .iter()
            .filter_map(|&i| ctx.keys[i].as_deref())
            .map(|k| ctx.cache.lease(k))
            .collect::<Result<Vec<_>>>()?
    };
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
        report_dry_run(ctx, &included, &decisions, ui);
        return Ok(RunSummary {
            outcomes: Vec::new(),
            history: None,
            elapsed: t0.elapsed(),
        });
    }

    // A batch scheduler places jobs itself: every ready stage is submitted.
    let mut pool = if exec.schedules_resources() {
        Pool::unlimited()
    } else {
        Pool::new(opts.jobs)
    };
    for &i in &included {
        let r = &g.nodes[i].resources;
        if !exec.schedules_resources() && r.gpus > pool.gpus_total {
            ui.line(&format!(
                "warning: {} asks for {} GPU(s) but {} are available; it runs with {}",
                g.nodes[i].id, r.gpus, pool.gpus_total, pool.gpus_total
            ));
        }
    }
    let mut state: Vec<Option<Outcome>> = vec![None; g.nodes.len()];
    // Keys become final as inputs become ready (content keys); `outputs` are the output hashes
    // of the entries that finished nodes stand for.
    let mut keys = ctx.keys.clone();
    let mut outputs: Vec<Option<String>> = vec![None; g.nodes.len()];
    // Keys being computed by this run: two instances with one key (identical inputs and params)
    // are computed once, the second then finds the entry.
    let mut computing: std::collections::HashSet<String> = std::collections::HashSet::new();
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
                    if crate::process::cancel_signal().is_some() {
                        stop = true;
                    }
                    if !deps
                        .iter()
                        .all(|&d| matches!(state[d], Some(Outcome::Cached | Outcome::Ran(_))))
                        || stop
                    {
                        continue;
                    }
                    let is_forced = forced.contains(&i);
                    // The key from what the inputs are now (the early cut-off).
                    let binary = crate::hashing::hex(&g.nodes[i].binary.hash);
                    let Some(key) =
                        plan::node_key(g, i, &binary, &ctx.externals, &|u| outputs[u].clone())
                    else {
                        state[i] = Some(Outcome::Failed(
                            "an upstream entry vanished before this stage could read it".into(),
                        ));
                        order_done.push(i);
                        changed = true;
                        continue;
                    };
                    let predicted = keys[i].as_deref() == Some(key.as_str());
                    if !predicted {
                        leases.push(ctx.cache.lease(&key)?);
                        keys[i] = Some(key.clone());
                    }
                    let decision = if is_forced {
                        decisions[i].clone()
                    } else if predicted && decisions[i] == Decision::Cached {
                        // Verified while planning.
                        Decision::Cached
                    } else {
                        plan::decide_entry(g, &ctx.cache, &keys, &ctx.externals, i, opts.verify)
                    };
                    let reasons = match decision {
                        Decision::Cached => {
                            ctx.cache.set_latest(&g.name, &g.nodes[i].id, &key)?;
                            if let Decision::Depends(ups) = &decisions[i] {
                                ui.line(&format!(
                                    "✓ {} cached (the outputs of {} came out as before)",
                                    g.nodes[i].id,
                                    ids(g, ups)
                                ));
                            }
                            outputs[i] = ctx.cache.read_entry(&key).map(|m| m.outputs_hash);
                            state[i] = Some(Outcome::Cached);
                            order_done.push(i);
                            changed = true;
                            continue;
                        }
                        Decision::Run(_) | Decision::Depends(_) if computing.contains(&key) => {
                            continue;
                        }
                        Decision::Run(r) => r,
                        Decision::Depends(ups) => ups
                            .iter()
                            .map(|&u| Reason::Upstream {
                                input: None,
                                upstream: g.nodes[u].id.clone(),
                                change: UpstreamChange::OutputsChanged,
                            })
                            .collect(),
                    };
                    if !pool.fits(&g.nodes[i].resources) {
                        continue;
                    }
                    let gpus = pool.take(&g.nodes[i].resources);
                    computing.insert(key.clone());
                    held.insert(i, gpus.clone());
                    running[i] = true;
                    changed = true;
                    let tx = tx.clone();
                    let verify = opts.verify;
                    let shards = opts.shards;
                    let keys = keys.clone();
                    s.spawn(move || {
                        let node = NodeRun {
                            i,
                            key: &key,
                            keys: &keys,
                            forced: is_forced,
                            verify,
                            reasons: &reasons,
                            shards,
                        };
                        let _ = tx.send((i, run_node(ctx, node, gpus, exec, ui)));
                    });
                }
            }
            if running.iter().all(|r| !r) {
                break;
            }
            let Ok((i, outcome)) = rx.recv() else { break };
            running[i] = false;
            if let Some(k) = &keys[i] {
                computing.remove(k);
            }
            pool.give(&g.nodes[i].resources, held.remove(&i).unwrap_or_default());
            if matches!(outcome, Outcome::Failed(_)) && !opts.keep_going {
                stop = true;
            }
            if matches!(outcome, Outcome::Ran(_) | Outcome::Cached) {
                outputs[i] = keys[i]
                    .as_deref()
                    .and_then(|k| ctx.cache.read_entry(k))
                    .map(|m| m.outputs_hash);
            }
            state[i] = Some(outcome);
            order_done.push(i);
        }
        Ok(())
    })?;
    let not_started = match crate::process::cancel_signal() {
        Some(sig) => format!(
            "not started: the run was cancelled ({})",
            crate::process::signal_name(sig)
        ),
        None => "not started: the run stopped after a failure (use --keep-going to continue other stages)".into(),
    };
    for &i in &included {
        if state[i].is_none() {
            state[i] = Some(Outcome::Skipped(not_started.clone()));
            order_done.push(i);
        }
    }
    let outcomes: Vec<(usize, Outcome)> = order_done
        .iter()
        .map(|&i| (i, state[i].clone().unwrap_or(Outcome::Cached)))
        .collect();
    let run_id = format!("{}-{}", crate::cache::now_ms(), std::process::id());
    let rows = history_rows(ctx, &keys, &run_id, &outcomes);
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

/// One history row per node of the run, in the order they ended.
fn history_rows(
    ctx: &Context,
    keys: &[Option<String>],
    run_id: &str,
    outcomes: &[(usize, Outcome)],
) -> Vec<HistoryRow> {
    let g = &ctx.graph;
    outcomes
        .iter()
        .map(|(i, o)| {
            let n = &g.nodes[*i];
            let remote = match o {
                Outcome::Ran(r) => r.remote.as_ref(),
                _ => None,
            };
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
                run_id: run_id.to_string(),
                pipeline: g.name.clone(),
                node: n.id.clone(),
                stage: n.stage.clone(),
                kind: n.kind.clone(),
                key: keys[*i].clone().unwrap_or_default(),
                outcome: outcome.into(),
                start_ms: start,
                duration_s: dur,
                peak_rss_bytes: rss,
                exit_status: exit,
                executor: remote.map(|r| r.executor.clone()),
                job_id: remote.map(|r| r.job_ids.join(",")),
            }
        })
        .collect()
}

/// What `run --dry-run` prints: what would run and why, what runs only if an upstream's outputs
/// change, and what is up to date.
fn report_dry_run(ctx: &Context, included: &[usize], decisions: &[Decision], ui: &Ui) {
    let g = &ctx.graph;
    let mut any = false;
    for &i in included {
        if let Decision::Run(reasons) = &decisions[i] {
            any = true;
            let key = match &ctx.keys[i] {
                Some(k) => format!("key {}", short(k)),
                None => "key known once its inputs have run".into(),
            };
            ui.line(&format!("would run {} ({key})", g.nodes[i].id));
            for r in reasons {
                ui.line(&format!("    because {r}"));
            }
        }
    }
    for &i in included {
        if let Decision::Depends(ups) = &decisions[i] {
            any = true;
            ui.line(&format!(
                "{} runs only if the outputs of {} change",
                g.nodes[i].id,
                ids(g, ups)
            ));
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
}

/// Node ids, comma-separated.
pub(crate) fn ids(g: &Graph, nodes: &[usize]) -> String {
    nodes
        .iter()
        .map(|&u| g.nodes[u].id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Loads a pipeline file into a [`Context`] (parse, validate against the stage binaries, hash).
pub fn load(path: &Path, sets: &[String], cache_override: Option<&Path>) -> Result<Context> {
    let mut issues = crate::error::Issues::default();
    // Every problem in one report: a file with issues is still checked against the stage
    // binaries as far as it could be read, so the user does not fix it in rounds.
    let Some(mut p) = crate::pipeline::load(path, sets, &mut issues) else {
        return Err(RunnerError::Invalid(issues.list));
    };
    let cache_dir = cache_override
        .map(Path::to_path_buf)
        .unwrap_or_else(|| p.cache_dir.clone());
    let cache = Cache::open(&cache_dir)?;
    let registry = crate::describe::Registry::new(&cache.state_dir());
    let graph = crate::graph::build(&p, &registry, &mut issues);
    let Some(mut graph) = graph.filter(|_| issues.list.is_empty()) else {
        return Err(RunnerError::Invalid(issues.list));
    };
    graph.cache_dir = cache_dir;
    let externals = plan::externals(&graph, &cache)?;
    let keys = plan::predict_keys(&graph, &cache, &externals);
    Ok(Context {
        graph,
        cache,
        keys,
        externals,
        executor: p.executor.take(),
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
