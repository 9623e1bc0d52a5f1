//! Finding stage binaries, their identity, and what they accept (`--describe`).
//!
//! A kind `K` is the binary named `K`, searched in `$UDA_STAGE_PATH` (colon-separated folders),
//! then the folder of the running `uda-pipe`, then `PATH` (for the project's own stage names only,
//! [`KNOWN_STAGES`]); `--describe` must answer within [`DESCRIBE_TIMEOUT_ENV`] seconds. Its identity is the blake3 of the
//! binary file (memoised by path/size/mtime/inode), so a rebuilt stage is a different stage for
//! the cache. Its `--describe` output is cached per identity: validating a pipeline does not
//! spawn every stage binary every time.

use crate::error::{IoContext, Result, RunnerError};
use crate::hashing::{self, Hash, Stat};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const STAGE_PATH_ENV: &str = "UDA_STAGE_PATH";

/// What a stage binary says about itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Description {
    pub kind: String,
    #[serde(default)]
    pub doc: String,
    #[serde(default)]
    pub inputs: Vec<DescribedInput>,
    #[serde(default)]
    pub outputs: Vec<DescribedOutput>,
    /// Param names with defaults; each default's JSON type is the param's type.
    #[serde(default)]
    pub params: serde_json::Value,
    /// The binary answers `--check` (validates param values, not only their types).
    #[serde(default)]
    pub checks: bool,
    /// The stage can run as array tasks (`--shard I/N`) plus a merge (`--merge-shards DIR`)
    /// whose output is byte-identical to one run's.
    #[serde(default)]
    pub shardable: bool,
}

