//! Charts as plain data (what the views compute and the unit tests check), drawn by
//! [`draw`] with plotters onto an SVG string (inline in the HTML page, and `--plots` `.svg`) or an
//! RGB bitmap (`--plots` `.png`). One drawing function per chart kind serves both back-ends, so
//! the two files of a figure are the same picture.

mod draw;
pub(crate) mod encode;
mod font;

use crate::error::{ReportError, Result};

/// A named chart: `name` is the file stem under `--plots` and the anchor in the page.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Figure {
    pub name: String,
    pub chart: Chart,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Chart {
    Bars(Bars),
    Lines(Lines),
    Heatmap(Heatmap),
    Timeline(Timeline),
    Dag(Dag),
}

/// Grouped bars: one group per category (class), one bar per series (run) in each group, an
/// optional error bar (± one value) on each bar.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Bars {
    pub title: String,
    pub y_label: String,
    pub categories: Vec<String>,
    pub series: Vec<BarSeries>,
    pub y_range: (f64, f64),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BarSeries {
    pub name: String,
    /// One per category; `None` draws no bar (undefined IoU).
    pub values: Vec<Option<f64>>,
    /// Half-length of the error bar, one per category (`None`: no error bar, e.g. one seed).
    pub errors: Vec<Option<f64>>,
}

/// Lines (training curves) or points with error bars (sweeps).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Lines {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<LineSeries>,
    /// Categorical x axis: tick `i` is at x = i and reads `ticks[i]` (sweep values that are not
    /// numbers). `None`: numeric x.
    pub x_ticks: Option<Vec<String>>,
    /// Draw a marker at each point (sweeps; curves have too many points).
    pub markers: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LineSeries {
    pub name: String,
    /// Palette index, so one run has one colour in every chart of the page.
    pub colour: usize,
    pub points: Vec<(f64, f64)>,
    /// Error-bar half-lengths, one per point, or empty for none.
    pub errors: Vec<f64>,
}

/// A matrix of fractions in [0, 1] (row-normalised confusion), darker = larger.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Heatmap {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub rows: Vec<String>,
    pub cols: Vec<String>,
    /// `values[row][col]`; `None` for a row with no pixels.
    pub values: Vec<Vec<Option<f64>>>,
}

/// One bar per stage run on a time axis (the run's Gantt chart).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Timeline {
    pub title: String,
    pub spans: Vec<Span>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Span {
    pub label: String,
    /// Seconds after the run's first start.
    pub start_s: f64,
    pub duration_s: f64,
    pub state: State,
}

/// A node's state in the last run, as the run history records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Ran,
    Cached,
    Failed,
    Skipped,
    /// In the pipeline but in no recorded run.
    Unknown,
}

impl State {
    pub fn parse(s: &str) -> Self {
        match s {
            "ran" => Self::Ran,
            "cached" => Self::Cached,
            "failed" => Self::Failed,
            "skipped" => Self::Skipped,
            _ => Self::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ran => "ran",
            Self::Cached => "cached",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
            Self::Unknown => "no record",
        }
    }

    /// Fill colour of the state (also the legend of the page's run section).
    pub fn rgb(self) -> (u8, u8, u8) {
        match self {
            Self::Ran => (89, 161, 79),
            Self::Cached => (118, 183, 230),
            Self::Failed => (225, 87, 89),
            Self::Skipped => (237, 201, 72),
            Self::Unknown => (220, 220, 220),
        }
    }
}

/// The pipeline DAG in layers (left to right), each node coloured by its state.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Dag {
    pub title: String,
    pub nodes: Vec<DagBox>,
    /// `(from, to)` indices into `nodes`.
    pub edges: Vec<(usize, usize)>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DagBox {
    pub label: String,
    /// Second line: state and duration.
    pub detail: String,
    pub state: State,
    /// Column (longest path from a source) and row within the column.
    pub layer: usize,
    pub slot: usize,
}

/// Tableau 10: distinct, print-safe colours; series `i` takes colour `i % 10`.
pub(crate) const PALETTE: [(u8, u8, u8); 10] = [
    (78, 121, 167),
    (242, 142, 43),
    (225, 87, 89),
    (118, 183, 178),
    (89, 161, 79),
    (237, 201, 72),
    (176, 122, 161),
    (255, 157, 167),
    (156, 117, 95),
    (186, 176, 172),
];

impl Figure {
    /// The chart as a standalone SVG document (inline in the page, or a `--plots` file).
    pub fn svg(&self) -> Result<String> {
        let mut s = String::new();
        {
            let backend = plotters::prelude::SVGBackend::with_string(&mut s, self.size());
            draw::draw(&self.chart, backend).map_err(|source| self.err(source))?;
        }
        Ok(s)
    }

    /// The chart as a PNG file (plotters' bitmap back-end, encoded with the `png` crate).
    pub fn png(&self) -> Result<Vec<u8>> {
        let (w, h) = self.size();
        let mut rgb = vec![255u8; w as usize * h as usize * 3];
        {
            let backend = plotters::prelude::BitMapBackend::with_buffer(&mut rgb, (w, h));
            draw::draw(&self.chart, backend).map_err(|source| self.err(source))?;
        }
        encode::png_rgb(w, h, &rgb)
    }

    fn err(&self, source: Box<dyn std::error::Error + Send + Sync>) -> ReportError {
        ReportError::Chart {
            chart: self.name.clone(),
            source,
        }
    }

    /// Pixel size: wide enough that 19 classes × several runs or long stage names stay legible.
    pub fn size(&self) -> (u32, u32) {
        match &self.chart {
            Chart::Bars(b) => {
                let bars = b.categories.len() * b.series.len().max(1);
                ((bars as u32 * 7 + 200).clamp(900, 2400), 460)
            }
            Chart::Lines(_) => (560, 340),
            Chart::Heatmap(h) => (
                (h.cols.len() as u32 * 26 + 200).max(400),
                (h.rows.len() as u32 * 24 + 200).max(300),
            ),
            Chart::Timeline(t) => (1000, t.spans.len() as u32 * 20 + 90),
            Chart::Dag(d) => {
                let layers = d.nodes.iter().map(|n| n.layer + 1).max().unwrap_or(1) as u32;
                let slots = d.nodes.iter().map(|n| n.slot + 1).max().unwrap_or(1) as u32;
                (layers * draw::DAG_COL + 20, slots * draw::DAG_ROW + 60)
            }
        }
    }
}
