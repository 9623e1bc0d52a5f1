//! Rendering an [`IouTable`]: an aligned text table or Markdown for people (percent, 2 decimals,
//! as the paper prints), CSV or JSON for scripts (percent, unrounded, fixed column names).

use crate::error::Result;
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
    let base = baseline.map(|b| table.row(b)).transpose()?;
    Ok(match format {
        Format::Table | Format::Markdown => human(table, base, format == Format::Markdown),
        Format::Csv => csv(table, base),
        Format::Json => json(table, base),
    })
}

fn pct(v: Option<f64>) -> String {
    v.map(|v| format!("{:.2}", v * 100.0))
        .unwrap_or_else(|| "-".into())
}

fn signed(v: Option<f64>) -> String {
    v.map(|v| format!("{:+.2}", v * 100.0))
        .unwrap_or_else(|| "-".into())
}

/// Text table or Markdown: `run`, `n` (only when some row averages seeds), classes, `mIoU`.
fn human(t: &IouTable, base: Option<&Row>, markdown: bool) -> String {
    let groups = t.has_groups();
    let mut header = vec!["run".to_string()];
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
            if groups {
                cells.push(String::new());
            }
            cells.extend(d.into_iter().map(signed));
            cells.push(signed(dm));
            lines.push(cells);
        }
    }
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
                .map(|(i, _)| if i == 0 { ":---|" } else { "---:|" })
                .collect::<String>()
        );
        for l in &lines {
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
            if i == 0 {
                let _ = write!(s, "{c}{}", " ".repeat(pad));
            } else {
                let _ = write!(s, "  {}{c}", " ".repeat(pad));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = row(&header) + "\n";
    out += &(widths
        .iter()
        .map(|w| "-".repeat(*w))
        .collect::<Vec<_>>()
        .join("  ")
        + "\n");
    for l in &lines {
        out += &(row(l) + "\n");
    }
    out
}

/// Column names shared by CSV and JSON, in order.
fn columns(t: &IouTable, base: Option<&Row>) -> Vec<String> {
    let mut c = vec!["run".to_string()];
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
    Text(Option<String>),
    Int(u32),
    Pct(Option<f64>),
}

fn cells(t: &IouTable, r: &Row, base: Option<&Row>) -> Vec<Cell> {
    let mut c = vec![Cell::Text(Some(r.name.clone()))];
    c.extend(r.params.iter().map(|p| Cell::Text(p.clone())));
    c.push(Cell::Int(r.n));
    c.extend(r.iou.iter().map(|v| Cell::Pct(*v)));
    c.extend([Cell::Pct(r.miou), Cell::Pct(r.miou_std)]);
    if let Some(b) = base {
        let (d, dm) = r.delta(b);
        c.extend(d.into_iter().map(Cell::Pct));
        c.push(Cell::Pct(dm));
    }
    debug_assert_eq!(c.len(), columns(t, base).len());
    c
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv(t: &IouTable, base: Option<&Row>) -> String {
    let mut out = columns(t, base)
        .iter()
        .map(|c| csv_field(c))
        .collect::<Vec<_>>()
        .join(",")
        + "\n";
    for r in &t.rows {
        let line: Vec<String> = cells(t, r, base)
            .into_iter()
            .map(|c| match c {
                Cell::Text(s) => csv_field(s.as_deref().unwrap_or("")),
                Cell::Int(n) => n.to_string(),
                Cell::Pct(v) => v.map(|v| (v * 100.0).to_string()).unwrap_or_default(),
            })
            .collect();
        out += &(line.join(",") + "\n");
    }
    out
}

/// An array of objects, one per row, keys in column order. Sweep-variable values that read as
/// JSON numbers or booleans (`0.01`, `true`) are written as such, others as strings.
fn json(t: &IouTable, base: Option<&Row>) -> String {
    use serde_json::Value;
    let names = columns(t, base);
    let mut out = String::from("[");
    for (i, r) in t.rows.iter().enumerate() {
        out += if i == 0 { "\n  {" } else { ",\n  {" };
        for (k, (name, c)) in names.iter().zip(cells(t, r, base)).enumerate() {
            let v = match c {
                Cell::Text(None) => Value::Null,
                Cell::Text(Some(s)) if k > 0 => match serde_json::from_str::<Value>(&s) {
                    Ok(v @ (Value::Number(_) | Value::Bool(_))) => v,
                    _ => Value::String(s),
                },
                Cell::Text(Some(s)) => Value::String(s),
                Cell::Int(n) => Value::from(n),
                Cell::Pct(v) => v
                    .and_then(|v| serde_json::Number::from_f64(v * 100.0))
                    .map(Value::Number)
                    .unwrap_or(Value::Null),
            };
            let sep = if k == 0 { "" } else { ", " };
            let _ = write!(out, "{sep}{}: {v}", Value::String(name.clone()));
        }
        out += "}";
    }
    out += if t.rows.is_empty() { "]\n" } else { "\n]\n" };
    out
}
