//! Scoring a folder of prediction PNGs against Cityscapes-layout ground truth, as the official
//! `cityscapesscripts` evaluation does.
//!
//! * Ground truth: `GT_ROOT/gtFine/{split}/{city}/{city}_{seq}_{frame}_gtFine_labelIds.png`
//!   (label ids; every value must be a Cityscapes label id 0..=33, as the official script
//!   requires).
//! * Predictions: any `*.png` under `PRED_DIR` (searched recursively); a file belongs to the
//!   ground truth whose `{city}_{seq}_{frame}` its name starts with, as the official pattern
//!   `{city}_{seq}_{frame}*.png`. Single-channel 8-bit (grey or palette indices), the same size
//!   as its ground truth, holding train ids ([`PredIds::Train`]) or label ids ([`PredIds::Label`]).
//! * Every ground truth needs exactly one prediction and every prediction PNG a ground truth;
//!   otherwise an error lists the missing, extra and duplicate files. Sizes are checked from the
//!   PNG headers of all pairs before anything is decoded, and all mismatches are listed at once.
//!
//! Predictions outside the 19 classes (label ids of non-evaluated classes such as 0
//! "unlabeled", or train ids 19..=255) count as false negatives of the ground-truth class, as in
//! the official script. Label-id predictions above 33 are an error (the official script fails on
//! them too).

use crate::confusion::ConfusionMatrix;
use crate::error::{MetricsError, Result};
use crate::report::ImageResult;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use uda_data::classes::LABEL_TO_TRAIN;

/// Largest Cityscapes label id (bicycle); the official table has ids 0..=33 (and -1).
pub const MAX_LABEL_ID: u8 = 33;
const GT_SUFFIX: &str = "_gtFine_labelIds.png";
const IMAGE_SUFFIX: &str = "_leftImg8bit.png";
/// How many offending files an error message lists per kind of problem.
const SHOW: usize = 20;

/// What the pixel values of the prediction PNGs are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PredIds {
    /// Train ids 0..=18 (what FDA/ADVENT-style evaluation scripts save); anything else counts as
    /// "no class".
    #[default]
    Train,
    /// Cityscapes label ids 0..=33 (the official submission format).
    Label,
}

/// One ground-truth file and its prediction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// `{city}_{seq}_{frame}`.
    pub name: String,
    pub gt: PathBuf,
    pub pred: PathBuf,
    /// `leftImg8bit` image when the root has it (for qualitative panels).
    pub image: Option<PathBuf>,
}

/// `{city}_{seq}_{frame}` at the start of a file name: the first two consecutive all-digit
/// `_`-separated fields after a non-empty city.
pub fn cityscapes_key(file_name: &str) -> Option<String> {
    let stem = file_name.strip_suffix(".png").unwrap_or(file_name);
    let parts: Vec<&str> = stem.split('_').collect();
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (1..parts.len().saturating_sub(1))
        .find(|&j| digits(parts[j]) && digits(parts[j + 1]))
        .map(|j| parts[..j + 2].join("_"))
}

/// The first [`SHOW`] items joined by `sep`, with the total when some are left out.
fn list(sep: &str, items: impl IntoIterator<Item = String>) -> String {
    let items: Vec<String> = items.into_iter().collect();
    let mut s = items
        .iter()
        .take(SHOW)
        .cloned()
        .collect::<Vec<_>>()
        .join(sep);
    if items.len() > SHOW {
        s += &format!("{sep}… ({} in all)", items.len());
    }
    s
}

fn pngs_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
    {
        let entry = entry.map_err(|e| MetricsError::BadFile {
            path: dir.to_path_buf(),
            message: e.to_string(),
        })?;
        if entry.file_type().is_file() && entry.file_name().to_string_lossy().ends_with(".png") {
            files.push(entry.into_path());
        }
    }
    Ok(files)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Pairs every ground-truth map of `split` with its prediction; sorted by name.
