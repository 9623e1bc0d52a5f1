//! The target side's data: target images with pseudo-labels, and their translations, checked to
//! be the same images in the same order.

use anyhow::Context;
use std::path::Path;
use std::sync::Arc;
use uda_data::ImageSet;
use uda_data::zarr::ImageArray;
use uda_train::TrainError;
use uda_train::source::{ImageSetSource, SampleSource};

/// Target images (an ImageSet) with labels from a `pseudolabel-dump` output.
#[derive(Debug)]
pub struct PseudoLabelledSource {
    images: ImageSetSource,
    labels: ImageArray,
}

impl PseudoLabelledSource {
    pub fn open(target_dir: &Path, pseudo_dir: &Path) -> anyhow::Result<Self> {
        let images = ImageSetSource::open(target_dir, false)?;
        let labels_path = pseudo_dir.join("pseudo_labels.zarr");
        let labels = ImageArray::open(&labels_path).with_context(|| {
            format!(
                "input pseudo {}: no readable pseudo_labels.zarr (is it a pseudolabel-dump output?)",
                pseudo_dir.display()
            )
        })?;
        let set = images.image_set();
        anyhow::ensure!(
            labels.len() == set.len()
                && labels.height() == set.height()
                && labels.width() == set.width(),
            "input pseudo {} holds {} label maps of {}x{} but input target {} holds {} images of {}x{}; pseudo-label the same target images at the same size",
            pseudo_dir.display(),
            labels.len(),
            labels.height(),
            labels.width(),
            target_dir.display(),
            set.len(),
            set.height(),
            set.width()
        );
        let manifest = pseudo_dir.join(uda_data::imageset::MANIFEST);
        if manifest.exists() {
            uda_data::imageset::check_same_names(set, &manifest)
                .context("input pseudo was made for other images than input target")?;
        }
        Ok(Self { images, labels })
    }
}

impl SampleSource for PseudoLabelledSource {
    fn len(&self) -> usize {
        self.images.len()
    }
    fn size(&self) -> (usize, usize) {
        self.images.size()
    }
    fn has_labels(&self) -> bool {
        true
    }
    fn read_image(&self, index: usize, buf: &mut [u8]) -> Result<(), TrainError> {
        self.images.read_image(index, buf)
    }
    fn read_label(&self, index: usize, buf: &mut [u8]) -> Result<(), TrainError> {
        self.labels.read_into(index, buf).map_err(|e| {
            TrainError::data(format!("{} label {index}", self.labels.path().display()), e)
        })
    }
    fn describe(&self) -> String {
        format!(
            "{} with labels {}",
            self.images.describe(),
            self.labels.path().display()
        )
    }
}

/// The translated target set, checked against the target set (count, size, manifest names).
pub fn open_translation(target_dir: &Path, ts_dir: &Path) -> anyhow::Result<Arc<dyn SampleSource>> {
    let target = ImageSet::open(target_dir).context("input target")?;
    let ts = ImageSetSource::open(ts_dir, false)?;
    let set = ts.image_set();
    anyhow::ensure!(
        set.len() == target.len()
            && set.height() == target.height()
            && set.width() == target.width(),
        "input target_ts {} holds {} images of {}x{} but input target {} holds {} of {}x{}; pass the t2s translation of the same target set",
        ts_dir.display(),
        set.len(),
        set.height(),
        set.width(),
        target_dir.display(),
        target.len(),
        target.height(),
        target.width()
    );
    uda_data::imageset::check_same_images(&target, set)
        .context("input target_ts is not the translation of input target")?;
    Ok(Arc::new(ts))
}
