//! Following one submitted stage until it ends: its state from the shared poller, its progress
//! from its log, cancellation on Ctrl-C/SIGTERM, and what it ended with.

use super::state::JobState;
use super::tracker::{Snapshot, Tracker};
use crate::error::{IoContext, Result, RunnerError};
use crate::executor::Job;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use uda_stage::ProgressUpdate;

/// What one attempt submitted.
#[derive(Debug, Clone)]
pub(crate) enum Unit {
    Single {
        id: String,
        submitted_ms: u64,
    },
    /// `--array=0-(shards-1)` of shard tasks, and the merge job that depends on all of them.
    Sharded {
        array: String,
        merge: String,
        shards: u32,
        submitted_ms: u64,
    },
}

impl Unit {
    pub(crate) fn ids(&self) -> Vec<String> {
        match self {
            Unit::Single { id, .. } => vec![id.clone()],
            Unit::Sharded { array, merge, .. } => vec![array.clone(), merge.clone()],
        }
    }

    pub(crate) fn submitted_ms(&self) -> u64 {
        match self {
            Unit::Single { submitted_ms, .. } | Unit::Sharded { submitted_ms, .. } => *submitted_ms,
        }
    }
}

/// How a unit ended.
#[derive(Debug, Clone)]
pub(crate) struct Ended {
    pub state: JobState,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub peak_rss_bytes: u64,
    pub started_ms: Option<u64>,
    pub ended_ms: u64,
    pub nodes: Vec<String>,
    /// Which part failed and how; `None` when the unit completed.
    pub failed_part: Option<FailedPart>,
}

/// The part of a unit that failed: what the runner acts on (a failed shard task leaves its
/// merge job waiting) and, displayed, the reason the history records (`shard task 2 of 4:
/// TIMEOUT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FailedPart {
    pub part: Part,
    /// Slurm's end state of that part.
    pub state: JobState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    /// The one job of an unsharded stage.
    Job(String),
    /// Task `index` of a job array of `of` shard tasks.
    ShardTask { index: u32, of: u32 },
    /// The job that merges the shards.
    Merge(String),
}

impl std::fmt::Display for FailedPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.part {
            Part::Job(id) => write!(f, "job {id}")?,
            Part::ShardTask { index, of } => write!(f, "shard task {index} of {of}")?,
            Part::Merge(id) => write!(f, "merge job {id}")?,
        }
        write!(f, ": {}", self.state.name())
    }
}

/// A job's status in one snapshot.
enum Status {
    Active,
    Ended(JobState),
    /// Neither sacct nor squeue knows it (yet, or any more).
    Unknown,
}

fn job_status(snap: &Snapshot, id: &str) -> Status {
    if let Some(r) = snap.sacct_of(id) {
        if r.state.is_terminal() {
            return Status::Ended(r.state);
        }
        return Status::Active;
    }
    let rows: Vec<_> = snap.queued(id).collect();
    if rows.iter().any(|r| !r.state.is_terminal()) {
        return Status::Active;
    }
    match rows.first() {
        Some(r) => Status::Ended(r.state),
        None => Status::Unknown,
    }
}

/// `slurm/NAME.start`: `JOBID START_MS HOST`; `slurm/NAME.end`: `CODE END_MS`.
fn marker(dir: &Path, name: &str) -> Option<Vec<String>> {
    let t = std::fs::read_to_string(dir.join(name)).ok()?;
    let words: Vec<String> = t.split_whitespace().map(str::to_string).collect();
    (!words.is_empty()).then_some(words)
}

fn marker_ms(words: &Option<Vec<String>>, i: usize) -> Option<u64> {
    words.as_ref()?.get(i)?.parse().ok()
}

