//! The loopback Slurm cluster for the Slurm executor's tests: started once per test process by
//! `scripts/slurm/cluster.sh start` (idempotent), or a printed reason why these tests skip.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Whether a Slurm cluster answers; starts the loopback one if needed (as root). When it
/// cannot, prints why once and returns false: the calling test then skips.
pub fn slurm_ready() -> bool {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let r = READY.get_or_init(|| {
        if Command::new("sinfo").arg("-h").output().is_ok_and(|o| o.status.success()) {
            return Ok(());
        }
        if Command::new("slurmctld").arg("-V").output().is_err() {
            return Err(
                "Slurm is not installed here (scripts/setup-system.sh installs slurm-wlm and munge as root)"
                    .into(),
            );
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm/cluster.sh");
        let o = Command::new("bash")
            .arg(script)
            .arg("start")
            .output()
            .map_err(|e| format!("cannot run cluster.sh: {e}"))?;
        if o.status.success() {
            Ok(())
        } else {
            Err(format!(
                "the loopback Slurm cluster did not start: {}",
                String::from_utf8_lossy(&o.stderr)
            ))
        }
    });
    match r {
        Ok(()) => true,
        Err(why) => {
            eprintln!("skipping: {why}");
            false
        }
    }
}

/// `(job id, state)` of every job Slurm still lists under `name` (any state).
pub fn jobs_named(name: &str) -> Vec<(String, String)> {
    let o = Command::new("squeue")
        .args(["-h", "-t", "all", "--name", name, "-o", "%i|%T"])
        .output()
        .expect("squeue");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_once('|'))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

pub fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Starts `cmd` (a `uda-pipe run`) with its output captured, and waits until Slurm runs its job
/// named `job`.
pub fn start_until_running(cmd: &mut Command, job: &str) -> Child {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting uda-pipe");
    // Generous: on 2 CPUs the other tests' jobs may hold the node for a while.
    wait_for("the job to run", Duration::from_secs(240), || {
        jobs_named(job).iter().any(|(_, s)| s == "RUNNING")
    });
    child
}

/// Waits for a child started with captured output; its status and stdout + stderr.
pub fn finish(child: Child) -> (ExitStatus, String) {
    let out = child.wait_with_output().expect("waiting for uda-pipe");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status, text)
}
