//! The in-memory image every other module works on: planar `f32` samples with their shape and
//! the type they were stored as, and the one loader that picks PNG/JPEG/TIFF or FITS by the
//! file's first bytes and decodes it within [`crate::limits`].

use std::path::Path;

use crate::limits::Limits;
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

/// The file formats DeepGalaxy reads as images, told apart by their first bytes (a file named
/// `.png` may hold anything).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// PNG: `\x89PNG\r\n\x1a\n`.
    Png,
    /// JPEG: `FF D8 FF`.
    Jpeg,
    /// TIFF or BigTIFF: `II*\0`, `MM\0*`, `II+\0`, `MM\0+`.
    Tiff,
    /// FITS: the first card is `SIMPLE  =`.
    Fits,
}

impl Format {
    /// The format whose magic number `bytes` start with, if any.
    pub fn sniff(bytes: &[u8]) -> Option<Format> {
        const MAGIC: [(&[u8], Format); 7] = [
            (b"\x89PNG\r\n\x1a\n", Format::Png),
            (b"\xff\xd8\xff", Format::Jpeg),
            (b"II*\0", Format::Tiff),
            (b"MM\0*", Format::Tiff),
            (b"II+\0", Format::Tiff),
            (b"MM\0+", Format::Tiff),
            (b"SIMPLE  =", Format::Fits),
        ];
        MAGIC
            .iter()
            .find(|(magic, _)| bytes.starts_with(magic))
            .map(|&(_, f)| f)
    }
}

/// Loads an image file (PNG, JPEG, TIFF or FITS, told by its content) within the limits set in
/// the environment ([`crate::limits`]). An alpha channel is dropped; 8/16-bit samples keep
/// their stored values (0..255, 0..65535).
pub fn load(path: &Path) -> Result<Image> {
    load_with(path, &Limits::from_env()?)
}

/// [`load`] within explicit `limits`.
pub fn load_with(path: &Path, limits: &Limits) -> Result<Image> {
    let bytes = crate::io::read_bytes_capped(path, limits.max_file_bytes)?;
    decode_with(path, &bytes, limits)
}

/// Decodes the bytes of an image file (see [`load`]); `path` only names the source in errors.
pub fn decode(path: &Path, bytes: &[u8]) -> Result<Image> {
    decode_with(path, bytes, &Limits::from_env()?)
}

