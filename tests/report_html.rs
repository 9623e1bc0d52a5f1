//! `uda-pipe report --html` of the default pipeline at toy scale, opened in a real browser
//! (headless Debian `chromium`, installed by `scripts/setup-system.sh`): no script or console
//! error, every inline image decodes, the sections and charts are in the DOM, and a screenshot
//! is not blank. Also `--plots` (SVG + PNG files) and bad input (an absent run, a folder that is
//! not an evaluate output, a model without `train_log.parquet`) as notes in the page.
//!
//! Set `UDA_REPORT_SCREENSHOT=docs/img/report.png` to also write a half-size copy of the
//! screenshot (the README's picture).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use toy::TOY;

mod toy;

fn exe() -> PathBuf {
    toy::uda_pipe()
}

fn pipeline() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("pipeline.yaml")
}

/// Runs `uda-pipe ARGS --cache CACHE --set TOY...` and returns stdout + stderr; panics on failure.
fn uda(exe: &Path, cache: &Path, args: &[&str]) -> String {
    let mut c = Command::new(exe);
    c.args(args).arg("--cache").arg(cache);
    for s in TOY {
        c.arg("--set").arg(s);
    }
    let o = c.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "uda-pipe {args:?} failed:\n{text}");
    text
}

/// The browser, or why there is none (then the browser checks are skipped, loudly).
fn chromium() -> Result<PathBuf, String> {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("chromium"))
            .find(|c| c.is_file())
    });
    found.ok_or_else(|| {
        "no `chromium` on PATH: run scripts/setup-system.sh as root (apt-get install chromium)"
            .to_string()
    })
}

/// Runs headless chromium on `page` with `args`; returns (stdout, stderr).
fn browse(browser: &Path, page: &Path, args: &[&str]) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let o = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    );
    assert!(o.status.success(), "chromium failed:\n{err}");
    (out, err)
}

/// Console lines chromium logged for the page that are errors (uncaught exceptions, or
/// `console.error`, which the page's self-check also records).
fn console_errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .filter(|l| {
            let l = l.to_lowercase();
            l.contains("uncaught") || l.contains("error")
        })
        .collect()
}

fn attr<'a>(dom: &'a str, name: &str) -> Option<&'a str> {
    let start = dom.find(&format!("{name}=\""))? + name.len() + 2;
    Some(&dom[start..start + dom[start..].find('"')?])
}

/// Mean and standard deviation of the luminance, and the share of pixels that are not white.
fn pixel_stats(rgb: &[u8]) -> (f64, f64, f64) {
    let lum: Vec<f64> = rgb
        .chunks_exact(3)
        .map(|p| 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]))
        .collect();
    let n = lum.len() as f64;
    let mean = lum.iter().sum::<f64>() / n;
    let var = lum.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / n;
    let inked = lum.iter().filter(|l| **l < 245.0).count() as f64 / n;
    (mean, var.sqrt(), inked)
}

/// Halves a screenshot (2×2 box filter), for the README copy.
fn half(w: usize, h: usize, rgb: &[u8]) -> (usize, usize, Vec<u8>) {
    let (hw, hh) = (w / 2, h / 2);
    let mut out = Vec::with_capacity(hw * hh * 3);
    for y in 0..hh {
        for x in 0..hw {
            for c in 0..3 {
                let at =
                    |dx: usize, dy: usize| u32::from(rgb[((2 * y + dy) * w + 2 * x + dx) * 3 + c]);
                out.push(((at(0, 0) + at(1, 0) + at(0, 1) + at(1, 1) + 2) / 4) as u8);
            }
        }
    }
    (hw, hh, out)
}

