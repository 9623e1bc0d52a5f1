//! Rendering an [`IouTable`]: an aligned text table or Markdown for people (percent, 2 decimals,
//! as the paper prints), CSV or JSON for scripts (percent, unrounded, fixed column names).

use crate::error::Result;
use crate::published::PublishedRow;
use crate::table::{IouTable, Row};
use std::fmt::Write as _;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Table,
    Csv,
    Json,
    Markdown,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "table" => Ok(Self::Table),
            "csv" => Ok(Self::Csv),
            "json" => Ok(Self::Json),
            "markdown" | "md" => Ok(Self::Markdown),
            _ => Err(format!("unknown format '{s}' (table, csv, json, markdown)")),
        }
    }
}

/// Renders `table`; with `baseline` (a row name), adds the differences to that row: Δ rows
/// under each other row in table/Markdown, `delta_<class>` and `delta_miou` columns in CSV/JSON.
pub fn render(table: &IouTable, format: Format, baseline: Option<&str>) -> Result<String> {
    render_with(table, format, baseline, &[])
}

/// [`render`] with the paper's rows after this run's (`uda-pipe report --published`). A `source`
/// column then tells them apart ("this run", or "paper, Table N: section"); the paper's values
/// are shown with the digits it prints. They get no Δ rows and cannot be the baseline: only
/// computed rows enter means and differences.
pub fn render_with(
    table: &IouTable,
    format: Format,
    baseline: Option<&str>,
    published: &[PublishedRow],
) -> Result<String> {
    let base = baseline.map(|b| table.row(b)).transpose()?;
    Ok(match format {
        Format::Table | Format::Markdown => {
            human(table, base, published, format == Format::Markdown)
        }
        Format::Csv => csv(table, base, published),
        Format::Json => json(table, base, published),
    })
}

pub(crate) fn pct(v: Option<f64>) -> String {
    v.map(|v| format!("{:.2}", v * 100.0))
        .unwrap_or_else(|| "-".into())
}

fn signed(v: Option<f64>) -> String {
    v.map(|v| format!("{:+.2}", v * 100.0))
        .unwrap_or_else(|| "-".into())
}

/// Text table or Markdown: `run`, `source` (only with published rows), `n` (only when some row
/// averages seeds), classes, `mIoU`.
fn human(t: &IouTable, base: Option<&Row>, published: &[PublishedRow], markdown: bool) -> String {
    let groups = t.has_groups();
    let with_source = !published.is_empty();
    let source = |s: &str, cells: &mut Vec<String>| {
        if with_source {
            cells.push(s.to_string());
        }
    };
    let mut header = vec!["run".to_string()];
    source("source", &mut header);
    if groups {
        header.push("n".into());
    }
    header.extend(t.classes.iter().cloned());
    header.push("mIoU".into());
    let mut lines: Vec<Vec<String>> = Vec::new();
    for r in &t.rows {
        let is_base = base.is_some_and(|b| b.name == r.name);
        let mut cells = vec![if is_base {
            format!("{} (baseline)", r.name)
        } else {
            r.name.clone()
        }];
        source("this run", &mut cells);
        if groups {
            cells.push(r.n.to_string());
        }
        cells.extend(r.iou.iter().map(|v| pct(*v)));
        cells.push(match r.miou_std {
            Some(s) => format!("{} ± {:.2}", pct(r.miou), s * 100.0),
            None => pct(r.miou),
        });
        lines.push(cells);
        if let Some(b) = base.filter(|_| !is_base) {
            let (d, dm) = r.delta(b);
            let mut cells = vec![format!("Δ {}", r.name)];
            source("", &mut cells);
            if groups {
                cells.push(String::new());
            }
            cells.extend(d.into_iter().map(signed));
            cells.push(signed(dm));
            lines.push(cells);
        }
    }
    for p in published {
        let printed =
            |f: Option<&crate::published::Figure>| f.map_or("-".into(), |f| f.text.clone());
        let mut cells = vec![p.method.clone(), p.source()];
        if groups {
            cells.push(String::new());
        }
        cells.extend(t.classes.iter().map(|c| printed(p.class(c))));
        cells.push(printed(p.miou.as_ref()));
        lines.push(cells);
    }
    layout(&header, &lines, 1 + usize::from(with_source), markdown)
}