/// Waits for the unit to end, forwarding progress and cancelling it on a cancel signal.
pub(crate) fn follow(
    tracker: &Tracker,
    job: &Job,
    unit: &Unit,
    progress: &(dyn Fn(ProgressUpdate) + Sync),
) -> Result<Ended> {
    let dir = job.workdir.join("slurm");
    let mut ids = unit.ids();
    for id in &ids {
        tracker.track(id);
    }
    let mut logs = LogFollower::default();
    let mut seen = 0;
    let mut cancel_sent: Option<Instant> = None;
    let mut unknown_polls = 0;
    let forget = |ids: &[String]| ids.iter().for_each(|id| tracker.forget(id));
    let ended = loop {
        let snap = tracker.wait(seen, Duration::from_millis(250));
        logs.pump(&dir, progress);
        if crate::process::cancel_signal().is_some() && cancel_sent.is_none() {
            super::scancel(&ids);
            cancel_sent = Some(Instant::now());
        }
        if let Some(t) = cancel_sent
            && t.elapsed() > crate::process::grace() + Duration::from_secs(120)
        {
            forget(&ids);
            return Err(RunnerError::Slurm(format!(
                "jobs {} did not end within {} s of scancel; check `squeue -j {}`",
                ids.join(","),
                t.elapsed().as_secs(),
                ids.join(",")
            )));
        }
        if snap.polls == seen {
            continue;
        }
        seen = snap.polls;
        if !unit.ids().iter().all(|id| snap.queried.contains(id)) {
            continue;
        }
        // Without slurmdbd, sacct lists array tasks by their own job ids (written by each
        // task into its start marker), not as ARRAY_TASK.
        if let Unit::Sharded { shards, .. } = unit {
            for i in 0..*shards {
                if let Some(w) = marker(&dir, &format!("task-{i}.start"))
                    && !ids.contains(&w[0])
                {
                    tracker.track(&w[0]);
                    ids.push(w[0].clone());
                }
            }
        }
        match unit_status(unit, &snap, &dir) {
            Status::Active => unknown_polls = 0,
            Status::Ended(state) => break finish(unit, state, &snap, &dir),
            Status::Unknown => {
                if !snap.squeue_failed {
                    unknown_polls += 1;
                }
                if unknown_polls > 10 {
                    forget(&ids);
                    return Err(RunnerError::Slurm(format!(
                        "Slurm knows nothing of jobs {} any more (neither sacct nor squeue lists them){}",
                        ids.join(","),
                        snap.error
                            .map(|e| format!("; last error: {e}"))
                            .unwrap_or_default()
                    )));
                }
            }
        }
    };
    // A shard task failed: the merge waits on it for ever unless Slurm drops it (it should, by
    // --kill-on-invalid-dep); cancel it rather than rely on that.
    if let Unit::Sharded { merge, .. } = unit
        && let Some(FailedPart {
            part: Part::ShardTask { .. },
            ..
        }) = ended.failed_part
    {
        super::scancel(std::slice::from_ref(merge));
    }
    logs.pump(&dir, progress);
    forget(&ids);
    Ok(ended)
}

/// The status of a unit: a single job's, or the array's and then the merge's.
fn unit_status(unit: &Unit, snap: &Snapshot, dir: &Path) -> Status {
    match unit {
        Unit::Single { id, .. } => job_status(snap, id),
        Unit::Sharded {
            array,
            merge,
            shards,
            ..
        } => {
            if snap.queued(array).any(|r| !r.state.is_terminal()) || snap.squeue_failed {
                return Status::Active;
            }
            let done = (0..*shards)
                .all(|i| marker(dir, &format!("task-{i}.end")).is_some_and(|w| w[0] == "0"));
            let seen_any = snap.queued(array).next().is_some()
                || (0..*shards).any(|i| dir.join(format!("task-{i}.start")).exists());
            if !done && !seen_any {
                return Status::Unknown;
            }
            if !done {
                return Status::Ended(JobState::Failed);
            }
            job_status(snap, merge)
        }
    }
}

