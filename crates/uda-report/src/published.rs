//! The paper's own figures (Tables 1–3 of Singh and Gerem, *UDA for Semantic Segmentation with
//! Contrastive Learning*), compiled in from `data/published.csv` so that `uda-pipe report
//! --published` can print them beside this run's rows.
//!
//! They are kept apart from [`crate::IouTable`] on purpose: an [`IouTable`](crate::IouTable) row
//! is something this pipeline computed, and only those enter means, standard deviations and Δ
//! rows. A [`PublishedRow`] keeps each figure as the paper prints it ([`Figure`]: its digits and
//! their value), so a printed `1.30` is shown as `1.30`, not re-rounded.

use crate::error::{ReportError, Result};

/// The transcription (see `data/README.md` for the conventions and its checks).
pub const PUBLISHED_CSV: &str = include_str!("../data/published.csv");

/// The fixed columns of `published.csv` before the class columns.
const LEAD: [&str; 7] = [
    "table",
    "section",
    "backbone",
    "method",
    "ce",
    "cl",
    "lambda_ent_zero",
];

/// A number as the paper prints it: the digits, and their value (IoU in percent).
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub text: String,
    pub value: f64,
}

impl Figure {
    fn parse(text: &str) -> Option<Self> {
        let value: f64 = text.parse().ok()?;
        value.is_finite().then(|| Self {
            text: text.to_string(),
            value,
        })
    }

    /// Digits after the decimal point: the precision the paper printed.
    pub fn decimals(&self) -> usize {
        self.text.split_once('.').map_or(0, |(_, d)| d.len())
    }
}

/// The components a model was trained with, in the columns of the paper's Table 3: "CE"
/// (cross-entropy on source labels), "CL" (the pixel-contrastive loss) and "λ_ent = 0" (trained
/// *without* entropy minimisation; the paper heads the column that way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Components {
    pub ce: bool,
    pub cl: bool,
    pub lambda_ent_zero: bool,
}

/// One row of the paper's Tables 1–3.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedRow {
    /// 1, 2 or 3.
    pub table: u8,
    /// The heading the row sits under ("VGG16 backbone", "Ablation on ENet backbone").
    pub section: String,
    /// The network in uda-pipe's spelling (`enet`, `fcn8s-vgg16`, `deeplabv2-resnet101`), as
    /// `model.json` records it, so rows can be matched to the runs being reported.
    pub backbone: String,
    /// The row's name as printed (`FDA-MBT [21]`); Table 3's unnamed rows are `row N`.
    pub method: String,
    /// Table 3's check marks; `None` in Tables 1 and 2, which have no such columns.
    pub components: Option<Components>,
    /// Per class, in the order of [`published_classes`]; `None` where the paper has no value.
    pub iou: Vec<Option<Figure>>,
    pub miou: Option<Figure>,
}

impl PublishedRow {
    /// Where the row comes from, as the report's `source` column shows it.
    pub fn source(&self) -> String {
        format!("paper, Table {}: {}", self.table, self.section)
    }

    /// The printed value of class `name`, if the paper gives one.
    pub fn class(&self, name: &str) -> Option<&Figure> {
        let k = published_classes().iter().position(|c| *c == name)?;
        self.iou.get(k)?.as_ref()
    }
}

/// The class columns of `published.csv` (the 19 Cityscapes classes in train-id order, named as in
/// `per_class.parquet`).
pub fn published_classes() -> Vec<&'static str> {
    header()
        .map(|h| h[LEAD.len()..h.len() - 1].to_vec())
        .unwrap_or_default()
}

fn header() -> Option<Vec<&'static str>> {
    PUBLISHED_CSV
        .lines()
        .find(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split(',').collect())
}

/// Which published rows to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishedFilter {
    All,
    /// Rows of these backbones only (uda-pipe spelling).
    Backbones(Vec<String>),
}

/// Every row of Tables 1–3, in the paper's order.
pub fn published() -> Result<Vec<PublishedRow>> {
    parse(PUBLISHED_CSV)
}

/// The rows `filter` keeps, in the paper's order.
pub fn select_published(filter: &PublishedFilter) -> Result<Vec<PublishedRow>> {
    let mut rows = published()?;
    if let PublishedFilter::Backbones(b) = filter {
        rows.retain(|r| b.contains(&r.backbone));
    }
    Ok(rows)
}

fn bad(line: usize, detail: impl Into<String>) -> ReportError {
    ReportError::PublishedData {
        line,
        detail: detail.into(),
    }
}

