//! The PNG scatter plot of a two-dimensional latent map (from [`crate::analysis::projection`]). It
//! colours each point by a cluster (a legend of distinct colours) or by a value such
//! as the timescale class or `t_myr` (viridis with a colour bar).

use std::path::Path;

use crate::Result;
use deepgalaxy_core::Error;
use plotters::prelude::*;

use crate::drawing::plot::{
    category_colour, drawing_error, ensure_font, viridis, write_png, Canvas, FONT,
};

/// How to colour the points of a latent map.
#[derive(Debug, Clone, Copy)]
pub enum Colouring<'a> {
    /// One colour per category (e.g. cluster), with a legend `name k (count)`.
    Categories {
        /// Category of each point.
        labels: &'a [usize],
        /// What a category is called in the legend ("cluster").
        name: &'a str,
    },
    /// A continuous value (e.g. class or `t_myr`), viridis, with a colour bar.
    Values {
        /// Value of each point.
        values: &'a [f64],
        /// The colour bar's title (`"class"`, `"t [Myr]"`).
        name: &'a str,
    },
}

/// Titles and size of a latent map.
#[derive(Debug, Clone)]
pub struct MapStyle {
    /// Title above the plot.
    pub title: String,
    /// Horizontal axis label (e.g. "PC 1 (62.0%)").
    pub x_label: String,
    /// Vertical axis label.
    pub y_label: String,
    /// Picture width and height in pixels.
    pub size: (u32, u32),
}

/// Width of the legend / colour bar strip.
const SIDE: u32 = 170;
/// Legend rows shown at most.
const MAX_LEGEND: usize = 24;

/// Draws the scatter plot of `points` coloured by `colouring`.
pub fn render_latent_map(
    points: &[[f64; 2]],
    colouring: Colouring<'_>,
    style: &MapStyle,
) -> Result<image::RgbImage> {
    let n = points.len();
    let colours: Vec<RGBColor> = match colouring {
        Colouring::Categories { labels, .. } if labels.len() == n => {
            labels.iter().map(|&l| category_colour(l)).collect()
        }
        Colouring::Values { values, .. } if values.len() == n => {
            let (lo, hi) = finite_range(values);
            values
                .iter()
                .map(|&v| viridis(if hi > lo { (v - lo) / (hi - lo) } else { 0.5 }))
                .collect()
        }
        _ => {
            return Err(Error::setting(
                "latent map",
                format!("{n} points but a different number of colour labels"),
            )
            .into())
        }
    };
    let (w, h) = style.size;
    if w < SIDE + 200 || h < 200 {
        return Err(Error::setting(
            "latent map size",
            format!("{w}x{h} is too small (at least {}x200)", SIDE + 200),
        )
        .into());
    }
    if points
        .iter()
        .any(|p| !(p[0].is_finite() && p[1].is_finite()))
    {
        return Err(Error::setting("latent map", "NaN or infinite coordinates").into());
    }
    ensure_font()?;
    let err = |e| drawing_error("latent map", e);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = Canvas::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (plot_area, side) = root.split_horizontally(w - SIDE);
        let (x0, x1) = padded_range(points.iter().map(|p| p[0]));
        let (y0, y1) = padded_range(points.iter().map(|p| p[1]));
        let mut chart = ChartBuilder::on(&plot_area)
            .caption(&style.title, (FONT, 22))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(&style.x_label)
            .y_desc(&style.y_label)
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 15))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(err)?;
        let radius = if n > 2000 { 2 } else { 3 };
        chart
            .draw_series(
                points
                    .iter()
                    .zip(&colours)
                    .map(|(p, c)| Circle::new((p[0], p[1]), radius, c.mix(0.85).filled())),
            )
            .map_err(err)?;
        match colouring {
            Colouring::Categories { labels, name } => draw_legend(&side, labels, name),
            Colouring::Values { values, name } => draw_colour_bar(&side, values, name, h),
        }
        .map_err(err)?;
        root.present().map_err(err)?;
    }
    image::RgbImage::from_raw(w, h, buf)
        .ok_or_else(|| Error::setting("latent map", "picture buffer has the wrong size"))
        .map_err(Into::into)
}

/// [`render_latent_map`] written to a PNG file (atomically).
pub fn write_latent_map(
    path: &Path,
    points: &[[f64; 2]],
    colouring: Colouring<'_>,
    style: &MapStyle,
) -> Result<()> {
    let picture = render_latent_map(points, colouring, style)
        .map_err(|e| Error::invalid(path, e.to_string()))?;
    write_png(path, &picture)
}

type Area<'b> = DrawingArea<Canvas<'b>, plotters::coord::Shift>;
type DrawResult<'b> = plotters::prelude::DrawResult<(), Canvas<'b>>;

