//! PNG plots of a run: loss and accuracy curves, and the confusion matrix.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;

use crate::checkpoint::EpochRecord;
use crate::metrics::Confusion;
use crate::Result;
use deepgalaxy_core::Error;

fn font() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // the embedded font always parses; if it did not, text would be missing, not wrong
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            deepgalaxy_core::FONT_TTF,
        );
    });
}

fn draw_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::invalid(path, format!("cannot draw: {e}"))
}

/// Draws into an RGB buffer and writes it as a PNG atomically.
fn render(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(
        &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    ) -> std::result::Result<(), String>,
) -> Result<()> {
    font();
    let mut pixels = vec![0u8; (size.0 * size.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_err(path, e))?;
        draw(&root).map_err(|e| draw_err(path, e))?;
        root.present().map_err(|e| draw_err(path, e))?;
    }
    let image = image::RgbImage::from_raw(size.0, size.1, pixels)
        .ok_or_else(|| draw_err(path, "buffer size"))?;
    deepgalaxy_core::io::write_atomic(path, |f| {
        image
            .write_to(&mut std::io::BufWriter::new(f), image::ImageFormat::Png)
            .map_err(std::io::Error::other)
    })
    .map_err(Into::into)
}

/// One named line of a panel: legend text, (epoch, value) points, colour.
type Series<'a> = (&'a str, Vec<(f64, f64)>, RGBColor);

/// A panel of lines over epochs, each point marked (so a one-epoch run shows its values).
fn line_panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    title: &str,
    y_desc: &str,
    epochs: f64,
    y_max: f64,
    series: Vec<Series<'_>>,
    legend: SeriesLabelPosition,
) -> std::result::Result<(), String> {
    let e = |x: &dyn std::fmt::Display| x.to_string();
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(1f64..epochs, 0f64..y_max)
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(y_desc)
        .draw()
        .map_err(|x| e(&x))?;
    for (name, points, color) in series {
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|x| e(&x))?;
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|x| e(&x))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .position(legend)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(&x))
}

/// Loss (left) and accuracy (right) per epoch.
pub fn curves(path: &Path, history: &[EpochRecord]) -> Result<()> {
    let train = |f: fn(&EpochRecord) -> f64| -> Vec<(f64, f64)> {
        history.iter().map(|r| (r.epoch as f64, f(r))).collect()
    };
    let val = |f: fn(&crate::metrics::EvalMetrics) -> f64| -> Vec<(f64, f64)> {
        history
            .iter()
            .filter_map(|r| r.val.as_ref().map(|v| (r.epoch as f64, f(v))))
            .collect()
    };
    let losses = vec![
        ("train loss", train(|r| r.train_loss), BLUE),
        ("val cross-entropy", val(|v| v.cross_entropy), RED),
    ];
    let y_max = losses
        .iter()
        .flat_map(|(_, s, _)| s.iter().map(|p| p.1))
        .filter(|v| v.is_finite())
        .fold(1e-6f64, f64::max)
        * 1.1;
    let accuracy = vec![
        ("train top-1", train(|r| r.train_top1), BLUE),
        ("val top-1", val(|v| v.top1), RED),
        ("val within 1", val(|v| v.within1), GREEN),
        ("val within 2", val(|v| v.within2), MAGENTA),
        ("val within 10 Myr", val(|v| v.within_10_myr), CYAN),
        ("val within 25 Myr", val(|v| v.within_25_myr), BLACK),
    ];
    let epochs = history.len().max(2) as f64;
    render(path, (1200, 480), |root| {
        let (left, right) = root.split_horizontally(600);
        line_panel(
            &left,
            "Loss",
            "loss",
            epochs,
            y_max,
            losses,
            SeriesLabelPosition::UpperRight,
        )?;
        line_panel(
            &right,
            "Accuracy",
            "fraction",
            epochs,
            1.0,
            accuracy,
            SeriesLabelPosition::LowerRight,
        )
    })
}

