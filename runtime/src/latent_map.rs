//! Two-dimensional maps of the latent space, and their PNG scatter plot (the paper's latent
//! visualisation): PCA, exact and deterministic; and t-SNE through the maintained `bhtsne`
//! crate (Barnes-Hut), which shows local neighbourhoods better but distorts global distances.
//!
//! The plot colours each point by a cluster (a legend of distinct colours) or by a value such
//! as the timescale class or `t_myr` (viridis with a colour bar).

use std::path::Path;

use deepgalaxy_core::{Error, Result};
use faer::{Mat, Side};
use plotters::prelude::*;

use crate::plot::{category_colour, drawing_error, ensure_font, viridis, write_png, Canvas, FONT};

/// A principal component analysis of latents.
#[derive(Debug, Clone, PartialEq)]
pub struct Pca {
    /// Latent dimension.
    pub dim: usize,
    /// Mean latent, subtracted before projecting.
    pub mean: Vec<f64>,
    /// Principal axes, largest variance first, `dim` values each, one after another; each is
    /// a unit vector whose largest-magnitude entry is positive (a deterministic sign).
    pub components: Vec<f64>,
    /// Variance along each principal axis (population variance, divided by N).
    pub explained_variance: Vec<f64>,
    /// Share of the total variance along each axis (0 when all latents are equal).
    pub explained_variance_ratio: Vec<f64>,
}

