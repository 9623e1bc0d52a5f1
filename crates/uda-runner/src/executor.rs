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
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use uda_stage::ProgressUpdate;

/// Everything needed to run one stage instance.
#[derive(Debug, Clone)]
pub struct Job {
    /// The pipeline's name (Slurm job names are `uda-<pipeline>-<node>`).
    pub pipeline: String,
    pub node: String,
    pub binary: PathBuf,
    /// The stage's `--out` (the executor puts it first, or per shard task its own).
    pub out: PathBuf,
    /// Arguments after `--out`: inputs and params.
    pub args: Vec<OsString>,
    /// The private staging folder (working directory of the stage).
    pub workdir: PathBuf,
    pub log: PathBuf,
    pub env: Vec<(String, String)>,
    pub resources: Resources,
    /// The open descriptor of the key's lock file: the local executor lets the stage's process
    /// tree inherit it, so the key stays locked for as long as any of it runs.
    pub lock_fd: Option<i32>,
    /// The key's owner record (`locks/<key>.owner`): the Slurm executor notes its job there.
    pub lock_owner: Option<PathBuf>,
    /// Array tasks for a shardable stage (1: one job). Only the Slurm executor shards; the
    /// result is byte-identical either way.
    pub shards: u32,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq)]
pub struct JobResult {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub peak_rss_bytes: u64,
    pub started_ms: u64,
    pub duration: Duration,
    /// Where a batch scheduler ran it (`None`: a child process here).
    pub remote: Option<RemoteRecord>,
}

/// What the scheduler said about a job, kept in `entry.json` and the run history.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RemoteRecord {
    pub executor: String,
    /// Every job submitted for it (array job and merge job; resubmissions too).
    pub job_ids: Vec<String>,
    /// The scheduler's final word (`COMPLETED`, `TIMEOUT`, ...).
    pub state: crate::slurm::JobState,
    /// Which part failed, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub attempts: u32,
    pub shards: u32,
    pub nodes: Vec<String>,
    pub submitted_unix_ms: u64,
    /// From submission to the job's start: time in the queue.
    pub queued_s: f64,
    pub ended_unix_ms: u64,
}

impl JobResult {
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
            && self
                .remote
                .as_ref()
                .is_none_or(|r| r.state == crate::slurm::JobState::Completed)
    }

    /// Exit code, or 128 + signal number the way shells report it.
    pub fn exit_status(&self) -> i32 {
        self.exit_code
            .unwrap_or_else(|| 128 + self.signal.unwrap_or(0))
    }

    pub fn describe(&self) -> String {
        if let Some(r) = &self.remote
            && r.state != crate::slurm::JobState::Completed
        {
            let part = r.reason.as_deref().unwrap_or(r.state.name());
            let status = match (self.exit_code, self.signal) {
                (Some(c), _) => format!("; exit code {c}"),
                (None, Some(s)) => format!("; ended by signal {s}"),
                _ => String::new(),
            };
            return format!("{} says {part}: {}{status}", r.executor, r.state.explain());
        }
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
    /// The executor's scheduler places jobs within its own budget (Slurm): the runner then
    /// submits every ready stage instead of fitting them into this machine's CPUs and memory.
    fn schedules_resources(&self) -> bool {
        false
    }
    fn execute(&self, job: &Job, progress: &(dyn Fn(ProgressUpdate) + Sync)) -> Result<JobResult>;
}

/// Runs stage binaries as child processes of this machine.
#[derive(Debug, Default)]
pub struct LocalExecutor {
    /// `uda-pipe` itself: stages are started through `uda-pipe __stage-exec` (see
    /// [`trampoline_main`]) so that their peak memory is measured exactly.
    trampoline: Option<PathBuf>,
}

impl LocalExecutor {
    /// Starts stages directly; peak memory below this process's own is sampled from /proc.
    pub fn direct() -> Self {
        Self { trampoline: None }
    }

    /// Starts stages through `exe __stage-exec` (exact peak memory); `exe` must be `uda-pipe`.
    pub fn with_trampoline(exe: PathBuf) -> Self {
        Self {
            trampoline: Some(exe),
        }
    }
}

/// The hidden subcommand that runs a stage for [`LocalExecutor::with_trampoline`].
pub const TRAMPOLINE_ARG: &str = "__stage-exec";

