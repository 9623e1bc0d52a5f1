//! View 3: training curves from every `train_log.parquet` among the results: each loss term, the
//! learning rate, seconds per iteration and data wait per iteration against the iteration, one
//! line per training instance (run or seed), smoothed as TensorBoard does (debiased exponential
//! moving average) and thinned to at most [`MAX_POINTS`] points so long runs stay small.

use super::{Block, Section};
use crate::chart::{Chart, Figure, LineSeries, Lines};
use crate::error::Result;
use crate::page::{PageOptions, Sources};
use crate::read;
use std::path::Path;

/// The training stages' log (`uda_train::log`; the name is repeated to keep the training crate,
/// and libtorch, out of the report).
pub(crate) const TRAIN_LOG: &str = "train_log.parquet";
/// Points per line after thinning: a 150k-iteration run logged every 10 has 15k rows.
pub(crate) const MAX_POINTS: usize = 300;

pub(super) fn empty() -> Section {
    Section::new(
        "training",
        "Training curves",
        "Losses, learning rate and speed of every training run against the iteration.",
    )
}

/// One run's log: iteration, then `(metric, values)` in column order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Log {
    pub run: String,
    pub iteration: Vec<f64>,
    pub metrics: Vec<(String, Vec<f64>)>,
}

/// Reads a log: `loss_*` columns as they are, `lr`, and `step_s` / `data_wait_s` divided by
/// `window` (seconds per iteration, comparable across `log_every`).
pub(crate) fn read_log(run: &str, path: &Path) -> Result<Log> {
    let df = read::frame(path)?;
    let get = |name: &str| -> Result<Vec<f64>> {
        Ok(read::f64s(&df, path, name)?
            .into_iter()
            .map(|v| v.unwrap_or(f64::NAN))
            .collect())
    };
    let iteration = get("iteration")?;
    let window: Vec<f64> = if read::has(&df, "window") {
        get("window")?
    } else {
        vec![1.0; iteration.len()]
    };
    let mut metrics = Vec::new();
    for name in df.get_column_names() {
        let name = name.as_str();
        if name.starts_with("loss_") || name == "lr" {
            metrics.push((name.to_string(), get(name)?));
        }
    }
    for (col, label) in [("step_s", "s/iter"), ("data_wait_s", "data wait s/iter")] {
        if read::has(&df, col) {
            let per_iter = get(col)?
                .iter()
                .zip(&window)
                .map(|(v, w)| if *w > 0.0 { v / w } else { f64::NAN })
                .collect();
            metrics.push((label.to_string(), per_iter));
        }
    }
    Ok(Log {
        run: run.to_string(),
        iteration,
        metrics,
    })
}

/// TensorBoard's smoothing: EMA with weight `w`, divided by `1 − w^k` so the start is not
/// pulled toward 0. Non-finite values are skipped (they neither update nor reset the average).
pub(crate) fn smooth(values: &[f64], w: f64) -> Vec<f64> {
    let w = w.clamp(0.0, 0.999);
    let (mut acc, mut k) = (0.0, 0i32);
    values
        .iter()
        .map(|&v| {
            if !v.is_finite() {
                return v;
            }
            k += 1;
            acc = acc * w + (1.0 - w) * v;
            acc / (1.0 - w.powi(k))
        })
        .collect()
}

/// At most `max` points: consecutive buckets averaged (x and y), order kept.
pub(crate) fn thin(points: &[(f64, f64)], max: usize) -> Vec<(f64, f64)> {
    if points.len() <= max || max == 0 {
        return points.to_vec();
    }
    let per = points.len().div_ceil(max);
    points
        .chunks(per)
        .map(|c| {
            let n = c.len() as f64;
            (
                c.iter().map(|p| p.0).sum::<f64>() / n,
                c.iter().map(|p| p.1).sum::<f64>() / n,
            )
        })
        .collect()
}

