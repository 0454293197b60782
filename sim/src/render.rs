//! Star particles to grey images: adaptive Gaussian splatting and one brightness scale.
//!
//! Each star is spread with a Gaussian whose width follows the local projected star density
//! (about 8 neighbours inside one smoothing length, measured on a 5x5-pixel box around the
//! star), so dense centres stay sharp and sparse tidal tails stay smooth instead of becoming
//! isolated dots. Pixel values are the stellar surface density on one scale for every image
//! of a dataset ([`Brightness`]): with a mass-to-light ratio of 1 it is the surface
//! brightness in Lsun/pc^2, so a brighter, bigger or more massive galaxy looks so.

use crate::camera::Camera;
use crate::error::{Error, Result};
use crate::units::MASS_MSUN;
use std::path::Path;

/// Largest accepted image side in pixels.
pub const MAX_SIZE: u32 = 2048;

/// Brightness stretch of `x`, the surface density as a fraction of [`Brightness::full_scale`]
/// (clipped to [0, 1]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Stretch {
    /// ln(1 + 1000 x) / ln(1001): three decades of surface density.
    Log,
    /// asinh(100 x) / asinh(100): linear in the faint parts, logarithmic in the bright.
    Asinh,
    /// x itself: pixel values proportional to the mass (use 16 bits).
    Linear,
}

impl Stretch {
    /// The name written into catalogs and image metadata.
    pub fn name(&self) -> &'static str {
        match self {
            Stretch::Log => "log",
            Stretch::Asinh => "asinh",
            Stretch::Linear => "linear",
        }
    }
}

/// Default full scale of the brightness: 2,000 Msun/pc^2, about the default primary disk's
/// central surface density (1,592 Msun/pc^2), so an undisturbed disk's centre is near white
/// and merging nuclei saturate; the log stretch then reaches down to 2 Msun/pc^2.
pub const FULL_SCALE_MSUN_PC2: f64 = 2e3;

/// How surface density becomes pixel values, the same for every image of a dataset.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Brightness {
    /// The stretch.
    pub stretch: Stretch,
    /// Surface density shown as full white, Msun/pc^2 (with a mass-to-light ratio of 1,
    /// Lsun/pc^2); denser pixels saturate.
    pub full_scale: f64,
    /// Pixel side, kpc.
    pub kpc_per_pixel: f64,
}

/// Bits per grey pixel in the PNG files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BitDepth {
    /// 8-bit grey.
    Eight,
    /// 16-bit grey.
    Sixteen,
}

/// Neighbours inside one smoothing length.
const NEIGHBOURS: f64 = 8.0;
/// Half width of the box that measures the local density (pixels).
const DENSITY_BOX: i64 = 2;

