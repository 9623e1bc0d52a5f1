//! Shared helpers of the runner's end-to-end tests: build the test stages, make pipelines in
//! temporary folders, run `uda-pipe`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The folder holding `uda-pipe` and the test stage binaries (built once per test process).
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = PathBuf::from(env!("CARGO_BIN_EXE_uda-pipe"));
        let dir = exe.parent().expect("bin dir").to_path_buf();
        // Cargo builds only this package's binaries for its tests; the stage binaries live in
        // the uda-teststages package, so build them (a no-op when up to date).
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let target_dir = dir.parent().expect("target dir").to_path_buf();
        let status = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "-p",
                "uda-teststages",
                "--bins",
                "--manifest-path",
            ])
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", &target_dir)
            .status()
            .expect("running cargo to build the test stages");
        assert!(status.success(), "building uda-teststages failed");
        assert!(
            dir.join("uda-test-gen").exists(),
            "uda-test-gen not found in {}",
            dir.display()
        );
        dir
    })
}

pub fn uda_pipe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_uda-pipe"))
}

/// A temporary project folder with a pipeline file and an isolated stage path.
pub struct Project {
    pub dir: tempfile::TempDir,
    /// Folders searched for stage binaries (`UDA_STAGE_PATH`), first wins.
    pub stage_dirs: Vec<PathBuf>,
}

impl Project {
    pub fn new(pipeline: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("pipeline.yaml"), pipeline).expect("write pipeline");
        Self {
            stage_dirs: vec![bin_dir().to_path_buf()],
            dir,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(uda_pipe());
        c.args(args)
            .current_dir(self.dir.path())
            .env(
                "UDA_STAGE_PATH",
                std::env::join_paths(&self.stage_dirs).expect("stage path"),
            )
            .env_remove("CUDA_VISIBLE_DEVICES");
        c
    }

    /// Runs `uda-pipe ARGS`; returns (success, stdout + stderr).
    pub fn run(&self, args: &[&str]) -> (bool, String) {
        let out: Output = self.cmd(args).output().expect("running uda-pipe");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// Runs and asserts success.
    pub fn ok(&self, args: &[&str]) -> String {
        let (ok, text) = self.run(args);
        assert!(ok, "uda-pipe {args:?} failed:\n{text}");
        text
    }

    /// Runs and asserts failure.
    pub fn fails(&self, args: &[&str]) -> String {
        let (ok, text) = self.run(args);
        assert!(!ok, "uda-pipe {args:?} should have failed:\n{text}");
        text
    }

    /// The node ids of `uda-pipe dag` output, in its order (each line is `id [kind] <- inputs`).
    pub fn dag_nodes(dag: &str) -> Vec<&str> {
        dag.lines().map(|l| l.split(" [").next().unwrap()).collect()
    }

    /// The `N ran, M cached` counts from a run's summary line.
    pub fn counts(text: &str) -> (usize, usize) {
        let line = text
            .lines()
            .rev()
            .find(|l| l.contains(" ran, "))
            .unwrap_or_else(|| panic!("no summary in:\n{text}"));
        let n: Vec<usize> = line
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .take(2)
            .map(|s| s.parse().unwrap())
            .collect();
        (n[0], n[1])
    }

    pub fn latest(&self, node: &str) -> PathBuf {
        self.path("cache/latest/pipeline").join(node)
    }

    pub fn read_latest(&self, node: &str, file: &str) -> String {
        std::fs::read_to_string(self.latest(node).join(file))
            .unwrap_or_else(|e| panic!("reading {node}/{file}: {e}"))
    }

    /// Copies a test stage binary into a project-local folder searched first, so a test can
    /// "rebuild" it (change its bytes) without touching the shared build.
    pub fn private_stage(&mut self, kind: &str) -> PathBuf {
        let dir = self.path("stages");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let dst = dir.join(kind);
        std::fs::copy(bin_dir().join(kind), &dst).expect("copy stage binary");
        self.stage_dirs.insert(0, dir);
        dst
    }

    /// The key of a node's current result (from its `latest` link).
    pub fn key_of(&self, node: &str) -> String {
        let target = std::fs::read_link(self.latest(node))
            .unwrap_or_else(|e| panic!("no latest link for {node}: {e}"));
        target
            .parent()
            .and_then(|p| p.file_name())
            .expect("key")
            .to_string_lossy()
            .into_owned()
    }

    pub fn entry_json(&self, node: &str) -> serde_json::Value {
        let text = std::fs::read_to_string(
            self.path("cache/entries")
                .join(self.key_of(node))
                .join("entry.json"),
        )
        .expect("entry.json");
        serde_json::from_str(&text).expect("entry.json parses")
    }

    pub fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.path("cache/entries"))
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

/// Flips the case of a cached file's first byte and restores its mtime: same size, same mtime,
/// so only a full re-hash (`--verify`) can see it. Returns the altered bytes.
pub fn flip_first_byte_keeping_mtime(file: &Path) -> Vec<u8> {
    use std::os::unix::fs::PermissionsExt;
    let mtime = std::fs::metadata(file).unwrap().modified().unwrap();
    let mut altered = std::fs::read(file).unwrap();
    altered[0] ^= 0x20;
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(file, &altered).unwrap();
    std::fs::File::options()
        .write(true)
        .open(file)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    altered
}
