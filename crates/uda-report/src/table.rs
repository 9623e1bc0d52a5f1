//! The table as plain Rust values (what the formats render), built through polars.

use crate::error::{PolarsContext, ReportError, Result};
use crate::frame::{long_frame, param_names, wide_frame};
use crate::run::{Run, select};
use polars::prelude::*;

/// How runs become rows.
#[derive(Debug, Clone)]
pub struct Options {
    /// Instances that differ only in their `seed` sweep variable are one row: mean ± sample std
    /// (ddof = 1) over seeds, with `n` the number of seeds. On by default.
    pub aggregate_seeds: bool,
    /// Keep only runs whose sweep variables match all of these (`--where seed=1`).
    pub filters: Vec<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            aggregate_seeds: true,
            filters: Vec::new(),
        }
    }
}

/// The paper's Table 1: rows = runs (or seed groups), columns = classes + mIoU. IoUs are
/// fractions here, as in the Parquet files; the formats print percent.
#[derive(Debug, Clone, PartialEq)]
pub struct IouTable {
    /// Class names in `class_id` order.
    pub classes: Vec<String>,
    /// Sweep-variable columns (without `seed` when seeds are aggregated).
    pub params: Vec<String>,
    pub rows: Vec<Row>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Instance id, or for a seed group the id without its `seed`.
    pub name: String,
    /// Values of [`IouTable::params`], in that order (null where the run has no such variable).
    pub params: Vec<Option<String>>,
    /// Runs (seeds) in this row.
    pub n: u32,
    /// Per class: mean IoU over the row's runs (runs where the class is undefined are skipped).
    pub iou: Vec<Option<f64>>,
    /// Mean over the row's runs of each run's mIoU (mean over its defined classes).
    pub miou: Option<f64>,
    /// Sample standard deviation (ddof = 1) of the runs' mIoU; null for one run.
    pub miou_std: Option<f64>,
}

impl Row {
    /// Differences to `base`, per class and for mIoU (null where either side is undefined).
    pub fn delta(&self, base: &Row) -> (Vec<Option<f64>>, Option<f64>) {
        let d = |a: Option<f64>, b: Option<f64>| Some(a? - b?);
        (
            self.iou
                .iter()
                .zip(&base.iou)
                .map(|(a, b)| d(*a, *b))
                .collect(),
            d(self.miou, base.miou),
        )
    }
}

impl IouTable {
    /// Reads the runs' `per_class.parquet` files and builds the table (see [`Options`]).
    /// Fails naming the folder when one is not an evaluate output, and naming both runs when
    /// two runs' class sets differ.
    pub fn build(runs: &[Run], opts: &Options) -> Result<Self> {
        let runs = select(runs, &opts.filters)?;
        let long = long_frame(&runs, opts.aggregate_seeds)?
            .collect()
            .ctx(|| "reading the per-class tables".into())?;
        let classes = check_classes(&long, &runs)?;
        let params = param_names(&runs);
        let wide = wide_frame(&long, &classes, &params, opts.aggregate_seeds)?;
        Self::from_wide(&wide, classes)
    }

    /// Converts a frame made by [`wide_frame`].
    pub fn from_wide(wide: &DataFrame, classes: Vec<String>) -> Result<Self> {
        let ctx = || "reading the wide IoU table".to_string();
        let fixed = ["run", "n", "miou", "miou_std"];
        let params: Vec<String> = wide
            .get_column_names()
            .into_iter()
            .map(|c| c.to_string())
            .filter(|c| !fixed.contains(&c.as_str()) && !classes.contains(c))
            .collect();
        let strings = |name: &str| -> Result<Vec<Option<String>>> {
            let c = wide.column(name).ctx(ctx)?.str().ctx(ctx)?.clone();
            Ok(c.iter().map(|v| v.map(str::to_string)).collect())
        };
        let floats = |name: &str| -> Result<Vec<Option<f64>>> {
            let c = wide.column(name).ctx(ctx)?.f64().ctx(ctx)?.clone();
            Ok(c.iter().collect())
        };
        let names = strings("run")?;
        let param_values: Vec<Vec<Option<String>>> =
            params.iter().map(|p| strings(p)).collect::<Result<_>>()?;
        let class_values: Vec<Vec<Option<f64>>> =
            classes.iter().map(|c| floats(c)).collect::<Result<_>>()?;
        let n: Vec<Option<u32>> = wide.column("n").ctx(ctx)?.u32().ctx(ctx)?.iter().collect();
        let miou = floats("miou")?;
        let miou_std = floats("miou_std")?;
        let rows = (0..wide.height())
            .map(|i| Row {
                name: names[i].clone().unwrap_or_default(),
                params: param_values.iter().map(|v| v[i].clone()).collect(),
                n: n[i].unwrap_or(0),
                iou: class_values.iter().map(|v| v[i]).collect(),
                miou: miou[i],
                miou_std: miou_std[i],
            })
            .collect();
        Ok(Self {
            classes,
            params,
            rows,
        })
    }

    /// The row named `name` (a run or seed-group name as shown in the table).
    pub fn row(&self, name: &str) -> Result<&Row> {
        self.rows
            .iter()
            .find(|r| r.name == name)
            .ok_or_else(|| ReportError::UnknownBaseline {
                name: name.to_string(),
                rows: self
                    .rows
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Whether any row averages several runs (then the formats show `n` and ± std).
    pub fn has_groups(&self) -> bool {
        self.rows.iter().any(|r| r.n > 1)
    }
}

/// The classes of the first run (by `class_id`), after checking every run has the same ones.
fn check_classes(long: &DataFrame, runs: &[Run]) -> Result<Vec<String>> {
    let ctx = || "checking class sets".to_string();
    let run = long.column("run").ctx(ctx)?.str().ctx(ctx)?.clone();
    let ids = long
        .column("class_id")
        .ctx(ctx)?
        .cast(&DataType::UInt8)
        .ctx(ctx)?;
    let ids = ids.u8().ctx(ctx)?.clone();
    let names = long.column("class_name").ctx(ctx)?.str().ctx(ctx)?.clone();
    let mut sets: Vec<Vec<(u8, String)>> = vec![Vec::new(); runs.len()];
    for ((r, id), name) in run.iter().zip(ids.iter()).zip(names.iter()) {
        if let (Some(r), Some(id), Some(name)) = (r, id, name)
            && let Some(k) = runs.iter().position(|x| x.name == r)
        {
            sets[k].push((id, name.to_string()));
        }
    }
    for s in &mut sets {
        s.sort();
    }
    let first = &sets[0];
    for (k, s) in sets.iter().enumerate().skip(1) {
        let detail = if s.len() != first.len() {
            Some(format!("{} vs {} classes", s.len(), first.len()))
        } else {
            s.iter()
                .zip(first)
                .find(|(a, b)| a != b)
                .map(|(a, b)| format!("class {} '{}' vs class {} '{}'", a.0, a.1, b.0, b.1))
        };
        if let Some(detail) = detail {
            return Err(ReportError::ClassMismatch {
                run: runs[k].name.clone(),
                path: runs[k].dir.clone(),
                first: runs[0].name.clone(),
                first_path: runs[0].dir.clone(),
                detail,
            });
        }
    }
    Ok(first.iter().map(|(_, n)| n.clone()).collect())
}
