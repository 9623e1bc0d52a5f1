//! The content-addressed cache on disk.
//!
//! ```text
//! cache/
//!   entries/<key>/          one finished stage run; present = complete (it arrives by one rename)
//!     out/                  the stage's outputs (files made read-only)
//!     entry.json            kind, key, binary hash, params, resolved inputs, timings, peak RSS,
//!                           exit status, manifest (every output file with size and blake3)
//!     log.txt               the stage's stdout and stderr
//!     inputs/<name>/        for `{all: stage}` inputs: one link per gathered instance
//!   tmp/<key>.<pid>.<n>/    staging folders of running stages (never trusted)
//!   locks/<key>.lock        per-key advisory locks (flock: released by the kernel when a process dies)
//!   locks/<key>.owner       host, pid, Slurm job and heartbeat of the holder (judged across hosts)
//!   locks/<key>.lease       shared while a running pipeline may read the entry (gc skips it)
//!   latest/<pipeline>/<node>  link to the node's current entry's out/ (stable paths for people)
//!   failed/<key>.log        log of the last failed attempt at a key
//!   resume/<key>/           checkpoints of a training stage that was killed (UDA_RESUME_DIR)
//!   state/                  stat memos of external inputs and binaries, cached --describe output
//!   history/<run>.parquet   one row per node per run
//!   trash/                  entries replaced by --force or found corrupted (removed by gc)
//! ```

use crate::error::{IoContext, Result, RunnerError};
use crate::hashing::{self, Hash, Stat};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The record of an entry, beside its `out/` folder.
pub const ENTRY_FILE: &str = "entry.json";

/// Version of `entry.json`: 2 since keys are computed from input content (see `plan`), and
/// entries may carry an [`Acceptance`].
pub const ENTRY_FORMAT: u32 = 2;

/// The record written next to a stage's outputs (`entry.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EntryMeta {
    pub format: u32,
    pub key: String,
    pub kind: String,
    /// The pipeline and node that first produced this entry (entries are shared by key).
    pub pipeline: String,
    pub node: String,
    pub binary: BinaryRecord,
    pub params: serde_json::Value,
    pub inputs: BTreeMap<String, InputRecord>,
    pub started: String,
    pub started_unix_ms: u64,
    pub duration_s: f64,
    pub peak_rss_bytes: u64,
    pub exit_status: i32,
    /// blake3 over the manifest: what downstream entries record as this entry's content.
    pub outputs_hash: String,
    pub manifest: Vec<ManifestFile>,
    #[serde(default)]
    pub metrics: Option<serde_json::Value>,
    /// Set when the entry was not computed by `binary` but carried over to it (`uda-pipe accept`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted: Option<Acceptance>,
    /// Set when a batch scheduler ran the stage: job ids, final state, queue time, nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<crate::executor::RemoteRecord>,
}

/// Why an entry stands for a build of its stage that did not compute it: someone said, with
/// `uda-pipe accept`, that the code change leaves the results as they are. Never silent:
/// `status`, `show` and the run history say so.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Acceptance {
    /// The entry the outputs come from (made by the old code).
    pub from_key: String,
    /// The binary that computed the outputs.
    pub computed_by: BinaryRecord,
    /// When, RFC 3339.
    pub at: String,
    /// `user@host`.
    pub by: String,
}

impl std::fmt::Display for Acceptance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "accepted {} by {}: computed by the previous build (blake3 {}, entry {}), not rerun",
            self.at,
            self.by,
            &self.computed_by.blake3[..self.computed_by.blake3.len().min(12)],
            &self.from_key[..self.from_key.len().min(12)]
        )
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BinaryRecord {
    pub path: PathBuf,
    pub blake3: String,
}