/// [`decode`] within explicit `limits`: the size an image declares is checked before any pixel
/// is decoded, and the decoder itself is held to the byte limit.
pub fn decode_with(path: &Path, bytes: &[u8], limits: &Limits) -> Result<Image> {
    let format = match Format::sniff(bytes) {
        Some(Format::Fits) => return crate::fits::read_bytes(path, bytes, limits),
        Some(Format::Png) => ::image::ImageFormat::Png,
        Some(Format::Jpeg) => ::image::ImageFormat::Jpeg,
        Some(Format::Tiff) => ::image::ImageFormat::Tiff,
        None => {
            let head: String = bytes
                .iter()
                .take(8)
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ");
            return Err(Error::invalid(
                path,
                format!(
                    "not a PNG, JPEG, TIFF or FITS file (it starts with [{head}], \
                     which is none of their signatures)"
                ),
            ));
        }
    };
    let failed = |source| Error::Decode {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = ::image::ImageReader::with_format(std::io::Cursor::new(bytes), format);
    let mut decoder_limits = ::image::Limits::default();
    decoder_limits.max_alloc = Some(limits.max_image_bytes);
    reader.limits(decoder_limits);
    let decoder = reader.into_decoder().map_err(failed)?;
    let (w, h) = ::image::ImageDecoder::dimensions(&decoder);
    let channels = match ::image::ImageDecoder::color_type(&decoder).channel_count() {
        1 | 2 => 1,
        _ => 3,
    };
    limits.check_image(path, channels, w.into(), h.into())?;
    let decoded = ::image::DynamicImage::from_decoder(decoder).map_err(failed)?;
    let n = w as usize * h as usize;
    use ::image::DynamicImage as D;
    let (channels, data, sample): (usize, Vec<f32>, SampleType) = match &decoded {
        D::ImageLuma8(b) => (1, planar(b.as_raw(), 1, 1, n), SampleType::U8),
        D::ImageLumaA8(b) => (1, planar(b.as_raw(), 2, 1, n), SampleType::U8),
        D::ImageLuma16(b) => (1, planar(b.as_raw(), 1, 1, n), SampleType::U16),
        D::ImageLumaA16(b) => (1, planar(b.as_raw(), 2, 1, n), SampleType::U16),
        D::ImageRgb8(b) => (3, planar(b.as_raw(), 3, 3, n), SampleType::U8),
        D::ImageRgb16(b) => (3, planar(b.as_raw(), 3, 3, n), SampleType::U16),
        D::ImageRgb32F(b) => (3, planar(b.as_raw(), 3, 3, n), SampleType::F32),
        D::ImageRgba8(b) => (3, planar(b.as_raw(), 4, 3, n), SampleType::U8),
        D::ImageRgba16(b) => (3, planar(b.as_raw(), 4, 3, n), SampleType::U16),
        D::ImageRgba32F(b) => (3, planar(b.as_raw(), 4, 3, n), SampleType::F32),
        other => (
            3,
            planar(other.to_rgb32f().as_raw(), 3, 3, n),
            SampleType::F32,
        ),
    };
    drop(decoded);
    Image::new(channels, h as usize, w as usize, data, sample)
}

/// The first `keep` of the `stride` interleaved (pixel-major) channels of `n` pixels, as planar
/// (channel-major) `f32`, written once into the output buffer.
fn planar<T: Copy + Into<f32>>(raw: &[T], stride: usize, keep: usize, n: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(keep * n);
    for c in 0..keep {
        out.extend(
            raw.iter()
                .skip(c)
                .step_by(stride)
                .take(n)
                .map(|&v| v.into()),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn encode<P: ::image::PixelWithColorType>(
        buf: &::image::ImageBuffer<P, Vec<P::Subpixel>>,
        format: ::image::ImageFormat,
    ) -> Vec<u8>
    where
        [P::Subpixel]: ::image::EncodableLayout,
    {
        let mut bytes = Vec::new();
        buf.write_to(&mut std::io::Cursor::new(&mut bytes), format)
            .unwrap();
        bytes
    }

    fn grey_png(w: u32, h: u32) -> Vec<u8> {
        let buf = ::image::GrayImage::from_fn(w, h, |x, y| ::image::Luma([(x * 7 + y) as u8]));
        encode(&buf, ::image::ImageFormat::Png)
    }

    /// CRC-32 (ISO-HDLC) as PNG chunks carry it.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in bytes {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }

    /// Writes `w x h` into a PNG's IHDR chunk and reseals its checksum.
    fn set_png_size(png: &mut [u8], w: u32, h: u32) {
        png[16..20].copy_from_slice(&w.to_be_bytes());
        png[20..24].copy_from_slice(&h.to_be_bytes());
        let crc = crc32(&png[12..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
    }

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

    #[test]
    fn formats_are_told_by_content_not_by_name() {
        let png = grey_png(3, 2);
        let img = decode(Path::new("really_a_png.fits"), &png).unwrap();
        assert_eq!((img.channels, img.height, img.width), (1, 2, 3));
        let e = decode(Path::new("big.png"), b"\0\0\0\0 this is not an image")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "big.png: not a PNG, JPEG, TIFF or FITS file (it starts with \
             [00 00 00 00 20 74 68 69], which is none of their signatures)"
        );
        assert_eq!(
            Format::sniff(b"SIMPLE  =                    T"),
            Some(Format::Fits)
        );
        assert_eq!(Format::sniff(b"\xff\xd8\xff\xe0"), Some(Format::Jpeg));
        assert_eq!(Format::sniff(b"MM\0*"), Some(Format::Tiff));
        assert_eq!(Format::sniff(b"SIMPLE"), None);
    }

    #[test]
    fn images_larger_than_the_limits_are_refused_before_decoding() {
        let png = grey_png(64, 64);
        let small = Limits {
            max_image_pixels: 4095,
            ..Limits::default()
        };
        let e = decode_with(Path::new("a.png"), &png, &small)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("a.png: the image is 64 x 64 pixels, more than the limit of 4095"),
            "{e}"
        );
        // a few hundred bytes that declare 20000 x 20000 pixels: refused at the header
        let mut huge = grey_png(4, 4);
        set_png_size(&mut huge, 20000, 20000);
        let e = decode_with(Path::new("huge.png"), &huge, &Limits::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("20000 x 20000 pixels, more than the limit of 67108864"),
            "{e}"
        );
        // the byte limit holds too: 64 x 64 RGB as f32 is 49152 bytes
        let rgb = encode(
            &::image::RgbImage::from_pixel(64, 64, ::image::Rgb([1, 2, 3])),
            ::image::ImageFormat::Png,
        );
        let tight = Limits {
            max_image_bytes: 49151,
            ..Limits::default()
        };
        let e = decode_with(Path::new("c.png"), &rgb, &tight)
            .unwrap_err()
            .to_string();
        assert!(e.contains("3 x 64 x 64 samples"), "{e}");
    }

    /// Mutated PNG, JPEG and TIFF files (bit flips, truncations, random header values) never
    /// panic or allocate past the limits: every one decodes or is an error naming the file.
    #[test]
    fn fuzzed_images_are_decoded_or_named_errors() {
        let grey16 = ::image::ImageBuffer::<::image::Luma<u16>, _>::from_fn(24, 20, |x, y| {
            ::image::Luma([(x * 2000 + y * 30) as u16])
        });
        let rgb = ::image::RgbImage::from_fn(20, 16, |x, y| ::image::Rgb([x as u8, y as u8, 9]));
        let rgba =
            ::image::RgbaImage::from_fn(8, 8, |x, y| ::image::Rgba([x as u8, y as u8, 1, 2]));
        let seeds = [
            grey_png(32, 32),
            encode(&grey16, ::image::ImageFormat::Png),
            encode(&rgba, ::image::ImageFormat::Png),
            encode(&rgb, ::image::ImageFormat::Jpeg),
            encode(&grey16, ::image::ImageFormat::Tiff),
            encode(&rgb, ::image::ImageFormat::Tiff),
        ];
        let limits = Limits {
            max_file_bytes: 1 << 20,
            max_image_pixels: 1 << 16,
            max_image_bytes: 1 << 21,
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(89);
        let path = Path::new("fuzz.png");
        let mut n = 0;
        for round in 0..3000 {
            let seed = round % seeds.len();
            let mut b = seeds[seed].clone();
            match rng.random_range(0..4) {
                0 => {
                    for _ in 0..rng.random_range(1..8) {
                        let at = rng.random_range(0..b.len());
                        b[at] ^= 1 << rng.random_range(0..8);
                    }
                }
                1 => b.truncate(rng.random_range(0..b.len())),
                2 if seed < 3 => {
                    // a PNG claiming another size, with a valid header checksum
                    let side = |rng: &mut rand_chacha::ChaCha8Rng| match rng.random_range(0..3) {
                        0 => rng.random_range(0..64),
                        1 => rng.random_range(0..100_000),
                        _ => rng.random(),
                    };
                    let (w, h) = (side(&mut rng), side(&mut rng));
                    set_png_size(&mut b, w, h);
                }
                _ => {
                    // a random 16- or 32-bit value somewhere in the header
                    let at = rng.random_range(0..b.len().min(64) - 4);
                    let v: u32 = rng.random();
                    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
                }
            }
            match decode_with(path, &b, &limits) {
                Ok(img) => assert!(
                    img.data.len() as u64 * 4 <= limits.max_image_bytes,
                    "{} samples",
                    img.data.len()
                ),
                Err(e) => assert!(e.to_string().starts_with("fuzz.png"), "{e}"),
            }
            n += 1;
        }
        eprintln!("image fuzz: {n} cases");
        assert_eq!(n, 3000);
    }
}
