//! The Parquet files of an evaluation (zstd, written atomically by `uda_data::table`).
//!
//! `per_class.parquet`, one row per train id 0..=18:
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `class_id` | u8 | train id |
//! | `class_name` | utf8 | Cityscapes class name |
//! | `iou` | f64, null | TP / (TP + FP + FN); null when the class is in neither ground truth nor prediction |
//! | `tp`, `fp`, `fn` | u64 | pixel counts over all images (FN includes predictions outside the 19 classes) |
//!
//! `summary.parquet`, one row:
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `miou` | f64, null | mean IoU over the classes whose IoU is defined |
//! | `miou16`, `miou13` | f64, null | the same without train ids 9, 14, 16 (and also 3, 4, 5) |
//! | `pixel_accuracy` | f64, null | correct / evaluated pixels |
//! | `images` | u64 | images evaluated |
//! | `valid_pixels` | u64 | evaluated pixels (ground truth not 255) |
//! | `other_pixels` | u64 | evaluated pixels predicted outside the 19 classes |
//! | `defined_classes` | u32 | classes with a defined IoU |
//! | `stage` | utf8 | the stage that wrote the report (`evaluate`) |
//! | `mode` | utf8 | `model` (a checkpoint run on an ImageSet) or `external` (prediction PNGs) |
//! | `predictions` | utf8 | the checkpoint folder or prediction folder scored |
//! | `ground_truth` | utf8 | the labels used (ImageSet folder, or Cityscapes root and split) |
//! | `model_meta` | utf8, null | the checkpoint's `model.json` verbatim (what trained it, how); null for external predictions |
//! | `params` | utf8 | the evaluation's params as JSON |
//!
//! `per_image.parquet`, one row per image in evaluation order:
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `index` | u32 | position in the evaluated set |
//! | `name` | utf8 | image name (manifest `name`, or Cityscapes `{city}_{seq}_{frame}`) |
//! | `miou` | f64, null | mean IoU over the classes defined in this image alone |
//! | `pixel_accuracy` | f64, null | correct / evaluated pixels of this image; null when all are 255 |
//! | `valid_pixels` | u64 | evaluated pixels of this image |
//!
//! `confusion.parquet`, the summed matrix in long form, 19 × 20 rows (zeros included):
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `gt` | u8 | ground-truth train id 0..=18 |
//! | `pred` | u8 | predicted train id 0..=18, or 255 = any prediction outside the 19 classes |
//! | `count` | u64 | pixels |
//!
//! The counts of `confusion.parquet` sum to `valid_pixels`.

use crate::confusion::{COLUMNS, ConfusionMatrix, OTHER};
use crate::error::Result;
use arrow::array::{ArrayRef, Float64Array, StringArray, UInt8Array, UInt32Array, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use std::path::Path;
use std::sync::Arc;
use uda_data::classes::{IGNORE, NUM_CLASSES};
use uda_data::table::write_parquet;

pub const PER_CLASS: &str = "per_class.parquet";
pub const SUMMARY: &str = "summary.parquet";
pub const PER_IMAGE: &str = "per_image.parquet";
pub const CONFUSION: &str = "confusion.parquet";

/// One evaluated image.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageResult {
    pub name: String,
    pub matrix: ConfusionMatrix,
}

/// What produced a report (the provenance columns of `summary.parquet`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    pub stage: String,
    pub mode: String,
    pub predictions: String,
    pub ground_truth: String,
    pub model_meta: Option<String>,
    pub params: String,
}

/// A whole evaluation: per-image matrices in order, and where they came from.
#[derive(Debug, Clone)]
pub struct Report {
    pub images: Vec<ImageResult>,
    pub total: ConfusionMatrix,
    pub provenance: Provenance,
}

impl Report {
    /// Sums the per-image matrices.
    pub fn new(images: Vec<ImageResult>, provenance: Provenance) -> Self {
        let mut total = ConfusionMatrix::new();
        for i in &images {
            total.merge(&i.matrix);
        }
        Self {
            images,
            total,
            provenance,
        }
    }

