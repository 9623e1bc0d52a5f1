//! The training log: one row per `log_every` iterations, kept in memory (it is small: a 150k-
//! iteration run logged every 10 iterations is 15k rows) and written as Parquet.
//!
//! Columns of `train_log.parquet`:
//! * `iteration` (u64): iterations completed when the row was taken (the row covers the
//!   `window` iterations before it);
//! * `window` (u32): how many iterations the row averages;
//! * `lr` (f64): the base learning rate of the last update in the window (group 0; other
//!   groups use their multiple of it);
//! * `loss_total` and `loss_<term>` (f64): means over the window; `loss_total` is the weighted
//!   sum that was back-propagated, the terms are unweighted;
//! * `data_wait_s` (f64): seconds the training loop spent blocked on the data loaders in the window;
//! * `step_s` (f64): wall-clock seconds of the whole window (so `Σ data_wait_s / Σ step_s` is the
//!   data-wait fraction).

use crate::TrainError;
use arrow::array::{ArrayRef, Float64Array, UInt32Array, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use std::path::Path;
use std::sync::Arc;

/// One logged window.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRow {
    pub iteration: u64,
    pub window: u32,
    pub lr: f64,
    pub loss_total: f64,
    /// Mean of each term, in the order of [`TrainLog::terms`].
    pub terms: Vec<f64>,
    pub data_wait_s: f64,
    pub step_s: f64,
}

/// All rows of a run, with the loss-term names fixed by the first iteration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrainLog {
    terms: Vec<String>,
    rows: Vec<LogRow>,
}

impl TrainLog {
    pub fn new(terms: Vec<String>) -> Self {
        Self {
            terms,
            rows: Vec::new(),
        }
    }

    pub fn terms(&self) -> &[String] {
        &self.terms
    }

    pub fn rows(&self) -> &[LogRow] {
        &self.rows
    }

    pub fn push(&mut self, row: LogRow) {
        debug_assert_eq!(row.terms.len(), self.terms.len());
        self.rows.push(row);
    }

    /// Drops rows past `iteration` (a resumed run re-logs the iterations after its checkpoint).
    pub fn truncate_after(&mut self, iteration: u64) {
        self.rows.retain(|r| r.iteration <= iteration);
    }

    /// Fraction of the logged wall-clock time spent waiting for data (0 when nothing is logged).
    pub fn data_wait_fraction(&self) -> f64 {
        let wait: f64 = self.rows.iter().map(|r| r.data_wait_s).sum();
        let total: f64 = self.rows.iter().map(|r| r.step_s).sum();
        if total > 0.0 { wait / total } else { 0.0 }
    }

    fn schema(&self) -> Schema {
        let mut fields = vec![
            Field::new("iteration", DataType::UInt64, false),
            Field::new("window", DataType::UInt32, false),
            Field::new("lr", DataType::Float64, false),
            Field::new("loss_total", DataType::Float64, false),
        ];
        fields.extend(
            self.terms
                .iter()
                .map(|t| Field::new(format!("loss_{t}"), DataType::Float64, false)),
        );
        fields.push(Field::new("data_wait_s", DataType::Float64, false));
        fields.push(Field::new("step_s", DataType::Float64, false));
        Schema::new(fields)
    }