/// One problem `STAGE --check` found in a node's params.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ParamProblem {
    /// The param's key (dotted when nested); empty for the params as a whole.
    #[serde(default)]
    pub param: String,
    pub message: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct CheckReport {
    ok: bool,
    #[serde(default)]
    problems: Vec<ParamProblem>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DescribedInput {
    pub name: String,
    #[serde(default)]
    pub doc: String,
    #[serde(default)]
    pub required: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DescribedOutput {
    pub name: String,
    #[serde(default)]
    pub doc: String,
}

/// A located stage binary.
#[derive(Debug, Clone)]
pub struct StageBinary {
    pub kind: String,
    pub path: PathBuf,
    pub hash: Hash,
    pub description: Description,
}

/// The project's own stage kinds: the only names looked up on `PATH`. Any other kind must be in
/// `$UDA_STAGE_PATH` or beside `uda-pipe`, so that a pipeline never runs an arbitrary program
/// that happens to be on `PATH` (as `K --describe`, even for `status`).
pub const KNOWN_STAGES: [&str; 8] = [
    "synth-scenes",
    "preprocess-resize",
    "fda-translate-cache",
    "pretrain",
    "pseudolabel-dump",
    "contrastive-train",
    "evaluate",
    "colour-baseline",
];

/// How long a stage binary may take to answer `--describe` (`UDA_DESCRIBE_TIMEOUT_S`, default
/// 30 s: a cold start of a libtorch-linked binary on a loaded machine takes a few seconds).
pub const DESCRIBE_TIMEOUT_ENV: &str = "UDA_DESCRIBE_TIMEOUT_S";

/// The folders searched for stage binaries of any kind, in order: `$UDA_STAGE_PATH`, then the
/// folder of the running `uda-pipe`. Relative entries of `$UDA_STAGE_PATH` are made absolute
/// here: stages run in their staging folder, where a relative path means nothing.
pub fn search_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(p) = std::env::var(STAGE_PATH_ENV) {
        let cwd = std::env::current_dir().unwrap_or_default();
        dirs.extend(
            std::env::split_paths(&p)
                .filter(|d| !d.as_os_str().is_empty())
                .map(|d| cwd.join(d)),
        );
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(d) = exe.parent()
    {
        dirs.push(d.to_path_buf());
    }
    dirs
}

/// `PATH`, searched for [`KNOWN_STAGES`] only.
fn path_dirs() -> Vec<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default()
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Finds stage binaries, hashes them and caches their descriptions (thread-safe).
#[derive(Debug)]
pub struct Registry {
    dirs: Vec<PathBuf>,
    /// Searched after `dirs`, for [`KNOWN_STAGES`] only.
    path_dirs: Vec<PathBuf>,
    state_dir: PathBuf,
    found: Mutex<HashMap<String, Option<StageBinary>>>,
}

impl Registry {
    /// `state_dir` is the cache's `state/` folder (binary-hash memo and describe cache).
    pub fn new(state_dir: &Path) -> Self {
        Self {
            dirs: search_dirs(),
            path_dirs: path_dirs(),
            state_dir: state_dir.to_path_buf(),
            found: Mutex::new(HashMap::new()),
        }
    }

    pub fn with_dirs(state_dir: &Path, dirs: Vec<PathBuf>) -> Self {
        Self {
            dirs,
            path_dirs: Vec::new(),
            state_dir: state_dir.to_path_buf(),
            found: Mutex::new(HashMap::new()),
        }
    }

    pub fn locate(&self, kind: &str) -> Option<PathBuf> {
        let on_path: &[PathBuf] = if KNOWN_STAGES.contains(&kind) {
            &self.path_dirs
        } else {
            &[]
        };
        self.dirs
            .iter()
            .chain(on_path)
            .map(|d| d.join(kind))
            .find(|p| is_executable(p))
    }

    /// The stage binary for `kind`, or `Ok(None)` when no such binary exists.
    pub fn get(&self, kind: &str) -> Result<Option<StageBinary>> {
        if let Some(b) = self
            .found
            .lock()
            .map_err(|_| RunnerError::Internal("the stage registry's lock is poisoned"))?
            .get(kind)
        {
            return Ok(b.clone());
        }
        let found = match self.locate(kind) {
            None => None,
            Some(path) => {
                let hash = self.binary_hash(&path)?;
                let description = self.describe(&path, &hash)?;
                if description.kind != kind {
                    return Err(RunnerError::Describe {
                        binary: path,
                        message: format!(
                            "it describes itself as kind '{}', not '{kind}'",
                            description.kind
                        ),
                    });
                }
                Some(StageBinary {
                    kind: kind.to_string(),
                    path,
                    hash,
                    description,
                })
            }
        };
        if let Ok(mut m) = self.found.lock() {
            m.insert(kind.to_string(), found.clone());
        }
        Ok(found)
    }

    /// Executable names in the search folders that look like `kind` (for "did you mean").
    pub fn suggest(&self, kind: &str) -> Vec<String> {
        let mut names: Vec<(usize, String)> = Vec::new();
        for d in &self.dirs {
            let Ok(rd) = std::fs::read_dir(d) else {
                continue;
            };
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                let dist = edit_distance(&n, kind);
                if (dist <= 3 || (n.contains(kind) && kind.len() >= 3))
                    && is_executable(&e.path())
                    && !names.iter().any(|(_, x)| *x == n)
                {
                    names.push((dist, n));
                }
            }
        }
        names.sort();
        names.into_iter().take(3).map(|(_, n)| n).collect()
    }

    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    fn binary_hash(&self, path: &Path) -> Result<Hash> {
        let memo_path = self.state_dir.join("binaries").join(format!(
            "{}.tsv",
            &hashing::hex(blake3::hash(path.as_os_str().as_encoded_bytes()).as_bytes())[..16]
        ));
        let meta = std::fs::metadata(path).ctx(|| format!("reading {}", path.display()))?;
        let stat = Stat::of(&meta);
        if let Ok(text) = std::fs::read_to_string(&memo_path) {
            let f: Vec<&str> = text.trim().split('\t').collect();
            if let [h, size, m, ino] = f.as_slice()
                && size.parse() == Ok(stat.size)
                && m.parse() == Ok(stat.mtime_ns)
                && ino.parse() == Ok(stat.ino)
                && let Ok(h) = blake3::Hash::from_hex(h)
            {
                return Ok(*h.as_bytes());
            }
        }
        let hash = hashing::hash_file(path)?;
        let line = format!(
            "{}\t{}\t{}\t{}\n",
            hashing::hex(&hash),
            stat.size,
            stat.mtime_ns,
            stat.ino
        );
        hashing::write_atomic(&memo_path, line.as_bytes())?;
        Ok(hash)
    }

    fn describe(&self, path: &Path, hash: &Hash) -> Result<Description> {
        let cached = self
            .state_dir
            .join("describe")
            .join(format!("{}.json", hashing::hex(hash)));
        if let Ok(text) = std::fs::read_to_string(&cached)
            && let Ok(d) = serde_json::from_str::<Description>(&text)
        {
            return Ok(d);
        }
        let describe_err = |message: String| RunnerError::Describe {
            binary: path.to_path_buf(),
            message,
        };
        let stdout = ask(path, &["--describe"], None)?;
        let d: Description = serde_json::from_slice(&stdout).map_err(|e| {
            describe_err(format!(
                "--describe did not print the stage description JSON ({e}); is it a uda-pipe stage?"
            ))
        })?;
        let text = serde_json::to_vec_pretty(&d).map_err(|e| describe_err(e.to_string()))?;
        hashing::write_atomic(&cached, &text)?;
        Ok(d)
    }
}

impl Registry {
    /// What `BIN --check --params FILE` says of `params` (canonical, defaults filled in): the
    /// stage's own value checks, run before anything else so a bad value fails in a second
    /// rather than after the upstream work. Remembered per binary and params in `state/check/`,
    /// so `status` does not start every stage each time. Empty for stages without `--check`.
    pub fn check(
        &self,
        binary: &StageBinary,
        params: &serde_json::Value,
    ) -> Result<Vec<ParamProblem>> {
        if !binary.description.checks {
            return Ok(Vec::new());
        }
        let dir = self.state_dir.join("check");
        let name = format!(
            "{}-{}",
            &hashing::hex(&binary.hash)[..24],
            crate::cache::key_of(params)
        );
        let memo = dir.join(format!("{name}.json"));
        if let Ok(text) = std::fs::read_to_string(&memo)
            && let Ok(r) = serde_json::from_str::<CheckReport>(&text)
        {
            return Ok(r.problems);
        }
        let check_err = |message: String| RunnerError::Describe {
            binary: binary.path.clone(),
            message,
        };
        // Private to this process: two runs validating at once must not remove each other's.
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let params_file = dir.join(format!("{name}.{}.{n}.params.json", std::process::id()));
        let text = serde_json::to_vec(params)
            .map_err(|e| RunnerError::json("writing params for --check", e))?;
        hashing::write_atomic(&params_file, &text)?;
        let answer = ask(&binary.path, &["--check", "--params"], Some(&params_file));
        let _ = std::fs::remove_file(&params_file);
        let stdout = answer?;
        let report: CheckReport = serde_json::from_slice(&stdout).map_err(|e| {
            check_err(format!(
                "--check did not print {{\"ok\": ..}} JSON ({e}); its describe says it answers --check"
            ))
        })?;
        hashing::write_atomic(&memo, &stdout)?;
        Ok(if report.ok {
            Vec::new()
        } else {
            report.problems
        })
    }
}

/// `BIN ARGS [FILE]`'s stdout: the one way the runner asks a stage binary about itself
/// (`--describe`, `--check`). A binary that does not answer within the describe time-out is
/// killed; one that fails is an error with its stderr.
fn ask(bin: &Path, args: &[&str], file: Option<&Path>) -> Result<Vec<u8>> {
    let what = args.first().copied().unwrap_or_default();
    let err = |message: String| RunnerError::Describe {
        binary: bin.to_path_buf(),
        message,
    };
    let timeout = describe_timeout();
    let out = output_within(bin, args, file, timeout)
        .ctx(|| format!("running {} {what}", bin.display()))?
        .ok_or_else(|| {
            err(format!(
                "{what} did not answer within {} s and was killed; is it a uda-pipe stage? (raise {DESCRIBE_TIMEOUT_ENV} if it is just slow to start)",
                timeout.as_secs_f64()
            ))
        })?;
    if !out.status.success() {
        return Err(err(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out.stdout)
}

fn describe_timeout() -> Duration {
    std::env::var(DESCRIBE_TIMEOUT_ENV)
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_secs(30))
}

/// `BIN ARGS [FILE]`'s output, or `None` if it did not end within `timeout` (it is killed).
fn output_within(
    bin: &Path,
    args: &[&str],
    file: Option<&Path>,
    timeout: Duration,
) -> std::io::Result<Option<Output>> {
    use std::os::unix::process::CommandExt;
    // A group of its own: on a time-out, whatever it started (holding our pipes) goes too.
    let mut child = Command::new(bin)
        .args(args)
        .args(file)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Read both pipes while waiting, so a chatty binary cannot block on a full pipe.
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let (out, err) = std::thread::scope(|s| {
        let out = s.spawn(|| drain(stdout));
        let err = s.spawn(|| drain(stderr));
        let deadline = Instant::now() + timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(st)) => break Ok(Some(st)),
                Ok(None) if Instant::now() >= deadline => {
                    crate::process::signal_group(child.id(), libc::SIGKILL);
                    let _ = child.wait();
                    break Ok(None);
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => break Err(e),
            }
        };
        (
            status.map(|st| st.map(|st| (st, out.join().unwrap_or_default()))),
            err.join().unwrap_or_default(),
        )
    });
    Ok(out?.map(|(status, stdout)| Output {
        status,
        stdout,
        stderr: err,
    }))
}

