//! Data-parallel sharding: one stage run split into `N` shard tasks (a Slurm array job) plus
//! one merge, whose output is byte-identical to the unsharded run's.
//!
//! * [`ShardSpec`] is `--shard I/N`; [`ShardSpec::range`] gives the contiguous, aligned range of
//!   items shard `I` computes (stages align it to their Zarr chunking, so every chunk file is
//!   written by exactly one task and needs no rewriting in the merge).
//! * A shard task writes its part of the output into its `--out` folder plus [`SHARD_FILE`]
//!   ([`ShardRecord`]: kind, index, count, params, and what the stage's merge needs).
//! * [`read_shards`] is the merge's check that every task of the array finished, with the same
//!   params; [`link_tree`] assembles the output from the shards' files by hard link (the shards
//!   stay intact, so a merge that fails half-way can simply be run again).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// File inside each shard task's output folder describing the shard.
pub const SHARD_FILE: &str = "shard.json";

/// Errors of sharded runs (arguments, the merge's checks, assembling files).
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error("--shard '{0}': expected I/N with 0 <= I < N, e.g. 0/4")]
    BadSpec(String),
    #[error(
        "stage {kind} is not shardable (its --describe says \"shardable\": false); run it without --shard / --merge-shards"
    )]
    NotShardable { kind: String },
    #[error(
        "{dir}: no finished shard (no folder 0, 1, ... holding {SHARD_FILE}); run the shard tasks first: {kind} --shard I/N --out {dir}/I ..."
    )]
    NoShards { kind: String, dir: PathBuf },
    #[error(
        "{dir}: {missing} of {count} shards missing or unfinished: {list}; rerun those tasks ({kind} --shard I/{count} --out {dir}/I with the same inputs and params), then merge again"
    )]
    Missing {
        kind: String,
        dir: PathBuf,
        count: usize,
        missing: usize,
        list: String,
    },
    #[error("{path}: {message}")]
    BadRecord { path: PathBuf, message: String },
    #[error(
        "{path}: shard {index} was computed with other params than this merge's ({detail}); rerun it with the merge's params"
    )]
    ParamsDiffer {
        path: PathBuf,
        index: usize,
        detail: String,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

fn io_error(context: String) -> impl FnOnce(std::io::Error) -> ShardError {
    move |source| ShardError::Io { context, source }
}

/// Shard `index` of `count` (`--shard I/N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ShardSpec {
    pub index: usize,
    pub count: usize,
}

impl ShardSpec {
    /// The whole run as one shard (what an unsharded run computes).
    pub const WHOLE: ShardSpec = ShardSpec { index: 0, count: 1 };

    /// Shard `index` of `count`; `None` unless `index < count`.
    pub fn new(index: usize, count: usize) -> Option<Self> {
        (index < count).then_some(Self { index, count })
    }

    /// The items `0..items` this shard computes: a contiguous range whose ends are multiples of
    /// `align` (or `items`), so each group of `align` items (a Zarr chunk) is one shard's.
    /// The `ceil(items / align)` groups are dealt out as evenly as possible, in order; with more
    /// shards than groups some ranges are empty. Every item lies in exactly one shard's range.
    pub fn range(&self, items: usize, align: usize) -> Range<usize> {
        let align = align.max(1);
        let groups = items.div_ceil(align);
        let first = groups * self.index / self.count;
        let end = groups * (self.index + 1) / self.count;
        (first * align).min(items)..(end * align).min(items)
    }
}

impl fmt::Display for ShardSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for ShardSpec {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<Self, ShardError> {
        let bad = || ShardError::BadSpec(s.to_string());
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (i, n) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        Self::new(i, n).ok_or_else(bad)
    }
}

/// What [`SHARD_FILE`] holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardRecord {
    /// The stage kind that wrote the shard.
    pub kind: String,
    pub index: usize,
    pub count: usize,
    /// The shard task's params (typed and re-serialised, so defaults are spelled out); the merge
    /// must see the same.
    pub params: Value,
    /// What the stage's merge needs from this shard (its range, per-item values, partial sums).
    pub data: Value,
}

