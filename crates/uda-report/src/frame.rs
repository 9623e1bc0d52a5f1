//! The polars side: `per_class.parquet` files → one long DataFrame → the wide table.
//!
//! The same three steps work in a notebook (see docs/report.md): scan every `per_class.parquet`
//! lazily with a `run` column added, concatenate, pivot `class_name` into columns.

use crate::error::{PolarsContext, ReportError, Result};
use crate::run::{PER_CLASS, Run, SEED};
use polars::prelude::*;
use std::sync::Arc;

/// Column of the long and wide frames naming the table row (the run, or its seed group).
pub const ROW: &str = "row";

/// Long form, one row per (run, class): `run` (instance id), `row` (the table row it belongs to:
/// the id without its `seed`, when seeds are aggregated), one utf8 column per sweep variable found
/// in any run (null where a run lacks it), then `class_id` u8, `class_name` utf8, `iou` f64
/// (a fraction, null when undefined) as the evaluate stage wrote them. Lazy: nothing is read
/// until collected.
pub fn long_frame(runs: &[Run], aggregate_seeds: bool) -> Result<LazyFrame> {
    if runs.is_empty() {
        return Err(ReportError::NoRuns);
    }
    let params = param_names(runs);
    let mut frames = Vec::with_capacity(runs.len());
    for r in runs {
        r.check()?;
        let path = r.dir.join(PER_CLASS);
        let what = || format!("reading {}", path.display());
        let source = PlRefPath::try_from_path(&path).ctx(what)?;
        let mut columns = vec![
            lit(r.name.as_str()).alias("run"),
            lit(r.row_name(aggregate_seeds)).alias(ROW),
        ];
        for p in &params {
            let value = match r.param(p) {
                Some(v) => lit(v),
                None => lit(NULL).cast(DataType::String),
            };
            columns.push(value.alias(p.as_str()));
        }
        columns.extend([col("class_id"), col("class_name"), col("iou")]);
        // Instance folders are named like `eval[beta=0.01]`: no globbing (`[...]` is a character
        // class) and no hive partitions (`key=value` path segments would become columns).
        let args = ScanArgsParquet {
            glob: false,
            hive_options: HiveOptions {
                enabled: Some(false),
                ..HiveOptions::default()
            },
            ..ScanArgsParquet::default()
        };
        let mut scan = LazyFrame::scan_parquet(source, args).ctx(what)?;
        // Reads only the footer: a file that is not a per-class table fails here, named, rather
        // than somewhere inside the concatenated plan.
        let schema = scan.collect_schema().ctx(what)?;
        if let Some(c) = ["class_id", "class_name", "iou"]
            .into_iter()
            .find(|c| schema.get(c).is_none())
        {
            return Err(ReportError::Polars {
                context: what(),
                source: polars::error::PolarsError::ColumnNotFound(
                    format!("no column '{c}' (not an evaluate per_class.parquet)").into(),
                ),
            });
        }
        frames.push(scan.select(columns));
    }
    concat(frames, UnionArgs::default()).ctx(|| "concatenating the per-class tables".into())
}

/// Sweep variables in first-seen order.
pub fn param_names(runs: &[Run]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for r in runs {
        for (k, _) in &r.params {
            if !names.contains(k) {
                names.push(k.clone());
            }
        }
    }
    names
}

/// The wide table from the collected long frame: `run` (the row name), the row's sweep variables
/// (without `seed` when aggregated), `n` u32 (runs in the row: seeds), one f64 column per class in
/// `classes` order (mean IoU over the row's runs, nulls skipped), `miou` (mean over the row's
/// runs of each run's mean IoU over its defined classes, the evaluate stage's `miou`) and
/// `miou_std` (sample standard deviation over the runs, ddof = 1; null for a single run).
/// Values are fractions, as in the Parquet files; rows keep the order of first appearance.
pub fn wide_frame(
    long: &DataFrame,
    classes: &[String],
    params: &[String],
    aggregate_seeds: bool,
) -> Result<DataFrame> {
    let ctx = || "building the IoU table".to_string();
    let kept: Vec<&String> = params
        .iter()
        .filter(|p| !(aggregate_seeds && p.as_str() == SEED))
        .collect();
    let on_columns = DataFrame::new(
        classes.len(),
        vec![Column::new("class_name".into(), classes.to_vec())],
    )
    .ctx(ctx)?;
    let per_class = long.clone().lazy().pivot(
        cols(["class_name"]),
        Arc::new(on_columns),
        cols([ROW]),
        cols(["iou"]),
        element().mean(),
        true,
        "_".into(),
        polars::frame::PivotColumnNaming::Auto,
    );
    let mut per_run = vec![col("iou").mean().alias("miou")];
    per_run.extend(kept.iter().map(|p| col(p.as_str()).first()));
    let mut per_row = vec![
        len().cast(DataType::UInt32).alias("n"),
        col("miou").mean().alias("miou"),
        col("miou").std(1).alias("miou_std"),
    ];
    per_row.extend(kept.iter().map(|p| col(p.as_str()).first()));
    let rows = long
        .clone()
        .lazy()
        .group_by_stable([col("run"), col(ROW)])
        .agg(per_run)
        .group_by_stable([col(ROW)])
        .agg(per_row);
    let mut order = vec![col(ROW).alias("run")];
    order.extend(kept.iter().map(|p| col(p.as_str())));
    order.push(col("n"));
    order.extend(classes.iter().map(|c| col(c.as_str())));
    order.extend([col("miou"), col("miou_std")]);
    let mut join = JoinArgs::new(JoinType::Left);
    join.maintain_order = MaintainOrderJoin::Left;
    rows.join(per_class, [col(ROW)], [col(ROW)], join)
        .select(order)
        .collect()
        .ctx(ctx)
}
