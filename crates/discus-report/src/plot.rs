//! SVG plots drawn with `plotters` (no system fonts: text is laid out by plotters' own estimate),
//! returned as [`Markup`] to embed in a page. Text in the SVG (labels, names) is escaped by the
//! plotters SVG backend.
//!
//! - [`bar_chart`]: grouped bars, one group per category and one bar per series (for example the
//!   share of each vendor in dataset A and in dataset B);
//! - [`histogram`]: a histogram of samples with a marked value (bootstrap distributions);
//! - [`interval_plot`]: a point and its interval per group (scores by site);
//! - [`line_plot`]: lines and points in the unit square or any range, optionally with the diagonal
//!   (reliability diagrams);
//! - [`heat_map`]: a matrix of values as coloured cells with their numbers, row and column labels
//!   and a colour legend ([`ColourScale`]).

use crate::{Markup, PreEscaped};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// A plot that could not be drawn, with the reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct PlotError(pub String);

fn perr<E: std::fmt::Debug>(e: E) -> PlotError {
    PlotError(format!("{e:?}"))
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Draws into a fresh SVG of `size` (pixels) and returns it as markup.
fn svg(
    size: (u32, u32),
    draw: impl FnOnce(&Area<'_>) -> Result<(), PlotError>,
) -> Result<Markup, PlotError> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, size).into_drawing_area();
        root.fill(&WHITE).map_err(perr)?;
        draw(&root)?;
        root.present().map_err(perr)?;
    }
    Ok(PreEscaped(buf))
}

/// The colours of the series of a plot, in order (the matplotlib "tab10" palette).
pub const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

const GRID: RGBColor = RGBColor(238, 238, 238);

/// Grouped bars: `categories` along x; for each, one bar per series.
#[derive(Debug, Clone, PartialEq)]
pub struct BarChart {
    /// Shown above the plot.
    pub title: String,
    /// Category names (x axis).
    pub categories: Vec<String>,
    /// `(series name, one value per category)`; the names make the legend.
    pub series: Vec<(String, Vec<f64>)>,
    /// The y axis' description.
    pub y_desc: String,
    /// Width and height in pixels.
    pub size: (u32, u32),
}

/// Draws a [`BarChart`]. Non-finite values are drawn as no bar.
pub fn bar_chart(c: &BarChart) -> Result<Markup, PlotError> {
    if c.series.iter().any(|(_, v)| v.len() != c.categories.len()) {
        return Err(PlotError(
            "every series needs one value per category".into(),
        ));
    }
    let n = c.categories.len().max(1);
    let k = c.series.len().max(1);
    let top = c
        .series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    // Headroom above the tallest bar for the legend (upper right).
    let top = if top > 0.0 { top * 1.35 } else { 1.0 };
    let names = &c.categories;
    svg(c.size, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .caption(&c.title, ("sans-serif", 15))
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(-0.5..n as f64 - 0.5, 0.0..top)
            .map_err(perr)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|x| category_label(names, *x, label_chars(c.size.0, n)))
            .light_line_style(GRID)
            .y_desc(c.y_desc.as_str())
            .draw()
            .map_err(perr)?;
        let width = 0.8 / k as f64;
        for (s, (name, values)) in c.series.iter().enumerate() {
            let colour = PALETTE[s % PALETTE.len()];
            chart
                .draw_series(
                    values
                        .iter()
                        .enumerate()
                        .filter(|(_, v)| v.is_finite())
                        .map(|(i, &v)| {
                            let x0 = i as f64 - 0.4 + s as f64 * width;
                            Rectangle::new([(x0, 0.0), (x0 + width * 0.92, v)], colour.filled())
                        }),
                )
                .map_err(perr)?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], colour.filled())
                });
        }
        if c.series.len() > 1 {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(200, 200, 200))
                .position(SeriesLabelPosition::UpperRight)
                .draw()
                .map_err(perr)?;
        }
        Ok(())
    })
}

/// How many characters of a category label fit under its slot: about 7 px a character over the
/// plot's width (less the y label area) shared by `n` categories; at least 4.
fn label_chars(width: u32, n: usize) -> usize {
    ((width.saturating_sub(70) as usize) / n.max(1) / 7).max(4)
}

/// The label of the category at axis position `x` (categories sit at 0, 1, 2, ...), shortened to
/// `max` characters; empty between categories.
fn category_label(names: &[String], x: f64, max: usize) -> String {
    let i = x.round();
    if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() {
        let s = &names[i as usize];
        if s.chars().count() > max {
            s.chars().take(max - 1).chain(['…']).collect()
        } else {
            s.clone()
        }
    } else {
        String::new()
    }
}