pub fn match_predictions(pred_dir: &Path, gt_root: &Path, split: &str) -> Result<Vec<Pair>> {
    let gt_dir = gt_root.join("gtFine").join(split);
    if !gt_dir.is_dir() {
        return Err(MetricsError::BadFile {
            path: gt_dir,
            message:
                "no such folder; gt_root must be a Cityscapes root (holding gtFine/<split>/<city>/)"
                    .into(),
        });
    }
    if !pred_dir.is_dir() {
        return Err(MetricsError::BadFile {
            path: pred_dir.to_path_buf(),
            message: "prediction folder not found".into(),
        });
    }
    let gts: BTreeMap<String, PathBuf> = pngs_under(&gt_dir)?
        .into_iter()
        .filter_map(|p| Some((file_name(&p).strip_suffix(GT_SUFFIX)?.to_string(), p)))
        .collect();
    if gts.is_empty() {
        return Err(MetricsError::BadFile {
            path: gt_dir,
            message: format!("no *{GT_SUFFIX} files (empty split?)"),
        });
    }
    let mut preds: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    let mut extra = Vec::new();
    for p in pngs_under(pred_dir)? {
        match cityscapes_key(&file_name(&p)) {
            Some(key) if gts.contains_key(&key) => preds.entry(key).or_default().push(p),
            _ => extra.push(p),
        }
    }
    let missing: Vec<&String> = gts.keys().filter(|k| !preds.contains_key(*k)).collect();
    let duplicate: Vec<(&String, &Vec<PathBuf>)> =
        preds.iter().filter(|(_, v)| v.len() > 1).collect();
    if !missing.is_empty() || !extra.is_empty() || !duplicate.is_empty() {
        let rel = |p: &PathBuf| p.strip_prefix(pred_dir).unwrap_or(p).display().to_string();
        let mut msg = format!(
            "predictions in {} do not match the {} ground-truth maps of {}:",
            pred_dir.display(),
            gts.len(),
            gt_dir.display()
        );
        if !missing.is_empty() {
            msg += &format!(
                "\n  {} ground truth(s) without a prediction (expected a file named <key>*.png): {}",
                missing.len(),
                list(", ", missing.iter().map(|s| s.to_string()))
            );
        }
        if !extra.is_empty() {
            msg += &format!(
                "\n  {} prediction file(s) matching no ground truth of split '{split}': {}",
                extra.len(),
                list(", ", extra.iter().map(rel))
            );
        }
        if !duplicate.is_empty() {
            msg += &format!(
                "\n  {} ground truth(s) with several predictions (keep one per image; move previews such as *_color.png elsewhere): {}",
                duplicate.len(),
                list(
                    ", ",
                    duplicate.iter().map(|(k, v)| format!(
                        "{k}: {}",
                        v.iter().map(rel).collect::<Vec<_>>().join(" + ")
                    ))
                )
            );
        }
        return Err(MetricsError::External { message: msg });
    }
    let image_dir = gt_root.join("leftImg8bit").join(split);
    Ok(gts
        .into_iter()
        .map(|(name, gt)| {
            let city = gt
                .parent()
                .and_then(Path::file_name)
                .map(PathBuf::from)
                .unwrap_or_default();
            let image = image_dir.join(city).join(format!("{name}{IMAGE_SUFFIX}"));
            let pred = preds
                .remove(&name)
                .and_then(|mut v| v.pop())
                .expect("every key has one prediction");
            Pair {
                name,
                gt,
                pred,
                image: image.is_file().then_some(image),
            }
        })
        .collect())
}

/// Width and height from a PNG header, without decoding the image.
pub fn png_size(path: &Path) -> Result<(usize, usize)> {
    let bad = |m: String| MetricsError::BadFile {
        path: path.to_path_buf(),
        message: m,
    };
    let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .map_err(|e| bad(format!("cannot read PNG header: {e}")))?;
    let info = reader.info();
    Ok((info.width as usize, info.height as usize))
}

/// Checks every pair's sizes from the headers; all mismatches in one error.
pub fn check_sizes(pairs: &[Pair]) -> Result<()> {
    let results: Vec<Result<Option<String>>> = pairs
        .par_iter()
        .map(|p| {
            let (g, q) = (png_size(&p.gt)?, png_size(&p.pred)?);
            Ok((g != q).then(|| {
                format!(
                    "{} is {}x{} but its ground truth is {}x{}",
                    p.pred.display(),
                    q.0,
                    q.1,
                    g.0,
                    g.1
                )
            }))
        })
        .collect();
    let mut mismatched = Vec::new();
    for r in results {
        if let Some(m) = r? {
            mismatched.push(m);
        }
    }
    if mismatched.is_empty() {
        return Ok(());
    }
    Err(MetricsError::External {
        message: format!(
            "{} prediction(s) differ in size from their ground truth (predict at label resolution):\n  {}",
            mismatched.len(),
            list("\n  ", mismatched)
        ),
    })
}