    pub fn to_record_batch(&self) -> Result<RecordBatch, arrow::error::ArrowError> {
        let f64col = |f: &dyn Fn(&LogRow) -> f64| -> ArrayRef {
            Arc::new(Float64Array::from_iter_values(self.rows.iter().map(f)))
        };
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from_iter_values(
                self.rows.iter().map(|r| r.iteration),
            )),
            Arc::new(UInt32Array::from_iter_values(
                self.rows.iter().map(|r| r.window),
            )),
            f64col(&|r| r.lr),
            f64col(&|r| r.loss_total),
        ];
        for i in 0..self.terms.len() {
            cols.push(f64col(&|r| r.terms[i]));
        }
        cols.push(f64col(&|r| r.data_wait_s));
        cols.push(f64col(&|r| r.step_s));
        RecordBatch::try_new(Arc::new(self.schema()), cols)
    }

    /// Writes the log as Parquet (zstd, via a temporary file and a rename).
    pub fn write_parquet(&self, path: &Path) -> Result<(), TrainError> {
        let batch = self
            .to_record_batch()
            .map_err(|e| TrainError::log(path, e))?;
        uda_data::table::write_parquet(path, &batch).map_err(|e| TrainError::log(path, e))
    }

    /// Reads a log written by [`Self::write_parquet`].
    pub fn read_parquet(path: &Path) -> Result<Self, TrainError> {
        let err = |e: uda_data::DataError| TrainError::log(path, e);
        let batch = uda_data::table::read_parquet(path).map_err(err)?;
        let terms: Vec<String> = batch
            .schema()
            .fields()
            .iter()
            .filter_map(|f| f.name().strip_prefix("loss_"))
            .filter(|n| *n != "total")
            .map(str::to_string)
            .collect();
        let f64s =
            |name: &str| uda_data::table::column::<Float64Array>(path, &batch, name).map_err(err);
        let it = uda_data::table::column::<UInt64Array>(path, &batch, "iteration").map_err(err)?;
        let win = uda_data::table::column::<UInt32Array>(path, &batch, "window").map_err(err)?;
        let (lr, total, wait, step) = (
            f64s("lr")?,
            f64s("loss_total")?,
            f64s("data_wait_s")?,
            f64s("step_s")?,
        );
        let term_cols = terms
            .iter()
            .map(|t| f64s(&format!("loss_{t}")))
            .collect::<Result<Vec<_>, _>>()?;
        let rows = (0..batch.num_rows())
            .map(|i| LogRow {
                iteration: it.value(i),
                window: win.value(i),
                lr: lr.value(i),
                loss_total: total.value(i),
                terms: term_cols.iter().map(|c| c.value(i)).collect(),
                data_wait_s: wait.value(i),
                step_s: step.value(i),
            })
            .collect();
        Ok(Self { terms, rows })
    }
}

/// Sums per-iteration values until a row is taken.
#[derive(Debug, Clone, Default)]
pub struct LogWindow {
    count: u32,
    total: f64,
    terms: Vec<f64>,
    data_wait_s: f64,
    step_s: f64,
}

impl LogWindow {
    pub fn add(&mut self, total: f64, terms: &[f64], data_wait_s: f64, step_s: f64) {
        if self.terms.len() != terms.len() {
            self.terms = vec![0.0; terms.len()];
        }
        self.count += 1;
        self.total += total;
        for (s, t) in self.terms.iter_mut().zip(terms) {
            *s += t;
        }
        self.data_wait_s += data_wait_s;
        self.step_s += step_s;
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The means/sums so far as a row ending at `iteration` completed iterations; resets.
    pub fn take(&mut self, iteration: u64, lr: f64) -> LogRow {
        let n = f64::from(self.count.max(1));
        let row = LogRow {
            iteration,
            window: self.count,
            lr,
            loss_total: self.total / n,
            terms: self.terms.iter().map(|t| t / n).collect(),
            data_wait_s: self.data_wait_s,
            step_s: self.step_s,
        };
        *self = Self::default();
        row
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_means_and_parquet_round_trip() {
        let mut w = LogWindow::default();
        w.add(1.0, &[0.5, 2.0], 0.1, 1.0);
        w.add(3.0, &[1.5, 4.0], 0.3, 1.0);
        let mut log = TrainLog::new(vec!["ce".into(), "ent".into()]);
        log.push(w.take(2, 0.01));
        assert!(w.is_empty());
        w.add(2.0, &[1.0, 1.0], 0.0, 2.0);
        log.push(w.take(3, 0.005));
        let r = &log.rows()[0];
        assert_eq!(
            (r.iteration, r.window, r.loss_total, r.terms.clone()),
            (2, 2, 2.0, vec![1.0, 3.0])
        );
        assert!((log.data_wait_fraction() - 0.4 / 4.0).abs() < 1e-12);

        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log.parquet");
        log.write_parquet(&p).unwrap();
        let back = TrainLog::read_parquet(&p).unwrap();
        assert_eq!(back, log);
        let names: Vec<String> = log
            .to_record_batch()
            .unwrap()
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(
            names,
            [
                "iteration",
                "window",
                "lr",
                "loss_total",
                "loss_ce",
                "loss_ent",
                "data_wait_s",
                "step_s"
            ]
        );

        let mut cut = back.clone();
        cut.truncate_after(2);
        assert_eq!(cut.rows().len(), 1);
    }

    #[test]
    fn unreadable_log_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.parquet");
        std::fs::write(&p, b"not parquet").unwrap();
        let e = TrainLog::read_parquet(&p).unwrap_err().to_string();
        assert!(e.contains("bad.parquet"), "{e}");
    }
}
