//! Shared by the parity tests: run the PyTorch reference script, load what it wrote, compare.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use uda_models::tch::{Kind, Tensor};

pub fn workspace_root() -> PathBuf {
    uda_testing::workspace_root()
}

/// The project's virtualenv python (torch, torchvision, safetensors).
pub fn python() -> PathBuf {
    uda_testing::venv_python()
}

pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/py")
        .join(name)
}

/// Runs `tests/py/parity.py BACKBONE DIR`; panics with its output if it fails.
pub fn run_reference(backbone: &str, dir: &Path) {
    let out = Command::new(python())
        .arg(script("parity.py"))
        .arg(backbone)
        .arg(dir)
        .output()
        .expect("start the venv python");
    assert!(
        out.status.success(),
        "parity.py {backbone} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn read(path: &Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .collect()
}

/// max |got − want| / max |want|: the error relative to the output's scale.
pub fn rel_err(got: &Tensor, want: &Tensor) -> f64 {
    assert_eq!(got.size(), want.size(), "shapes differ");
    let got = got.to_kind(Kind::Double);
    let want = want.to_kind(Kind::Double);
    let scale = want.abs().max().double_value(&[]);
    assert!(
        scale > 0.0,
        "reference is all zeros: the test would prove nothing"
    );
    (got - &want).abs().max().double_value(&[]) / scale
}

pub fn assert_close(what: &str, got: &Tensor, want: &Tensor) {
    let e = rel_err(got, want);
    println!("{what}: relative error {e:.2e}");
    assert!(e <= 1e-4, "{what}: relative error {e:.3e} > 1e-4");
}
