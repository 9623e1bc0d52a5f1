//! Content hashes of files and folders, with a stat memo so unchanged data is not re-read.
//!
//! A folder's hash is blake3 over its sorted file list (relative path, size, blake3 of the
//! content). Re-hashing a 25,000-file dataset on every `uda-pipe run` would take minutes, so each
//! file's hash is remembered together with its (size, mtime, ctime, inode): a file whose stat is
//! unchanged keeps its hash, and an unchanged dataset costs one directory walk.
//!
//! The memo is only trusted for files that were already older than the hashing run by more than
//! [`RACY_WINDOW`] (the "racy git" problem): a file written in the same timestamp tick as it was
//! hashed could be rewritten again with an identical stat, so such files are hashed again next time.

use crate::error::{IoContext, Result, RunnerError};
use rayon::prelude::*;
use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Files modified less than this before hashing started are not memoised.
pub const RACY_WINDOW: Duration = Duration::from_millis(100);

pub type Hash = [u8; 32];

pub fn hex(h: &Hash) -> String {
    blake3::Hash::from_bytes(*h).to_hex().to_string()
}

/// The stat fields that must all be unchanged for a remembered hash to be reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
    pub ino: u64,
}

impl Stat {
    pub fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            size: meta.len(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
            ctime_ns: meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
            ino: meta.ino(),
        }
    }
}

pub fn hash_file(path: &Path) -> Result<Hash> {
    let mut h = blake3::Hasher::new();
    let meta = std::fs::metadata(path).ctx(|| format!("reading {}", path.display()))?;
    // mmap + rayon pays off only for big files; small ones are read directly.
    if meta.len() > 4 << 20 {
        h.update_mmap_rayon(path)
            .ctx(|| format!("hashing {}", path.display()))?;
    } else {
        let bytes = std::fs::read(path).ctx(|| format!("reading {}", path.display()))?;
        h.update(&bytes);
    }
    Ok(*h.finalize().as_bytes())
}

/// One file of a tree listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    pub rel: String,
    pub size: u64,
    pub hash: Hash,
}

/// The hash of a sorted file listing (what identifies a folder's content).
pub fn tree_hash(files: &[FileEntry]) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(b"uda-tree-v1\n");
    for f in files {
        h.update(f.rel.as_bytes());
        h.update(&[0]);
        h.update(&f.size.to_le_bytes());
        h.update(&f.hash);
    }
    *h.finalize().as_bytes()
}

/// Lists the regular files under `root` (following symlinks), sorted, with their stats.
/// A single file is listed as itself with an empty relative path.
///
/// Directories are read one by one (the file type comes from `readdir`, no `stat` needed) and the
/// files are then `stat`ed in parallel: on a 25,000-file dataset the stats are most of the cost.
pub fn walk(root: &Path) -> Result<Listing> {
    Ok(walk_with_empty_dirs(root)?.0)
}

/// Files of a tree: (relative path, full path, stat), sorted by relative path.
pub type Listing = Vec<(String, PathBuf, Stat)>;

/// [`walk`], plus the relative paths of the folders that hold nothing at all (sorted): an
/// external input's identity includes them, since a stage may treat "folder exists" as data.
pub fn walk_with_empty_dirs(root: &Path) -> Result<(Listing, Vec<String>)> {
    let meta = std::fs::metadata(root).ctx(|| format!("reading {}", root.display()))?;
    if meta.is_file() {
        return Ok((
            vec![(String::new(), root.to_path_buf(), Stat::of(&meta))],
            Vec::new(),
        ));
    }
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    let mut empty = Vec::new();
    let mut seen_dirs = std::collections::HashSet::new();
    seen_dirs.insert((meta.dev(), meta.ino()));
    list_dir(root, "", &mut files, &mut empty, &mut seen_dirs)?;
    empty.sort();
    let mut out: Listing = files
        .into_par_iter()
        .map(|(rel, path)| {
            let meta = std::fs::metadata(&path).ctx(|| format!("reading {}", path.display()))?;
            Ok((rel, path, Stat::of(&meta)))
        })
        .collect::<Result<_>>()?;
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((out, empty))
}

