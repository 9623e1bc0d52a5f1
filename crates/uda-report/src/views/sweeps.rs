//! View 7: mIoU against each sweep variable with two or more values (β, λ, seed, ...). For a
//! variable other than `seed`, one line per group of runs that agree on every other variable but
//! the seed, a point per value: the mean over its seeds with ± one sample std as the error bar.
//! For `seed` itself, one line per row of the table and a point per seed.

use super::{Block, Section, mean_std};
use crate::chart::{Chart, Figure, LineSeries, Lines};
use crate::error::Result;
use crate::frame::param_names;
use crate::page::PageOptions;
use crate::run::{Run, SEED, select};
use crate::table::{IouTable, Options};

pub(super) fn empty() -> Section {
    Section::new(
        "sweeps",
        "Sweeps",
        "mIoU against each sweep variable; error bars: ± one std over seeds.",
    )
}

/// One evaluated instance: its stage, sweep variables and mIoU (percent).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Point {
    pub stage: String,
    pub params: Vec<(String, String)>,
    pub miou: f64,
}

impl Point {
    fn param(&self, k: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }

    /// The line a point belongs to: the stage and every variable but `var` and the seed.
    fn line(&self, var: &str) -> String {
        let rest: Vec<String> = self
            .params
            .iter()
            .filter(|(k, _)| k != var && (k != SEED || var == SEED))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if rest.is_empty() {
            self.stage.clone()
        } else {
            format!("{}[{}]", self.stage, rest.join(","))
        }
    }
}

/// Sorts sweep values numerically when they all parse as numbers, else as text. Returns whether
/// the x axis is numeric: numbers that are not all integers (β, λ). Integers (seeds, iteration
/// counts) and text get one evenly spaced tick per value, labelled with it.
fn sort_values(values: &mut [String]) -> bool {
    let num = |v: &String| v.parse::<f64>().ok();
    let numbers = values.iter().all(|v| num(v).is_some());
    if numbers {
        values.sort_by(|a, b| num(a).unwrap_or(0.0).total_cmp(&num(b).unwrap_or(0.0)));
    } else {
        values.sort();
    }
    numbers && !values.iter().all(|v| v.parse::<i64>().is_ok())
}

/// The chart of `var`, or `None` when it has fewer than two values.
pub(crate) fn chart(points: &[Point], var: &str) -> Option<Figure> {
    let mut values: Vec<String> = Vec::new();
    for p in points {
        if let Some(v) = p.param(var)
            && !values.iter().any(|x| x == v)
        {
            values.push(v.to_string());
        }
    }
    if values.len() < 2 {
        return None;
    }
    let numeric = sort_values(&mut values);
    let mut lines: Vec<String> = Vec::new();
    for p in points.iter().filter(|p| p.param(var).is_some()) {
        let l = p.line(var);
        if !lines.contains(&l) {
            lines.push(l);
        }
    }
    let series = lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let mut pts = Vec::new();
            let mut errors = Vec::new();
            for (k, v) in values.iter().enumerate() {
                let at: Vec<f64> = points
                    .iter()
                    .filter(|p| p.param(var) == Some(v.as_str()) && &p.line(var) == line)
                    .map(|p| p.miou)
                    .collect();
                if let (Some(m), s) = mean_std(&at) {
                    let x = if numeric {
                        v.parse().unwrap_or(k as f64)
                    } else {
                        k as f64
                    };
                    pts.push((x, m));
                    errors.push(s.unwrap_or(0.0));
                }
            }
            let has_errors = errors.iter().any(|e| *e > 0.0);
            LineSeries {
                name: line.clone(),
                colour: i,
                points: pts,
                errors: if has_errors { errors } else { vec![] },
            }
        })
        .collect();
    Some(Figure {
        name: format!("sweep_{}", super::slug(var)),
        chart: Chart::Lines(Lines {
            title: format!("mIoU against {var}"),
            x_label: var.to_string(),
            y_label: "mIoU (%)".into(),
            series,
            x_ticks: (!numeric).then_some(values),
            markers: true,
        }),
    })
}

