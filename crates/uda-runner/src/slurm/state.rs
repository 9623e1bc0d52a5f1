//! What Slurm says about a job: its state, exit code, elapsed time and peak memory, parsed from
//! `sacct --parsable2` and `squeue` lines.
//!
//! Two sources, because test clusters and real ones differ: with slurmdbd, `sacct -j IDS` knows
//! every job, running or ended, and its steps carry `MaxRSS`. Without it (`accounting storage is
//! disabled`), `sacct -c` reads the jobcomp log, which lists only ended jobs and no step data,
//! so pending and running jobs are learnt from `squeue`.

use std::time::Duration;

/// A job's state as Slurm names it (`sacct`'s `State`, `squeue`'s `%T`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobState {
    Pending,
    Configuring,
    Running,
    Completing,
    Suspended,
    Requeued,
    Resizing,
    Completed,
    Failed,
    Cancelled,
    Timeout,
    OutOfMemory,
    NodeFail,
    Preempted,
    BootFail,
    Deadline,
    /// Any other word Slurm may print; treated as still active until the job leaves `squeue`.
    Other,
}

impl JobState {
    /// Parses `sacct`/`squeue` state words; `CANCELLED by 0` and `CANCELLED+` included.
    pub fn parse(word: &str) -> JobState {
        let w = word
            .split_whitespace()
            .next()
            .unwrap_or("")
            .trim_end_matches('+');
        match w {
            "PENDING" | "PD" => JobState::Pending,
            "CONFIGURING" | "CF" => JobState::Configuring,
            "RUNNING" | "R" => JobState::Running,
            "COMPLETING" | "CG" => JobState::Completing,
            "SUSPENDED" | "S" => JobState::Suspended,
            "REQUEUED" | "RQ" | "REQUEUE_HOLD" | "REQUEUE_FED" => JobState::Requeued,
            "RESIZING" | "RS" => JobState::Resizing,
            "COMPLETED" | "CD" => JobState::Completed,
            "FAILED" | "F" => JobState::Failed,
            "CANCELLED" | "CA" => JobState::Cancelled,
            "TIMEOUT" | "TO" => JobState::Timeout,
            "OUT_OF_MEMORY" | "OOM" => JobState::OutOfMemory,
            "NODE_FAIL" | "NF" => JobState::NodeFail,
            "PREEMPTED" | "PR" => JobState::Preempted,
            "BOOT_FAIL" | "BF" => JobState::BootFail,
            "DEADLINE" | "DL" => JobState::Deadline,
            _ => JobState::Other,
        }
    }

    /// The job has ended and will not run again by itself.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Completed
                | JobState::Failed
                | JobState::Cancelled
                | JobState::Timeout
                | JobState::OutOfMemory
                | JobState::NodeFail
                | JobState::Preempted
                | JobState::BootFail
                | JobState::Deadline
        )
    }

    /// Ended for a reason that is not the job's fault: worth submitting again
    /// (`--max-retries`); a training stage then resumes from its checkpoint.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            JobState::Preempted | JobState::NodeFail | JobState::BootFail
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            JobState::Pending => "PENDING",
            JobState::Configuring => "CONFIGURING",
            JobState::Running => "RUNNING",
            JobState::Completing => "COMPLETING",
            JobState::Suspended => "SUSPENDED",
            JobState::Requeued => "REQUEUED",
            JobState::Resizing => "RESIZING",
            JobState::Completed => "COMPLETED",
            JobState::Failed => "FAILED",
            JobState::Cancelled => "CANCELLED",
            JobState::Timeout => "TIMEOUT",
            JobState::OutOfMemory => "OUT_OF_MEMORY",
            JobState::NodeFail => "NODE_FAIL",
            JobState::Preempted => "PREEMPTED",
            JobState::BootFail => "BOOT_FAIL",
            JobState::Deadline => "DEADLINE",
            JobState::Other => "OTHER",
        }
    }

    /// What the state means for the user, when a job did not complete.
    pub fn explain(self) -> &'static str {
        match self {
            JobState::Timeout => "it ran past its time limit (raise resources.time)",
            JobState::OutOfMemory => {
                "it used more memory than it asked for (raise resources.memory_gb)"
            }
            JobState::NodeFail => "its node failed",
            JobState::Preempted => "a higher-priority job preempted it",
            JobState::BootFail => "its node failed to boot",
            JobState::Cancelled => "it was cancelled (scancel, or by an administrator)",
            JobState::Deadline => "it missed its deadline",
            JobState::Failed => "the stage exited with an error",
            _ => "",
        }
    }
}

