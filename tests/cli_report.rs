//! `uda-pipe report` on evaluate outputs: IoU tables from pipeline stages (seeds aggregated,
//! baseline deltas), from plain folders and cache links, `--raw`, and the error messages.
//!
//! The evaluate outputs are written by `uda_metrics::Report::write` (the evaluate stage's
//! writer) into `runs/<name>/`; `uda-test-copy` instances copy one of them each into the cache, so
//! the runner's naming, sweeps and `latest` links are the real ones.
mod runner_support;
use runner_support::Project;
use uda_metrics::{ConfusionMatrix, ImageResult, Provenance, Report};

const PIPELINE: &str = "\
stages:
  g:
    kind: uda-test-gen
    foreach: {seed: [1, 2, 3]}
  base:
    kind: uda-test-copy
    inputs: {src: ./runs}
    params: {subdir: base}
  eval:
    kind: uda-test-copy
    inputs: {src: ./runs, extra: g}
    params: {subdir: 's${seed}'}
";

/// An evaluate output where every class has IoU `tenths / 10`.
fn write_eval(p: &Project, name: &str, tenths: u8) {
    let (mut gt, mut pred) = (Vec::new(), Vec::new());
    for c in 0..19u8 {
        for i in 0..10 {
            gt.push(c);
            pred.push(if i < tenths { c } else { 255 });
        }
    }
    let report = Report::new(
        vec![ImageResult {
            name: "img".into(),
            matrix: ConfusionMatrix::from_maps(&gt, &pred).unwrap(),
        }],
        Provenance {
            stage: "evaluate".into(),
            mode: "external".into(),
            predictions: "/p".into(),
            ground_truth: "/g".into(),
            model_meta: None,
            params: "{}".into(),
        },
    );
    let dir = p.path("runs").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    report.write(&dir).unwrap();
}

/// base: IoU 0.4 everywhere; seeds 1, 2, 3: 0.5, 0.6, 0.7 (mean 0.6, sample std 0.1).
fn project() -> Project {
    let p = Project::new(PIPELINE);
    write_eval(&p, "base", 4);
    for s in 1..=3u8 {
        write_eval(&p, &format!("s{s}"), 4 + s);
    }
    p.ok(&["run"]);
    p
}

/// CSV → header and rows as maps from column name to field.
fn parse_csv(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut lines = text.lines().filter(|l| !l.is_empty());
    let header: Vec<String> = lines
        .next()
        .unwrap_or_else(|| panic!("no header in {text}"))
        .split(',')
        .map(str::to_string)
        .collect();
    let rows = lines
        .map(|l| l.split(',').map(str::to_string).collect::<Vec<_>>())
        .collect::<Vec<_>>();
    for r in &rows {
        assert_eq!(r.len(), header.len(), "{text}");
    }
    (header, rows)
}

fn field<'a>(header: &[String], row: &'a [String], name: &str) -> &'a str {
    let i = header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name} in {header:?}"));
    &row[i]
}

fn num(s: &str) -> f64 {
    s.parse().unwrap_or_else(|_| panic!("not a number: '{s}'"))
}

#[test]
fn csv_of_stages_aggregates_seeds_and_compares_to_a_baseline() {
    let p = project();
    let out = p.ok(&[
        "report",
        "base",
        "eval",
        "--format",
        "csv",
        "--baseline",
        "base",
    ]);
    let (h, rows) = parse_csv(&out);
    assert_eq!(h[0], "run", "{out}");
    assert!(h.contains(&"miou".to_string()) && h.contains(&"delta_miou".to_string()));
    assert_eq!(h.iter().filter(|c| c.starts_with("delta_")).count(), 20);
    assert_eq!(rows.len(), 2, "{out}");
    assert_eq!((rows[0][0].as_str(), rows[1][0].as_str()), ("base", "eval"));
    assert_eq!(field(&h, &rows[0], "n"), "1");
    assert!(
        (num(field(&h, &rows[0], "miou")) - 40.0).abs() < 1e-9,
        "{out}"
    );
    assert_eq!(field(&h, &rows[0], "miou_std"), "");
    assert_eq!(field(&h, &rows[1], "n"), "3");
    assert!(
        (num(field(&h, &rows[1], "miou")) - 60.0).abs() < 1e-9,
        "{out}"
    );
    assert!(
        (num(field(&h, &rows[1], "miou_std")) - 10.0).abs() < 1e-9,
        "{out}"
    );
    assert!(
        (num(field(&h, &rows[1], "road")) - 60.0).abs() < 1e-9,
        "{out}"
    );
    assert!(
        (num(field(&h, &rows[1], "delta_miou")) - 20.0).abs() < 1e-9,
        "{out}"
    );
    assert!(
        (num(field(&h, &rows[1], "delta_bicycle")) - 20.0).abs() < 1e-9,
        "{out}"
    );
}