impl Pca {
    /// Fits `n_components` principal axes to `vectors.len() / dim` latents, from the
    /// eigendecomposition of their covariance matrix (faer, dense `dim x dim`).
    pub fn fit(vectors: &[f32], dim: usize, n_components: usize) -> Result<Pca> {
        check_vectors(vectors, dim, 2)?;
        if n_components == 0 || n_components > dim {
            return Err(Error::setting(
                "PCA components",
                format!("{n_components} components of {dim}-D latents"),
            ));
        }
        let n = vectors.len() / dim;
        let mut mean = vec![0.0; dim];
        for v in vectors.chunks_exact(dim) {
            for (m, &x) in mean.iter_mut().zip(v) {
                *m += f64::from(x);
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let mut cov = Mat::<f64>::zeros(dim, dim);
        let mut centred = vec![0.0; dim];
        for v in vectors.chunks_exact(dim) {
            for ((c, &x), m) in centred.iter_mut().zip(v).zip(&mean) {
                *c = f64::from(x) - m;
            }
            for i in 0..dim {
                for j in 0..=i {
                    cov[(i, j)] += centred[i] * centred[j];
                }
            }
        }
        for i in 0..dim {
            for j in 0..=i {
                let c = cov[(i, j)] / n as f64;
                cov[(i, j)] = c;
                cov[(j, i)] = c;
            }
        }
        let eig = cov
            .self_adjoint_eigen(Side::Lower)
            .map_err(|e| Error::setting("PCA", format!("eigensolver failed: {e:?}")))?;
        let values: Vec<f64> = eig.S().column_vector().iter().copied().collect();
        let total: f64 = values.iter().map(|v| v.max(0.0)).sum();
        let u = eig.U();
        let mut components = Vec::with_capacity(n_components * dim);
        let mut explained_variance = Vec::with_capacity(n_components);
        // ascending eigenvalues: the last columns hold the largest variances
        for c in (dim - n_components..dim).rev() {
            let mut axis: Vec<f64> = (0..dim).map(|i| u[(i, c)]).collect();
            let big = axis
                .iter()
                .fold(0.0f64, |a, &b| if b.abs() > a.abs() { b } else { a });
            if big < 0.0 {
                axis.iter_mut().for_each(|x| *x = -*x);
            }
            components.extend(axis);
            explained_variance.push(values[c].max(0.0));
        }
        let explained_variance_ratio = explained_variance
            .iter()
            .map(|v| if total > 0.0 { v / total } else { 0.0 })
            .collect();
        Ok(Pca {
            dim,
            mean,
            components,
            explained_variance,
            explained_variance_ratio,
        })
    }

    /// Coordinates of latents along the principal axes: per latent, one value per component.
    pub fn transform(&self, vectors: &[f32]) -> Result<Vec<f64>> {
        check_vectors(vectors, self.dim, 0)?;
        let k = self.components.len() / self.dim;
        let mut out = Vec::with_capacity(vectors.len() / self.dim * k);
        for v in vectors.chunks_exact(self.dim) {
            for axis in self.components.chunks_exact(self.dim) {
                out.push(
                    v.iter()
                        .zip(&self.mean)
                        .zip(axis)
                        .map(|((&x, m), a)| (f64::from(x) - m) * a)
                        .sum(),
                );
            }
        }
        Ok(out)
    }
}

/// The 2-D PCA map of latents, with the fitted PCA (for its explained variance ratios).
pub fn pca_2d(vectors: &[f32], dim: usize) -> Result<(Pca, Vec<[f64; 2]>)> {
    let pca = Pca::fit(vectors, dim, 2)?;
    let xy = pca.transform(vectors)?;
    Ok((pca, xy.chunks_exact(2).map(|p| [p[0], p[1]]).collect()))
}

/// Settings of [`tsne_2d`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TsneConfig {
    /// Perplexity, the effective number of neighbours (default 30; needs at least
    /// `3 * perplexity + 1` latents).
    pub perplexity: f32,
    /// Gradient-descent epochs (default 1000).
    pub epochs: usize,
    /// Barnes-Hut accuracy, greater than 0; smaller is more exact and slower (default 0.5).
    pub theta: f32,
}

impl Default for TsneConfig {
    fn default() -> Self {
        TsneConfig {
            perplexity: 30.0,
            epochs: 1000,
            theta: 0.5,
        }
    }
}

/// The 2-D t-SNE map of latents (Euclidean distances, Barnes-Hut, `bhtsne` crate). The
/// starting layout is the PCA map scaled to a standard deviation of 1e-4 along its first axis
/// (as scikit-learn's `init="pca"`), not a random one, so repeated runs start alike; the
/// parallel gradient can still differ in the last bits between runs.
pub fn tsne_2d(vectors: &[f32], dim: usize, config: &TsneConfig) -> Result<Vec<[f64; 2]>> {
    check_vectors(vectors, dim, 2)?;
    let n = vectors.len() / dim;
    let p = config.perplexity;
    if !(p.is_finite() && p > 0.0 && config.theta.is_finite() && config.theta > 0.0) {
        return Err(Error::setting(
            "t-SNE",
            format!("perplexity {p} and theta {} must be positive", config.theta),
        ));
    }
    // bhtsne asks for 3 * perplexity neighbours per point (and panics without them)
    if n - 1 < 3 * (p as usize) + 1 {
        return Err(Error::setting(
            "t-SNE perplexity",
            format!(
                "{p} needs more than {} latents, there are {n}; lower the perplexity to at most {}",
                3 * (p as usize) + 1,
                (n.saturating_sub(2) / 3).max(1)
            ),
        ));
    }
    let (_, pca) = pca_2d(vectors, dim)?;
    let sd = (pca.iter().map(|q| q[0] * q[0]).sum::<f64>() / n as f64).sqrt();
    let scale = if sd > 0.0 { 1e-4 / sd } else { 0.0 };
    let init: Vec<f32> = pca
        .iter()
        .flat_map(|q| [(q[0] * scale) as f32, (q[1] * scale) as f32])
        .collect();
    let samples: Vec<&[f32]> = vectors.chunks_exact(dim).collect();
    let mut tsne = bhtsne::tSNE::<f32, &[f32], 2>::new(&samples);
    tsne.perplexity(p)
        .epochs(config.epochs)
        .initial_embedding(init)
        .barnes_hut(config.theta, |a, b| {
            crate::search::squared_distance(a, b).sqrt()
        });
    let y = tsne.embedding();
    if y.iter().any(|v| !v.is_finite()) {
        return Err(Error::setting("t-SNE", "the embedding diverged (NaN)"));
    }
    Ok(y.chunks_exact(2)
        .map(|q| [f64::from(q[0]), f64::from(q[1])])
        .collect())
}

fn check_vectors(vectors: &[f32], dim: usize, min: usize) -> Result<()> {
    if dim == 0 || vectors.len() % dim != 0 {
        return Err(Error::setting(
            "latent vectors",
            format!("{} floats are not whole vectors of {dim}", vectors.len()),
        ));
    }
    if vectors.len() / dim < min {
        return Err(Error::setting(
            "latent vectors",
            format!("{} latents: need at least {min}", vectors.len() / dim),
        ));
    }
    if vectors.iter().any(|v| !v.is_finite()) {
        return Err(Error::setting("latent vectors", "NaN or infinite values"));
    }
    Ok(())
}

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
            ))
        }
    };
    let (w, h) = style.size;
    if w < SIDE + 200 || h < 200 {
        return Err(Error::setting(
            "latent map size",
            format!("{w}x{h} is too small (at least {}x200)", SIDE + 200),
        ));
    }
    if points
        .iter()
        .any(|p| !(p[0].is_finite() && p[1].is_finite()))
    {
        return Err(Error::setting("latent map", "NaN or infinite coordinates"));
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
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, Normal};

    fn unit(v: Vec<f64>) -> Vec<f64> {
        let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    }

    fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn pca_recovers_a_line() {
        let dim = 16;
        let dir = unit((0..dim).map(|i| (i as f64 - 7.0) / 3.0).collect());
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let v: Vec<f32> = (0..300)
            .flat_map(|_| {
                let t: f64 = rng.random::<f64>() * 10.0 - 5.0;
                dir.iter()
                    .map(move |d| (2.0 + t * d) as f32)
                    .collect::<Vec<_>>()
            })
            .collect();
        let pca = Pca::fit(&v, dim, 2).unwrap();
        // all the variance on the first axis (f32 rounding leaves ~1e-14)
        assert!(
            pca.explained_variance_ratio[0] > 1.0 - 1e-9,
            "{:?}",
            pca.explained_variance_ratio
        );
        assert!(pca.explained_variance_ratio[1] < 1e-9);
        assert!((dot(&pca.components[..dim], &dir).abs() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn pca_recovers_a_plane_and_its_variances() {
        let dim = 8;
        let u = unit(vec![1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0]);
        let w = unit(vec![1.0, -1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
        assert!(dot(&u, &w).abs() < 1e-15);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let (su, sw) = (
            Normal::new(0.0, 3.0).unwrap(),
            Normal::new(0.0, 1.0).unwrap(),
        );
        let mut coords = Vec::new();
        let v: Vec<f32> = (0..2000)
            .flat_map(|_| {
                let (a, b): (f64, f64) = (su.sample(&mut rng), sw.sample(&mut rng));
                coords.push((a, b));
                (0..dim)
                    .map(|i| (a * u[i] + b * w[i]) as f32)
                    .collect::<Vec<_>>()
            })
            .collect();
        let (pca, xy) = pca_2d(&v, dim).unwrap();
        let r = &pca.explained_variance_ratio;
        assert!(r[0] + r[1] > 1.0 - 1e-9, "{r:?}");
        // the axes are u and w (up to sign), and the ratio is the sample variance ratio
        assert!((dot(&pca.components[..dim], &u).abs() - 1.0).abs() < 1e-3);
        assert!((dot(&pca.components[dim..], &w).abs() - 1.0).abs() < 1e-3);
        let var = |f: &dyn Fn(&(f64, f64)) -> f64| {
            let m = coords.iter().map(f).sum::<f64>() / coords.len() as f64;
            coords.iter().map(|c| (f(c) - m).powi(2)).sum::<f64>() / coords.len() as f64
        };
        let (va, vb) = (var(&|c| c.0), var(&|c| c.1));
        assert!(
            (r[0] - va / (va + vb)).abs() < 2e-3,
            "{} vs {}",
            r[0],
            va / (va + vb)
        );
        // projected coordinates have the explained variances
        let m = xy.iter().map(|p| p[0]).sum::<f64>() / xy.len() as f64;
        let v0 = xy.iter().map(|p| (p[0] - m).powi(2)).sum::<f64>() / xy.len() as f64;
        assert!((v0 - pca.explained_variance[0]).abs() < 1e-6 * v0);
    }

    #[test]
    fn pca_rejects_bad_input() {
        assert!(Pca::fit(&[1.0, 2.0], 2, 2).is_err()); // one latent
        assert!(Pca::fit(&[1.0, 2.0, 3.0, 4.0], 2, 3).is_err());
        assert!(Pca::fit(&[1.0, f32::NAN, 3.0, 4.0], 2, 2).is_err());
        // identical latents: no variance, ratios 0, no NaN
        let p = Pca::fit(&[1.0; 8], 2, 2).unwrap();
        assert_eq!(p.explained_variance_ratio, vec![0.0, 0.0]);
    }

    /// Three separated blobs stay separated in the t-SNE map: every point's nearest map
    /// neighbour belongs to its own blob.
    #[test]
    fn tsne_keeps_blobs_apart() {
        let dim = 16;
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let noise = Normal::new(0.0f32, 0.2).unwrap();
        let mut v = Vec::new();
        let mut truth = Vec::new();
        for i in 0..90 {
            let b = i % 3;
            for d in 0..dim {
                v.push(if d == b { 5.0 } else { 0.0 } + noise.sample(&mut rng));
            }
            truth.push(b);
        }
        let config = TsneConfig {
            perplexity: 10.0,
            epochs: 500,
            theta: 0.5,
        };
        let y = tsne_2d(&v, dim, &config).unwrap();
        assert_eq!(y.len(), 90);
        for i in 0..90 {
            let nearest = (0..90)
                .filter(|&j| j != i)
                .min_by(|&a, &b| {
                    let d = |j: usize| (y[i][0] - y[j][0]).powi(2) + (y[i][1] - y[j][1]).powi(2);
                    d(a).total_cmp(&d(b))
                })
                .unwrap();
            assert_eq!(truth[nearest], truth[i], "point {i}");
        }
        let too_few = TsneConfig {
            perplexity: 30.0,
            ..config
        };
        let e = tsne_2d(&v, dim, &too_few).unwrap_err().to_string();
        assert!(e.contains("lower the perplexity"), "{e}");
    }

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