/// One job (or array task) as `sacct` reports it, steps folded in.
#[derive(Debug, Clone, PartialEq)]
pub struct SacctRecord {
    /// `123`, or `123_4` for an array task.
    pub job_id: String,
    pub state: JobState,
    pub exit_code: Option<i32>,
    /// The signal that ended the job, from `ExitCode`'s `code:signal`.
    pub signal: Option<i32>,
    pub elapsed: Duration,
    /// The largest `MaxRSS` over the job's steps (only with slurmdbd).
    pub max_rss_bytes: Option<u64>,
    pub node: String,
}

/// The `--format` fields [`parse_sacct`] reads, in order.
pub const SACCT_FIELDS: &str = "JobID,State,ExitCode,Elapsed,MaxRSS,NodeList";

/// Parses `sacct -n -P -o SACCT_FIELDS` output. Step rows (`123.batch`, `123.extern`) add their
/// `MaxRSS` to their job's record; the job row gives the state and exit code.
pub fn parse_sacct(text: &str) -> Vec<SacctRecord> {
    let mut out: Vec<SacctRecord> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('|').collect();
        if f.len() < 6 || f[0].is_empty() {
            continue;
        }
        let (job, step) = match f[0].split_once('.') {
            Some((j, s)) => (j, Some(s)),
            None => (f[0], None),
        };
        let rss = parse_memory(f[4]);
        if step.is_some() {
            if let Some(r) = out.iter_mut().find(|r| r.job_id == job) {
                r.max_rss_bytes = max_opt(r.max_rss_bytes, rss);
            }
            continue;
        }
        let (exit_code, signal) = parse_exit_code(f[2]);
        out.push(SacctRecord {
            job_id: job.to_string(),
            state: JobState::parse(f[1]),
            exit_code,
            signal,
            elapsed: parse_elapsed(f[3]).unwrap_or_default(),
            max_rss_bytes: rss,
            node: f[5].to_string(),
        });
    }
    out
}

fn max_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// `sacct`'s `ExitCode`: `code:signal`; a signal of 0 means none.
pub fn parse_exit_code(s: &str) -> (Option<i32>, Option<i32>) {
    let Some((c, sig)) = s.split_once(':') else {
        return (s.trim().parse().ok(), None);
    };
    let sig: Option<i32> = sig.trim().parse().ok().filter(|&s| s != 0);
    match sig {
        Some(_) => (None, sig),
        None => (c.trim().parse().ok(), None),
    }
}

/// Slurm durations: `[D-]HH:MM:SS`, `MM:SS`, with optional fractional seconds.
pub fn parse_elapsed(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let (days, rest) = match s.split_once('-') {
        Some((d, r)) => (d.parse::<u64>().ok()?, r),
        None => (0, s),
    };
    let parts: Vec<f64> = rest
        .split(':')
        .map(|p| p.parse::<f64>().ok())
        .collect::<Option<Vec<_>>>()?;
    let secs = match parts.as_slice() {
        [h, m, s] => h * 3600.0 + m * 60.0 + s,
        [m, s] => m * 60.0 + s,
        [s] => *s,
        _ => return None,
    };
    Some(Duration::from_secs_f64(days as f64 * 86400.0 + secs))
}

/// `sacct`'s memory fields: `1234K`, `56.5M`, `2G`, bare bytes; empty = unknown.
pub fn parse_memory(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let (num, mult) = match s.chars().last()? {
        'K' | 'k' => (&s[..s.len() - 1], 1u64 << 10),
        'M' | 'm' => (&s[..s.len() - 1], 1 << 20),
        'G' | 'g' => (&s[..s.len() - 1], 1 << 30),
        'T' | 't' => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    num.parse::<f64>().ok().map(|n| (n * mult as f64) as u64)
}

/// One job of `squeue -h -t all -o SQUEUE_FORMAT`.
#[derive(Debug, Clone, PartialEq)]
pub struct SqueueRecord {
    /// The array job id for array tasks (`%F`), else the job id.
    pub array_id: String,
    /// `%i`: `123` or `123_4` (`123_[5-9]` for tasks not yet started).
    pub job_id: String,
    pub state: JobState,
    pub reason: String,
}

/// The `-o` format [`parse_squeue`] reads.
pub const SQUEUE_FORMAT: &str = "%F|%i|%T|%r";

pub fn parse_squeue(text: &str) -> Vec<SqueueRecord> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.trim().split('|').collect();
            if f.len() < 4 || f[1].is_empty() {
                return None;
            }
            Some(SqueueRecord {
                array_id: f[0].to_string(),
                job_id: f[1].to_string(),
                state: JobState::parse(f[2]),
                reason: f[3].to_string(),
            })
        })
        .collect()
}