fn list_dir(
    dir: &Path,
    rel: &str,
    files: &mut Vec<(String, PathBuf)>,
    empty: &mut Vec<String>,
    seen: &mut std::collections::HashSet<(u64, u64)>,
) -> Result<()> {
    let rd = std::fs::read_dir(dir).ctx(|| format!("reading folder {}", dir.display()))?;
    let mut has_entries = false;
    for e in rd {
        has_entries = true;
        let e = e.ctx(|| format!("reading folder {}", dir.display()))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let child_rel = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let path = e.path();
        let ft = e
            .file_type()
            .ctx(|| format!("reading {}", path.display()))?;
        let is_dir = if ft.is_symlink() {
            // Follow links; a dangling link is an error (the input is incomplete).
            let m =
                std::fs::metadata(&path).ctx(|| format!("following link {}", path.display()))?;
            if m.is_dir() && !seen.insert((m.dev(), m.ino())) {
                return Err(RunnerError::io(
                    format!("walking {}", path.display()),
                    std::io::Error::other("symlink loop (or one folder linked twice)"),
                ));
            }
            if !m.is_dir() && !m.is_file() {
                continue;
            }
            m.is_dir()
        } else {
            ft.is_dir()
        };
        if is_dir {
            list_dir(&path, &child_rel, files, empty, seen)?;
        } else if ft.is_file() || ft.is_symlink() {
            files.push((child_rel, path));
        }
    }
    if !has_entries && !rel.is_empty() {
        empty.push(rel.to_string());
    }
    Ok(())
}

/// A stat memo for one tree, stored as a small text file under the cache's `state/` folder.
#[derive(Debug, Default)]
pub struct Memo {
    entries: HashMap<String, (Stat, Hash)>,
}

impl Memo {
    pub fn load(path: &Path) -> Self {
        let Ok(text) = std::fs::read_to_string(path) else {
            return Self::default();
        };
        let mut entries = HashMap::new();
        for line in text.lines().skip(1) {
            let mut f = line.splitn(6, '\t');
            let (Some(h), Some(size), Some(m), Some(c), Some(ino), Some(rel)) =
                (f.next(), f.next(), f.next(), f.next(), f.next(), f.next())
            else {
                continue;
            };
            let (Ok(h), Ok(size), Ok(m), Ok(c), Ok(ino)) = (
                blake3::Hash::from_hex(h),
                size.parse(),
                m.parse(),
                c.parse(),
                ino.parse(),
            ) else {
                continue;
            };
            entries.insert(
                rel.to_string(),
                (
                    Stat {
                        size,
                        mtime_ns: m,
                        ctime_ns: c,
                        ino,
                    },
                    *h.as_bytes(),
                ),
            );
        }
        Self { entries }
    }

    /// Writes atomically (temp file + rename), so concurrent runs never see half a memo.
    pub fn save(&self, path: &Path, header: &str) -> Result<()> {
        let mut rows: Vec<_> = self.entries.iter().collect();
        rows.sort_by(|a, b| a.0.cmp(b.0));
        let mut buf = Vec::with_capacity(rows.len() * 120);
        writeln!(buf, "# {header}").ok();
        for (rel, (s, h)) in rows {
            writeln!(
                buf,
                "{}\t{}\t{}\t{}\t{}\t{}",
                blake3::Hash::from_bytes(*h).to_hex(),
                s.size,
                s.mtime_ns,
                s.ctime_ns,
                s.ino,
                rel
            )
            .ok();
        }
        write_atomic(path, &buf)
    }
}

/// Writes a file via a unique temp file in the same folder and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{:?}",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&tmp, bytes).ctx(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).ctx(|| format!("moving {} into place", path.display()))
}

/// Result of hashing a tree.
#[derive(Debug, Clone)]
pub struct TreeHash {
    pub hash: Hash,
    pub files: Vec<FileEntry>,
    /// How many files were actually read (the rest came from the memo).
    pub rehashed: usize,
}

