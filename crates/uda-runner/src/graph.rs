//! From declarations to the DAG of stage instances, validated against the stage binaries.
//!
//! Sweeps: a stage with `foreach`/`matrix` becomes one node per combination, named
//! `stage[var=value,...]`; its sweep variables are params of those instances. A stage that takes a
//! swept stage as an input (`inputs: {x: fda}`) is swept along with it: one instance per upstream
//! instance, inheriting its variables (`train[beta=0.01]`). Inputs from several swept stages are
//! matched on shared variable names (a natural join), so `eval` taking `fda` and `train` (both swept
//! over `beta`) pairs them by `beta`. `fda[beta=0.01]` picks instances by variable value and
//! `{all: fda}` gathers every instance into one folder instead of sweeping along.

use crate::describe::{self, Registry, StageBinary};
use crate::error::Issues;
use crate::pipeline::{InputRef, PipelineFile, Resources, StageDecl, render_value};
use crate::validate::{check_against, instance_params, report_check};
pub use crate::validate::{flatten_params, normalize, params_summary};
use crate::yaml::Loc;
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;

/// A stage instance: one node of the DAG and one cache entry.
#[derive(Debug, Clone)]
pub struct Node {
    /// `stage` or `stage[var=value,...]`.
    pub id: String,
    pub stage: String,
    /// Sweep variables (inherited ones first), for names and selection.
    pub vars: Vec<(String, Value)>,
    pub kind: String,
    pub binary: StageBinary,
    /// All params, defaults filled in, canonical (what the key and the stage see).
    pub params: Value,
    pub inputs: Vec<NodeInput>,
    pub resources: Resources,
    pub outputs: Vec<String>,
    pub loc: Loc,
}

#[derive(Debug, Clone)]
pub struct NodeInput {
    pub name: String,
    pub source: Source,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// Output folder of another node (index into `Graph::nodes`), optionally a path inside it.
    Node {
        node: usize,
        subpath: Option<String>,
    },
    /// A folder of links, one per node, named by the node's sweep variables.
    All { nodes: Vec<usize> },
    /// An absolute path outside the cache.
    External(PathBuf),
}

impl Node {
    pub fn deps(&self) -> Vec<usize> {
        let mut d: Vec<usize> = Vec::new();
        for i in &self.inputs {
            match &i.source {
                Source::Node { node, .. } => d.push(*node),
                Source::All { nodes } => d.extend(nodes),
                Source::External(_) => {}
            }
        }
        d.sort_unstable();
        d.dedup();
        d
    }

    /// The label used for links inside `{all: ...}` folders: `beta=0.01,seed=1` (or the id).
    pub fn vars_label(&self) -> String {
        if self.vars.is_empty() {
            return self.id.clone();
        }
        self.vars
            .iter()
            .map(|(k, v)| format!("{k}={}", render_value(v)))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// The validated DAG; `nodes` are in dependency order (every input points to an earlier node).
#[derive(Debug)]
pub struct Graph {
    pub file: PathBuf,
    pub name: String,
    pub dir: PathBuf,
    pub cache_dir: PathBuf,
    pub nodes: Vec<Node>,
}

impl Graph {
    pub fn find(&self, id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }

    /// Nodes matching a user's selection: `stage` (all its instances) or `stage[var=value]`.
    pub fn select(&self, pattern: &str) -> Result<Vec<usize>, String> {
        if let Some(i) = self.find(pattern) {
            return Ok(vec![i]);
        }
        let (stage, selector) = crate::pipeline::parse_instance_name(pattern)?;
        let hits: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| {
                self.nodes[i].stage == stage && matches_selector(&self.nodes[i].vars, &selector)
            })
            .collect();
        if hits.is_empty() {
            let mut names: Vec<&str> = self.nodes.iter().map(|n| n.stage.as_str()).collect();
            names.dedup();
            return Err(format!(
                "no stage or instance '{pattern}' in {} (stages: {})",
                self.file.display(),
                names.join(", ")
            ));
        }
        Ok(hits)
    }

    /// Every node downstream of `roots` (not including them), in order.
    pub fn downstream(&self, roots: &[usize]) -> Vec<usize> {
        let mut mark = vec![false; self.nodes.len()];
        for &r in roots {
            mark[r] = true;
        }
        let mut out = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            if !mark[i] && n.deps().iter().any(|d| mark[*d]) {
                mark[i] = true;
                out.push(i);
            }
        }
        out
    }
}

