//! Cache keys and the decision, per node, to reuse or to run, with the reason in words.
//!
//! key = blake3(kind, blake3 of the stage binary, canonical params, and per input: the upstream
//! entry's key (+ path inside it), or the content hash of an external file/folder). Keys are known
//! for the whole DAG before anything runs, so `--dry-run` and `status` are exact.
//!
//! Reasons compare the node's key document with the entry its `latest` link points to (the last
//! result this pipeline used for the node): which param changed and how, which input, which
//! files of an external folder, whether the stage binary was rebuilt.

use crate::cache::{Cache, EntryMeta, InputRecord, Verified};
use crate::error::Result;
use crate::graph::{Graph, Source, flatten_params};
use crate::hashing::{self, FileEntry, Hash};
use crate::pipeline::render_value;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

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
}

/// Why a node runs. The scheduler decides on the variant; people read its `Display`.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    /// `--force`.
    Forced,
    /// The entry failed verification; it goes to `cache/trash` and is recomputed.
    Corrupt { key: String, details: String },
    /// No entry of this node in this pipeline, ever.
    NeverRan,
    /// The node's current entry was deleted (by `gc`, or discarded as corrupted).
    EntryRemoved { key: String },
    /// An upstream node reruns or was recomputed: what this entry read may change.
    Upstream {
        input: Option<String>,
        upstream: String,
        change: UpstreamChange,
    },
    /// Something the key is made of changed: kind, code, a param, an input (in words).
    Changed(String),
    /// A different key without any difference that could be named.
    NoEntry { key: String, previous: String },
}

/// How an upstream node changed, for [`Reason::Upstream`].
#[derive(Debug, Clone, PartialEq)]
pub enum UpstreamChange {
    /// It reruns in this run.
    Reruns,
    /// It was recomputed since this entry was made, and its outputs differ.
    OutputsChanged,
    /// Its key changed; its result is cached (under `key`).
    NowCached { key: String },
    /// It was recomputed in this run (the scheduler re-checks this node after it).
    Recomputed,
}

impl Reason {
    /// Whether the node runs only because of something upstream.
    pub fn is_upstream(&self) -> bool {
        matches!(self, Reason::Upstream { .. })
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Forced => write!(f, "forced (--force)"),
            Reason::Corrupt { key, details } => write!(
                f,
                "its cached entry {key} is corrupted ({details}); it will be moved to cache/trash and recomputed"
            ),
            Reason::NeverRan => write!(f, "never ran in this pipeline (no cached result)"),
            Reason::EntryRemoved { key } => {
                write!(f, "its cached entry {key} was removed (gc or discarded)")
            }
            Reason::Upstream {
                input,
                upstream,
                change,
            } => {
                let input = input.as_deref().unwrap_or("?");
                match change {
                    UpstreamChange::Reruns if input == "?" => write!(
                        f,
                        "upstream {upstream} reruns; this entry is redone to match its new outputs"
                    ),
                    UpstreamChange::Reruns => {
                        write!(f, "input '{input}': upstream {upstream} reruns")
                    }
                    UpstreamChange::OutputsChanged => write!(
                        f,
                        "input '{input}': upstream {upstream} was recomputed and its outputs changed since this entry was made"
                    ),
                    UpstreamChange::NowCached { key } => write!(
                        f,
                        "input '{input}': upstream {upstream} changed (now its cached result {})",
                        short(key)
                    ),
                    UpstreamChange::Recomputed => {
                        write!(f, "an upstream entry was recomputed")
                    }
                }
            }
            Reason::Changed(what) => write!(f, "{what}"),
            Reason::NoEntry { key, previous } => write!(
                f,
                "no cached entry for key {key} (previous result: {previous})"
            ),
        }
    }
}

