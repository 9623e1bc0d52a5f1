//! A stage's identity is the blake3 of its binary. End to end with a real stage binary, compiled
//! here from a copy of the test stages' library with the workspace's release profile (no
//! debuginfo, stripped): a formatting-only or comment-only edit that keeps every line where it
//! was rebuilds to the same binary, so the stage's entries stay cached; an edit that moves lines
//! changes the panic locations compiled into the binary, so the stage reruns, and what reads it
//! stays cached when its outputs come out the same.
mod runner_support;
use runner_support::Project;
use std::path::{Path, PathBuf};
use std::process::Command;

const PIPELINE: &str = "\
stages:
  gen:
    kind: uda-test-gen
  copy:
    kind: uda-test-copy
    inputs: {src: gen/files}
";

/// A crate outside the workspace whose library is the test stages' source: edits to it are edits
/// to a stage's library.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = tempfile::tempdir().unwrap();
        let manifest = format!(
            r#"[package]
name = "scratch-stage"
version = "0.1.0"
edition = "2024"

[dependencies]
anyhow = "1"
serde = {{ version = "1", features = ["derive"] }}
serde_json = "1"
uda-stage = {{ path = "{}" }}

[[bin]]
name = "uda-test-gen"
path = "src/main.rs"

[profile.release]
debug = false
strip = true
"#,
            root.join("crates/uda-stage").display()
        );
        std::fs::write(dir.path().join("Cargo.toml"), manifest).unwrap();
        // The workspace's lock file pins the same dependency versions (no network, no rebuild of
        // what another build of these versions already made).
        std::fs::copy(root.join("Cargo.lock"), dir.path().join("Cargo.lock")).unwrap();
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        std::fs::copy(
            root.join("crates/uda-teststages/src/lib.rs"),
            dir.path().join("src/lib.rs"),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("src/main.rs"),
            "fn main() -> std::process::ExitCode {\n    uda_stage::stage_main::<scratch_stage::Gen>()\n}\n",
        )
        .unwrap();
        Self { dir }
    }

    fn lib(&self) -> PathBuf {
        self.dir.path().join("src/lib.rs")
    }

    fn edit(&self, f: impl FnOnce(&str) -> String) {
        let text = std::fs::read_to_string(self.lib()).unwrap();
        let new = f(&text);
        assert_ne!(new, text, "the edit changed nothing");
        std::fs::write(self.lib(), new).unwrap();
    }

    /// Builds the stage (release) and returns the binary's bytes.
    fn build(&self) -> Vec<u8> {
        let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/code-identity");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(cargo)
            .args([
                "build",
                "--release",
                "--offline",
                "--quiet",
                "--manifest-path",
            ])
            .arg(self.dir.path().join("Cargo.toml"))
            .current_dir(self.dir.path())
            .env("CARGO_TARGET_DIR", &target)
            .env_remove("RUSTFLAGS")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "building the scratch stage failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read(target.join("release/uda-test-gen")).unwrap()
    }
}

#[test]
fn a_comment_or_formatting_edit_keeps_a_stage_cached_and_a_moved_line_reruns_only_it() {
    let scratch = Scratch::new();
    let first = scratch.build();
    let mut p = Project::new(PIPELINE);
    let stage = p.private_stage("uda-test-gen");
    std::fs::write(&stage, &first).unwrap();
    let out = p.ok(&["run"]);
    assert_eq!(Project::counts(&out), (2, 0), "{out}");

    // Comment reworded and a line re-spaced: every line stays where it was.
    scratch.edit(|t| {
        t.replacen(
            "//! Tiny stages for the runner's tests",
            "//! Small stages, for the runner's tests",
            1,
        )
        .replacen("pub struct Gen;", "pub   struct Gen ;", 1)
    });
    let second = scratch.build();
    assert_eq!(
        second, first,
        "a comment/formatting edit that moves no line rebuilds the same binary"
    );
    std::fs::write(&stage, &second).unwrap();
    let out = p.ok(&["run"]);
    assert_eq!(Project::counts(&out), (0, 2), "still cached: {out}");

    // One comment line more at the top moves every line below: the panic locations change.
    scratch.edit(|t| format!("// one more comment line\n{t}"));
    let third = scratch.build();
    assert_ne!(
        third, first,
        "moved lines change the compiled panic locations"
    );
    std::fs::write(&stage, &third).unwrap();
    let out = p.ok(&["run"]);
    assert_eq!(
        Project::counts(&out),
        (1, 1),
        "gen reruns; copy stays cached, gen's outputs being the same: {out}"
    );
}
