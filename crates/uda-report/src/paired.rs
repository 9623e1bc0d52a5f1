//! Paired differences across seeds (`uda-pipe report --baseline ROW --paired`).
//!
//! A seed of the synthetic benchmark is a new draw of both domains and new initialisations, so
//! mIoU moves by points from seed to seed and two rows' mean ± std overlap even when one row wins
//! on every seed. Pairing each row's run with the baseline's run of the same seed removes that
//! shared variation: the statistic is the per-seed difference, and its Student t interval
//! (n − 1 degrees of freedom) says whether the mean difference is distinguishable from zero.

use crate::error::{ReportError, Result};
use crate::format::{csv_field, json_records, layout};
use crate::run::{Run, SEED, select};
use crate::table::{IouTable, Options};
use crate::{Format, format::pct};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Two-sided confidence of [`Paired::interval`].
pub const CONFIDENCE: f64 = 0.95;

/// One row against the baseline, over the seeds both have. mIoU values are fractions.
#[derive(Debug, Clone, PartialEq)]
pub struct Paired {
    /// The row (a seed group name as shown in the table).
    pub row: String,
    pub baseline: String,
    /// The seeds both rows have, in the row's order, with `row − baseline` mIoU for each.
    pub seeds: Vec<String>,
    pub diffs: Vec<f64>,
    pub mean: f64,
    /// Sample standard deviation of the differences (ddof = 1); `None` for one seed.
    pub std: Option<f64>,
    /// [`CONFIDENCE`] Student t interval of the mean difference; `None` for one seed.
    pub interval: Option<(f64, f64)>,
}

impl Paired {
    /// Seeds on which the row beats the baseline.
    pub fn wins(&self) -> usize {
        self.diffs.iter().filter(|d| **d > 0.0).count()
    }

    fn from_diffs(row: &str, baseline: &str, seeds: Vec<String>, diffs: Vec<f64>) -> Self {
        let n = diffs.len() as f64;
        let mean = diffs.iter().sum::<f64>() / n;
        let (std, interval) = if diffs.len() < 2 {
            (None, None)
        } else {
            let var = diffs.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1.0);
            let std = var.sqrt();
            let t = StudentsT::new(0.0, 1.0, n - 1.0)
                .expect("n - 1 >= 1 degrees of freedom")
                .inverse_cdf(0.5 + CONFIDENCE / 2.0);
            let half = t * std / n.sqrt();
            (Some(std), Some((mean - half, mean + half)))
        };
        Self {
            row: row.to_string(),
            baseline: baseline.to_string(),
            seeds,
            diffs,
            mean,
            std,
            interval,
        }
    }
}

