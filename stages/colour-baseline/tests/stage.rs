//! `colour-baseline` end to end against numpy transcriptions of the references: scikit-image's
//! `match_histograms` (`_match_cumulative_cdf`, per channel, reference pooled over its images)
//! and per-image mean/std normalisation.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use uda_data::ImageSet;
use uda_testing::synthetic::write_imageset;

const BIN: &str = env!("CARGO_BIN_EXE_colour-baseline");

const NUMPY: &str = r#"
import sys, numpy as np
mode, src_path, ref_path, out_path = sys.argv[1:5]
n, h, w = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
src = np.fromfile(src_path, dtype=np.uint8).reshape(n, h, w, 3)
out = np.empty_like(src)
if mode == "histogram-match":
    ref = np.fromfile(ref_path, dtype=np.uint8).reshape(-1, 3)
    for i in range(n):
        for c in range(3):
            s = src[i, :, :, c]
            sv, si, sc = np.unique(s.ravel(), return_inverse=True, return_counts=True)
            tv, tc = np.unique(ref[:, c], return_counts=True)
            sq = np.cumsum(sc) / s.size
            tq = np.cumsum(tc) / ref.shape[0]
            out[i, :, :, c] = np.rint(np.interp(sq, tq, tv)[si]).reshape(s.shape)
else:
    x = src.astype(np.float64)
    m = x.mean(axis=(1, 2), keepdims=True)
    sd = x.std(axis=(1, 2), keepdims=True)
    out = np.clip(np.rint((x - m) / sd * 50.0 + 128.0), 0, 255).astype(np.uint8)
out.tofile(out_path)
"#;

fn python() -> PathBuf {
    uda_testing::venv_python()
}

fn run(out: &Path, inputs: &[(&str, &Path)], params: &[&str]) -> Output {
    let mut c = Command::new(BIN);
    c.env("UDA_PROGRESS", "off").arg("--out").arg(out);
    for (name, path) in inputs {
        c.arg("--input").arg(format!("{name}={}", path.display()));
    }
    for p in params {
        c.arg("-p").arg(p);
    }
    c.output().unwrap()
}

fn all_images(dir: &Path) -> Vec<u8> {
    let set = ImageSet::open(dir).unwrap();
    set.images().read_range(0, set.len()).unwrap()
}

fn numpy(root: &Path, mode: &str, src: &Path, reference: &Path) -> Vec<u8> {
    let (s, r, o) = (
        root.join("src.bin"),
        root.join("ref.bin"),
        root.join("np.bin"),
    );
    std::fs::write(&s, all_images(src)).unwrap();
    std::fs::write(&r, all_images(reference)).unwrap();
    let out = Command::new(python())
        .arg("-c")
        .arg(NUMPY)
        .args([
            mode,
            s.to_str().unwrap(),
            r.to_str().unwrap(),
            o.to_str().unwrap(),
        ])
        .args(["3", "24", "40"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(o).unwrap()
}

#[test]
fn histogram_matching_equals_scikit_images_algorithm_and_keeps_labels() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    write_imageset(&root.join("src"), 3, 24, 40, true, 1, 0.0).unwrap();
    write_imageset(&root.join("ref"), 4, 24, 40, false, 5, 1.0).unwrap();
    let out = root.join("out");
    let o = run(
        &out,
        &[
            ("images", &root.join("src")),
            ("reference", &root.join("ref")),
        ],
        &["mode=histogram-match"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = all_images(&out);
    let want = numpy(
        root,
        "histogram-match",
        &root.join("src"),
        &root.join("ref"),
    );
    assert_eq!(got, want);
    assert_ne!(
        got,
        all_images(&root.join("src")),
        "matching must change the images"
    );
    let labels = |p: &Path| {
        let s = ImageSet::open(p).unwrap();
        s.labels().unwrap().read_range(0, s.len()).unwrap()
    };
    assert_eq!(labels(&out), labels(&root.join("src")));
}

#[test]
fn mean_std_normalisation_agrees_with_numpy_and_errors_name_the_problem() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    write_imageset(&root.join("src"), 3, 24, 40, false, 2, 0.5).unwrap();
    let out = root.join("out");
    let o = run(
        &out,
        &[("images", &root.join("src"))],
        &["mode=mean-std", "std=50"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = all_images(&out);
    let want = numpy(root, "mean-std", &root.join("src"), &root.join("src"));
    // Summation order differs from numpy's, so a value sitting on a .5 may round either way.
    let off: Vec<i32> = got
        .iter()
        .zip(&want)
        .map(|(a, b)| i32::from(*a) - i32::from(*b))
        .filter(|d| *d != 0)
        .collect();
    assert!(
        off.iter().all(|d| d.abs() == 1) && off.len() * 1000 <= got.len(),
        "{off:?}"
    );

    let bad = root.join("bad");
    let o = run(
        &bad,
        &[("images", &root.join("src"))],
        &["mode=histogram-match"],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("reference"), "{err}");
    assert!(!bad.exists());
}
