//! The in-memory image every other module works on: planar `f32` samples with their shape and
//! the type they were stored as, and the one loader that picks PNG/JPEG/TIFF or FITS.

use std::path::Path;

use crate::{Error, Result};

/// How the samples were stored on disk. It decides the "natural" intensity range used by
/// [`crate::preprocess::Scale::Auto`]: 8- and 16-bit pictures have one (0..255, 0..65535);
/// FITS data and floats do not, and are scaled from their own values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SampleType {
    /// 8-bit unsigned picture (PNG, JPEG, TIFF).
    U8,
    /// 16-bit unsigned picture (PNG, TIFF).
    U16,
    /// 32-bit float picture (TIFF) or an image computed in memory.
    F32,
    /// FITS data with this BITPIX (after BSCALE/BZERO, held as `f32`).
    Fits {
        /// The FITS BITPIX value: 8, 16, 32, 64, -32 or -64.
        bitpix: i8,
    },
}

impl SampleType {
    /// The full range of the stored type, when it has a meaningful one.
    pub fn natural_range(self) -> Option<(f32, f32)> {
        match self {
            SampleType::U8 => Some((0.0, 255.0)),
            SampleType::U16 => Some((0.0, 65535.0)),
            SampleType::F32 | SampleType::Fits { .. } => None,
        }
    }

    /// A short name for reports (`u8`, `u16`, `f32`, `fits bitpix 16`).
    pub fn name(self) -> String {
        match self {
            SampleType::U8 => "u8".into(),
            SampleType::U16 => "u16".into(),
            SampleType::F32 => "f32".into(),
            SampleType::Fits { bitpix } => format!("fits bitpix {bitpix}"),
        }
    }
}

/// A planar (channel, row, column) `f32` image. Row 0 is the first row stored in the file
/// (the top of a PNG; for FITS, the first row of the data array, as astropy returns it).
/// Missing pixels (FITS BLANK, NaN) are NaN here; [`crate::preprocess`] decides what they
/// become.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// Number of planes: 1 (grey), 3 (RGB) or the depth of a FITS cube.
    pub channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// `channels * height * width` samples, plane after plane.
    pub data: Vec<f32>,
    /// How the samples were stored.
    pub sample: SampleType,
}

impl Image {
    /// Builds an image, checking that `data` holds `channels * height * width` samples.
    pub fn new(
        channels: usize,
        height: usize,
        width: usize,
        data: Vec<f32>,
        sample: SampleType,
    ) -> Result<Image> {
        let expected = channels
            .checked_mul(height)
            .and_then(|n| n.checked_mul(width));
        if channels == 0 || height == 0 || width == 0 || expected != Some(data.len()) {
            return Err(Error::setting(
                "image shape",
                format!(
                    "{channels}x{height}x{width} does not match {} samples",
                    data.len()
                ),
            ));
        }
        Ok(Image {
            channels,
            height,
            width,
            data,
            sample,
        })
    }

    /// The samples of plane `c`.
    pub fn plane(&self, c: usize) -> &[f32] {
        let n = self.height * self.width;
        &self.data[c * n..(c + 1) * n]
    }

    /// Smallest and largest finite sample, or `None` if there is none.
    pub fn finite_range(&self) -> Option<(f32, f32)> {
        self.data
            .iter()
            .filter(|v| v.is_finite())
            .fold(None, |acc, &v| match acc {
                None => Some((v, v)),
                Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
            })
    }

    /// Number of NaN or infinite samples.
    pub fn count_nonfinite(&self) -> usize {
        self.data.iter().filter(|v| !v.is_finite()).count()
    }
}

/// True when the file name says FITS (`.fits`, `.fit`, `.fts`, any case).
pub fn is_fits_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| matches!(e.to_ascii_lowercase().as_str(), "fits" | "fit" | "fts"))
        .unwrap_or(false)
}

/// Loads an image file: FITS by extension, anything else by its content (PNG, JPEG, TIFF).
/// An alpha channel is dropped; 8/16-bit samples keep their stored values (0..255, 0..65535).
pub fn load(path: &Path) -> Result<Image> {
    if is_fits_path(path) {
        return crate::fits::read(path);
    }
    let bytes = crate::io::read_bytes(path)?;
    decode(path, &bytes)
}