    /// Writes the four Parquet files into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        write_parquet(&dir.join(PER_CLASS), &self.per_class_batch())?;
        write_parquet(&dir.join(SUMMARY), &self.summary_batch())?;
        write_parquet(&dir.join(PER_IMAGE), &self.per_image_batch())?;
        write_parquet(&dir.join(CONFUSION), &self.confusion_batch())?;
        Ok(())
    }

    pub fn per_class_batch(&self) -> RecordBatch {
        let s = self.total.scores();
        let c = &s.classes;
        batch(
            vec![
                Field::new("class_id", DataType::UInt8, false),
                Field::new("class_name", DataType::Utf8, false),
                Field::new("iou", DataType::Float64, true),
                Field::new("tp", DataType::UInt64, false),
                Field::new("fp", DataType::UInt64, false),
                Field::new("fn", DataType::UInt64, false),
            ],
            vec![
                Arc::new(UInt8Array::from_iter_values(c.iter().map(|x| x.class_id))),
                Arc::new(StringArray::from_iter_values(c.iter().map(|x| x.name))),
                Arc::new(Float64Array::from_iter(c.iter().map(|x| x.iou))),
                Arc::new(UInt64Array::from_iter_values(c.iter().map(|x| x.tp))),
                Arc::new(UInt64Array::from_iter_values(c.iter().map(|x| x.fp))),
                Arc::new(UInt64Array::from_iter_values(c.iter().map(|x| x.fn_))),
            ],
        )
    }

    pub fn summary_batch(&self) -> RecordBatch {
        let s = self.total.scores();
        let p = &self.provenance;
        let f64_col = |v: Option<f64>| -> ArrayRef { Arc::new(Float64Array::from(vec![v])) };
        let u64_col = |v: u64| -> ArrayRef { Arc::new(UInt64Array::from(vec![v])) };
        let str_col = |v: Option<&str>| -> ArrayRef { Arc::new(StringArray::from(vec![v])) };
        batch(
            vec![
                Field::new("miou", DataType::Float64, true),
                Field::new("miou16", DataType::Float64, true),
                Field::new("miou13", DataType::Float64, true),
                Field::new("pixel_accuracy", DataType::Float64, true),
                Field::new("images", DataType::UInt64, false),
                Field::new("valid_pixels", DataType::UInt64, false),
                Field::new("other_pixels", DataType::UInt64, false),
                Field::new("defined_classes", DataType::UInt32, false),
                Field::new("stage", DataType::Utf8, false),
                Field::new("mode", DataType::Utf8, false),
                Field::new("predictions", DataType::Utf8, false),
                Field::new("ground_truth", DataType::Utf8, false),
                Field::new("model_meta", DataType::Utf8, true),
                Field::new("params", DataType::Utf8, false),
            ],
            vec![
                f64_col(s.miou),
                f64_col(s.miou16),
                f64_col(s.miou13),
                f64_col(s.pixel_accuracy),
                u64_col(self.images.len() as u64),
                u64_col(s.valid_pixels),
                u64_col(s.other_pixels),
                Arc::new(UInt32Array::from(vec![s.defined_classes as u32])),
                str_col(Some(&p.stage)),
                str_col(Some(&p.mode)),
                str_col(Some(&p.predictions)),
                str_col(Some(&p.ground_truth)),
                str_col(p.model_meta.as_deref()),
                str_col(Some(&p.params)),
            ],
        )
    }

    pub fn per_image_batch(&self) -> RecordBatch {
        let scores: Vec<_> = self.images.iter().map(|i| i.matrix.scores()).collect();
        batch(
            vec![
                Field::new("index", DataType::UInt32, false),
                Field::new("name", DataType::Utf8, false),
                Field::new("miou", DataType::Float64, true),
                Field::new("pixel_accuracy", DataType::Float64, true),
                Field::new("valid_pixels", DataType::UInt64, false),
            ],
            vec![
                Arc::new(UInt32Array::from_iter_values(0..self.images.len() as u32)),
                Arc::new(StringArray::from_iter_values(
                    self.images.iter().map(|i| i.name.as_str()),
                )),
                Arc::new(Float64Array::from_iter(scores.iter().map(|s| s.miou))),
                Arc::new(Float64Array::from_iter(
                    scores.iter().map(|s| s.pixel_accuracy),
                )),
                Arc::new(UInt64Array::from_iter_values(
                    scores.iter().map(|s| s.valid_pixels),
                )),
            ],
        )
    }

    pub fn confusion_batch(&self) -> RecordBatch {
        let cells: Vec<(u8, u8, u64)> = (0..NUM_CLASSES)
            .flat_map(|g| (0..COLUMNS).map(move |p| (g, p)))
            .map(|(g, p)| {
                (
                    g as u8,
                    if p == OTHER { IGNORE } else { p as u8 },
                    self.total.count(g, p),
                )
            })
            .collect();
        batch(
            vec![
                Field::new("gt", DataType::UInt8, false),
                Field::new("pred", DataType::UInt8, false),
                Field::new("count", DataType::UInt64, false),
            ],
            vec![
                Arc::new(UInt8Array::from_iter_values(cells.iter().map(|c| c.0))),
                Arc::new(UInt8Array::from_iter_values(cells.iter().map(|c| c.1))),
                Arc::new(UInt64Array::from_iter_values(cells.iter().map(|c| c.2))),
            ],
        )
    }
}