impl ShardRecord {
    /// Writes the record into `dir` as [`SHARD_FILE`].
    pub fn write(&self, dir: &Path) -> Result<(), ShardError> {
        let path = dir.join(SHARD_FILE);
        let text = serde_json::to_string_pretty(self).expect("JSON values serialise");
        std::fs::write(&path, text).map_err(io_error(format!("writing {}", path.display())))
    }

    fn read(dir: &Path) -> Result<Self, String> {
        let path = dir.join(SHARD_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| format!("no {SHARD_FILE} ({e})"))?;
        serde_json::from_str(&text).map_err(|e| format!("unreadable {SHARD_FILE} ({e})"))
    }
}

/// One finished shard, as the merge sees it.
#[derive(Debug, Clone)]
pub struct Shard {
    pub spec: ShardSpec,
    /// The shard task's output folder (`SHARDS_DIR/I`).
    pub dir: PathBuf,
    /// [`ShardRecord::data`].
    pub data: Value,
}

impl Shard {
    /// [`Shard::data`] as the stage's own type.
    pub fn data<T: serde::de::DeserializeOwned>(&self) -> Result<T, ShardError> {
        serde_json::from_value(self.data.clone()).map_err(|e| ShardError::BadRecord {
            path: self.dir.join(SHARD_FILE),
            message: format!("unexpected shard data ({e}); was it written by this stage binary?"),
        })
    }
}

/// Reads and checks the shards in `dir` (`dir/0` .. `dir/N-1`) for a merge of stage `kind`
/// with `params`: every one present and finished, all of the same `N` and the same params.
/// Entries that are not plain numbers (a task's `I.partial-<pid>` staging folder) are ignored.
pub fn read_shards(kind: &str, dir: &Path, params: &Value) -> Result<Vec<Shard>, ShardError> {
    let entries = std::fs::read_dir(dir).map_err(io_error(format!(
        "reading the shards folder {}",
        dir.display()
    )))?;
    let mut found = std::collections::BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(io_error(format!("reading {}", dir.display())))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Ok(index) = name.parse::<usize>()
            && name == index.to_string()
        {
            found.insert(index, (entry.path(), ShardRecord::read(&entry.path())));
        }
    }
    let counts: std::collections::BTreeSet<usize> = found
        .values()
        .filter_map(|(_, r)| r.as_ref().ok().map(|r| r.count))
        .collect();
    let count = match counts.len() {
        0 => {
            return Err(ShardError::NoShards {
                kind: kind.into(),
                dir: dir.into(),
            });
        }
        1 => *counts.first().expect("one count"),
        _ => {
            return Err(ShardError::BadRecord {
                path: dir.into(),
                message: format!(
                    "shards of different arrays are mixed (counts {counts:?}); remove the folder and rerun every shard task"
                ),
            });
        }
    };
    let mut missing = Vec::new();
    let mut shards = Vec::with_capacity(count);
    for index in 0..count {
        let Some((path, record)) = found.remove(&index) else {
            missing.push(format!(
                "{index} (no folder {})",
                dir.join(index.to_string()).display()
            ));
            continue;
        };
        let record = match record {
            Ok(r) => r,
            Err(why) => {
                missing.push(format!("{index} ({why})"));
                continue;
            }
        };
        let file = path.join(SHARD_FILE);
        if record.kind != kind || record.index != index {
            return Err(ShardError::BadRecord {
                path: file,
                message: format!(
                    "is shard {}/{} of stage {}, expected shard {index}/{count} of stage {kind}",
                    record.index, record.count, record.kind
                ),
            });
        }
        if &record.params != params {
            return Err(ShardError::ParamsDiffer {
                path: file,
                index,
                detail: params_difference(&record.params, params),
            });
        }
        shards.push(Shard {
            spec: ShardSpec { index, count },
            dir: path,
            data: record.data,
        });
    }
    if let Some((extra, (path, _))) = found.into_iter().next() {
        return Err(ShardError::BadRecord {
            path,
            message: format!(
                "shard folder {extra} lies outside 0..{count}; it belongs to another array job: remove it"
            ),
        });
    }
    if !missing.is_empty() {
        return Err(ShardError::Missing {
            kind: kind.into(),
            dir: dir.into(),
            count,
            missing: missing.len(),
            list: missing.join(", "),
        });
    }
    Ok(shards)
}

