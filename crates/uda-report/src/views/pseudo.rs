//! View 4, the paper's Table 2: pseudo-label quality per class from each pseudo-label stage's
//! `classes.parquet`: the kept fraction after the confidence thresholds, the threshold, and the
//! IoU against the target labels before (raw) and after (kept) thresholding. Seeds of one stage
//! are averaged (mean over the instances where the value is defined).

use super::{Block, Section, mean_std};
use crate::chart::{BarSeries, Bars, Chart, Figure};
use crate::error::Result;
use crate::html::esc;
use crate::page::{PageOptions, Sources};
use crate::read;
use std::fmt::Write as _;
use std::path::Path;

/// `pseudolabel-dump`'s per-class table (its `report` module documents the columns).
pub(crate) const CLASSES: &str = "classes.parquet";

pub(super) fn empty() -> Section {
    Section::new(
        "pseudo-labels",
        "Pseudo-label quality (Table 2)",
        "Per class: share of predicted pixels kept by the threshold, and IoU before and after.",
    )
}

/// One stage's (or seed group's) table; every vector is per class, values fractions.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Quality {
    pub name: String,
    pub n: usize,
    pub classes: Vec<String>,
    pub kept_fraction: Vec<(Option<f64>, Option<f64>)>,
    pub threshold: Vec<Option<f64>>,
    pub iou_raw: Vec<(Option<f64>, Option<f64>)>,
    pub iou_kept: Vec<(Option<f64>, Option<f64>)>,
}

/// One instance's columns: class names, then kept / predicted, threshold, iou_raw, iou_kept.
type Columns = (Vec<String>, [Vec<Option<f64>>; 4]);

fn read_one(path: &Path) -> Result<Columns> {
    let df = read::frame(path)?;
    let names = read::strings(&df, path, "class_name")?
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect();
    let predicted = read::f64s(&df, path, "predicted")?;
    let kept = read::f64s(&df, path, "kept")?;
    let frac = predicted
        .iter()
        .zip(&kept)
        .map(|(p, k)| match (p, k) {
            (Some(p), Some(k)) if *p > 0.0 => Some(k / p),
            _ => None,
        })
        .collect();
    Ok((
        names,
        [
            frac,
            read::f64s(&df, path, "threshold")?,
            read::f64s(&df, path, "iou_raw")?,
            read::f64s(&df, path, "iou_kept")?,
        ],
    ))
}

/// Mean ± std per class over the instances of a group (instances list their classes in one
/// order: the stage writes all 19 train ids).
pub(crate) fn aggregate(name: &str, members: &[Columns]) -> Quality {
    let classes = members.first().map(|m| m.0.clone()).unwrap_or_default();
    let stat = |k: usize| -> Vec<(Option<f64>, Option<f64>)> {
        (0..classes.len())
            .map(|c| {
                let v: Vec<f64> = members
                    .iter()
                    .filter_map(|m| m.1[k].get(c).copied().flatten())
                    .collect();
                mean_std(&v)
            })
            .collect()
    };
    Quality {
        name: name.to_string(),
        n: members.len(),
        kept_fraction: stat(0),
        threshold: stat(1).into_iter().map(|(m, _)| m).collect(),
        iou_raw: stat(2),
        iou_kept: stat(3),
        classes,
    }
}

pub(crate) fn bars(q: &Quality) -> Bars {
    let pct = |v: &[(Option<f64>, Option<f64>)]| -> (Vec<Option<f64>>, Vec<Option<f64>>) {
        (
            v.iter().map(|(m, _)| m.map(|m| m * 100.0)).collect(),
            v.iter().map(|(_, s)| s.map(|s| s * 100.0)).collect(),
        )
    };
    let series = [
        ("kept fraction", &q.kept_fraction),
        ("IoU raw", &q.iou_raw),
        ("IoU kept", &q.iou_kept),
    ]
    .into_iter()
    .map(|(name, v)| {
        let (values, errors) = pct(v);
        BarSeries {
            name: name.into(),
            values,
            errors,
        }
    })
    .collect();
    Bars {
        title: format!("Pseudo-labels of {} (%)", q.name),
        y_label: "%".into(),
        categories: q.classes.clone(),
        series,
        y_range: (0.0, 100.0),
    }
}