/// The confusion matrix as a heat map (rows: true class, columns: predicted), each row
/// normalised so classes with few images stay visible.
pub fn confusion(path: &Path, matrix: &Confusion) -> Result<()> {
    let n = matrix.len();
    render(path, (720, 720), |root| {
        let e = |s: String| s;
        let mut chart = ChartBuilder::on(root)
            .caption("Confusion matrix (row-normalised)", ("sans-serif", 22))
            .margin(10)
            .x_label_area_size(45)
            .y_label_area_size(55)
            .build_cartesian_2d(0..n as i32, 0..n as i32)
            .map_err(|x| e(x.to_string()))?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("predicted class")
            .y_desc("true class")
            .draw()
            .map_err(|x| e(x.to_string()))?;
        let cells = matrix.iter().enumerate().flat_map(|(t, row)| {
            let total: u32 = row.iter().sum();
            row.iter().enumerate().map(move |(p, &c)| {
                let f = if total == 0 {
                    0.0
                } else {
                    c as f64 / total as f64
                };
                let shade = (255.0 * (1.0 - f)) as u8;
                Rectangle::new(
                    [(p as i32, t as i32), (p as i32 + 1, t as i32 + 1)],
                    RGBColor(shade, shade, 255).filled(),
                )
            })
        });
        chart.draw_series(cells).map_err(|x| e(x.to_string()))?;
        Ok(())
    })
}

/// A named set of (workers, efficiency) points.
pub type Points = (String, Vec<(f64, f64)>);

/// Scaling efficiency against workers on a log axis: `models` as lines (projections, labelled
/// as such by the caller), `observed` as marked points (measurements and published figures).
pub fn scaling(path: &Path, title: &str, models: &[Points], observed: &[Points]) -> Result<()> {
    let colors = [BLUE, RED, GREEN, MAGENTA, BLACK, CYAN];
    let x_max = models
        .iter()
        .chain(observed)
        .flat_map(|(_, p)| p.iter().map(|q| q.0))
        .fold(2.0f64, f64::max);
    render(path, (900, 560), |root| {
        let e = |x: &dyn std::fmt::Display| x.to_string();
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d((1f64..x_max * 1.3).log_scale(), 0f64..1.05)
            .map_err(|x| e(&x))?;
        chart
            .configure_mesh()
            .x_desc("workers (ranks)")
            .y_desc("scaling efficiency")
            .draw()
            .map_err(|x| e(&x))?;
        let mut k = 0;
        for (name, points) in models {
            let color = colors[k % colors.len()];
            k += 1;
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(|x| e(&x))?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        for (name, points) in observed {
            let color = colors[k % colors.len()];
            k += 1;
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 6, color.filled())))
                .map_err(|x| e(&x))?
                .label(name.as_str())
                .legend(move |(x, y)| Circle::new((x + 10, y), 5, color.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|x| e(&x))
    })
}

/// The search's trials: each trial's validation error after every epoch, `(name, curve)`; a
/// pruned trial's line stops where it was stopped.
pub fn trials(path: &Path, curves: &[(String, Vec<f64>)]) -> Result<()> {
    const PALETTE: [RGBColor; 8] = [
        BLUE,
        RED,
        GREEN,
        MAGENTA,
        CYAN,
        BLACK,
        RGBColor(230, 140, 0),
        RGBColor(120, 60, 160),
    ];
    let series: Vec<Series<'_>> = curves
        .iter()
        .enumerate()
        .map(|(i, (name, c))| {
            let points = c
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .map(|(e, &v)| ((e + 1) as f64, v))
                .collect();
            (name.as_str(), points, PALETTE[i % PALETTE.len()])
        })
        .collect();
    let epochs = curves.iter().map(|c| c.1.len()).max().unwrap_or(1).max(2) as f64;
    let y_max = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .fold(1e-6f64, f64::max)
        * 1.1;
    render(path, (900, 560), |root| {
        line_panel(
            root,
            "Trials: validation error by epoch",
            "median |error| (Myr)",
            epochs,
            y_max,
            series,
            SeriesLabelPosition::UpperRight,
        )
    })
}
