//! `classes.parquet`: what the thresholds did to each class, and how good the result is.
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `class_id` | u8 | train id |
//! | `class_name` | utf8 | Cityscapes class name |
//! | `threshold` | f64, null | confidence threshold (null: class never predicted) |
//! | `predicted` | u64 | pixels predicted as the class (before thresholding) |
//! | `kept` | u64 | of those, pixels kept |
//! | `dropped` | u64 | of those, pixels set to 255 |
//! | `iou_raw` | f64, null | IoU of the predictions before thresholding vs ground truth (the paper's Table 2 row) |
//! | `iou_kept` | f64, null | IoU over the kept pixels only (dropped pixels count for neither side) |
//!
//! IoU columns are null without ground truth, and where the class is in neither side.

use arrow::array::{ArrayRef, Float64Array, StringArray, UInt8Array, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use uda_data::classes::{CLASSES, NUM_CLASSES};
use uda_metrics::ConfusionMatrix;

use crate::thresholds::{ClassHistograms, Thresholds};

#[derive(Debug)]
pub struct ClassTable {
    threshold: [Option<f64>; NUM_CLASSES],
    predicted: [u64; NUM_CLASSES],
    kept: [u64; NUM_CLASSES],
    iou_raw: Option<[Option<f64>; NUM_CLASSES]>,
    iou_kept: Option<[Option<f64>; NUM_CLASSES]>,
}

impl ClassTable {
    pub fn new(
        hist: &ClassHistograms,
        thresholds: &Thresholds,
        kept: &[u64; NUM_CLASSES],
        scored: Option<(&ConfusionMatrix, &ConfusionMatrix)>,
    ) -> Self {
        Self {
            threshold: thresholds.value,
            predicted: std::array::from_fn(|c| hist.total(c)),
            kept: *kept,
            iou_raw: scored.map(|(raw, _)| raw.ious()),
            iou_kept: scored.map(|(_, k)| k.ious()),
        }
    }

    /// Headline numbers for `metrics.json`.
    pub fn headline(&self) -> BTreeMap<String, serde_json::Value> {
        let predicted: u64 = self.predicted.iter().sum();
        let kept: u64 = self.kept.iter().sum();
        let mut m = BTreeMap::new();
        m.insert(
            "kept_fraction".into(),
            (predicted > 0)
                .then(|| kept as f64 / predicted as f64)
                .into(),
        );
        let mean = |ious: &Option<[Option<f64>; NUM_CLASSES]>| {
            ious.as_ref()
                .and_then(|i| uda_metrics::scores::mean_iou(i, &[]))
        };
        m.insert("miou_raw".into(), mean(&self.iou_raw).into());
        m.insert("miou_kept".into(), mean(&self.iou_kept).into());
        m
    }

    pub fn write_parquet(&self, path: &Path) -> anyhow::Result<()> {
        let nullable = |v: Option<[Option<f64>; NUM_CLASSES]>| -> ArrayRef {
            Arc::new(Float64Array::from(
                v.map(|a| a.to_vec()).unwrap_or(vec![None; NUM_CLASSES]),
            ))
        };
        let schema = Schema::new(vec![
            Field::new("class_id", DataType::UInt8, false),
            Field::new("class_name", DataType::Utf8, false),
            Field::new("threshold", DataType::Float64, true),
            Field::new("predicted", DataType::UInt64, false),
            Field::new("kept", DataType::UInt64, false),
            Field::new("dropped", DataType::UInt64, false),
            Field::new("iou_raw", DataType::Float64, true),
            Field::new("iou_kept", DataType::Float64, true),
        ]);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(UInt8Array::from_iter_values(
                CLASSES.iter().map(|c| c.train_id),
            )),
            Arc::new(StringArray::from_iter_values(
                CLASSES.iter().map(|c| c.name),
            )),
            Arc::new(Float64Array::from(self.threshold.to_vec())),
            Arc::new(UInt64Array::from(self.predicted.to_vec())),
            Arc::new(UInt64Array::from(self.kept.to_vec())),
            Arc::new(UInt64Array::from_iter_values(
                (0..NUM_CLASSES).map(|c| self.predicted[c] - self.kept[c]),
            )),
            nullable(self.iou_raw),
            nullable(self.iou_kept),
        ];
        let batch = RecordBatch::try_new(Arc::new(schema), columns)?;
        uda_data::table::write_parquet(path, &batch)?;
        Ok(())
    }
}
