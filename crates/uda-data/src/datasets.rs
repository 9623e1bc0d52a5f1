//! Listing the samples of the real dataset layouts.
//!
//! * GTA5: `ROOT/images/NNNNN.png` with `ROOT/labels/NNNNN.png` (label ids, often palette PNGs).
//! * Cityscapes: `ROOT/leftImg8bit/{split}/{city}/{city}_{seq}_{frame}_leftImg8bit.png` with
//!   `ROOT/gtFine/{split}/{city}/{city}_{seq}_{frame}_gtFine_labelIds.png`.
//!
//! Listing checks pairing only (cheap); decoding problems surface when the images are read.

use crate::error::{DataError, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Which folder layout a dataset root has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasetKind {
    Gta5,
    Cityscapes,
}

/// Whether label maps are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LabelPolicy {
    /// Every image must have its label map (a missing one is an error).
    #[default]
    Required,
    /// Labels are not read (unlabelled target training data).
    None,
}

/// One image and, where read, its label map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Stable name: the GTA5 file stem, or Cityscapes' `{city}_{seq}_{frame}`.
    pub name: String,
    pub image: PathBuf,
    pub label: Option<PathBuf>,
}

const CS_IMAGE_SUFFIX: &str = "_leftImg8bit.png";
const CS_LABEL_SUFFIX: &str = "_gtFine_labelIds.png";

/// Lists the samples of a dataset root, sorted by name. `split` is used by Cityscapes only.
pub fn list_samples(
    kind: DatasetKind,
    root: &Path,
    split: &str,
    labels: LabelPolicy,
) -> Result<Vec<Sample>> {
    if !root.is_dir() {
        return Err(DataError::bad(
            root,
            "dataset root is not a folder; check the path in pipeline.yaml",
        ));
    }
    let samples = match kind {
        DatasetKind::Gta5 => list_gta5(root, labels)?,
        DatasetKind::Cityscapes => list_cityscapes(root, split, labels)?,
    };
    Ok(samples)
}

fn png_files(dir: &Path, suffix: &str) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Err(DataError::bad(
            dir,
            "folder is missing; is the dataset root right?",
        ));
    }
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(dir).min_depth(1).sort_by_file_name() {
        let entry = entry.map_err(|e| DataError::bad(dir, e.to_string()))?;
        let name = entry.file_name().to_string_lossy();
        if entry.file_type().is_file() && name.ends_with(suffix) {
            files.push(entry.into_path());
        }
    }
    Ok(files)
}

fn stem_of(path: &Path, suffix: &str) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    name.strip_suffix(suffix).unwrap_or(&name).to_string()
}

fn list_gta5(root: &Path, labels: LabelPolicy) -> Result<Vec<Sample>> {
    let image_dir = root.join("images");
    let label_dir = root.join("labels");
    let images = png_files(&image_dir, ".png")?;
    if images.is_empty() {
        return Err(DataError::bad(
            &image_dir,
            "no .png images found (empty dataset)",
        ));
    }
    let mut samples: Vec<Sample> = images
        .into_iter()
        .map(|image| Sample {
            name: stem_of(&image, ".png"),
            image,
            label: None,
        })
        .collect();
    if labels == LabelPolicy::Required {
        let label_names: BTreeSet<String> = png_files(&label_dir, ".png")?
            .iter()
            .map(|p| stem_of(p, ".png"))
            .collect();
        for s in &mut samples {
            s.label = Some(label_dir.join(format!("{}.png", s.name)));
        }
        check_pairs(root, &samples, &label_names, "labels/", ".png")?;
    }
    Ok(samples)
}

fn list_cityscapes(root: &Path, split: &str, labels: LabelPolicy) -> Result<Vec<Sample>> {
    let image_dir = root.join("leftImg8bit").join(split);
    let label_dir = root.join("gtFine").join(split);
    let images = png_files(&image_dir, CS_IMAGE_SUFFIX)?;
    if images.is_empty() {
        return Err(DataError::bad(
            &image_dir,
            format!("no *{CS_IMAGE_SUFFIX} images in split '{split}' (empty split)"),
        ));
    }
    let mut samples: Vec<Sample> = images
        .into_iter()
        .map(|image| Sample {
            name: stem_of(&image, CS_IMAGE_SUFFIX),
            image,
            label: None,
        })
        .collect();
    if labels == LabelPolicy::Required {
        let label_names: BTreeSet<String> = png_files(&label_dir, CS_LABEL_SUFFIX)?
            .iter()
            .map(|p| stem_of(p, CS_LABEL_SUFFIX))
            .collect();
        for s in &mut samples {
            let city = s
                .image
                .parent()
                .and_then(Path::file_name)
                .unwrap_or_default();
            s.label = Some(
                label_dir
                    .join(city)
                    .join(format!("{}{CS_LABEL_SUFFIX}", s.name)),
            );
        }
        check_pairs(
            root,
            &samples,
            &label_names,
            &format!("gtFine/{split}/"),
            CS_LABEL_SUFFIX,
        )?;
    }
    Ok(samples)
}

