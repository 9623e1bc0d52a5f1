//! Where the data loader reads samples from: an ImageSet folder (Zarr arrays written by
//! `preprocess-resize` and friends), or memory (tests, synthetic benchmarks).

use crate::TrainError;
use std::path::Path;
use uda_data::imageset::{IMAGES, ImageSet, LABELS};

/// A random-access set of equally sized RGB images with optional label maps. `Send + Sync`, since
/// every loader worker reads from it.
pub trait SampleSource: Send + Sync + std::fmt::Debug {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// `(height, width)` of every image.
    fn size(&self) -> (usize, usize);
    fn has_labels(&self) -> bool;
    /// Reads image `index` as interleaved RGB into `buf` (`height · width · 3` bytes).
    fn read_image(&self, index: usize, buf: &mut [u8]) -> Result<(), TrainError>;
    /// Reads label map `index` (train ids, 255 = ignore) into `buf` (`height · width` bytes).
    fn read_label(&self, index: usize, buf: &mut [u8]) -> Result<(), TrainError>;
    /// Names the data in error messages (a folder path).
    fn describe(&self) -> String;
}

/// An ImageSet folder (`uda_data::imageset`): `images.zarr` and optionally `labels.zarr`.
#[derive(Debug)]
pub struct ImageSetSource {
    set: ImageSet,
}

impl ImageSetSource {
    /// Opens an ImageSet folder; `need_labels` makes a missing `labels.zarr` an error.
    pub fn open(dir: &Path, need_labels: bool) -> Result<Self, TrainError> {
        let data_err = |m: String| TrainError::Data {
            context: dir.display().to_string(),
            message: m,
        };
        let set = ImageSet::open(dir).map_err(|e| data_err(e.to_string()))?;
        if set.is_empty() {
            return Err(data_err(format!("{IMAGES} holds no images")));
        }
        if need_labels && set.labels().is_none() {
            return Err(data_err(format!(
                "has no {LABELS}, but this input needs labels (a labelled source domain)"
            )));
        }
        Ok(Self { set })
    }

    pub fn image_set(&self) -> &ImageSet {
        &self.set
    }
}

impl SampleSource for ImageSetSource {
    fn len(&self) -> usize {
        self.set.len()
    }
    fn size(&self) -> (usize, usize) {
        (self.set.height(), self.set.width())
    }
    fn has_labels(&self) -> bool {
        self.set.labels().is_some()
    }
    fn read_image(&self, index: usize, buf: &mut [u8]) -> Result<(), TrainError> {
        self.set
            .images()
            .read_into(index, buf)
            .map_err(|e| TrainError::data(format!("{} image {index}", self.set.dir().display()), e))
    }
    fn read_label(&self, index: usize, buf: &mut [u8]) -> Result<(), TrainError> {
        let labels = self.set.labels().ok_or_else(|| TrainError::Data {
            context: self.set.dir().display().to_string(),
            message: format!("has no {LABELS}"),
        })?;
        labels
            .read_into(index, buf)
            .map_err(|e| TrainError::data(format!("{} label {index}", self.set.dir().display()), e))
    }
    fn describe(&self) -> String {
        self.set.dir().display().to_string()
    }
}

/// Images (and labels) held in memory.
#[derive(Debug, Clone)]
pub struct MemorySource {
    pub height: usize,
    pub width: usize,
    /// `len · height · width · 3` bytes.
    pub images: Vec<u8>,
    /// `len · height · width` bytes.
    pub labels: Option<Vec<u8>>,
}

impl SampleSource for MemorySource {
    fn len(&self) -> usize {
        self.images.len() / (self.height * self.width * 3)
    }
    fn size(&self) -> (usize, usize) {
        (self.height, self.width)
    }
    fn has_labels(&self) -> bool {
        self.labels.is_some()
    }
    fn read_image(&self, index: usize, buf: &mut [u8]) -> Result<(), TrainError> {
        let n = self.height * self.width * 3;
        buf.copy_from_slice(&self.images[index * n..(index + 1) * n]);
        Ok(())
    }
    fn read_label(&self, index: usize, buf: &mut [u8]) -> Result<(), TrainError> {
        let n = self.height * self.width;
        let labels = self.labels.as_ref().ok_or_else(|| TrainError::Data {
            context: "in-memory data".into(),
            message: "has no labels".into(),
        })?;
        buf.copy_from_slice(&labels[index * n..(index + 1) * n]);
        Ok(())
    }
    fn describe(&self) -> String {
        format!(
            "in-memory data ({} images of {}×{})",
            self.len(),
            self.width,
            self.height
        )
    }
}
