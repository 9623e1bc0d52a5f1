//! View 1, the paper's Table 1 in HTML: IoU per class and mIoU (mean ± std, n) per row, each
//! class column colour-scaled from its worst row (light) to its best (green, bold), and with a
//! baseline a Δ row under every other row (green gain, red loss, scaled by the largest |Δ|).

use super::{Block, Section};
use crate::html::esc;
use crate::page::PageOptions;
use crate::table::IouTable;
use std::fmt::Write as _;

pub(super) fn empty() -> Section {
    Section::new(
        "table",
        "IoU per class (Table 1)",
        "Per-class IoU and mIoU of every evaluated run, in percent.",
    )
}

/// Background of a value at position `t` in [0, 1] of its column's range.
pub(crate) fn scale(t: f64) -> String {
    let l = 97.0 - 35.0 * t.clamp(0.0, 1.0);
    format!("hsl(120,45%,{l:.0}%)")
}

/// Background of a delta: green for a gain, red for a loss, stronger with |d| / max.
pub(crate) fn delta_scale(d: f64, max: f64) -> String {
    let t = if max > 0.0 {
        (d.abs() / max).min(1.0)
    } else {
        0.0
    };
    let hue = if d >= 0.0 { 120 } else { 0 };
    format!("hsl({hue},55%,{:.0}%)", 97.0 - 30.0 * t)
}

/// (min, max) of each column's defined values over the rows (classes, then mIoU).
pub(crate) fn column_ranges(t: &IouTable) -> Vec<Option<(f64, f64)>> {
    (0..=t.classes.len())
        .map(|c| {
            let vals = t.rows.iter().filter_map(|r| {
                if c < t.classes.len() {
                    r.iou[c]
                } else {
                    r.miou
                }
            });
            vals.fold(None, |acc: Option<(f64, f64)>, v| match acc {
                None => Some((v, v)),
                Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
            })
        })
        .collect()
}

fn cell(v: Option<f64>, range: Option<(f64, f64)>, extra: &str) -> String {
    let Some(v) = v else {
        return "<td class=\"na\">–</td>".into();
    };
    let (lo, hi) = range.unwrap_or((v, v));
    // A column where every row is equal (often all 0 at toy scale) is not shaded at all.
    let t = if hi > lo { (v - lo) / (hi - lo) } else { 0.0 };
    let best = if (v - hi).abs() < 1e-12 && hi > lo {
        " class=\"best\""
    } else {
        ""
    };
    format!(
        "<td{best} style=\"background:{}\">{:.2}{extra}</td>",
        scale(t),
        v * 100.0
    )
}

