//! Test support shared by the workspace's tests, benchmarks and examples; a dev-dependency only,
//! so production crates carry no test helpers.
//!
//! * [`venv_python`]: the project virtualenv's Python, which the parity tests run to compute
//!   their references (torch, numpy, Pillow, scikit-image).
//! * [`synthetic`]: small street-like ImageSets a model learns in a few iterations.
//! * [`shards`]: a stage binary run as shard tasks plus a merge, and byte-wise folder comparison.

pub mod shards;
pub mod synthetic;

use std::path::PathBuf;

/// The workspace root (canonical, so a venv reached through it finds its `pyvenv.cfg` even when
/// the checkout is reached via a symlink).
pub fn workspace_root() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// The project virtualenv's Python. Panics, saying how to create it, when it is missing: a
/// parity test without its reference would prove nothing.
pub fn venv_python() -> PathBuf {
    let py = workspace_root().join(".venv/bin/python");
    assert!(
        py.exists(),
        "{} not found: run scripts/setup.sh (creates the project virtualenv)",
        py.display()
    );
    py
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_workspace_root_holds_the_workspace_manifest() {
        let manifest = std::fs::read_to_string(super::workspace_root().join("Cargo.toml")).unwrap();
        assert!(manifest.contains("[workspace]"), "{manifest}");
    }
}