/// Collects exit code, memory, times and nodes of an ended unit.
fn finish(unit: &Unit, state: JobState, snap: &Snapshot, dir: &Path) -> Ended {
    let now = crate::cache::now_ms();
    match unit {
        Unit::Single { id, .. } => {
            let (start, end) = (
                marker(dir, &format!("job-{id}.start")),
                marker(dir, &format!("job-{id}.end")),
            );
            let r = rusage(&dir.join(format!("job-{id}.log")));
            let sacct = snap.sacct_of(id);
            Ended {
                state,
                exit_code: r.as_ref().map_or_else(
                    || {
                        end.as_ref()
                            .and_then(|w| w[0].parse().ok())
                            .or(sacct.and_then(|s| s.exit_code))
                    },
                    |r| r.0,
                ),
                signal: r
                    .as_ref()
                    .and_then(|r| r.1)
                    .or(sacct.and_then(|s| s.signal)),
                peak_rss_bytes: r
                    .as_ref()
                    .map_or(0, |r| r.2)
                    .max(sacct.and_then(|s| s.max_rss_bytes).unwrap_or(0)),
                started_ms: marker_ms(&start, 1),
                ended_ms: marker_ms(&end, 1).unwrap_or(now),
                nodes: start.and_then(|w| w.get(2).cloned()).into_iter().collect(),
                failed_part: (state != JobState::Completed).then(|| FailedPart {
                    part: Part::Job(id.clone()),
                    state,
                }),
            }
        }
        Unit::Sharded {
            array,
            merge,
            shards,
            ..
        } => {
            let mut e = Ended {
                state,
                exit_code: None,
                signal: None,
                peak_rss_bytes: 0,
                started_ms: None,
                ended_ms: 0,
                nodes: Vec::new(),
                failed_part: None,
            };
            let mut failed: Option<(u32, JobState)> = None;
            for i in 0..*shards {
                let start = marker(dir, &format!("task-{i}.start"));
                let end = marker(dir, &format!("task-{i}.end"));
                if let Some(r) = rusage(&dir.join(format!("task-{i}.log"))) {
                    e.peak_rss_bytes = e.peak_rss_bytes.max(r.2);
                }
                e.started_ms = match (e.started_ms, marker_ms(&start, 1)) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                e.ended_ms = e.ended_ms.max(marker_ms(&end, 1).unwrap_or(0));
                if let Some(h) = start.as_ref().and_then(|w| w.get(2))
                    && !e.nodes.contains(h)
                {
                    e.nodes.push(h.clone());
                }
                let ok = end.as_ref().is_some_and(|w| w[0] == "0");
                if !ok && failed.is_none() {
                    let own = start.as_ref().map(|w| w[0].clone());
                    let task_state = snap
                        .sacct_of(&format!("{array}_{i}"))
                        .or_else(|| own.as_deref().and_then(|o| snap.sacct_of(o)))
                        .map(|r| r.state)
                        .or_else(|| {
                            snap.queued(array)
                                .find(|r| r.job_id == format!("{array}_{i}"))
                                .map(|r| r.state)
                        })
                        .unwrap_or(JobState::Failed);
                    failed = Some((i, task_state));
                }
            }
            if let Some((i, s)) = failed {
                e.state = if s == JobState::Completed {
                    JobState::Failed
                } else {
                    s
                };
                e.exit_code = marker(dir, &format!("task-{i}.end")).and_then(|w| w[0].parse().ok());
                e.failed_part = Some(FailedPart {
                    part: Part::ShardTask {
                        index: i,
                        of: *shards,
                    },
                    state: e.state,
                });
                if e.ended_ms == 0 {
                    e.ended_ms = now;
                }
                return e;
            }
            let start = marker(dir, &format!("merge-{merge}.start"));
            let end = marker(dir, &format!("merge-{merge}.end"));
            let r = rusage(&dir.join(format!("merge-{merge}.log")));
            e.exit_code = r
                .as_ref()
                .and_then(|r| r.0)
                .or_else(|| end.as_ref().and_then(|w| w[0].parse().ok()));
            e.signal = r.as_ref().and_then(|r| r.1);
            e.peak_rss_bytes = e.peak_rss_bytes.max(r.map_or(0, |r| r.2));
            e.ended_ms = marker_ms(&end, 1).unwrap_or(now);
            if e.started_ms.is_none() {
                e.started_ms = marker_ms(&start, 1);
            }
            if state != JobState::Completed {
                e.failed_part = Some(FailedPart {
                    part: Part::Merge(merge.clone()),
                    state,
                });
            }
            e
        }
    }
}

/// The trampoline's report in a log: `(exit code, signal, peak RSS bytes)`.
fn rusage(log: &Path) -> Option<(Option<i32>, Option<i32>, u64)> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines().rev().find_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l.trim()).ok()?;
        let r = v.get("uda_rusage")?;
        Some((
            r["code"].as_i64().map(|c| c as i32),
            r["signal"].as_i64().map(|s| s as i32),
            r["maxrss"].as_u64().unwrap_or(0),
        ))
    })
}

/// Reads what the jobs appended to their logs since the last look and forwards progress lines;
/// the shard tasks of an array report one sum per label.
#[derive(Default)]
struct LogFollower {
    offsets: BTreeMap<PathBuf, (u64, Vec<u8>)>,
    last: BTreeMap<PathBuf, ProgressUpdate>,
}

