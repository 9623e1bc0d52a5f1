//! Parquet tables (manifests, logs, metrics) through `arrow` + `parquet`, zstd-compressed.
//!
//! Stage binaries use these rather than polars, which would add ~100 MB to every binary.

use crate::error::{DataError, Result};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use std::path::Path;

fn perr(path: &Path, e: impl std::fmt::Display) -> DataError {
    DataError::Parquet {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Writes one record batch as a Parquet file (written to a temporary name, then renamed, so a
/// reader never sees half a file).
pub fn write_parquet(path: &Path, batch: &RecordBatch) -> Result<()> {
    let tmp = path.with_extension("parquet.tmp");
    let file = std::fs::File::create(&tmp).map_err(|e| DataError::io(&tmp, e))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let mut writer =
        ArrowWriter::try_new(file, batch.schema(), Some(props)).map_err(|e| perr(path, e))?;
    writer.write(batch).map_err(|e| perr(path, e))?;
    writer.close().map_err(|e| perr(path, e))?;
    std::fs::rename(&tmp, path).map_err(|e| DataError::io(path, e))
}

/// Reads a whole Parquet file into one record batch.
pub fn read_parquet(path: &Path) -> Result<RecordBatch> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| perr(path, e))?;
    let schema = builder.schema().clone();
    let reader = builder.build().map_err(|e| perr(path, e))?;
    let batches = reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| perr(path, e))?;
    arrow::compute::concat_batches(&schema, &batches).map_err(|e| perr(path, e))
}

/// Looks up a column by name with a typed downcast, naming the file and column on failure.
pub fn column<'a, T: 'static>(path: &Path, batch: &'a RecordBatch, name: &str) -> Result<&'a T> {
    batch
        .column_by_name(name)
        .ok_or_else(|| perr(path, format!("missing column '{name}'")))?
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| perr(path, format!("column '{name}' has an unexpected type")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, StringArray, UInt32Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn round_trip() {
        let d = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::UInt32, false),
            Field::new("name", DataType::Utf8, false),
            Field::new("iou", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(UInt32Array::from(vec![0, 1])),
                Arc::new(StringArray::from(vec!["road", "sidewalk"])),
                Arc::new(Float64Array::from(vec![Some(0.5), None])),
            ],
        )
        .unwrap();
        let path = d.path().join("t.parquet");
        write_parquet(&path, &batch).unwrap();
        let back = read_parquet(&path).unwrap();
        assert_eq!(back, batch);
        assert_eq!(
            column::<StringArray>(&path, &back, "name")
                .unwrap()
                .value(1),
            "sidewalk"
        );
        let e = column::<StringArray>(&path, &back, "nope")
            .unwrap_err()
            .to_string();
        assert!(e.contains("t.parquet") && e.contains("'nope'"), "{e}");
        assert!(!d.path().join("t.parquet.tmp").exists());
    }
}
