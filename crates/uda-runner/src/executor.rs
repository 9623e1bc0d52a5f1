//! Running one stage invocation. The scheduler only sees the [`Executor`] trait, so a Slurm
//! executor (submit, poll, collect the log) can replace [`LocalExecutor`] without touching the
//! cache or the DAG logic.
//!
//! The call is the stage contract of `uda-stage`:
//! `BIN --out STAGING/out --input NAME=PATH ... --params STAGING/params.json` with
//! `UDA_PROGRESS=jsonl`; stdout and stderr go to the entry's `log.txt` (progress lines excepted,
//! they drive the live display).

use crate::error::{IoContext, Result};
use crate::pipeline::Resources;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use uda_stage::ProgressUpdate;

/// Everything needed to run one stage instance.
#[derive(Debug, Clone)]
pub struct Job {
    pub node: String,
    pub binary: PathBuf,
    pub args: Vec<OsString>,
    /// The private staging folder (working directory of the stage).
    pub workdir: PathBuf,
    pub log: PathBuf,
    pub env: Vec<(String, String)>,
    pub resources: Resources,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq)]
pub struct JobResult {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub peak_rss_bytes: u64,
    pub started_ms: u64,
    pub duration: Duration,
}

impl JobResult {
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
    }

    /// Exit code, or 128 + signal number the way shells report it.
    pub fn exit_status(&self) -> i32 {
        self.exit_code
            .unwrap_or_else(|| 128 + self.signal.unwrap_or(0))
    }

    pub fn describe(&self) -> String {
        match (self.exit_code, self.signal) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(9)) => {
                "killed by signal 9 (SIGKILL; out of memory or killed by hand?)".into()
            }
            (None, Some(s)) => format!("killed by signal {s}"),
            (None, None) => "ended without a status".into(),
        }
    }
}

/// Runs jobs somewhere; `progress` is called with each progress report of the stage.
pub trait Executor: Send + Sync {
    fn name(&self) -> &'static str;
    fn execute(&self, job: &Job, progress: &(dyn Fn(ProgressUpdate) + Sync)) -> Result<JobResult>;
}

/// Runs stage binaries as child processes of this machine.
#[derive(Debug, Default)]
pub struct LocalExecutor;

impl Executor for LocalExecutor {
    fn name(&self) -> &'static str {
        "local"
    }

    fn execute(&self, job: &Job, progress: &(dyn Fn(ProgressUpdate) + Sync)) -> Result<JobResult> {
        use std::os::unix::process::ExitStatusExt;
        use wait4::Wait4;
        let log = std::fs::File::create(&job.log)
            .ctx(|| format!("creating log {}", job.log.display()))?;
        let log = Mutex::new(log);
        let started_ms = crate::cache::now_ms();
        let t0 = Instant::now();
        let mut child = Command::new(&job.binary)
            .args(&job.args)
            .envs(job.env.iter().map(|(k, v)| (k, v)))
            .env(uda_stage::PROGRESS_ENV, "jsonl")
            .current_dir(&job.workdir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .ctx(|| format!("starting {}", job.binary.display()))?;
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let res = std::thread::scope(|s| {
            if let Some(out) = stdout {
                let log = &log;
                s.spawn(move || pump(out, log, &|_| false));
            }
            if let Some(err) = stderr {
                let log = &log;
                s.spawn(move || {
                    pump(
                        err,
                        log,
                        &|line| match uda_stage::parse_progress_line(line) {
                            Some(u) => {
                                progress(u);
                                true
                            }
                            None => false,
                        },
                    )
                });
            }
            child.wait4()
        });
        let res = res.ctx(|| format!("waiting for {}", job.binary.display()))?;
        if let Ok(mut f) = log.lock() {
            let _ = f.flush();
        }
        Ok(JobResult {
            exit_code: res.status.code(),
            signal: res.status.signal(),
            peak_rss_bytes: res.rusage.maxrss,
            started_ms,
            duration: t0.elapsed(),
        })
    }
}

/// Copies lines to the log, except those `consume` takes (progress lines).
fn pump(src: impl Read, log: &Mutex<std::fs::File>, consume: &dyn Fn(&str) -> bool) {
    let mut r = BufReader::new(src);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf);
                if line.contains("uda_progress") && consume(&line) {
                    continue;
                }
                if let Ok(mut f) = log.lock() {
                    let _ = f.write_all(&buf);
                    if !buf.ends_with(b"\n") {
                        let _ = f.write_all(b"\n");
                    }
                }
            }
        }
    }
}

/// The last `n` lines of a log file (shown when a stage fails).
pub fn log_tail(path: &std::path::Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