/// Hashes a file or folder, reusing and updating the memo at `memo_path`.
pub fn hash_tree_memo(root: &Path, memo_path: &Path) -> Result<TreeHash> {
    let started = SystemTime::now();
    let racy_after: i128 = started
        .checked_sub(RACY_WINDOW)
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0);
    let (listing, empty_dirs) = walk_with_empty_dirs(root)?;
    let memo = Memo::load(memo_path);
    let hashed: Vec<Result<(FileEntry, Stat, bool)>> = listing
        .par_iter()
        .map(|(rel, path, stat)| {
            if let Some((s, h)) = memo.entries.get(rel)
                && s == stat
            {
                return Ok((
                    FileEntry {
                        rel: rel.clone(),
                        size: stat.size,
                        hash: *h,
                    },
                    *stat,
                    false,
                ));
            }
            let hash = hash_file(path)?;
            Ok((
                FileEntry {
                    rel: rel.clone(),
                    size: stat.size,
                    hash,
                },
                *stat,
                true,
            ))
        })
        .collect();
    let mut files = Vec::with_capacity(hashed.len());
    let mut fresh = Memo::default();
    let mut rehashed = 0;
    for r in hashed {
        let (entry, stat, was_read) = r?;
        rehashed += usize::from(was_read);
        if stat.mtime_ns < racy_after && stat.ctime_ns < racy_after {
            fresh.entries.insert(entry.rel.clone(), (stat, entry.hash));
        }
        files.push(entry);
    }
    let changed_memo = rehashed > 0 || fresh.entries.len() != memo.entries.len();
    if changed_memo {
        fresh.save(memo_path, &root.display().to_string())?;
    }
    Ok(TreeHash {
        hash: with_empty_dirs(tree_hash(&files), &empty_dirs),
        files,
        rehashed,
    })
}

/// Folds empty folders into a tree hash; a tree without any keeps its plain [`tree_hash`], so
/// the cache keys of existing inputs do not change.
fn with_empty_dirs(hash: Hash, empty_dirs: &[String]) -> Hash {
    if empty_dirs.is_empty() {
        return hash;
    }
    let mut h = blake3::Hasher::new();
    h.update(b"uda-tree-empty-dirs-v1\n");
    h.update(&hash);
    for d in empty_dirs {
        h.update(d.as_bytes());
        h.update(&[0]);
    }
    *h.finalize().as_bytes()
}

/// Hashes a tree without any memo (used to verify cache entries on `--verify`).
pub fn hash_tree(root: &Path) -> Result<TreeHash> {
    let listing = walk(root)?;
    let files: Vec<FileEntry> = listing
        .par_iter()
        .map(|(rel, path, stat)| {
            Ok(FileEntry {
                rel: rel.clone(),
                size: stat.size,
                hash: hash_file(path)?,
            })
        })
        .collect::<Result<_>>()?;
    Ok(TreeHash {
        hash: tree_hash(&files),
        rehashed: files.len(),
        files,
    })
}

