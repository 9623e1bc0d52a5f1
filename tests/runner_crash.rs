//! Failures, SIGKILL mid-write, concurrent runs on one cache, parallel stages.
mod runner_support;
use runner_support::Project;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

fn slow_pipeline(pid_file: &std::path::Path) -> String {
    format!(
        "stages:
  gen:
    kind: uda-test-gen
  slow:
    kind: uda-test-slow
    inputs: {{src: gen}}
    params: {{millis: 1500, chunks: 30, pid_file: {}}}
",
        pid_file.display()
    )
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn kill(args: &[&str]) {
    let st = std::process::Command::new("kill")
        .args(args)
        .status()
        .unwrap();
    assert!(st.success(), "kill {args:?}");
}

/// The staging file the slow stage is writing (inside cache/tmp), once it has some bytes.
fn partial_output(p: &Project) -> bool {
    walk(&p.path("cache/tmp")).iter().any(|f| {
        f.ends_with("big.txt")
            && std::fs::metadata(f)
                .map(|m| m.len() > 2000)
                .unwrap_or(false)
    })
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                out.extend(walk(&e.path()));
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

#[test]
fn stage_killed_mid_write_leaves_no_trusted_entry() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pids");
    let p = Project::new(&slow_pipeline(&pid_file));
    let child = p
        .cmd(&["run"])
        .env("UDA_TEST_SLOW_MILLIS", "20000")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the stage to write part of its output", || {
        partial_output(&p)
    });
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .to_string();
    kill(&["-9", &pid]);
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("✗ slow failed") && text.contains("killed by signal 9"),
        "{text}"
    );
    assert_eq!(
        p.entries().len(),
        1,
        "only gen has an entry: {:?}",
        p.entries()
    );
    assert!(walk(&p.path("cache/tmp")).is_empty(), "staging removed");
    let status = p.ok(&["status"]);
    assert!(status.contains("✗ slow"), "{status}");
    let log = p.ok(&["log", "slow"]);
    assert!(log.contains("last attempt FAILED"), "{log}");
    // The next run recovers.
    let out = p.ok(&["run"]);
    assert_eq!(Project::counts(&out), (1, 1), "{out}");
    assert_eq!(p.read_latest("slow", "big.txt").lines().count(), 31);
}

#[test]
fn runner_killed_mid_write_releases_its_lock_and_the_next_run_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pids");
    let p = Project::new(&slow_pipeline(&pid_file));
    // Its own process group, so runner and stage are killed together (like a closed terminal).
    let mut child = p
        .cmd(&["run"])
        .env("UDA_TEST_SLOW_MILLIS", "20000")
        .process_group(0)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the stage to write part of its output", || {
        partial_output(&p)
    });
    kill(&["-9", "--", &format!("-{}", child.id())]);
    let _ = child.wait();
    assert!(!p.path("cache/latest/pipeline/slow").exists());
    assert_eq!(p.entries().len(), 1, "{:?}", p.entries());
    assert!(
        !walk(&p.path("cache/tmp")).is_empty(),
        "the killed run's staging folder is still there"
    );
    let t0 = Instant::now();
    let out = p.ok(&["run"]);
    // The dead process's lock was released by the kernel: the rerun did not wait for it.
    assert!(t0.elapsed() < Duration::from_secs(15));
    assert_eq!(Project::counts(&out), (1, 1), "{out}");
    assert_eq!(p.read_latest("slow", "big.txt").lines().count(), 31);
    assert!(
        walk(&p.path("cache/tmp")).is_empty(),
        "stale staging folder cleaned: {:?}",
        walk(&p.path("cache/tmp"))
    );
}

#[test]
fn two_concurrent_runs_compute_each_entry_once() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pids");
    let p = Project::new(&slow_pipeline(&pid_file));
    let spawn = || {
        p.cmd(&["run"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let (ta, tb) = (text(&a), text(&b));
    assert!(a.status.success() && b.status.success(), "{ta}\n---\n{tb}");
    let runs = std::fs::read_to_string(&pid_file).unwrap();
    assert_eq!(
        runs.lines().count(),
        1,
        "the slow stage ran once:\n{ta}\n---\n{tb}"
    );
    let (ra, _) = Project::counts(&ta);
    let (rb, _) = Project::counts(&tb);
    assert_eq!(
        ra + rb,
        2,
        "gen and slow ran once each across both runs:\n{ta}\n---\n{tb}"
    );
    assert!(
        ta.contains("computed by another uda-pipe process meanwhile")
            || tb.contains("computed by another uda-pipe process meanwhile"),
        "{ta}\n---\n{tb}"
    );
    assert_eq!(p.entries().len(), 2);
    assert_eq!(p.read_latest("slow", "big.txt").lines().count(), 31);
}

#[test]
fn failures_show_the_log_and_skip_downstream() {
    let p = Project::new(
        "stages:
  gen: {kind: uda-test-gen}
  bad:
    kind: uda-test-fail
    inputs: {src: gen}
    params: {message: deliberate failure}
  after:
    kind: uda-test-copy
    inputs: {src: bad}
  other:
    kind: uda-test-copy
    inputs: {src: gen}
",
    );
    let out = p.fails(&["run", "-j", "1", "--keep-going"]);
    assert!(
        out.contains("✗ bad failed") && out.contains("exit code 1"),
        "{out}"
    );
    assert!(
        out.contains("| about to fail on stdout")
            && out.contains("| about to fail on stderr")
            && out.contains("deliberate failure"),
        "{out}"
    );
    assert!(
        out.contains("skipped after: upstream bad did not complete"),
        "{out}"
    );
    assert!(
        p.latest("other").exists(),
        "--keep-going ran the independent stage: {out}"
    );
    assert!(!p.latest("bad").exists());
    let log = p.ok(&["log", "bad"]);
    assert!(
        log.contains("last attempt FAILED") && log.contains("about to fail on stderr"),
        "{log}"
    );
    assert_eq!(p.entries().len(), 2, "gen and other only");
    assert!(
        walk(&p.path("cache/tmp")).is_empty(),
        "no staging left behind"
    );
}

#[test]
fn independent_stages_run_in_parallel_within_the_cpu_budget() {
    let p = Project::new(
        "stages:
  a: {kind: uda-test-slow, params: {millis: 800, tag: a}}
  b: {kind: uda-test-slow, params: {millis: 800, tag: b}}
  c: {kind: uda-test-slow, params: {millis: 800, tag: c}, resources: {cpus: 2}}
",
    );
    p.ok(&["run", "--jobs", "2"]);
    let span = |n: &str| {
        let e = p.entry_json(n);
        let start = e["started_unix_ms"].as_u64().unwrap();
        (
            start,
            start + (e["duration_s"].as_f64().unwrap() * 1000.0) as u64,
        )
    };
    let (a, b, c) = (span("a"), span("b"), span("c"));
    let overlap = |x: (u64, u64), y: (u64, u64)| x.0 < y.1 && y.0 < x.1;
    assert!(
        overlap(a, b),
        "a and b (1 cpu each) share the 2-cpu budget: {a:?} {b:?}"
    );
    assert!(
        !overlap(a, c) && !overlap(b, c),
        "c needs both cpus: {a:?} {b:?} {c:?}"
    );
}