/// Decodes PNG/JPEG/TIFF bytes; `path` only names the source in errors.
pub fn decode(path: &Path, bytes: &[u8]) -> Result<Image> {
    let decoded = ::image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?
        .decode()
        .map_err(|source| Error::Decode {
            path: path.to_path_buf(),
            source,
        })?;
    let (w, h) = (decoded.width() as usize, decoded.height() as usize);
    use ::image::DynamicImage as D;
    let (channels, interleaved, sample): (usize, Vec<f32>, SampleType) = match decoded {
        D::ImageLuma8(b) => (
            1,
            b.pixels().map(|p| p.0[0] as f32).collect(),
            SampleType::U8,
        ),
        D::ImageLumaA8(b) => (
            1,
            b.pixels().map(|p| p.0[0] as f32).collect(),
            SampleType::U8,
        ),
        D::ImageLuma16(b) => (
            1,
            b.pixels().map(|p| p.0[0] as f32).collect(),
            SampleType::U16,
        ),
        D::ImageLumaA16(b) => (
            1,
            b.pixels().map(|p| p.0[0] as f32).collect(),
            SampleType::U16,
        ),
        D::ImageRgb8(b) => (
            3,
            b.into_raw().into_iter().map(f32::from).collect(),
            SampleType::U8,
        ),
        D::ImageRgb16(b) => (
            3,
            b.into_raw().into_iter().map(f32::from).collect(),
            SampleType::U16,
        ),
        D::ImageRgb32F(b) => (3, b.into_raw(), SampleType::F32),
        D::ImageRgba8(b) => (
            3,
            rgb_of(b.pixels().map(|p| p.0.map(f32::from))),
            SampleType::U8,
        ),
        D::ImageRgba16(b) => (
            3,
            rgb_of(b.pixels().map(|p| p.0.map(f32::from))),
            SampleType::U16,
        ),
        D::ImageRgba32F(b) => (3, rgb_of(b.pixels().map(|p| p.0)), SampleType::F32),
        other => (3, other.to_rgb32f().into_raw(), SampleType::F32),
    };
    Image::new(channels, h, w, planar(&interleaved, channels), sample)
}

fn rgb_of(pixels: impl Iterator<Item = [f32; 4]>) -> Vec<f32> {
    pixels.flat_map(|p| [p[0], p[1], p[2]]).collect()
}

/// Interleaved (pixel-major) samples to planar (channel-major).
fn planar(interleaved: &[f32], channels: usize) -> Vec<f32> {
    if channels == 1 {
        return interleaved.to_vec();
    }
    let n = interleaved.len() / channels;
    let mut out = vec![0.0; interleaved.len()];
    for (i, px) in interleaved.chunks_exact(channels).enumerate() {
        for (c, &v) in px.iter().enumerate() {
            out[c * n + i] = v;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rgb_png_round_trips_to_planar_values() {
        let mut buf = ::image::RgbImage::new(3, 2);
        for (x, y, p) in buf.enumerate_pixels_mut() {
            *p = ::image::Rgb([x as u8, y as u8 * 10, 200]);
        }
        let mut bytes = Vec::new();
        buf.write_to(
            &mut std::io::Cursor::new(&mut bytes),
            ::image::ImageFormat::Png,
        )
        .unwrap();
        let img = decode(Path::new("t.png"), &bytes).unwrap();
        assert_eq!((img.channels, img.height, img.width), (3, 2, 3));
        assert_eq!(img.plane(0), &[0.0, 1.0, 2.0, 0.0, 1.0, 2.0]);
        assert_eq!(img.plane(1), &[0.0, 0.0, 0.0, 10.0, 10.0, 10.0]);
        assert!(img.plane(2).iter().all(|&v| v == 200.0));
        assert_eq!(img.sample, SampleType::U8);
    }

    #[test]
    fn sixteen_bit_grey_keeps_its_values() {
        let buf = ::image::ImageBuffer::<::image::Luma<u16>, _>::from_raw(2, 1, vec![0u16, 65535])
            .unwrap();
        let mut bytes = Vec::new();
        buf.write_to(
            &mut std::io::Cursor::new(&mut bytes),
            ::image::ImageFormat::Tiff,
        )
        .unwrap();
        let img = decode(Path::new("t.tif"), &bytes).unwrap();
        assert_eq!(img.data, vec![0.0, 65535.0]);
        assert_eq!(img.sample, SampleType::U16);
    }
}
