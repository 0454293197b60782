//! The similarity gallery: a PNG showing a query image and its nearest library images, each
//! with a caption (name, class label, time in Myr, latent distance, SSIM to the query), as
//! the paper's recommendation figures do.
//!
//! Images are shown as given (normally the preprocessed model input, so the reader sees what
//! the model saw), each stretched from its own minimum to maximum; NaN pixels are black. One
//! channel is grey, three are RGB, other counts show the first channel. Tiles keep the image's
//! aspect ratio. The query's tile has a red frame, the neighbours' a grey one.

use std::path::Path;

use crate::Result;
use deepgalaxy_core::{Error, Image};
use plotters::prelude::*;

use crate::drawing::plot::{drawing_error, ensure_font, write_png, Canvas, FONT};

/// One picture of the gallery with what its caption says.
#[derive(Debug, Clone, Copy)]
pub struct Tile<'a> {
    /// The image.
    pub image: &'a Image,
    /// First caption line: the entry's id or the query's file name.
    pub name: &'a str,
    /// Timescale class, when known.
    pub label: Option<u32>,
    /// Time in Myr, when known (for the query: the kNN estimate).
    pub t_myr: Option<f64>,
    /// Spread of the time, shown as `± s` (the query's kNN spread).
    pub t_spread: Option<f64>,
    /// Latent distance to the query (neighbours).
    pub distance: Option<f32>,
    /// SSIM to the query (neighbours).
    pub ssim: Option<f64>,
}

impl Tile<'_> {
    /// The caption lines (at most three; fields that are `None` are left out).
    pub fn caption(&self) -> Vec<String> {
        let mut lines = vec![shorten(self.name, 24)];
        let mut second = Vec::new();
        if let Some(l) = self.label {
            second.push(format!("class {l}"));
        }
        match (self.t_myr, self.t_spread) {
            (Some(t), Some(s)) => second.push(format!("{t:.0} ± {s:.0} Myr")),
            (Some(t), None) => second.push(format!("{t:.1} Myr")),
            _ => {}
        }
        if !second.is_empty() {
            lines.push(second.join(" · "));
        }
        let mut third = Vec::new();
        if let Some(d) = self.distance {
            third.push(format!("d = {d:.3}"));
        }
        if let Some(s) = self.ssim {
            third.push(format!("SSIM {s:.3}"));
        }
        if !third.is_empty() {
            lines.push(third.join(" · "));
        }
        lines
    }
}

fn shorten(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        s.to_string()
    } else {
        let tail: String = s.chars().skip(n - (max - 1)).collect();
        format!("…{tail}")
    }
}

/// Side of an image tile in pixels.
pub const TILE: u32 = 180;
/// Most tiles per row.
pub const COLUMNS: usize = 6;
const GAP: u32 = 14;
const CAPTION: u32 = 58;
const TITLE: u32 = 44;

