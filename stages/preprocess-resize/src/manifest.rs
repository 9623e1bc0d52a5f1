//! `manifest.parquet`: one row per image, so every array index traces back to its source files.
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `index` | u32 | position in `images.zarr` / `labels.zarr` |
//! | `name` | utf8 | GTA5 file stem or Cityscapes `{city}_{seq}_{frame}` |
//! | `image_path` | utf8 | image path relative to the dataset root |
//! | `label_path` | utf8, null | label path relative to the root (null when labels are not read) |
//! | `orig_width`, `orig_height` | u32 | size before resizing |
//! | `content_hash` | utf8 | blake3 (hex) of the source image bytes followed by the label bytes |

use crate::SampleInfo;
use arrow::array::{ArrayRef, StringArray, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use std::path::Path;
use std::sync::Arc;
use uda_data::datasets::Sample;

/// One manifest row; serialised into a shard's `shard.json` so the merge writes the manifest.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Row {
    index: u32,
    name: String,
    image_path: String,
    label_path: Option<String>,
    orig_width: u32,
    orig_height: u32,
    content_hash: String,
}

fn relative(root: &Path, p: &Path) -> String {
    p.strip_prefix(root)
        .unwrap_or(p)
        .to_string_lossy()
        .into_owned()
}

impl Row {
    pub(crate) fn new(index: usize, root: &Path, s: &Sample, out: &SampleInfo) -> Self {
        Self {
            index: index as u32,
            name: s.name.clone(),
            image_path: relative(root, &s.image),
            label_path: s.label.as_deref().map(|l| relative(root, l)),
            orig_width: out.orig_width as u32,
            orig_height: out.orig_height as u32,
            content_hash: out.content_hash.clone(),
        }
    }
}

pub(crate) fn write(path: &Path, rows: &[Row]) -> anyhow::Result<()> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("index", DataType::UInt32, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("image_path", DataType::Utf8, false),
        Field::new("label_path", DataType::Utf8, true),
        Field::new("orig_width", DataType::UInt32, false),
        Field::new("orig_height", DataType::UInt32, false),
        Field::new("content_hash", DataType::Utf8, false),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.index))),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.name.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.image_path.as_str()),
        )),
        Arc::new(StringArray::from_iter(
            rows.iter().map(|r| r.label_path.as_deref()),
        )),
        Arc::new(UInt32Array::from_iter_values(
            rows.iter().map(|r| r.orig_width),
        )),
        Arc::new(UInt32Array::from_iter_values(
            rows.iter().map(|r| r.orig_height),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.content_hash.as_str()),
        )),
    ];
    uda_data::table::write_parquet(path, &RecordBatch::try_new(schema, cols)?)?;
    Ok(())
}