impl LogFollower {
    fn pump(&mut self, dir: &Path, progress: &(dyn Fn(ProgressUpdate) + Sync)) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        let mut changed: BTreeSet<String> = BTreeSet::new();
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_none_or(|x| x != "log") {
                continue;
            }
            let (off, partial) = self.offsets.entry(p.clone()).or_default();
            let Ok(mut f) = std::fs::File::open(&p) else {
                continue;
            };
            if f.seek(SeekFrom::Start(*off)).is_err() {
                continue;
            }
            let mut buf = Vec::new();
            if f.read_to_end(&mut buf).is_err() {
                continue;
            }
            *off += buf.len() as u64;
            partial.extend_from_slice(&buf);
            while let Some(nl) = partial.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = partial.drain(..=nl).collect();
                if let Some(u) = uda_stage::parse_progress_line(&String::from_utf8_lossy(&line)) {
                    changed.insert(u.label.clone());
                    self.last.insert(p.clone(), u);
                }
            }
        }
        for label in changed {
            let (mut done, mut total, mut message) = (0, 0, String::new());
            for u in self.last.values().filter(|u| u.label == label) {
                done += u.done;
                total += u.total;
                message.clone_from(&u.message);
            }
            progress(ProgressUpdate {
                label,
                done,
                total,
                message,
            });
        }
    }
}

/// Writes the entry's `log.txt`: every job's log of this attempt (progress lines left out),
/// the failed part last so that the tail shown on failure is its own.
pub(crate) fn write_log(job: &Job, unit: &Unit) -> Result<()> {
    let dir = job.workdir.join("slurm");
    let mut parts: Vec<(String, PathBuf)> = match unit {
        Unit::Single { id, .. } => vec![(format!("job {id}"), dir.join(format!("job-{id}.log")))],
        Unit::Sharded {
            array,
            merge,
            shards,
            ..
        } => {
            let mut v: Vec<(String, PathBuf)> = (0..*shards)
                .map(|i| {
                    (
                        format!("shard task {i} of {shards} (job {array}_{i})"),
                        dir.join(format!("task-{i}.log")),
                    )
                })
                .collect();
            v.push((
                format!("merge (job {merge})"),
                dir.join(format!("merge-{merge}.log")),
            ));
            // A failed task's log goes last.
            let failed = (0..*shards as usize)
                .find(|i| marker(&dir, &format!("task-{i}.end")).is_none_or(|w| w[0] != "0"));
            if let Some(i) = failed {
                let part = v.remove(i);
                v.push(part);
            }
            v
        }
    };
    parts.retain(|(_, p)| p.exists());
    let mut out =
        std::fs::File::create(&job.log).ctx(|| format!("creating {}", job.log.display()))?;
    let many = parts.len() > 1;
    for (what, p) in parts {
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        if many {
            let _ = writeln!(out, "== {what} ==");
        }
        for line in text.lines() {
            if line.contains("{\"uda_progress\"") || line.contains("{\"uda_rusage\"") {
                continue;
            }
            let _ = writeln!(out, "{line}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn a_failed_part_reads_as_slurm_names_it() {
        let part = |part, state| FailedPart { part, state }.to_string();
        assert_eq!(
            part(Part::Job("41".into()), JobState::Timeout),
            "job 41: TIMEOUT"
        );
        assert_eq!(
            part(Part::ShardTask { index: 2, of: 4 }, JobState::OutOfMemory),
            "shard task 2 of 4: OUT_OF_MEMORY"
        );
        assert_eq!(
            part(Part::Merge("43".into()), JobState::Failed),
            "merge job 43: FAILED"
        );
    }

    #[test]
    fn progress_of_shard_tasks_is_summed_per_label_and_read_incrementally() {
        let d = tempfile::tempdir().unwrap();
        let line = |done: u64| {
            format!("{{\"uda_progress\":{{\"label\":\"images\",\"done\":{done},\"total\":10}}}}\n")
        };
        std::fs::write(d.path().join("task-0.log"), format!("hello\n{}", line(3))).unwrap();
        std::fs::write(d.path().join("task-1.log"), line(5)).unwrap();
        let seen = Mutex::new(Vec::new());
        let sink = |u: ProgressUpdate| seen.lock().unwrap().push((u.label, u.done, u.total));
        let mut f = LogFollower::default();
        f.pump(d.path(), &sink);
        assert_eq!(seen.lock().unwrap().last(), Some(&("images".into(), 8, 20)));
        // Half a line is held until its newline arrives.
        let mut t0 = std::fs::OpenOptions::new()
            .append(true)
            .open(d.path().join("task-0.log"))
            .unwrap();
        let next = line(10);
        t0.write_all(&next.as_bytes()[..10]).unwrap();
        f.pump(d.path(), &sink);
        assert_eq!(seen.lock().unwrap().len(), 1);
        t0.write_all(&next.as_bytes()[10..]).unwrap();
        f.pump(d.path(), &sink);
        assert_eq!(
            seen.lock().unwrap().last(),
            Some(&("images".into(), 15, 20))
        );
    }
}
