//! A job that Slurm ends through no fault of its own (here NODE_FAIL: its node is set DOWN while
//! it runs) is submitted again, and the stage completes. Its own test binary, because setting the
//! loopback cluster's only node DOWN would fail the jobs of any test running beside it.
mod runner_support;
mod slurm_support;
use runner_support::Project;
use slurm_support::{finish, jobs_named, slurm_ready, start_until_running, wait_for};
use std::process::Command;
use std::time::Duration;

fn scontrol(state: &str) {
    let _ = Command::new("scontrol")
        .args([
            "update",
            "nodename=localhost",
            &format!("state={state}"),
            "reason=uda-test",
        ])
        .status();
}

#[test]
fn a_node_failure_is_resubmitted_and_the_stage_completes() {
    if !slurm_ready() {
        return;
    }
    let p = Project::new(
        "executor: {slurm: {poll_interval_s: 1}}\nstages:\n  slow:\n    kind: uda-test-slow\n    params: {millis: 6000, chunks: 6}\n",
    );
    let child = start_until_running(&mut p.cmd(&["run"]), "uda-pipeline-slow");
    scontrol("down");
    wait_for("NODE_FAIL", Duration::from_secs(30), || {
        jobs_named("uda-pipeline-slow")
            .iter()
            .any(|(_, s)| s == "NODE_FAIL")
    });
    scontrol("resume");
    let (status, text) = finish(child);
    assert!(status.success(), "{text}");
    let e = p.entry_json("slow");
    let s = &e["scheduler"];
    assert_eq!(s["attempts"], 2, "{e}");
    assert_eq!(s["state"], "COMPLETED", "{e}");
    assert_eq!(s["job_ids"].as_array().unwrap().len(), 2, "{e}");
    assert_eq!(p.read_latest("slow", "big.txt").lines().count(), 7);
}