/// One chart per metric, one series per log that has it (colour = the log's index).
pub(crate) fn charts(logs: &[Log], smoothing: f64) -> Vec<Figure> {
    let mut names: Vec<String> = Vec::new();
    for l in logs {
        for (m, _) in &l.metrics {
            if !names.contains(m) {
                names.push(m.clone());
            }
        }
    }
    names
        .iter()
        .map(|m| {
            let series = logs
                .iter()
                .enumerate()
                .filter_map(|(i, l)| {
                    let (_, v) = l.metrics.iter().find(|(n, _)| n == m)?;
                    let points: Vec<(f64, f64)> = l
                        .iteration
                        .iter()
                        .zip(smooth(v, smoothing))
                        .filter(|(x, y)| x.is_finite() && y.is_finite())
                        .map(|(x, y)| (*x, y))
                        .collect();
                    Some(LineSeries {
                        name: l.run.clone(),
                        colour: i,
                        points: thin(&points, MAX_POINTS),
                        errors: vec![],
                    })
                })
                .collect();
            let title = match m.strip_prefix("loss_") {
                Some(t) => format!("loss: {t}"),
                None if m == "lr" => "learning rate".into(),
                None => m.clone(),
            };
            Figure {
                name: format!("train_{}", super::slug(m)),
                chart: Chart::Lines(Lines {
                    title,
                    x_label: "iteration".into(),
                    y_label: m.clone(),
                    series,
                    x_ticks: None,
                    markers: false,
                }),
            }
        })
        .collect()
}

pub(super) fn section(sources: &Sources, opts: &PageOptions) -> Result<Section> {
    let mut s = empty();
    let mut logs = Vec::new();
    let mut notes = Vec::new();
    for r in &sources.results {
        let path = r.dir.join(TRAIN_LOG);
        if path.is_file() {
            match read_log(&r.name, &path) {
                Ok(l) => logs.push(l),
                Err(e) => notes.push(format!("{}: {e}", r.name)),
            }
        } else if r.dir.join("model.safetensors").is_file() || r.dir.join("model.json").is_file() {
            notes.push(format!(
                "{} ({}) holds a model but no {TRAIN_LOG}: no curve for it",
                r.name,
                r.dir.display()
            ));
        }
    }
    if logs.is_empty() && notes.is_empty() {
        notes.push(format!(
            "no {TRAIN_LOG} among the results (training curves need the training stages' \
             outputs: give the pipeline file, or name the training folders)"
        ));
    }
    s.intro = format!(
        "{} training runs; smoothed (exponential moving average, weight {}), at most {} points \
         a line. s/iter and data wait are seconds per iteration.",
        logs.len(),
        opts.smoothing,
        MAX_POINTS
    );
    s.blocks
        .extend(charts(&logs, opts.smoothing).into_iter().map(Block::Figure));
    s.blocks.extend(notes.into_iter().map(Block::Note));
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_is_debiased_and_thinning_averages_buckets() {
        assert_eq!(smooth(&[4.0, 4.0, 4.0], 0.6), [4.0, 4.0, 4.0]);
        let s = smooth(&[0.0, 10.0], 0.5);
        // k=1: 0; k=2: (0·0.5 + 0.5·10) / (1 − 0.25) = 6.67
        assert!((s[1] - 5.0 / 0.75).abs() < 1e-12, "{s:?}");
        assert_eq!(smooth(&[1.0, 2.0], 0.0), [1.0, 2.0]);
        let pts: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, i as f64 * 2.0)).collect();
        let t = thin(&pts, 5);
        assert_eq!(
            t,
            [(0.5, 1.0), (2.5, 5.0), (4.5, 9.0), (6.5, 13.0), (8.5, 17.0)]
        );
        assert_eq!(thin(&pts, 20), pts);
    }

    #[test]
    fn one_chart_per_metric_with_a_line_per_run_that_has_it() {
        let a = Log {
            run: "pretrain".into(),
            iteration: vec![10.0, 20.0],
            metrics: vec![
                ("loss_total".into(), vec![2.0, 1.0]),
                ("loss_ent".into(), vec![0.5, 0.25]),
            ],
        };
        let b = Log {
            run: "ours".into(),
            iteration: vec![10.0],
            metrics: vec![
                ("loss_total".into(), vec![3.0]),
                ("loss_cl".into(), vec![0.1]),
            ],
        };
        let figs = charts(&[a, b], 0.0);
        let names: Vec<&str> = figs.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            ["train_loss_total", "train_loss_ent", "train_loss_cl"]
        );
        let Chart::Lines(total) = &figs[0].chart else {
            panic!()
        };
        assert_eq!(total.series.len(), 2);
        assert_eq!(total.series[0].points, [(10.0, 2.0), (20.0, 1.0)]);
        assert_eq!(
            (total.series[1].name.as_str(), total.series[1].colour),
            ("ours", 1)
        );
        let Chart::Lines(cl) = &figs[2].chart else {
            panic!()
        };
        assert_eq!(cl.series.len(), 1);
        assert_eq!(
            cl.series[0].colour, 1,
            "a run keeps its colour in every chart"
        );
    }
}
