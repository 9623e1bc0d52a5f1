//! Who computes a key, in a form every host of a shared cache can judge: `locks/<key>.owner`.
//!
//! The per-key `flock` is exact on one machine, but over NFS it is only as good as the server's
//! lock manager, and a pid means nothing on another host. So beside it, the runner creates an
//! owner record with `O_EXCL` (atomic on NFSv3 and later) holding its host, pid, the Slurm job
//! computing the entry, and a heartbeat it rewrites every [`HEARTBEAT`]. A record is **stale**,
//! and may be taken over, only when:
//! - its Slurm job (if any) is no longer pending or running, as Slurm says (`squeue`); and
//! - on this host: its pid is gone; on another host: its heartbeat is older than
//!   [`STALE_AFTER`] (the owner stopped beating: killed, or its host died).
//!
//! A job that outlived its killed submitter therefore keeps the key until Slurm ends it, and a
//! live owner on another host is never judged by a pid.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// How often a holder rewrites its heartbeat.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// A record from another host whose heartbeat is older than this is stale (unless its Slurm
/// job still runs).
pub const STALE_AFTER: Duration = Duration::from_secs(60);

/// The content of `locks/<key>.owner`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OwnerRecord {
    pub host: String,
    pub pid: u32,
    /// The Slurm job computing the entry, once submitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    pub since_ms: u64,
    pub heartbeat_ms: u64,
}

impl OwnerRecord {
    fn mine() -> Self {
        let now = crate::cache::now_ms();
        Self {
            host: crate::cache::hostname(),
            pid: std::process::id(),
            job: None,
            since_ms: now,
            heartbeat_ms: now,
        }
    }

    /// For "waiting for ..." messages.
    pub fn describe(&self) -> String {
        match &self.job {
            Some(j) => format!("pid {} on {}, Slurm job {j}", self.pid, self.host),
            None => format!("pid {} on {}", self.pid, self.host),
        }
    }
}

/// What a judge needs to know about the world; real answers in [`SystemProbe`].
pub trait Probe {
    fn this_host(&self) -> String;
    fn pid_alive(&self, pid: u32) -> bool;
    /// `Some(true)` while Slurm has the job pending or running; `None` when Slurm cannot say.
    fn job_active(&self, job: &str) -> Option<bool>;
    fn now_ms(&self) -> u64;
}

/// Whether a record may be taken over (see the module docs).
pub fn is_stale(r: &OwnerRecord, probe: &dyn Probe) -> bool {
    // A job Slurm still has pending or running may be writing the staging folder.
    if let Some(job) = &r.job
        && probe.job_active(job) == Some(true)
    {
        return false;
    }
    if r.host == probe.this_host() {
        return !probe.pid_alive(r.pid);
    }
    probe.now_ms().saturating_sub(r.heartbeat_ms) > STALE_AFTER.as_millis() as u64
}

/// The real host, `/proc` and `squeue`.
#[derive(Debug)]
pub struct SystemProbe;

impl Probe for SystemProbe {
    fn this_host(&self) -> String {
        crate::cache::hostname()
    }
    fn pid_alive(&self, pid: u32) -> bool {
        Path::new(&format!("/proc/{pid}")).exists()
    }
    fn job_active(&self, job: &str) -> Option<bool> {
        crate::slurm::job_active(job)
    }
    fn now_ms(&self) -> u64 {
        crate::cache::now_ms()
    }
}

/// Records this process holds, rewritten by the heartbeat thread.
fn held() -> &'static Mutex<BTreeMap<PathBuf, OwnerRecord>> {
    static HELD: OnceLock<Mutex<BTreeMap<PathBuf, OwnerRecord>>> = OnceLock::new();
    HELD.get_or_init(|| {
        std::thread::spawn(|| {
            loop {
                std::thread::sleep(HEARTBEAT);
                beat();
            }
        });
        Mutex::new(BTreeMap::new())
    })
}

fn beat() {
    let Ok(mut m) = held().lock() else { return };
    let now = crate::cache::now_ms();
    for (path, rec) in m.iter_mut() {
        rec.heartbeat_ms = now;
        let _ = write_record(path, rec);
    }
}

fn write_record(path: &Path, r: &OwnerRecord) -> std::io::Result<()> {
    // Rewritten through a rename so that a reader never sees half a record.
    let tmp = path.with_extension(format!("owner.{}", std::process::id()));
    std::fs::write(&tmp, serde_json::to_vec(r).unwrap_or_default())?;
    std::fs::rename(&tmp, path)
}

pub fn read(path: &Path) -> Option<OwnerRecord> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Whether a record may be taken over by a process that holds the key's `flock` on this host:
/// then no live `uda-pipe` here holds the key, so a record from this host is a dead one's even
/// if its pid now belongs to another process (pids are reused), unless its Slurm job still runs.
pub fn is_stale_under_flock(r: &OwnerRecord, probe: &dyn Probe) -> bool {
    if r.host == probe.this_host() {
        return r
            .job
            .as_deref()
            .is_none_or(|j| probe.job_active(j) != Some(true));
    }
    is_stale(r, probe)
}

