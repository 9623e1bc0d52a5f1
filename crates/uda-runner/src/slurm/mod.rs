//! The Slurm executor: each ready stage becomes one `sbatch --parsable` job (a sharded data
//! stage an array job plus a dependent merge job), followed by one batched `sacct` poll per
//! interval ([`tracker`]), with the stage's progress read from the job's log.
//!
//! The cache does not change: the job writes into the entry's staging folder on the shared
//! filesystem, and this process (the submitting `uda-pipe`) verifies the manifest and commits
//! the entry by one rename, exactly as a local run does. Results are the same entries whichever
//! executor computed them: the executor is not part of any key.
//!
//! Per job, in `STAGING/slurm/`: the batch script (`job-<attempt>.sh`, `tasks-<attempt>.sh`,
//! `merge-<attempt>.sh`), Slurm's log of each job (`job-<id>.log`, `task-<i>.log`,
//! `merge-<id>.log`) and the markers the script writes (`<job>.start`, `<job>.end`).

pub mod config;
mod follow;
pub mod script;
pub mod state;
pub(crate) mod tracker;

use crate::error::{IoContext, Result, RunnerError};
use crate::executor::{Executor, Job, JobResult, RemoteRecord};
pub use config::{ExecutorKind, SlurmConfig};
use follow::{Ended, Unit};
use script::{ScriptSpec, job_name, shell_quote};
pub use state::JobState;
use std::path::{Path, PathBuf};
use std::process::Command;
use tracker::Tracker;
use uda_stage::ProgressUpdate;

/// Runs stages as Slurm jobs.
#[derive(Debug)]
pub struct SlurmExecutor {
    config: SlurmConfig,
    tracker: Tracker,
    /// `uda-pipe` itself: the job runs the stage through `uda-pipe __stage-exec` (exact peak
    /// memory and exit status in the log, also where `sacct` has no step data).
    uda_pipe: PathBuf,
}

impl SlurmExecutor {
    /// Checks that `sbatch` is on the PATH and starts the poller.
    pub fn new(config: SlurmConfig, uda_pipe: PathBuf) -> Result<Self> {
        let found = Command::new("sbatch")
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !found {
            return Err(RunnerError::Slurm(
                "`sbatch` was not found or does not run; --executor slurm needs the Slurm client \
                 commands (sbatch, sacct, squeue, scancel) on the PATH of the machine running \
                 uda-pipe"
                    .into(),
            ));
        }
        Ok(Self {
            tracker: Tracker::start(config.poll_interval),
            config,
            uda_pipe,
        })
    }

    pub fn config(&self) -> &SlurmConfig {
        &self.config
    }

    /// The stage's command line as shell words, for a given `--out` (already quoted) and
    /// extra arguments in front (`--shard I/N`).
    fn command(&self, job: &Job, lead: &[String], out: String) -> Vec<String> {
        let mut c = vec![
            shell_quote(self.uda_pipe.as_os_str()),
            crate::executor::TRAMPOLINE_ARG.to_string(),
            shell_quote(job.binary.as_os_str()),
        ];
        c.extend(lead.iter().cloned());
        c.push("--out".into());
        c.push(out);
        c.extend(job.args.iter().map(|a| shell_quote(a)));
        c
    }

    /// The stage's environment on the node; Slurm sets `CUDA_VISIBLE_DEVICES` itself.
    fn env(job: &Job) -> Vec<(String, String)> {
        job.env
            .iter()
            .filter(|(k, _)| k != "CUDA_VISIBLE_DEVICES")
            .cloned()
            .collect()
    }