/// Splits one CSV line; a field in double quotes may hold commas (`"FDA (β = 0.01, λ_ent = 0)"`).
fn fields(line: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if cur.is_empty() => quoted = true,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    if quoted {
        return None;
    }
    out.push(cur);
    Some(out)
}

pub(crate) fn parse(text: &str) -> Result<Vec<PublishedRow>> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.starts_with('#') && !l.trim().is_empty());
    let (hl, header) = lines.next().ok_or_else(|| bad(1, "no header line"))?;
    let header: Vec<&str> = header.split(',').collect();
    if header.len() < LEAD.len() + 2
        || header[..LEAD.len()] != LEAD
        || header.last() != Some(&"miou")
    {
        return Err(bad(
            hl,
            format!(
                "the header must be {}, the class names, miou",
                LEAD.join(",")
            ),
        ));
    }
    let classes = header.len() - LEAD.len() - 1;
    let mut rows = Vec::new();
    for (n, line) in lines {
        let f = fields(line).ok_or_else(|| bad(n, "unterminated quote"))?;
        if f.len() != header.len() {
            return Err(bad(
                n,
                format!("{} fields, the header has {}", f.len(), header.len()),
            ));
        }
        let table: u8 = match f[0].as_str() {
            "1" => 1,
            "2" => 2,
            "3" => 3,
            t => return Err(bad(n, format!("table '{t}' is not 1, 2 or 3"))),
        };
        let figure = |k: usize| -> Result<Option<Figure>> {
            let s = f[k].trim();
            if s.is_empty() {
                return Ok(None);
            }
            Figure::parse(s)
                .map(Some)
                .ok_or_else(|| bad(n, format!("{} '{s}' is not a number", header[k])))
        };
        let mark = |k: usize| -> Result<bool> {
            match f[k].trim() {
                "" => Ok(false),
                "✓" => Ok(true),
                m => Err(bad(
                    n,
                    format!("{} '{m}': expected ✓ or nothing", header[k]),
                )),
            }
        };
        let components = if table == 3 {
            Some(Components {
                ce: mark(4)?,
                cl: mark(5)?,
                lambda_ent_zero: mark(6)?,
            })
        } else {
            if (4..7).any(|k| !f[k].trim().is_empty()) {
                return Err(bad(n, "only Table 3 has the ce/cl/lambda_ent_zero columns"));
            }
            None
        };
        rows.push(PublishedRow {
            table,
            section: f[1].clone(),
            backbone: f[2].clone(),
            method: f[3].clone(),
            components,
            iou: (0..classes)
                .map(|c| figure(LEAD.len() + c))
                .collect::<Result<_>>()?,
            miou: figure(header.len() - 1)?,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<PublishedRow> {
        published().expect("data/published.csv parses")
    }

    #[test]
    fn the_data_file_parses_with_the_paper_tables_and_cityscapes_classes() {
        let rows = rows();
        let count = |t: u8| rows.iter().filter(|r| r.table == t).count();
        assert_eq!((count(1), count(2), count(3)), (21, 9, 4));
        let classes = published_classes();
        assert_eq!(classes.len(), 19);
        // Named as the evaluate stage names them in per_class.parquet.
        let expected: Vec<&str> = uda_data::classes::CLASSES.iter().map(|c| c.name).collect();
        assert_eq!(classes, expected);
        for b in ["fcn8s-vgg16", "deeplabv2-resnet101", "enet"] {
            assert!(rows.iter().any(|r| r.backbone == b), "no row of {b}");
        }
        assert!(
            rows.iter()
                .all(|r| ["fcn8s-vgg16", "deeplabv2-resnet101", "enet"]
                    .contains(&r.backbone.as_str())),
            "a backbone spelt unlike model.json"
        );
    }

    #[test]
    fn tables_1_and_2_have_19_classes_and_an_miou_equal_to_their_mean() {
        for r in rows().iter().filter(|r| r.table != 3) {
            let what = format!("Table {} {} {}", r.table, r.section, r.method);
            let values: Vec<&Figure> = r.iou.iter().flatten().collect();
            assert_eq!(values.len(), 19, "{what}: a class value is missing");
            let miou = r.miou.as_ref().unwrap_or_else(|| panic!("{what}: no mIoU"));
            assert!(r.components.is_none(), "{what}");
            let mean = values.iter().map(|v| v.value).sum::<f64>() / 19.0;
            // Rounding to the printed digits moves the mIoU by up to half a unit of its last
            // digit, and the mean of the class values by up to the mean of theirs.
            let half = |d: usize| 0.5 * 10f64.powi(-(d as i32));
            let tolerance = half(miou.decimals())
                + values.iter().map(|v| half(v.decimals())).sum::<f64>() / 19.0
                + 1e-9;
            assert!(
                (mean - miou.value).abs() <= tolerance,
                "{what}: mean of the classes {mean:.4} vs printed mIoU {} (± {tolerance:.3}): \
                 a transcription error?",
                miou.text
            );
        }
    }

    #[test]
    fn table_3_has_marks_and_miou_only_and_digits_stay_as_printed() {
        let rows = rows();
        let t3: Vec<&PublishedRow> = rows.iter().filter(|r| r.table == 3).collect();
        for r in &t3 {
            assert!(r.iou.iter().all(Option::is_none), "{}", r.method);
            assert!(r.components.is_some() && r.miou.is_some(), "{}", r.method);
        }
        let marks: Vec<(bool, bool, bool, &str)> = t3
            .iter()
            .map(|r| {
                let c = r.components.unwrap();
                (
                    c.ce,
                    c.cl,
                    c.lambda_ent_zero,
                    r.miou.as_ref().unwrap().text.as_str(),
                )
            })
            .collect();
        assert_eq!(
            marks,
            [
                (false, true, false, "46.42"),
                (true, false, false, "45.42"),
                (false, false, false, "45.01"),
                (false, false, true, "44.64"),
            ]
        );
        // Table 3's first row is the full method, Table 1's ResNet-101 "Ours".
        let ours = rows
            .iter()
            .find(|r| r.table == 1 && r.backbone == "deeplabv2-resnet101" && r.method == "Ours")
            .unwrap();
        assert_eq!(ours.miou, t3[0].miou);
        let dcan = rows
            .iter()
            .find(|r| r.table == 1 && r.backbone == "fcn8s-vgg16" && r.method == "DCAN [20]")
            .unwrap();
        assert_eq!(dcan.class("train").unwrap().text, "1.30");
        assert_eq!(dcan.class("train").unwrap().value, 1.3);
        let fda = rows
            .iter()
            .find(|r| r.method == "FDA (β = 0.01, λ_ent = 0)")
            .expect("a quoted name with a comma");
        assert_eq!(fda.backbone, "enet");
        assert_eq!(fda.miou.as_ref().unwrap().text, "9.51");
    }

    #[test]
    fn filters_keep_the_backbones_asked_for() {
        let enet = select_published(&PublishedFilter::Backbones(vec!["enet".into()])).unwrap();
        assert_eq!(enet.len(), 6);
        assert!(enet.iter().all(|r| r.table == 2));
        assert_eq!(
            select_published(&PublishedFilter::All).unwrap().len(),
            rows().len()
        );
        assert!(
            select_published(&PublishedFilter::Backbones(vec![]))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn malformed_data_fails_naming_the_line() {
        let head = "table,section,backbone,method,ce,cl,lambda_ent_zero,road,miou\n";
        let e = parse(&format!("# c\n{head}4,s,enet,m,,,,1,1\n")).unwrap_err();
        assert!(
            e.to_string().contains("line 3") && e.to_string().contains("table '4'"),
            "{e}"
        );
        let e = parse(&format!("{head}1,s,enet,m,,,,x,1\n")).unwrap_err();
        assert!(e.to_string().contains("road 'x' is not a number"), "{e}");
        let e = parse(&format!("{head}1,s,enet,m,✓,,,1,1\n")).unwrap_err();
        assert!(e.to_string().contains("only Table 3"), "{e}");
        let e = parse(&format!("{head}3,s,enet,m,y,,,,1\n")).unwrap_err();
        assert!(e.to_string().contains("expected ✓"), "{e}");
        let e = parse(&format!("{head}1,\"s,enet,m,,,,1,1\n")).unwrap_err();
        assert!(e.to_string().contains("unterminated quote"), "{e}");
        assert!(parse("a,b\n").is_err());
        let ok = parse(&format!("{head}1,\"a, \"\"b\"\"\",enet,m,,,,,\n")).unwrap();
        assert_eq!(ok[0].section, "a, \"b\"");
        assert_eq!((ok[0].iou.clone(), ok[0].miou.clone()), (vec![None], None));
    }
}