/// Every seed group of `runs` (after `opts.filters`) against the group `baseline`, paired by
/// seed. Groups with no seed in common with the baseline, and runs without a `seed` sweep
/// variable, are left out. Fails when `baseline` is not a seed group of the runs.
pub fn paired_differences(runs: &[Run], opts: &Options, baseline: &str) -> Result<Vec<Paired>> {
    let per_seed = IouTable::build(
        runs,
        &Options {
            aggregate_seeds: false,
            filters: opts.filters.clone(),
        },
    )?;
    // (group, [(seed, mIoU)]) in first-seen order.
    let mut groups: Vec<(String, Vec<(String, f64)>)> = Vec::new();
    for run in select(runs, &opts.filters)? {
        let (Some(seed), Some(miou)) = (
            run.param(SEED),
            per_seed.row(&run.name).ok().and_then(|r| r.miou),
        ) else {
            continue;
        };
        let group = run.row_name(true);
        match groups.iter_mut().find(|(g, _)| *g == group) {
            Some((_, seeds)) => seeds.push((seed.to_string(), miou)),
            None => groups.push((group, vec![(seed.to_string(), miou)])),
        }
    }
    let Some((_, base)) = groups.iter().find(|(g, _)| g == baseline) else {
        return Err(ReportError::NotPairable {
            name: baseline.to_string(),
            groups: groups
                .iter()
                .map(|(g, _)| g.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    Ok(groups
        .iter()
        .filter(|(g, _)| g != baseline)
        .filter_map(|(g, seeds)| {
            let (seeds, diffs): (Vec<String>, Vec<f64>) = seeds
                .iter()
                .filter_map(|(s, m)| {
                    let (_, b) = base.iter().find(|(bs, _)| bs == s)?;
                    Some((s.clone(), m - b))
                })
                .unzip();
            (!diffs.is_empty()).then(|| Paired::from_diffs(g, baseline, seeds, diffs))
        })
        .collect())
}

/// Column names of the CSV and JSON records.
const COLUMNS: [&str; 9] = [
    "run",
    "baseline",
    "n",
    "seeds",
    "mean_delta_miou",
    "std_delta_miou",
    "ci_low",
    "ci_high",
    "wins",
];

/// The paired table: text or Markdown for people (percent, 2 decimals), CSV or JSON for scripts
/// (percent, unrounded; columns `run`, `baseline`, `n`, `seeds`, `mean_delta_miou`,
/// `std_delta_miou`, `ci_low`, `ci_high`, `wins`).
pub fn render_paired(rows: &[Paired], format: Format) -> String {
    let opt = |v: Option<f64>| v.map(|v| v * 100.0);
    match format {
        Format::Table | Format::Markdown => {
            let header: Vec<String> = [
                "run",
                "baseline",
                "n",
                "seeds",
                "Δ mIoU",
                "std of Δ",
                "95 % t interval",
                "wins",
            ]
            .map(String::from)
            .to_vec();
            let lines: Vec<Vec<String>> = rows
                .iter()
                .map(|p| {
                    vec![
                        p.row.clone(),
                        p.baseline.clone(),
                        p.diffs.len().to_string(),
                        p.seeds.join(","),
                        format!("{:+.2}", p.mean * 100.0),
                        pct(p.std),
                        p.interval.map_or("-".into(), |(lo, hi)| {
                            format!("[{:+.2}, {:+.2}]", lo * 100.0, hi * 100.0)
                        }),
                        format!("{}/{}", p.wins(), p.diffs.len()),
                    ]
                })
                .collect();
            layout(&header, &lines, 4, format == Format::Markdown)
        }
        Format::Csv => {
            let mut out = COLUMNS.join(",") + "\n";
            let num = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
            for p in rows {
                let (lo, hi) = p.interval.unzip();
                out += &format!(
                    "{},{},{},{},{},{},{},{},{}\n",
                    csv_field(&p.row),
                    csv_field(&p.baseline),
                    p.diffs.len(),
                    csv_field(&p.seeds.join(",")),
                    p.mean * 100.0,
                    num(opt(p.std)),
                    num(opt(lo)),
                    num(opt(hi)),
                    p.wins()
                );
            }
            out
        }
        Format::Json => {
            use serde_json::Value;
            let num = |v: Option<f64>| {
                v.and_then(serde_json::Number::from_f64)
                    .map_or(Value::Null, Value::Number)
            };

            let records: Vec<Vec<Value>> = rows
                .iter()
                .map(|p| {
                    let (lo, hi) = p.interval.unzip();
                    vec![
                        Value::from(p.row.as_str()),
                        Value::from(p.baseline.as_str()),
                        Value::from(p.diffs.len()),
                        Value::from(p.seeds.clone()),
                        num(Some(p.mean * 100.0)),
                        num(opt(p.std)),
                        num(opt(lo)),
                        num(opt(hi)),
                        Value::from(p.wins()),
                    ]
                })
                .collect();
            json_records(&COLUMNS, &records)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::write;

    /// `eval_<stage>[seed=s]` with every class at IoU `tenths / 10`, so its mIoU is `tenths / 10`.
    fn run(root: &std::path::Path, stage: &str, seed: u32, tenths: u8) -> Run {
        let name = format!("{stage}[seed={seed}]");
        Run::new(name.clone(), write(root, &name, |_| Some(tenths)))
    }

    #[test]
    fn differences_are_paired_by_seed_with_the_student_t_interval() {
        let d = tempfile::tempdir().unwrap();
        let base = [3, 4, 5, 3, 4];
        let ours = [5, 5, 6, 4, 7];
        let mut runs = Vec::new();
        // The baseline's runs in another order than ours: pairing goes by seed, not position.
        for s in [4, 2, 0, 1, 3] {
            runs.push(run(d.path(), "eval_fda", s, base[s as usize]));
        }
        for s in 0..5 {
            runs.push(run(d.path(), "eval_ours", s, ours[s as usize]));
        }
        // A seed the baseline lacks is not paired.
        runs.push(run(d.path(), "eval_ours", 9, 9));
        let p = paired_differences(&runs, &Options::default(), "eval_fda").unwrap();
        assert_eq!(p.len(), 1);
        let p = &p[0];
        assert_eq!(
            (p.row.as_str(), p.baseline.as_str()),
            ("eval_ours", "eval_fda")
        );
        assert_eq!(p.seeds, ["0", "1", "2", "3", "4"]);
        let want = [0.2, 0.1, 0.1, 0.1, 0.3];
        for (d, w) in p.diffs.iter().zip(want) {
            assert!((d - w).abs() < 1e-12, "{d} vs {w}");
        }
        // mean 0.16, std sqrt(0.032 / 4); t(0.975, 4 df) = 2.776445 (printed t tables).
        assert!((p.mean - 0.16).abs() < 1e-12);
        let std = 0.008f64.sqrt();
        assert!((p.std.unwrap() - std).abs() < 1e-12);
        let half = 2.776445 * std / 5f64.sqrt();
        let (lo, hi) = p.interval.unwrap();
        assert!((lo - (0.16 - half)).abs() < 1e-7, "{lo}");
        assert!((hi - (0.16 + half)).abs() < 1e-7, "{hi}");
        assert_eq!(p.wins(), 5);
        let md = render_paired(std::slice::from_ref(p), Format::Markdown);
        assert!(
            md.contains(
                "| eval_ours | eval_fda | 5 | 0,1,2,3,4 | +16.00 | 8.94 | [+4.89, +27.11] | 5/5 |"
            ),
            "{md}"
        );
        let csv = render_paired(std::slice::from_ref(p), Format::Csv);
        assert!(
            csv.starts_with("run,baseline,n,seeds,mean_delta_miou"),
            "{csv}"
        );
        let line = csv.lines().nth(1).unwrap();
        let rest = line
            .strip_prefix("eval_ours,eval_fda,5,\"0,1,2,3,4\",")
            .unwrap();
        let mean: f64 = rest.split(',').next().unwrap().parse().unwrap();
        assert!((mean - 16.0).abs() < 1e-9, "{csv}");
        let json: serde_json::Value =
            serde_json::from_str(&render_paired(std::slice::from_ref(p), Format::Json)).unwrap();
        assert_eq!(
            json[0]["seeds"],
            serde_json::json!(["0", "1", "2", "3", "4"])
        );
        assert!((json[0]["ci_low"].as_f64().unwrap() - (16.0 - half * 100.0)).abs() < 1e-5);
    }

    #[test]
    fn one_common_seed_has_no_interval_and_a_baseline_without_seeds_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let runs = vec![
            run(d.path(), "eval_fda", 0, 4),
            run(d.path(), "eval_ours", 0, 3),
            Run::from_dir(write(d.path(), "eval_oracle", |_| Some(8))),
        ];
        let p = paired_differences(&runs, &Options::default(), "eval_fda").unwrap();
        assert_eq!(p.len(), 1, "the oracle has no seed to pair");
        assert!((p[0].mean + 0.1).abs() < 1e-12);
        assert_eq!((p[0].std, p[0].interval, p[0].wins()), (None, None, 0));
        let err = paired_differences(&runs, &Options::default(), "eval_oracle")
            .unwrap_err()
            .to_string();
        assert!(err.contains("'eval_oracle'"), "{err}");
        assert!(err.contains("eval_fda, eval_ours"), "{err}");
    }
}
