//! View 6: qualitative panels, the paper's Figure 3 across runs: for a few validation images,
//! image | ground truth | each row's prediction. The evaluate stage writes `panels/NNNNN_name.png`
//! (image | ground truth | prediction, 2-pixel gaps) for its first images; the images shown are
//! those among them on which the runs disagree most (largest spread of the per-image mIoU in
//! `per_image.parquet`), so the panels show where the methods differ rather than easy frames.

use super::{Block, Section, TileRow, Tiles, mean_std};
use crate::chart::encode::{Rgb, read_png};
use crate::error::Result;
use crate::page::PageOptions;
use crate::read;
use crate::run::{Run, select};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Tiles wider than this are shrunk (by a whole factor) to keep the page small.
pub(crate) const MAX_TILE: usize = 256;
const GAP: usize = 2;

pub(super) fn empty() -> Section {
    Section::new(
        "panels",
        "Qualitative panels",
        "Validation images where the runs disagree most: image | ground truth | predictions.",
    )
}

/// `panels/NNNNN_name.png` files of a run by image index.
fn panel_files(dir: &Path) -> BTreeMap<usize, PathBuf> {
    let mut out = BTreeMap::new();
    let Ok(rd) = std::fs::read_dir(dir.join("panels")) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some(i) = name
            .strip_suffix(".png")
            .and_then(|n| n.split('_').next())
            .and_then(|i| i.parse::<usize>().ok())
        {
            out.insert(i, p);
        }
    }
    out
}

/// Splits a panel into its tiles: 3 (image, ground truth, prediction) or 2 (no image).
pub(crate) fn split(panel: &Rgb) -> Vec<Rgb> {
    let w = panel.width;
    let (n, tw) = if w >= 3 + 2 * GAP && (w - 2 * GAP).is_multiple_of(3) {
        (3, (w - 2 * GAP) / 3)
    } else {
        (2, w.saturating_sub(GAP) / 2)
    };
    (0..n)
        .map(|k| {
            let x0 = k * (tw + GAP);
            let mut data = Vec::with_capacity(tw * panel.height * 3);
            for y in 0..panel.height {
                let row = (y * w + x0) * 3;
                data.extend_from_slice(&panel.data[row..row + tw * 3]);
            }
            Rgb {
                width: tw,
                height: panel.height,
                data,
            }
        })
        .collect()
}

/// Shrinks by the smallest whole factor that fits [`MAX_TILE`], sampling pixel centres (label
/// colours stay exact).
pub(crate) fn shrink(t: Rgb) -> Rgb {
    let f = t.width.div_ceil(MAX_TILE).max(1);
    if f == 1 {
        return t;
    }
    let (w, h) = (t.width / f, (t.height / f).max(1));
    let mut data = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let (sx, sy) = (x * f + f / 2, (y * f + f / 2).min(t.height - 1));
            let p = (sy * t.width + sx) * 3;
            data.extend_from_slice(&t.data[p..p + 3]);
        }
    }
    Rgb {
        width: w,
        height: h,
        data,
    }
}

/// Per-image mIoU by index from `per_image.parquet` (empty when absent).
fn per_image(dir: &Path) -> BTreeMap<usize, f64> {
    let path = dir.join("per_image.parquet");
    let Ok(df) = read::frame(&path) else {
        return BTreeMap::new();
    };
    let (Ok(idx), Ok(miou)) = (
        read::f64s(&df, &path, "index"),
        read::f64s(&df, &path, "miou"),
    ) else {
        return BTreeMap::new();
    };
    idx.into_iter()
        .zip(miou)
        .filter_map(|(i, m)| Some((i? as usize, m?)))
        .collect()
}

/// The `k` indices with the largest spread of per-image mIoU across runs (ties: lower index).
pub(crate) fn pick(candidates: &[usize], scores: &[BTreeMap<usize, f64>], k: usize) -> Vec<usize> {
    let mut ranked: Vec<(usize, f64)> = candidates
        .iter()
        .map(|&i| {
            let v: Vec<f64> = scores.iter().filter_map(|s| s.get(&i).copied()).collect();
            (i, mean_std(&v).1.unwrap_or(0.0))
        })
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.into_iter().take(k).map(|(i, _)| i).collect()
}

