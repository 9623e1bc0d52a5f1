//! Tables from real evaluate outputs: the fixtures are written by `uda_metrics::Report::write`,
//! the evaluate stage's own writer, from confusion matrices with known IoUs.

use crate::page::PageOptions;
use crate::*;
use std::path::{Path, PathBuf};
use uda_metrics::{ConfusionMatrix, ImageResult, Provenance, Report};

/// An evaluate report where class `c` has IoU `tenths(c) / 10` (TP = tenths, FN = 10 − tenths,
/// the FN predicted outside the 19 classes so it is nobody's FP), or is absent (`None`).
fn report(tenths: impl Fn(usize) -> Option<u8>) -> Report {
    let (mut gt, mut pred) = (Vec::new(), Vec::new());
    for c in 0..19u8 {
        if let Some(t) = tenths(usize::from(c)) {
            for i in 0..10 {
                gt.push(c);
                pred.push(if i < t { c } else { 255 });
            }
        }
    }
    let matrix = ConfusionMatrix::from_maps(&gt, &pred).unwrap();
    let provenance = Provenance {
        stage: "evaluate".into(),
        mode: "external".into(),
        predictions: "/p".into(),
        ground_truth: "/g".into(),
        model_meta: None,
        params: "{}".into(),
    };
    Report::new(
        vec![ImageResult {
            name: "img".into(),
            matrix,
        }],
        provenance,
    )
}

/// Writes the report into `root/name` and returns the folder.
pub(crate) fn write(root: &Path, name: &str, tenths: impl Fn(usize) -> Option<u8>) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    report(tenths).write(&dir).unwrap();
    dir
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

/// Seed `s` of `eval` has class IoU (s + c % 3 + 2) / 10: mIoUs differ by exactly 0.1 per seed.
fn seeded(root: &Path, s: u8) -> Run {
    let name = format!("eval[beta=0.01,seed={s}]");
    let dir = write(root, &name, |c| Some(s + (c % 3) as u8 + 2));
    Run::new(name, dir)
}

#[test]
fn wide_table_holds_each_runs_class_ious_and_the_stage_miou() {
    let d = tempfile::tempdir().unwrap();
    let a = write(d.path(), "eval_a", |c| Some((c % 10) as u8));
    let b = write(d.path(), "eval_b", |c| (c != 3).then_some(5));
    let runs = [Run::from_dir(a), Run::from_dir(b)];
    let t = IouTable::build(&runs, &Options::default()).unwrap();
    assert_eq!(t.classes.len(), 19);
    assert_eq!(t.classes[6], "traffic light");
    assert!(t.params.is_empty());
    let names: Vec<&str> = t.rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["eval_a", "eval_b"]);
    for c in 0..19 {
        assert!(
            close(t.rows[0].iou[c].unwrap(), (c % 10) as f64 / 10.0),
            "class {c}"
        );
    }
    assert_eq!(t.rows[1].iou[3], None, "undefined IoU stays null");
    assert_eq!(t.rows[1].iou[4], Some(0.5));
    // mIoU = the evaluate stage's own number (mean over defined classes).
    let stage_miou = [
        report(|c| Some((c % 10) as u8))
            .total
            .scores()
            .miou
            .unwrap(),
        report(|c| (c != 3).then_some(5))
            .total
            .scores()
            .miou
            .unwrap(),
    ];
    for (row, m) in t.rows.iter().zip(stage_miou) {
        assert!(close(row.miou.unwrap(), m), "{row:?} vs {m}");
        assert_eq!((row.n, row.miou_std), (1, None));
    }
    let text = render(&t, Format::Table, None).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("run") && lines[0].ends_with("mIoU"),
        "{text}"
    );
    assert!(
        lines[2].starts_with("eval_a") && lines[2].contains("90.00"),
        "{text}"
    );
    assert!(lines[3].contains("  -  "), "undefined shown as -: {text}");
}

