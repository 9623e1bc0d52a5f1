//! Cache keys and the decision, per node, to reuse or to run (the reasons are in
//! [`crate::reason`]).
//!
//! key = blake3(kind, blake3 of the stage binary, canonical params, and per input: the *content*
//! of what it reads: the upstream entry's output hash (+ path inside it), or the content hash of
//! an external file/folder). So an upstream that reruns and writes the same bytes (a rebuilt
//! binary, `--force`) leaves every entry below it valid: the early cut-off of Bazel, Shake and DVC.
//!
//! The price: a node's key is only known once its upstream entries exist. Before a run, keys are
//! predicted from the entries in the cache ([`predict_keys`]); a node below one that must run is
//! [`Decision::Depends`]: it runs only if that upstream's outputs come out different. The
//! scheduler computes each key for real when the node's inputs are ready ([`node_key`]).

use crate::cache::{Cache, InputRecord, Verified};
use crate::error::Result;
use crate::graph::{Graph, Source};
use crate::hashing::{self, FileEntry};
pub use crate::reason::{Reason, UpstreamChange, explain, join};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

/// The version of the key document: entries made under another version are never found.
pub const KEY_VERSION: u32 = 2;

/// Content of an external input as hashed for this run.
#[derive(Debug, Clone)]
pub struct External {
    pub content: String,
    pub files: Vec<FileEntry>,
    pub rehashed: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// A valid entry exists for the key.
    Cached,
    /// Must run; the reasons say why.
    Run(Vec<Reason>),
    /// Decided once these upstream nodes have run: cached if their outputs come out as before
    /// (and an entry for them exists), run otherwise.
    Depends(Vec<usize>),
}

impl Decision {
    /// Whether the node will (or may) run.
    pub fn may_run(&self) -> bool {
        !matches!(self, Decision::Cached)
    }
}

/// Hashes external inputs (memoised).
pub fn externals(graph: &Graph, cache: &Cache) -> Result<HashMap<PathBuf, External>> {
    let mut externals: HashMap<PathBuf, External> = HashMap::new();
    for n in &graph.nodes {
        for i in &n.inputs {
            if let Source::External(p) = &i.source
                && !externals.contains_key(p)
            {
                let t = hashing::hash_tree_memo(p, &cache.memo_path(p))?;
                let content = hashing::hex(&t.hash);
                let listing = cache.tree_listing(&content);
                if !listing.exists() {
                    let mut text = String::with_capacity(t.files.len() * 100);
                    for f in &t.files {
                        text.push_str(&format!("{}\t{}\n", hashing::hex(&f.hash), f.rel));
                    }
                    hashing::write_atomic(&listing, text.as_bytes())?;
                }
                externals.insert(
                    p.clone(),
                    External {
                        content,
                        files: t.files,
                        rehashed: t.rehashed,
                    },
                );
            }
        }
    }
    Ok(externals)
}

/// The key of node `i` for the stage binary `binary` (hex blake3), given the output hash of each
/// upstream entry (`outputs(u)`); `None` while one of them is not known (it has not run).
pub fn node_key(
    graph: &Graph,
    i: usize,
    binary: &str,
    externals: &HashMap<PathBuf, External>,
    outputs: &dyn Fn(usize) -> Option<String>,
) -> Option<String> {
    let n = &graph.nodes[i];
    let mut inputs = serde_json::Map::new();
    for inp in &n.inputs {
        let v = match &inp.source {
            Source::Node { node, subpath } => {
                json!({"stage_outputs": outputs(*node)?, "subpath": subpath})
            }
            Source::External(p) => json!({"external": externals[p].content}),
            Source::All { nodes } => {
                let mut m = serde_json::Map::new();
                for &u in nodes {
                    m.insert(graph.nodes[u].vars_label(), json!(outputs(u)?));
                }
                json!({"all": m})
            }
        };
        inputs.insert(inp.name.clone(), v);
    }
    Some(crate::cache::key_of(&json!({
        "v": KEY_VERSION,
        "kind": n.kind,
        "binary": binary,
        "params": n.params,
        "inputs": inputs,
    })))
}

