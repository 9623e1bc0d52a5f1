//! Following every job of a run with one batched `sacct` call per poll interval (and, where
//! `sacct` cannot see pending or running jobs, one `squeue` call), never a call per job:
//! cluster admins ask for exactly this, because hundreds of users polling per job flood
//! `slurmctld`.
//!
//! One thread polls; each stage's thread waits on [`Tracker::wait`] for the next poll and reads
//! what it needs from the snapshot.

use super::state::{
    SACCT_FIELDS, SQUEUE_FORMAT, SacctRecord, SqueueRecord, parse_sacct, parse_squeue,
};
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How `sacct` can be asked on this cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accounting {
    /// Not known yet (the first poll finds out).
    Unknown,
    /// slurmdbd: plain `sacct` knows every job and its steps.
    Database,
    /// No slurmdbd: `sacct -c` reads the jobcomp log (ended jobs only).
    JobComp,
}

/// What the last poll saw.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// Polls done so far (a waiter asks for a poll newer than the one it has seen).
    pub polls: u64,
    pub sacct: Vec<SacctRecord>,
    pub squeue: Vec<SqueueRecord>,
    /// The squeue call of the last poll failed (so absence from it means nothing).
    pub squeue_failed: bool,
    /// The last error of a poll command, for messages.
    pub error: Option<String>,
    /// The ids this poll asked about: a snapshot from a poll that started before a job was
    /// tracked says nothing about it.
    pub queried: BTreeSet<String>,
}

impl Snapshot {
    pub fn sacct_of(&self, id: &str) -> Option<&SacctRecord> {
        self.sacct.iter().find(|r| r.job_id == id)
    }

    /// Rows of `squeue` for a job, or for every task of an array job.
    pub fn queued(&self, id: &str) -> impl Iterator<Item = &SqueueRecord> {
        self.squeue
            .iter()
            .filter(move |r| r.job_id == id || r.array_id == id)
    }
}

struct State {
    /// Job ids to ask about (array job ids, array tasks' own ids, single jobs).
    ids: BTreeMap<String, usize>,
    snapshot: Snapshot,
    stop: bool,
}

/// The shared poller of one `uda-pipe run`.
pub struct Tracker {
    inner: Arc<(Mutex<State>, Condvar)>,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tracker")
    }
}

impl Tracker {
    /// Starts the polling thread; it sleeps while nothing is tracked.
    pub fn start(interval: Duration) -> Tracker {
        let inner = Arc::new((
            Mutex::new(State {
                ids: BTreeMap::new(),
                snapshot: Snapshot::default(),
                stop: false,
            }),
            Condvar::new(),
        ));
        let accounting = Arc::new(Mutex::new(Accounting::Unknown));
        let i = Arc::clone(&inner);
        std::thread::spawn(move || poll_loop(&i, &accounting, interval));
        Tracker { inner }
    }

    /// Includes `id` in every poll until [`Tracker::forget`] (counted: two users of one id).
    pub fn track(&self, id: &str) {
        let (m, c) = &*self.inner;
        if let Ok(mut s) = m.lock() {
            *s.ids.entry(id.to_string()).or_insert(0) += 1;
            c.notify_all();
        }
    }

    pub fn forget(&self, id: &str) {
        let (m, _) = &*self.inner;
        if let Ok(mut s) = m.lock()
            && let Some(n) = s.ids.get_mut(id)
        {
            *n -= 1;
            if *n == 0 {
                s.ids.remove(id);
            }
        }
    }

    /// The snapshot of the first poll after `seen`, or the current one after `timeout` (so a
    /// waiter can look at cancel signals and logs in between).
    pub fn wait(&self, seen: u64, timeout: Duration) -> Snapshot {
        let (m, c) = &*self.inner;
        let Ok(guard) = m.lock() else {
            return Snapshot::default();
        };
        let (guard, _) = c
            .wait_timeout_while(guard, timeout, |s| s.snapshot.polls <= seen && !s.stop)
            .unwrap_or_else(|e| e.into_inner());
        guard.snapshot.clone()
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        let (m, c) = &*self.inner;
        if let Ok(mut s) = m.lock() {
            s.stop = true;
            c.notify_all();
        }
    }
}