/// Projected stellar surface density seen by `camera`, `size` x `size` pixels covering
/// [-half_width, half_width]^2 (kpc), row 0 at the top. Mass is conserved for stars whose
/// kernel lies inside the frame.
pub fn surface_density(
    pos: &[[f64; 3]],
    mass: &[f64],
    camera: &Camera,
    size: usize,
    half_width: f64,
) -> Vec<f32> {
    let scale = size as f64 / (2.0 * half_width);
    let pix: Vec<(f64, f64)> = pos
        .iter()
        .map(|&x| {
            let (u, v) = camera.project(x);
            ((u + half_width) * scale, (half_width - v) * scale)
        })
        .collect();
    let n = size as i64;
    let mut counts = vec![0u32; size * size];
    for &(px, py) in &pix {
        let (ix, iy) = (px.floor() as i64, py.floor() as i64);
        if ix >= 0 && iy >= 0 && ix < n && iy < n {
            counts[(iy * n + ix) as usize] += 1;
        }
    }
    // Summed-area table for O(1) box counts.
    let w = size + 1;
    let mut sat = vec![0u64; w * w];
    for y in 0..size {
        let mut row = 0u64;
        for x in 0..size {
            row += counts[y * size + x] as u64;
            sat[(y + 1) * w + x + 1] = sat[y * w + x + 1] + row;
        }
    }
    let box_count = |ix: i64, iy: i64| -> f64 {
        let x0 = (ix - DENSITY_BOX).clamp(0, n) as usize;
        let x1 = (ix + DENSITY_BOX + 1).clamp(0, n) as usize;
        let y0 = (iy - DENSITY_BOX).clamp(0, n) as usize;
        let y1 = (iy + DENSITY_BOX + 1).clamp(0, n) as usize;
        (sat[y1 * w + x1] + sat[y0 * w + x0] - sat[y0 * w + x1] - sat[y1 * w + x0]) as f64
    };
    let box_area = ((2 * DENSITY_BOX + 1) * (2 * DENSITY_BOX + 1)) as f64;
    let h_max = (size as f64 / 24.0).max(1.0);
    let mut img = vec![0.0f64; size * size];
    let mut weights: Vec<(usize, f64)> = Vec::new();
    for (k, &(px, py)) in pix.iter().enumerate() {
        let (ix, iy) = (px.floor() as i64, py.floor() as i64);
        let density = box_count(ix, iy).max(1.0) / box_area;
        let h = (NEIGHBOURS / (std::f64::consts::PI * density))
            .sqrt()
            .clamp(0.6, h_max);
        let sigma = 0.5 * h;
        let r = (3.0 * sigma).ceil() as i64;
        if ix + r < 0 || iy + r < 0 || ix - r >= n || iy - r >= n {
            continue;
        }
        weights.clear();
        let mut total = 0.0;
        let inv = 1.0 / (2.0 * sigma * sigma);
        for y in iy - r..=iy + r {
            let dy = y as f64 + 0.5 - py;
            for x in ix - r..=ix + r {
                let dx = x as f64 + 0.5 - px;
                let wgt = (-(dx * dx + dy * dy) * inv).exp();
                total += wgt;
                if x >= 0 && y >= 0 && x < n && y < n {
                    weights.push(((y * n + x) as usize, wgt));
                }
            }
        }
        // Normalise on the whole (unclipped) kernel so stars at the frame edge do not brighten.
        let norm = mass[k] / total;
        for &(i, wgt) in &weights {
            img[i] += wgt * norm;
        }
    }
    img.into_iter().map(|v| v as f32).collect()
}

/// Surface density in Msun/pc^2 (a surface brightness in Lsun/pc^2 at a mass-to-light ratio
/// of 1) from the mass per pixel `img` (internal mass units) on pixels of `kpc_per_pixel`.
pub fn surface_brightness(img: &[f32], kpc_per_pixel: f64) -> Vec<f64> {
    let per = MASS_MSUN / (kpc_per_pixel * 1000.0).powi(2);
    img.iter().map(|&v| f64::from(v) * per).collect()
}

/// Pixel values in [0, 1] from the surface brightness `sb` (Lsun/pc^2) on the scale
/// `brightness`: 0 and below are black, [`Brightness::full_scale`] or more is white.
pub fn to_pixels(sb: &[f64], brightness: &Brightness) -> Vec<f32> {
    sb.iter()
        .map(|&v| {
            let x = (v / brightness.full_scale).clamp(0.0, 1.0);
            let y = match brightness.stretch {
                Stretch::Log => (1.0 + 1000.0 * x).ln() / 1001f64.ln(),
                Stretch::Asinh => (100.0 * x).asinh() / 100f64.asinh(),
                Stretch::Linear => x,
            };
            y.clamp(0.0, 1.0) as f32
        })
        .collect()
}