/// A histogram of `samples` (non-finite ones are ignored) in `bins` bins, with a vertical red line
/// at `marker`.
pub fn histogram(
    samples: &[f64],
    marker: f64,
    bins: usize,
    x_desc: &str,
    y_desc: &str,
    size: (u32, u32),
) -> Result<Markup, PlotError> {
    let bins = bins.max(1);
    let finite: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
    let (mut lo, mut hi) = finite
        .iter()
        .fold((marker, marker), |(a, b), &v| (a.min(v), b.max(v)));
    if !lo.is_finite() || !hi.is_finite() || hi <= lo {
        lo = if lo.is_finite() { lo - 0.5 } else { -0.5 };
        hi = if hi.is_finite() { hi + 0.5 } else { 0.5 };
    }
    let width = (hi - lo) / bins as f64;
    let mut counts = vec![0u32; bins];
    for v in &finite {
        counts[(((v - lo) / width) as usize).min(bins - 1)] += 1;
    }
    let top = counts.iter().copied().max().unwrap_or(1).max(1) as f64 * 1.1;
    svg(size, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(45)
            .build_cartesian_2d(lo..hi, 0.0..top)
            .map_err(perr)?;
        chart
            .configure_mesh()
            .light_line_style(GRID)
            .y_label_formatter(&|v| format!("{v:.0}"))
            .x_desc(x_desc)
            .y_desc(y_desc)
            .draw()
            .map_err(perr)?;
        chart
            .draw_series(counts.iter().enumerate().map(|(i, &c)| {
                let x0 = lo + i as f64 * width;
                Rectangle::new([(x0, 0.0), (x0 + width, c as f64)], PALETTE[0].filled())
            }))
            .map_err(perr)?;
        if marker.is_finite() {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(marker, 0.0), (marker, top)],
                    RED.stroke_width(2),
                )))
                .map_err(perr)?;
        }
        Ok(())
    })
}

/// One group of an [`interval_plot`]: a name, a point estimate and its interval.
#[derive(Debug, Clone, PartialEq)]
pub struct IntervalPoint {
    /// The group's name (x axis).
    pub name: String,
    /// The estimate (a dot; not drawn when not finite).
    pub value: f64,
    /// The interval (a vertical line; not drawn when an end is not finite).
    pub interval: [f64; 2],
}

/// A dot and a vertical interval per group, y from 0.
pub fn interval_plot(
    title: &str,
    points: &[IntervalPoint],
    y_desc: &str,
    size: (u32, u32),
) -> Result<Markup, PlotError> {
    let n = points.len().max(1);
    let top = points
        .iter()
        .flat_map(|p| [p.value, p.interval[0], p.interval[1]])
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max)
        .max(0.1)
        * 1.15;
    let names: Vec<String> = points.iter().map(|p| p.name.clone()).collect();
    svg(size, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .caption(title, ("sans-serif", 15))
            .x_label_area_size(35)
            .y_label_area_size(45)
            .build_cartesian_2d(-0.5..n as f64 - 0.5, 0.0..top)
            .map_err(perr)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|x| category_label(&names, *x, label_chars(size.0, n)))
            .light_line_style(GRID)
            .y_desc(y_desc)
            .draw()
            .map_err(perr)?;
        for (i, p) in points.iter().enumerate() {
            let x = i as f64;
            let [a, b] = p.interval;
            if a.is_finite() && b.is_finite() {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(x, a), (x, b)],
                        BLACK.stroke_width(2),
                    )))
                    .map_err(perr)?;
            }
            if p.value.is_finite() {
                chart
                    .draw_series(std::iter::once(Circle::new(
                        (x, p.value),
                        5,
                        PALETTE[0].filled(),
                    )))
                    .map_err(perr)?;
            }
        }
        Ok(())
    })
}

/// Lines through points (each series in its own colour, with dots).
#[derive(Debug, Clone, PartialEq)]
pub struct LinePlot {
    /// Shown above the plot (may be empty).
    pub title: String,
    /// The x axis' description.
    pub x_desc: String,
    /// The y axis' description.
    pub y_desc: String,
    /// The x range.
    pub x_range: (f64, f64),
    /// The y range.
    pub y_range: (f64, f64),
    /// Draw the diagonal y = x in grey (perfect calibration).
    pub diagonal: bool,
    /// `(name, points)`; points with a non-finite coordinate are left out.
    pub series: Vec<(String, Vec<(f64, f64)>)>,
    /// Width and height in pixels.
    pub size: (u32, u32),
}

