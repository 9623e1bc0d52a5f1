//! Agreement with the public references, run from the project virtualenv:
//! * per-class IoU and mean IoU equal (≤ 1e-9) to the official `cityscapesscripts` pixel-level
//!   evaluation on the same label-id PNGs (non-evaluated labels in ground truth and
//!   predictions, an absent class, several image sizes);
//! * the confusion matrix equal to numpy's `fast_hist` of the reference evaluation code.

use std::path::{Path, PathBuf};
use std::process::Command;
use uda_data::classes::{CLASSES, IGNORE};
use uda_data::png::write_gray;
use uda_metrics::external::{PredIds, match_predictions, score_pairs};
use uda_metrics::{ConfusionMatrix, Provenance, Report};

fn python() -> PathBuf {
    uda_testing::venv_python()
}

fn run_python(script: &str, args: &[&Path]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/py")
        .join(script);
    let out = Command::new(python())
        .arg(&script)
        .args(args)
        .output()
        .expect("running python");
    assert!(
        out.status.success(),
        "{} failed:\n{}\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A small deterministic generator (no dependency on a particular rand version).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }
    fn below(&mut self, n: u32) -> u32 {
        self.next() % n
    }
}

/// Label ids used: everything 0..=33 except 31 (train), which must come out undefined, and 32
/// (motorcycle), which only [`structured_prediction`] places.
fn random_label_id(rng: &mut Lcg) -> u8 {
    loop {
        let id = rng.below(34) as u8;
        if id != 31 && id != 32 {
            return id;
        }
    }
}

/// A structured label-id map: rectangles of one id over a background, like scene layouts.
fn structured_map(rng: &mut Lcg, w: usize, h: usize) -> Vec<u8> {
    let mut map = vec![random_label_id(rng); w * h];
    for _ in 0..12 {
        let (x0, y0) = (rng.below(w as u32) as usize, rng.below(h as u32) as usize);
        let (rw, rh) = (
            1 + rng.below(w as u32 / 2) as usize,
            1 + rng.below(h as u32 / 2) as usize,
        );
        let id = random_label_id(rng);
        for y in y0..(y0 + rh).min(h) {
            map[y * w + x0..(x0 + rw).min(w) + y * w].fill(id);
        }
    }
    map
}

/// Predictions: the ground truth with shifted blocks, noise and some non-evaluated ids.
fn structured_prediction(rng: &mut Lcg, gt: &[u8], w: usize) -> Vec<u8> {
    let shift = 1 + rng.below(5) as usize;
    (0..gt.len())
        .map(|i| {
            let r = rng.below(100);
            let src = if i % w >= shift { gt[i - shift] } else { gt[i] };
            match r {
                0..=69 => src,
                70..=89 => random_label_id(rng),
                // Motorcycle (32) only ever predicted on a few pixels: false positives only
                // where the ground truth has none.
                _ => {
                    if r == 99 {
                        32
                    } else {
                        src
                    }
                }
            }
        })
        .collect()
}

#[test]
fn per_class_iou_equals_official_cityscapesscripts() {
    let d = tempfile::tempdir().unwrap();
    let (root, results) = (d.path().join("cityscapes"), d.path().join("results"));
    let mut rng = Lcg(2024);
    let images = [
        ("lindau", 0, 96, 160),
        ("lindau", 1, 96, 160),
        ("munster", 0, 64, 64),
        ("frankfurt", 7, 50, 130),
    ];
    for (i, &(city, seq, h, w)) in images.iter().enumerate() {
        let key = format!("{city}_{seq:06}_{:06}", 19 + i);
        let gt = structured_map(&mut rng, w, h);
        let pred = structured_prediction(&mut rng, &gt, w);
        write_gray(
            &root.join(format!("gtFine/val/{city}/{key}_gtFine_labelIds.png")),
            w,
            h,
            &gt,
        )
        .unwrap();
        // Nested folders and a suffix: both the official search and ours must find it.
        write_gray(
            &results.join(city).join(format!("{key}_pred.png")),
            w,
            h,
            &pred,
        )
        .unwrap();
    }

    let pairs = match_predictions(&results, &root, "val").unwrap();
    assert_eq!(pairs.len(), images.len());
    let report = Report::new(
        score_pairs(&pairs, PredIds::Label, || {}).unwrap(),
        Provenance {
            stage: "test".into(),
            mode: "external".into(),
            predictions: String::new(),
            ground_truth: String::new(),
            model_meta: None,
            params: String::new(),
        },
    );
    let ours = report.total.scores();

    let json: serde_json::Value =
        serde_json::from_str(&run_python("official_eval.py", &[&root, &results])).unwrap();
    let parse = |v: &serde_json::Value| v.as_str().map(|s| s.parse::<f64>().unwrap());
    let mut max_diff = 0.0f64;
    for class in &CLASSES {
        let official = parse(&json["classScores"][class.name]);
        let mine = ours.classes[class.train_id as usize].iou;
        match (official, mine) {
            (Some(a), Some(b)) => {
                max_diff = max_diff.max((a - b).abs());
                assert!(
                    (a - b).abs() <= 1e-9,
                    "{}: official {a}, ours {b}",
                    class.name
                );
            }
            (None, None) => {}
            (a, b) => panic!("{}: official {a:?}, ours {b:?}", class.name),
        }
    }
    let official_mean = parse(&json["average"]).unwrap();
    assert!(
        (official_mean - ours.miou.unwrap()).abs() <= 1e-9,
        "mIoU: official {official_mean}, ours {:?}",
        ours.miou
    );
    eprintln!("max |IoU difference| to cityscapesscripts: {max_diff:e}");

    // The data exercises what it should: an undefined class (train), a false-positive-only class
    // (motorcycle), and predictions of non-evaluated labels (false negatives only).
    assert_eq!(ours.classes[16].iou, None);
    assert_eq!(ours.classes[17].iou, Some(0.0));
    assert!(ours.classes[17].fp > 0);
    assert!(ours.other_pixels > 0 && report.total.ignored_pixels() > 0);
    assert_eq!(ours.defined_classes, 18);
}

#[test]
fn confusion_matrix_equals_numpy_fast_hist() {
    let d = tempfile::tempdir().unwrap();
    let mut rng = Lcg(7);
    let n = 300_001;
    let gt: Vec<u8> = (0..n)
        .map(|i| {
            if (i / 97) % 9 == 0 {
                IGNORE
            } else {
                ((i / 331) % 19) as u8
            }
        })
        .collect();
    let pred: Vec<u8> = gt
        .iter()
        .map(|&g| {
            if g != IGNORE && rng.below(3) > 0 {
                g
            } else {
                rng.below(19) as u8
            }
        })
        .collect();
    std::fs::write(d.path().join("gt.bin"), &gt).unwrap();
    std::fs::write(d.path().join("pred.bin"), &pred).unwrap();
    let numpy: Vec<Vec<u64>> = serde_json::from_str(&run_python(
        "fast_hist.py",
        &[&d.path().join("gt.bin"), &d.path().join("pred.bin")],
    ))
    .unwrap();
    let m = ConfusionMatrix::from_maps(&gt, &pred).unwrap();
    for (g, row) in numpy.iter().enumerate() {
        assert_eq!(row.as_slice(), &m.rows()[g][..19], "row {g}");
    }
    assert_eq!(m.other_pixels(), 0);
    assert!(m.ignored_pixels() > 0);
}