/// `uda-pipe __stage-exec BIN ARGS...`: runs BIN and reports its exact rusage on stderr.
///
/// Linux carries the high-water RSS of the process that calls `exec` into the new program's
/// `ru_maxrss`, so a stage spawned by a large `uda-pipe` would report at least `uda-pipe`'s memory.
/// Spawned from this small fresh process instead, the stage's `ru_maxrss` is its own.
pub fn trampoline_main(args: &[OsString]) -> std::process::ExitCode {
    use std::os::unix::process::ExitStatusExt;
    use wait4::Wait4;
    let Some((bin, rest)) = args.split_first() else {
        eprintln!("usage: uda-pipe {TRAMPOLINE_ARG} BINARY [ARGS...]");
        return std::process::ExitCode::from(2);
    };
    // A cancel signal reaches the whole process group, the stage included; this process must
    // outlive the stage to report its status.
    if let Err(e) = crate::process::ignore_cancel_signals() {
        eprintln!("cannot install signal handlers: {e}");
    }
    let mut cmd = Command::new(bin);
    cmd.args(rest);
    crate::process::tie_to_parent(&mut cmd, None);
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot start {}: {e}", Path::new(bin).display());
            return std::process::ExitCode::from(127);
        }
    };
    match child.wait4() {
        Ok(r) => {
            let line = serde_json::json!({"uda_rusage": {"maxrss": r.rusage.maxrss, "code": r.status.code(), "signal": r.status.signal()}});
            eprintln!("{line}");
            let code = r
                .status
                .code()
                .unwrap_or_else(|| 128 + r.status.signal().unwrap_or(0));
            std::process::ExitCode::from(code.clamp(0, 255) as u8)
        }
        Err(e) => {
            eprintln!("waiting for {}: {e}", Path::new(bin).display());
            std::process::ExitCode::from(126)
        }
    }
}

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
        // See `peak_rss`: the child's rusage starts from our own high-water mark.
        let parent_hwm = vm_hwm("/proc/self/status").unwrap_or(0);
        let started_ms = crate::cache::now_ms();
        let t0 = Instant::now();
        let mut cmd = match &self.trampoline {
            Some(exe) => {
                let mut c = Command::new(exe);
                c.arg(TRAMPOLINE_ARG).arg(&job.binary);
                c
            }
            None => Command::new(&job.binary),
        };
        cmd.process_group(0);
        crate::process::tie_to_parent(&mut cmd, job.lock_fd);
        let mut child = cmd
            .arg("--out")
            .arg(&job.out)
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
        let pid = child.id();
        let done = AtomicBool::new(false);
        let sampled = AtomicU64::new(0);
        let reported: Mutex<Option<serde_json::Value>> = Mutex::new(None);
        let res = std::thread::scope(|s| {
            if let Some(out) = stdout {
                let log = &log;
                s.spawn(move || pump(out, log, &|_| false));
            }
            if let Some(err) = stderr {
                let log = &log;
                let reported = &reported;
                let via_trampoline = self.trampoline.is_some();
                s.spawn(move || {
                    pump(err, log, &|line| {
                        if let Some(u) = uda_stage::parse_progress_line(line) {
                            progress(u);
                            return true;
                        }
                        let rusage = serde_json::from_str::<serde_json::Value>(line.trim())
                            .ok()
                            .and_then(|v| v.get("uda_rusage").cloned());
                        match rusage {
                            Some(r) if via_trampoline => {
                                if let Ok(mut slot) = reported.lock() {
                                    *slot = Some(r);
                                }
                                true
                            }
                            _ => false,
                        }
                    })
                });
            }
            let (done, sampled) = (&done, &sampled);
            s.spawn(move || {
                let mut cancel = Canceller::new(pid);
                while !done.load(Ordering::Acquire) {
                    if let Some(hwm) = vm_hwm(&format!("/proc/{pid}/status")) {
                        sampled.fetch_max(hwm, Ordering::Relaxed);
                    }
                    cancel.poll();
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
            let r = child.wait4();
            done.store(true, Ordering::Release);
            // Whatever the stage started and left behind in its group goes with it.
            crate::process::signal_group(pid, libc::SIGKILL);
            r
        });
        let res = res.ctx(|| format!("waiting for {}", job.binary.display()))?;
        if let Ok(mut f) = log.lock() {
            let _ = f.flush();
        }
        // Through the trampoline, its report is the stage's own status and rusage.
        if let Ok(Some(r)) = reported.lock().map(|r| r.clone()) {
            return Ok(JobResult {
                exit_code: r["code"].as_i64().map(|c| c as i32),
                signal: r["signal"].as_i64().map(|s| s as i32),
                peak_rss_bytes: r["maxrss"].as_u64().unwrap_or(0),
                started_ms,
                duration: t0.elapsed(),
                remote: None,
            });
        }
        Ok(JobResult {
            exit_code: res.status.code(),
            signal: res.status.signal(),
            peak_rss_bytes: peak_rss(
                res.rusage.maxrss,
                parent_hwm,
                sampled.load(Ordering::Relaxed),
            ),
            started_ms,
            duration: t0.elapsed(),
            remote: None,
        })
    }
}

/// Forwards a cancel of the run to a running stage's process group: the same signal first, then
/// SIGKILL once the grace period is over.
struct Canceller {
    pgid: u32,
    signalled: Option<Instant>,
    killed: bool,
}

impl Canceller {
    fn new(pgid: u32) -> Self {
        Self {
            pgid,
            signalled: None,
            killed: false,
        }
    }

    fn poll(&mut self) {
        let Some(sig) = crate::process::cancel_signal() else {
            return;
        };
        match self.signalled {
            None => {
                crate::process::signal_group(self.pgid, sig);
                self.signalled = Some(Instant::now());
            }
            Some(t) if !self.killed && t.elapsed() >= crate::process::grace() => {
                crate::process::signal_group(self.pgid, libc::SIGKILL);
                self.killed = true;
            }
            Some(_) => {}
        }
    }
}

/// The stage's peak resident memory. `wait4`'s `ru_maxrss` is exact when the stage grew beyond
/// this process's own high-water mark, but Linux carries the spawning process's mark into the
/// child across `exec` (the child starts as a copy of us), so below it only the sampled `VmHWM`
/// of the stage (read every 50 ms from /proc) is the stage's own.
fn peak_rss(rusage_max: u64, parent_hwm: u64, sampled: u64) -> u64 {
    if rusage_max > parent_hwm + (1 << 20) || sampled == 0 {
        rusage_max
    } else {
        sampled
    }
}

/// `VmHWM` (peak resident set) of a /proc status file, in bytes.
fn vm_hwm(status_path: &str) -> Option<u64> {
    let text = std::fs::read_to_string(status_path).ok()?;
    let kb: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
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
                if line.contains("{\"uda_") && consume(&line) {
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