/// Creates the owner record, waiting while a live owner holds it (`on_wait` once, with who).
/// Call it holding the key's `flock` (records from this host are judged by
/// [`is_stale_under_flock`]).
pub fn acquire(
    path: &Path,
    probe: &dyn Probe,
    on_wait: &mut dyn FnMut(&str),
) -> std::io::Result<()> {
    let mut told = false;
    loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
        {
            Ok(mut f) => {
                let rec = OwnerRecord::mine();
                f.write_all(&serde_json::to_vec(&rec).unwrap_or_default())?;
                if let Ok(mut m) = held().lock() {
                    m.insert(path.to_path_buf(), rec);
                }
                return Ok(());
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                match read(path) {
                    Some(r) if !is_stale_under_flock(&r, probe) => {
                        if !told {
                            on_wait(&r.describe());
                            told = true;
                        }
                    }
                    // Stale, or unreadable (being rewritten, or garbage): a garbage record
                    // older than STALE_AFTER is removed; a fresh one may be mid-rename.
                    Some(_) => {
                        let _ = std::fs::remove_file(path);
                        continue;
                    }
                    None => {
                        let old = std::fs::metadata(path)
                            .and_then(|m| m.modified())
                            .ok()
                            .and_then(|t| t.elapsed().ok())
                            .is_some_and(|age| age > STALE_AFTER);
                        if old {
                            let _ = std::fs::remove_file(path);
                            continue;
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Notes the Slurm job computing the key (staleness is then judged from its state).
pub fn set_job(path: &Path, job: &str) {
    if let Ok(mut m) = held().lock()
        && let Some(rec) = m.get_mut(path)
    {
        rec.job = Some(job.to_string());
        rec.heartbeat_ms = crate::cache::now_ms();
        let _ = write_record(path, rec);
    }
}

/// Removes the record (when the key's lock is released).
pub fn release(path: &Path) {
    if let Ok(mut m) = held().lock() {
        m.remove(path);
    }
    // Only our own: a record another process took over after judging ours stale stays.
    if read(path).is_some_and(|r| r.pid == std::process::id() && r.host == crate::cache::hostname())
    {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake {
        host: &'static str,
        alive: bool,
        job: Option<bool>,
        now: u64,
    }

    impl Probe for Fake {
        fn this_host(&self) -> String {
            self.host.into()
        }
        fn pid_alive(&self, _: u32) -> bool {
            self.alive
        }
        fn job_active(&self, _: &str) -> Option<bool> {
            self.job
        }
        fn now_ms(&self) -> u64 {
            self.now
        }
    }

    fn rec(host: &str, job: Option<&str>, heartbeat_ms: u64) -> OwnerRecord {
        OwnerRecord {
            host: host.into(),
            pid: 42,
            job: job.map(str::to_string),
            since_ms: 0,
            heartbeat_ms,
        }
    }

    #[test]
    fn staleness_on_this_host_is_the_pid() {
        let p = |alive| Fake {
            host: "a",
            alive,
            job: None,
            now: 10_000_000,
        };
        assert!(!is_stale(&rec("a", None, 0), &p(true)));
        assert!(is_stale(&rec("a", None, 0), &p(false)));
    }

    #[test]
    fn another_host_is_judged_by_heartbeat_not_pid() {
        let now = 10_000_000;
        // The pid "is dead" here, but it is another host's pid: only the heartbeat counts.
        let p = Fake {
            host: "a",
            alive: false,
            job: None,
            now,
        };
        assert!(!is_stale(&rec("b", None, now - 5_000), &p));
        assert!(is_stale(&rec("b", None, now - 61_000), &p));
    }

    #[test]
    fn a_running_job_keeps_the_key_after_its_submitter_died() {
        let now = 10_000_000;
        let running = Fake {
            host: "a",
            alive: false,
            job: Some(true),
            now,
        };
        assert!(!is_stale(&rec("a", Some("7"), 0), &running));
        assert!(!is_stale(&rec("b", Some("7"), 0), &running));
        let ended = Fake {
            host: "a",
            alive: false,
            job: Some(false),
            now,
        };
        assert!(is_stale(&rec("a", Some("7"), 0), &ended));
        assert!(is_stale(&rec("b", Some("7"), 0), &ended));
        // Slurm cannot be asked: fall back to pid / heartbeat.
        let unknown = Fake {
            host: "a",
            alive: true,
            job: None,
            now,
        };
        assert!(!is_stale(&rec("a", Some("7"), 0), &unknown));
    }

    #[test]
    fn under_the_flock_a_record_of_this_host_is_stale_even_if_its_pid_was_reused() {
        let reused = Fake {
            host: "a",
            alive: true,
            job: None,
            now: 0,
        };
        assert!(!is_stale(&rec("a", None, 0), &reused));
        assert!(is_stale_under_flock(&rec("a", None, 0), &reused));
        // ... but not while its Slurm job runs, and other hosts are judged as ever.
        let running = Fake {
            host: "a",
            alive: true,
            job: Some(true),
            now: 0,
        };
        assert!(!is_stale_under_flock(&rec("a", Some("7"), 0), &running));
        assert!(!is_stale_under_flock(&rec("b", None, 0), &reused));
    }

    #[test]
    fn acquire_waits_for_a_live_owner_and_takes_a_stale_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.owner");
        let other = rec("elsewhere", None, crate::cache::now_ms());
        std::fs::write(&path, serde_json::to_vec(&other).unwrap()).unwrap();
        // A live owner elsewhere: the waiter is told who, and waits until the record goes.
        let remover = {
            let path = path.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(700));
                std::fs::remove_file(path).unwrap();
            })
        };
        let mut told = Vec::new();
        acquire(&path, &SystemProbe, &mut |w| told.push(w.to_string())).unwrap();
        remover.join().unwrap();
        assert_eq!(told, vec!["pid 42 on elsewhere".to_string()]);
        assert_eq!(read(&path).unwrap().pid, std::process::id());
        release(&path);
        assert!(!path.exists());
        // A stale one (dead heartbeat elsewhere) is taken over at once.
        std::fs::write(
            &path,
            serde_json::to_vec(&rec("elsewhere", None, 0)).unwrap(),
        )
        .unwrap();
        let mut told = Vec::new();
        acquire(&path, &SystemProbe, &mut |w| told.push(w.to_string())).unwrap();
        assert!(told.is_empty(), "{told:?}");
        release(&path);
    }
}