/// Draws a [`LinePlot`].
pub fn line_plot(p: &LinePlot) -> Result<Markup, PlotError> {
    let (x0, x1) = p.x_range;
    let (y0, y1) = p.y_range;
    if !(x0 < x1 && y0 < y1) {
        return Err(PlotError(format!("empty range x {x0}..{x1}, y {y0}..{y1}")));
    }
    svg(p.size, |root| {
        let mut b = ChartBuilder::on(root);
        b.margin(10).x_label_area_size(30).y_label_area_size(35);
        if !p.title.is_empty() {
            b.caption(&p.title, ("sans-serif", 13));
        }
        let mut chart = b.build_cartesian_2d(x0..x1, y0..y1).map_err(perr)?;
        chart
            .configure_mesh()
            .x_labels(6)
            .y_labels(6)
            .light_line_style(GRID)
            .x_desc(p.x_desc.as_str())
            .y_desc(p.y_desc.as_str())
            .draw()
            .map_err(perr)?;
        if p.diagonal {
            let lo = x0.max(y0);
            let hi = x1.min(y1);
            chart
                .draw_series(LineSeries::new(vec![(lo, lo), (hi, hi)], BLACK.mix(0.4)))
                .map_err(perr)?;
        }
        for (s, (_, pts)) in p.series.iter().enumerate() {
            let colour = PALETTE[s % PALETTE.len()];
            let pts: Vec<(f64, f64)> = pts
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(2)))
                .map_err(perr)?;
            chart
                .draw_series(pts.iter().map(|&q| Circle::new(q, 3, colour.filled())))
                .map_err(perr)?;
        }
        Ok(())
    })
}

/// A piecewise-linear colour scale: `stops` are `(value, rgb)` in increasing value; values below
/// the first stop take its colour, above the last the last one's.
#[derive(Debug, Clone, PartialEq)]
pub struct ColourScale {
    /// `(value, [r, g, b])`, increasing in value.
    pub stops: Vec<(f64, [u8; 3])>,
}

impl ColourScale {
    /// Red at `lo` (and below), yellow half-way, green at `hi`: agreement statistics.
    pub fn red_yellow_green(lo: f64, hi: f64) -> ColourScale {
        ColourScale {
            stops: vec![
                (lo, [220, 60, 80]),
                (0.5 * (lo + hi), [220, 220, 80]),
                (hi, [50, 220, 80]),
            ],
        }
    }

    /// White at `lo`, red at `hi`: losses and divergences (more is worse).
    pub fn white_red(lo: f64, hi: f64) -> ColourScale {
        ColourScale {
            stops: vec![(lo, [255, 255, 255]), (hi, [214, 39, 40])],
        }
    }

    /// The colour of `v`.
    pub fn colour(&self, v: f64) -> RGBColor {
        let Some(&(first_v, first)) = self.stops.first() else {
            return RGBColor(128, 128, 128);
        };
        // Below the first stop, and NaN, take the first colour.
        if v.is_nan() || v <= first_v {
            return RGBColor(first[0], first[1], first[2]);
        }
        for w in self.stops.windows(2) {
            let ((a, ca), (b, cb)) = (w[0], w[1]);
            if v <= b {
                let t = if b > a { (v - a) / (b - a) } else { 1.0 };
                let mix =
                    |i: usize| (ca[i] as f64 + t * (cb[i] as f64 - ca[i] as f64)).round() as u8;
                return RGBColor(mix(0), mix(1), mix(2));
            }
        }
        let last = self.stops[self.stops.len() - 1].1;
        RGBColor(last[0], last[1], last[2])
    }

    fn range(&self) -> (f64, f64) {
        match (self.stops.first(), self.stops.last()) {
            (Some(a), Some(b)) => (a.0, b.0),
            _ => (0.0, 1.0),
        }
    }
}

/// The number of steps of a heat map's colour legend (each one `<rect>` in the SVG).
pub const LEGEND_STEPS: usize = 20;

/// A matrix of values drawn as coloured cells, each with its number.
#[derive(Debug, Clone, PartialEq)]
pub struct HeatMap {
    /// Row labels (left), one per row of `values`.
    pub rows: Vec<String>,
    /// Column labels (top, written upwards), one per column of `values`.
    pub columns: Vec<String>,
    /// `values[row][column]`; `None` is drawn grey with a dash.
    pub values: Vec<Vec<Option<f64>>>,
    /// How values map to colours; the legend spans its first to last stop.
    pub scale: ColourScale,
    /// Decimals of the numbers in the cells and the legend.
    pub digits: usize,
    /// What the colour means (under the legend).
    pub legend: String,
    /// The side of a cell in pixels.
    pub cell: u32,
}