/// The top-level params whose values differ, as `key: shard V vs merge W`.
fn params_difference(shard: &Value, merge: &Value) -> String {
    let (Some(a), Some(b)) = (shard.as_object(), merge.as_object()) else {
        return format!("shard {shard} vs merge {merge}");
    };
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            let show = |v: Option<&Value>| v.map_or_else(|| "unset".into(), Value::to_string);
            format!("{k}: shard {} vs merge {}", show(a.get(k)), show(b.get(k)))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Links every file under `from` to the same relative path under `to` (creating folders),
/// except files for which `skip(relative path)` is true. Hard links: no bytes are copied and
/// the shard keeps its files; a copy where linking fails (another filesystem). A file that
/// already exists at the destination is an error (two shards claiming the same chunk).
pub fn link_tree(from: &Path, to: &Path, skip: &dyn Fn(&Path) -> bool) -> Result<(), ShardError> {
    link_below(from, to, Path::new(""), skip)
}

fn link_below(
    from: &Path,
    to: &Path,
    rel: &Path,
    skip: &dyn Fn(&Path) -> bool,
) -> Result<(), ShardError> {
    let src = from.join(rel);
    let entries =
        std::fs::read_dir(&src).map_err(io_error(format!("reading {}", src.display())))?;
    for entry in entries {
        let entry = entry.map_err(io_error(format!("reading {}", src.display())))?;
        let rel = rel.join(entry.file_name());
        let kind = entry
            .file_type()
            .map_err(io_error(format!("reading {}", entry.path().display())))?;
        if kind.is_dir() {
            link_below(from, to, &rel, skip)?;
            continue;
        }
        if skip(&rel) {
            continue;
        }
        let dest = to.join(&rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)
                .map_err(io_error(format!("creating {}", parent.display())))?;
        }
        if dest.exists() {
            return Err(ShardError::BadRecord {
                path: entry.path(),
                message: format!(
                    "{} already exists: two shards wrote the same file",
                    dest.display()
                ),
            });
        }
        if std::fs::hard_link(entry.path(), &dest).is_err() {
            std::fs::copy(entry.path(), &dest).map_err(io_error(format!(
                "copying {} to {}",
                entry.path().display(),
                dest.display()
            )))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_tile_the_items_in_order_aligned_and_balanced() {
        for items in 0..40 {
            for align in 1..6 {
                for count in 1..12 {
                    let ranges: Vec<Range<usize>> = (0..count)
                        .map(|index| ShardSpec { index, count }.range(items, align))
                        .collect();
                    let mut next = 0;
                    for r in &ranges {
                        assert_eq!(r.start, next, "{items} items, {align}, {count}: {ranges:?}");
                        assert!(r.end >= r.start);
                        assert!(r.start % align == 0);
                        assert!(r.end % align == 0 || r.end == items);
                        next = r.end;
                    }
                    assert_eq!(next, items, "{ranges:?}");
                    // Chunk groups differ by at most one between shards.
                    let groups: Vec<usize> =
                        ranges.iter().map(|r| r.len().div_ceil(align)).collect();
                    let (lo, hi) = (groups.iter().min().unwrap(), groups.iter().max().unwrap());
                    assert!(hi - lo <= 1, "{items} items, {align}, {count}: {ranges:?}");
                }
            }
        }
        // 10 items in chunks of 4 (3 chunks) over 2 shards: one chunk, then two.
        assert_eq!(ShardSpec { index: 0, count: 2 }.range(10, 4), 0..4);
        assert_eq!(ShardSpec { index: 1, count: 2 }.range(10, 4), 4..10);
        assert_eq!(ShardSpec { index: 4, count: 5 }.range(3, 1), 2..3);
        assert_eq!(ShardSpec { index: 0, count: 5 }.range(3, 1), 0..0);
        assert_eq!(ShardSpec::WHOLE.range(7, 3), 0..7);
        assert_eq!(
            ShardSpec { index: 0, count: 1 }.range(7, 0),
            0..7,
            "align 0 means 1"
        );
    }

    #[test]
    fn specs_parse_and_print_as_i_slash_n() {
        let s: ShardSpec = "2/5".parse().unwrap();
        assert_eq!(s, ShardSpec { index: 2, count: 5 });
        assert_eq!(s.to_string(), "2/5");
        for bad in ["5/5", "1/0", "1", "a/2", "-1/2", "1/2/3", ""] {
            let e = bad.parse::<ShardSpec>().unwrap_err().to_string();
            assert!(e.contains("expected I/N"), "{bad}: {e}");
        }
    }

    fn record(dir: &Path, index: usize, count: usize, params: Value) {
        std::fs::create_dir_all(dir.join(index.to_string())).unwrap();
        ShardRecord {
            kind: "echo".into(),
            index,
            count,
            params,
            data: Value::Null,
        }
        .write(&dir.join(index.to_string()))
        .unwrap();
    }

    #[test]
    fn read_shards_names_every_missing_or_unfinished_shard() {
        let d = tempfile::tempdir().unwrap();
        let p = serde_json::json!({"beta": 0.1});
        assert!(matches!(
            read_shards("echo", d.path(), &p).unwrap_err(),
            ShardError::NoShards { .. }
        ));
        record(d.path(), 0, 4, p.clone());
        record(d.path(), 2, 4, p.clone());
        std::fs::create_dir(d.path().join("3")).unwrap();
        std::fs::create_dir(d.path().join("1.partial-77")).unwrap();
        let e = read_shards("echo", d.path(), &p).unwrap_err().to_string();
        assert!(e.contains("2 of 4 shards missing"), "{e}");
        assert!(e.contains("1 (no folder"), "{e}");
        assert!(e.contains("3 (no shard.json"), "{e}");
        assert!(e.contains("rerun those tasks"), "{e}");
        record(d.path(), 1, 4, p.clone());
        record(d.path(), 3, 4, p.clone());
        let shards = read_shards("echo", d.path(), &p).unwrap();
        assert_eq!(
            shards.iter().map(|s| s.spec.index).collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
        let e = read_shards("echo", d.path(), &serde_json::json!({"beta": 0.2}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("beta: shard 0.1 vs merge 0.2"), "{e}");
        assert!(read_shards("other", d.path(), &p).is_err());
        record(d.path(), 4, 5, p.clone());
        let e = read_shards("echo", d.path(), &p).unwrap_err().to_string();
        assert!(e.contains("different arrays"), "{e}");
    }

    #[test]
    fn link_tree_links_all_but_skipped_files_and_refuses_collisions() {
        let d = tempfile::tempdir().unwrap();
        let (from, to) = (d.path().join("from"), d.path().join("to"));
        std::fs::create_dir_all(from.join("a/c/0")).unwrap();
        std::fs::write(from.join("a/zarr.json"), "meta").unwrap();
        std::fs::write(from.join("a/c/0/1"), "chunk").unwrap();
        let skip = |p: &Path| p == Path::new("a/zarr.json");
        link_tree(&from, &to, &skip).unwrap();
        assert_eq!(std::fs::read(to.join("a/c/0/1")).unwrap(), b"chunk");
        assert!(!to.join("a/zarr.json").exists());
        assert!(from.join("a/c/0/1").exists(), "the shard keeps its files");
        let e = link_tree(&from, &to, &skip).unwrap_err().to_string();
        assert!(e.contains("two shards wrote the same file"), "{e}");
    }
}
