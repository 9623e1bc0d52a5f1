//! Support for the workspace's tests: where the Python references live.

use std::path::PathBuf;

/// The project virtualenv's Python (torch, numpy, Pillow, ...: the references parity tests
/// compare against). Panics, saying how to create it, when it is missing.
pub fn venv_python() -> PathBuf {
    // Canonical, so the venv finds its pyvenv.cfg even when the crate is reached via a symlink.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let py = root.canonicalize().unwrap_or(root).join(".venv/bin/python");
    assert!(
        py.exists(),
        "{} not found: run scripts/setup.sh (creates the project virtualenv)",
        py.display()
    );
    py
}
