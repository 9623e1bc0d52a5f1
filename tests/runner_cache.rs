//! Skipping, rerunning and explaining why.
mod runner_support;
use runner_support::Project;

const BASIC: &str = "\
params:
  text: hi
stages:
  gen:
    kind: uda-test-gen
    params:
      text: ${text}
      count: 3
  copy:
    kind: uda-test-copy
    inputs: {src: gen/files, extra: ./data}
    params: {upper: true}
";

fn basic() -> Project {
    let p = Project::new(BASIC);
    p.write("data/a.txt", "a\n");
    p.write("data/b.txt", "b\n");
    p
}

#[test]
fn skip_when_unchanged() {
    let p = basic();
    let out = p.ok(&["run"]);
    assert_eq!(Project::counts(&out), (2, 0), "{out}");
    assert_eq!(p.read_latest("copy", "f1.txt"), "HI 1 X1 SEED 0\n");
    assert_eq!(p.read_latest("copy", "extra/a.txt"), "A\n");
    let out = p.ok(&["run"]);
    assert_eq!(Project::counts(&out), (0, 2), "{out}");
    let out = p.ok(&["run", "--dry-run"]);
    assert!(out.contains("nothing to run"), "{out}");
}

#[test]
fn param_change_reruns_and_says_which_param() {
    let p = basic();
    p.ok(&["run"]);
    let out = p.ok(&["run", "--dry-run", "--set", "gen.count=4"]);
    assert!(
        out.contains("would run gen") && out.contains("param count changed: 3 -> 4"),
        "{out}"
    );
    // copy's key depends on what gen will write: decided once gen has run.
    assert!(
        out.lines()
            .any(|l| l == "copy runs only if the outputs of gen change"),
        "{out}"
    );
    // A global param reaches the stage through ${text}.
    let out = p.ok(&["run", "--dry-run", "--set", "text=yo"]);
    assert!(out.contains("param text changed: hi -> yo"), "{out}");
    let out = p.ok(&["run", "--set", "gen.count=4"]);
    assert_eq!(Project::counts(&out), (2, 0), "{out}");
    assert!(p.latest("copy").join("f3.txt").exists());
    // Going back to the old value reuses the old entries: nothing is recomputed.
    let out = p.ok(&["run"]);
    assert_eq!(Project::counts(&out), (0, 2), "{out}");
    assert!(!p.latest("copy").join("f3.txt").exists());
    // An int written for a float param is the same value: same key.
    let out = p.ok(&["run", "--dry-run", "--set", "gen.scale=1"]);
    assert!(out.contains("nothing to run"), "{out}");
}

#[test]
fn external_input_change_reruns_and_names_the_files() {
    let p = basic();
    p.ok(&["run"]);
    std::thread::sleep(std::time::Duration::from_millis(20));
    p.write("data/a.txt", "A changed\n");
    p.write("data/sub/c.txt", "c\n");
    let out = p.ok(&["run", "--dry-run"]);
    assert!(
        out.contains("input 'extra'") && out.contains("1 changed (a.txt), 1 added (sub/c.txt)"),
        "{out}"
    );
    assert!(out.contains("up to date: gen"), "{out}");
    let out = p.ok(&["run"]);
    assert_eq!(Project::counts(&out), (1, 1), "{out}");
    assert_eq!(p.read_latest("copy", "extra/a.txt"), "A CHANGED\n");
    std::fs::remove_file(p.path("data/b.txt")).unwrap();
    let out = p.ok(&["run", "--dry-run"]);
    assert!(out.contains("1 removed (b.txt)"), "{out}");
}

#[test]
fn stage_code_change_reruns() {
    let mut p = basic();
    let bin = p.private_stage("uda-test-copy");
    p.ok(&["run"]);
    // "Rebuild" the stage: any change of the binary's bytes is a new stage.
    let mut bytes = std::fs::read(&bin).unwrap();
    bytes.extend_from_slice(b"rebuilt");
    std::fs::write(&bin, bytes).unwrap();
    let out = p.ok(&["run", "--dry-run"]);
    assert!(
        out.contains("would run copy")
            && out.contains("stage code changed")
            && out.contains("was rebuilt"),
        "{out}"
    );
    assert!(out.contains("up to date: gen"), "{out}");
    let out = p.ok(&["run"]);
    assert_eq!(Project::counts(&out), (1, 1), "{out}");
}