/// `sbatch --parsable` prints `123` or `123;cluster`.
pub fn parse_sbatch_id(stdout: &str) -> Option<String> {
    let id = stdout.trim().split(';').next()?.trim();
    (!id.is_empty() && id.chars().all(|c| c.is_ascii_digit())).then(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sacct_rows_fold_steps_into_their_job() {
        // Real slurmdbd output shape: job row, then its steps; an array task; a timeout.
        let text = "\
41|COMPLETED|0:0|00:01:05||node3
41.batch|COMPLETED|0:0|00:01:05|523412K|node3
41.extern|COMPLETED|0:0|00:01:05|1024K|node3
42_1|TIMEOUT|0:15|00:02:00||node4
42_1.batch|CANCELLED|0:15|00:02:01|2.5G|node4
43|CANCELLED by 0|0:0|1-00:00:03||None assigned
";
        let r = parse_sacct(text);
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].job_id, "41");
        assert_eq!(r[0].state, JobState::Completed);
        assert_eq!(r[0].exit_code, Some(0));
        assert_eq!(r[0].max_rss_bytes, Some(523412 * 1024));
        assert_eq!(r[0].elapsed, Duration::from_secs(65));
        assert_eq!(r[1].job_id, "42_1");
        assert_eq!(r[1].state, JobState::Timeout);
        assert_eq!((r[1].exit_code, r[1].signal), (None, Some(15)));
        assert_eq!(r[1].max_rss_bytes, Some((2.5 * (1u64 << 30) as f64) as u64));
        assert_eq!(r[2].state, JobState::Cancelled);
        assert_eq!(r[2].elapsed, Duration::from_secs(86403));
    }

    #[test]
    fn jobcomp_rows_have_no_steps_or_memory() {
        // `sacct -c` on the loopback test cluster (jobcomp/filetxt).
        let r = parse_sacct("5|FAILED|3:0|00:00:02||localhost\n");
        assert_eq!(r[0].state, JobState::Failed);
        assert_eq!(r[0].exit_code, Some(3));
        assert_eq!(r[0].max_rss_bytes, None);
    }

    #[test]
    fn states_terminal_and_retryable() {
        for (w, terminal, retry) in [
            ("PENDING", false, false),
            ("RUNNING", false, false),
            ("COMPLETING", false, false),
            ("REQUEUED", false, false),
            ("COMPLETED", true, false),
            ("FAILED", true, false),
            ("CANCELLED+", true, false),
            ("TIMEOUT", true, false),
            ("OUT_OF_MEMORY", true, false),
            ("NODE_FAIL", true, true),
            ("PREEMPTED", true, true),
            ("BOOT_FAIL", true, true),
        ] {
            let s = JobState::parse(w);
            assert_ne!(s, JobState::Other, "{w}");
            assert_eq!(s.is_terminal(), terminal, "{w}");
            assert_eq!(s.is_retryable(), retry, "{w}");
            assert_eq!(JobState::parse(s.name()), s);
        }
        assert_eq!(JobState::parse("SPECIAL_EXIT"), JobState::Other);
    }

    #[test]
    fn squeue_and_sbatch_output() {
        let q = parse_squeue(
            "7|7_[2-3]|PENDING|Resources\n7|7_0|RUNNING|None\n9|9|PENDING|Dependency\n",
        );
        assert_eq!(q.len(), 3);
        assert_eq!(q[0].array_id, "7");
        assert_eq!(q[1].state, JobState::Running);
        assert_eq!(q[2].reason, "Dependency");
        assert_eq!(parse_sbatch_id("123\n").as_deref(), Some("123"));
        assert_eq!(parse_sbatch_id("123;big\n").as_deref(), Some("123"));
        assert_eq!(parse_sbatch_id("sbatch: error: x"), None);
    }

    #[test]
    fn durations_and_memory() {
        assert_eq!(parse_elapsed("00:00:02"), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_elapsed("2-01:00:00"),
            Some(Duration::from_secs(2 * 86400 + 3600))
        );
        assert_eq!(parse_elapsed("05:30"), Some(Duration::from_secs(330)));
        assert_eq!(parse_elapsed(""), None);
        assert_eq!(parse_memory("2048K"), Some(2 << 20));
        assert_eq!(parse_memory("1G"), Some(1 << 30));
        assert_eq!(parse_memory("77"), Some(77));
        assert_eq!(parse_memory(""), None);
    }
}
