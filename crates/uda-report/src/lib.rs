//! IoU tables of `evaluate` outputs, in the layout of the paper's Table 1: one row per run (or
//! per group of seeds), one column per class, then mIoU.
//!
//! Built on polars so the same steps are easy to repeat in a notebook: [`long_frame`] scans each
//! run's `per_class.parquet` lazily and adds a `run` column, [`wide_frame`] pivots class names
//! into columns and aggregates seeds, [`IouTable`] holds the result and [`render`] prints it as a
//! text table, CSV, JSON or Markdown. Entry point:
//!
//! ```no_run
//! use uda_report::{Format, IouTable, Options, Run, render};
//! let runs = vec![
//!     Run::from_dir("cache/latest/pipeline/eval_source_only"),
//!     Run::from_dir("cache/latest/pipeline/eval_pretrain"),
//! ];
//! let table = IouTable::build(&runs, &Options::default())?;
//! print!("{}", render(&table, Format::Markdown, Some("eval_source_only"))?);
//! # Ok::<(), uda_report::ReportError>(())
//! ```
//!
//! Only this crate and the `uda-pipe` CLI link polars: stage binaries ship to GPU machines and
//! stay small, so the evaluate stage writes plain Parquet (with `arrow`) and this crate reads it.

mod error;
mod format;
mod frame;
mod run;
mod table;

pub use error::{ReportError, Result};
pub use format::{Format, render};
pub use frame::{ROW, long_frame, param_names, wide_frame};
pub use run::{
    PER_CLASS, Run, SEED, SUMMARY, check_evaluate_output, is_evaluate_output, parse_filter, select,
};
pub use table::{IouTable, Options, Row};

#[cfg(test)]
mod tests;