fn batch(fields: Vec<Field>, columns: Vec<ArrayRef>) -> RecordBatch {
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .expect("columns are built to match their schema")
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Array;
    use uda_data::table::{column, read_parquet};

    fn provenance() -> Provenance {
        Provenance {
            stage: "evaluate".into(),
            mode: "external".into(),
            predictions: "/p".into(),
            ground_truth: "/g".into(),
            model_meta: None,
            params: "{}".into(),
        }
    }

    #[test]
    fn files_round_trip_with_documented_columns() {
        let a = ImageResult {
            name: "a".into(),
            matrix: ConfusionMatrix::from_maps(&[0, 0, 1, 255], &[0, 1, 1, 3]).unwrap(),
        };
        let b = ImageResult {
            name: "b".into(),
            matrix: ConfusionMatrix::from_maps(&[255, 255], &[0, 0]).unwrap(),
        };
        let c = ImageResult {
            name: "c".into(),
            matrix: ConfusionMatrix::from_maps(&[2, 2], &[2, 250]).unwrap(),
        };
        let r = Report::new(vec![a, b, c], provenance());
        let d = tempfile::tempdir().unwrap();
        r.write(d.path()).unwrap();

        let path = d.path().join(PER_CLASS);
        let t = read_parquet(&path).unwrap();
        assert_eq!(t.num_rows(), 19);
        let iou = column::<Float64Array>(&path, &t, "iou").unwrap();
        assert_eq!(iou.value(0), 0.5); // road: tp 1, fn 1
        assert_eq!(iou.value(1), 0.5); // sidewalk: tp 1, fp 1
        assert_eq!(iou.value(2), 0.5); // building: tp 1, fn 1 (predicted 250)
        assert!(iou.is_null(3));
        assert_eq!(column::<UInt64Array>(&path, &t, "fn").unwrap().value(2), 1);
        assert_eq!(
            column::<StringArray>(&path, &t, "class_name")
                .unwrap()
                .value(18),
            "bicycle"
        );

        let path = d.path().join(SUMMARY);
        let t = read_parquet(&path).unwrap();
        assert_eq!(t.num_rows(), 1);
        assert_eq!(
            column::<Float64Array>(&path, &t, "miou").unwrap().value(0),
            0.5
        );
        assert_eq!(
            column::<Float64Array>(&path, &t, "pixel_accuracy")
                .unwrap()
                .value(0),
            3.0 / 5.0
        );
        assert_eq!(
            column::<UInt64Array>(&path, &t, "images").unwrap().value(0),
            3
        );
        assert_eq!(
            column::<UInt64Array>(&path, &t, "other_pixels")
                .unwrap()
                .value(0),
            1
        );
        assert!(
            column::<StringArray>(&path, &t, "model_meta")
                .unwrap()
                .is_null(0)
        );
        assert_eq!(
            column::<StringArray>(&path, &t, "mode").unwrap().value(0),
            "external"
        );

        let path = d.path().join(PER_IMAGE);
        let t = read_parquet(&path).unwrap();
        let miou = column::<Float64Array>(&path, &t, "miou").unwrap();
        assert_eq!(miou.value(0), 0.5);
        assert!(miou.is_null(1));
        assert!(
            column::<Float64Array>(&path, &t, "pixel_accuracy")
                .unwrap()
                .is_null(1)
        );
        assert_eq!(
            column::<StringArray>(&path, &t, "name").unwrap().value(2),
            "c"
        );

        let path = d.path().join(CONFUSION);
        let t = read_parquet(&path).unwrap();
        assert_eq!(t.num_rows(), 19 * 20);
        let count = column::<UInt64Array>(&path, &t, "count").unwrap();
        assert_eq!(count.iter().flatten().sum::<u64>(), 5);
        let pred = column::<UInt8Array>(&path, &t, "pred").unwrap();
        let gt = column::<UInt8Array>(&path, &t, "gt").unwrap();
        let other_building = (0..t.num_rows())
            .find(|&i| gt.value(i) == 2 && pred.value(i) == 255)
            .unwrap();
        assert_eq!(count.value(other_building), 1);
    }
}