/// Encodes values in [0, 1] as a grey PNG (row-major, `size` x `size`), with `text` as
/// tEXt chunks (keyword, value): the image's physical scale travels with it.
pub fn encode_png(
    values: &[f32],
    size: usize,
    bits: BitDepth,
    text: &[(&str, String)],
    path: &Path,
) -> Result<Vec<u8>> {
    let bad = |what: String| Error::Image {
        path: path.to_path_buf(),
        what,
    };
    if values.len() != size * size {
        return Err(bad("pixel buffer has the wrong length".into()));
    }
    let (depth, data) = match bits {
        BitDepth::Eight => (
            png::BitDepth::Eight,
            values.iter().map(|&v| (v * 255.0).round() as u8).collect(),
        ),
        BitDepth::Sixteen => (
            png::BitDepth::Sixteen,
            values
                .iter()
                .flat_map(|&v| ((v * 65535.0).round() as u16).to_be_bytes())
                .collect::<Vec<u8>>(),
        ),
    };
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, size as u32, size as u32);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(depth);
        for (keyword, value) in text {
            encoder
                .add_text_chunk((*keyword).to_string(), value.clone())
                .map_err(|e| bad(e.to_string()))?;
        }
        let mut writer = encoder.write_header().map_err(|e| bad(e.to_string()))?;
        writer
            .write_image_data(&data)
            .map_err(|e| bad(e.to_string()))?;
        writer.finish().map_err(|e| bad(e.to_string()))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::{hemisphere_cameras, CAMERAS};

    #[test]
    fn splatting_conserves_mass_inside_the_frame() {
        let pos: Vec<[f64; 3]> = (0..500)
            .map(|i| {
                let a = i as f64 * 0.37;
                [
                    a.cos() * (i % 7) as f64 * 0.3,
                    a.sin() * (i % 5) as f64 * 0.3,
                    0.1,
                ]
            })
            .collect();
        let mass = vec![0.002; pos.len()];
        for cam in hemisphere_cameras(CAMERAS) {
            let img = surface_density(&pos, &mass, &cam, 64, 10.0);
            let total: f64 = img.iter().map(|&v| v as f64).sum();
            assert!((total - 1.0).abs() < 1e-4, "total {total}");
        }
    }

    #[test]
    fn opposite_cameras_see_mirror_images() {
        use crate::camera::Camera;
        let pos: Vec<[f64; 3]> = (0..2000)
            .map(|i| {
                let a = i as f64 * 0.7;
                [a.sin() * 3.1, (a * 1.3).cos() * 2.3, (a * 0.9).sin() * 1.7]
            })
            .collect();
        let mass = vec![1e-3; pos.len()];
        let d = [0.3, -0.5, 0.8];
        let a = surface_density(&pos, &mass, &Camera::looking_from(d), 32, 5.0);
        let b = surface_density(&pos, &mass, &Camera::looking_from(d.map(|c| -c)), 32, 5.0);
        let mut differ = 0;
        for row in 0..32 {
            for col in 0..32 {
                if (a[row * 32 + col] - b[row * 32 + 31 - col]).abs() > 1e-6 {
                    differ += 1;
                }
            }
        }
        assert_eq!(differ, 0, "pixels that are not mirrored");
    }

    #[test]
    fn one_brightness_scale_for_every_image() {
        // 1 kpc pixels: the full scale of 10^4 Msun/pc^2 is 10^10 Msun, one internal unit
        let scale = |stretch| Brightness {
            stretch,
            full_scale: 1e4,
            kpc_per_pixel: 1.0,
        };
        let apply_brightness =
            |img: &[f32], b: &Brightness| to_pixels(&surface_brightness(img, b.kpc_per_pixel), b);
        let img = [0.0, 1e-4, 0.5, 2.0];
        for s in [Stretch::Log, Stretch::Asinh, Stretch::Linear] {
            let v = apply_brightness(&img, &scale(s));
            assert_eq!(v[0], 0.0);
            assert_eq!(v[3], 1.0, "saturated");
            assert!(v[1] > 0.0 && v[1] < v[2] && v[2] < 1.0, "{v:?}");
            // no per-image normalisation: a pixel's value does not depend on the others
            let alone = apply_brightness(&img[1..3], &scale(s));
            assert_eq!(&v[1..3], &alone[..]);
        }
        assert_eq!(
            apply_brightness(&[0.25], &scale(Stretch::Linear)),
            vec![0.25]
        );
        // twice the pixel side: the same mass is a quarter of the surface density
        let coarse = Brightness {
            kpc_per_pixel: 2.0,
            ..scale(Stretch::Linear)
        };
        assert_eq!(apply_brightness(&[0.5], &coarse), vec![0.125]);
    }

    #[test]
    fn png_round_trip_keeps_16_bit_values() {
        let values: Vec<f32> = (0..16).map(|i| i as f32 / 15.0).collect();
        let text = [("kpc_per_pixel", "0.5".to_string())];
        let png =
            encode_png(&values, 4, BitDepth::Sixteen, &text, Path::new("x.png")).expect("encodes");
        let info = png::Decoder::new(std::io::Cursor::new(&png))
            .read_info()
            .expect("png header");
        let chunks = &info.info().uncompressed_latin1_text;
        assert_eq!(chunks.len(), 1);
        assert_eq!(
            (&chunks[0].keyword[..], &chunks[0].text[..]),
            ("kpc_per_pixel", "0.5")
        );
        let img = image::load_from_memory(&png)
            .expect("decodes")
            .into_luma16();
        let want: Vec<u16> = values
            .iter()
            .map(|v| (v * 65535.0).round() as u16)
            .collect();
        assert_eq!(img.as_raw(), &want);
    }
}