fn poll_loop(inner: &(Mutex<State>, Condvar), accounting: &Mutex<Accounting>, interval: Duration) {
    let (m, c) = inner;
    let mut last = Instant::now() - interval;
    loop {
        // Wait for something to track and for the interval to pass since the last poll.
        let ids: Vec<String> = {
            let Ok(mut s) = m.lock() else { return };
            while s.ids.is_empty() && !s.stop {
                s = match c.wait(s) {
                    Ok(g) => g,
                    Err(_) => return,
                };
            }
            if s.stop {
                return;
            }
            s.ids.keys().cloned().collect()
        };
        let since = last.elapsed();
        if since < interval {
            std::thread::sleep(interval - since);
        }
        last = Instant::now();
        let mut snap = poll_once(&ids, accounting);
        snap.queried = ids.into_iter().collect();
        let Ok(mut s) = m.lock() else { return };
        let polls = s.snapshot.polls + 1;
        s.snapshot = Snapshot { polls, ..snap };
        c.notify_all();
    }
}

/// One poll: one `sacct` for all ids; one `squeue` when `sacct` cannot see every job.
pub fn poll_once(ids: &[String], accounting: &Mutex<Accounting>) -> Snapshot {
    let mut snap = Snapshot::default();
    let mode = accounting.lock().map(|a| *a).unwrap_or(Accounting::Unknown);
    let run = |mode: Accounting| {
        let mut cmd = Command::new("sacct");
        if mode == Accounting::JobComp {
            cmd.arg("-c");
        }
        cmd.args(["-n", "-P", "-o", SACCT_FIELDS, "-j"])
            .arg(ids.join(","));
        cmd.output()
    };
    let out = run(if mode == Accounting::Unknown {
        Accounting::Database
    } else {
        mode
    });
    let mut mode = mode;
    match out {
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            if mode != Accounting::JobComp && err.contains("accounting storage is disabled") {
                mode = Accounting::JobComp;
                if let Ok(o) = run(mode) {
                    snap.sacct = parse_sacct(&String::from_utf8_lossy(&o.stdout));
                }
            } else {
                if mode == Accounting::Unknown && o.status.success() {
                    mode = Accounting::Database;
                }
                // Rows come with complaints on stderr too (jobcomp's array fields), so what
                // parses counts; the message is kept for when nothing does.
                snap.sacct = parse_sacct(&String::from_utf8_lossy(&o.stdout));
                if !o.status.success() && snap.sacct.is_empty() {
                    snap.error = Some(format!("sacct: {}", err.trim()));
                }
            }
        }
        Err(e) => snap.error = Some(format!("cannot run sacct: {e}")),
    }
    if let Ok(mut a) = accounting.lock() {
        *a = mode;
    }
    // Jobs sacct has no ended record of: ask squeue (all states: it keeps ended jobs a while).
    let ended: BTreeSet<&str> = snap
        .sacct
        .iter()
        .filter(|r| r.state.is_terminal())
        .map(|r| r.job_id.as_str())
        .collect();
    if ids.iter().any(|id| !ended.contains(id.as_str())) {
        let user = std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| own_uid().to_string());
        match Command::new("squeue")
            .args(["-h", "-t", "all", "-u", &user, "-o", SQUEUE_FORMAT])
            .output()
        {
            Ok(o) if o.status.success() => {
                snap.squeue = parse_squeue(&String::from_utf8_lossy(&o.stdout));
            }
            Ok(o) => {
                snap.squeue_failed = true;
                snap.error = Some(format!(
                    "squeue: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ));
            }
            Err(e) => {
                snap.squeue_failed = true;
                snap.error = Some(format!("cannot run squeue: {e}"));
            }
        }
    }
    snap
}

/// This process's user id (for `squeue -u` when `$USER` is not set, as under some batch
/// systems and containers): the owner of `/proc/self`.
fn own_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0)
}
