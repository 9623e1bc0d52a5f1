//! Stage instances: foreach lists, matrices, sweeping along with an upstream, picking one
//! instance, gathering all, and --set on sweeps and single instances.
mod runner_support;
use runner_support::Project;

const SWEEP: &str = "\
params:
  betas: [0.01, 0.05]
stages:
  gen:
    kind: uda-test-gen
    matrix: {seed: [1, 2], count: [1]}
  copy:
    kind: uda-test-copy
    inputs: {src: gen}
    foreach: {beta: '${betas}'}
  pick:
    kind: uda-test-copy
    inputs: {src: 'copy[beta=0.05,seed=2]/files'}
  gather:
    kind: uda-test-copy
    inputs: {src: {all: 'copy[seed=1]'}}
  pairs:
    kind: uda-test-copy
    inputs: {src: copy, extra: gen}
";

#[test]
fn sweeps_expand_join_pick_and_gather() {
    let p = Project::new(SWEEP);
    let dag = p.ok(&["dag"]);
    assert_eq!(
        Project::dag_nodes(&dag),
        [
            "gen[seed=1,count=1]",
            "gen[seed=2,count=1]",
            "copy[seed=1,count=1,beta=0.01]",
            "copy[seed=1,count=1,beta=0.05]",
            "copy[seed=2,count=1,beta=0.01]",
            "copy[seed=2,count=1,beta=0.05]",
            "pick",
            "gather",
            "pairs[seed=1,count=1,beta=0.01]",
            "pairs[seed=1,count=1,beta=0.05]",
            "pairs[seed=2,count=1,beta=0.01]",
            "pairs[seed=2,count=1,beta=0.05]",
        ],
        "{dag}"
    );
    // pairs joins copy and gen on their shared variables.
    assert!(dag.contains("pairs[seed=2,count=1,beta=0.05] [uda-test-copy]  <- src: copy[seed=2,count=1,beta=0.05], extra: gen[seed=2,count=1]"), "{dag}");
    let out = p.ok(&["run"]);
    // pairs[.., beta=0.01] and pairs[.., beta=0.05] read identical inputs (copy's outputs do not
    // depend on beta) with identical params: one key, one entry, computed once.
    assert_eq!(Project::counts(&out), (10, 2), "{out}");
    assert_eq!(
        p.key_of("pairs[seed=1,count=1,beta=0.01]"),
        p.key_of("pairs[seed=1,count=1,beta=0.05]")
    );
    // Each instance is its own node with its own params and entry.
    assert_eq!(
        p.read_latest("copy[seed=2,count=1,beta=0.05]", "files/f0.txt"),
        "hello 0 x1 seed 2\n"
    );
    assert_eq!(
        p.entry_json("copy[seed=1,count=1,beta=0.05]")["params"]["beta"],
        0.05
    );
    assert_eq!(p.read_latest("pick", "f0.txt"), "hello 0 x1 seed 2\n");
    // gather gets one folder with a link per selected instance, named by its variables.
    let mut gathered: Vec<String> = std::fs::read_dir(p.latest("gather"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    gathered.sort();
    assert_eq!(
        gathered,
        ["seed=1,count=1,beta=0.01", "seed=1,count=1,beta=0.05"]
    );
    let show = p.ok(&["show", "copy[beta=0.01]"]);
    assert_eq!(show.matches("[uda-test-copy]").count(), 2, "{show}");

    // --set on a sweep variable replaces its values; on one instance, changes only that one.
    let out = p.ok(&["run", "--dry-run", "--set", "copy.beta=[0.05, 0.2]"]);
    let copies: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("would run copy["))
        .map(|l| l.split(" (key").next().unwrap())
        .collect();
    assert_eq!(
        copies,
        [
            "would run copy[seed=1,count=1,beta=0.2]",
            "would run copy[seed=2,count=1,beta=0.2]"
        ],
        "only the new value runs; beta=0.05 is cached: {out}"
    );
    let out = p.ok(&[
        "run",
        "--dry-run",
        "--set",
        "copy[beta=0.01,seed=1].suffix=END",
    ]);
    let runs: Vec<&str> = out.lines().filter(|l| l.starts_with("would run")).collect();
    assert_eq!(runs.len(), 1, "that copy instance only: {out}");
    let depends: Vec<&str> = out
        .lines()
        .filter(|l| {
            l.ends_with("runs only if the outputs of copy[seed=1,count=1,beta=0.01] change")
        })
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        depends,
        ["gather", "pairs[seed=1,count=1,beta=0.01]"],
        "what reads it is decided once it has run: {out}"
    );
    assert!(
        out.contains("would run copy[seed=1,count=1,beta=0.01]")
            && out.contains("param suffix changed:  -> END"),
        "{out}"
    );
    let out = p.ok(&[
        "run",
        "--stage",
        "copy[seed=1,beta=0.01]",
        "--set",
        "copy[beta=0.01,seed=1].suffix=END",
    ]);
    assert_eq!(
        Project::counts(&out),
        (1, 1),
        "gen is cached, only that copy runs: {out}"
    );
    assert_eq!(
        p.read_latest("copy[seed=1,count=1,beta=0.01]", "files/f0.txt"),
        "hello 0 x1 seed 1\nEND"
    );
    let out = p.fails(&["run", "--dry-run", "--set", "copy[beta=0.3].suffix=x"]);
    assert!(out.contains("no instance matches"), "{out}");
}