    fn spec<'a>(&'a self, job: &'a Job, env: &'a [(String, String)]) -> ScriptSpec<'a> {
        ScriptSpec {
            name: job_name(&job.pipeline, &job.node),
            log: String::new(),
            workdir: &job.workdir,
            resources: job.resources,
            config: &self.config,
            array: None,
            env,
            setup: Vec::new(),
            marker: String::new(),
            command: Vec::new(),
        }
    }

    /// Writes the batch script(s) of one attempt and submits them.
    fn submit(&self, job: &Job, attempt: u32) -> Result<Unit> {
        let dir = job.workdir.join("slurm");
        std::fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
        // What an earlier attempt left: the stage's contract wants a fresh --out.
        for stale in [job.out.clone(), job.workdir.join("shards")] {
            crate::cache::remove_tree(&stale);
        }
        remove_partials(&job.out);
        let env = Self::env(job);
        let submitted_ms = crate::cache::now_ms();
        if job.shards <= 1 {
            let spec = ScriptSpec {
                log: format!("{}/job-%j.log", dir.display()),
                marker: "job-$SLURM_JOB_ID".into(),
                command: self.command(job, &[], shell_quote(job.out.as_os_str())),
                ..self.spec(job, &env)
            };
            let script = dir.join(format!("job-{attempt}.sh"));
            let id = sbatch(&script, &spec.render(), &self.config.sbatch, None)?;
            return Ok(Unit::Single { id, submitted_ms });
        }
        let n = job.shards;
        let shards = job.workdir.join("shards");
        std::fs::create_dir_all(&shards).ctx(|| format!("creating {}", shards.display()))?;
        let tasks = ScriptSpec {
            log: format!("{}/task-%a.log", dir.display()),
            array: Some(n),
            marker: "task-$SLURM_ARRAY_TASK_ID".into(),
            command: self.command(
                job,
                &["--shard".into(), format!("\"$SLURM_ARRAY_TASK_ID\"/{n}")],
                format!(
                    "{}/\"$SLURM_ARRAY_TASK_ID\"",
                    shell_quote(shards.as_os_str())
                ),
            ),
            ..self.spec(job, &env)
        };
        let array = sbatch(
            &dir.join(format!("tasks-{attempt}.sh")),
            &tasks.render(),
            &self.config.sbatch,
            None,
        )?;
        let merge = ScriptSpec {
            name: format!("{}-merge", job_name(&job.pipeline, &job.node)),
            log: format!("{}/merge-%j.log", dir.display()),
            marker: "merge-$SLURM_JOB_ID".into(),
            command: self.command(
                job,
                &["--merge-shards".into(), shell_quote(shards.as_os_str())],
                shell_quote(job.out.as_os_str()),
            ),
            ..self.spec(job, &env)
        };
        let merge_id = match sbatch(
            &dir.join(format!("merge-{attempt}.sh")),
            &merge.render(),
            &self.config.sbatch,
            Some(&array),
        ) {
            Ok(id) => id,
            Err(e) => {
                scancel(&[array]);
                return Err(e);
            }
        };
        Ok(Unit::Sharded {
            array,
            merge: merge_id,
            shards: n,
            submitted_ms,
        })
    }
}

/// Whether slurmstepd wrote into a job log that it killed the job for its memory (the
/// accounting poller's "Exceeded job memory limit", or the cgroup's "oom-kill").
fn killed_for_memory(dir: &Path) -> bool {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return false;
    };
    rd.flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .any(|e| {
            std::fs::read_to_string(e.path()).is_ok_and(|t| {
                t.contains("Exceeded job memory limit")
                    || t.contains("exceeded memory limit")
                    || t.contains("oom-kill")
            })
        })
}

/// Removes `OUT.partial-*` folders a killed stage left beside its output.
fn remove_partials(out: &Path) {
    let (Some(parent), Some(name)) = (out.parent(), out.file_name()) else {
        return;
    };
    let prefix = format!("{}.partial-", name.to_string_lossy());
    if let Ok(rd) = std::fs::read_dir(parent) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                crate::cache::remove_tree(&e.path());
            }
        }
    }
}