/// Draws the gallery: `query` first, then `neighbours`, in rows of up to [`COLUMNS`].
pub fn render_gallery(
    title: &str,
    query: &Tile<'_>,
    neighbours: &[Tile<'_>],
) -> Result<image::RgbImage> {
    let tiles: Vec<&Tile<'_>> = std::iter::once(query).chain(neighbours).collect();
    let columns = tiles.len().min(COLUMNS) as u32;
    let rows = tiles.len().div_ceil(COLUMNS) as u32;
    let w = GAP + columns * (TILE + GAP);
    let h = TITLE + rows * (TILE + CAPTION + GAP);
    let mut picture = image::RgbImage::from_pixel(w, h, image::Rgb([255, 255, 255]));
    for (i, tile) in tiles.iter().enumerate() {
        let (x, y) = origin(i);
        let frame = if i == 0 {
            [214, 39, 40]
        } else {
            [170, 170, 170]
        };
        blit(&mut picture, tile.image, x, y, frame);
    }
    ensure_font()?;
    let err = |e| drawing_error("gallery", e);
    let mut buf = picture.into_raw();
    {
        let root = Canvas::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.draw(&Text::new(
            title.to_string(),
            (GAP as i32, 12),
            (FONT, 20).into_font(),
        ))
        .map_err(err)?;
        let font = (FONT, 13).into_font();
        for (i, tile) in tiles.iter().enumerate() {
            let (x, y) = origin(i);
            for (line, text) in tile.caption().into_iter().enumerate() {
                let pos = (x as i32, (y + TILE + 6 + 17 * line as u32) as i32);
                let style = if i == 0 && line == 0 {
                    (FONT, 13).into_font().color(&RGBColor(214, 39, 40))
                } else {
                    font.color(&BLACK)
                };
                root.draw(&Text::new(text, pos, style)).map_err(err)?;
            }
        }
        root.present().map_err(err)?;
    }
    image::RgbImage::from_raw(w, h, buf)
        .ok_or_else(|| Error::setting("gallery", "picture buffer has the wrong size"))
        .map_err(Into::into)
}

/// [`render_gallery`] written to a PNG file (atomically).
pub fn write_gallery(
    path: &Path,
    title: &str,
    query: &Tile<'_>,
    neighbours: &[Tile<'_>],
) -> Result<()> {
    let picture = render_gallery(title, query, neighbours)
        .map_err(|e| Error::invalid(path, e.to_string()))?;
    write_png(path, &picture)
}

/// Several galleries (title, query, neighbours) stacked top to bottom in one PNG, for a search
/// with several queries.
pub fn write_galleries(path: &Path, rows: &[(String, Tile<'_>, Vec<Tile<'_>>)]) -> Result<()> {
    let pictures = rows
        .iter()
        .map(|(title, query, neighbours)| render_gallery(title, query, neighbours))
        .collect::<Result<Vec<_>>>()
        .map_err(|e| Error::invalid(path, e.to_string()))?;
    let w = pictures.iter().map(|p| p.width()).max().unwrap_or(1);
    let h = pictures.iter().map(|p| p.height()).sum::<u32>().max(1);
    let mut all = image::RgbImage::from_pixel(w, h, image::Rgb([255, 255, 255]));
    let mut y = 0;
    for p in &pictures {
        image::imageops::replace(&mut all, p, 0, i64::from(y));
        y += p.height();
    }
    write_png(path, &all)
}

/// Top-left corner of tile `i`.
fn origin(i: usize) -> (u32, u32) {
    let (r, c) = ((i / COLUMNS) as u32, (i % COLUMNS) as u32);
    (GAP + c * (TILE + GAP), TITLE + r * (TILE + CAPTION + GAP))
}

/// Draws `image` into the `TILE x TILE` square at (x, y), centred, aspect kept, nearest-pixel
/// sampling, with a 2-pixel frame around the square.
fn blit(picture: &mut image::RgbImage, image: &Image, x: u32, y: u32, frame: [u8; 3]) {
    let channels: Vec<&[f32]> = if image.channels == 3 {
        (0..3).map(|c| image.plane(c)).collect()
    } else {
        vec![image.plane(0); 3]
    };
    let (lo, hi) = channels
        .iter()
        .flat_map(|p| p.iter())
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let span = if hi > lo { hi - lo } else { 1.0 };
    let scale = (TILE as f32 / image.width as f32).min(TILE as f32 / image.height as f32);
    let (dw, dh) = (
        ((image.width as f32 * scale).round() as u32).clamp(1, TILE),
        ((image.height as f32 * scale).round() as u32).clamp(1, TILE),
    );
    let (ox, oy) = (x + (TILE - dw) / 2, y + (TILE - dh) / 2);
    for py in 0..dh {
        let sy = ((py as f32 + 0.5) / scale) as usize;
        let sy = sy.min(image.height - 1);
        for px in 0..dw {
            let sx = (((px as f32 + 0.5) / scale) as usize).min(image.width - 1);
            let mut rgb = [0u8; 3];
            for (c, plane) in channels.iter().enumerate() {
                let v = plane[sy * image.width + sx];
                rgb[c] = if v.is_finite() {
                    (((v - lo) / span).clamp(0.0, 1.0) * 255.0).round() as u8
                } else {
                    0
                };
            }
            picture.put_pixel(ox + px, oy + py, image::Rgb(rgb));
        }
    }
    for i in 0..TILE + 4 {
        for (fx, fy) in [
            (x + i, y),
            (x + i, y + 1),
            (x + i, y + TILE + 2),
            (x + i, y + TILE + 3),
            (x, y + i),
            (x + 1, y + i),
            (x + TILE + 2, y + i),
            (x + TILE + 3, y + i),
        ] {
            let (fx, fy) = (fx.saturating_sub(2), fy.saturating_sub(2));
            if fx < picture.width() && fy < picture.height() {
                picture.put_pixel(fx, fy, image::Rgb(frame));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deepgalaxy_core::SampleType;

    fn blob(h: usize, w: usize, cx: f32) -> Image {
        let data = (0..h * w)
            .map(|i| {
                let (y, x) = ((i / w) as f32, (i % w) as f32);
                (-((x - cx).powi(2) + (y - h as f32 / 2.0).powi(2)) / 40.0).exp()
            })
            .collect();
        Image::new(1, h, w, data, SampleType::F32).unwrap()
    }

    #[test]
    fn captions_say_what_is_known() {
        let img = blob(16, 16, 8.0);
        let t = Tile {
            image: &img,
            name: "s_0.5_m_1_cam03_snap042",
            label: Some(42),
            t_myr: Some(210.0),
            t_spread: None,
            distance: Some(0.123_45),
            ssim: Some(0.9123),
        };
        assert_eq!(
            t.caption(),
            vec![
                "s_0.5_m_1_cam03_snap042".to_string(),
                "class 42 · 210.0 Myr".into(),
                "d = 0.123 · SSIM 0.912".into()
            ]
        );
        let q = Tile {
            name: "hst/arp_220_f814w_drizzled.fits",
            label: None,
            t_myr: Some(212.4),
            t_spread: Some(12.6),
            distance: None,
            ssim: None,
            ..t
        };
        assert_eq!(
            q.caption(),
            vec![
                "…220_f814w_drizzled.fits".to_string(),
                "212 ± 13 Myr".into()
            ]
        );
    }

    #[test]
    fn gallery_png_has_the_grid_and_the_pictures() {
        let query = blob(64, 64, 30.0);
        let neighbours: Vec<Image> = (0..7)
            .map(|i| blob(37, 50, 10.0 + 4.0 * i as f32))
            .collect();
        let q = Tile {
            image: &query,
            name: "query.png",
            label: None,
            t_myr: Some(100.0),
            t_spread: Some(5.0),
            distance: None,
            ssim: None,
        };
        let tiles: Vec<Tile<'_>> = neighbours
            .iter()
            .enumerate()
            .map(|(i, img)| Tile {
                image: img,
                name: "neighbour",
                label: Some(i as u32),
                t_myr: Some(5.0 * i as f64),
                t_spread: None,
                distance: Some(0.1 * i as f32),
                ssim: Some(0.9),
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gallery.png");
        write_gallery(&path, "Nearest simulated frames", &q, &tiles).unwrap();
        if let Some(keep) = std::env::var_os("DEEPGALAXY_KEEP_PNG") {
            std::fs::copy(&path, Path::new(&keep).join("gallery.png")).unwrap();
        }
        let img = image::open(&path).unwrap().to_rgb8();
        // 8 tiles: two rows of up to six
        let w = GAP + 6 * (TILE + GAP);
        let h = TITLE + 2 * (TILE + CAPTION + GAP);
        assert_eq!(img.dimensions(), (w, h));
        let px: Vec<f64> = img.as_raw().iter().map(|&b| f64::from(b)).collect();
        let mean = px.iter().sum::<f64>() / px.len() as f64;
        let var = px.iter().map(|p| (p - mean).powi(2)).sum::<f64>() / px.len() as f64;
        assert!(var > 100.0, "{var}");
        // the query's brightest pixel is white at the blob centre, its frame red
        let (x0, y0) = origin(0);
        let centre = img.get_pixel(x0 + (30.5 * TILE as f32 / 64.0) as u32, y0 + TILE / 2);
        assert!(centre.0.iter().all(|&c| c > 240), "{centre:?}");
        assert_eq!(img.get_pixel(x0 - 2, y0 + 10).0, [214, 39, 40]);
        // a 37x50 neighbour is letterboxed: white above its picture inside the frame
        let (x1, y1) = origin(1);
        assert_eq!(img.get_pixel(x1 + TILE / 2, y1 + 5).0, [255, 255, 255]);
        // captions drew dark text below the tiles
        let dark = (y1 + TILE + 4..y1 + TILE + CAPTION)
            .flat_map(|y| (x1..x1 + TILE).map(move |x| (x, y)))
            .filter(|&(x, y)| img.get_pixel(x, y).0.iter().all(|&c| c < 100))
            .count();
        assert!(dark > 50, "{dark}");
    }
}
