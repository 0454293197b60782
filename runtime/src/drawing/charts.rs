//! Small charts for reports: labelled points (speed-up against accuracy change per model
//! variant), grouped bars (throughput per configuration and runner), lines (separation
//! against time per merger) and the evaluation's two panels (predicted and error against true
//! time per merger), drawn with the same canvas and font as the latent maps.

use std::path::Path;

use crate::Result;
use deepgalaxy_core::Error;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::drawing::plot::{category_colour, drawing_error, ensure_font, write_png, Canvas, FONT};

/// Draws a `w` x `h` chart with `draw` on a white canvas and writes it to `path` as PNG.
fn write_chart(
    path: &Path,
    (w, h): (u32, u32),
    draw: impl FnOnce(&DrawingArea<Canvas<'_>, Shift>) -> Result<()>,
) -> Result<()> {
    ensure_font()?;
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = Canvas::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        draw(&root)?;
        root.present().map_err(err)?;
    }
    let picture = image::RgbImage::from_raw(w, h, buf)
        .ok_or_else(|| Error::setting("chart", "picture buffer has the wrong size"))?;
    write_png(path, &picture)
}

fn err(e: impl std::fmt::Display) -> Error {
    drawing_error("chart", e)
}

/// The series' legend, in the upper right corner.
/// Most lines [`write_lines`] names in a legend (more would cover the chart).
const MAX_LEGEND_LINES: usize = 12;

fn legend<'a, 'b>(
    chart: &mut ChartContext<'a, Canvas<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
) -> Result<()>
where
    'b: 'a,
{
    chart
        .configure_series_labels()
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(err)
        .map_err(Into::into)
}

/// A chart on `area` over `x` by `y`, with the axes named `names` and the mesh drawn in the
/// style every chart here shares; `caption` above it when given.
fn axes<'a, 'b>(
    area: &'a DrawingArea<Canvas<'b>, Shift>,
    caption: Option<&str>,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
    names: (&str, &str),
) -> Result<ChartContext<'a, Canvas<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>> {
    let mut builder = ChartBuilder::on(area);
    if let Some(c) = caption {
        builder.caption(c, (FONT, 22));
    }
    let mut chart = builder
        .margin(16)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(x, y)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(names.0)
        .y_desc(names.1)
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(err)?;
    Ok(chart)
}

/// Range with a margin around `values` (and including `also`).
fn span(values: impl Iterator<Item = f64>, also: f64) -> (f64, f64) {
    let (mut lo, mut hi) = values
        .filter(|v| v.is_finite())
        .fold((also, also), |(a, b), v| (a.min(v), b.max(v)));
    if hi - lo < 1e-9 {
        lo -= 1.0;
        hi += 1.0;
    }
    let pad = 0.12 * (hi - lo);
    (lo - pad, hi + pad)
}

/// A scatter plot of named points `(label, x, y)`, each label written beside its point.
pub fn write_points(
    path: &Path,
    title: &str,
    names: (&str, &str),
    points: &[(String, f64, f64)],
) -> Result<()> {
    write_chart(path, (900, 620), |root| {
        let (x0, x1) = span(points.iter().map(|p| p.1), 1.0);
        let (y0, y1) = span(points.iter().map(|p| p.2), 0.0);
        let mut chart = axes(root, Some(title), x0..x1, y0..y1, names)?;
        for (i, (label, x, y)) in points.iter().enumerate() {
            let c = category_colour(i);
            chart
                .draw_series([Circle::new((*x, *y), 6, c.filled())])
                .map_err(err)?;
            chart
                .draw_series([Text::new(label.clone(), (*x, *y), (FONT, 13).into_font())])
                .map_err(err)?;
        }
        Ok(())
    })
}

/// Grouped bars: for each category (x axis) one bar per series, with a legend.
pub fn write_bars(
    path: &Path,
    title: &str,
    y_label: &str,
    categories: &[String],
    series: &[(String, Vec<f64>)],
) -> Result<()> {
    write_chart(path, (1000, 620), |root| {
        let top = series
            .iter()
            .flat_map(|s| s.1.iter().copied())
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max)
            .max(1e-9)
            * 1.15;
        let n = categories.len().max(1) as f64;
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 22))
            .margin(16)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..n, 0f64..top)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_desc(y_label)
            .label_style((FONT, 12))
            .axis_desc_style((FONT, 15))
            .draw()
            .map_err(err)?;
        // category names above their groups (plotters places axis labels at "nice" numbers)
        chart
            .draw_series(categories.iter().enumerate().map(|(i, c)| {
                Text::new(
                    c.clone(),
                    (i as f64 + 0.1, top * 0.97),
                    (FONT, 14).into_font(),
                )
            }))
            .map_err(err)?;
        let k = series.len().max(1) as f64;
        for (j, (name, values)) in series.iter().enumerate() {
            let c = category_colour(j);
            chart
                .draw_series(
                    values
                        .iter()
                        .enumerate()
                        .filter(|(_, v)| v.is_finite())
                        .map(|(i, v)| {
                            let x0 = i as f64 + 0.1 + 0.8 * j as f64 / k;
                            Rectangle::new([(x0, 0.0), (x0 + 0.8 / k, *v)], c.filled())
                        }),
                )
                .map_err(err)?
                .label(name.clone())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
        }
        legend(&mut chart)?;
        Ok(())
    })
}