#[test]
fn stage_selection_downstream_and_force() {
    let p = Project::new(&BASIC.replace("count: 3", "count: 3\n      stamp: true"));
    p.write("data/a.txt", "a\n");
    // --stage runs missing upstream results first and says so.
    let out = p.ok(&["run", "--stage", "copy"]);
    assert!(
        out.contains("note: gen is needed by copy and is not in the cache: running it first"),
        "{out}"
    );
    assert_eq!(Project::counts(&out), (2, 0), "{out}");
    // --stage runs only the selection...
    let out = p.ok(&["run", "--stage", "gen", "--set", "gen.count=5"]);
    assert_eq!(Project::counts(&out), (1, 0), "{out}");
    let out = p.ok(&["status", "--set", "gen.count=5"]);
    assert!(
        out.contains("✓ gen")
            && out.contains("✗ copy")
            && out.contains("input 'src': upstream gen's outputs changed"),
        "{out}"
    );
    // ... and --downstream adds what depends on it.
    let out = p.ok(&[
        "run",
        "--stage",
        "gen",
        "--downstream",
        "--set",
        "gen.count=5",
    ]);
    assert_eq!(Project::counts(&out), (1, 1), "{out}");
    // --force reruns a cached stage; its outputs differ (stamp.txt), so copy's entry is stale.
    let out = p.ok(&["run"]);
    assert_eq!(Project::counts(&out), (0, 2), "back to count=3: {out}");
    let gen_key = p.key_of("gen");
    let out = p.ok(&["run", "--stage", "gen", "--force", "--dry-run"]);
    assert!(
        out.contains("would run gen") && out.contains("forced (--force)"),
        "{out}"
    );
    let out = p.ok(&["run", "--stage", "gen", "--force"]);
    assert_eq!(Project::counts(&out), (1, 0), "{out}");
    assert_eq!(p.key_of("gen"), gen_key, "a forced rerun keeps the key");
    assert!(
        std::fs::read_dir(p.path("cache/trash")).unwrap().count() == 1,
        "the replaced entry goes to trash"
    );
    let out = p.ok(&["run", "--dry-run"]);
    assert!(
        out.contains("would run copy")
            && out.contains("input 'src': upstream gen's outputs changed"),
        "{out}"
    );
    let out = p.ok(&["run"]);
    assert_eq!(Project::counts(&out), (1, 1), "{out}");
}

#[test]
fn corrupted_entries_are_detected_and_recomputed() {
    let p = basic();
    p.ok(&["run"]);
    let file = p.latest("copy").join("f0.txt");
    let original = std::fs::read(&file).unwrap();
    let altered = runner_support::flip_first_byte_keeping_mtime(&file);
    let out = p.ok(&["status"]);
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("✓ copy") && l.contains("up to date")),
        "the stat memo trusts unchanged stats: {out}"
    );
    let out = p.ok(&["status", "--verify"]);
    assert!(
        out.contains("✗ copy") && out.contains("corrupted") && out.contains("f0.txt was altered"),
        "{out}"
    );
    // A changed stat is enough to trigger a re-hash on every run.
    std::fs::write(&file, &altered).unwrap();
    let out = p.ok(&["run"]);
    assert!(
        out.contains("warning: entry")
            && out.contains("is corrupted (f0.txt was altered")
            && out.contains("moved to"),
        "{out}"
    );
    assert_eq!(Project::counts(&out), (1, 1), "{out}");
    assert_eq!(
        std::fs::read(p.latest("copy").join("f0.txt")).unwrap(),
        original
    );
    // A missing file too.
    let key = p.key_of("gen");
    let victim = p.path("cache/entries").join(&key).join("out/files/f2.txt");
    std::fs::remove_file(victim).unwrap();
    let out = p.ok(&["run", "--dry-run"]);
    assert!(
        out.contains("would run gen") && out.contains("files/f2.txt is missing"),
        "{out}"
    );
}

#[test]
fn entries_record_what_made_them() {
    let p = basic();
    p.ok(&["run"]);
    let e = p.entry_json("copy");
    assert_eq!(e["kind"], "uda-test-copy");
    assert_eq!(e["params"]["upper"], true);
    assert_eq!(e["inputs"]["src"]["type"], "stage");
    assert_eq!(e["inputs"]["src"]["subpath"], "files");
    assert_eq!(e["inputs"]["extra"]["type"], "external");
    assert_eq!(e["exit_status"], 0);
    let small = e["peak_rss_bytes"].as_u64().unwrap();
    assert!(
        small > 1 << 20 && small < 100 << 20,
        "peak RSS of the child is recorded: {small}"
    );
    let manifest = e["manifest"].as_array().unwrap();
    assert!(
        manifest
            .iter()
            .any(|f| f["path"] == "extra/a.txt" && f["blake3"].as_str().unwrap().len() == 64)
    );
    let log = std::fs::read_to_string(
        p.path("cache/entries")
            .join(p.key_of("copy"))
            .join("log.txt"),
    )
    .unwrap();
    assert!(log.contains("copied with beta 0"), "{log}");
    assert!(
        !log.contains("uda_progress"),
        "progress lines are not logged: {log}"
    );
    let g = p.entry_json("gen");
    assert_eq!(g["metrics"]["files"], 3);
    let show = p.ok(&["show", "gen"]);
    assert!(
        show.contains("up to date")
            && show.contains("files: 3")
            && show.contains("count=3")
            && show.contains(&p.key_of("gen")),
        "{show}"
    );
}

#[test]
fn peak_memory_is_the_stage_s_own() {
    let p = Project::new(
        "stages:\n  small: {kind: uda-test-gen}\n  big: {kind: uda-test-gen, params: {alloc_mb: 160}}\n",
    );
    p.ok(&["run", "-j", "1"]);
    let small = p.entry_json("small")["peak_rss_bytes"].as_u64().unwrap();
    let big = p.entry_json("big")["peak_rss_bytes"].as_u64().unwrap();
    assert!(big >= 160 << 20, "big touched 160 MiB: {big}");
    assert!(small < 100 << 20, "small stays small: {small}");
    let history = p.ok(&["report", "--history"]);
    assert!(history.contains(&big.to_string()), "{history}");
}