fn drain(pipe: Option<impl std::io::Read>) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(mut p) = pipe {
        let _ = p.read_to_end(&mut buf);
    }
    buf
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push(
                (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1),
            );
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Checks a param value against the default's JSON type; ints are accepted for floats.
/// Returns a message naming the param path on mismatch or unknown nested keys.
pub fn check_param(
    path: &str,
    value: &serde_json::Value,
    default: &serde_json::Value,
) -> Result<(), String> {
    use serde_json::Value as J;
    let ty = |v: &J| match v {
        J::Null => "null",
        J::Bool(_) => "a boolean",
        J::Number(n) if n.is_f64() => "a number",
        J::Number(_) => "an integer",
        J::String(_) => "a string",
        J::Array(_) => "a list",
        J::Object(_) => "a mapping",
    };
    let ok = match (default, value) {
        (J::Null, _) => true,
        (J::Number(d), J::Number(v)) => d.is_f64() || !v.is_f64(),
        (J::Bool(_), J::Bool(_)) | (J::String(_), J::String(_)) => true,
        (J::Array(d), J::Array(v)) => {
            if let Some(d0) = d.first() {
                for (i, x) in v.iter().enumerate() {
                    check_param(&format!("{path}[{i}]"), x, d0)?;
                }
            }
            true
        }
        (J::Object(d), J::Object(v)) => {
            for (k, x) in v {
                match d.get(k) {
                    Some(dk) => check_param(&format!("{path}.{k}"), x, dk)?,
                    None => {
                        let known: Vec<&str> = d.keys().map(String::as_str).collect();
                        return Err(format!(
                            "unknown param '{path}.{k}' (known: {})",
                            known.join(", ")
                        ));
                    }
                }
            }
            true
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "param '{path}' must be {} like the default {default}, found {} {value}",
            ty(default),
            ty(value)
        ))
    }
}