/// Every image has a label and every label an image; otherwise list (up to 10 of) the strays.
fn check_pairs(
    root: &Path,
    samples: &[Sample],
    label_names: &BTreeSet<String>,
    label_where: &str,
    suffix: &str,
) -> Result<()> {
    let image_names: BTreeSet<&str> = samples.iter().map(|s| s.name.as_str()).collect();
    let no_label: Vec<&str> = samples
        .iter()
        .map(|s| s.name.as_str())
        .filter(|n| !label_names.contains(*n))
        .collect();
    let no_image: Vec<&str> = label_names
        .iter()
        .map(String::as_str)
        .filter(|n| !image_names.contains(n))
        .collect();
    if no_label.is_empty() && no_image.is_empty() {
        return Ok(());
    }
    let show = |v: &[&str]| {
        let head = v.iter().take(10).copied().collect::<Vec<_>>().join(", ");
        if v.len() > 10 {
            format!("{head}, … ({} in all)", v.len())
        } else {
            head
        }
    };
    let mut msg = String::from("images and labels do not pair up:");
    if !no_label.is_empty() {
        msg += &format!(
            " {} image(s) without a label in {label_where} (*{suffix}): {};",
            no_label.len(),
            show(&no_label)
        );
    }
    if !no_image.is_empty() {
        msg += &format!(
            " {} label(s) without an image: {};",
            no_image.len(),
            show(&no_image)
        );
    }
    msg += " add the missing files or remove the strays";
    Err(DataError::bad(root, msg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::png::{write_gray, write_rgb};

    fn gta(root: &Path, names: &[&str], labels: &[&str]) {
        for n in names {
            write_rgb(
                &root.join("images").join(format!("{n}.png")),
                2,
                2,
                &[0; 12],
            )
            .unwrap();
        }
        for n in labels {
            write_gray(&root.join("labels").join(format!("{n}.png")), 2, 2, &[7; 4]).unwrap();
        }
    }

    #[test]
    fn gta5_pairs_and_missing_labels() {
        let d = tempfile::tempdir().unwrap();
        gta(d.path(), &["00002", "00001"], &["00001", "00002"]);
        let s = list_samples(DatasetKind::Gta5, d.path(), "", LabelPolicy::Required).unwrap();
        assert_eq!(
            s.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["00001", "00002"]
        );
        assert_eq!(
            s[1].label.as_ref().unwrap(),
            &d.path().join("labels/00002.png")
        );

        let d = tempfile::tempdir().unwrap();
        gta(d.path(), &["00001", "00003"], &["00001", "00009"]);
        let e = list_samples(DatasetKind::Gta5, d.path(), "", LabelPolicy::Required)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("00003") && e.contains("00009") && e.contains("without a label"),
            "{e}"
        );
        // Unlabelled use does not look at labels at all.
        assert_eq!(
            list_samples(DatasetKind::Gta5, d.path(), "", LabelPolicy::None)
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn cityscapes_layout_and_empty_split() {
        let d = tempfile::tempdir().unwrap();
        for (city, n) in [
            ("aachen", "aachen_000000_000019"),
            ("bochum", "bochum_000000_000313"),
        ] {
            write_rgb(
                &d.path()
                    .join(format!("leftImg8bit/val/{city}/{n}_leftImg8bit.png")),
                2,
                2,
                &[0; 12],
            )
            .unwrap();
            write_gray(
                &d.path()
                    .join(format!("gtFine/val/{city}/{n}_gtFine_labelIds.png")),
                2,
                2,
                &[7; 4],
            )
            .unwrap();
            // Other gtFine files of the real layout are ignored.
            write_rgb(
                &d.path()
                    .join(format!("gtFine/val/{city}/{n}_gtFine_color.png")),
                2,
                2,
                &[0; 12],
            )
            .unwrap();
        }
        let s = list_samples(
            DatasetKind::Cityscapes,
            d.path(),
            "val",
            LabelPolicy::Required,
        )
        .unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].name, "aachen_000000_000019");
        assert!(
            s[1].label
                .as_ref()
                .unwrap()
                .ends_with("gtFine/val/bochum/bochum_000000_000313_gtFine_labelIds.png")
        );
        let e = list_samples(
            DatasetKind::Cityscapes,
            d.path(),
            "train",
            LabelPolicy::None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("leftImg8bit/train"), "{e}");
        std::fs::create_dir_all(d.path().join("leftImg8bit/test")).unwrap();
        let e = list_samples(DatasetKind::Cityscapes, d.path(), "test", LabelPolicy::None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("empty split"), "{e}");
    }
}