fn table(q: &Quality) -> String {
    let f = |v: Option<f64>| {
        v.map(|v| format!("{:.2}", v * 100.0))
            .unwrap_or_else(|| "–".into())
    };
    let mut h = String::from(
        "<div class=\"scroll\"><table class=\"plain\"><thead><tr><th>class</th><th>threshold</th>\
         <th>kept %</th><th>IoU raw</th><th>IoU kept</th></tr></thead><tbody>",
    );
    for (c, name) in q.classes.iter().enumerate() {
        let _ = write!(
            h,
            "<tr><th>{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            q.threshold[c]
                .map(|t| format!("{t:.3}"))
                .unwrap_or_else(|| "–".into()),
            f(q.kept_fraction[c].0),
            f(q.iou_raw[c].0),
            f(q.iou_kept[c].0)
        );
    }
    h + "</tbody></table></div>"
}

pub(super) fn section(sources: &Sources, opts: &PageOptions) -> Result<Section> {
    let mut s = empty();
    let mut groups: Vec<(String, Vec<Columns>)> = Vec::new();
    for r in &sources.results {
        let path = r.dir.join(CLASSES);
        if !path.is_file() {
            continue;
        }
        match read_one(&path) {
            Ok(c) => {
                let name = r.row_name(opts.table.aggregate_seeds);
                match groups.iter_mut().find(|g| g.0 == name) {
                    Some(g) => g.1.push(c),
                    None => groups.push((name, vec![c])),
                }
            }
            Err(e) => s.blocks.push(Block::Note(format!("{}: {e}", r.name))),
        }
    }
    if groups.is_empty() && s.blocks.is_empty() {
        return Ok(s.note(format!(
            "no {CLASSES} among the results (written by pseudolabel-dump stages)"
        )));
    }
    for (name, members) in &groups {
        let q = aggregate(name, members);
        if q.iou_raw.iter().all(|(m, _)| m.is_none()) {
            s.blocks.push(Block::Note(format!(
                "{name}: no IoU (the pseudo-labelled set has no target labels)"
            )));
        }
        s.blocks.push(Block::Figure(Figure {
            name: format!("pseudo_{}", super::slug(name)),
            chart: Chart::Bars(bars(&q)),
        }));
        s.blocks.push(Block::Html(format!(
            "<details><summary>{} table ({} instance{})</summary>{}</details>",
            esc(name),
            q.n,
            if q.n == 1 { "" } else { "s, means" },
            table(&q)
        )));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_average_per_class_and_keep_the_series_apart() {
        let a: Columns = (
            vec!["road".into(), "sky".into()],
            [
                vec![Some(0.5), None],
                vec![Some(0.9), None],
                vec![Some(0.4), Some(0.2)],
                vec![Some(0.6), None],
            ],
        );
        let mut b = a.clone();
        b.1[2] = vec![Some(0.6), None];
        let q = aggregate("pseudo", &[a, b]);
        assert_eq!(q.n, 2);
        assert_eq!(q.kept_fraction[0], (Some(0.5), Some(0.0)));
        assert_eq!(
            q.iou_raw[1],
            (Some(0.2), None),
            "defined in one instance only"
        );
        let (m, s) = q.iou_raw[0];
        assert!((m.unwrap() - 0.5).abs() < 1e-12 && (s.unwrap() - 0.02f64.sqrt()).abs() < 1e-12);
        let b = bars(&q);
        let names: Vec<&str> = b.series.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["kept fraction", "IoU raw", "IoU kept"]);
        assert_eq!(b.series[0].values, [Some(50.0), None]);
        assert_eq!(b.series[2].values, [Some(60.0), None]);
        assert_eq!(b.categories, ["road", "sky"]);
        assert!(
            table(&q)
                .contains("<th>road</th><td>0.900</td><td>50.00</td><td>50.00</td><td>60.00</td>")
        );
    }
}