pub(super) fn section(t: &IouTable, opts: &PageOptions) -> crate::Result<Section> {
    let mut s = empty();
    let base = opts.baseline.as_deref().map(|b| t.row(b)).transpose()?;
    let groups = t.has_groups();
    let ranges = column_ranges(t);
    let mut h = String::from("<div class=\"scroll\"><table class=\"iou\"><thead><tr><th>run</th>");
    for p in &t.params {
        let _ = write!(h, "<th>{}</th>", esc(p));
    }
    if groups {
        h.push_str("<th>n</th>");
    }
    for c in &t.classes {
        let _ = write!(h, "<th class=\"cls\"><span>{}</span></th>", esc(c));
    }
    h.push_str("<th>mIoU</th></tr></thead><tbody>");
    let max_delta = base
        .map(|b| {
            t.rows
                .iter()
                .flat_map(|r| {
                    let (d, dm) = r.delta(b);
                    d.into_iter().chain([dm]).flatten()
                })
                .fold(0.0f64, |m, d| m.max(d.abs()))
        })
        .unwrap_or(0.0);
    let lead = t.params.len() + usize::from(groups);
    for r in &t.rows {
        let is_base = base.is_some_and(|b| b.name == r.name);
        let label = if is_base {
            format!("{} <em>(baseline)</em>", esc(&r.name))
        } else {
            esc(&r.name)
        };
        let _ = write!(h, "<tr><th class=\"run\">{label}</th>");
        for p in &r.params {
            let _ = write!(h, "<td>{}</td>", esc(p.as_deref().unwrap_or("")));
        }
        if groups {
            let _ = write!(h, "<td>{}</td>", r.n);
        }
        for (c, v) in r.iou.iter().enumerate() {
            h.push_str(&cell(*v, ranges[c], ""));
        }
        let std = r
            .miou_std
            .map(|s| format!(" ± {:.2}", s * 100.0))
            .unwrap_or_default();
        h.push_str(&cell(r.miou, ranges[t.classes.len()], &std));
        h.push_str("</tr>");
        if let Some(b) = base.filter(|_| !is_base) {
            let (d, dm) = r.delta(b);
            let _ = write!(
                h,
                "<tr class=\"delta\"><th class=\"run\">Δ {}</th>{}",
                esc(&r.name),
                "<td></td>".repeat(lead)
            );
            for v in d.into_iter().chain([dm]) {
                match v {
                    Some(v) => {
                        let _ = write!(
                            h,
                            "<td style=\"background:{}\">{:+.2}</td>",
                            delta_scale(v, max_delta),
                            v * 100.0
                        );
                    }
                    None => h.push_str("<td class=\"na\">–</td>"),
                }
            }
            h.push_str("</tr>");
        }
    }
    h.push_str("</tbody></table></div>");
    s.intro = format!(
        "{} rows; per-class IoU and mIoU in percent{}. Each column is shaded from its lowest \
         value (light) to its highest (green, bold){}.",
        t.rows.len(),
        if groups {
            ", mIoU as mean ± sample std over the n seeds"
        } else {
            ""
        },
        match base {
            Some(b) => format!("; Δ rows: difference to {}", esc(&b.name)),
            None => "; --baseline ROW adds Δ rows".into(),
        }
    );
    s.blocks.push(Block::Html(h));
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Row;

    fn row(name: &str, iou: [Option<f64>; 2], miou: f64) -> Row {
        Row {
            name: name.into(),
            params: vec![],
            n: 1,
            iou: iou.to_vec(),
            miou: Some(miou),
            miou_std: None,
        }
    }

    #[test]
    fn columns_scale_from_worst_to_best_and_deltas_are_signed() {
        let t = IouTable {
            classes: vec!["road".into(), "sky".into()],
            params: vec![],
            rows: vec![
                row("base", [Some(0.2), None], 0.2),
                row("ours", [Some(0.6), Some(0.5)], 0.55),
            ],
        };
        let r = column_ranges(&t);
        assert_eq!(r[0], Some((0.2, 0.6)));
        assert_eq!(r[1], Some((0.5, 0.5)));
        assert_eq!(r[2], Some((0.2, 0.55)));
        let opts = PageOptions {
            baseline: Some("base".into()),
            ..PageOptions::default()
        };
        let s = section(&t, &opts).unwrap();
        let Block::Html(h) = &s.blocks[0] else {
            panic!("no table")
        };
        // The best road value is bold and darkest; the worst is the lightest shade.
        assert!(
            h.contains(&format!(
                "<td class=\"best\" style=\"background:{}\">60.00</td>",
                scale(1.0)
            )),
            "{h}"
        );
        assert!(h.contains(&format!("style=\"background:{}\">20.00</td>", scale(0.0))));
        assert!(h.contains("base <em>(baseline)</em>"));
        // Δ ours − base: road +40 (the largest |Δ|: full green), sky undefined, mIoU +35.
        assert!(
            h.contains(&format!("background:{}\">+40.00", delta_scale(0.4, 0.4))),
            "{h}"
        );
        assert!(h.contains("+35.00"));
        assert_eq!(h.matches("<tr class=\"delta\">").count(), 1);
        assert_ne!(delta_scale(-0.1, 0.4), delta_scale(0.1, 0.4));
        assert!(
            section(
                &t,
                &PageOptions {
                    baseline: Some("nope".into()),
                    ..PageOptions::default()
                }
            )
            .is_err()
        );
    }
}
