//! The runner under faults: each problem found by probing the release binaries, reproduced with
//! the tiny test stages. Every test here failed before the fix it names.
mod runner_support;
use runner_support::Project;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for a child to end; kills it and fails the test when it takes longer than `limit`.
fn wait_exit(child: &mut Child, what: &str, limit: Duration) -> ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "kill -{sig} {pid}");
}

/// Live (not zombie) processes whose command line mentions `needle` (the project's folder:
/// every stage and trampoline of a test run has its staging path among its arguments).
fn live_processes_mentioning(needle: &Path) -> Vec<(u32, String)> {
    let needle = needle.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let zombie = std::fs::read_to_string(e.path().join("stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(true);
        if !zombie && cmdline.contains(&needle) && cmdline.contains("--out") {
            found.push((pid, cmdline));
        }
    }
    found
}

fn slow_pipeline(pid_file: &Path) -> String {
    format!(
        "stages:
  slow:
    kind: uda-test-slow
    params: {{millis: 1000, chunks: 20, pid_file: {}}}
",
        pid_file.display()
    )
}

/// Starts `uda-pipe run` of [`slow_pipeline`] (its stage runs for a minute) and waits until the
/// stage has started; returns the runner, the project and the pid file.
fn start_slow_run(grace_s: &str) -> (Child, Project, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pids");
    let p = Project::new(&slow_pipeline(&pid_file));
    let child = p
        .cmd(&["run"])
        .env("UDA_TEST_SLOW_MILLIS", "60000")
        .env("UDA_KILL_GRACE_S", grace_s)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the stage to start", Duration::from_secs(60), || {
        pids_in(&pid_file) == 1
    });
    (child, p, dir)
}

fn pids_in(file: &Path) -> usize {
    std::fs::read_to_string(file)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

#[test]
fn run_verify_recomputes_a_corruption_it_finds() {
    let p = Project::new(
        "stages:\n  gen:\n    kind: uda-test-gen\n  copy:\n    kind: uda-test-copy\n    inputs: {src: gen}\n",
    );
    p.ok(&["run"]);
    let file = p.latest("gen").join("files/f0.txt");
    let original = std::fs::read(&file).unwrap();
    runner_support::flip_first_byte_keeping_mtime(&file);
    let out = p.ok(&["run", "--verify"]);
    assert!(
        out.contains("is corrupted (files/f0.txt was altered"),
        "the corruption is reported: {out}"
    );
    assert_eq!(Project::counts(&out).0, 1, "gen is recomputed: {out}");
    assert_eq!(
        std::fs::read(p.latest("gen").join("files/f0.txt")).unwrap(),
        original,
        "the corrupted file is replaced"
    );
    let out = p.ok(&["status", "--verify"]);
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("✓ gen") && l.contains("up to date")),
        "{out}"
    );
}

/// SIGTERM and SIGINT sent to the runner's pid only (as `kill`, `timeout` or a batch scheduler
/// do) stop its stages within the grace period, leave no entry and no process behind.
#[test]
fn a_signal_to_the_runner_stops_its_stages_and_commits_nothing() {
    for (sig, code) in [("TERM", 143), ("INT", 130)] {
        let (mut child, p, dir) = start_slow_run("5");
        let pid_file = dir.path().join("pids");
        assert!(!live_processes_mentioning(p.dir.path()).is_empty());
        signal(child.id(), sig);
        let status = wait_exit(&mut child, "the signalled runner", Duration::from_secs(30));
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        assert_eq!(status.code(), Some(code), "SIG{sig}: {text}");
        assert!(
            text.contains(&format!("cancelled: uda-pipe received SIG{sig}")),
            "SIG{sig}: {text}"
        );
        assert_eq!(
            live_processes_mentioning(p.dir.path()),
            Vec::new(),
            "SIG{sig}: no stage survives"
        );
        assert!(p.entries().is_empty(), "SIG{sig}: {:?}", p.entries());
        // The next run computes it, once.
        let out = p
            .cmd(&["run"])
            .env("UDA_TEST_SLOW_MILLIS", "10")
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(pids_in(&pid_file), 2);
        assert_eq!(p.entries().len(), 1);
    }
}

