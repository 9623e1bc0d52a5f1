//! View 2: per-class IoU bars, the table's rows side by side in each class group, with an error
//! bar of ± one sample std over the row's seeds (none for a single seed); mIoU is the last group.

use super::{Block, Section};
use crate::chart::{BarSeries, Bars, Chart, Figure};
use crate::error::{PolarsContext, Result};
use crate::frame::{ROW, long_frame};
use crate::page::PageOptions;
use crate::run::{Run, select};
use crate::table::IouTable;
use polars::prelude::*;
use std::collections::HashMap;

pub(super) fn empty() -> Section {
    Section::new(
        "class-bars",
        "Per-class IoU",
        "IoU of each class, runs side by side; error bars: ± one std over seeds.",
    )
}

/// Per (row, class name): sample std (ddof = 1) of the IoU over the row's runs, through the same
/// long frame as the table, so bars and table agree on which runs form a row.
pub(crate) fn class_std(
    runs: &[Run],
    opts: &PageOptions,
) -> Result<HashMap<(String, String), f64>> {
    let runs = select(runs, &opts.table.filters)?;
    let ctx = || "per-class spread over seeds".to_string();
    let df = long_frame(&runs, opts.table.aggregate_seeds)?
        .group_by([col(ROW), col("class_name")])
        .agg([col("iou").std(1).alias("std")])
        .collect()
        .ctx(ctx)?;
    let rows = df.column(ROW).ctx(ctx)?.str().ctx(ctx)?.clone();
    let classes = df.column("class_name").ctx(ctx)?.str().ctx(ctx)?.clone();
    let std = df.column("std").ctx(ctx)?.f64().ctx(ctx)?.clone();
    let mut out = HashMap::new();
    for ((r, c), s) in rows.iter().zip(classes.iter()).zip(std.iter()) {
        if let (Some(r), Some(c), Some(s)) = (r, c, s) {
            out.insert((r.to_string(), c.to_string()), s);
        }
    }
    Ok(out)
}

/// The bar chart of `t` (values in percent) with the spreads of [`class_std`].
pub(crate) fn bars(t: &IouTable, std: &HashMap<(String, String), f64>) -> Bars {
    let mut categories = t.classes.clone();
    categories.push("mIoU".into());
    let series = t
        .rows
        .iter()
        .map(|r| {
            let mut values: Vec<Option<f64>> = r.iou.iter().map(|v| v.map(|v| v * 100.0)).collect();
            values.push(r.miou.map(|v| v * 100.0));
            let mut errors: Vec<Option<f64>> = t
                .classes
                .iter()
                .map(|c| {
                    std.get(&(r.name.clone(), c.clone()))
                        .map(|s| s * 100.0)
                        .filter(|_| r.n > 1)
                })
                .collect();
            errors.push(r.miou_std.map(|s| s * 100.0));
            BarSeries {
                name: r.name.clone(),
                values,
                errors,
            }
        })
        .collect();
    let top = t
        .rows
        .iter()
        .flat_map(|r| r.iou.iter().copied().chain([r.miou]))
        .flatten()
        .fold(0.0f64, f64::max);
    Bars {
        title: "IoU per class (%)".into(),
        y_label: "IoU (%)".into(),
        categories,
        series,
        // Up to the next 10 % above the best bar, so small toy IoUs are not squashed at 0.
        y_range: (0.0, ((top * 100.0 / 10.0).ceil() * 10.0).clamp(10.0, 100.0)),
    }
}

pub(super) fn section(runs: &[Run], t: &IouTable, opts: &PageOptions) -> Result<Section> {
    let mut s = empty();
    let std = class_std(runs, opts)?;
    s.blocks.push(Block::Figure(Figure {
        name: "class_iou".into(),
        chart: Chart::Bars(bars(t, &std)),
    }));
    if !t.has_groups() {
        s.intro.push_str(
            " One seed per row here, so no error bars (run more seeds: --set 'seeds=[0,1,2]').",
        );
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Row;

    #[test]
    fn bars_hold_each_rows_class_iou_and_seed_std_in_percent() {
        let t = IouTable {
            classes: vec!["road".into(), "sky".into()],
            params: vec![],
            rows: vec![
                Row {
                    name: "eval".into(),
                    params: vec![],
                    n: 3,
                    iou: vec![Some(0.5), None],
                    miou: Some(0.5),
                    miou_std: Some(0.1),
                },
                Row {
                    name: "base".into(),
                    params: vec![],
                    n: 1,
                    iou: vec![Some(0.25), Some(0.125)],
                    miou: Some(0.1875),
                    miou_std: None,
                },
            ],
        };
        let std = HashMap::from([
            (("eval".to_string(), "road".to_string()), 0.05),
            (("base".to_string(), "road".to_string()), 0.3),
        ]);
        let b = bars(&t, &std);
        assert_eq!(b.categories, ["road", "sky", "mIoU"]);
        assert_eq!(b.series[0].name, "eval");
        assert_eq!(b.series[0].values, [Some(50.0), None, Some(50.0)]);
        assert_eq!(b.series[0].errors, [Some(5.0), None, Some(10.0)]);
        assert_eq!(b.series[1].values, [Some(25.0), Some(12.5), Some(18.75)]);
        assert_eq!(
            b.series[1].errors,
            [None, None, None],
            "one seed: no error bar"
        );
        assert_eq!(b.y_range, (0.0, 50.0));
    }
}
