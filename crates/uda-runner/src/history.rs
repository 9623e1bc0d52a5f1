//! Run history (one Parquet file per `uda-pipe run` under `cache/history/`, so concurrent runs
//! never rewrite a shared file) and printing Parquet files as text tables.

use crate::error::TableError;
use crate::error::{Result, RunnerError};
use arrow::array::{
    ArrayRef, Float64Array, Int32Array, RecordBatch, StringArray, TimestampMillisecondArray,
    UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One node of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRow {
    pub run_id: String,
    pub pipeline: String,
    pub node: String,
    pub stage: String,
    pub kind: String,
    pub key: String,
    /// `cached`, `ran`, `failed` or `skipped`.
    pub outcome: String,
    pub start_ms: u64,
    pub duration_s: f64,
    pub peak_rss_bytes: Option<u64>,
    pub exit_status: Option<i32>,
    /// Where it ran when a batch scheduler ran it (`slurm`), and its job ids.
    pub executor: Option<String>,
    pub job_id: Option<String>,
}

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("run_id", DataType::Utf8, false),
        Field::new("pipeline", DataType::Utf8, false),
        Field::new("node", DataType::Utf8, false),
        Field::new("stage", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("key", DataType::Utf8, false),
        Field::new("outcome", DataType::Utf8, false),
        Field::new(
            "start",
            DataType::Timestamp(TimeUnit::Millisecond, Some("+00:00".into())),
            false,
        ),
        Field::new("duration_s", DataType::Float64, false),
        Field::new("peak_rss_bytes", DataType::UInt64, true),
        Field::new("exit_status", DataType::Int32, true),
        Field::new("executor", DataType::Utf8, true),
        Field::new("job_id", DataType::Utf8, true),
    ]))
}

/// A history batch in the current schema: files written before a column existed get it as
/// nulls, so every run's rows print as one table.
pub fn to_current_schema(b: &RecordBatch) -> Result<RecordBatch> {
    let schema = schema();
    let cols: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| match b.column_by_name(f.name()) {
            Some(c) => Arc::clone(c),
            None => arrow::array::new_null_array(f.data_type(), b.num_rows()),
        })
        .collect();
    RecordBatch::try_new(schema, cols)
        .map_err(|e| RunnerError::table("reading an older run history", e))
}

pub fn to_batch(rows: &[HistoryRow]) -> Result<RecordBatch> {
    let s = |f: fn(&HistoryRow) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(rows.iter().map(f)))
    };
    let cols: Vec<ArrayRef> = vec![
        s(|r| &r.run_id),
        s(|r| &r.pipeline),
        s(|r| &r.node),
        s(|r| &r.stage),
        s(|r| &r.kind),
        s(|r| &r.key),
        s(|r| &r.outcome),
        Arc::new(
            TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.start_ms as i64))
                .with_timezone("+00:00"),
        ),
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|r| r.duration_s),
        )),
        Arc::new(UInt64Array::from_iter(
            rows.iter().map(|r| r.peak_rss_bytes),
        )),
        Arc::new(Int32Array::from_iter(rows.iter().map(|r| r.exit_status))),
        Arc::new(StringArray::from_iter(
            rows.iter().map(|r| r.executor.as_deref()),
        )),
        Arc::new(StringArray::from_iter(
            rows.iter().map(|r| r.job_id.as_deref()),
        )),
    ];
    RecordBatch::try_new(schema(), cols)
        .map_err(|e| RunnerError::table("building the run history", e))
}

/// Writes the rows of one run to `dir/<start>-<pid>.parquet`.
pub fn write_run(dir: &Path, run_id: &str, rows: &[HistoryRow]) -> Result<PathBuf> {
    let path = dir.join(format!("{run_id}.parquet"));
    write_parquet(&path, &to_batch(rows)?)?;
    Ok(path)
}

pub fn write_parquet(path: &Path, batch: &RecordBatch) -> Result<()> {
    let write = || -> std::result::Result<(), TableError> {
        let tmp = path.with_extension("parquet.tmp");
        let file = std::fs::File::create(&tmp)?;
        let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None)?;
        w.write(batch)?;
        w.close()?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    };
    write().map_err(|e| RunnerError::table(format!("writing {}", path.display()), e))
}

pub fn read_parquet(path: &Path) -> Result<Vec<RecordBatch>> {
    let read = || -> std::result::Result<Vec<RecordBatch>, TableError> {
        let file = std::fs::File::open(path)?;
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)?
            .build()?;
        Ok(reader.collect::<std::result::Result<Vec<_>, _>>()?)
    };
    read().map_err(|e| RunnerError::table(format!("reading {}", path.display()), e))
}

/// All history files in start order.
pub fn history_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A text table of the batches (arrow's pretty printer), at most `limit` rows.
pub fn pretty(batches: &[RecordBatch], limit: usize) -> Result<String> {
    let mut left = limit;
    let mut shown = Vec::new();
    let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
    for b in batches {
        if left == 0 {
            break;
        }
        let n = b.num_rows().min(left);
        shown.push(b.slice(0, n));
        left -= n;
    }
    let mut s = arrow::util::pretty::pretty_format_batches(&shown)
        .map_err(|e| RunnerError::table("formatting a table", e))?
        .to_string();
    if total > limit {
        s.push_str(&format!("\n({} of {total} rows shown; use --limit)", limit));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histories_written_before_the_executor_columns_read_as_nulls() {
        use arrow::array::Array;
        let row = HistoryRow {
            run_id: "r0".into(),
            pipeline: "p".into(),
            node: "gen".into(),
            stage: "gen".into(),
            kind: "k".into(),
            key: "abc".into(),
            outcome: "ran".into(),
            start_ms: 1,
            duration_s: 0.5,
            peak_rss_bytes: None,
            exit_status: Some(0),
            executor: None,
            job_id: None,
        };
        let now = to_batch(&[row]).unwrap();
        // The file as session-6 builds wrote it: no executor or job_id column.
        let old = now
            .project(&(0..now.num_columns() - 2).collect::<Vec<_>>())
            .unwrap();
        let b = to_current_schema(&old).unwrap();
        assert_eq!(b.schema(), schema());
        let col = b.column_by_name("job_id").unwrap();
        assert_eq!((col.len(), col.null_count()), (1, 1));
        assert_eq!(b.column_by_name("node").unwrap().null_count(), 0);
    }

    #[test]
    fn history_round_trips_and_prints() {
        let dir = tempfile::tempdir().unwrap();
        let row = HistoryRow {
            run_id: "r1".into(),
            pipeline: "p".into(),
            node: "fda[beta=0.01]".into(),
            stage: "fda".into(),
            kind: "k".into(),
            key: "abc".into(),
            outcome: "ran".into(),
            start_ms: 1_764_201_600_000,
            duration_s: 1.5,
            peak_rss_bytes: Some(1 << 20),
            exit_status: Some(0),
            executor: Some("slurm".into()),
            job_id: Some("41".into()),
        };
        let skipped = HistoryRow {
            outcome: "skipped".into(),
            peak_rss_bytes: None,
            exit_status: None,
            ..row.clone()
        };
        let path = write_run(dir.path(), "r1", &[row, skipped]).unwrap();
        let batches = read_parquet(&path).unwrap();
        assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 2);
        let text = pretty(&batches, 10).unwrap();
        assert!(
            text.contains("fda[beta=0.01]")
                && text.contains("2025-11-27T00:00:00Z")
                && text.contains("skipped"),
            "{text}"
        );
        assert!(pretty(&batches, 1).unwrap().contains("1 of 2 rows"));
    }
}