pub(crate) fn matches_selector(vars: &[(String, Value)], selector: &[(String, String)]) -> bool {
    selector.iter().all(|(k, v)| {
        vars.iter()
            .any(|(vk, vv)| vk == k && render_value(vv) == *v)
    })
}

fn compatible(a: &[(String, Value)], b: &[(String, Value)]) -> bool {
    a.iter()
        .all(|(k, v)| b.iter().all(|(k2, v2)| k != k2 || v == v2))
}

fn merge(a: &[(String, Value)], b: &[(String, Value)]) -> Vec<(String, Value)> {
    let mut out = a.to_vec();
    for (k, v) in b {
        if !out.iter().any(|(k2, _)| k2 == k) {
            out.push((k.clone(), v.clone()));
        }
    }
    out
}

/// Expands sweeps, resolves inputs and checks everything against the stage binaries.
pub fn build(p: &PipelineFile, registry: &Registry, issues: &mut Issues) -> Option<Graph> {
    let order = stage_order(p, issues)?;
    let mut nodes: Vec<Node> = Vec::new();
    let mut by_stage: HashMap<String, Vec<usize>> = HashMap::new();
    let globals_ok = p.globals.resolve_all().is_ok();
    for si in order {
        let decl = &p.stages[si];
        let st = Some(decl.name.as_str());
        let binary = match registry.get(&decl.kind) {
            Ok(Some(b)) => Some(b),
            Ok(None) => {
                let sugg = registry.suggest(&decl.kind);
                let hint = if sugg.is_empty() {
                    String::new()
                } else {
                    format!("; did you mean {}?", sugg.join(" or "))
                };
                issues.add(decl.kind_loc, st, format!(
                    "unknown stage kind '{}': no executable named so in ${} or next to uda-pipe (PATH is searched only for the project's own stages){hint}",
                    decl.kind, describe::STAGE_PATH_ENV
                ));
                None
            }
            Err(e) => {
                issues.add(decl.kind_loc, st, e.to_string());
                None
            }
        };
        let Some(bindings) = instance_bindings(decl, &nodes, &by_stage, issues) else {
            continue;
        };
        let mut ids = Vec::new();
        for vars in bindings {
            let id = if vars.is_empty() {
                decl.name.clone()
            } else {
                format!(
                    "{}[{}]",
                    decl.name,
                    vars.iter()
                        .map(|(k, v)| format!("{k}={}", render_value(v)))
                        .collect::<Vec<_>>()
                        .join(",")
                )
            };
            if nodes.iter().any(|n| n.id == id) {
                issues.add(
                    decl.sweep_loc,
                    st,
                    format!("duplicate instance {id} (a sweep lists the same values twice)"),
                );
                continue;
            }
            let Some(inputs) = resolve_inputs(p, decl, &vars, &nodes, &by_stage, issues) else {
                continue;
            };
            let params = if globals_ok {
                instance_params(p, decl, &id, &vars, issues)
            } else {
                None
            };
            let (Some(binary), Some(params)) = (binary.clone(), params) else {
                continue;
            };
            let Some(params) = check_against(&binary, decl, &id, params, &inputs, issues) else {
                continue;
            };
            match registry.check(&binary, &params) {
                Ok(problems) if report_check(&problems, decl, &id, issues) => {}
                Ok(_) => continue,
                Err(e) => {
                    issues.add(decl.kind_loc, Some(&id), e.to_string());
                    continue;
                }
            }
            by_stage
                .entry(decl.name.clone())
                .or_default()
                .push(nodes.len());
            if decl.resources.shards > 1 && !binary.description.shardable {
                issues.add(
                    decl.loc,
                    Some(&id),
                    format!(
                        "resources.shards: {} cannot run as array tasks (its --describe does not say \"shardable\": true); remove `shards`",
                        decl.kind
                    ),
                );
            }
            ids.push(id.clone());
            nodes.push(Node {
                id,
                stage: decl.name.clone(),
                vars,
                kind: decl.kind.clone(),
                binary,
                params,
                inputs,
                resources: decl.resources,
                outputs: decl.outputs.iter().map(|(o, _)| o.clone()).collect(),
                loc: decl.loc,
            });
        }
    }
    for o in &p.instance_overrides {
        if !o.used.get() {
            issues.add(
                Loc::default(),
                Some(&o.stage),
                format!(
                    "--set {}[{}].{}: no instance matches",
                    o.stage,
                    o.selector
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(","),
                    o.path.join(".")
                ),
            );
        }
    }
    if !issues.list.is_empty() {
        return None;
    }
    Some(Graph {
        file: p.path.clone(),
        name: p.name.clone(),
        dir: p.dir.clone(),
        cache_dir: p.cache_dir.clone(),
        nodes,
    })
}