#[test]
fn csv_starts_with_run_and_has_miou_in_percent() {
    let d = tempfile::tempdir().unwrap();
    let runs = [
        Run::from_dir(write(d.path(), "eval_a", |_| Some(5))),
        Run::new("eval[beta=0.05,lr=1]", write(d.path(), "x", |_| Some(2))),
    ];
    let t = IouTable::build(&runs, &Options::default()).unwrap();
    let csv = render(&t, Format::Csv, None).unwrap();
    let lines: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    let header = &lines[0];
    assert_eq!(header[..4], ["run", "beta", "lr", "n"], "{csv}");
    assert_eq!(header[4], "road");
    assert_eq!(header[header.len() - 2..], ["miou", "miou_std"]);
    assert_eq!(header.len(), 1 + 2 + 1 + 19 + 2);
    assert_eq!(lines[1][..5], ["eval_a", "", "", "1", "50"], "{csv}");
    assert_eq!(lines[1][header.len() - 2..], ["50", ""]);
    // A name with a comma is quoted (RFC 4180), so the fields still line up.
    let second = csv.lines().nth(2).unwrap();
    assert!(
        second.starts_with("\"eval[beta=0.05,lr=1]\",0.05,1,1,20,"),
        "{csv}"
    );
}

#[test]
fn json_parses_with_ordered_keys_and_miou() {
    let d = tempfile::tempdir().unwrap();
    let runs = [seeded(d.path(), 1), seeded(d.path(), 2)];
    let t = IouTable::build(&runs, &Options::default()).unwrap();
    let text = render(&t, Format::Json, None).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(r["run"], "eval[beta=0.01]");
    assert_eq!(r["beta"], 0.01, "numeric sweep values stay numbers");
    assert_eq!(r["n"], 2);
    assert!(
        r.get("seed").is_none(),
        "the aggregated variable is not a column"
    );
    let miou = r["miou"].as_f64().unwrap();
    // Seed 1: classes 0.3/0.4/0.5 repeating; seed 2: +0.1 each.
    let m1 = report(|c| Some(1 + (c % 3) as u8 + 2))
        .total
        .scores()
        .miou
        .unwrap();
    assert!(close(miou, (m1 + m1 + 0.1) / 2.0 * 100.0), "{miou} {m1}");
    assert!(text.trim_start().starts_with("[\n  {\"run\": "), "{text}");
}

