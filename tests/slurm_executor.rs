//! `uda-pipe run --executor slurm` against a real single-node Slurm cluster on loopback
//! (slurmctld + slurmd + munge, started by `scripts/slurm/cluster.sh`, which `scripts/test.sh`
//! installs and starts as root). No mock: every job here goes through sbatch, sacct, squeue and
//! scancel.
//!
//! Where Slurm cannot be installed or started (not root, no apt), each test prints why and
//! returns; CI installs it, so there they run.
mod runner_support;
mod slurm_support;
use runner_support::Project;
use slurm_support::{finish, jobs_named, slurm_ready, start_until_running};
use std::process::Stdio;
use std::time::Duration;

/// The toy pipeline of the runner tests, on Slurm, polled every second.
fn toy() -> Project {
    let p = Project::new(
        "\
executor:
  slurm: {poll_interval_s: 1}
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
",
    );
    p.write("data/a.txt", "a\n");
    p
}

#[test]
fn slurm_and_local_runs_share_every_entry() {
    if !slurm_ready() {
        return;
    }
    let p = toy();
    let out = p.ok(&["run"]);
    assert_eq!(Project::counts(&out), (2, 0), "{out}");
    for node in ["gen", "copy"] {
        let e = p.entry_json(node);
        let s = &e["scheduler"];
        assert_eq!(s["executor"], "slurm", "{e}");
        assert_eq!(s["state"], "COMPLETED", "{e}");
        assert!(
            s["job_ids"][0].as_str().is_some_and(|j| !j.is_empty()),
            "{e}"
        );
        assert!(e["peak_rss_bytes"].as_u64().unwrap() > 0, "{e}");
        // The batch script is kept with the entry, as it was submitted.
        let key = p.key_of(node);
        let script = p.path("cache/entries").join(&key).join("slurm/job-1.sh");
        let text = std::fs::read_to_string(&script).unwrap();
        assert!(
            text.contains(&format!("#SBATCH --job-name=uda-pipeline-{node}")),
            "{text}"
        );
        assert!(text.contains("#SBATCH --mem="), "{text}");
    }
    assert_eq!(p.read_latest("copy", "f1.txt"), "HI 1 X1 SEED 0\n");
    let show = p.ok(&["show", "gen"]);
    let job = p.entry_json("gen")["scheduler"]["job_ids"][0]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        show.contains(&format!("slurm:   job {job}, COMPLETED, queued ")),
        "{show}"
    );
    let history = p.ok(&["report", "--history"]);
    assert!(
        history.contains("slurm") && history.contains(&job),
        "{history}"
    );
    // The same keys: a local run finds everything cached.
    let out = p.ok(&["run", "--executor", "local"]);
    assert_eq!(Project::counts(&out), (0, 2), "{out}");
    // And a local run in a fresh project computes the same keys a Slurm run committed.
    let q = toy();
    q.ok(&["run", "--executor", "local"]);
    for node in ["gen", "copy"] {
        assert_eq!(p.key_of(node), q.key_of(node), "{node}");
        assert_eq!(
            p.entry_json(node)["outputs_hash"],
            q.entry_json(node)["outputs_hash"]
        );
        assert!(q.entry_json(node).get("scheduler").is_none());
    }
}

#[test]
fn a_failing_job_shows_its_log_tail_and_commits_nothing() {
    if !slurm_ready() {
        return;
    }
    let p = Project::new(
        "name: failing\nstages:\n  bad:\n    kind: uda-test-fail\n    params: {message: the sky fell}\n",
    );
    let out = p.fails(&[
        "run",
        "--executor",
        "slurm",
        "--slurm-opt",
        "poll_interval_s=1",
    ]);
    assert!(out.contains("✗ bad failed"), "{out}");
    assert!(out.contains("slurm says job"), "{out}");
    assert!(out.contains("FAILED"), "{out}");
    // The stage's own words, from the job's log.
    assert!(out.contains("the sky fell"), "{out}");
    assert!(out.contains("about to fail on stderr"), "{out}");
    assert!(p.entries().is_empty(), "{:?}", p.entries());
    let failed = std::fs::read_dir(p.path("cache/failed")).unwrap().count();
    assert_eq!(failed, 1);
}

fn slow(name: &str, extra_resources: &str) -> Project {
    Project::new(&format!(
        "name: {name}\nexecutor: {{slurm: {{poll_interval_s: 1}}}}\nstages:\n  slow:\n    kind: uda-test-slow\n    params: {{millis: 120000, chunks: 600}}\n    resources: {{cpus: 1{extra_resources}}}\n"
    ))
}

