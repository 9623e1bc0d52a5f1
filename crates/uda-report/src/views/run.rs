//! View 8, the run: the pipeline DAG with each node's state in the last run and the duration of
//! its last computation, a timeline of the last run that computed something, and its wall time;
//! all from the run history (`cache/history/*.parquet`, one file per `uda-pipe run`).

use super::{Block, Section};
use crate::chart::{Chart, Dag, DagBox, Figure, Span, State, Timeline};
use crate::error::Result;
use crate::html::esc;
use crate::page::{DagNode, Sources};
use crate::read;
use std::path::Path;

pub(super) fn empty() -> Section {
    Section::new(
        "run",
        "The run",
        "The DAG with each stage's state and duration, and the timeline of the last run.",
    )
}

/// One history row (the columns this view uses).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Record {
    pub run_id: String,
    pub node: String,
    pub outcome: String,
    pub start_ms: f64,
    pub duration_s: f64,
}

fn read_history(dir: &Path, pipeline: Option<&str>) -> Result<Vec<Record>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let df = read::frame(&f)?;
        let run = read::strings(&df, &f, "run_id")?;
        let pipe = read::strings(&df, &f, "pipeline")?;
        let node = read::strings(&df, &f, "node")?;
        let outcome = read::strings(&df, &f, "outcome")?;
        let start = read::f64s(&df, &f, "start")?;
        let dur = read::f64s(&df, &f, "duration_s")?;
        for i in 0..df.height() {
            if pipeline.is_some_and(|p| pipe[i].as_deref() != Some(p)) {
                continue;
            }
            out.push(Record {
                run_id: run[i].clone().unwrap_or_default(),
                node: node[i].clone().unwrap_or_default(),
                outcome: outcome[i].clone().unwrap_or_default(),
                start_ms: start[i].unwrap_or(0.0),
                duration_s: dur[i].unwrap_or(0.0),
            });
        }
    }
    Ok(out)
}

/// The last run (in file order) in which some node ran or failed; `None` if none did.
pub(crate) fn last_computing_run(history: &[Record]) -> Option<&str> {
    history
        .iter()
        .rev()
        .find(|r| r.outcome == "ran" || r.outcome == "failed")
        .map(|r| r.run_id.as_str())
}

/// Spans of one run, relative to its first start, in start order.
pub(crate) fn timeline(history: &[Record], run: &str) -> (Vec<Span>, f64) {
    let rows: Vec<&Record> = history.iter().filter(|r| r.run_id == run).collect();
    let t0 = rows
        .iter()
        .map(|r| r.start_ms)
        .fold(f64::INFINITY, f64::min);
    let mut spans: Vec<Span> = rows
        .iter()
        .map(|r| Span {
            label: r.node.clone(),
            start_s: (r.start_ms - t0) / 1000.0,
            duration_s: r.duration_s,
            state: State::parse(&r.outcome),
        })
        .collect();
    spans.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    let wall = spans
        .iter()
        .map(|s| s.start_s + s.duration_s)
        .fold(0.0, f64::max);
    (spans, wall)
}

/// Layers (longest path from a source) and slots (order within the layer) of the DAG, with
/// each node's state in its latest record and the duration of its latest computation.
pub(crate) fn dag(nodes: &[DagNode], history: &[Record]) -> Dag {
    let mut layer = vec![0usize; nodes.len()];
    // Nodes come in pipeline (topological) order, but a bounded relaxation also tolerates any.
    for _ in 0..nodes.len() {
        let mut changed = false;
        for (i, n) in nodes.iter().enumerate() {
            for &d in &n.deps {
                if d < nodes.len() && layer[i] < layer[d] + 1 {
                    layer[i] = layer[d] + 1;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    // Slots: layer by layer, nodes sorted by the mean slot of their inputs (the barycentre
    // heuristic), ties in pipeline order, so edges mostly run straight and cross less.
    let mut slot = vec![0usize; nodes.len()];
    let depth = layer.iter().copied().max().unwrap_or(0);
    for l in 0..=depth {
        let mut members: Vec<(f64, usize)> = (0..nodes.len())
            .filter(|&i| layer[i] == l)
            .map(|i| {
                let deps: Vec<f64> = nodes[i]
                    .deps
                    .iter()
                    .filter(|&&d| d < nodes.len())
                    .map(|&d| slot[d] as f64)
                    .collect();
                let centre = if deps.is_empty() {
                    0.0
                } else {
                    deps.iter().sum::<f64>() / deps.len() as f64
                };
                (centre, i)
            })
            .collect();
        members.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for (k, (_, i)) in members.into_iter().enumerate() {
            slot[i] = k;
        }
    }
    let boxes = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let last = history.iter().rev().find(|r| r.node == n.id);
            let state = last
                .map(|r| State::parse(&r.outcome))
                .unwrap_or(State::Unknown);
            let computed = history
                .iter()
                .rev()
                .find(|r| r.node == n.id && (r.outcome == "ran" || r.outcome == "failed"));
            let detail = match computed {
                Some(c) => format!("{} · {}", state.as_str(), duration(c.duration_s)),
                None => state.as_str().to_string(),
            };
            DagBox {
                label: n.id.clone(),
                detail,
                state,
                layer: layer[i],
                slot: slot[i],
            }
        })
        .collect();
    let edges = nodes
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.deps.iter().map(move |&d| (d, i)))
        .collect();
    Dag {
        title: "Pipeline DAG: state in the last run · duration of the last computation".into(),
        nodes: boxes,
        edges,
    }
}

/// `0.42 s`, `12.3 s`, `4 min 05 s`, `1 h 02 min`.
pub(crate) fn duration(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.2} s")
    } else if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        format!("{} min {:02.0} s", (s / 60.0).floor(), s % 60.0)
    } else {
        format!(
            "{} h {:02.0} min",
            (s / 3600.0).floor(),
            (s % 3600.0) / 60.0
        )
    }
}