/// Every node's key as far as the cache tells: a node whose upstream entries all exist gets its
/// key; below a node without an entry, keys are `None` until it has run.
pub fn predict_keys(
    graph: &Graph,
    cache: &Cache,
    externals: &HashMap<PathBuf, External>,
) -> Vec<Option<String>> {
    let n = graph.nodes.len();
    let mut keys: Vec<Option<String>> = vec![None; n];
    let mut outputs: Vec<Option<String>> = vec![None; n];
    for i in 0..n {
        let binary = hashing::hex(&graph.nodes[i].binary.hash);
        keys[i] = node_key(graph, i, &binary, externals, &|u| outputs[u].clone());
        outputs[i] = keys[i]
            .as_deref()
            .and_then(|k| cache.read_entry(k))
            .map(|m| m.outputs_hash);
    }
    keys
}

/// Decides for each of `nodes` (a subset, in order) whether it must run.
pub fn decide(
    graph: &Graph,
    cache: &Cache,
    keys: &[Option<String>],
    externals: &HashMap<PathBuf, External>,
    nodes: &[usize],
    forced: &[usize],
    full_verify: bool,
) -> Vec<Decision> {
    let mut decisions: Vec<Option<Decision>> = vec![None; graph.nodes.len()];
    for &i in nodes {
        let running: Vec<usize> = graph.nodes[i]
            .deps()
            .into_iter()
            .filter(|&d| decisions[d].as_ref().is_some_and(Decision::may_run))
            .collect();
        let d = if forced.contains(&i) {
            Decision::Run(vec![Reason::Forced])
        } else if running.is_empty() {
            decide_entry(graph, cache, keys, externals, i, full_verify)
        } else if cache
            .latest_entry(&graph.name, &graph.nodes[i].id)
            .is_none()
        {
            Decision::Run(vec![Reason::NeverRan])
        } else {
            Decision::Depends(running)
        };
        decisions[i] = Some(d);
    }
    decisions
        .into_iter()
        .map(|d| d.unwrap_or(Decision::Cached))
        .collect()
}

/// The decision for a node whose inputs are what the cache holds: its entry is valid, corrupted
/// or missing (then the reasons compare it with its previous result).
pub fn decide_entry(
    graph: &Graph,
    cache: &Cache,
    keys: &[Option<String>],
    externals: &HashMap<PathBuf, External>,
    i: usize,
    full_verify: bool,
) -> Decision {
    let Some(key) = &keys[i] else {
        return Decision::Run(explain(graph, cache, keys, externals, i));
    };
    match cache.verify(key, full_verify) {
        Verified::Ok => Decision::Cached,
        Verified::Corrupt(details) => Decision::Run(vec![Reason::Corrupt {
            key: key.clone(),
            details,
        }]),
        Verified::Missing => Decision::Run(explain(graph, cache, keys, externals, i)),
    }
}

pub fn short(h: &str) -> &str {
    &h[..h.len().min(12)]
}

/// The input records stored in a new entry.
pub fn input_records(
    graph: &Graph,
    cache: &Cache,
    keys: &[Option<String>],
    externals: &HashMap<PathBuf, External>,
    i: usize,
) -> BTreeMap<String, InputRecord> {
    let key = |u: usize| keys[u].clone().unwrap_or_default();
    let mut out = BTreeMap::new();
    for inp in &graph.nodes[i].inputs {
        let rec = match &inp.source {
            Source::Node { node, subpath } => InputRecord::Stage {
                node: graph.nodes[*node].id.clone(),
                key: key(*node),
                subpath: subpath.clone(),
                outputs_hash: cache
                    .read_entry(&key(*node))
                    .map(|m| m.outputs_hash)
                    .unwrap_or_default(),
            },
            Source::All { nodes } => InputRecord::All {
                members: nodes
                    .iter()
                    .map(|&u| {
                        (
                            graph.nodes[u].vars_label(),
                            (graph.nodes[u].id.clone(), key(u)),
                        )
                    })
                    .collect(),
            },
            Source::External(p) => InputRecord::External {
                path: p.clone(),
                content: externals[p].content.clone(),
                files: externals[p].files.len(),
            },
        };
        out.insert(inp.name.clone(), rec);
    }
    out
}
