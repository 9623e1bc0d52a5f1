//! Every pipeline validation error names the file, the line and column, and what is wrong.
mod runner_support;
use runner_support::Project;

/// Runs `uda-pipe run --dry-run` on a pipeline that must be rejected; returns the message.
fn reject(pipeline: &str) -> String {
    let p = Project::new(pipeline);
    let out = p.fails(&["run", "--dry-run"]);
    assert!(out.starts_with("error: "), "{out}");
    out
}

#[test]
fn unknown_stage_kind() {
    let out = reject("stages:\n  a:\n    kind: uda-test-gne\n");
    assert!(
        out.contains("pipeline.yaml:3:11: stage 'a': unknown stage kind 'uda-test-gne'"),
        "{out}"
    );
    assert!(out.contains("did you mean uda-test-gen"), "{out}");
}

#[test]
fn unknown_param() {
    let out = reject("stages:\n  a:\n    kind: uda-test-gen\n    params:\n      cont: 3\n");
    assert!(out.contains("pipeline.yaml:5:7: stage 'a': unknown param 'cont' for kind uda-test-gen (it takes: alloc_mb, count, hold_ms, link_to, scale, seed, stamp, text)"), "{out}");
}

#[test]
fn type_mismatch() {
    let out =
        reject("stages:\n  a:\n    kind: uda-test-gen\n    params: {count: lots, scale: 2}\n");
    assert!(out.contains("pipeline.yaml:4:21: stage 'a': param 'count' must be an integer like the default 2, found a string \"lots\""), "{out}");
    assert_eq!(
        out.lines().filter(|l| l.contains("pipeline.yaml:")).count(),
        1,
        "one problem: an int is fine for the float param scale: {out}"
    );
    // Through a --set, the location is the value's place in the file.
    let p = Project::new("stages:\n  a:\n    kind: uda-test-gen\n    params: {text: x}\n");
    let out = p.fails(&["run", "--set", "a.text=[1, 2]"]);
    assert!(out.contains("param 'text' must be a string"), "{out}");
}

#[test]
fn missing_input() {
    // A required input not given.
    let out = reject("stages:\n  c:\n    kind: uda-test-copy\n");
    assert!(
        out.contains(
            "pipeline.yaml:2:3: stage 'c': missing input 'src' (required by kind uda-test-copy"
        ),
        "{out}"
    );
    // An input from a stage that does not exist.
    let out = reject("stages:\n  c:\n    kind: uda-test-copy\n    inputs: {src: gne}\n");
    assert!(
        out.contains(
            "pipeline.yaml:4:14: stage 'c': input 'src': no stage named 'gne' (stages: c)"
        ),
        "{out}"
    );
    // An external path that does not exist.
    let out = reject("stages:\n  c:\n    kind: uda-test-copy\n    inputs:\n      src: ./nowhere\n");
    assert!(
        out.contains("pipeline.yaml:5:7: stage 'c': input 'src': external path")
            && out.contains("nowhere does not exist"),
        "{out}"
    );
    // An input the stage does not take.
    let out = reject(
        "stages:\n  g: {kind: uda-test-gen}\n  c:\n    kind: uda-test-copy\n    inputs: {src: g, srcc: g}\n",
    );
    assert!(out.contains("pipeline.yaml:5:22: stage 'c': unknown input 'srcc' for kind uda-test-copy (it takes: src, extra)"), "{out}");
}

#[test]
fn duplicate_name() {
    let out = reject("stages:\n  a:\n    kind: uda-test-gen\n  a:\n    kind: uda-test-gen\n");
    assert!(
        out.contains("pipeline.yaml:4:3: not valid YAML")
            && out.contains("duplicate mapping key: a"),
        "{out}"
    );
    let out = reject("stages:\n  a:\n    kind: uda-test-gen\n    foreach: {seed: [1, 2, 1]}\n");
    assert!(
        out.contains("pipeline.yaml:4:14: stage 'a': duplicate instance a[seed=1]"),
        "{out}"
    );
}

#[test]
fn cycle() {
    let out = reject(
        "stages:\n  a:\n    kind: uda-test-copy\n    inputs: {src: c}\n  b:\n    kind: uda-test-copy\n    inputs: {src: a}\n  c:\n    kind: uda-test-copy\n    inputs: {src: b}\n",
    );
    assert!(out.contains("pipeline.yaml:7:14: stage 'b': dependency cycle: a -> c -> b -> a (each needs the next)"), "{out}");
    let out = reject("stages:\n  a:\n    kind: uda-test-copy\n    inputs: {src: a}\n");
    assert!(
        out.contains(
            "pipeline.yaml:4:14: stage 'a': dependency cycle: a -> a (each needs the next)"
        ),
        "{out}"
    );
}

