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
//! [`paired_differences`] pairs each seed group with a baseline group seed by seed (mean
//! difference, Student t interval) and [`render_paired`] prints it: across seeds of the synthetic
//! benchmark mIoU moves by points, so a comparison of two methods is a paired one.
//!
//! [`write_html`] renders the same data, and more, as one self-contained HTML page (the IoU
//! table colour-scaled, per-class bars, training curves, pseudo-label quality, confusion
//! matrices, qualitative panels, sweeps and the run's DAG and timeline); [`write_plots`] writes
//! its charts as SVG and PNG files. Both take [`Sources`], which the CLI gathers from the
//! pipeline; see the crate README for the views and the choice of plotters.
//!
//! Only this crate and the `uda-pipe` CLI link polars: stage binaries ship to GPU machines and
//! stay small, so the evaluate stage writes plain Parquet (with `arrow`) and this crate reads it.

mod chart;
mod components;
mod error;
mod format;
mod frame;
mod html;
mod page;
mod paired;
mod published;
mod read;
mod run;
mod table;
mod views;

pub use components::{ComponentRow, Training, component_rows, model_backbone, render_components};
pub use error::{ReportError, Result};
pub use format::{Format, render, render_with};
pub use frame::{ROW, long_frame, param_names, wide_frame};
pub use page::{DagNode, PageOptions, Sources, Written, write_html, write_plots};
pub use paired::{CONFIDENCE, Paired, paired_differences, render_paired};
pub use published::{
    Components, Figure, PUBLISHED_CSV, PublishedFilter, PublishedRow, published, published_classes,
    select_published,
};
pub use run::{
    PER_CLASS, Run, SEED, SUMMARY, check_evaluate_output, is_evaluate_output, parse_filter, select,
};
pub use table::{IouTable, Options, Row};

#[cfg(test)]
mod tests;