/// Fills in defaults and turns integers into floats where the param is a float, so that
/// `beta: 1` and `beta: 1.0` give one cache key.
pub fn canonical_params(
    value: &serde_json::Value,
    default: &serde_json::Value,
) -> serde_json::Value {
    use serde_json::Value as J;
    match (default, value) {
        (J::Number(d), J::Number(v)) if d.is_f64() && !v.is_f64() => v
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map(J::Number)
            .unwrap_or_else(|| value.clone()),
        (J::Array(d), J::Array(v)) => match d.first() {
            Some(d0) => J::Array(v.iter().map(|x| canonical_params(x, d0)).collect()),
            None => value.clone(),
        },
        (J::Object(d), J::Object(v)) => {
            let mut out = serde_json::Map::new();
            for (k, dk) in d {
                out.insert(
                    k.clone(),
                    match v.get(k) {
                        Some(x) => canonical_params(x, dk),
                        None => dk.clone(),
                    },
                );
            }
            for (k, x) in v {
                out.entry(k.clone()).or_insert_with(|| x.clone());
            }
            J::Object(out)
        }
        _ => value.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn param_types_follow_defaults() {
        let d = json!({"beta": 0.01, "iters": 10, "name": "x", "sizes": [1], "opt": {"lr": 0.1}});
        assert!(check_param("p", &json!({"beta": 1, "iters": 3}), &d).is_ok());
        let e = check_param("p", &json!({"iters": 0.5}), &d).unwrap_err();
        assert!(e.contains("'p.iters' must be an integer"), "{e}");
        let e = check_param("p", &json!({"name": 3}), &d).unwrap_err();
        assert!(e.contains("'p.name' must be a string"), "{e}");
        let e = check_param("p", &json!({"sizes": ["a"]}), &d).unwrap_err();
        assert!(e.contains("p.sizes[0]"), "{e}");
        let e = check_param("p", &json!({"opt": {"lrr": 1.0}}), &d).unwrap_err();
        assert!(e.contains("unknown param 'p.opt.lrr'"), "{e}");
    }

    #[test]
    fn canonical_params_fill_defaults_and_floats() {
        let d = json!({"beta": 0.01, "iters": 10, "opt": {"lr": 0.1, "m": 0.9}});
        let c = canonical_params(&json!({"beta": 1, "opt": {"lr": 2}}), &d);
        assert_eq!(
            c,
            json!({"beta": 1.0, "iters": 10, "opt": {"lr": 2.0, "m": 0.9}})
        );
        assert_eq!(serde_json::to_string(&c["beta"]).unwrap(), "1.0");
    }

    #[test]
    fn edit_distance_works() {
        assert_eq!(edit_distance("fda-translate", "fda-translate-cache"), 6);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