fn over_33(path: &Path, what: &str, map: &[u8]) -> Result<()> {
    if let Some(&v) = map.iter().find(|&&v| v > MAX_LABEL_ID) {
        let n = map.iter().filter(|&&v| v > MAX_LABEL_ID).count();
        return Err(MetricsError::BadFile {
            path: path.to_path_buf(),
            message: format!(
                "{n} pixel(s) hold {v} (or another value above {MAX_LABEL_ID}), not a Cityscapes label id; {what}"
            ),
        });
    }
    Ok(())
}

/// Ground truth and prediction of a pair as train-id maps (gt 255 = ignore), with their size.
pub fn load_pair(pair: &Pair, pred_ids: PredIds) -> Result<(usize, usize, Vec<u8>, Vec<u8>)> {
    let gt = uda_data::png::read_label(&pair.gt)?;
    let pred = uda_data::png::read_label(&pair.pred)?;
    if (gt.width, gt.height) != (pred.width, pred.height) {
        return Err(MetricsError::BadFile {
            path: pair.pred.clone(),
            message: format!(
                "is {}x{} but its ground truth is {}x{}",
                pred.width, pred.height, gt.width, gt.height
            ),
        });
    }
    over_33(&pair.gt, "is this a *_gtFine_labelIds.png?", &gt.pixels)?;
    let mut gt_train = gt.pixels;
    uda_data::classes::label_ids_to_train_ids(&mut gt_train);
    let mut pred_train = pred.pixels;
    if pred_ids == PredIds::Label {
        over_33(
            &pair.pred,
            "with pred_ids=label predictions must be label ids 0..=33 (pass pred_ids=train for train ids)",
            &pred_train,
        )?;
        for p in &mut pred_train {
            *p = LABEL_TO_TRAIN[*p as usize];
        }
    }
    Ok((gt.width, gt.height, gt_train, pred_train))
}

