//! Drawing the charts with plotters, generic over the back-end (SVG string or RGB bitmap).
//!
//! Category labels (class names, stage names) are placed by hand at the pixel position of their
//! bar or row: plotters' own key points on a numeric axis fall between categories.

use super::{Bars, Chart, Dag, Heatmap, Lines, PALETTE, State, Timeline};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

type Res = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Width and height of one DAG cell (a node box plus the gap to the next column or row).
pub(super) const DAG_COL: u32 = 210;
pub(super) const DAG_ROW: u32 = 46;
/// Series with at most this many points get markers as well as a line.
const SHORT: usize = 30;

fn font(size: u32) -> TextStyle<'static> {
    super::font::ensure();
    (super::font::FAMILY, size).into_font().color(&BLACK)
}

fn colour(i: usize) -> RGBColor {
    let (r, g, b) = PALETTE[i % PALETTE.len()];
    RGBColor(r, g, b)
}

fn rgb((r, g, b): (u8, u8, u8)) -> RGBColor {
    RGBColor(r, g, b)
}

pub(super) fn draw<DB: DrawingBackend>(chart: &Chart, backend: DB) -> Res
where
    DB::ErrorType: 'static,
{
    let root = backend.into_drawing_area();
    root.fill(&WHITE)?;
    match chart {
        Chart::Bars(b) => bars(b, &root)?,
        Chart::Lines(l) => lines(l, &root)?,
        Chart::Heatmap(h) => heatmap(h, &root)?,
        Chart::Timeline(t) => timeline(t, &root)?,
        Chart::Dag(d) => dag(d, &root)?,
    }
    root.present()?;
    Ok(())
}

/// A one-line legend of coloured squares, wrapped to the area's width; returns the height used.
fn legend<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    entries: &[(String, RGBColor)],
    top: i32,
) -> Result<i32, Box<dyn std::error::Error + Send + Sync>>
where
    DB::ErrorType: 'static,
{
    let width = root.dim_in_pixel().0 as i32;
    let (mut x, mut y) = (60, top);
    for (name, c) in entries {
        let w = 22 + (name.chars().count() as i32) * 7 + 16;
        if x + w > width - 10 && x > 60 {
            x = 60;
            y += 18;
        }
        root.draw(&Rectangle::new([(x, y), (x + 12, y + 12)], c.filled()))?;
        root.draw(&Text::new(name.clone(), (x + 16, y), font(12)))?;
        x += w;
    }
    Ok(y + 18 - top)
}

fn legend_height(entries: &[(String, RGBColor)], width: u32) -> u32 {
    let (mut x, mut rows) = (60i32, 1u32);
    for (name, _) in entries {
        let w = 22 + (name.chars().count() as i32) * 7 + 16;
        if x + w > width as i32 - 10 && x > 60 {
            x = 60;
            rows += 1;
        }
        x += w;
    }
    rows * 18 + 6
}

fn bars<DB: DrawingBackend>(b: &Bars, root: &DrawingArea<DB, Shift>) -> Res
where
    DB::ErrorType: 'static,
{
    let entries: Vec<(String, RGBColor)> = b
        .series
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.clone(), colour(i)))
        .collect();
    let lh = legend_height(&entries, root.dim_in_pixel().0);
    let (top, body) = root.split_vertically(30 + lh);
    top.draw(&Text::new(b.title.clone(), (10, 6), font(16)))?;
    legend(&top, &entries, 28)?;
    let n = b.categories.len().max(1);
    let (lo, hi) = b.y_range;
    let mut chart = ChartBuilder::on(&body)
        .margin(10)
        .x_label_area_size(100)
        .y_label_area_size(55)
        .build_cartesian_2d(0f64..n as f64, lo..hi)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .disable_x_axis()
        .max_light_lines(1)
        .y_desc(b.y_label.as_str())
        .label_style(font(12))
        .axis_desc_style(font(13))
        .draw()?;
    let k = b.series.len().max(1);
    let bw = 0.8 / k as f64;
    let base = 0f64.clamp(lo, hi);
    for (s, series) in b.series.iter().enumerate() {
        let c = colour(s);
        let rects = series.values.iter().enumerate().filter_map(|(i, v)| {
            let x0 = i as f64 + 0.1 + s as f64 * bw;
            v.map(|v| Rectangle::new([(x0, base), (x0 + bw, v.clamp(lo, hi))], c.filled()))
        });
        chart.draw_series(rects)?;
        let whiskers = series
            .values
            .iter()
            .zip(&series.errors)
            .enumerate()
            .filter_map(|(i, (v, e))| {
                let (v, e) = (v.as_ref()?, e.as_ref().filter(|e| **e > 0.0)?);
                let x = i as f64 + 0.1 + (s as f64 + 0.5) * bw;
                Some(whisker(
                    x,
                    (v - e).max(lo),
                    (v + e).min(hi),
                    bw * 0.3,
                    BLACK,
                ))
            })
            .flatten();
        chart.draw_series(whiskers)?;
    }
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(0.0, base), (n as f64, base)],
        BLACK.stroke_width(1),
    )))?;
    let style = font(12)
        .transform(FontTransform::Rotate270)
        .pos(Pos::new(HPos::Right, VPos::Center));
    for (i, name) in b.categories.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(i as f64 + 0.5, lo));
        root.draw(&Text::new(name.clone(), (x, y + 6), style.clone()))?;
    }
    Ok(())
}