#[test]
fn sigkill_of_the_runner_takes_its_stages_along() {
    let (mut child, p, dir) = start_slow_run("10");
    let pid_file = dir.path().join("pids");
    signal(child.id(), "KILL");
    let _ = child.wait();
    wait_for(
        "the orphaned stage and trampoline to end",
        Duration::from_secs(10),
        || live_processes_mentioning(p.dir.path()).is_empty(),
    );
    let t0 = Instant::now();
    let out = p
        .cmd(&["run"])
        .env("UDA_TEST_SLOW_MILLIS", "10")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    // Nothing of the killed run holds the key: the rerun did not wait.
    assert!(t0.elapsed() < Duration::from_secs(30));
    assert_eq!(pids_in(&pid_file), 2, "one killed attempt, one rerun");
}

#[test]
fn gc_leaves_the_entries_a_running_pipeline_uses() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pids");
    let p = Project::new(&format!(
        "params: {{tag: a}}
stages:
  gen:
    kind: uda-test-gen
  slow:
    kind: uda-test-slow
    params: {{tag: '${{tag}}', pid_file: {}}}
  copy:
    kind: uda-test-copy
    inputs: {{src: gen, extra: slow}}
",
        pid_file.display()
    ));
    p.write(
        "other.yaml",
        "stages:\n  unrelated:\n    kind: uda-test-gen\n    params: {count: 5}\n",
    );
    let out = p
        .cmd(&["run"])
        .env("UDA_TEST_SLOW_MILLIS", "10")
        .output()
        .unwrap();
    assert!(out.status.success());
    let gen_key = p.key_of("gen");
    // Rerun with a new tag: gen is reused, slow runs for a while, then copy reads gen.
    let mut child = p
        .cmd(&["run", "--set", "tag=b"])
        .env("UDA_TEST_SLOW_MILLIS", "8000")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("slow to start again", Duration::from_secs(60), || {
        pids_in(&pid_file) == 2
    });
    let gc = p.ok(&["gc", "other.yaml"]);
    assert!(
        gc.contains(&format!("kept {gen_key}")) && gc.contains("in use by a running uda-pipe"),
        "{gc}"
    );
    let status = wait_exit(&mut child, "the run", Duration::from_secs(60));
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(status.success(), "the run did not lose its input: {text}");
    assert!(p.path("cache/entries").join(&gen_key).is_dir());
    // Once nothing runs, gc may remove what other.yaml does not need.
    let gc = p.ok(&["gc", "other.yaml"]);
    assert!(gc.contains(&format!("removed {gen_key}")), "{gc}");
}

#[test]
fn a_closed_output_pipe_neither_hangs_nor_loses_the_run() {
    for (n, redirect) in ["2>&1 | head -1", "| head -1"].into_iter().enumerate() {
        let p = Project::new(&format!(
            "stages:\n  gen:\n    kind: uda-test-gen\n    params: {{seed: {n}}}\n  slow:\n    kind: uda-test-slow\n    inputs: {{src: gen}}\n    params: {{millis: 300}}\n  copy:\n    kind: uda-test-copy\n    inputs: {{src: slow}}\n"
        ));
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("\"$UDA_PIPE\" run {redirect}"))
            .env("UDA_PIPE", runner_support::uda_pipe())
            .current_dir(p.dir.path())
            .env(
                "UDA_STAGE_PATH",
                std::env::join_paths(&p.stage_dirs).unwrap(),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().unwrap();
        wait_exit(
            &mut child,
            &format!("uda-pipe run {redirect}"),
            Duration::from_secs(60),
        );
        let out = p.ok(&["run"]);
        assert_eq!(
            Project::counts(&out),
            (0, 3),
            "`{redirect}`: the run went on to the end: {out}"
        );
    }
}

#[test]
fn failures_of_the_runner_s_own_writes_say_what_failed() {
    // --force must move the old entry to trash/; a file in its place makes that fail.
    let p = Project::new("stages:\n  gen:\n    kind: uda-test-gen\n");
    p.ok(&["run"]);
    std::fs::write(p.path("cache/trash"), "not a folder").unwrap();
    let out = p.fails(&["run", "--force"]);
    assert!(
        out.contains("✗ gen failed: creating") && out.contains("trash"),
        "{out}"
    );
    let log = p.ok(&["log", "gen"]);
    assert!(
        log.contains("last attempt FAILED") && log.contains("could not complete gen"),
        "{log}"
    );
    // The `latest` link cannot replace a folder that stands in its way.
    let q = Project::new("stages:\n  gen:\n    kind: uda-test-gen\n");
    std::fs::create_dir_all(q.path("cache/latest/pipeline/gen/in-the-way")).unwrap();
    let out = q.fails(&["run"]);
    assert!(
        out.contains("✗ gen failed: updating link") && out.contains("latest/pipeline/gen"),
        "{out}"
    );
}

