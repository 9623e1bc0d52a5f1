//! The page's sections, one module per view. Each view turns Parquet files into chart data
//! ([`crate::chart`]) and small HTML tables; a view that cannot be drawn (a missing file, an
//! unreadable one) becomes a note in its section, so one bad input never loses the whole page.

mod classes;
mod confusion;
mod curves;
mod panels;
mod pseudo;
mod run;
mod sweeps;
mod table;

use crate::chart::Figure;
use crate::chart::encode::Rgb;
use crate::page::{PageOptions, Sources};
use crate::table::IouTable;

#[derive(Debug, Clone)]
pub(crate) struct Section {
    /// The element id of the section in the page (the browser test looks these up).
    pub id: &'static str,
    pub title: &'static str,
    /// One sentence on what the view shows and how to read it.
    pub intro: String,
    pub blocks: Vec<Block>,
}

#[derive(Debug, Clone)]
pub(crate) enum Block {
    Figure(Figure),
    /// Trusted markup built by the views (every value in it is escaped).
    Html(String),
    /// Why something is missing; shown highlighted, listed in `notes.txt` under `--plots`.
    Note(String),
    Tiles(Tiles),
}

/// A grid of image tiles: one row per validation image, one column per label.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Tiles {
    pub name: String,
    pub columns: Vec<String>,
    pub rows: Vec<TileRow>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TileRow {
    pub label: String,
    pub tiles: Vec<Rgb>,
}

impl Tiles {
    /// All rows side by side and stacked, 2-pixel white gaps (the `--plots` PNG).
    pub fn composed(&self) -> (u32, u32, Vec<u8>) {
        const GAP: usize = 2;
        let tw = self
            .rows
            .iter()
            .flat_map(|r| r.tiles.iter().map(|t| t.width))
            .max()
            .unwrap_or(1);
        let th = self
            .rows
            .iter()
            .flat_map(|r| r.tiles.iter().map(|t| t.height))
            .max()
            .unwrap_or(1);
        let cols = self.rows.iter().map(|r| r.tiles.len()).max().unwrap_or(1);
        let (w, h) = (
            cols * tw + GAP * cols.saturating_sub(1),
            self.rows.len().max(1) * th + GAP * self.rows.len().saturating_sub(1),
        );
        let mut out = vec![255u8; w * h * 3];
        for (r, row) in self.rows.iter().enumerate() {
            for (c, t) in row.tiles.iter().enumerate() {
                let (x0, y0) = (c * (tw + GAP), r * (th + GAP));
                for y in 0..t.height {
                    let dst = ((y0 + y) * w + x0) * 3;
                    out[dst..dst + t.width * 3]
                        .copy_from_slice(&t.data[y * t.width * 3..(y + 1) * t.width * 3]);
                }
            }
        }
        (w as u32, h as u32, out)
    }
}

impl Section {
    fn new(id: &'static str, title: &'static str, intro: impl Into<String>) -> Self {
        Self {
            id,
            title,
            intro: intro.into(),
            blocks: Vec::new(),
        }
    }

    fn note(mut self, text: impl Into<String>) -> Self {
        self.blocks.push(Block::Note(text.into()));
        self
    }
}

/// Every section, in the order of the page. A view's error becomes a note in its section.
pub(crate) fn build(sources: &Sources, opts: &PageOptions) -> Vec<Section> {
    let table = IouTable::build(&sources.runs, &opts.table);
    let mut out = Vec::new();
    let table_err = table.as_ref().err().map(|e| e.to_string());
    let or_note = |s: crate::Result<Section>, empty: Section| match s {
        Ok(s) => s,
        Err(e) => empty.note(format!("could not draw this view: {e}")),
    };
    match &table {
        Ok(t) => {
            out.push(or_note(table::section(t, opts), table::empty()));
            out.push(or_note(
                classes::section(&sources.runs, t, opts),
                classes::empty(),
            ));
        }
        Err(_) => {
            let why = format!("no IoU table: {}", table_err.clone().unwrap_or_default());
            out.push(table::empty().note(why.clone()));
            out.push(classes::empty().note(why));
        }
    }
    out.push(or_note(curves::section(sources, opts), curves::empty()));
    out.push(or_note(
        sweeps::section(&sources.runs, opts),
        sweeps::empty(),
    ));
    out.push(or_note(pseudo::section(sources, opts), pseudo::empty()));
    out.push(or_note(
        confusion::section(&sources.runs, opts),
        confusion::empty(),
    ));
    out.push(or_note(
        panels::section(&sources.runs, opts),
        panels::empty(),
    ));
    out.push(or_note(run::section(sources), run::empty()));
    out
}

pub(crate) fn count_notes(sections: &[Section]) -> usize {
    sections
        .iter()
        .flat_map(|s| &s.blocks)
        .filter(|b| matches!(b, Block::Note(_)))
        .count()
}

/// A file-name-safe form of a run name (`eval[beta=0.01]` → `eval_beta_0.01_`).
pub(crate) fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Mean and sample standard deviation (ddof = 1; `None` for fewer than two values).
pub(crate) fn mean_std(values: &[f64]) -> (Option<f64>, Option<f64>) {
    if values.is_empty() {
        return (None, None);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let std = (values.len() > 1)
        .then(|| (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
    (Some(mean), std)
}

#[cfg(test)]
pub(crate) use classes::{bars as bars_for_tests, class_std as class_std_for_tests};
#[cfg(test)]
pub(crate) use confusion::read_counts as confusion_counts_for_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_and_sample_std() {
        assert_eq!(slug("eval[beta=0.01,seed=2]"), "eval_beta_0.01_seed_2_");
        assert_eq!(mean_std(&[]), (None, None));
        assert_eq!(mean_std(&[2.0]), (Some(2.0), None));
        let (m, s) = mean_std(&[1.0, 2.0, 3.0]);
        assert_eq!((m, s), (Some(2.0), Some(1.0)));
    }

    #[test]
    fn tiles_compose_with_gaps() {
        let tile = |v: u8| Rgb {
            width: 2,
            height: 1,
            data: vec![v; 6],
        };
        let t = Tiles {
            name: "p".into(),
            columns: vec!["a".into(), "b".into()],
            rows: vec![TileRow {
                label: "img".into(),
                tiles: vec![tile(10), tile(20)],
            }],
        };
        let (w, h, rgb) = t.composed();
        assert_eq!((w, h), (6, 1));
        let px: Vec<u8> = rgb.chunks(3).map(|p| p[0]).collect();
        assert_eq!(px, [10, 10, 255, 255, 20, 20]);
    }
}
