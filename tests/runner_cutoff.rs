//! Keys from input content: an upstream rebuilt with identical outputs leaves everything below
//! it cached (early cut-off), one whose outputs change reruns it and says why; `uda-pipe accept`
//! lets an entry stand for a rebuilt binary.
mod runner_support;
use runner_support::Project;

const PIPELINE: &str = "\
params:
  text: hi
stages:
  gen:
    kind: uda-test-gen
    params: {text: '${text}', count: 3}
  copy:
    kind: uda-test-copy
    inputs: {src: gen/files}
    params: {upper: true}
  last:
    kind: uda-test-copy
    inputs: {src: copy}
";

/// "Rebuilds" a stage binary: any change of its bytes is a new stage for the cache.
fn rebuild(bin: &std::path::Path) {
    let mut bytes = std::fs::read(bin).unwrap();
    bytes.extend_from_slice(b"rebuilt");
    std::fs::write(bin, bytes).unwrap();
}

#[test]
fn an_upstream_rebuilt_with_identical_outputs_leaves_downstream_cached() {
    let mut p = Project::new(PIPELINE);
    let gen_bin = p.private_stage("uda-test-gen");
    p.ok(&["run"]);
    let (copy_key, last_key) = (p.key_of("copy"), p.key_of("last"));
    rebuild(&gen_bin);
    let dry = p.ok(&["run", "--dry-run"]);
    assert!(
        dry.lines().any(|l| l.starts_with("would run gen")) && dry.contains("stage code changed"),
        "{dry}"
    );
    assert!(
        dry.lines()
            .any(|l| l == "copy runs only if the outputs of gen change"),
        "{dry}"
    );
    let status = p.ok(&["status"]);
    assert!(
        status.lines().any(|l| l.trim_start().starts_with("… copy")
            && l.contains("only if the outputs of gen change")),
        "{status}"
    );
    let out = p.ok(&["run"]);
    assert_eq!(Project::counts(&out), (1, 2), "only gen reruns: {out}");
    assert!(
        out.contains("✓ copy cached (the outputs of gen came out as before)"),
        "{out}"
    );
    assert_eq!((p.key_of("copy"), p.key_of("last")), (copy_key, last_key));
}

#[test]
fn an_upstream_whose_outputs_change_reruns_downstream_and_says_why() {
    let p = Project::new(PIPELINE);
    p.ok(&["run"]);
    let out = p.ok(&["run", "--set", "text=bye"]);
    assert_eq!(Project::counts(&out), (3, 0), "{out}");
    assert!(
        out.contains("▶ copy: running (input 'src': upstream gen's outputs changed)"),
        "{out}"
    );
    assert_eq!(p.read_latest("last", "f0.txt"), "BYE 0 X1 SEED 0\n");
    // --force on gen: same outputs, so copy and last stay cached.
    let out = p.ok(&["run", "--set", "text=bye", "--force", "--stage", "gen"]);
    assert_eq!(Project::counts(&out), (1, 0), "{out}");
    let out = p.ok(&["run", "--set", "text=bye"]);
    assert_eq!(Project::counts(&out), (0, 3), "{out}");
}

#[test]
fn accept_lets_an_entry_stand_for_a_rebuilt_binary_and_force_still_reruns() {
    let mut p = Project::new(PIPELINE);
    let copy = p.private_stage("uda-test-copy");
    p.ok(&["run"]);
    let old_key = p.key_of("copy");
    rebuild(&copy);
    let out = p.ok(&["accept", "copy"]);
    assert!(out.contains("accepted copy: entry "), "{out}");
    let entry = p.entry_json("copy");
    assert_eq!(entry["accepted"]["from_key"], old_key.as_str(), "{entry}");
    assert_ne!(
        entry["binary"]["blake3"],
        entry["accepted"]["computed_by"]["blake3"]
    );
    let status = p.ok(&["status"]);
    assert!(
        status
            .lines()
            .any(|l| l.trim_start().starts_with("✓ copy") && l.contains("accepted")),
        "{status}"
    );
    assert!(p.ok(&["show", "copy"]).contains("accepted"));
    // `last` uses the same copy binary (also rebuilt): accept it too, in one go next time.
    let out = p.ok(&["accept", "copy", "--downstream"]);
    assert!(out.contains("accepted last:"), "{out}");
    let out = p.ok(&["run"]);
    assert_eq!(Project::counts(&out), (0, 3), "nothing reruns: {out}");
    let history = p.ok(&["report", "--history"]);
    assert!(history.contains("accepted"), "{history}");
    let out = p.ok(&["run", "--force", "--stage", "copy"]);
    assert_eq!(Project::counts(&out).0, 1, "{out}");
    assert!(p.entry_json("copy")["accepted"].is_null());
}

#[test]
fn accept_refuses_without_an_entry_of_the_old_code() {
    let p = Project::new(PIPELINE);
    let out = p.fails(&["accept", "gen"]);
    assert!(
        out.contains("accept gen: no entry of it exists in this cache") && out.contains("run it"),
        "{out}"
    );
    p.ok(&["run"]);
    // A param change is not a code change: accept cannot stand in for the rerun.
    let out = p.fails(&["accept", "gen", "--set", "text=other"]);
    assert!(
        out.contains("differs in more than its code") && out.contains("param text changed"),
        "{out}"
    );
}