#[test]
fn sweep_values_that_would_be_paths_are_rejected_with_their_line() {
    let outside = tempfile::tempdir().unwrap();
    let escape = format!(
        "../../../../../../../..{}/ESCAPED",
        outside.path().display()
    );
    let p = Project::new(&format!(
        "stages:\n  gen:\n    kind: uda-test-gen\n    foreach: {{text: ['{escape}', ok]}}\n"
    ));
    let out = p.fails(&["run"]);
    assert!(
        out.contains("pipeline.yaml:4:")
            && out.contains("sweep variable 'text'")
            && out.contains("contains a path separator"),
        "{out}"
    );
    assert!(!outside.path().join("ESCAPED").exists());
    assert!(!p.path("cache/entries").exists() || p.entries().is_empty());
    // The same through --set.
    let q = Project::new(
        "params: {names: [a]}\nstages:\n  gen:\n    kind: uda-test-gen\n    foreach: {text: '${names}'}\n",
    );
    let out = q.fails(&["run", "--set", "names=[.., b]"]);
    assert!(out.contains("is a relative folder name"), "{out}");
}

#[test]
fn symbolic_links_in_an_output_are_refused_and_not_followed() {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("precious.txt");
    std::fs::write(&target, "mine").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
    let p = Project::new(&format!(
        "stages:\n  gen:\n    kind: uda-test-gen\n    params: {{link_to: '{}'}}\n",
        target.display()
    ));
    let out = p.fails(&["run"]);
    assert!(
        out.contains("wrote a symbolic link files/link in its output"),
        "{out}"
    );
    let mode = std::fs::metadata(&target).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o644, "the link's target was not touched");
    assert!(p.entries().is_empty());
}

#[test]
fn a_home_path_without_home_is_an_error() {
    let p = Project::new("stages:\n  copy:\n    kind: uda-test-copy\n    inputs: {src: ~/data}\n");
    let out = p.cmd(&["run"]).env_remove("HOME").output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        text.contains("pipeline.yaml:4:") && text.contains("HOME is not set"),
        "{text}"
    );
    assert!(!p.path("~").exists());
}

fn sleeper(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let script = dir.join("sleeper");
    std::fs::write(&script, "#!/bin/sh\nsleep 120\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn only_stage_binaries_are_asked_to_describe_themselves_and_not_for_ever() {
    // A program on PATH that is not one of the project's stages is never run.
    let p = Project::new("stages:\n  s:\n    kind: sleeper\n");
    sleeper(&p.path("bin"));
    let path = format!(
        "{}:{}",
        p.path("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let t0 = Instant::now();
    let out = p.cmd(&["status"]).env("PATH", &path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(text.contains("unknown stage kind 'sleeper'"), "{text}");
    assert!(t0.elapsed() < Duration::from_secs(20));
    // On the stage path it is run, but bounded by the describe time-out.
    let mut q = Project::new("stages:\n  s:\n    kind: sleeper\n");
    sleeper(&q.path("stages"));
    q.stage_dirs.insert(0, q.path("stages"));
    let t0 = Instant::now();
    let out = q
        .cmd(&["status"])
        .env("UDA_DESCRIBE_TIMEOUT_S", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(text.contains("did not answer within 1 s"), "{text}");
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
}

#[test]
fn validation_reports_every_problem_at_once() {
    let p = Project::new(
        "stages:\n  a:\n    kind: uda-test-gen\n    resources: {cpus: 1, disks: 2}\n  b:\n    kind: uda-test-gen\n    params: {nope: 1}\n",
    );
    let out = p.fails(&["run"]);
    assert!(out.contains("unknown resource 'disks'"), "{out}");
    assert!(
        out.contains("nope"),
        "the stage-level problem in the same report: {out}"
    );
}

#[test]
fn an_error_s_cause_is_printed_once() {
    let p = Project::new("stages:\n  gen:\n    kind: uda-test-gen\n");
    p.write("not-a-folder", "x");
    let out = p.fails(&["run", "--cache", "not-a-folder"]);
    assert!(
        out.contains("creating cache folder not-a-folder/entries: Not a directory"),
        "{out}"
    );
    assert_eq!(out.matches("Not a directory").count(), 1, "{out}");
}
