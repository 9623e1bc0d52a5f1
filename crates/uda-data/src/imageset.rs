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
}