/// An error bar from `lo` to `hi` at `x` with caps `cap` wide on each side (data units). Drawn
/// as paths: plotters' `ErrorBar` also marks the mean with a circle, noise on top of a bar.
fn whisker(x: f64, lo: f64, hi: f64, cap: f64, c: RGBColor) -> [PathElement<(f64, f64)>; 3] {
    let style = c.stroke_width(1);
    [
        PathElement::new(vec![(x, lo), (x, hi)], style),
        PathElement::new(vec![(x - cap, lo), (x + cap, lo)], style),
        PathElement::new(vec![(x - cap, hi), (x + cap, hi)], style),
    ]
}

/// Axis range of `values` with a margin, never empty.
fn padded(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let span = if hi > lo { hi - lo } else { lo.abs().max(1e-3) };
    (lo - 0.06 * span, hi + 0.06 * span)
}

fn lines<DB: DrawingBackend>(l: &Lines, root: &DrawingArea<DB, Shift>) -> Res
where
    DB::ErrorType: 'static,
{
    let entries: Vec<(String, RGBColor)> = l
        .series
        .iter()
        .map(|s| (s.name.clone(), colour(s.colour)))
        .collect();
    let lh = legend_height(&entries, root.dim_in_pixel().0);
    let (top, body) = root.split_vertically(28 + lh);
    top.draw(&Text::new(l.title.clone(), (10, 6), font(15)))?;
    legend(&top, &entries, 26)?;
    let points = || l.series.iter().flat_map(|s| s.points.iter());
    let (x0, x1) = match &l.x_ticks {
        Some(t) => (-0.5, t.len() as f64 - 0.5),
        None => padded(points().map(|p| p.0)),
    };
    let ys = l.series.iter().flat_map(|s| {
        s.points.iter().enumerate().flat_map(move |(i, p)| {
            let e = s.errors.get(i).copied().unwrap_or(0.0);
            [p.1 - e, p.1 + e]
        })
    });
    let (y0, y1) = padded(ys);
    let mut chart = ChartBuilder::on(&body)
        .margin(10)
        .x_label_area_size(if l.x_ticks.is_some() { 40 } else { 34 })
        .y_label_area_size(62)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    let number = |v: &f64| short(*v);
    let blank = |_: &f64| String::new();
    let mut mesh = chart.configure_mesh();
    mesh.y_desc(l.y_label.as_str())
        .label_style(font(11))
        .axis_desc_style(font(12))
        .y_label_formatter(&number)
        .max_light_lines(1)
        .x_labels(6);
    if l.x_ticks.is_some() {
        // Category names are drawn under their points below, with the axis description.
        mesh.disable_x_mesh()
            .disable_x_axis()
            .x_label_formatter(&blank);
    } else {
        mesh.x_desc(l.x_label.as_str()).x_label_formatter(&number);
    }
    mesh.draw()?;
    for s in &l.series {
        let c = colour(s.colour);
        chart.draw_series(std::iter::once(PathElement::new(
            s.points.clone(),
            c.stroke_width(2),
        )))?;
        // Short logs (a few logged windows) would be invisible as lines alone.
        if l.markers || s.points.len() <= SHORT {
            chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 4, c.filled())))?;
        }
        let cap = (x1 - x0) * 0.012;
        let bars = s
            .points
            .iter()
            .zip(&s.errors)
            .filter(|(_, e)| **e > 0.0)
            .flat_map(|(&(x, y), &e)| whisker(x, y - e, y + e, cap, c));
        chart.draw_series(bars)?;
    }
    if let Some(ticks) = &l.x_ticks {
        let style = font(11).pos(Pos::new(HPos::Center, VPos::Top));
        for (i, t) in ticks.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(i as f64, y0));
            root.draw(&PathElement::new(
                vec![(x, y), (x, y + 3)],
                BLACK.stroke_width(1),
            ))?;
            root.draw(&Text::new(t.clone(), (x, y + 5), style.clone()))?;
        }
        let (left, y) = chart.backend_coord(&(x0, y0));
        let (right, _) = chart.backend_coord(&(x1, y0));
        root.draw(&PathElement::new(
            vec![(left, y), (right, y)],
            BLACK.stroke_width(1),
        ))?;
        root.draw(&Text::new(
            l.x_label.clone(),
            ((left + right) / 2, y + 20),
            font(12).pos(Pos::new(HPos::Center, VPos::Top)),
        ))?;
    }
    Ok(())
}

