//! Why a node runs, in words: the typed [`Reason`]s the scheduler decides on, and [`explain`],
//! which compares a node's key document with the entry its `latest` link points to (the last
//! result this pipeline used for the node): which param changed and how, which input, which
//! files of an external folder, whether the stage binary was rebuilt.

use crate::cache::{Cache, InputRecord};
use crate::graph::{Graph, Source, flatten_params};
use crate::hashing::{self, Hash};
use crate::pipeline::render_value;
use crate::plan::{External, short};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

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
    /// Its outputs differ from those the previous result of this node was made from.
    OutputsChanged,
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
                    UpstreamChange::OutputsChanged => {
                        write!(f, "input '{input}': upstream {upstream}'s outputs changed")
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

/// Why a node without a cached entry must run, compared with its previous result.
pub fn explain(
    graph: &Graph,
    cache: &Cache,
    keys: &[Option<String>],
    externals: &HashMap<PathBuf, External>,
    i: usize,
) -> Vec<Reason> {
    let n = &graph.nodes[i];
    let Some(prev) = cache.latest_entry(&graph.name, &n.id) else {
        return vec![Reason::NeverRan];
    };
    if keys[i].as_deref() == Some(prev.key.as_str()) {
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
                    subpath: old_sub,
                    node: old_node,
                    outputs_hash,
                    ..
                }),
            ) => {
                let up = &graph.nodes[*node];
                // The upstream's own reasons are listed with it; do not repeat them here.
                let now = keys[*node]
                    .as_deref()
                    .and_then(|k| cache.read_entry(k))
                    .map(|m| m.outputs_hash);
                let change = match now {
                    None => Some(UpstreamChange::Reruns),
                    Some(h) if h != *outputs_hash => Some(UpstreamChange::OutputsChanged),
                    Some(_) => None,
                };
                if let Some(change) = change {
                    upstream_reasons.push(Reason::Upstream {
                        input: Some(inp.name.clone()),
                        upstream: up.id.clone(),
                        change,
                    });
                } else if subpath != old_sub || *old_node != up.id {
                    reasons.push(format!("input '{}' now reads {}", inp.name, up.id));
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
                    .map(|&u| {
                        (
                            graph.nodes[u].vars_label(),
                            keys[u].clone().unwrap_or_default(),
                        )
                    })
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
            key: keys[i].clone().unwrap_or_default(),
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