#[test]
fn shape_and_reference_errors() {
    let out = reject("stages:\n  a:\n    kind: uda-test-gen\n    parms: {count: 1}\n");
    assert!(
        out.contains("pipeline.yaml:4:5: stage 'a': unknown key 'parms'"),
        "{out}"
    );
    let out = reject("stages:\n  a:\n    kind: uda-test-gen\n    params:\n      count: ${nope}\n");
    assert!(
        out.contains("pipeline.yaml:5:14: stage 'a': unknown reference ${nope}"),
        "{out}"
    );
    let out = reject("stages:\n  a:\n    params: {count: 1}\n");
    assert!(
        out.contains("pipeline.yaml:2:3: stage 'a': missing `kind:`"),
        "{out}"
    );
    let out = reject("stages:\n  a: {kind: uda-test-gen\n");
    assert!(
        out.contains("pipeline.yaml:") && out.contains("not valid YAML"),
        "{out}"
    );
    let p = Project::new("stages:\n  a: {kind: uda-test-gen}\n");
    let out = p.fails(&["run", "--set", "b.count=1"]);
    assert!(
        out.contains("--set 'b.count=1': 'b' is neither a stage (a) nor a global param (none)"),
        "{out}"
    );
}

#[test]
fn all_problems_are_reported_at_once() {
    let out = reject(
        "stages:\n  a:\n    kind: uda-test-gen\n    params: {cont: 1, text: 2}\n  b:\n    kind: nope-stage\n",
    );
    assert!(out.contains("3 problems in the pipeline"), "{out}");
}

#[test]
fn a_stage_s_own_value_check_fails_before_anything_runs_at_the_param_s_line() {
    // gen is fine, bad's scale is not: nothing may run, not even gen.
    let p = Project::new(
        "stages:\n  gen:\n    kind: uda-test-gen\n  bad:\n    kind: uda-test-gen\n    params:\n      count: 1\n      scale: -2\n",
    );
    let out = p.fails(&["run"]);
    assert!(
        out.contains("pipeline.yaml:8:14: stage 'bad': param scale: must be a positive number, not -2 (kind uda-test-gen)"),
        "{out}"
    );
    assert!(p.entries().is_empty(), "{:?}", p.entries());
    // The answer is remembered: a second look does not start the stage again.
    let checks = || {
        let mut v: Vec<_> = std::fs::read_dir(p.path("cache/state/check"))
            .unwrap()
            .flatten()
            .map(|e| (e.file_name(), e.metadata().unwrap().modified().unwrap()))
            .collect();
        v.sort();
        v
    };
    let before = checks();
    assert_eq!(
        before.len(),
        2,
        "one remembered answer per distinct params: {before:?}"
    );
    std::thread::sleep(std::time::Duration::from_millis(20));
    p.fails(&["status"]);
    assert_eq!(checks(), before, "remembered answers are not rewritten");
}

#[test]
fn executor_and_scheduler_resources_are_checked_with_their_lines() {
    let out = reject(
        "executor:\n  slurm: {partiton: gpu}\nstages:\n  a:\n    kind: uda-test-gen\n    resources: {time: soon, shards: 4}\n",
    );
    assert!(
        out.contains("pipeline.yaml:2:3: executor.slurm.partiton: unknown Slurm setting 'partiton' (known: partition,"),
        "{out}"
    );
    assert!(
        out.contains("pipeline.yaml:6:23: stage 'a': resources.time: 'soon' is not a time limit"),
        "{out}"
    );
    assert!(
        out.contains("stage 'a': resources.shards: uda-test-gen cannot run as array tasks"),
        "{out}"
    );
    // --executor on the command line wins over the file, and names what it accepts.
    let p = Project::new("stages:\n  a:\n    kind: uda-test-gen\n");
    let out = p.fails(&["run", "--executor", "pbs"]);
    assert!(out.contains("invalid value 'pbs'"), "{out}");
    let out = p.fails(&[
        "run",
        "--executor",
        "slurm",
        "--slurm-opt",
        "poll_interval_s=0.1",
    ]);
    assert!(out.contains("flood"), "{out}");
}
