//! The ImageSet folder: the unit of data that `preprocess-resize` writes and every later stage reads.
//!
//! ```text
//! <dir>/images.zarr      (N, H, W, 3) u8 RGB
//! <dir>/labels.zarr      (N, H, W)    u8 train ids, 255 = ignore   (absent for unlabelled sets)
//! <dir>/manifest.parquet one row per image (see [`crate::manifest`])
//! ```

use crate::error::{DataError, Result};
use crate::zarr::ImageArray;
use std::path::{Path, PathBuf};

pub const IMAGES: &str = "images.zarr";
pub const LABELS: &str = "labels.zarr";
pub const MANIFEST: &str = "manifest.parquet";

/// An opened ImageSet folder; images and labels are checked to have matching shapes.
#[derive(Debug)]
pub struct ImageSet {
    dir: PathBuf,
    images: ImageArray,
    labels: Option<ImageArray>,
}

impl ImageSet {
    pub fn open(dir: &Path) -> Result<Self> {
        let images_path = dir.join(IMAGES);
        if !images_path.exists() {
            return Err(DataError::bad(
                dir,
                format!(
                    "not an ImageSet folder: no {IMAGES} (expected the output of preprocess-resize or fda-translate-cache)"
                ),
            ));
        }
        let images = ImageArray::open(&images_path)?;
        if images.channels() != 3 {
            return Err(DataError::bad(
                &images_path,
                format!("expected RGB images, found {} channels", images.channels()),
            ));
        }
        let labels_path = dir.join(LABELS);
        let labels = if labels_path.exists() {
            Some(ImageArray::open(&labels_path)?)
        } else {
            None
        };
        if let Some(l) = &labels {
            let (li, ll) = (images.layout(), l.layout());
            if (li.len, li.height, li.width) != (ll.len, ll.height, ll.width) || ll.channels != 1 {
                return Err(DataError::bad(
                    dir,
                    format!(
                        "{IMAGES} is {}x{}x{} but {LABELS} is {}x{}x{}x{}; they must hold one single-channel label map per image",
                        li.len, li.height, li.width, ll.len, ll.height, ll.width, ll.channels
                    ),
                ));
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            images,
            labels,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn images(&self) -> &ImageArray {
        &self.images
    }
    pub fn labels(&self) -> Option<&ImageArray> {
        self.labels.as_ref()
    }
    pub fn len(&self) -> usize {
        self.images.len()
    }
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }
    pub fn height(&self) -> usize {
        self.images.height()
    }
    pub fn width(&self) -> usize {
        self.images.width()
    }
    pub fn manifest_path(&self) -> PathBuf {
        self.dir.join(MANIFEST)
    }

    /// The manifest's `name` column (row i names image i), or `None` when the folder has no
    /// manifest (sets written by tests and tools).
    pub fn manifest_names(&self) -> Result<Option<Vec<String>>> {
        let path = self.manifest_path();
        if !path.exists() {
            return Ok(None);
        }
        let names = manifest_names_at(&path)?;
        if names.len() != self.len() {
            return Err(DataError::bad(
                &path,
                format!(
                    "{} rows for {} images; the manifest does not belong to this ImageSet",
                    names.len(),
                    self.len()
                ),
            ));
        }
        Ok(Some(names))
    }
}

/// Gives a re-styled copy of `content` (new `images.zarr` in `out`) the content set's labels and
/// manifest — hard links where the file system allows, copies otherwise: the pixels changed, the
/// annotations did not.
pub fn link_annotations(content: &ImageSet, out: &Path) -> Result<()> {
    for name in [LABELS, MANIFEST] {
        let from = content.dir().join(name);
        if from.exists() {
            link_tree(&from, &out.join(name)).map_err(|e| DataError::io(&from, e))?;
        }
    }
    Ok(())
}

fn link_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    if from.is_dir() {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            link_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(())
    } else if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).map(|_| ())
    } else {
        Ok(())
    }
}

/// The `name` column of a manifest file.
fn manifest_names_at(path: &Path) -> Result<Vec<String>> {
    let batch = crate::table::read_parquet(path)?;
    let names = crate::table::column::<arrow::array::StringArray>(path, &batch, "name")?;
    Ok(names
        .iter()
        .map(|n| n.unwrap_or_default().to_string())
        .collect())
}

/// Checks that `set` holds the images a manifest file (copied from another set) names, in order.
pub fn check_same_names(set: &ImageSet, manifest: &Path) -> Result<()> {
    let Some(ours) = set.manifest_names()? else {
        return Ok(());
    };
    compare_names(&ours, set.dir(), &manifest_names_at(manifest)?, manifest)
}

/// Checks that two ImageSets hold the same images in the same order, by manifest name (sets
/// without a manifest are compared by count only).
pub fn check_same_images(a: &ImageSet, b: &ImageSet) -> Result<()> {
    match (a.manifest_names()?, b.manifest_names()?) {
        (Some(x), Some(y)) => compare_names(&x, a.dir(), &y, &b.manifest_path()),
        _ if a.len() != b.len() => Err(DataError::bad(
            b.dir(),
            format!(
                "holds {} images but {} holds {}",
                b.len(),
                a.dir().display(),
                a.len()
            ),
        )),
        _ => Ok(()),
    }
}

fn compare_names(a: &[String], a_dir: &Path, b: &[String], b_path: &Path) -> Result<()> {
    if a.len() != b.len() {
        return Err(DataError::bad(
            b_path,
            format!(
                "names {} images but {} holds {}",
                b.len(),
                a_dir.display(),
                a.len()
            ),
        ));
    }
    match (0..a.len()).find(|&i| a[i] != b[i]) {
        Some(i) => Err(DataError::bad(
            b_path,
            format!(
                "image {i} is '{}' here but '{}' in {}; the two must hold the same images in the same order",
                b[i],
                a[i],
                a_dir.display()
            ),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zarr::{ArrayLayout, ImageArrayWriter};
    use arrow::array::StringArray;
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;
    use std::sync::Arc;

    fn set_with_names(dir: &Path, names: &[&str]) -> ImageSet {
        let w = ImageArrayWriter::create(&dir.join(IMAGES), ArrayLayout::images(names.len(), 2, 3))
            .unwrap();
        w.write_shard(0, &vec![0u8; names.len() * 18]).unwrap();
        w.finish().unwrap();
        let schema = Schema::new(vec![Field::new("name", DataType::Utf8, false)]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![Arc::new(StringArray::from_iter_values(names.iter()))],
        )
        .unwrap();
        crate::table::write_parquet(&dir.join(MANIFEST), &batch).unwrap();
        ImageSet::open(dir).unwrap()
    }

    #[test]
    fn same_images_are_checked_by_manifest_name() {
        let d = tempfile::tempdir().unwrap();
        let a = set_with_names(&d.path().join("a"), &["x", "y"]);
        let b = set_with_names(&d.path().join("b"), &["x", "y"]);
        let c = set_with_names(&d.path().join("c"), &["x", "z"]);
        assert_eq!(a.manifest_names().unwrap().unwrap(), vec!["x", "y"]);
        check_same_images(&a, &b).unwrap();
        let e = check_same_images(&a, &c).unwrap_err().to_string();
        assert!(
            e.contains("image 1") && e.contains("'z'") && e.contains("'y'"),
            "{e}"
        );
        check_same_names(&a, &b.manifest_path()).unwrap();
        assert!(check_same_names(&a, &c.manifest_path()).is_err());
    }
}