/// Draws a [`HeatMap`]: exactly one `<rect>` for the background, one per cell, and
/// [`LEGEND_STEPS`] for the legend.
pub fn heat_map(h: &HeatMap) -> Result<Markup, PlotError> {
    if h.values.len() != h.rows.len() || h.values.iter().any(|r| r.len() != h.columns.len()) {
        return Err(PlotError(format!(
            "a heat map of {} rows x {} columns needs as many values",
            h.rows.len(),
            h.columns.len()
        )));
    }
    let cell = h.cell.max(16) as i32;
    // Text widths are estimated: 7 px a character at 13 px.
    let longest = |v: &[String]| v.iter().map(|s| s.chars().count()).max().unwrap_or(0) as i32;
    let left = 16 + 7 * longest(&h.rows);
    let top = 16 + 7 * longest(&h.columns);
    let (nr, nc) = (h.rows.len() as i32, h.columns.len() as i32);
    let legend_w = 300;
    let legend_text = format!("{}; grey: undefined", h.legend);
    let width = (left + cell * nc + 20)
        .max(legend_w + 40)
        .max(40 + 7 * legend_text.chars().count() as i32);
    let height = top + cell * nr + 90;
    let font = ("sans-serif", 16).into_font();
    let (lo, hi) = h.scale.range();
    svg((width as u32, height as u32), |root| {
        let label = |s: &str, at: (i32, i32), pos: Pos, rotate: bool| {
            let mut style = font.clone().color(&BLACK).pos(pos);
            if rotate {
                style = style.transform(FontTransform::Rotate270);
            }
            root.draw(&Text::new(s.to_string(), at, style))
                .map_err(perr)
        };
        for (i, name) in h.rows.iter().enumerate() {
            let y = top + cell * i as i32 + cell / 2;
            label(
                name,
                (left - 6, y),
                Pos::new(HPos::Right, VPos::Center),
                false,
            )?;
        }
        for (j, name) in h.columns.iter().enumerate() {
            let x = left + cell * j as i32 + cell / 2;
            label(name, (x, top - 6), Pos::new(HPos::Left, VPos::Center), true)?;
        }
        for (i, row) in h.values.iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                let (x, y) = (left + cell * j as i32, top + cell * i as i32);
                let fill = match v {
                    Some(v) if v.is_finite() => h.scale.colour(*v),
                    _ => RGBColor(221, 221, 221),
                };
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    ShapeStyle::from(&fill).filled(),
                ))
                .map_err(perr)?;
                let text = match v {
                    Some(v) if v.is_finite() => format!("{v:.*}", h.digits),
                    _ => "–".to_string(),
                };
                label(
                    &text,
                    (x + cell / 2, y + cell / 2),
                    Pos::new(HPos::Center, VPos::Center),
                    false,
                )?;
            }
        }
        // The legend: LEGEND_STEPS swatches from the first to the last stop.
        let ly = top + cell * nr + 24;
        let sw = legend_w / LEGEND_STEPS as i32;
        for k in 0..LEGEND_STEPS {
            let v = lo + (hi - lo) * (k as f64 + 0.5) / LEGEND_STEPS as f64;
            let x = 20 + sw * k as i32;
            root.draw(&Rectangle::new(
                [(x, ly), (x + sw, ly + 14)],
                ShapeStyle::from(&h.scale.colour(v)).filled(),
            ))
            .map_err(perr)?;
        }
        label(
            &format!("{lo:.*}", h.digits),
            (20, ly + 28),
            Pos::new(HPos::Left, VPos::Center),
            false,
        )?;
        label(
            &format!("{hi:.*}", h.digits),
            (20 + sw * LEGEND_STEPS as i32, ly + 28),
            Pos::new(HPos::Right, VPos::Center),
            false,
        )?;
        label(
            &legend_text,
            (20, ly + 48),
            Pos::new(HPos::Left, VPos::Center),
            false,
        )?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_scale_interpolates_between_stops_and_clamps() {
        let s = ColourScale::red_yellow_green(0.0, 1.0);
        assert_eq!(s.colour(-3.0), RGBColor(220, 60, 80));
        assert_eq!(s.colour(0.5), RGBColor(220, 220, 80));
        assert_eq!(s.colour(1.0), RGBColor(50, 220, 80));
        assert_eq!(s.colour(7.0), RGBColor(50, 220, 80));
        // A quarter of the way: half-way between red and yellow.
        assert_eq!(s.colour(0.25), RGBColor(220, 140, 80));
        let w = ColourScale::white_red(0.0, 2.0);
        assert_eq!(w.colour(1.0), RGBColor(235, 147, 148));
        assert_eq!(w.colour(f64::NAN), RGBColor(255, 255, 255));
    }
}