/// Axis numbers: 3 significant digits, scientific for tiny or huge values (learning rates).
fn short(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-2..1e5).contains(&a) {
        format!("{v:.1e}")
    } else {
        let s = format!("{v:.3}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s == "-0" { "0".into() } else { s.into() }
    }
}

/// Shares below this are drawn white (they would be within a shade of it).
pub(crate) const VISIBLE: f64 = 0.002;

/// White → dark blue: a share of 0 is white, 1 is the darkest.
pub(crate) fn heat(v: f64) -> (u8, u8, u8) {
    let t = v.clamp(0.0, 1.0).sqrt();
    let lerp = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    (lerp(255.0, 8.0), lerp(255.0, 48.0), lerp(255.0, 107.0))
}

fn heatmap<DB: DrawingBackend>(h: &Heatmap, root: &DrawingArea<DB, Shift>) -> Res
where
    DB::ErrorType: 'static,
{
    let (top, body) = root.split_vertically(46);
    top.draw(&Text::new(h.title.clone(), (10, 6), font(15)))?;
    for (k, v) in [0.0, 0.1, 0.25, 0.5, 1.0].into_iter().enumerate() {
        let x = 10 + k as i32 * 70;
        top.draw(&Rectangle::new(
            [(x, 26), (x + 14, 40)],
            rgb(heat(v)).filled(),
        ))?;
        top.draw(&Rectangle::new(
            [(x, 26), (x + 14, 40)],
            BLACK.stroke_width(1),
        ))?;
        top.draw(&Text::new(
            format!("{:.0}%", v * 100.0),
            (x + 18, 27),
            font(11),
        ))?;
    }
    let (nr, nc) = (h.rows.len().max(1), h.cols.len().max(1));
    let mut chart = ChartBuilder::on(&body)
        .margin(10)
        .margin_left(120)
        .margin_bottom(110)
        .build_cartesian_2d(0f64..nc as f64, 0f64..nr as f64)?;
    // Only cells that are not white are drawn (most of a confusion matrix is ~0), and a class
    // without ground-truth pixels is one grey bar: the SVG stays a few KB per matrix.
    let cells = h.values.iter().enumerate().flat_map(|(r, row)| {
        let y = (nr - 1 - r) as f64;
        let empty = row.iter().all(Option::is_none);
        let grey = empty.then(|| {
            Rectangle::new(
                [(0.0, y), (row.len() as f64, y + 1.0)],
                RGBColor(235, 235, 235).filled(),
            )
        });
        let shaded = row.iter().enumerate().filter_map(move |(c, v)| {
            let v = (*v).filter(|v| *v >= VISIBLE)?;
            Some(Rectangle::new(
                [(c as f64, y), (c as f64 + 1.0, y + 1.0)],
                rgb(heat(v)).filled(),
            ))
        });
        grey.into_iter().chain(shaded)
    });
    chart.draw_series(cells)?;
    chart.draw_series(std::iter::once(Rectangle::new(
        [(0.0, 0.0), (nc as f64, nr as f64)],
        BLACK.stroke_width(1),
    )))?;
    let left = font(11).pos(Pos::new(HPos::Right, VPos::Center));
    for (r, name) in h.rows.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(0.0, (nr - r) as f64 - 0.5));
        root.draw(&Text::new(name.clone(), (x - 4, y), left.clone()))?;
    }
    let down = font(11)
        .transform(FontTransform::Rotate270)
        .pos(Pos::new(HPos::Right, VPos::Center));
    for (c, name) in h.cols.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(c as f64 + 0.5, 0.0));
        root.draw(&Text::new(name.clone(), (x, y + 4), down.clone()))?;
    }
    let (x, y) = chart.backend_coord(&(nc as f64 / 2.0, 0.0));
    root.draw(&Text::new(
        h.x_label.clone(),
        (x, y + 96),
        font(12).pos(Pos::new(HPos::Center, VPos::Top)),
    ))?;
    let (x, y) = chart.backend_coord(&(0.0, nr as f64));
    root.draw(&Text::new(
        h.y_label.clone(),
        (x - 4, y - 4),
        font(12).pos(Pos::new(HPos::Right, VPos::Bottom)),
    ))?;
    Ok(())
}