#[test]
fn seeds_aggregate_to_mean_and_sample_std() {
    let d = tempfile::tempdir().unwrap();
    let mut runs: Vec<Run> = (1..=3).map(|s| seeded(d.path(), s)).collect();
    runs.push(Run::new("eval_base", write(d.path(), "base", |_| Some(1))));
    let t = IouTable::build(&runs, &Options::default()).unwrap();
    assert_eq!(t.params, ["beta"]);
    assert_eq!(t.rows.len(), 2);
    let g = &t.rows[0];
    assert_eq!((g.name.as_str(), g.n), ("eval[beta=0.01]", 3));
    assert_eq!(g.params, [Some("0.01".to_string())]);
    // Per class: mean over seeds 1..3 of (s + c % 3 + 2) / 10 = (c % 3 + 4) / 10.
    for c in 0..19 {
        assert!(
            close(g.iou[c].unwrap(), (c % 3 + 4) as f64 / 10.0),
            "class {c}"
        );
    }
    let m: Vec<f64> = (1..=3u8)
        .map(|s| {
            report(|c| Some(s + (c % 3) as u8 + 2))
                .total
                .scores()
                .miou
                .unwrap()
        })
        .collect();
    let mean = m.iter().sum::<f64>() / 3.0;
    let sample_std = (m.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
    assert!(close(g.miou.unwrap(), mean));
    assert!(close(g.miou_std.unwrap(), sample_std), "ddof = 1");
    assert!(close(sample_std, 0.1), "seeds are 0.1 apart: {sample_std}");
    let base = &t.rows[1];
    assert_eq!(
        (base.name.as_str(), base.n, base.miou_std),
        ("eval_base", 1, None)
    );
    assert_eq!(base.params, [None]);

    let per_seed = Options {
        aggregate_seeds: false,
        ..Options::default()
    };
    let t = IouTable::build(&runs, &per_seed).unwrap();
    assert_eq!(t.rows.len(), 4);
    assert_eq!(t.params, ["beta", "seed"]);
    assert_eq!(t.rows[1].name, "eval[beta=0.01,seed=2]");
    assert!(close(t.rows[1].miou.unwrap(), m[1]));

    let only = Options {
        filters: vec![parse_filter("seed=3").unwrap()],
        ..Options::default()
    };
    let t = IouTable::build(&runs, &only).unwrap();
    assert_eq!(t.rows.len(), 1);
    assert_eq!(
        (t.rows[0].name.as_str(), t.rows[0].n),
        ("eval[beta=0.01]", 1)
    );
    assert!(close(t.rows[0].miou.unwrap(), m[2]));

    let md = render(
        &IouTable::build(&runs, &Options::default()).unwrap(),
        Format::Markdown,
        None,
    )
    .unwrap();
    assert!(
        md.lines()
            .nth(2)
            .unwrap()
            .starts_with("| eval[beta=0.01] | 3 | "),
        "{md}"
    );
    assert!(md.contains(&format!("{:.2} ± 10.00", mean * 100.0)), "{md}");
}

#[test]
fn baseline_adds_deltas() {
    let d = tempfile::tempdir().unwrap();
    let runs = [
        Run::from_dir(write(d.path(), "eval_base", |_| Some(4))),
        Run::from_dir(write(d.path(), "eval_ours", |c| (c != 0).then_some(6))),
    ];
    let t = IouTable::build(&runs, &Options::default()).unwrap();
    let (delta, delta_miou) = t.rows[1].delta(&t.rows[0]);
    assert_eq!(delta[0], None, "undefined in one row");
    assert!(close(delta[1].unwrap(), 0.2));
    assert!(close(delta_miou.unwrap(), 0.2));

    let csv = render(&t, Format::Csv, Some("eval_base")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    assert_eq!(header.len(), 1 + 1 + 19 + 2 + 19 + 1);
    assert_eq!(header[23], "delta_road");
    assert_eq!(header.last(), Some(&"delta_miou"));
    let ours: Vec<&str> = csv.lines().nth(2).unwrap().split(',').collect();
    let d_miou: f64 = ours.last().unwrap().parse().unwrap();
    assert!((d_miou - 20.0).abs() < 1e-9, "{csv}");
    let base: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
    assert_eq!(base.last(), Some(&"0"));

    let text = render(&t, Format::Table, Some("eval_base")).unwrap();
    let delta_line = text.lines().find(|l| l.starts_with("Δ eval_ours")).unwrap();
    assert!(
        delta_line.ends_with("+20.00") && delta_line.contains("  -  "),
        "{text}"
    );
    assert!(text.contains("eval_base (baseline)"), "{text}");
    let json = render(&t, Format::Json, Some("eval_base")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!((v[1]["delta_miou"].as_f64().unwrap() - 20.0).abs() < 1e-9);

    let e = render(&t, Format::Csv, Some("nope")).unwrap_err();
    assert!(e.to_string().contains("rows: eval_base, eval_ours"), "{e}");
}

#[test]
fn markdown_has_run_plus_twenty_columns() {
    let d = tempfile::tempdir().unwrap();
    let runs = [
        Run::from_dir(write(d.path(), "a|b", |_| Some(3))),
        Run::from_dir(write(d.path(), "c", |_| Some(7))),
    ];
    let t = IouTable::build(&runs, &Options::default()).unwrap();
    let md = render(&t, Format::Markdown, None).unwrap();
    let lines: Vec<&str> = md.lines().collect();
    assert_eq!(lines.len(), 4, "{md}");
    for l in &lines {
        let cells = l.trim_matches('|').replace("\\|", "/");
        assert_eq!(cells.split('|').count(), 21, "run + 19 classes + mIoU: {l}");
    }
    assert!(lines[0].starts_with("| run | road | sidewalk |") && lines[0].ends_with("| mIoU |"));
    assert!(lines[1].starts_with("|:---|---:|"));
    assert!(
        lines[2].starts_with("| a\\|b | 30.00 |") && lines[2].ends_with("| 30.00 |"),
        "{md}"
    );
}

#[test]
fn folders_that_are_not_evaluate_outputs_and_class_mismatches_fail_clearly() {
    let d = tempfile::tempdir().unwrap();
    let good = Run::from_dir(write(d.path(), "good", |_| Some(5)));
    let empty = d.path().join("train_out");
    std::fs::create_dir_all(&empty).unwrap();
    let e = IouTable::build(&[good.clone(), Run::from_dir(&empty)], &Options::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&empty.display().to_string())
            && e.contains("is not an evaluate output")
            && e.contains("per_class.parquet"),
        "{e}"
    );

    let short = d.path().join("short");
    std::fs::create_dir_all(&short).unwrap();
    let r = report(|_| Some(5));
    r.write(&short).unwrap();
    uda_data::table::write_parquet(&short.join(PER_CLASS), &r.per_class_batch().slice(0, 18))
        .unwrap();
    let e = IouTable::build(&[good, Run::from_dir(&short)], &Options::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("short") && e.contains("good") && e.contains("18 vs 19 classes"),
        "{e}"
    );
    assert!(matches!(
        IouTable::build(&[], &Options::default()),
        Err(ReportError::NoRuns)
    ));
}

#[test]
fn long_frame_is_lazy_long_form() {
    let d = tempfile::tempdir().unwrap();
    let runs = [seeded(d.path(), 1), seeded(d.path(), 2)];
    let long = long_frame(&runs, true).unwrap().collect().unwrap();
    let names: Vec<String> = long
        .get_column_names()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(
        names,
        ["run", ROW, "beta", "seed", "class_id", "class_name", "iou"]
    );
    assert_eq!(long.height(), 38);
}

/// A `train_log.parquet` as uda-train writes it (columns of `uda_train::log`), via polars.
fn write_train_log(dir: &Path, iters: &[u64], ce: &[f64]) {
    use polars::prelude::*;
    std::fs::create_dir_all(dir).unwrap();
    let n = iters.len();
    let mut df = df!(
        "iteration" => iters.to_vec(),
        "window" => vec![10u32; n],
        "lr" => vec![0.001f64; n],
        "loss_total" => ce.to_vec(),
        "loss_ce" => ce.to_vec(),
        "data_wait_s" => vec![0.5f64; n],
        "step_s" => vec![2.0f64; n],
    )
    .unwrap();
    let f = std::fs::File::create(dir.join("train_log.parquet")).unwrap();
    ParquetWriter::new(f).finish(&mut df).unwrap();
}

#[test]
fn bars_carry_the_seed_spread_computed_through_polars() {
    let d = tempfile::tempdir().unwrap();
    let runs: Vec<Run> = (1..=3).map(|s| seeded(d.path(), s)).collect();
    let t = IouTable::build(&runs, &Options::default()).unwrap();
    let std = crate::views::class_std_for_tests(&runs, &PageOptions::default()).unwrap();
    let b = crate::views::bars_for_tests(&t, &std);
    assert_eq!(b.series.len(), 1);
    // Seeds 1..3 of class c: (s + c % 3 + 2) / 10 → mean (c % 3 + 4) / 10, sample std 0.1.
    for c in 0..19 {
        let v = b.series[0].values[c].unwrap();
        assert!(
            (v - (c % 3 + 4) as f64 * 10.0).abs() < 1e-9,
            "class {c}: {v}"
        );
        let e = b.series[0].errors[c].unwrap();
        assert!((e - 10.0).abs() < 1e-9, "class {c}: ± {e}");
    }
    assert_eq!(b.categories.last().map(String::as_str), Some("mIoU"));
}

#[test]
fn confusion_counts_read_from_the_evaluate_file_are_row_normalised() {
    let d = tempfile::tempdir().unwrap();
    let dir = write(d.path(), "e", |c| Some((c % 10) as u8));
    let m = crate::views::confusion_counts_for_tests(&dir.join("confusion.parquet"), 19).unwrap();
    // Class c: c correct pixels of 10, the rest predicted outside the classes (last column).
    assert_eq!(m[3][3], 3.0);
    assert_eq!(m[3][19], 7.0);
    assert_eq!(m[3].iter().sum::<f64>(), 10.0);
}

#[test]
fn page_from_fixtures_has_every_view_and_notes_for_what_is_missing() {
    let d = tempfile::tempdir().unwrap();
    let mut runs: Vec<Run> = (1..=2).map(|s| seeded(d.path(), s)).collect();
    runs.push(Run::new("eval_base", write(d.path(), "base", |_| Some(3))));
    let train = d.path().join("pretrain");
    write_train_log(&train, &[10, 20, 30], &[3.0, 2.0, 1.5]);
    let untracked = d.path().join("model_only");
    std::fs::create_dir_all(&untracked).unwrap();
    std::fs::write(untracked.join("model.json"), "{}").unwrap();
    let mut results = runs.clone();
    results.push(Run::new("pretrain", &train));
    results.push(Run::new("old_model", &untracked));
    let sources = Sources {
        runs,
        results,
        notes: vec!["eval_x: no result yet".into()],
        ..Sources::default()
    };
    let opts = PageOptions {
        baseline: Some("eval_base".into()),
        ..PageOptions::default()
    };
    let out = d.path().join("r/report.html");
    let w = write_html(&sources, &opts, &out).unwrap();
    let html = std::fs::read_to_string(&out).unwrap();
    assert_eq!(w.bytes, html.len() as u64);
    for id in [
        "table",
        "class-bars",
        "training",
        "sweeps",
        "pseudo-labels",
        "confusion",
        "panels",
        "run",
    ] {
        assert!(html.contains(&format!("<section id=\"{id}\"")), "{id}");
    }
    for fig in [
        "class_iou",
        "train_loss_ce",
        "train_s_iter",
        "sweep_seed",
        "confusion_eval_beta_0.01_",
    ] {
        assert!(html.contains(&format!("<figure id=\"fig-{fig}\"")), "{fig}");
    }
    assert!(
        html.contains("Δ eval[beta=0.01]"),
        "Δ row against the baseline"
    );
    assert!(html.contains("eval_x: no result yet"));
    assert!(
        html.contains("old_model"),
        "a model without train_log is named"
    );
    assert!(
        html.contains("no classes.parquet"),
        "no pseudo-labels: a note"
    );
    assert!(html.contains("no run history"));
    assert!(!html.contains("src=\"http"));

    let plots = d.path().join("plots");
    let w = write_plots(&sources, &opts, &plots).unwrap();
    for f in [
        "class_iou.svg",
        "class_iou.png",
        "train_loss_ce.png",
        "sweep_seed.svg",
        "notes.txt",
    ] {
        assert!(plots.join(f).is_file(), "{f}");
    }
    assert!(w.notes >= 3, "{w:?}");
    let png = crate::chart::encode::read_png(&plots.join("class_iou.png")).unwrap();
    let dark = png.data.chunks(3).filter(|p| p[0] < 128).count();
    assert!(dark > 500, "the PNG has bars and text: {dark} dark pixels");
}

#[test]
fn many_rows_draw_at_most_twelve_confusion_matrices_and_say_so() {
    let d = tempfile::tempdir().unwrap();
    let runs: Vec<Run> = (0..13)
        .map(|k| Run::from_dir(write(d.path(), &format!("e{k:02}"), |_| Some(5))))
        .collect();
    let sources = Sources {
        results: runs.clone(),
        runs,
        ..Sources::default()
    };
    let plots = d.path().join("plots");
    write_plots(&sources, &PageOptions::default(), &plots).unwrap();
    let svgs = std::fs::read_dir(&plots)
        .unwrap()
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with("confusion_") && n.ends_with(".svg")
        })
        .count();
    assert_eq!(svgs, 12);
    assert!(
        !plots.join("confusion_e12.svg").exists(),
        "the 13th row is left out"
    );
    let notes = std::fs::read_to_string(plots.join("notes.txt")).unwrap();
    assert!(notes.contains("13 rows: the first 12 matrices"), "{notes}");
    // --confusion picks one row, also past the first twelve.
    let one = PageOptions {
        confusion: Some("e12".into()),
        ..PageOptions::default()
    };
    let only = d.path().join("one");
    write_plots(&sources, &one, &only).unwrap();
    assert!(only.join("confusion_e12.svg").is_file());
    assert!(!only.join("confusion_e00.svg").exists());
}