/// Stages in dependency order; reports unknown stages and cycles.
fn stage_order(p: &PipelineFile, issues: &mut Issues) -> Option<Vec<usize>> {
    let index: HashMap<&str, usize> = p
        .stages
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let mut deps: Vec<Vec<(usize, Loc)>> = vec![Vec::new(); p.stages.len()];
    let mut ok = true;
    for (i, s) in p.stages.iter().enumerate() {
        for inp in &s.inputs {
            let target = match &inp.source {
                InputRef::Stage { stage, .. } | InputRef::All { stage, .. } => stage,
                InputRef::External(path) => {
                    let abs = p.dir.join(path);
                    if !abs.exists() {
                        issues.add(
                            inp.loc,
                            Some(&s.name),
                            format!(
                                "input '{}': external path {} does not exist (create it or point the input elsewhere; a path given by a param `${{name}}` is set with `--set name=PATH`)",
                                inp.name,
                                abs.display()
                            ),
                        );
                    }
                    continue;
                }
            };
            match index.get(target.as_str()) {
                Some(&j) => deps[i].push((j, inp.loc)),
                None => {
                    let names: Vec<&str> = p.stages.iter().map(|s| s.name.as_str()).collect();
                    issues.add(inp.loc, Some(&s.name), format!(
                        "input '{}': no stage named '{target}' (stages: {}); an external folder is written ./{target} or {{path: {target}}}",
                        inp.name,
                        names.join(", ")
                    ));
                    ok = false;
                }
            }
        }
    }
    if !ok {
        return None;
    }
    // Depth-first search; a grey node reached again closes a cycle.
    let mut color = vec![0u8; p.stages.len()];
    let mut order = Vec::new();
    let mut stack: Vec<usize> = Vec::new();
    fn visit(
        i: usize,
        deps: &[Vec<(usize, Loc)>],
        color: &mut [u8],
        order: &mut Vec<usize>,
        stack: &mut Vec<usize>,
        p: &PipelineFile,
        issues: &mut Issues,
    ) -> bool {
        color[i] = 1;
        stack.push(i);
        for &(j, loc) in &deps[i] {
            if color[j] == 1 {
                let start = stack.iter().position(|&x| x == j).unwrap_or(0);
                let mut chain: Vec<&str> = stack[start..]
                    .iter()
                    .map(|&x| p.stages[x].name.as_str())
                    .collect();
                chain.push(&p.stages[j].name);
                issues.add(
                    loc,
                    Some(&p.stages[i].name),
                    format!(
                        "dependency cycle: {} (each needs the next)",
                        chain.join(" -> ")
                    ),
                );
                return false;
            }
            if color[j] == 0 && !visit(j, deps, color, order, stack, p, issues) {
                return false;
            }
        }
        stack.pop();
        color[i] = 2;
        order.push(i);
        true
    }
    for i in 0..p.stages.len() {
        if color[i] == 0 && !visit(i, &deps, &mut color, &mut order, &mut stack, p, issues) {
            return None;
        }
    }
    Some(order)
}

fn selected<'a>(nodes: &'a [Node], ids: &[usize], selector: &[(String, String)]) -> Vec<&'a Node> {
    ids.iter()
        .map(|&i| &nodes[i])
        .filter(|n| matches_selector(&n.vars, selector))
        .collect()
}