/// How an input was resolved when the entry was made.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InputRecord {
    Stage {
        node: String,
        key: String,
        subpath: Option<String>,
        outputs_hash: String,
    },
    All {
        members: BTreeMap<String, (String, String)>,
    },
    External {
        path: PathBuf,
        content: String,
        files: usize,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ManifestFile {
    pub path: String,
    pub size: u64,
    pub blake3: String,
    pub mtime_ns: i128,
    pub ino: u64,
}

/// Result of checking an entry against its manifest.
#[derive(Debug, Clone, PartialEq)]
pub enum Verified {
    Ok,
    Missing,
    Corrupt(String),
}

#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    pub fn open(root: &Path) -> Result<Self> {
        for sub in [
            "entries", "tmp", "locks", "latest", "state", "history", "failed",
        ] {
            let d = root.join(sub);
            std::fs::create_dir_all(&d).ctx(|| format!("creating cache folder {}", d.display()))?;
        }
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn entry_dir(&self, key: &str) -> PathBuf {
        self.root.join("entries").join(key)
    }
    /// Where a training stage computing `key` keeps its checkpoints (`UDA_RESUME_DIR`), so a
    /// killed run resumes when the same key is run again; the stage deletes it on success.
    pub fn resume_dir(&self, key: &str) -> PathBuf {
        self.root.join("resume").join(key)
    }

    pub fn out_dir(&self, key: &str) -> PathBuf {
        self.entry_dir(key).join("out")
    }
    pub fn state_dir(&self) -> PathBuf {
        self.root.join("state")
    }
    pub fn history_dir(&self) -> PathBuf {
        self.root.join("history")
    }
    pub fn failed_log(&self, key: &str) -> PathBuf {
        self.root.join("failed").join(format!("{key}.log"))
    }
    pub fn latest_link(&self, pipeline: &str, node: &str) -> PathBuf {
        self.root.join("latest").join(pipeline).join(node)
    }
    /// Where a tree listing of external-input content `hash` is kept (for change reports).
    pub fn tree_listing(&self, content: &str) -> PathBuf {
        self.state_dir()
            .join("trees")
            .join(format!("{content}.tsv"))
    }
    pub fn memo_path(&self, external: &Path) -> PathBuf {
        let h = blake3::hash(external.as_os_str().as_encoded_bytes());
        self.state_dir()
            .join("stat")
            .join(format!("{}.tsv", &h.to_hex()[..24]))
    }

    pub fn read_entry(&self, key: &str) -> Option<EntryMeta> {
        let text = std::fs::read_to_string(self.entry_dir(key).join(ENTRY_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn has_entry(&self, key: &str) -> bool {
        self.entry_dir(key).join(ENTRY_FILE).is_file()
    }

    /// The entry the `latest` link of a node points to.
    pub fn latest_entry(&self, pipeline: &str, node: &str) -> Option<EntryMeta> {
        let target = std::fs::read_link(self.latest_link(pipeline, node)).ok()?;
        let key = target.parent()?.file_name()?.to_string_lossy().into_owned();
        self.read_entry(&key)
    }

    /// Takes the per-key lock, waiting for another process that holds it. `on_wait` is called
    /// once if we have to wait (so the user sees why nothing happens).
    pub fn lock(&self, key: &str, on_wait: impl FnOnce(&str)) -> Result<KeyLock> {
        let path = self.root.join("locks").join(format!("{key}.lock"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .ctx(|| format!("opening lock {}", path.display()))?;
        let mut on_wait = Some(on_wait);
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                if let Some(f) = on_wait.take() {
                    f(holder.trim());
                }
                file.lock()
                    .ctx(|| format!("waiting for lock {}", path.display()))?;
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(RunnerError::io(format!("locking {}", path.display()), e));
            }
        }
        // The owner record: what other hosts of a shared cache judge (see `owner`).
        let owner = path.with_extension("owner");
        crate::owner::acquire(&owner, &crate::owner::SystemProbe, &mut |who| {
            if let Some(f) = on_wait.take() {
                f(who);
            }
        })
        .ctx(|| format!("taking the owner record {}", owner.display()))?;
        // Informational only (who holds it); the kernel lock is what counts.
        let _ = std::fs::write(
            &path,
            format!("pid {} on {}\n", std::process::id(), hostname()),
        );
        // Staging folders of this key left by killed runs: nobody else can be using them now.
        if let Ok(rd) = std::fs::read_dir(self.root.join("tmp")) {
            for e in rd.flatten() {
                if e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{key}."))
                {
                    remove_tree(&e.path());
                }
            }
        }
        Ok(KeyLock { file, owner })
    }

    /// Takes a shared lease on an entry for as long as the returned value lives: a running
    /// pipeline holds one on every entry it may read, and `gc` removes only entries whose lease
    /// it can take exclusively ([`Cache::try_claim`]), so it never deletes what a run relies on.
    pub fn lease(&self, key: &str) -> Result<Lease> {
        let file = self.lease_file(key)?;
        file.lock_shared()
            .ctx(|| format!("taking a lease on entry {key}"))?;
        Ok(Lease { _file: file })
    }

    /// The exclusive lease of an entry, or `None` while a running pipeline holds a shared one.
    pub fn try_claim(&self, key: &str) -> Result<Option<Lease>> {
        let file = self.lease_file(key)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Lease { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(RunnerError::io(
                format!("claiming entry {key} for removal"),
                e,
            )),
        }
    }

    fn lease_file(&self, key: &str) -> Result<File> {
        let path = self.root.join("locks").join(format!("{key}.lease"));
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .ctx(|| format!("opening lease {}", path.display()))
    }

    /// A fresh private staging folder for computing `key` (call with the key's lock held).
    pub fn staging(&self, key: &str) -> Result<PathBuf> {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = self
            .root
            .join("tmp")
            .join(format!("{key}.{}.{n}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .ctx(|| format!("creating staging folder {}", dir.display()))?;
        Ok(dir)
    }

    /// Checks an entry's files against its manifest. Files whose stat is unchanged are trusted
    /// unless `full`; others are re-hashed.
    pub fn verify(&self, key: &str, full: bool) -> Verified {
        let Some(meta) = self.read_entry(key) else {
            return if self.entry_dir(key).exists() {
                Verified::Corrupt("entry.json is missing or unreadable".into())
            } else {
                Verified::Missing
            };
        };
        let out = self.out_dir(key);
        let listing = match hashing::walk(&out) {
            Ok(l) => l,
            Err(e) => return Verified::Corrupt(format!("cannot read out/: {e}")),
        };
        let mut problems = Vec::new();
        let mut present: BTreeMap<&str, (&PathBuf, Stat)> = BTreeMap::new();
        for (rel, p, s) in &listing {
            present.insert(rel.as_str(), (p, *s));
        }
        for f in &meta.manifest {
            match present.remove(f.path.as_str()) {
                None => problems.push(format!("{} is missing", f.path)),
                Some((p, s)) => {
                    if s.size != f.size {
                        problems.push(format!(
                            "{} changed size ({} -> {} bytes)",
                            f.path, f.size, s.size
                        ));
                    } else if full || s.mtime_ns != f.mtime_ns || s.ino != f.ino {
                        match hashing::hash_file(p) {
                            Ok(h) if hashing::hex(&h) == f.blake3 => {}
                            Ok(_) => problems
                                .push(format!("{} was altered (content hash differs)", f.path)),
                            Err(e) => problems.push(format!("{}: {e}", f.path)),
                        }
                    }
                }
            }
        }
        for extra in present.keys() {
            problems.push(format!("{extra} is not in the manifest"));
        }
        if problems.is_empty() {
            Verified::Ok
        } else {
            let n = problems.len();
            problems.truncate(5);
            let more = if n > 5 {
                format!(" (+{} more)", n - 5)
            } else {
                String::new()
            };
            Verified::Corrupt(format!("{}{more}", problems.join("; ")))
        }
    }

    /// Builds the manifest of a finished staging `out/` and makes its files read-only.
    pub fn manifest(out: &Path) -> Result<(Vec<ManifestFile>, String)> {
        let tree = hashing::hash_tree(out)?;
        let mut manifest = Vec::with_capacity(tree.files.len());
        for f in &tree.files {
            let p = out.join(&f.rel);
            let meta = std::fs::metadata(&p).ctx(|| format!("reading {}", p.display()))?;
            let mut perm = meta.permissions();
            if !perm.readonly() {
                perm.set_readonly(true);
                std::fs::set_permissions(&p, perm)
                    .ctx(|| format!("making {} read-only", p.display()))?;
            }
            let s = Stat::of(&meta);
            manifest.push(ManifestFile {
                path: f.rel.clone(),
                size: f.size,
                blake3: hashing::hex(&f.hash),
                mtime_ns: s.mtime_ns,
                ino: s.ino,
            });
        }
        Ok((manifest, hashing::hex(&tree.hash)))
    }

    /// Moves a finished staging folder into place as `entries/<key>` (one rename). An existing
    /// entry (forced rerun, corrupted) is moved to `trash/` first. Call with the key's lock held.
    pub fn commit(&self, staging: &Path, meta: &EntryMeta) -> Result<()> {
        let text = serde_json::to_vec_pretty(meta)
            .map_err(|e| RunnerError::json("writing entry.json", e))?;
        let path = staging.join(ENTRY_FILE);
        std::fs::write(&path, text).ctx(|| format!("writing {}", path.display()))?;
        File::open(&path)
            .and_then(|f| f.sync_all())
            .ctx(|| format!("syncing {}", path.display()))?;
        let dest = self.entry_dir(&meta.key);
        if dest.exists() {
            self.discard(&meta.key)?;
        }
        std::fs::rename(staging, &dest).ctx(|| {
            format!(
                "moving {} into place as {}",
                staging.display(),
                dest.display()
            )
        })?;
        if let Some(parent) = dest.parent() {
            let _ = File::open(parent).and_then(|f| f.sync_all());
        }
        Ok(())
    }

    /// Moves an entry out of the way (into `trash/`) so it is never used again.
    pub fn discard(&self, key: &str) -> Result<PathBuf> {
        let trash = self.root.join("trash");
        std::fs::create_dir_all(&trash).ctx(|| format!("creating {}", trash.display()))?;
        let ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let to = trash.join(format!("{key}.{ms}.{}", std::process::id()));
        std::fs::rename(self.entry_dir(key), &to)
            .ctx(|| format!("moving entry {key} to {}", to.display()))?;
        Ok(to)
    }

    /// Points `latest/<pipeline>/<node>` at the entry's `out/` (relative link, atomic swap).
    pub fn set_latest(&self, pipeline: &str, node: &str, key: &str) -> Result<()> {
        let link = self.latest_link(pipeline, node);
        let dir = link.parent().unwrap_or(self.root.as_path()).to_path_buf();
        std::fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
        let target = PathBuf::from("../../entries").join(key).join("out");
        if std::fs::read_link(&link).ok().as_deref() == Some(target.as_path()) {
            return Ok(());
        }
        let tmp = dir.join(format!(".{node}.tmp-{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&target, &tmp)
            .ctx(|| format!("creating link {}", tmp.display()))?;
        std::fs::rename(&tmp, &link).ctx(|| format!("updating link {}", link.display()))
    }

    /// All entry keys present.
    pub fn keys(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.root.join("entries"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

/// Holds a key's lock until dropped (or until the process dies: the kernel releases flock).
/// A stage started under it inherits the descriptor ([`KeyLock::raw_fd`]), so the lock is held
/// until the last process of the stage ends too.
#[derive(Debug)]
pub struct KeyLock {
    file: File,
    /// `locks/<key>.owner`, removed on drop.
    owner: PathBuf,
}

impl KeyLock {
    pub fn raw_fd(&self) -> i32 {
        use std::os::fd::AsRawFd;
        self.file.as_raw_fd()
    }

    /// The owner record, where the Slurm executor notes the job computing the key.
    pub fn owner_path(&self) -> &Path {
        &self.owner
    }
}

impl Drop for KeyLock {
    fn drop(&mut self) {
        // Before the flock goes with `file`: the next holder on this host finds no record.
        crate::owner::release(&self.owner);
    }
}

/// A lease on an entry (shared: a run reads it; exclusive: gc removes it); released on drop.
#[derive(Debug)]
pub struct Lease {
    _file: File,
}

/// The first symbolic link under a stage's output folder, if any. Outputs must be plain files:
/// a link would make the entry depend on something outside the cache, and making it read-only
/// would change the file it points to.
pub fn find_symlink(out: &Path) -> Option<PathBuf> {
    walkdir::WalkDir::new(out)
        .follow_links(false)
        .into_iter()
        .flatten()
        .find(|e| e.path_is_symlink())
        .map(|e| e.into_path())
}

/// Removes a folder tree even where files were made read-only.
pub fn remove_tree(path: &Path) {
    if std::fs::remove_dir_all(path).is_ok() {
        return;
    }
    for e in walkdir::WalkDir::new(path)
        .contents_first(false)
        .into_iter()
        .flatten()
    {
        if e.file_type().is_dir() {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(0o755));
        }
    }
    let _ = std::fs::remove_dir_all(path);
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".into())
}

/// The cache key: blake3 over a canonical JSON document (sorted keys, canonical numbers).
pub fn key_of(doc: &serde_json::Value) -> String {
    // Keys are sorted explicitly: serde-saphyr turns on serde_json's `preserve_order`, so a map
    // would otherwise serialise in insertion (YAML) order and reordering params would change keys.
    let text = serde_json::to_vec(&sorted_keys(doc)).unwrap_or_default();
    hashing::hex(blake3::hash(&text).as_bytes())[..32].to_string()
}

/// A copy of `v` whose objects list their keys in sorted order, at every depth.
fn sorted_keys(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => {
            let mut entries: Vec<_> = m.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            serde_json::Value::Object(
                entries
                    .into_iter()
                    .map(|(k, x)| (k.clone(), sorted_keys(x)))
                    .collect(),
            )
        }
        serde_json::Value::Array(a) => {
            serde_json::Value::Array(a.iter().map(sorted_keys).collect())
        }
        other => other.clone(),
    }
}

pub fn hash_hex(h: &Hash) -> String {
    hashing::hex(h)
}

/// RFC 3339 UTC time of a Unix timestamp in milliseconds.
pub fn rfc3339(unix_ms: u64) -> String {
    let secs = (unix_ms / 1000) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        unix_ms % 1000
    )
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(1_764_201_600_000), "2025-11-27T00:00:00.000Z");
    }

    #[test]
    fn keys_are_independent_of_map_order() {
        let a = serde_json::json!({"a": 1, "b": {"x": 1.0, "y": [1, 2]}});
        let b: serde_json::Value =
            serde_json::from_str(r#"{"b": {"y": [1, 2], "x": 1.0}, "a": 1}"#).unwrap();
        assert_eq!(key_of(&a), key_of(&b));
        assert_ne!(key_of(&a), key_of(&serde_json::json!({"a": 2})));
    }

    #[test]
    fn commit_verify_and_detect_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let key = "k1";
        let _lock = cache.lock(key, |_| panic!("nobody else holds it")).unwrap();
        let staging = cache.staging(key).unwrap();
        std::fs::create_dir_all(staging.join("out/sub")).unwrap();
        std::fs::write(staging.join("out/a.txt"), "hello").unwrap();
        std::fs::write(staging.join("out/sub/b.txt"), "world").unwrap();
        let (manifest, outputs_hash) = Cache::manifest(&staging.join("out")).unwrap();
        let meta = EntryMeta {
            format: ENTRY_FORMAT,
            key: key.into(),
            kind: "k".into(),
            pipeline: "p".into(),
            node: "n".into(),
            binary: BinaryRecord {
                path: "/bin/true".into(),
                blake3: "00".into(),
            },
            params: serde_json::json!({}),
            inputs: BTreeMap::new(),
            started: rfc3339(0),
            started_unix_ms: 0,
            duration_s: 0.0,
            peak_rss_bytes: 0,
            exit_status: 0,
            outputs_hash,
            manifest,
            metrics: None,
            accepted: None,
            scheduler: None,
        };
        cache.commit(&staging, &meta).unwrap();
        assert!(!staging.exists());
        assert_eq!(cache.verify(key, false), Verified::Ok);
        assert_eq!(cache.verify(key, true), Verified::Ok);
        cache.set_latest("p", "n", key).unwrap();
        assert_eq!(cache.latest_entry("p", "n").unwrap().key, key);
        assert_eq!(
            std::fs::read_to_string(cache.latest_link("p", "n").join("a.txt")).unwrap(),
            "hello"
        );

        // Same size, different bytes: caught by the stat change and a re-hash.
        let a = cache.out_dir(key).join("a.txt");
        std::fs::set_permissions(&a, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&a, "HELLO").unwrap();
        match cache.verify(key, false) {
            Verified::Corrupt(m) => assert!(m.contains("a.txt was altered"), "{m}"),
            v => panic!("not detected: {v:?}"),
        }
        std::fs::remove_file(cache.out_dir(key).join("sub/b.txt")).unwrap();
        match cache.verify(key, false) {
            Verified::Corrupt(m) => assert!(m.contains("sub/b.txt is missing"), "{m}"),
            v => panic!("not detected: {v:?}"),
        }
        cache.discard(key).unwrap();
        assert_eq!(cache.verify(key, false), Verified::Missing);
    }
}