#[test]
fn file_names_are_the_evaluate_stage_s_own() {
    // Repeated in this crate so the CLI does not link the metric core; kept equal here.
    assert_eq!(crate::run::PER_CLASS, uda_metrics::report::PER_CLASS);
    assert_eq!(crate::run::SUMMARY, uda_metrics::report::SUMMARY);
}

/// The evaluate report of `report(tenths)` with the checkpoint's `model.json` in `model_meta`.
fn write_with_model(root: &Path, name: &str, backbone: &str, tenths: u8) -> PathBuf {
    let mut r = report(|_| Some(tenths));
    r.provenance.mode = "model".into();
    r.provenance.model_meta = Some(format!(
        "{{\"backbone\": \"{backbone}\", \"produced_by\": \"pretrain\"}}"
    ));
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    r.write(&dir).unwrap();
    dir
}

#[test]
fn published_rows_are_marked_printed_as_printed_and_kept_out_of_deltas() {
    let d = tempfile::tempdir().unwrap();
    let base = write_with_model(d.path(), "eval_base", "enet", 4);
    let ours = write_with_model(d.path(), "eval_ours", "enet", 6);
    assert_eq!(model_backbone(&base).unwrap().as_deref(), Some("enet"));
    let plain = write(d.path(), "external", |_| Some(1));
    assert_eq!(model_backbone(&plain).unwrap(), None);
    let runs = [Run::from_dir(base), Run::from_dir(ours)];
    let t = IouTable::build(&runs, &Options::default()).unwrap();
    let paper = select_published(&PublishedFilter::Backbones(vec!["enet".into()])).unwrap();
    assert_eq!(paper.len(), 6);

    let text = render_with(&t, Format::Table, Some("eval_base"), &paper).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // Header, rule, base, ours, Δ ours, then the six paper rows: no Δ line for any of them.
    assert_eq!(lines.len(), 2 + 3 + 6, "{text}");
    assert!(
        lines[0].starts_with("run") && lines[0].contains("source"),
        "{text}"
    );
    assert!(
        lines[2].contains("this run") && lines[2].contains("(baseline)"),
        "{text}"
    );
    assert!(
        lines[4].starts_with("Δ eval_ours") && lines[4].contains("+20.00"),
        "{text}"
    );
    assert_eq!(text.matches("Δ ").count(), 1, "{text}");
    let gt = lines.iter().find(|l| l.starts_with("CL using GT")).unwrap();
    assert!(
        gt.contains("paper, Table 2: Ablation on ENet backbone"),
        "{gt}"
    );
    // Digits as the paper prints them (69.3, 21.8), not re-rounded to 2 decimals.
    assert!(gt.contains(" 69.3 ") && gt.ends_with(" 21.8"), "{gt}");
    // The computed rows are exactly those of the table without the paper's rows.
    let alone = render(&t, Format::Table, Some("eval_base")).unwrap();
    let ours_alone = alone.lines().find(|l| l.starts_with("eval_ours")).unwrap();
    let numbers = |l: &str| {
        l.split_whitespace()
            .filter(|w| w.parse::<f64>().is_ok())
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(numbers(lines[3]), numbers(ours_alone));
    // A paper row is not a row of this run's table: it cannot be the baseline.
    let e = render_with(&t, Format::Table, Some("CL using GT"), &paper).unwrap_err();
    assert!(e.to_string().contains("no such row"), "{e}");

    let csv = render_with(&t, Format::Csv, Some("eval_base"), &paper).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    assert_eq!(&header[..3], ["run", "source", "n"]);
    let beta = csv
        .lines()
        .find(|l| l.starts_with("\"FDA (β = 0.01, λ_ent = 0)\""))
        .unwrap();
    assert!(
        beta.starts_with(
            "\"FDA (β = 0.01, λ_ent = 0)\",\"paper, Table 2: Ablation on ENet backbone\","
        ),
        "{beta}"
    );
    assert!(beta.contains(",,29.45,"), "no n, then road 29.45: {beta}");
    // mIoU 9.51, no std, no deltas.
    assert!(
        beta.ends_with(&format!(",9.51{}", ",".repeat(21))),
        "{beta}"
    );

    let json = render_with(&t, Format::Json, None, &paper).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 8);
    assert_eq!(rows[0]["source"], "this run");
    assert_eq!(rows[0]["n"], 1);
    assert_eq!(rows[7]["run"], "CL using GT");
    assert_eq!(rows[7]["n"], serde_json::Value::Null);
    assert_eq!(rows[7]["vegetation"], 69.3);
    assert_eq!(rows[7]["miou"], 21.8);
    // Without published rows the columns are the ones scripts already read.
    assert!(!render(&t, Format::Csv, None).unwrap().contains("source"));
}