pub(super) fn section(sources: &Sources) -> Result<Section> {
    let mut s = empty();
    let Some(dir) = sources.history.as_deref().filter(|d| d.is_dir()) else {
        return Ok(s.note(
            "no run history (cache/history/): give the pipeline file or --cache to show the run",
        ));
    };
    let history = read_history(dir, sources.pipeline.as_deref())?;
    if !sources.dag.is_empty() {
        s.blocks.push(Block::Figure(Figure {
            name: "run_dag".into(),
            chart: Chart::Dag(dag(&sources.dag, &history)),
        }));
    }
    match last_computing_run(&history) {
        Some(run) => {
            let (spans, wall) = timeline(&history, run);
            let ran = spans.iter().filter(|s| s.state == State::Ran).count();
            let failed = spans.iter().filter(|s| s.state == State::Failed).count();
            let compute: f64 = spans
                .iter()
                .filter(|s| matches!(s.state, State::Ran | State::Failed))
                .map(|s| s.duration_s)
                .sum();
            s.blocks.push(Block::Html(format!(
                "<p class=\"stats\">Last run that computed something: <code>{}</code>: {ran} ran, \
                 {failed} failed, {} cached; wall time <b>{}</b>, stage time {} \
                 (the ratio is the parallelism).</p>",
                esc(run),
                spans.len() - ran - failed,
                duration(wall),
                duration(compute)
            )));
            s.blocks.push(Block::Figure(Figure {
                name: "run_timeline".into(),
                chart: Chart::Timeline(Timeline {
                    title: format!("Run {run}: stages over time"),
                    spans,
                }),
            }));
        }
        None => s.blocks.push(Block::Note(
            "the run history records no stage that ran (everything was cached)".into(),
        )),
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(run: &str, node: &str, outcome: &str, start_ms: f64, d: f64) -> Record {
        Record {
            run_id: run.into(),
            node: node.into(),
            outcome: outcome.into(),
            start_ms,
            duration_s: d,
        }
    }

    #[test]
    fn dag_layers_states_and_the_last_computing_run() {
        let nodes = [
            DagNode {
                id: "synth".into(),
                deps: vec![],
            },
            DagNode {
                id: "train".into(),
                deps: vec![0],
            },
            DagNode {
                id: "val".into(),
                deps: vec![0],
            },
            DagNode {
                id: "eval".into(),
                deps: vec![1, 2],
            },
        ];
        let h = [
            rec("r1", "synth", "ran", 1000.0, 2.0),
            rec("r1", "train", "ran", 3000.0, 5.0),
            rec("r1", "val", "ran", 3000.0, 1.0),
            rec("r1", "eval", "failed", 8000.0, 0.5),
            rec("r2", "synth", "cached", 9000.0, 0.0),
            rec("r2", "train", "cached", 9000.0, 0.0),
        ];
        let d = dag(&nodes, &h);
        let layers: Vec<(usize, usize)> = d.nodes.iter().map(|n| (n.layer, n.slot)).collect();
        assert_eq!(layers, [(0, 0), (1, 0), (1, 1), (2, 0)]);
        // Barycentre order: a node fed by the lower of two parents goes below the other one.
        let crossing = [
            DagNode {
                id: "a".into(),
                deps: vec![],
            },
            DagNode {
                id: "b".into(),
                deps: vec![],
            },
            DagNode {
                id: "from_b".into(),
                deps: vec![1],
            },
            DagNode {
                id: "from_a".into(),
                deps: vec![0],
            },
        ];
        let slots: Vec<usize> = dag(&crossing, &[]).nodes.iter().map(|n| n.slot).collect();
        assert_eq!(slots, [0, 1, 1, 0]);
        assert_eq!(
            d.nodes[1].state,
            State::Cached,
            "state of the latest record"
        );
        assert_eq!(
            d.nodes[1].detail, "cached · 5.00 s",
            "duration of the last computation"
        );
        assert_eq!(d.nodes[3].state, State::Failed);
        assert_eq!(d.edges, [(0, 1), (0, 2), (1, 3), (2, 3)]);
        assert_eq!(last_computing_run(&h), Some("r1"));
        let (spans, wall) = timeline(&h, "r1");
        assert_eq!(spans[0].label, "synth");
        assert_eq!((spans[1].start_s, spans[1].duration_s), (2.0, 5.0));
        assert_eq!(
            wall, 7.5,
            "last end (eval: 7 s + 0.5 s) after the first start"
        );
        assert_eq!(last_computing_run(&h[4..]), None);
        assert_eq!(duration(125.0), "2 min 05 s");
    }
}