#[test]
fn html_report_of_the_toy_default_pipeline_in_a_real_browser() {
    let exe = exe();
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("cache");
    let file = pipeline();
    let file = file.to_str().unwrap();
    uda(&exe, &cache, &["run", file]);

    let page = d.path().join("report.html");
    let started = Instant::now();
    let said = uda(
        &exe,
        &cache,
        &["report", "-f", file, "--html", page.to_str().unwrap()],
    );
    let took = started.elapsed();
    let html = std::fs::read_to_string(&page).unwrap();
    eprintln!(
        "report.html: {} bytes in {:.2} s ({})",
        html.len(),
        took.as_secs_f64(),
        said.trim()
    );
    assert!(said.contains("wrote"), "{said}");
    // Self-contained: nothing is fetched (the SVG namespace URI is a name, not a fetch).
    for needle in ["src=\"http", "href=\"http", "url(http", "@import", "<link"] {
        assert!(!html.contains(needle), "the page references {needle}");
    }
    assert!(html.len() < 3_000_000, "{} bytes", html.len());

    let Ok(browser) = chromium() else {
        eprintln!("SKIPPED the browser checks: {}", chromium().unwrap_err());
        return;
    };
    let (dom, log) = browse(&browser, &page, &["--dump-dom"]);
    assert!(
        dom.contains("<section id=\"table\""),
        "no DOM dumped:\n{log}"
    );
    let errors = console_errors(&log);
    assert!(errors.is_empty(), "console errors:\n{}", errors.join("\n"));
    assert_eq!(
        attr(&dom, "data-errors"),
        None,
        "the page's self-check recorded errors"
    );
    let images = attr(&dom, "data-images").expect("the load handler ran");
    assert!(images.starts_with("ok "), "images: {images}");
    let n_images: usize = images[3..].parse().unwrap();
    // Panels: 3 images × (image + ground truth + 7 predictions).
    assert!(n_images >= 9, "{n_images} images");
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
        assert!(
            dom.contains(&format!("<section id=\"{id}\"")),
            "section {id} missing"
        );
    }
    for fig in [
        "fig-class_iou",
        "fig-train_loss_total",
        "fig-train_lr",
        "fig-pseudo_pseudo",
        "fig-confusion_eval_ours",
        "fig-run_dag",
        "fig-run_timeline",
    ] {
        let at = dom
            .find(&format!("id=\"{fig}"))
            .unwrap_or_else(|| panic!("{fig} missing"));
        assert!(
            dom[at..].find("<svg").is_some_and(|i| i < 200),
            "{fig} has no inline SVG"
        );
    }
    // The table: the 7 evaluate rows of the default pipeline, IoU per class and mIoU.
    for row in [
        "eval_source_only",
        "eval_fda_only",
        "eval_ours",
        "eval_oracle",
        "eval_histmatch",
    ] {
        assert!(
            dom.contains(&format!("<th class=\"run\">{row}</th>")),
            "{row} row missing"
        );
    }
    // One seed: the sweeps view says why it is empty rather than drawing nothing.
    assert!(dom.contains("no sweep variable has two or more values"));

    let shot = d.path().join("shot.png");
    browse(
        &browser,
        &page,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,2000",
            "--hide-scrollbars",
        ],
    );
    let img = uda_data::png::read_rgb(&shot).unwrap();
    assert_eq!((img.width, img.height), (1280, 2000));
    let (mean, std, inked) = pixel_stats(&img.pixels);
    eprintln!(
        "screenshot: mean {mean:.1}, std {std:.1}, {:.1} % inked",
        inked * 100.0
    );
    assert!(
        std > 20.0 && inked > 0.03,
        "blank screenshot? std {std}, {inked} inked"
    );
    if let Some(copy) = std::env::var_os("UDA_REPORT_SCREENSHOT") {
        let (w, h, rgb) = half(img.width, img.height, &img.pixels);
        uda_data::png::write_rgb(Path::new(&copy), w, h, &rgb).unwrap();
    }

    // --plots: the same charts as files.
    let plots = d.path().join("plots");
    uda(
        &exe,
        &cache,
        &["report", "-f", file, "--plots", plots.to_str().unwrap()],
    );
    for f in [
        "class_iou.svg",
        "class_iou.png",
        "run_dag.svg",
        "train_loss_total.png",
        "panels.png",
    ] {
        assert!(plots.join(f).is_file(), "{f} missing");
    }
    let png = uda_data::png::read_rgb(&plots.join("class_iou.png")).unwrap();
    assert!(pixel_stats(&png.pixels).1 > 20.0, "blank chart PNG");

    // Bad input: an absent run and a model folder without a train log are notes, not a crash.
    let model = d.path().join("some_model");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(model.join("model.json"), "{}").unwrap();
    let bad = d.path().join("bad.html");
    uda(
        &exe,
        &cache,
        &[
            "report",
            "-f",
            file,
            "--html",
            bad.to_str().unwrap(),
            "eval_ours",
            "no_such_stage",
            model.to_str().unwrap(),
        ],
    );
    let bad = std::fs::read_to_string(&bad).unwrap();
    assert!(bad.contains("no_such_stage: "), "no note on the absent run");
    assert!(
        bad.contains("is not an evaluate output"),
        "no note on the model folder"
    );
    assert!(
        bad.contains("holds a model but no train_log.parquet"),
        "no note on the missing train log"
    );
    assert!(
        bad.contains("<th class=\"run\">eval_ours</th>"),
        "the good run is still shown"
    );
}