/// Reasons as one line.
pub fn join(reasons: &[Reason]) -> String {
    reasons
        .iter()
        .map(Reason::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[derive(Debug)]
pub struct Plan {
    pub keys: Vec<String>,
    pub externals: HashMap<PathBuf, External>,
    pub decisions: Vec<Decision>,
}

/// Hashes external inputs (memoised) and computes every node's key.
pub fn keys(graph: &Graph, cache: &Cache) -> Result<(Vec<String>, HashMap<PathBuf, External>)> {
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
    let mut keys: Vec<String> = Vec::with_capacity(graph.nodes.len());
    for n in &graph.nodes {
        let mut inputs = serde_json::Map::new();
        for i in &n.inputs {
            let v = match &i.source {
                Source::Node { node, subpath } => json!({"stage": keys[*node], "subpath": subpath}),
                Source::External(p) => json!({"external": externals[p].content}),
                Source::All { nodes } => {
                    let m: serde_json::Map<String, Value> = nodes
                        .iter()
                        .map(|&u| (graph.nodes[u].vars_label(), json!(keys[u])))
                        .collect();
                    json!({"all": m})
                }
            };
            inputs.insert(i.name.clone(), v);
        }
        let doc = json!({
            "v": 1,
            "kind": n.kind,
            "binary": hashing::hex(&n.binary.hash),
            "params": n.params,
            "inputs": inputs,
        });
        keys.push(crate::cache::key_of(&doc));
    }
    Ok((keys, externals))
}

/// Decides for each of `nodes` (a subset, in order) whether it must run.
pub fn decide(
    graph: &Graph,
    cache: &Cache,
    keys: &[String],
    externals: &HashMap<PathBuf, External>,
    nodes: &[usize],
    forced: &[usize],
    full_verify: bool,
) -> Vec<Decision> {
    let mut decisions: Vec<Option<Decision>> = vec![None; graph.nodes.len()];
    for &i in nodes {
        let d = if forced.contains(&i) {
            Decision::Run(vec![Reason::Forced])
        } else {
            decide_one(graph, cache, keys, externals, i, &decisions, full_verify)
        };
        decisions[i] = Some(d);
    }
    decisions
        .into_iter()
        .map(|d| d.unwrap_or(Decision::Cached))
        .collect()
}

/// The decision for one node given its upstream nodes' decisions (`None` = not considered).
pub fn decide_one(
    graph: &Graph,
    cache: &Cache,
    keys: &[String],
    externals: &HashMap<PathBuf, External>,
    i: usize,
    upstream: &[Option<Decision>],
    full_verify: bool,
) -> Decision {
    let key = &keys[i];
    match cache.verify(key, full_verify) {
        Verified::Ok => {}
        Verified::Corrupt(details) => {
            return Decision::Run(vec![Reason::Corrupt {
                key: key.clone(),
                details,
            }]);
        }
        Verified::Missing => {
            return Decision::Run(explain(graph, cache, keys, externals, i, upstream));
        }
    }
    // Entries are made from upstream entries with the same keys; if one of those was recomputed
    // (--force, corruption) with different outputs since, this entry is stale.
    if let Some(meta) = cache.read_entry(key) {
        for inp in &graph.nodes[i].inputs {
            if let (Source::Node { node, .. }, Some(InputRecord::Stage { outputs_hash, .. })) =
                (&inp.source, meta.inputs.get(&inp.name))
            {
                match &upstream[*node] {
                    Some(Decision::Run(_)) => {
                        return Decision::Run(vec![Reason::Upstream {
                            input: None,
                            upstream: graph.nodes[*node].id.clone(),
                            change: UpstreamChange::Reruns,
                        }]);
                    }
                    _ => {
                        if let Some(up) = cache.read_entry(&keys[*node])
                            && up.outputs_hash != *outputs_hash
                        {
                            return Decision::Run(vec![Reason::Upstream {
                                input: Some(inp.name.clone()),
                                upstream: graph.nodes[*node].id.clone(),
                                change: UpstreamChange::OutputsChanged,
                            }]);
                        }
                    }
                }
            }
        }
    }
    Decision::Cached
}

/// Why a node without a cached entry must run, compared with its previous result.
pub fn explain(
    graph: &Graph,
    cache: &Cache,
    keys: &[String],
    externals: &HashMap<PathBuf, External>,
    i: usize,
    upstream: &[Option<Decision>],
) -> Vec<Reason> {
    let n = &graph.nodes[i];
    let Some(prev) = cache.latest_entry(&graph.name, &n.id) else {
        return vec![Reason::NeverRan];
    };
    if prev.key == keys[i] {
        return vec![Reason::EntryRemoved { key: prev.key }];
    }
    let mut reasons: Vec<String> = Vec::new();
    let mut upstream_reasons: Vec<Reason> = Vec::new();
    if prev.kind != n.kind {
        reasons.push(format!("kind changed: {} -> {}", prev.kind, n.kind));
    } else if prev.binary.blake3 != hashing::hex(&n.binary.hash) {
        reasons.push(format!(
            "stage code changed: {} was rebuilt (blake3 {} -> {})",
            n.binary.path.display(),
            short(&prev.binary.blake3),
            short(&hashing::hex(&n.binary.hash))
        ));
    }
    reasons.extend(param_changes(&prev.params, &n.params));
    for inp in &n.inputs {
        let old = prev.inputs.get(&inp.name);
        match (&inp.source, old) {
            (_, None) => reasons.push(format!("new input '{}'", inp.name)),
            (
                Source::Node { node, subpath },
                Some(InputRecord::Stage {
                    key,
                    subpath: old_sub,
                    node: old_node,
                    ..
                }),
            ) => {
                if keys[*node] != *key {
                    let up = &graph.nodes[*node];
                    // The upstream's own reasons are listed with it; do not repeat them here.
                    let change = match upstream.get(*node) {
                        Some(Some(Decision::Run(_))) => UpstreamChange::Reruns,
                        _ => UpstreamChange::NowCached {
                            key: keys[*node].clone(),
                        },
                    };
                    upstream_reasons.push(Reason::Upstream {
                        input: Some(inp.name.clone()),
                        upstream: up.id.clone(),
                        change,
                    });
                } else if subpath != old_sub || *old_node != graph.nodes[*node].id {
                    reasons.push(format!(
                        "input '{}' now reads {}",
                        inp.name, graph.nodes[*node].id
                    ));
                }
            }
            (Source::External(p), Some(InputRecord::External { content, .. })) => {
                let ext = &externals[p];
                if ext.content != *content {
                    let old_listing = read_listing(&cache.tree_listing(content));
                    let what = match old_listing {
                        Some(old) => hashing::describe_changes(&old, &ext.files, 5),
                        None => "content changed".into(),
                    };
                    reasons.push(format!(
                        "input '{}': {} changed: {what}",
                        inp.name,
                        p.display()
                    ));
                }
            }
            (Source::All { nodes }, Some(InputRecord::All { members })) => {
                let now: BTreeMap<String, String> = nodes
                    .iter()
                    .map(|&u| (graph.nodes[u].vars_label(), keys[u].clone()))
                    .collect();
                let changed: Vec<&String> = now
                    .keys()
                    .filter(|k| members.get(*k).map(|(_, key)| key) != now.get(*k))
                    .collect();
                let gone: Vec<&String> = members.keys().filter(|k| !now.contains_key(*k)).collect();
                if !changed.is_empty() || !gone.is_empty() {
                    let mut parts = Vec::new();
                    if !changed.is_empty() {
                        parts.push(format!(
                            "changed or added: {}",
                            changed
                                .iter()
                                .map(|s| s.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                    if !gone.is_empty() {
                        parts.push(format!(
                            "removed: {}",
                            gone.iter()
                                .map(|s| s.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                    reasons.push(format!(
                        "input '{}' (all instances): {}",
                        inp.name,
                        parts.join("; ")
                    ));
                }
            }
            (_, Some(_)) => reasons.push(format!(
                "input '{}' now comes from a different kind of source",
                inp.name
            )),
        }
    }
    for old in prev.inputs.keys() {
        if !n.inputs.iter().any(|i| i.name == *old) {
            reasons.push(format!("input '{old}' was removed"));
        }
    }
    let mut reasons: Vec<Reason> = reasons.into_iter().map(Reason::Changed).collect();
    reasons.extend(upstream_reasons);
    if reasons.is_empty() {
        reasons.push(Reason::NoEntry {
            key: keys[i].clone(),
            previous: prev.key,
        });
    }
    reasons
}

fn param_changes(old: &Value, new: &Value) -> Vec<String> {
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    flatten_params(old, "", &mut a);
    flatten_params(new, "", &mut b);
    let mut out = Vec::new();
    for (k, v) in &b {
        match a.get(k) {
            None => out.push(format!("param {k} added: {}", render_value(v))),
            Some(o) if o != v => out.push(format!(
                "param {k} changed: {} -> {}",
                render_value(o),
                render_value(v)
            )),
            _ => {}
        }
    }
    for k in a.keys() {
        if !b.contains_key(k) {
            out.push(format!("param {k} removed"));
        }
    }
    out
}

fn read_listing(path: &Path) -> Option<Vec<(String, Hash)>> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut out = Vec::new();
    for line in text.lines() {
        let (h, rel) = line.split_once('\t')?;
        out.push((rel.to_string(), *blake3::Hash::from_hex(h).ok()?.as_bytes()));
    }
    Some(out)
}

pub fn short(h: &str) -> &str {
    &h[..h.len().min(12)]
}

/// The input records stored in a new entry.
pub fn input_records(
    graph: &Graph,
    cache: &Cache,
    keys: &[String],
    externals: &HashMap<PathBuf, External>,
    i: usize,
) -> BTreeMap<String, InputRecord> {
    let mut out = BTreeMap::new();
    for inp in &graph.nodes[i].inputs {
        let rec = match &inp.source {
            Source::Node { node, subpath } => InputRecord::Stage {
                node: graph.nodes[*node].id.clone(),
                key: keys[*node].clone(),
                subpath: subpath.clone(),
                outputs_hash: cache
                    .read_entry(&keys[*node])
                    .map(|m: EntryMeta| m.outputs_hash)
                    .unwrap_or_default(),
            },
            Source::All { nodes } => InputRecord::All {
                members: nodes
                    .iter()
                    .map(|&u| {
                        (
                            graph.nodes[u].vars_label(),
                            (graph.nodes[u].id.clone(), keys[u].clone()),
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