pub(super) fn section(runs: &[Run], opts: &PageOptions) -> Result<Section> {
    let mut s = empty();
    let runs = select(runs, &opts.table.filters)?;
    // One run per row (its first seed): panels compare methods, not seeds.
    let mut reps: Vec<(String, &Run)> = Vec::new();
    for r in &runs {
        let name = r.row_name(opts.table.aggregate_seeds);
        if !reps.iter().any(|(n, _)| *n == name) {
            reps.push((name, r));
        }
    }
    let mut with = Vec::new();
    for (name, r) in &reps {
        let files = panel_files(&r.dir);
        if files.is_empty() {
            s.blocks.push(Block::Note(format!(
                "{name}: no panels/ (evaluate's `panels` param was 0?)"
            )));
        } else {
            with.push((name.clone(), *r, files));
        }
    }
    if with.is_empty() {
        return Ok(s);
    }
    let common: Vec<usize> = with[0]
        .2
        .keys()
        .copied()
        .filter(|i| with.iter().all(|(_, _, f)| f.contains_key(i)))
        .collect();
    let scores: Vec<BTreeMap<usize, f64>> =
        with.iter().map(|(_, r, _)| per_image(&r.dir)).collect();
    let chosen = pick(&common, &scores, opts.panels);
    let mut columns = vec!["image".to_string(), "ground truth".to_string()];
    columns.extend(with.iter().map(|(n, _, _)| n.clone()));
    let mut rows = Vec::new();
    for i in &chosen {
        let mut tiles = Vec::new();
        for (k, (_, _, files)) in with.iter().enumerate() {
            let parts = split(&read_png(&files[i])?);
            if k == 0 {
                if parts.len() == 3 {
                    tiles.push(shrink(parts[0].clone()));
                } else {
                    tiles.push(Rgb {
                        width: 1,
                        height: 1,
                        data: vec![255; 3],
                    });
                }
                tiles.push(shrink(parts[parts.len() - 2].clone()));
            }
            if let Some(last) = parts.last() {
                tiles.push(shrink(last.clone()));
            }
        }
        let name = files_name(&with[0].2[i]);
        rows.push(TileRow { label: name, tiles });
    }
    s.intro = format!(
        "{} of the {} images with panels in every run, chosen by the largest spread of per-image \
         mIoU across runs; one run (the first seed) per row.",
        rows.len(),
        common.len()
    );
    s.blocks.push(Block::Tiles(Tiles {
        name: "panels".into(),
        columns,
        rows,
    }));
    Ok(s)
}

/// `00003_frankfurt_000000.png` → `#3 frankfurt_000000`.
fn files_name(p: &Path) -> String {
    let stem = p.file_stem().and_then(|n| n.to_str()).unwrap_or("");
    match stem.split_once('_') {
        Some((i, n)) => format!(
            "#{} {n}",
            i.trim_start_matches('0').parse::<usize>().unwrap_or(0)
        ),
        None => stem.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panels_split_into_tiles_and_disagreement_ranks_images() {
        // 3 tiles of 2×1 with 2-pixel gaps: 2 + 2 + 2 + 2 + 2 = 10 pixels wide.
        let px = [1u8, 1, 0, 0, 2, 2, 0, 0, 3, 3];
        let panel = Rgb {
            width: 10,
            height: 1,
            data: px.iter().flat_map(|&v| [v, v, v]).collect(),
        };
        let t = split(&panel);
        assert_eq!(t.len(), 3);
        assert_eq!(t[2].data, [3; 6]);
        assert_eq!(t[1].width, 2);
        let big = Rgb {
            width: 512,
            height: 2,
            data: vec![7; 512 * 2 * 3],
        };
        let small = shrink(big);
        assert_eq!((small.width, small.height), (256, 1));
        let a = BTreeMap::from([(0, 0.5), (1, 0.5), (2, 0.9)]);
        let b = BTreeMap::from([(0, 0.5), (1, 0.1), (2, 0.8)]);
        assert_eq!(pick(&[0, 1, 2], &[a, b], 2), [1, 2]);
        assert_eq!(
            files_name(Path::new("/x/00003_frankfurt_1.png")),
            "#3 frankfurt_1"
        );
    }
}