fn draw_legend<'b>(side: &Area<'b>, labels: &[usize], name: &str) -> DrawResult<'b> {
    let mut counts = std::collections::BTreeMap::new();
    for &l in labels {
        *counts.entry(l).or_insert(0usize) += 1;
    }
    let font = (FONT, 14).into_font();
    side.draw(&Text::new(
        format!("{name}s"),
        (10, 40),
        (FONT, 16).into_font(),
    ))?;
    for (row, (&label, &count)) in counts.iter().take(MAX_LEGEND).enumerate() {
        let y = 70 + 22 * row as i32;
        side.draw(&Circle::new(
            (18, y + 7),
            6,
            category_colour(label).filled(),
        ))?;
        side.draw(&Text::new(
            format!("{name} {label} ({count})"),
            (32, y),
            font.clone(),
        ))?;
    }
    if counts.len() > MAX_LEGEND {
        let y = 70 + 22 * MAX_LEGEND as i32;
        side.draw(&Text::new(
            format!("… {} more", counts.len() - MAX_LEGEND),
            (32, y),
            font,
        ))?;
    }
    Ok(())
}

fn draw_colour_bar<'b>(side: &Area<'b>, values: &[f64], name: &str, h: u32) -> DrawResult<'b> {
    let (lo, hi) = finite_range(values);
    let top = 70;
    let bottom = h as i32 - 70;
    let len = (bottom - top).max(1);
    side.draw(&Text::new(
        name.to_string(),
        (10, 40),
        (FONT, 16).into_font(),
    ))?;
    for i in 0..len {
        let t = 1.0 - f64::from(i) / f64::from(len - 1).max(1.0);
        side.draw(&Rectangle::new(
            [(14, top + i), (40, top + i + 1)],
            viridis(t).filled(),
        ))?;
    }
    side.draw(&Rectangle::new(
        [(14, top), (40, bottom)],
        BLACK.stroke_width(1),
    ))?;
    let font = (FONT, 13).into_font();
    for (frac, v) in [(0.0, hi), (0.5, (lo + hi) / 2.0), (1.0, lo)] {
        let y = top + (frac * f64::from(len)) as i32;
        side.draw(&Text::new(format_tick(v), (46, y - 7), font.clone()))?;
    }
    Ok(())
}

fn format_tick(v: f64) -> String {
    if v.abs() >= 1e4 || (v != 0.0 && v.abs() < 1e-2) {
        format!("{v:.2e}")
    } else {
        format!("{}", (v * 100.0).round() / 100.0)
    }
}

fn finite_range(values: &[f64]) -> (f64, f64) {
    let (lo, hi) = values
        .iter()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    if lo.is_finite() {
        (lo, hi)
    } else {
        (0.0, 1.0)
    }
}

/// The data range with 5% margin on each side (±1 when all values are equal).
fn padded_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    if !lo.is_finite() {
        return (-1.0, 1.0);
    }
    let pad = if hi > lo { 0.05 * (hi - lo) } else { 1.0 };
    (lo - pad, hi + pad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variance(img: &image::RgbImage) -> f64 {
        let px: Vec<f64> = img.as_raw().iter().map(|&b| f64::from(b)).collect();
        let m = px.iter().sum::<f64>() / px.len() as f64;
        px.iter().map(|p| (p - m).powi(2)).sum::<f64>() / px.len() as f64
    }

    #[test]
    fn latent_map_pngs_decode_and_show_the_colours() {
        let points: Vec<[f64; 2]> = (0..60)
            .map(|i| [(i % 3) as f64 * 10.0 + (i as f64).sin(), (i / 3) as f64])
            .collect();
        let labels: Vec<usize> = (0..60).map(|i| i % 3).collect();
        let values: Vec<f64> = (0..60).map(|i| i as f64 * 5.0).collect();
        let style = MapStyle {
            title: "Latent map (PCA)".into(),
            x_label: "PC 1".into(),
            y_label: "PC 2".into(),
            size: (800, 600),
        };
        let dir = tempfile::tempdir().unwrap();
        for (name, colouring) in [
            (
                "clusters.png",
                Colouring::Categories {
                    labels: &labels,
                    name: "cluster",
                },
            ),
            (
                "classes.png",
                Colouring::Values {
                    values: &values,
                    name: "t [Myr]",
                },
            ),
        ] {
            let path = dir.path().join(name);
            write_latent_map(&path, &points, colouring, &style).unwrap();
            let img = image::open(&path).unwrap().to_rgb8();
            if let Some(keep) = std::env::var_os("DEEPGALAXY_KEEP_PNG") {
                std::fs::copy(&path, std::path::Path::new(&keep).join(name)).unwrap();
            }
            assert_eq!(img.dimensions(), (800, 600));
            assert!(variance(&img) > 100.0, "{name}: {}", variance(&img));
            // the points' colours are in the picture
            let near = |c: RGBColor, tol: i32| {
                img.pixels().any(|p| {
                    (0..3).all(|i| (i32::from(p.0[i]) - i32::from([c.0, c.1, c.2][i])).abs() <= tol)
                })
            };
            let has = |c: RGBColor| near(c, 0);
            match colouring {
                Colouring::Categories { .. } => {
                    (0..3).for_each(|l| assert!(has(category_colour(l)), "{name} {l}"))
                }
                Colouring::Values { .. } => {
                    // the colour bar spans the map (its end rows sit under the frame)
                    assert!(near(viridis(0.0), 3) && near(viridis(1.0), 3), "{name}")
                }
            }
        }
        // mismatched labels are an error naming the file
        let e = write_latent_map(
            &dir.path().join("bad.png"),
            &points,
            Colouring::Categories {
                labels: &labels[..5],
                name: "cluster",
            },
            &style,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("bad.png") && e.contains("60 points"), "{e}");
    }
}
