//! What the HTML page and `--plots` are made of ([`Sources`], gathered by the CLI from the
//! pipeline and its cache) and the two entry points, [`write_html`] and [`write_plots`].

use crate::chart::encode;
use crate::error::{ReportError, Result};
use crate::run::Run;
use crate::table::Options;
use crate::views::{self, Block};
use std::path::{Path, PathBuf};

/// The inputs of the page. Only `runs` is needed; every other view says in the page what it
/// lacks instead of failing.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// Evaluate outputs: the rows of the IoU table, bars, confusion matrices, panels and sweeps.
    pub runs: Vec<Run>,
    /// Every result folder of the pipeline, named like `runs`: training stages hold
    /// `train_log.parquet`, pseudo-label stages `classes.parquet`.
    pub results: Vec<Run>,
    /// Problems found while gathering (an absent run, a folder that is not an evaluate output),
    /// shown at the top of the page.
    pub notes: Vec<String>,
    /// The cache's `history/` folder (one Parquet file per `uda-pipe run`).
    pub history: Option<PathBuf>,
    /// The pipeline's name: history rows of other pipelines sharing the cache are left out.
    pub pipeline: Option<String>,
    /// The pipeline's nodes in pipeline order, with their dependencies (indices).
    pub dag: Vec<DagNode>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DagNode {
    pub id: String,
    pub deps: Vec<usize>,
}

/// How the page is drawn.
#[derive(Debug, Clone)]
pub struct PageOptions {
    /// Seed aggregation and `--where` filters, as for the text table.
    pub table: Options,
    /// Row the Δ rows are taken against (`--baseline`).
    pub baseline: Option<String>,
    /// Draw only this row's confusion matrix (default: every row's, the first one open).
    pub confusion: Option<String>,
    /// Exponential smoothing of the training curves (TensorBoard's weight, 0 = none).
    pub smoothing: f64,
    /// Validation images shown in the qualitative panels.
    pub panels: usize,
    pub title: String,
}

impl Default for PageOptions {
    fn default() -> Self {
        Self {
            table: Options::default(),
            baseline: None,
            confusion: None,
            smoothing: 0.6,
            panels: 3,
            title: "uda-pipe report".into(),
        }
    }
}

/// What was written, for the CLI's one-line summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub files: Vec<PathBuf>,
    pub bytes: u64,
    /// Views that could not be drawn, or had nothing to draw, with the reason.
    pub notes: usize,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes the self-contained HTML page (charts inline as SVG, images as `data:` PNGs).
pub fn write_html(sources: &Sources, opts: &PageOptions, out: &Path) -> Result<Written> {
    let sections = views::build(sources, opts);
    let notes = views::count_notes(&sections) + sources.notes.len();
    let html = crate::html::page(&sections, sources, opts)?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    std::fs::write(out, &html).map_err(io(out))?;
    Ok(Written {
        files: vec![out.to_path_buf()],
        bytes: html.len() as u64,
        notes,
    })
}

/// Writes every chart as `NAME.svg` and `NAME.png`, every panel as `NAME.png`, and
/// `notes.txt` listing what could not be drawn.
pub fn write_plots(sources: &Sources, opts: &PageOptions, dir: &Path) -> Result<Written> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let sections = views::build(sources, opts);
    let mut files = Vec::new();
    let mut bytes = 0u64;
    let mut notes: Vec<String> = sources.notes.clone();
    let mut put = |name: String, data: &[u8]| -> Result<()> {
        let path = dir.join(name);
        std::fs::write(&path, data).map_err(io(&path))?;
        bytes += data.len() as u64;
        files.push(path);
        Ok(())
    };
    for s in &sections {
        for b in &s.blocks {
            match b {
                Block::Figure(f) => {
                    put(format!("{}.svg", f.name), f.svg()?.as_bytes())?;
                    put(format!("{}.png", f.name), &f.png()?)?;
                }
                Block::Tiles(t) => {
                    let (w, h, rgb) = t.composed();
                    put(format!("{}.png", t.name), &encode::png_rgb(w, h, &rgb)?)?;
                }
                Block::Note(n) => notes.push(format!("{}: {n}", s.title)),
                Block::Html(_) => {}
            }
        }
    }
    let count = notes.len();
    if !notes.is_empty() {
        put("notes.txt".into(), (notes.join("\n") + "\n").as_bytes())?;
    }
    Ok(Written {
        files,
        bytes,
        notes: count,
    })
}
