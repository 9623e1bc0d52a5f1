//! dag formats, gc, report and the run history.
mod runner_support;
use runner_support::Project;

const TWO: &str = "stages:\n  gen:\n    kind: uda-test-gen\n  copy:\n    kind: uda-test-copy\n    inputs: {src: gen, extra: ./tables}\n";

fn project() -> Project {
    let p = Project::new(TWO);
    std::fs::create_dir_all(p.path("tables")).unwrap();
    let row = uda_runner::history::HistoryRow {
        run_id: "r".into(),
        pipeline: "p".into(),
        node: "table-node".into(),
        stage: "s".into(),
        kind: "k".into(),
        key: "k1".into(),
        outcome: "ran".into(),
        start_ms: 0,
        duration_s: 0.25,
        peak_rss_bytes: Some(7),
        exit_status: Some(0),
        executor: None,
        job_id: None,
    };
    uda_runner::history::write_run(&p.path("tables"), "t", &[row]).unwrap();
    p
}

#[test]
fn dag_in_three_formats() {
    let p = project();
    let text = p.ok(&["dag"]);
    assert!(
        text.contains("copy [uda-test-copy]  <- src: gen, extra: ./tables"),
        "{text}"
    );
    let dot = p.ok(&["dag", "--format", "dot"]);
    assert!(
        dot.starts_with("digraph \"pipeline\"")
            && dot.contains("\"gen\" -> \"copy\" [label=\"src\"];")
            && dot.contains("\"./tables\" [shape=folder];"),
        "{dot}"
    );
    let mermaid = p.ok(&["dag", "--format", "mermaid"]);
    assert!(
        mermaid.starts_with("flowchart LR")
            && mermaid.contains("n0 -->|src| n1")
            && mermaid.contains("e0 -->|extra| n1"),
        "{mermaid}"
    );
}

#[test]
fn gc_removes_unreachable_entries_only() {
    let p = project();
    p.ok(&["run"]);
    p.ok(&["run", "--set", "gen.count=3"]);
    assert_eq!(p.entries().len(), 4);
    let dry = p.ok(&["gc", "--dry-run"]);
    assert_eq!(dry.matches("would remove ").count() - 1, 2, "{dry}");
    assert_eq!(p.entries().len(), 4, "dry run removes nothing");
    let out = p.ok(&["gc"]);
    assert!(out.contains("removed 2 entries"), "{out}");
    assert_eq!(p.entries().len(), 2);
    let out = p.ok(&["run"]);
    assert_eq!(
        Project::counts(&out),
        (0, 2),
        "the pipeline's current results were kept: {out}"
    );
    let out = p.ok(&["run", "--dry-run", "--set", "gen.count=3"]);
    assert!(out.contains("would run gen"), "{out}");
}

#[test]
fn report_prints_parquet_and_history() {
    let p = project();
    p.ok(&["run"]);
    p.ok(&["run"]);
    let out = p.ok(&["report", "tables/t.parquet"]);
    assert!(out.contains("table-node") && out.contains("0.25"), "{out}");
    // A stage's outputs: copy copied the table from ./tables.
    let out = p.ok(&["report", "copy"]);
    assert!(
        out.contains("extra/t.parquet") && out.contains("table-node"),
        "{out}"
    );
    let out = p.ok(&["report", "--history"]);
    let lines: Vec<&str> = out.lines().filter(|l| l.contains("uda-test-")).collect();
    assert_eq!(lines.len(), 4, "two runs of two stages: {out}");
    assert_eq!(
        lines.iter().filter(|l| l.contains(" ran ")).count(),
        2,
        "{out}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.contains(" cached ")).count(),
        2,
        "{out}"
    );
    let out = p.fails(&["report", "nothing-here"]);
    assert!(out.contains("no stage or instance 'nothing-here'"), "{out}");
}