#[test]
fn scancel_from_outside_fails_the_stage_and_commits_nothing() {
    if !slurm_ready() {
        return;
    }
    let p = slow("scancelled", "");
    let name = "uda-scancelled-slow";
    let child = start_until_running(&mut p.cmd(&["run"]), name);
    let st = std::process::Command::new("scancel")
        .args(["--name", name])
        .status()
        .unwrap();
    assert!(st.success());
    let (status, text) = finish(child);
    assert!(!status.success(), "{text}");
    assert!(text.contains("CANCELLED"), "{text}");
    assert!(text.contains("scancel"), "{text}");
    assert!(p.entries().is_empty(), "{:?}", p.entries());
}

#[test]
fn ctrl_c_cancels_the_jobs_and_leaves_no_entry() {
    if !slurm_ready() {
        return;
    }
    let p = slow("interrupted", "");
    let name = "uda-interrupted-slow";
    let child = start_until_running(&mut p.cmd(&["run"]), name);
    let st = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let (status, text) = finish(child);
    assert_eq!(status.code(), Some(130), "{text}");
    assert!(text.contains("cancelled"), "{text}");
    // uda-pipe waited for the job to end: nothing of ours is pending or running.
    let left: Vec<_> = jobs_named(name)
        .into_iter()
        .filter(|(_, s)| !matches!(s.as_str(), "CANCELLED" | "COMPLETED" | "FAILED"))
        .collect();
    assert!(left.is_empty(), "still queued: {left:?}\n{text}");
    assert!(p.entries().is_empty(), "{:?}", p.entries());
    assert!(
        std::fs::read_dir(p.path("cache/tmp"))
            .unwrap()
            .next()
            .is_none(),
        "staging left behind"
    );
}

#[test]
fn a_job_over_its_time_limit_says_timeout() {
    if !slurm_ready() {
        return;
    }
    // One minute is Slurm's smallest limit; slurmctld checks limits about every 30 s.
    let p = slow("overtime", ", time: 1");
    let out = p.fails(&["run"]);
    assert!(out.contains("TIMEOUT"), "{out}");
    assert!(out.contains("time limit"), "{out}");
    assert!(p.entries().is_empty(), "{:?}", p.entries());
}

#[test]
fn two_runs_on_one_cache_compute_each_entry_once() {
    if !slurm_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids.txt");
    let p = Project::new(&format!(
        "executor: {{slurm: {{poll_interval_s: 1}}}}\nstages:\n  slow:\n    kind: uda-test-slow\n    params: {{millis: 3000, chunks: 3, pid_file: {}}}\n  after:\n    kind: uda-test-copy\n    inputs: {{src: slow}}\n",
        pids.display()
    ));
    let spawn = |args: &[&str]| {
        p.cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let a = spawn(&["run"]);
    std::thread::sleep(Duration::from_millis(300));
    // One on Slurm, one local: the same lock, the same entries.
    let b = spawn(&["run", "--executor", "local"]);
    let texts: Vec<String> = [a, b]
        .into_iter()
        .map(|c| {
            let (status, t) = finish(c);
            assert!(status.success(), "{t}");
            t
        })
        .collect();
    let ran: usize = texts.iter().map(|t| Project::counts(t).0).sum();
    let cached: usize = texts.iter().map(|t| Project::counts(t).1).sum();
    assert_eq!((ran, cached), (2, 2), "{texts:#?}");
    let pids = std::fs::read_to_string(&pids).unwrap();
    assert_eq!(
        pids.lines().count(),
        1,
        "the slow stage ran more than once: {pids}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains("waiting for another uda-pipe")),
        "{texts:#?}"
    );
    assert!(
        !p.path("cache/locks/").read_dir().unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".owner"))
    );
}

#[test]
fn a_job_over_its_memory_says_out_of_memory() {
    if !slurm_ready() {
        return;
    }
    // 800 MiB held for 6 s under a 256 MiB request: Slurm's accounting kills it.
    let p = Project::new(
        "name: hungry\nexecutor: {slurm: {poll_interval_s: 1}}\nstages:\n  big:\n    kind: uda-test-gen\n    params: {alloc_mb: 800, hold_ms: 6000}\n    resources: {memory_gb: 0.25}\n",
    );
    let out = p.fails(&["run"]);
    assert!(out.contains("OUT_OF_MEMORY"), "{out}");
    assert!(out.contains("raise resources.memory_gb"), "{out}");
    assert!(out.contains("Exceeded job memory limit"), "{out}");
    assert!(p.entries().is_empty(), "{:?}", p.entries());
}