/// What differs between two listings, in words (for "why does this rerun").
pub fn describe_changes(old: &[(String, Hash)], new: &[FileEntry], limit: usize) -> String {
    let old_map: HashMap<&str, &Hash> = old.iter().map(|(r, h)| (r.as_str(), h)).collect();
    let new_map: HashMap<&str, &Hash> = new.iter().map(|f| (f.rel.as_str(), &f.hash)).collect();
    let mut changed = Vec::new();
    let mut added = Vec::new();
    let mut removed = Vec::new();
    for f in new {
        match old_map.get(f.rel.as_str()) {
            None => added.push(f.rel.as_str()),
            Some(h) if **h != f.hash => changed.push(f.rel.as_str()),
            _ => {}
        }
    }
    for (r, _) in old {
        if !new_map.contains_key(r.as_str()) {
            removed.push(r.as_str());
        }
    }
    let part = |what: &str, v: &[&str]| -> Option<String> {
        if v.is_empty() {
            return None;
        }
        let shown: Vec<&str> = v
            .iter()
            .take(limit)
            .copied()
            .map(|s| if s.is_empty() { "(the file)" } else { s })
            .collect();
        let more = if v.len() > limit {
            format!(", +{} more", v.len() - limit)
        } else {
            String::new()
        };
        Some(format!("{} {what} ({}{more})", v.len(), shown.join(", ")))
    };
    let parts: Vec<String> = [
        part("changed", &changed),
        part("added", &added),
        part("removed", &removed),
    ]
    .into_iter()
    .flatten()
    .collect();
    if parts.is_empty() {
        "content changed".into()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memo_skips_unchanged_files_and_notices_edits() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        for i in 0..20 {
            std::fs::write(
                root.join("sub").join(format!("{i}.txt")),
                format!("file {i}"),
            )
            .unwrap();
        }
        std::thread::sleep(RACY_WINDOW * 2);
        let memo = dir.path().join("memo.tsv");
        let a = hash_tree_memo(&root, &memo).unwrap();
        assert_eq!(a.rehashed, 20);
        let b = hash_tree_memo(&root, &memo).unwrap();
        assert_eq!((b.rehashed, b.hash), (0, a.hash));
        assert_eq!(hash_tree(&root).unwrap().hash, a.hash);

        std::fs::write(root.join("sub/3.txt"), "edited").unwrap();
        let c = hash_tree_memo(&root, &memo).unwrap();
        assert_ne!(c.hash, a.hash);
        assert_eq!(c.rehashed, 1);
        let old: Vec<(String, Hash)> = a.files.iter().map(|f| (f.rel.clone(), f.hash)).collect();
        assert_eq!(describe_changes(&old, &c.files, 5), "1 changed (sub/3.txt)");
    }

    #[test]
    fn freshly_written_files_are_not_trusted_from_the_memo() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f.txt");
        std::fs::write(&f, "one").unwrap();
        let memo = dir.path().join("memo.tsv");
        hash_tree_memo(&f, &memo).unwrap();
        // Written within the racy window: the next run must read it again.
        assert_eq!(hash_tree_memo(&f, &memo).unwrap().rehashed, 1);
    }

    #[test]
    fn links_are_followed_and_loops_reported() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir_all(real.join("sub")).unwrap();
        std::fs::write(real.join("sub/x.txt"), "x").unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::os::unix::fs::symlink(&real, root.join("linked")).unwrap();
        std::os::unix::fs::symlink(real.join("sub/x.txt"), root.join("file-link")).unwrap();
        let rels: Vec<String> = walk(&root)
            .unwrap()
            .into_iter()
            .map(|(r, _, _)| r)
            .collect();
        assert_eq!(rels, ["file-link", "linked/sub/x.txt"]);
        std::os::unix::fs::symlink(&root, root.join("loop")).unwrap();
        assert!(
            walk(&root)
                .unwrap_err()
                .to_string()
                .contains("symlink loop")
        );
    }

    #[test]
    fn empty_folders_change_an_external_tree_hash_only_when_present() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("a.txt"), "a").unwrap();
        let memo = dir.path().join("memo.tsv");
        let plain = hash_tree_memo(&root, &memo).unwrap().hash;
        assert_eq!(plain, tree_hash(&hash_tree(&root).unwrap().files));
        std::fs::create_dir_all(root.join("empty/inner")).unwrap();
        let with_empty = hash_tree_memo(&root, &memo).unwrap().hash;
        assert_ne!(with_empty, plain, "an empty folder is part of the input");
        std::fs::remove_dir(root.join("empty/inner")).unwrap();
        let other = hash_tree_memo(&root, &memo).unwrap().hash;
        assert_ne!(other, with_empty, "which folder is empty matters");
        std::fs::remove_dir(root.join("empty")).unwrap();
        assert_eq!(hash_tree_memo(&root, &memo).unwrap().hash, plain);
    }

    #[test]
    fn renames_change_the_tree_hash() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "x").unwrap();
        let h1 = hash_tree(dir.path()).unwrap().hash;
        std::fs::rename(dir.path().join("a"), dir.path().join("b")).unwrap();
        assert_ne!(h1, hash_tree(dir.path()).unwrap().hash);
    }
}
