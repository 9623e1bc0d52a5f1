//! The example stage in Python (`examples/python-stage/stage.py`, the contract of
//! docs/writing-a-stage.md) runs through `uda-pipe run` like any other stage: validated against
//! its `--describe`, run, committed, cached, and its bad params reported at their line.
mod runner_support;
use runner_support::Project;

fn project(params: &str) -> Project {
    let mut p = Project::new(&format!(
        "stages:\n  summary:\n    kind: folder-summary\n    inputs: {{data: ./data}}\n    params: {params}\n"
    ));
    p.write("data/a.txt", "hello");
    p.write("data/sub/b.txt", "x".repeat(3000).as_str());
    p.write("data/c.csv", "1,2");
    p.write("data/.hidden.txt", "secret");
    let stages = p.path("py-stages");
    std::fs::create_dir_all(&stages).unwrap();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/python-stage/stage.py");
    std::os::unix::fs::symlink(script, stages.join("folder-summary")).unwrap();
    p.stage_dirs.insert(0, stages);
    p
}

#[test]
fn the_python_example_stage_runs_through_the_runner() {
    if std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("SKIPPED: no python3 on PATH for the Python example stage");
        return;
    }
    let p = project("{pattern: '*.txt', largest: 1}");
    let out = p.ok(&["run"]);
    assert_eq!(Project::counts(&out), (1, 0), "{out}");
    let summary: serde_json::Value =
        serde_json::from_str(&p.read_latest("summary", "summary.json")).unwrap();
    assert_eq!(
        summary["files"], 2,
        "hidden and .csv files skipped: {summary}"
    );
    assert_eq!(summary["bytes"], 3005);
    assert_eq!(summary["largest"][0]["path"], "sub/b.txt");
    assert_eq!(p.entry_json("summary")["metrics"]["files"], 2);
    let again = p.ok(&["run"]);
    assert_eq!(Project::counts(&again), (0, 1), "{again}");
    // The runner types its params by the defaults it describes.
    let q = project("{largest: many}");
    let out = q.fails(&["run"]);
    assert!(
        out.contains("pipeline.yaml:5:") && out.contains("param 'largest' must be an integer"),
        "{out}"
    );
}