#[test]
fn sweep_errors_are_clear() {
    let p = Project::new(
        "stages:\n  g:\n    kind: uda-test-gen\n    foreach: {seed: [1, 2]}\n  c:\n    kind: uda-test-copy\n    inputs: {src: 'g[seed=3]'}\n",
    );
    let out = p.fails(&["run", "--dry-run"]);
    assert!(out.contains("pipeline.yaml:7:14: stage 'c': input 'src': no instance of 'g' matches [seed=3] (instances: g[seed=1], g[seed=2])"), "{out}");
    let p = Project::new(
        "stages:\n  g:\n    kind: uda-test-gen\n    foreach: {seed: [1, 2], count: [1]}\n",
    );
    let out = p.fails(&["run", "--dry-run"]);
    assert!(out.contains("use `matrix:` for every combination"), "{out}");
    let p = Project::new(
        "stages:\n  g:\n    kind: uda-test-gen\n    foreach: {seed: [1, 2]}\n  c:\n    kind: uda-test-gen\n    inputs: {}\n    foreach: {seed: [1]}\n  d:\n    kind: uda-test-copy\n    inputs: {src: g}\n    foreach: {seed: [5]}\n",
    );
    let out = p.fails(&["run", "--dry-run"]);
    assert!(out.contains("pipeline.yaml:12:14: stage 'd': sweep variable 'seed' is already swept by an upstream stage"), "{out}");
}

/// A sweep of one value is still a sweep: downstream stages are swept along and can use the
/// variable (`${seed}`), so a pipeline reads the same with `seeds: [0]` as with `seeds: [0, 1]`.
#[test]
fn a_one_value_sweep_is_swept_along() {
    let pipeline = |seeds: &str| {
        format!(
            "\
params:
  seeds: {seeds}
stages:
  gen:
    kind: uda-test-gen
    foreach: {{seed: '${{seeds}}'}}
  copy:
    kind: uda-test-copy
    inputs: {{src: gen}}
    params: {{suffix: '-s${{seed}}'}}
  pick:
    kind: uda-test-copy
    inputs: {{src: 'gen[seed=0]'}}
"
        )
    };
    let one = Project::new(&pipeline("[0]"));
    let dag = one.ok(&["dag"]);
    assert_eq!(
        Project::dag_nodes(&dag),
        ["gen[seed=0]", "copy[seed=0]", "pick"],
        "{dag}"
    );
    let two = Project::new(&pipeline("[0, 1]"));
    let dag = two.ok(&["dag"]);
    assert_eq!(
        Project::dag_nodes(&dag),
        [
            "gen[seed=0]",
            "gen[seed=1]",
            "copy[seed=0]",
            "copy[seed=1]",
            "pick"
        ],
        "{dag}"
    );
    let out = one.ok(&["run"]);
    assert_eq!(Project::counts(&out), (3, 0), "{out}");
    let shown = one.ok(&["show", "copy[seed=0]"]);
    assert!(shown.contains("-s0"), "{shown}");
}