pub(super) fn section(runs: &[Run], opts: &PageOptions) -> Result<Section> {
    let mut s = empty();
    let runs = select(runs, &opts.table.filters)?;
    let per_run = IouTable::build(
        &runs,
        &Options {
            aggregate_seeds: false,
            filters: vec![],
        },
    )?;
    let points: Vec<Point> = runs
        .iter()
        .filter_map(|r| {
            let row = per_run.rows.iter().find(|x| x.name == r.name)?;
            Some(Point {
                stage: r.stage.clone(),
                params: r.params.clone(),
                miou: row.miou? * 100.0,
            })
        })
        .collect();
    let vars = param_names(&runs);
    for v in &vars {
        if let Some(f) = chart(&points, v) {
            s.blocks.push(Block::Figure(f));
        }
    }
    if s.blocks.is_empty() {
        s.blocks.push(Block::Note(format!(
            "no sweep variable has two or more values among the evaluated runs (variables: {}); \
             e.g. `uda-pipe run pipeline.yaml --set 'seeds=[0,1,2]'` adds seeds",
            if vars.is_empty() {
                "none".into()
            } else {
                vars.join(", ")
            }
        )));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(stage: &str, beta: &str, seed: &str, miou: f64) -> Point {
        Point {
            stage: stage.into(),
            params: vec![("beta".into(), beta.into()), ("seed".into(), seed.into())],
            miou,
        }
    }

    #[test]
    fn each_value_is_the_mean_over_seeds_with_sample_std() {
        let pts = [
            p("eval", "0.05", "0", 30.0),
            p("eval", "0.05", "1", 34.0),
            p("eval", "0.01", "0", 20.0),
            p("eval", "0.01", "1", 22.0),
            p("eval_b", "0.01", "0", 10.0),
        ];
        let f = chart(&pts, "beta").unwrap();
        let Chart::Lines(l) = f.chart else { panic!() };
        assert_eq!(l.x_ticks, None, "numeric values: a numeric axis");
        let names: Vec<&str> = l.series.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["eval", "eval_b"]);
        // Sorted by value: 0.01 then 0.05; means 21 and 32; std of (20, 22) = √2, (30, 34) = 2√2.
        assert_eq!(l.series[0].points, [(0.01, 21.0), (0.05, 32.0)]);
        let e = &l.series[0].errors;
        assert!((e[0] - 2f64.sqrt()).abs() < 1e-12 && (e[1] - 8f64.sqrt()).abs() < 1e-12);
        assert_eq!(l.series[1].points, [(0.01, 10.0)]);
        assert!(l.series[1].errors.is_empty(), "one seed: no error bars");

        let f = chart(&pts, "seed").unwrap();
        let Chart::Lines(l) = f.chart else { panic!() };
        let names: Vec<&str> = l.series.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["eval[beta=0.05]", "eval[beta=0.01]", "eval_b[beta=0.01]"]
        );
        assert_eq!(
            l.x_ticks,
            Some(vec!["0".to_string(), "1".to_string()]),
            "integers: ticks"
        );
        assert_eq!(l.series[0].points, [(0.0, 30.0), (1.0, 34.0)]);
        assert!(chart(&pts[..1], "beta").is_none(), "one value: no chart");
    }

    #[test]
    fn text_values_get_a_categorical_axis() {
        let pts = [p("e", "b", "0", 1.0), p("e", "a", "0", 2.0)];
        let Chart::Lines(l) = chart(&pts, "beta").unwrap().chart else {
            panic!()
        };
        assert_eq!(l.x_ticks, Some(vec!["a".to_string(), "b".to_string()]));
        assert_eq!(l.series[0].points, [(0.0, 2.0), (1.0, 1.0)]);
    }
}
