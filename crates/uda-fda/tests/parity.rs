//! Numerical parity with the FDA numpy formulation (`tests/fda_np.py`, run with the project
//! virtualenv's numpy) on the same random images: before rounding, relative error (max absolute
//! difference over the largest reference value) ≤ 1e-5; after rounding, no pixel off by more
//! than 1. Odd and even sizes, both windows, β ∈ {0.01, 0.05, 0.09}, and the production size.

use std::path::{Path, PathBuf};
use std::process::Command;
use uda_fda::{Fda, Real, Window};

fn python() -> PathBuf {
    // Canonical, so the venv finds its pyvenv.cfg even when the crate is reached via a symlink.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let py = root.canonicalize().unwrap_or(root).join(".venv/bin/python");
    assert!(
        py.exists(),
        "{} not found: run scripts/setup.sh (creates the project virtualenv)",
        py.display()
    );
    py
}

fn random_image(len: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            // Noise on top of a gradient, so low frequencies differ between images.
            let ramp = (i * 7 / len) as u64 * 20 + seed % 40;
            ((s % 120) + ramp).min(255) as u8
        })
        .collect()
}

struct Case {
    name: String,
    h: usize,
    w: usize,
    c: usize,
    beta: f64,
    window: Window,
    src: Vec<u8>,
    trg: Vec<u8>,
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut seed = 1;
    let mut push = |h: usize, w: usize, c: usize, beta: f64, window: Window| {
        let len = h * w * c;
        cases.push(Case {
            name: format!("{h}x{w}x{c}_b{beta}_{window}"),
            h,
            w,
            c,
            beta,
            window,
            src: random_image(len, seed),
            trg: random_image(len, seed + 1),
        });
        seed += 2;
    };
    for &(h, w) in &[(120, 200), (97, 161), (100, 75), (33, 64)] {
        for &beta in &[0.01, 0.05, 0.09] {
            for window in [Window::Square, Window::Rect] {
                push(h, w, 3, beta, window);
            }
        }
    }
    // The production size (Cityscapes/GTA5 resized to 1024×512) at the main β.
    push(512, 1024, 3, 0.01, Window::Square);
    push(512, 1024, 3, 0.09, Window::Rect);
    cases
}

fn run_numpy(dir: &Path, cases: &[Case]) {
    let json: Vec<String> = cases
        .iter()
        .map(|c| {
            format!(
                r#"{{"name":"{}","h":{},"w":{},"c":{},"beta":{},"rect":{}}}"#,
                c.name,
                c.h,
                c.w,
                c.c,
                c.beta,
                c.window == Window::Rect
            )
        })
        .collect();
    std::fs::write(dir.join("cases.json"), format!("[{}]", json.join(","))).unwrap();
    for c in cases {
        std::fs::write(dir.join(format!("{}.src", c.name)), &c.src).unwrap();
        std::fs::write(dir.join(format!("{}.trg", c.name)), &c.trg).unwrap();
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fda_np.py");
    let out = Command::new(python())
        .arg(&script)
        .arg(dir)
        .output()
        .expect("running the numpy reference");
    assert!(
        out.status.success(),
        "numpy reference failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn read_reference(dir: &Path, name: &str) -> Vec<f64> {
    let bytes = std::fs::read(dir.join(format!("{name}.ref"))).unwrap();
    bytes
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// (relative error before rounding, largest byte difference after rounding).
fn compare<T: Real>(case: &Case, reference: &[f64]) -> (f64, u8) {
    let fda = Fda::<T>::new(case.h, case.w, case.c, case.beta, case.window).unwrap();
    let style = fda.amplitude(&case.trg).unwrap();
    let mut real = vec![0.0; case.src.len()];
    fda.translate_real(&case.src, &style, &mut real).unwrap();
    let mut bytes = vec![0u8; case.src.len()];
    fda.translate(&case.src, &style, &mut bytes).unwrap();
    let scale = reference.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let max_err = real
        .iter()
        .zip(reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    let byte_err = bytes
        .iter()
        .zip(reference)
        .map(|(&a, &b)| a.abs_diff(b.round_ties_even().clamp(0.0, 255.0) as u8))
        .max()
        .unwrap_or(0);
    (max_err / scale, byte_err)
}

#[test]
fn matches_numpy_fda() {
    let dir = tempfile::tempdir().unwrap();
    let cases = cases();
    run_numpy(dir.path(), &cases);
    let mut worst = (0.0f64, 0.0f64);
    for case in &cases {
        let reference = read_reference(dir.path(), &case.name);
        assert_eq!(reference.len(), case.src.len(), "{}", case.name);
        // The translation must move the image (else the comparison proves nothing).
        let moved = reference
            .iter()
            .zip(&case.src)
            .map(|(r, &s)| (r - f64::from(s)).abs())
            .fold(0.0, f64::max);
        assert!(
            moved > 0.5,
            "{}: reference barely differs from the source ({moved})",
            case.name
        );

        let (rel64, bytes64) = compare::<f64>(case, &reference);
        let (rel32, bytes32) = compare::<f32>(case, &reference);
        println!(
            "{:28} f64 rel {rel64:.2e} bytes ±{bytes64}   f32 rel {rel32:.2e} bytes ±{bytes32}",
            case.name
        );
        assert!(
            rel64 <= 1e-5,
            "{} (f64): relative error {rel64:e} > 1e-5",
            case.name
        );
        assert!(
            bytes64 <= 1,
            "{} (f64): a pixel is off by {bytes64} after rounding",
            case.name
        );
        assert!(
            rel32 <= 1e-5,
            "{} (f32): relative error {rel32:e} > 1e-5",
            case.name
        );
        assert!(
            bytes32 <= 1,
            "{} (f32): a pixel is off by {bytes32} after rounding",
            case.name
        );
        worst = (worst.0.max(rel64), worst.1.max(rel32));
    }
    println!(
        "worst relative error: f64 {:.2e}, f32 {:.2e}",
        worst.0, worst.1
    );
}
