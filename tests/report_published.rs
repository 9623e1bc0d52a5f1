//! `uda-pipe report --published` and `--layout components` on the default pipeline at toy scale
//! (the real stage binaries): the paper's rows appear after this run's, marked as the paper's,
//! with the backbone of the evaluated models (ENet) chosen by default; this run's rows are the
//! same numbers with and without them; the component marks come from each model's training
//! params in the cache.

use std::path::{Path, PathBuf};
use std::process::Command;

use toy::TOY;

mod toy;

fn pipeline() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("pipeline.yaml")
}

/// Runs `uda-pipe ARGS -f pipeline.yaml --cache CACHE --set TOY...`; returns (stdout, stderr).
fn uda(cache: &Path, args: &[&str]) -> (String, String) {
    let mut c = Command::new(toy::uda_pipe());
    c.args(args)
        .arg("-f")
        .arg(pipeline())
        .arg("--cache")
        .arg(cache);
    for s in TOY {
        c.arg("--set").arg(s);
    }
    let o = c.output().unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    );
    assert!(o.status.success(), "uda-pipe {args:?} failed:\n{out}{err}");
    (out, err)
}

fn line<'a>(text: &'a str, start: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("no row {start}:\n{text}"))
}

const EVALS: [&str; 7] = [
    "eval_source_only",
    "eval_fda_only",
    "eval_pretrain",
    "eval_meanstd",
    "eval_histmatch",
    "eval_ours",
    "eval_oracle",
];

#[test]
fn published_rows_and_the_component_layout_on_the_toy_default_pipeline() {
    let cache = tempfile::tempdir().unwrap();
    let mut run = Command::new(toy::uda_pipe());
    run.arg("run")
        .arg(pipeline())
        .arg("--cache")
        .arg(cache.path());
    for s in TOY {
        run.arg("--set").arg(s);
    }
    let o = run.output().unwrap();
    assert!(
        o.status.success(),
        "the toy pipeline failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let c = cache.path();

    // Default: the rows of the evaluated models' backbone (the default pipeline trains ENet):
    // Table 2's ENet ablation, after every row of this run.
    let (plain, _) = uda(c, &["report", "--baseline", "eval_source_only"]);
    let (text, _) = uda(
        c,
        &["report", "--published", "--baseline", "eval_source_only"],
    );
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("run") && lines[0].contains("source"),
        "{text}"
    );
    let first_paper = lines
        .iter()
        .position(|l| l.contains("paper, Table"))
        .unwrap();
    for e in EVALS {
        let ours = line(&text, e);
        assert!(ours.contains("this run"), "{ours}");
        // The same numbers as without --published: the paper's rows are not in the table.
        let numbers = |l: &str| {
            l.split_whitespace()
                .filter(|w| w.parse::<f64>().is_ok() || *w == "-")
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(numbers(ours), numbers(line(&plain, e)), "{e}");
        assert!(
            lines.iter().position(|l| l.starts_with(e)).unwrap() < first_paper,
            "{text}"
        );
    }
    let paper: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("paper, Table"))
        .collect();
    assert_eq!(paper.len(), 6, "{text}");
    assert!(
        paper
            .iter()
            .all(|l| l.contains("Table 2: Ablation on ENet backbone"))
    );
    assert!(
        line(&text, "CL using PL (Ours)").ends_with(" 20.65"),
        "{text}"
    );
    assert!(
        !text.contains("FDA-MBT"),
        "VGG16/ResNet rows for an ENet run:\n{text}"
    );
    // Δ rows only for this run's rows.
    assert_eq!(text.matches("Δ ").count(), EVALS.len() - 1, "{text}");

    // All rows, for scripts: the run rows, then Tables 1-3 (34 rows), with a source column.
    let (csv, _) = uda(c, &["report", "--published=all", "--format", "csv"]);
    let rows: Vec<&str> = csv.lines().collect();
    assert!(rows[0].starts_with("run,source,n,road,"), "{}", rows[0]);
    assert_eq!(rows.len(), 1 + EVALS.len() + 34, "{csv}");
    assert_eq!(
        rows.iter().filter(|r| r.contains(",this run,")).count(),
        EVALS.len()
    );
    assert!(
        rows.iter().any(
            |r| r.starts_with("FDA-MBT [21],\"paper, Table 1: ResNet101 backbone\",")
                && r.contains(",50.45,")
        ),
        "{csv}"
    );

    // The component layout: marks from the training params of each evaluated model.
    let (comp, _) = uda(c, &["report", "--layout", "components", "--published=all"]);
    let header = comp.lines().next().unwrap();
    assert!(
        header.contains("CE  CL  λ_ent = 0") && header.ends_with("mIoU"),
        "{comp}"
    );
    let ticks = |row: &str| line(&comp, row).matches('✓').count();
    assert_eq!(
        (ticks("eval_ours"), ticks("eval_pretrain")),
        (2, 1),
        "{comp}"
    );
    for r in ["row 1", "row 2", "row 3", "row 4"] {
        assert!(line(&comp, r).contains("paper, Table 3"), "{comp}");
    }
    let (ccsv, _) = uda(c, &["report", "--layout", "components", "--format", "csv"]);
    assert_eq!(
        ccsv.lines().next().unwrap(),
        "run,n,ce,cl,lambda_ent_zero,miou,miou_std"
    );
    let marks = |row: &str| {
        let l = line(&ccsv, &format!("{row},"));
        l.split(',').skip(2).take(3).collect::<Vec<_>>().join(",")
    };
    // contrastive-train: CE + CL with entropy; pretrain: CE with entropy; the source-only and
    // FDA-only models are pretrain with lambda_ent 0.
    assert_eq!(marks("eval_ours"), "true,true,false", "{ccsv}");
    assert_eq!(marks("eval_pretrain"), "true,false,false", "{ccsv}");
    assert_eq!(marks("eval_source_only"), "true,false,true", "{ccsv}");
    assert_eq!(marks("eval_fda_only"), "true,false,true", "{ccsv}");

    // Table 3 is DeepLab only: the ENet runs' default finds none, and says how to get them.
    let (none, err) = uda(c, &["report", "--layout", "components", "--published"]);
    assert!(!none.contains("paper"), "{none}");
    assert!(err.contains("--published=all"), "{err}");
}
