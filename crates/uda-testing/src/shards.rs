//! Sharded stage runs for the stages' tests: run a stage binary as `N` shard tasks and one
//! merge, exactly as the runner's array jobs do, and compare output folders byte by byte.

use std::path::Path;
use std::process::Command;

/// Every file under `dir` as (relative path, bytes), sorted by path: two folders are identical
/// exactly when their trees are equal.
pub fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).expect("below dir");
                let bytes =
                    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                files.push((rel.to_string_lossy().into_owned(), bytes));
            }
        }
    }
    files.sort();
    files
}

/// The relative paths of [`tree`] whose bytes differ between `a` and `b`, or that only one has;
/// empty when the folders are identical.
pub fn differences(a: &Path, b: &Path) -> Vec<String> {
    let (a, b) = (tree(a), tree(b));
    let mut paths: Vec<&String> = a.iter().chain(&b).map(|(p, _)| p).collect();
    paths.sort();
    paths.dedup();
    let get = |t: &[(String, Vec<u8>)], p: &str| {
        t.iter()
            .find(|(q, _)| q == p)
            .map(|(_, bytes)| bytes.clone())
    };
    paths
        .into_iter()
        .filter(|p| get(&a, p) != get(&b, p))
        .cloned()
        .collect()
}

/// A stage binary and the environment it runs with (besides `UDA_PROGRESS=jsonl`, always set so
/// that the shard tasks' progress lines can be checked).
#[derive(Debug, Clone, Copy)]
pub struct Binary<'a> {
    pub path: &'a Path,
    pub envs: &'a [(&'a str, &'a str)],
}

impl<'a> Binary<'a> {
    pub fn new(path: &'a Path) -> Self {
        Self { path, envs: &[] }
    }
}

/// Runs `bin args...`; its stderr, as `Err` when it failed.
pub fn run(bin: Binary<'_>, args: &[String]) -> Result<String, String> {
    let out = Command::new(bin.path)
        .args(args)
        .env("UDA_PROGRESS", "jsonl")
        .envs(bin.envs.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", bin.path.display()));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        Ok(stderr)
    } else {
        Err(stderr)
    }
}

/// `bin --shard I/count --out shards/I args...` for every `I`, then
/// `bin --merge-shards shards --out out args...` (`args`: the inputs and params, no `--out`).
/// Returns each shard task's stderr; `Err` with the failing command's stderr.
pub fn run_sharded(
    bin: Binary<'_>,
    args: &[String],
    shards: &Path,
    out: &Path,
    count: usize,
) -> Result<Vec<String>, String> {
    let mut logs = Vec::with_capacity(count);
    for index in 0..count {
        let mut task = vec![
            "--shard".to_string(),
            format!("{index}/{count}"),
            "--out".to_string(),
            shards.join(index.to_string()).display().to_string(),
        ];
        task.extend_from_slice(args);
        logs.push(run(bin, &task).map_err(|e| format!("shard {index}/{count}: {e}"))?);
    }
    merge(bin, args, shards, out).map_err(|e| format!("merge of {count} shards: {e}"))?;
    Ok(logs)
}

/// `bin --merge-shards shards --out out args...`; its stderr, as `Err` when it failed.
pub fn merge(
    bin: Binary<'_>,
    args: &[String],
    shards: &Path,
    out: &Path,
) -> Result<String, String> {
    let mut merge = vec![
        "--merge-shards".to_string(),
        shards.display().to_string(),
        "--out".to_string(),
        out.display().to_string(),
    ];
    merge.extend_from_slice(args);
    run(bin, &merge)
}