/// Lines `(name, points)` against one x axis, with a legend (up to [`MAX_LEGEND_LINES`]
/// lines; more are drawn thinner and unnamed), and dashed vertical lines at
/// `marks` (e.g. the time every merger was set up to reach first pericentre).
pub fn write_lines(
    path: &Path,
    title: &str,
    names: (&str, &str),
    series: &[(String, Vec<(f64, f64)>)],
    marks: &[f64],
) -> Result<()> {
    write_chart(path, (1000, 620), |root| {
        let points = || series.iter().flat_map(|s| s.1.iter());
        let (x0, x1) = span(points().map(|p| p.0), 0.0);
        let (_, y1) = span(points().map(|p| p.1), 0.0);
        let mut chart = axes(root, Some(title), x0..x1, 0f64..y1, names)?;
        for &x in marks {
            chart
                .draw_series(DashedLineSeries::new(
                    [(x, 0.0), (x, y1)],
                    6,
                    4,
                    BLACK.mix(0.6).stroke_width(1),
                ))
                .map_err(err)?;
        }
        // a legend of more lines than fit would hide the lines
        let named = series.len() <= MAX_LEGEND_LINES;
        let width = if named { 2 } else { 1 };
        for (j, (name, line)) in series.iter().enumerate() {
            let c = category_colour(j);
            let drawn = chart
                .draw_series(LineSeries::new(
                    line.iter()
                        .copied()
                        .filter(|p| p.0.is_finite() && p.1.is_finite()),
                    c.stroke_width(width),
                ))
                .map_err(err)?;
            if named {
                drawn.label(name.clone()).legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 16, y)], c.stroke_width(2))
                });
            }
        }
        if named {
            legend(&mut chart)?;
        }
        Ok(())
    })
}

/// How well a model reads time, per merger: predicted against true time (left, each image a
/// dot, the diagonal for perfect answers) and the absolute error against true time (right,
/// the median over the merger's images at each true time).
pub fn write_evaluation(
    path: &Path,
    title: &str,
    per_merger: &[(String, Vec<(f64, f64)>)],
) -> Result<()> {
    write_chart(path, (1400, 620), |root| {
        let root = root.titled(title, (FONT, 22)).map_err(err)?;
        let (left, right) = root.split_horizontally(700);
        let all = || per_merger.iter().flat_map(|m| m.1.iter());
        let (lo, hi) = span(all().flat_map(|p| [p.0, p.1]), 0.0);
        let names = ("true time (Myr)", "predicted time (Myr)");
        let mut chart = axes(&left, None, lo..hi, lo..hi, names)?;
        chart
            .draw_series(LineSeries::new([(lo, lo), (hi, hi)], BLACK.mix(0.5)))
            .map_err(err)?;
        for (j, (_, points)) in per_merger.iter().enumerate() {
            let c = category_colour(j);
            chart
                .draw_series(
                    points
                        .iter()
                        .filter(|p| p.0.is_finite() && p.1.is_finite())
                        .map(|&p| Circle::new(p, 2, c.mix(0.5).filled())),
                )
                .map_err(err)?;
        }
        let errors: Vec<(String, Vec<(f64, f64)>)> = per_merger
            .iter()
            .map(|(name, points)| (name.clone(), median_error_by_truth(points)))
            .collect();
        let (_, top) = span(errors.iter().flat_map(|e| e.1.iter().map(|p| p.1)), 0.0);
        let names = ("true time (Myr)", "median |error| (Myr)");
        let mut chart = axes(&right, None, lo..hi, 0f64..top, names)?;
        for (j, (name, line)) in errors.iter().enumerate() {
            let c = category_colour(j);
            chart
                .draw_series(LineSeries::new(line.iter().copied(), c.stroke_width(2)))
                .map_err(err)?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], c.stroke_width(2)));
        }
        legend(&mut chart)
    })
}

/// The median |predicted - true| at each distinct true time of `(true, predicted)` points.
fn median_error_by_truth(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut sorted: Vec<(f64, f64)> = points
        .iter()
        .filter(|p| p.0.is_finite() && p.1.is_finite())
        .copied()
        .collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    sorted
        .chunk_by(|a, b| a.0 == b.0)
        .map(|g| {
            let e: Vec<f64> = g.iter().map(|p| (p.1 - p.0).abs()).collect();
            (g[0].0, deepgalaxy_core::time::median(&e))
        })
        .collect()
}