fn timeline<DB: DrawingBackend>(t: &Timeline, root: &DrawingArea<DB, Shift>) -> Res
where
    DB::ErrorType: 'static,
{
    let (top, body) = root.split_vertically(44);
    top.draw(&Text::new(t.title.clone(), (10, 6), font(15)))?;
    let states = [State::Ran, State::Failed, State::Cached];
    for (k, s) in states.into_iter().enumerate() {
        let x = 10 + k as i32 * 90;
        top.draw(&Rectangle::new(
            [(x, 26), (x + 12, 38)],
            rgb(s.rgb()).filled(),
        ))?;
        top.draw(&Text::new(s.as_str(), (x + 16, 25), font(12)))?;
    }
    let n = t.spans.len().max(1);
    let end = t
        .spans
        .iter()
        .map(|s| s.start_s + s.duration_s)
        .fold(0.0, f64::max)
        .max(1e-3);
    let mut chart = ChartBuilder::on(&body)
        .margin(10)
        .margin_left(200)
        .x_label_area_size(30)
        .build_cartesian_2d(0f64..end * 1.02, 0f64..n as f64)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .max_light_lines(1)
        .x_desc("seconds since the run started")
        .label_style(font(11))
        .axis_desc_style(font(12))
        .x_label_formatter(&|v| short(*v))
        .draw()?;
    let bars = t.spans.iter().enumerate().map(|(i, s)| {
        let y = (n - 1 - i) as f64;
        // Cached stages take milliseconds: a minimum width keeps them visible.
        let w = s.duration_s.max(end * 0.003);
        Rectangle::new(
            [(s.start_s, y + 0.15), (s.start_s + w, y + 0.85)],
            rgb(s.state.rgb()).filled(),
        )
    });
    chart.draw_series(bars)?;
    let left = font(11).pos(Pos::new(HPos::Right, VPos::Center));
    for (i, s) in t.spans.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(0.0, (n - i) as f64 - 0.5));
        root.draw(&Text::new(s.label.clone(), (x - 6, y), left.clone()))?;
    }
    Ok(())
}

/// Cuts `s` to `max` characters with an ellipsis (node ids can be long sweep instances).
fn fit(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        s.chars().take(max - 1).collect::<String>() + "…"
    }
}

fn dag<DB: DrawingBackend>(d: &Dag, root: &DrawingArea<DB, Shift>) -> Res
where
    DB::ErrorType: 'static,
{
    root.draw(&Text::new(d.title.clone(), (10, 6), font(15)))?;
    let (bw, bh) = (DAG_COL as i32 - 34, DAG_ROW as i32 - 10);
    let origin = |layer: usize, slot: usize| {
        (
            10 + layer as i32 * DAG_COL as i32,
            40 + slot as i32 * DAG_ROW as i32,
        )
    };
    let grey = RGBColor(150, 150, 150);
    for &(a, b) in &d.edges {
        let (Some(na), Some(nb)) = (d.nodes.get(a), d.nodes.get(b)) else {
            continue;
        };
        let (ax, ay) = origin(na.layer, na.slot);
        let (bx, by) = origin(nb.layer, nb.slot);
        let (from, to) = ((ax + bw, ay + bh / 2), (bx, by + bh / 2));
        root.draw(&PathElement::new(vec![from, to], grey.stroke_width(1)))?;
        root.draw(&Rectangle::new(
            [(to.0 - 3, to.1 - 2), (to.0, to.1 + 2)],
            grey.filled(),
        ))?;
    }
    for n in &d.nodes {
        let (x, y) = origin(n.layer, n.slot);
        root.draw(&Rectangle::new(
            [(x, y), (x + bw, y + bh)],
            rgb(n.state.rgb()).filled(),
        ))?;
        root.draw(&Rectangle::new(
            [(x, y), (x + bw, y + bh)],
            RGBColor(60, 60, 60).stroke_width(1),
        ))?;
        root.draw(&Text::new(fit(&n.label, 26), (x + 5, y + 4), font(11)))?;
        root.draw(&Text::new(fit(&n.detail, 28), (x + 5, y + 19), font(10)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_numbers_and_heat_scale() {
        assert_eq!(short(0.5), "0.5");
        assert_eq!(short(12.0), "12");
        assert_eq!(short(0.0), "0");
        assert_eq!(short(0.00025), "2.5e-4");
        assert_eq!(heat(0.0), (255, 255, 255));
        assert_eq!(heat(1.0), (8, 48, 107));
        let mid = heat(0.25);
        assert!(mid.0 < 255 && mid.0 > 8, "{mid:?}");
        assert_eq!(fit("abcdef", 4), "abc…");
        let (lo, hi) = padded([1.0, 1.0].into_iter());
        assert!(
            (lo - 0.94).abs() < 1e-12 && (hi - 1.06).abs() < 1e-12,
            "{lo} {hi}"
        );
        assert_eq!(padded(std::iter::empty()), (0.0, 1.0));
    }
}