/// Writes `script` and submits it; returns the job id.
fn sbatch(script: &Path, text: &str, extra: &[String], after: Option<&str>) -> Result<String> {
    std::fs::write(script, text).ctx(|| format!("writing {}", script.display()))?;
    let mut cmd = Command::new("sbatch");
    cmd.arg("--parsable").args(extra);
    if let Some(dep) = after {
        // The merge runs only once every task succeeded; if one fails, Slurm drops it.
        cmd.arg(format!("--dependency=afterok:{dep}"))
            .arg("--kill-on-invalid-dep=yes");
    }
    let out = cmd
        .arg(script)
        .output()
        .ctx(|| "running sbatch".to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    match state::parse_sbatch_id(&stdout) {
        Some(id) if out.status.success() => Ok(id),
        _ => Err(RunnerError::Slurm(format!(
            "sbatch refused {}: {}{}",
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim(),
            stdout.trim()
        ))),
    }
}

/// Whether Slurm has the job pending or running (`None`: squeue cannot be run). A list
/// `1,2` is active while any of them is.
pub fn job_active(job: &str) -> Option<bool> {
    let out = Command::new("squeue")
        .args(["-h", "-t", "all", "-o", "%T", "-j", job])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() && text.trim().is_empty() {
        // "Invalid job id specified": ended long ago, forgotten by slurmctld.
        let err = String::from_utf8_lossy(&out.stderr);
        return err.contains("Invalid job id").then_some(false);
    }
    Some(text.lines().any(|l| !JobState::parse(l).is_terminal()))
}

/// Cancels jobs (errors ignored: a job may have ended meanwhile).
pub(crate) fn scancel(ids: &[String]) {
    if ids.is_empty() {
        return;
    }
    let _ = Command::new("scancel")
        .args(ids)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

impl Executor for SlurmExecutor {
    fn name(&self) -> &'static str {
        "slurm"
    }

    fn schedules_resources(&self) -> bool {
        true
    }

    fn execute(&self, job: &Job, progress: &(dyn Fn(ProgressUpdate) + Sync)) -> Result<JobResult> {
        let mut attempt = 1;
        let mut job_ids = Vec::new();
        loop {
            let unit = self.submit(job, attempt)?;
            job_ids.extend(unit.ids());
            if let Some(owner) = &job.lock_owner {
                // The job, not this process, is what other hosts judge the key's lock by.
                crate::owner::set_job(owner, &unit.ids().join(","));
            }
            let mut ended = follow::follow(&self.tracker, job, &unit, progress)?;
            if matches!(ended.state, JobState::Failed | JobState::Cancelled)
                && killed_for_memory(&job.workdir.join("slurm"))
            {
                // Without cgroups Slurm's accounting kills the step and calls the job FAILED;
                // its log says why, and that is what the user must change.
                ended.state = JobState::OutOfMemory;
                if let Some(failed) = &mut ended.failed_part {
                    failed.state = JobState::OutOfMemory;
                }
            }
            let cancelled = crate::process::cancel_signal().is_some();
            if ended.state.is_retryable() && attempt <= self.config.max_retries && !cancelled {
                progress(ProgressUpdate {
                    label: format!(
                        "{} ({}); resubmitting, attempt {}",
                        ended.state.name(),
                        ended.state.explain(),
                        attempt + 1
                    ),
                    done: 0,
                    total: 0,
                    message: String::new(),
                });
                attempt += 1;
                continue;
            }
            follow::write_log(job, &unit)?;
            if matches!(unit, Unit::Sharded { .. }) && ended.state == JobState::Completed {
                // The merge linked what it needed into `out/`; the parts are not the entry's.
                crate::cache::remove_tree(&job.workdir.join("shards"));
            }
            return Ok(result(job, &unit, &ended, job_ids, attempt));
        }
    }
}

fn result(job: &Job, unit: &Unit, e: &Ended, job_ids: Vec<String>, attempts: u32) -> JobResult {
    let (started_ms, ended_ms) = (e.started_ms.unwrap_or(unit.submitted_ms()), e.ended_ms);
    JobResult {
        exit_code: e.exit_code,
        signal: e.signal,
        peak_rss_bytes: e.peak_rss_bytes,
        started_ms,
        duration: std::time::Duration::from_millis(ended_ms.saturating_sub(started_ms)),
        remote: Some(RemoteRecord {
            executor: "slurm".into(),
            job_ids,
            state: e.state,
            reason: e.failed_part.as_ref().map(ToString::to_string),
            attempts,
            shards: job.shards.max(1),
            nodes: e.nodes.clone(),
            submitted_unix_ms: unit.submitted_ms(),
            queued_s: started_ms.saturating_sub(unit.submitted_ms()) as f64 / 1000.0,
            ended_unix_ms: ended_ms,
        }),
    }
}
