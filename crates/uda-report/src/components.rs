//! The component layout (`uda-pipe report --layout components`): the paper's Table 3, one row per
//! run with check marks for what its model was trained with ("CE", "CL", "λ_ent = 0") and its
//! mIoU, and Table 3's own rows beside them with `--published`.
//!
//! The marks of this pipeline's rows are derived from the training stage's complete params (what
//! its cache entry records), not from stage names, so a `pretrain` run with `lambda_ent: 0` is
//! marked "λ_ent = 0" whatever it is called.

use crate::error::Result;
use crate::format::{Format, csv_field, pct};
use crate::published::{Components, PublishedRow};
use crate::read;
use crate::run::{Run, SUMMARY};
use crate::table::IouTable;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;

/// The training run behind an evaluated model: the training stage's kind (`pretrain`,
/// `contrastive-train`) and its complete params as its cache entry records them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Training {
    pub kind: String,
    pub params: Value,
}

impl Training {
    /// The components in Table 3's terms. Cross-entropy is on unless `lambda_ce` turns it off
    /// (every training stage has a supervised CE term); the contrastive loss only where
    /// `lambda_cl` > 0 (only `contrastive-train` has it); "λ_ent = 0" where `lambda_ent` is 0 or
    /// the stage has no entropy term at all.
    pub fn components(&self) -> Components {
        let num = |k: &str| self.params.get(k).and_then(Value::as_f64);
        Components {
            ce: num("lambda_ce").is_none_or(|v| v > 0.0),
            cl: num("lambda_cl").is_some_and(|v| v > 0.0),
            lambda_ent_zero: num("lambda_ent").is_none_or(|v| v == 0.0),
        }
    }
}

/// The network an evaluate output scored: `backbone` of the checkpoint's `model.json`, which the
/// evaluate stage keeps verbatim in `summary.parquet`'s `model_meta`. `None` for external
/// predictions (no checkpoint) or a `model.json` without it.
pub fn model_backbone(dir: &Path) -> Result<Option<String>> {
    let path = dir.join(SUMMARY);
    let df = read::frame(&path)?;
    if !read::has(&df, "model_meta") {
        return Ok(None);
    }
    let meta = read::strings(&df, &path, "model_meta")?;
    Ok(meta
        .into_iter()
        .flatten()
        .filter_map(|m| serde_json::from_str::<Value>(&m).ok())
        .find_map(|v| v.get("backbone")?.as_str().map(str::to_string)))
}

/// One row of the component layout: an [`IouTable`] row and the components of its model.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentRow {
    pub name: String,
    pub n: u32,
    /// `None` when the training is unknown (external predictions, a model from outside the
    /// cache) or when the row's seeds were trained differently.
    pub components: Option<Components>,
    pub miou: Option<f64>,
    pub miou_std: Option<f64>,
}

/// The component rows of `table`, whose rows were built from `runs` (with seeds aggregated or
/// not, as `aggregate_seeds` says).
pub fn component_rows(table: &IouTable, runs: &[Run], aggregate_seeds: bool) -> Vec<ComponentRow> {
    table
        .rows
        .iter()
        .map(|r| {
            let marks: Vec<Option<Components>> = runs
                .iter()
                .filter(|x| x.row_name(aggregate_seeds) == r.name)
                .map(|x| x.training.as_ref().map(Training::components))
                .collect();
            let components = match marks.first() {
                Some(Some(c)) if marks.iter().all(|m| *m == Some(*c)) => Some(*c),
                _ => None,
            };
            ComponentRow {
                name: r.name.clone(),
                n: r.n,
                components,
                miou: r.miou,
                miou_std: r.miou_std,
            }
        })
        .collect()
}

/// Renders the component layout; `published` rows without Table 3's marks are left out.
pub fn render_components(
    rows: &[ComponentRow],
    published: &[PublishedRow],
    format: Format,
) -> String {
    let paper: Vec<&PublishedRow> = published
        .iter()
        .filter(|p| p.components.is_some())
        .collect();
    let with_source = !paper.is_empty();
    let groups = rows.iter().any(|r| r.n > 1);
    match format {
        Format::Table | Format::Markdown => {
            let mark = |b: bool| if b { "✓" } else { "" }.to_string();
            let marks = |c: Option<Components>| match c {
                Some(c) => vec![mark(c.ce), mark(c.cl), mark(c.lambda_ent_zero)],
                None => vec!["?".into(); 3],
            };
            let mut header = vec!["run".to_string()];
            if with_source {
                header.push("source".into());
            }
            if groups {
                header.push("n".into());
            }
            header.extend(["CE", "CL", "λ_ent = 0", "mIoU"].map(String::from));
            let mut lines = Vec::new();
            for r in rows {
                let mut l = vec![r.name.clone()];
                if with_source {
                    l.push("this run".into());
                }
                if groups {
                    l.push(r.n.to_string());
                }
                l.extend(marks(r.components));
                l.push(match r.miou_std {
                    Some(s) => format!("{} ± {:.2}", pct(r.miou), s * 100.0),
                    None => pct(r.miou),
                });
                lines.push(l);
            }
            for p in &paper {
                let mut l = vec![p.method.clone(), p.source()];
                if groups {
                    l.push(String::new());
                }
                l.extend(marks(p.components));
                l.push(p.miou.as_ref().map_or("-".into(), |m| m.text.clone()));
                lines.push(l);
            }
            crate::format::layout(
                &header,
                &lines,
                1 + usize::from(with_source),
                format == Format::Markdown,
            )
        }
        Format::Csv | Format::Json => {
            let mut names = vec!["run"];
            if with_source {
                names.push("source");
            }
            names.extend(["n", "ce", "cl", "lambda_ent_zero", "miou", "miou_std"]);
            let num = |v: Option<f64>| v.and_then(|v| serde_json::Number::from_f64(v * 100.0));
            let flags = |c: Option<Components>| match c {
                Some(c) => [c.ce, c.cl, c.lambda_ent_zero].map(Value::Bool).to_vec(),
                None => vec![Value::Null; 3],
            };
            let opt = |v: Option<serde_json::Number>| v.map_or(Value::Null, Value::Number);
            let mut records: Vec<Vec<Value>> = Vec::new();
            for r in rows {
                let mut v = vec![Value::String(r.name.clone())];
                if with_source {
                    v.push(Value::String("this run".into()));
                }
                v.push(Value::from(r.n));
                v.extend(flags(r.components));
                v.extend([opt(num(r.miou)), opt(num(r.miou_std))]);
                records.push(v);
            }
            for p in &paper {
                let mut v = vec![Value::String(p.method.clone()), Value::String(p.source())];
                v.push(Value::Null);
                v.extend(flags(p.components));
                let miou = p
                    .miou
                    .as_ref()
                    .and_then(|m| serde_json::Number::from_f64(m.value));
                v.extend([opt(miou), Value::Null]);
                records.push(v);
            }
            if format == Format::Json {
                return crate::format::json_records(&names, &records);
            }
            let mut out = names.join(",") + "\n";
            for rec in &records {
                let line: Vec<String> = rec
                    .iter()
                    .map(|v| match v {
                        Value::Null => String::new(),
                        Value::String(s) => csv_field(s),
                        // As the IoU table's CSV writes numbers (`50`, not `50.0`).
                        Value::Number(n) if !n.is_u64() => {
                            n.as_f64().map(|f| f.to_string()).unwrap_or_default()
                        }
                        v => v.to_string(),
                    })
                    .collect();
                let _ = writeln!(out, "{}", line.join(","));
            }
            out
        }
    }
}