/// Scores every pair in parallel (after [`check_sizes`]), calling `done` after each image.
/// Results keep the order of `pairs`.
pub fn score_pairs(
    pairs: &[Pair],
    pred_ids: PredIds,
    done: impl Fn() + Sync,
) -> Result<Vec<ImageResult>> {
    check_sizes(pairs)?;
    pairs
        .par_iter()
        .map(|pair| {
            let (_, _, gt, pred) = load_pair(pair, pred_ids)?;
            let matrix = ConfusionMatrix::from_maps(&gt, &pred)?;
            done();
            Ok(ImageResult {
                name: pair.name.clone(),
                matrix,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use uda_data::png::write_gray;

    #[test]
    fn keys_as_the_official_pattern() {
        assert_eq!(
            cityscapes_key("aachen_000000_000019_leftImg8bit.png").as_deref(),
            Some("aachen_000000_000019")
        );
        assert_eq!(
            cityscapes_key("frankfurt_000001_083852.png").as_deref(),
            Some("frankfurt_000001_083852")
        );
        assert_eq!(
            cityscapes_key("bad_city_000001_000002_pred.png").as_deref(),
            Some("bad_city_000001_000002")
        );
        assert_eq!(cityscapes_key("000001_000002.png"), None);
        assert_eq!(cityscapes_key("notes.png"), None);
    }

    fn gt(root: &Path, name: &str, w: usize, h: usize, v: u8) {
        let city = name.split('_').next().unwrap();
        write_gray(
            &root.join(format!("gtFine/val/{city}/{name}{GT_SUFFIX}")),
            w,
            h,
            &vec![v; w * h],
        )
        .unwrap();
    }

    #[test]
    fn missing_extra_duplicate_and_size_errors_list_files() {
        let d = tempfile::tempdir().unwrap();
        let (root, preds) = (d.path().join("cs"), d.path().join("pred"));
        gt(&root, "lindau_000000_000019", 4, 2, 7);
        gt(&root, "lindau_000001_000019", 4, 2, 7);
        gt(&root, "munster_000000_000019", 4, 2, 7);
        write_gray(&preds.join("lindau_000000_000019.png"), 4, 2, &[0; 8]).unwrap();
        write_gray(
            &preds.join("sub/lindau_000000_000019_color.png"),
            4,
            2,
            &[0; 8],
        )
        .unwrap();
        write_gray(&preds.join("zurich_000000_000001.png"), 4, 2, &[0; 8]).unwrap();
        std::fs::write(preds.join("readme.txt"), "not a png").unwrap();
        let e = match_predictions(&preds, &root, "val")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("2 ground truth(s) without a prediction")
                && e.contains("lindau_000001_000019")
                && e.contains("munster_000000_000019"),
            "{e}"
        );
        assert!(
            e.contains("1 prediction file(s) matching no ground truth")
                && e.contains("zurich_000000_000001.png"),
            "{e}"
        );
        assert!(
            e.contains("several predictions") && e.contains("sub/lindau_000000_000019_color.png"),
            "{e}"
        );
        assert!(!e.contains("readme"), "{e}");

        std::fs::remove_file(preds.join("sub/lindau_000000_000019_color.png")).unwrap();
        std::fs::remove_file(preds.join("zurich_000000_000001.png")).unwrap();
        write_gray(&preds.join("lindau_000001_000019.png"), 2, 2, &[0; 4]).unwrap();
        write_gray(&preds.join("munster_000000_000019.png"), 4, 3, &[0; 12]).unwrap();
        let pairs = match_predictions(&preds, &root, "val").unwrap();
        assert_eq!(pairs.len(), 3);
        assert_eq!(pairs[2].name, "munster_000000_000019");
        assert!(pairs[0].image.is_none());
        let e = score_pairs(&pairs, PredIds::Train, || {})
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("2 prediction(s) differ in size") && e.contains("2x2") && e.contains("4x3"),
            "{e}"
        );

        let e = match_predictions(&preds, &root, "train")
            .unwrap_err()
            .to_string();
        assert!(e.contains("gtFine/train"), "{e}");
    }

    #[test]
    fn label_and_train_ids_and_bad_values() {
        let d = tempfile::tempdir().unwrap();
        let (root, preds) = (d.path().join("cs"), d.path().join("pred"));
        let name = "lindau_000000_000019";
        // gt: road, road, car, unlabeled(0) ; pred as label ids: road, parking(9), car, car.
        write_gray(
            &root.join(format!("gtFine/val/lindau/{name}{GT_SUFFIX}")),
            4,
            1,
            &[7, 7, 26, 0],
        )
        .unwrap();
        write_gray(&preds.join(format!("{name}.png")), 4, 1, &[7, 9, 26, 26]).unwrap();
        let pairs = match_predictions(&preds, &root, "val").unwrap();
        let r = score_pairs(&pairs, PredIds::Label, || {}).unwrap();
        let m = &r[0].matrix;
        assert_eq!(
            (
                m.count(0, 0),
                m.count(0, crate::OTHER),
                m.count(13, 13),
                m.ignored_pixels()
            ),
            (1, 1, 1, 1)
        );
        // The same file read as train ids: 7 = traffic sign, 9 = terrain, 26 = other.
        let r = score_pairs(&pairs, PredIds::Train, || {}).unwrap();
        assert_eq!(r[0].matrix.count(0, 7), 1);
        assert_eq!(r[0].matrix.count(13, crate::OTHER), 1);

        write_gray(&preds.join(format!("{name}.png")), 4, 1, &[7, 9, 26, 40]).unwrap();
        let e = score_pairs(&pairs, PredIds::Label, || {})
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("{name}.png")) && e.contains("40") && e.contains("pred_ids=train"),
            "{e}"
        );
        write_gray(
            &root.join(format!("gtFine/val/lindau/{name}{GT_SUFFIX}")),
            4,
            1,
            &[7, 255, 26, 0],
        )
        .unwrap();
        let e = score_pairs(&pairs, PredIds::Train, || {})
            .unwrap_err()
            .to_string();
        assert!(e.contains(GT_SUFFIX) && e.contains("255"), "{e}");
    }
}