/// The sweep-variable bindings of a stage's instances (inherited joined, times its own sweep).
fn instance_bindings(
    decl: &StageDecl,
    nodes: &[Node],
    by_stage: &HashMap<String, Vec<usize>>,
    issues: &mut Issues,
) -> Option<Vec<Vec<(String, Value)>>> {
    let st = Some(decl.name.as_str());
    let mut bindings: Vec<Vec<(String, Value)>> = vec![Vec::new()];
    for inp in &decl.inputs {
        let (stage, selector, fan_out) = match &inp.source {
            InputRef::Stage {
                stage, selector, ..
            } => (stage, selector, true),
            InputRef::All { stage, selector } => (stage, selector, false),
            InputRef::External(_) => continue,
        };
        let ids = by_stage.get(stage).cloned().unwrap_or_default();
        if ids.is_empty() {
            // The upstream stage failed validation; its own issue is reported already.
            return None;
        }
        let matched = selected(nodes, &ids, selector);
        if matched.is_empty() {
            let avail: Vec<&str> = ids.iter().map(|&i| nodes[i].id.as_str()).collect();
            issues.add(
                inp.loc,
                st,
                format!(
                    "input '{}': no instance of '{stage}' matches [{}] (instances: {})",
                    inp.name,
                    selector
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(","),
                    avail.join(", ")
                ),
            );
            return None;
        }
        // An explicit pick of one instance (`train[beta=0.05]`) is not a sweep; a swept stage taken
        // whole is swept along even when its sweep has one value (`seeds: [0]`), so `${seed}`
        // resolves the same with one seed as with three.
        if !fan_out || (matched.len() == 1 && !selector.is_empty()) {
            continue;
        }
        let mut next = Vec::new();
        for b in &bindings {
            for u in &matched {
                if compatible(b, &u.vars) {
                    next.push(merge(b, &u.vars));
                }
            }
        }
        if next.is_empty() {
            issues.add(inp.loc, st, format!("input '{}': no instance of '{stage}' agrees with the other inputs' sweep variables", inp.name));
            return None;
        }
        bindings = next;
    }
    for v in &decl.sweep_vars {
        if bindings.iter().any(|b| b.iter().any(|(k, _)| k == v)) {
            issues.add(decl.sweep_loc, st, format!("sweep variable '{v}' is already swept by an upstream stage this stage takes as input; pick that instance with stage[{v}=...] or rename the variable"));
            return None;
        }
    }
    Some(
        bindings
            .iter()
            .flat_map(|b| decl.sweep.iter().map(move |row| merge(b, row)))
            .collect(),
    )
}

fn resolve_inputs(
    p: &PipelineFile,
    decl: &StageDecl,
    vars: &[(String, Value)],
    nodes: &[Node],
    by_stage: &HashMap<String, Vec<usize>>,
    issues: &mut Issues,
) -> Option<Vec<NodeInput>> {
    let mut out = Vec::new();
    for inp in &decl.inputs {
        let source = match &inp.source {
            InputRef::External(path) => Source::External(normalize(&p.dir.join(path))),
            InputRef::All { stage, selector } => {
                let ids = by_stage.get(stage).cloned().unwrap_or_default();
                Source::All {
                    nodes: ids
                        .into_iter()
                        .filter(|&i| matches_selector(&nodes[i].vars, selector))
                        .collect(),
                }
            }
            InputRef::Stage {
                stage,
                selector,
                subpath,
            } => {
                let ids = by_stage.get(stage).cloned().unwrap_or_default();
                let cands: Vec<usize> = ids
                    .into_iter()
                    .filter(|&i| {
                        matches_selector(&nodes[i].vars, selector)
                            && compatible(vars, &nodes[i].vars)
                    })
                    .collect();
                match cands.as_slice() {
                    [one] => Source::Node {
                        node: *one,
                        subpath: subpath.clone(),
                    },
                    _ => {
                        issues.add(inp.loc, Some(&decl.name), format!("input '{}': {} instances of '{stage}' match; pick one with {stage}[var=value] or gather them with {{all: {stage}}}", inp.name, cands.len()));
                        return None;
                    }
                }
            }
        };
        out.push(NodeInput {
            name: inp.name.clone(),
            source,
        });
    }
    Some(out)
}