#[test]
fn component_rows_take_their_marks_from_the_training_params() {
    let d = tempfile::tempdir().unwrap();
    let training = |kind: &str, params: serde_json::Value| {
        Some(Training {
            kind: kind.into(),
            params,
        })
    };
    let ours = |s: u8| {
        let name = format!("eval_ours[seed={s}]");
        Run::new(&name, write(d.path(), &name, |_| Some(4 + s))).with_training(training(
            "contrastive-train",
            serde_json::json!({"lambda_ce": 1.0, "lambda_cl": 1.0, "lambda_ent": 0.005}),
        ))
    };
    let runs = [
        Run::from_dir(write(d.path(), "eval_src", |_| Some(5))).with_training(training(
            "pretrain",
            serde_json::json!({"lambda_ent": 0.0, "grayscale": false}),
        )),
        ours(1),
        ours(2),
        Run::from_dir(write(d.path(), "external", |_| Some(5))),
    ];
    let t = IouTable::build(&runs, &Options::default()).unwrap();
    let rows = component_rows(&t, &runs, true);
    type Marks<'a> = (&'a str, u32, Option<(bool, bool, bool)>);
    let marks: Vec<Marks> = rows
        .iter()
        .map(|r| {
            (
                r.name.as_str(),
                r.n,
                r.components.map(|c| (c.ce, c.cl, c.lambda_ent_zero)),
            )
        })
        .collect();
    assert_eq!(
        marks,
        [
            ("eval_src", 1, Some((true, false, true))),
            ("eval_ours", 2, Some((true, true, false))),
            ("external", 1, None),
        ]
    );
    assert!(close(rows[1].miou.unwrap(), 0.55));
    let paper = select_published(&PublishedFilter::All).unwrap();
    let text = render_components(&rows, &paper, Format::Table);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2 + 3 + 4, "only Table 3's rows: {text}");
    assert!(
        lines[0].contains("CE") && lines[0].contains("λ_ent = 0"),
        "{text}"
    );
    assert!(
        lines[3].contains("✓   ✓") && lines[3].contains("55.00 ± 7.07"),
        "{text}"
    );
    assert!(lines[4].contains("?   ?"), "unknown training: {text}");
    assert!(
        lines[5].starts_with("row 1") && lines[5].ends_with("46.42"),
        "{text}"
    );
    // Differing seeds are not given one set of marks.
    let mixed = [
        ours(1),
        ours(2).with_training(training("pretrain", serde_json::json!({}))),
    ];
    let t2 = IouTable::build(&mixed, &Options::default()).unwrap();
    assert_eq!(component_rows(&t2, &mixed, true)[0].components, None);
    let csv = render_components(&rows, &paper, Format::Csv);
    assert_eq!(
        csv.lines().next().unwrap(),
        "run,source,n,ce,cl,lambda_ent_zero,miou,miou_std"
    );
    assert!(
        csv.contains("\neval_src,this run,1,true,false,true,50,\n"),
        "{csv}"
    );
    assert!(csv.contains("\nexternal,this run,1,,,,50,\n"), "{csv}");
    assert!(
        csv.contains(
            "\nrow 4,\"paper, Table 3: Ablation on Deeplab backbone\",,false,false,true,44.64,\n"
        ),
        "{csv}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&render_components(&rows, &[], Format::Json)).unwrap();
    assert_eq!(json[1]["cl"], true);
    assert_eq!(json[1]["n"], 2);
    assert!(json[0].get("source").is_none());
}
