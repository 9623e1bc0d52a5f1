//! View 5: the confusion matrix of a row (its seeds' `confusion.parquet` counts summed),
//! row-normalised: cell (g, p) is the share of ground-truth class g's pixels predicted as p, the
//! last column the share predicted outside the 19 classes. mmseg's `confusion_matrix.py` layout.

use super::{Block, Section};
use crate::chart::{Chart, Figure, Heatmap};
use crate::error::Result;
use crate::html::esc;
use crate::page::PageOptions;
use crate::read;
use crate::run::{PER_CLASS, Run, select};

/// The evaluate stage's summed matrix in long form (`uda_metrics::report::CONFUSION`).
pub(crate) const CONFUSION: &str = "confusion.parquet";
/// Matrices drawn without `--confusion` (each is 10-40 KB of SVG; large sweeps have dozens).
const MAX_MATRICES: usize = 12;
/// `pred` value of a prediction outside the 19 classes.
const OTHER: u8 = 255;

pub(super) fn empty() -> Section {
    Section::new(
        "confusion",
        "Confusion matrix",
        "Rows: ground truth; columns: prediction; each row sums to 100 %.",
    )
}

/// Counts `[gt][pred]` with `pred` = class id or the last column for [`OTHER`].
pub(crate) fn read_counts(path: &std::path::Path, classes: usize) -> Result<Vec<Vec<f64>>> {
    let df = read::frame(path)?;
    let gt = read::f64s(&df, path, "gt")?;
    let pred = read::f64s(&df, path, "pred")?;
    let count = read::f64s(&df, path, "count")?;
    let mut m = vec![vec![0.0; classes + 1]; classes];
    for ((g, p), c) in gt.iter().zip(&pred).zip(&count) {
        let (Some(g), Some(p), Some(c)) = (g, p, c) else {
            continue;
        };
        let g = *g as usize;
        let p = if *p as u8 == OTHER {
            classes
        } else {
            *p as usize
        };
        if g < classes && p <= classes {
            m[g][p] += c;
        }
    }
    Ok(m)
}

/// Divides each row by its sum (`None` for a class with no ground-truth pixels).
pub(crate) fn normalise(m: &[Vec<f64>]) -> Vec<Vec<Option<f64>>> {
    m.iter()
        .map(|row| {
            let s: f64 = row.iter().sum();
            row.iter().map(|v| (s > 0.0).then(|| v / s)).collect()
        })
        .collect()
}

/// Class names of a run, in `class_id` order (from its `per_class.parquet`).
fn class_names(run: &Run) -> Result<Vec<String>> {
    let path = run.dir.join(PER_CLASS);
    let df = read::frame(&path)?;
    Ok(read::strings(&df, &path, "class_name")?
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect())
}

pub(super) fn section(runs: &[Run], opts: &PageOptions) -> Result<Section> {
    let mut s = empty();
    let runs = select(runs, &opts.table.filters)?;
    let mut rows: Vec<(String, Vec<&Run>)> = Vec::new();
    for r in &runs {
        let name = r.row_name(opts.table.aggregate_seeds);
        match rows.iter_mut().find(|g| g.0 == name) {
            Some(g) => g.1.push(r),
            None => rows.push((name, vec![r])),
        }
    }
    if let Some(want) = &opts.confusion {
        rows.retain(|g| &g.0 == want);
        if rows.is_empty() {
            let mut names: Vec<String> = runs
                .iter()
                .map(|r| r.row_name(opts.table.aggregate_seeds))
                .collect();
            names.dedup();
            return Ok(s.note(format!(
                "--confusion {want}: no such row (rows: {})",
                names.join(", ")
            )));
        }
    }
    if rows.len() > MAX_MATRICES {
        s.blocks.push(Block::Note(format!(
            "{} rows: the first {MAX_MATRICES} matrices are drawn; --confusion ROW picks one",
            rows.len()
        )));
        rows.truncate(MAX_MATRICES);
    }
    let mut first = true;
    for (name, members) in &rows {
        let classes = class_names(members[0])?;
        let mut sum = vec![vec![0.0; classes.len() + 1]; classes.len()];
        let mut missing = Vec::new();
        for r in members {
            let path = r.dir.join(CONFUSION);
            if !path.is_file() {
                missing.push(r.name.clone());
                continue;
            }
            for (acc, row) in sum.iter_mut().zip(read_counts(&path, classes.len())?) {
                for (a, v) in acc.iter_mut().zip(row) {
                    *a += v;
                }
            }
        }
        if missing.len() == members.len() {
            s.blocks
                .push(Block::Note(format!("{name}: no {CONFUSION}")));
            continue;
        }
        let mut cols = classes.clone();
        cols.push("other".into());
        let fig = Figure {
            name: format!("confusion_{}", super::slug(name)),
            chart: Chart::Heatmap(Heatmap {
                title: format!("{name}: row-normalised confusion"),
                x_label: "predicted".into(),
                y_label: "ground truth".into(),
                rows: classes,
                cols,
                values: normalise(&sum),
            }),
        };
        s.blocks.push(Block::Html(format!(
            "<details{}><summary>{}</summary>",
            if first { " open" } else { "" },
            esc(name)
        )));
        s.blocks.push(Block::Figure(fig));
        s.blocks.push(Block::Html("</details>".into()));
        first = false;
        if !missing.is_empty() {
            s.blocks.push(Block::Note(format!(
                "{name}: {} lack {CONFUSION}; summed over the others",
                missing.join(", ")
            )));
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_sum_to_one_and_other_is_the_last_column() {
        let m = vec![vec![3.0, 1.0, 0.0], vec![0.0, 0.0, 0.0]];
        let n = normalise(&m);
        assert_eq!(n[0], [Some(0.75), Some(0.25), Some(0.0)]);
        assert_eq!(n[1], [None, None, None], "no ground-truth pixels");
    }
}