/// Aligns `lines` under `header` (text) or writes a Markdown table; the first `text_columns`
/// columns (names, sources) are left aligned, the others (numbers, marks) right aligned.
pub(crate) fn layout(
    header: &[String],
    lines: &[Vec<String>],
    text_columns: usize,
    markdown: bool,
) -> String {
    if markdown {
        let esc = |s: &str| s.replace('|', "\\|");
        let mut out = format!(
            "| {} |\n|{}\n",
            header
                .iter()
                .map(|h| esc(h))
                .collect::<Vec<_>>()
                .join(" | "),
            header
                .iter()
                .enumerate()
                .map(|(i, _)| if i < text_columns { ":---|" } else { "---:|" })
                .collect::<String>()
        );
        for l in lines {
            let _ = writeln!(
                out,
                "| {} |",
                l.iter().map(|c| esc(c)).collect::<Vec<_>>().join(" | ")
            );
        }
        return out;
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .chain([header[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let row = |cells: &[String]| -> String {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = widths[i] - c.chars().count();
            let sep = if i == 0 { "" } else { "  " };
            if i < text_columns {
                let _ = write!(s, "{sep}{c}{}", " ".repeat(pad));
            } else {
                let _ = write!(s, "  {}{c}", " ".repeat(pad));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = row(header) + "\n";
    out += &(widths
        .iter()
        .map(|w| "-".repeat(*w))
        .collect::<Vec<_>>()
        .join("  ")
        + "\n");
    for l in lines {
        out += &(row(l) + "\n");
    }
    out
}

/// Column names shared by CSV and JSON, in order.
fn columns(t: &IouTable, base: Option<&Row>, with_source: bool) -> Vec<String> {
    let mut c = vec!["run".to_string()];
    if with_source {
        c.push("source".into());
    }
    c.extend(t.params.iter().cloned());
    c.push("n".into());
    c.extend(t.classes.iter().cloned());
    c.extend(["miou".to_string(), "miou_std".to_string()]);
    if base.is_some() {
        c.extend(t.classes.iter().map(|k| format!("delta_{k}")));
        c.push("delta_miou".into());
    }
    c
}

/// One value per column; numbers are IoU in percent (unrounded).
enum Cell {
    /// A name or sweep value (JSON: a number or boolean when it reads as one).
    Text(Option<String>),
    /// Always a string (the `source` column).
    Str(&'static str),
    Owned(String),
    Int(Option<u32>),
    /// A fraction, written in percent.
    Pct(Option<f64>),
    /// Already in percent (the paper's figures).
    Percent(Option<f64>),
}

fn cells(t: &IouTable, r: &Row, base: Option<&Row>, with_source: bool) -> Vec<Cell> {
    let mut c = vec![Cell::Text(Some(r.name.clone()))];
    if with_source {
        c.push(Cell::Str("this run"));
    }
    c.extend(r.params.iter().map(|p| Cell::Text(p.clone())));
    c.push(Cell::Int(Some(r.n)));
    c.extend(r.iou.iter().map(|v| Cell::Pct(*v)));
    c.extend([Cell::Pct(r.miou), Cell::Pct(r.miou_std)]);
    if let Some(b) = base {
        let (d, dm) = r.delta(b);
        c.extend(d.into_iter().map(Cell::Pct));
        c.push(Cell::Pct(dm));
    }
    debug_assert_eq!(c.len(), columns(t, base, with_source).len());
    c
}

/// A paper row in the same columns: no sweep values, no `n`, no std, no deltas.
fn published_cells(t: &IouTable, p: &PublishedRow, base: Option<&Row>) -> Vec<Cell> {
    let mut c = vec![Cell::Text(Some(p.method.clone())), Cell::Owned(p.source())];
    c.extend(t.params.iter().map(|_| Cell::Text(None)));
    c.push(Cell::Int(None));
    c.extend(
        t.classes
            .iter()
            .map(|k| Cell::Percent(p.class(k).map(|f| f.value))),
    );
    c.extend([
        Cell::Percent(p.miou.as_ref().map(|f| f.value)),
        Cell::Percent(None),
    ]);
    if base.is_some() {
        c.extend((0..=t.classes.len()).map(|_| Cell::Percent(None)));
    }
    debug_assert_eq!(c.len(), columns(t, base, true).len());
    c
}

fn all_cells(t: &IouTable, base: Option<&Row>, published: &[PublishedRow]) -> Vec<Vec<Cell>> {
    let with_source = !published.is_empty();
    t.rows
        .iter()
        .map(|r| cells(t, r, base, with_source))
        .chain(published.iter().map(|p| published_cells(t, p, base)))
        .collect()
}

pub(crate) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv(t: &IouTable, base: Option<&Row>, published: &[PublishedRow]) -> String {
    let mut out = columns(t, base, !published.is_empty())
        .iter()
        .map(|c| csv_field(c))
        .collect::<Vec<_>>()
        .join(",")
        + "\n";
    for row in all_cells(t, base, published) {
        let line: Vec<String> = row
            .into_iter()
            .map(|c| match c {
                Cell::Text(s) => csv_field(s.as_deref().unwrap_or("")),
                Cell::Str(s) => csv_field(s),
                Cell::Owned(s) => csv_field(&s),
                Cell::Int(n) => n.map(|n| n.to_string()).unwrap_or_default(),
                Cell::Pct(v) => v.map(|v| (v * 100.0).to_string()).unwrap_or_default(),
                Cell::Percent(v) => v.map(|v| v.to_string()).unwrap_or_default(),
            })
            .collect();
        out += &(line.join(",") + "\n");
    }
    out
}

/// An array of objects, one per row, keys in column order. Sweep-variable values that read as
/// JSON numbers or booleans (`0.01`, `true`) are written as such, others as strings.
fn json(t: &IouTable, base: Option<&Row>, published: &[PublishedRow]) -> String {
    use serde_json::Value;
    let names = columns(t, base, !published.is_empty());
    let number = |v: Option<f64>| {
        v.and_then(serde_json::Number::from_f64)
            .map_or(Value::Null, Value::Number)
    };
    let records: Vec<Vec<Value>> = all_cells(t, base, published)
        .into_iter()
        .map(|row| {
            row.into_iter()
                .enumerate()
                .map(|(k, c)| match c {
                    Cell::Text(None) => Value::Null,
                    Cell::Text(Some(s)) if k > 0 => match serde_json::from_str::<Value>(&s) {
                        Ok(v @ (Value::Number(_) | Value::Bool(_))) => v,
                        _ => Value::String(s),
                    },
                    Cell::Text(Some(s)) | Cell::Owned(s) => Value::String(s),
                    Cell::Str(s) => Value::String(s.into()),
                    Cell::Int(n) => n.map_or(Value::Null, Value::from),
                    Cell::Pct(v) => number(v.map(|v| v * 100.0)),
                    Cell::Percent(v) => number(v),
                })
                .collect()
        })
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    json_records(&names, &records)
}

/// `[{"name": value, ...}, ...]`, one object a line, keys in `names` order.
pub(crate) fn json_records(names: &[&str], records: &[Vec<serde_json::Value>]) -> String {
    use serde_json::Value;
    let mut out = String::from("[");
    for (i, r) in records.iter().enumerate() {
        out += if i == 0 { "\n  {" } else { ",\n  {" };
        for (k, (name, v)) in names.iter().zip(r).enumerate() {
            let sep = if k == 0 { "" } else { ", " };
            let _ = write!(out, "{sep}{}: {v}", Value::String(name.to_string()));
        }
        out += "}";
    }
    out += if records.is_empty() { "]\n" } else { "\n]\n" };
    out
}
