use super::*;

fn load_str(text: &str, sets: &[&str]) -> (Option<PipelineFile>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.yaml");
    std::fs::write(&path, text).unwrap();
    let mut issues = Issues::default();
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    let p = load(&path, &sets, &mut issues);
    (
        p,
        issues
            .list
            .iter()
            .map(|i| i.to_string().replace(&path.display().to_string(), "p.yaml"))
            .collect(),
    )
}

#[test]
fn stage_refs_parse() {
    assert_eq!(
        parse_stage_ref("src").unwrap(),
        ("src".into(), vec![], None)
    );
    assert_eq!(
        parse_stage_ref("synth/gta5/").unwrap(),
        ("synth".into(), vec![], Some("gta5".into()))
    );
    assert_eq!(
        parse_stage_ref("fda[beta=0.01, seed=1]/img").unwrap(),
        (
            "fda".into(),
            vec![("beta".into(), "0.01".into()), ("seed".into(), "1".into())],
            Some("img".into())
        )
    );
    assert!(
        parse_stage_ref("fda[beta=0.01")
            .unwrap_err()
            .contains("missing ']'")
    );
    assert!(parse_stage_ref("a/../b").unwrap_err().contains(".."));
    assert!(is_external_path("./data") && is_external_path("/abs") && !is_external_path("data/x"));
}

#[test]
fn sweeps_and_sets() {
    let text = "params: {b: [0.1, 0.2]}\nstages:\n  a:\n    kind: k\n    foreach: {beta: '${b}'}\n  m:\n    kind: k\n    matrix: {x: [1, 2], y: [a, b]}\n  l:\n    kind: k\n    foreach: [{s: 1, t: x}, {s: 2, t: y}]\n";
    let (p, issues) = load_str(text, &[]);
    assert!(issues.is_empty(), "{issues:?}");
    let p = p.unwrap();
    assert_eq!(p.stages[0].sweep.len(), 2);
    assert_eq!(p.stages[1].sweep.len(), 4);
    assert_eq!(p.stages[1].sweep_vars, ["x", "y"]);
    assert_eq!(
        p.stages[2].sweep[1],
        vec![
            ("s".to_string(), serde_json::json!(2)),
            ("t".to_string(), serde_json::json!("y"))
        ]
    );
    let (p, issues) = load_str(
        text,
        &[
            "a.beta=[0.3]",
            "m.extra.deep=1",
            "params.b=[9]",
            "a[beta=0.3].q=2",
        ],
    );
    assert!(issues.is_empty(), "{issues:?}");
    let p = p.unwrap();
    assert_eq!(
        p.stages[0].sweep,
        vec![vec![("beta".to_string(), serde_json::json!(0.3))]]
    );
    assert_eq!(
        p.stages[1].params.get("extra").unwrap().to_json(),
        serde_json::json!({"deep": 1})
    );
    assert_eq!(p.globals.get("b").unwrap(), Some(serde_json::json!([9])));
    assert_eq!(p.instance_overrides[0].path, ["q"]);
}

#[test]
fn shape_errors_have_locations() {
    let (_, issues) = load_str(
        "stagez: {}\nstages:\n  a:\n    kind: k\n    resources: {cpus: -1, disks: 2}\n    inputs: {x: 5}\n",
        &[],
    );
    let all = issues.join("\n");
    assert!(
        all.contains("p.yaml:1:1: unknown top-level key 'stagez'"),
        "{all}"
    );
    assert!(
        all.contains("p.yaml:5:23: stage 'a': resources.cpus must be a non-negative number"),
        "{all}"
    );
    assert!(
        all.contains("p.yaml:5:27: stage 'a': unknown resource 'disks'"),
        "{all}"
    );
    assert!(
        all.contains("p.yaml:6:17: stage 'a': an input is a stage name"),
        "{all}"
    );
}