#[test]
fn without_targets_every_evaluate_output_of_the_pipeline_is_a_row() {
    let p = project();
    let out = p.ok(&["report", "--format", "csv", "--per-seed"]);
    let (h, rows) = parse_csv(&out);
    assert_eq!(h[..3], ["run", "seed", "n"], "{out}");
    let names: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        names,
        ["base", "eval[seed=1]", "eval[seed=2]", "eval[seed=3]"],
        "g's outputs are not evaluate outputs and are left out: {out}"
    );
    assert!((num(field(&h, &rows[3], "miou")) - 70.0).abs() < 1e-9);
    // --where keeps matching runs only (base has no seed).
    let out = p.ok(&["report", "--format", "csv", "--where", "seed=2"]);
    let (h, rows) = parse_csv(&out);
    assert_eq!(rows.len(), 1, "{out}");
    assert_eq!(
        (rows[0][0].as_str(), field(&h, &rows[0], "n")),
        ("eval", "1")
    );
    assert!((num(field(&h, &rows[0], "miou")) - 60.0).abs() < 1e-9);
    // The default format: the paper's layout, percent with 2 decimals.
    let out = p.ok(&["report"]);
    let lines: Vec<&str> = out.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header[..3], ["run", "n", "road"], "{out}");
    assert_eq!(header.last(), Some(&"mIoU"), "{out}");
    assert!(
        lines[3].starts_with("eval") && lines[3].ends_with("60.00 ± 10.00"),
        "{out}"
    );
}

#[test]
fn plain_folders_and_cache_links_are_named_by_folder_or_instance() {
    let p = project();
    let out = p.ok(&[
        "report",
        "runs/base",
        "runs/s1",
        "cache/latest/pipeline/eval[seed=2]",
        "--format",
        "json",
        "--per-seed",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let rows = v.as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["run"].as_str().unwrap()).collect();
    assert_eq!(names, ["base", "s1", "eval[seed=2]"], "{out}");
    assert_eq!(rows[2]["seed"], 2);
    assert!((rows[1]["miou"].as_f64().unwrap() - 50.0).abs() < 1e-9);
    // A per_class.parquet named directly stands for its folder; markdown = run + 19 + mIoU.
    let out = p.ok(&[
        "report",
        "runs/s3/per_class.parquet",
        "--format",
        "markdown",
    ]);
    let header = out.lines().next().unwrap();
    assert_eq!(header.trim_matches('|').split('|').count(), 21, "{out}");
    assert!(out.contains("| s3 | 70.00 |"), "{out}");
}

#[test]
fn raw_dumps_parquet_and_errors_name_the_problem() {
    let p = project();
    let out = p.ok(&["report", "base", "--raw"]);
    assert!(
        out.contains("per_class.parquet")
            && out.contains("summary.parquet")
            && out.contains("class_name"),
        "{out}"
    );
    let out = p.fails(&["report", "base", "g[seed=1]", "--format", "csv"]);
    assert!(
        out.contains("g[seed=1] (")
            && out.contains("is not an evaluate output: it has no per_class.parquet"),
        "{out}"
    );
    let out = p.fails(&["report", "base", "eval", "--baseline", "nope"]);
    assert!(
        out.contains("--baseline 'nope': no such row (rows: base, eval)"),
        "{out}"
    );
    let out = p.fails(&["report", "eval", "--where", "seed"]);
    assert!(out.contains("expected KEY=VALUE"), "{out}");
}

/// `--paired`: two seed groups compared seed by seed through the CLI. Seeds 1, 2, 3 of `fda`
/// have mIoU 0.5, 0.6, 0.7 and of `ours` 0.6, 0.6, 0.9: differences 10, 0, 20 points, mean 10,
/// std 10, 95 % interval 10 ± t(0.975, 2) · 10 / √3 with t(0.975, 2) = 4.302653 (t tables).
#[test]
fn paired_compares_seed_groups_seed_by_seed_with_a_t_interval() {
    let p = Project::new(
        "\
stages:
  g:
    kind: uda-test-gen
    foreach: {seed: [1, 2, 3]}
  fda:
    kind: uda-test-copy
    inputs: {src: ./runs, extra: g}
    params: {subdir: 's${seed}'}
  ours:
    kind: uda-test-copy
    inputs: {src: ./runs, extra: g}
    params: {subdir: 't${seed}'}
",
    );
    for (s, (fda, ours)) in [(5, 6), (6, 6), (7, 9)].into_iter().enumerate() {
        write_eval(&p, &format!("s{}", s + 1), fda);
        write_eval(&p, &format!("t{}", s + 1), ours);
    }
    p.ok(&["run"]);
    let args = ["report", "fda", "ours", "--baseline", "fda", "--paired"];
    let out = p.ok(&[&args[..], &["--format", "csv"]].concat());
    let (h, rows) = parse_csv(&out.replace("\"1,2,3\"", "1;2;3"));
    assert_eq!(rows.len(), 1, "{out}");
    assert_eq!(field(&h, &rows[0], "run"), "ours");
    assert_eq!(field(&h, &rows[0], "seeds"), "1;2;3");
    assert_eq!(field(&h, &rows[0], "wins"), "2", "a tie is no win: {out}");
    let half = 4.302653 * 10.0 / 3f64.sqrt();
    for (column, want) in [
        ("mean_delta_miou", 10.0),
        ("std_delta_miou", 10.0),
        ("ci_low", 10.0 - half),
        ("ci_high", 10.0 + half),
    ] {
        let got = num(field(&h, &rows[0], column));
        assert!(
            (got - want).abs() < 1e-5,
            "{column}: {got} vs {want}\n{out}"
        );
    }
    let table = p.ok(&args);
    assert!(table.contains("Paired over seeds"), "{table}");
    assert!(table.contains("[-14.84, +34.84]"), "{table}");
    let out = p.fails(&["report", "fda", "--paired"]);
    assert!(out.contains("--baseline"), "{out}");
}
