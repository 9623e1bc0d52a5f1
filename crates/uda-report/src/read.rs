//! Reading the stages' small Parquet files (train logs, pseudo-label classes, confusion matrices,
//! per-image scores, run history) into polars frames, and their columns into plain vectors.

use crate::error::{PolarsContext, ReportError, Result};
use polars::prelude::*;
use std::path::Path;

/// Reads a whole Parquet file. Result folders are named like `eval[beta=0.01]`, so no globbing
/// (`[...]` is a character class) and no hive partitions (`key=value` segments become columns).
pub(crate) fn frame(path: &Path) -> Result<DataFrame> {
    let what = || format!("reading {}", path.display());
    let source = PlRefPath::try_from_path(path).ctx(what)?;
    let args = ScanArgsParquet {
        glob: false,
        hive_options: HiveOptions {
            enabled: Some(false),
            ..HiveOptions::default()
        },
        ..ScanArgsParquet::default()
    };
    LazyFrame::scan_parquet(source, args)
        .ctx(what)?
        .collect()
        .ctx(what)
}

fn column<'a>(df: &'a DataFrame, path: &Path, name: &str) -> Result<&'a Column> {
    df.column(name).map_err(|_| ReportError::MissingColumn {
        path: path.to_path_buf(),
        column: name.to_string(),
    })
}

/// A numeric column as f64 (integers are converted), nulls kept.
pub(crate) fn f64s(df: &DataFrame, path: &Path, name: &str) -> Result<Vec<Option<f64>>> {
    let what = || format!("reading column {name} of {}", path.display());
    let c = column(df, path, name)?;
    // Timestamps (the run history's `start`) become their integer milliseconds first.
    let c = if matches!(c.dtype(), DataType::Datetime(..)) {
        c.cast(&DataType::Int64).ctx(what)?
    } else {
        c.clone()
    };
    let c = c.cast(&DataType::Float64).ctx(what)?;
    Ok(c.f64().ctx(what)?.iter().collect())
}

/// A utf8 column.
pub(crate) fn strings(df: &DataFrame, path: &Path, name: &str) -> Result<Vec<Option<String>>> {
    let what = || format!("reading column {name} of {}", path.display());
    let c = column(df, path, name)?;
    Ok(c.str()
        .ctx(what)?
        .iter()
        .map(|v| v.map(str::to_string))
        .collect())
}

/// Whether the frame has the column (optional ones, like a loss term).
pub(crate) fn has(df: &DataFrame, name: &str) -> bool {
    df.column(name).is_ok()
}
