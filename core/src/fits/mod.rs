//! FITS images through `fitsrs`, and writing one float image ([`write`]).
//!
//! Which data is read: the first HDU, primary or IMAGE extension, that has at least two axes
//! (a primary HDU with `NAXIS = 0` followed by an image extension is the common case). A cube
//! (`NAXIS3 > 1`) becomes an image with `NAXIS3` planes; axes beyond the third must have length 1.
//!
//! Values: every BITPIX (8, 16, 32, 64, -32, -64) is decoded from big-endian and mapped to
//! physical values `BZERO + BSCALE * stored` (defaults 0 and 1), held as `f32`.
//!
//! Missing-pixel policy: an integer sample equal to `BLANK` becomes NaN, and float NaNs stay
//! NaN, so the [`Image`] marks exactly the pixels the file marks as undefined. What they turn
//! into for a network is decided once, by [`crate::preprocess::Missing`] (by default the
//! smallest finite value of the image, i.e. the sky background).
//!
//! A scaled value that overflows `f32` while the stored value was finite (`BZERO = 1e300`) is
//! an error naming the keyword, not a NaN pixel.
//!
//! `fitsrs` parses headers; the data unit is sliced from the file's bytes here so that a
//! truncated file is an error rather than a silently short image (`fitsrs`' pixel iterators
//! stop quietly at end of file). Every size a header declares is computed with checked
//! arithmetic and must fit in the file before the next HDU is looked at or a pixel is
//! allocated, and the image must fit within [`Limits`]: a header cannot make the reader loop,
//! wrap around or exhaust memory.

use std::io::Cursor;
use std::path::Path;

use fitsrs::card::Value;
use fitsrs::hdu::header::ValueMap;
use fitsrs::{Fits, HDU};

use crate::image::{Image, SampleType};
use crate::limits::Limits;
use crate::{Error, Result};

pub mod write;

/// Summary of one image HDU, for `deepgalaxy inspect`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HduInfo {
    /// Index (0 = primary).
    pub index: usize,
    /// `primary`, `image`, `bintable` or `table`.
    pub kind: String,
    /// Axis lengths, NAXIS1 first (empty for tables or an empty primary).
    pub naxis: Vec<u64>,
    /// BITPIX (0 for tables).
    pub bitpix: i8,
}

/// Lists the HDUs of a FITS file.
pub fn list_hdus(path: &Path) -> Result<Vec<HduInfo>> {
    let bytes = crate::io::read_bytes(path)?;
    let mut out = Vec::new();
    walk_hdus(path, &bytes, |index, hdu, _| {
        let (kind, naxis, bitpix) = match hdu {
            HDU::Primary(h) | HDU::XImage(h) => {
                let x = h.get_header().get_xtension();
                let kind = if matches!(hdu, HDU::Primary(_)) {
                    "primary"
                } else {
                    "image"
                };
                (kind, x.get_naxis().to_vec(), x.get_bitpix() as i8)
            }
            HDU::XBinaryTable(_) => ("bintable", vec![], 0),
            HDU::XASCIITable(_) => ("table", vec![], 0),
        };
        out.push(HduInfo {
            index,
            kind: kind.into(),
            naxis,
            bitpix,
        });
        Ok(None::<()>)
    })?;
    if out.is_empty() {
        return Err(Error::Fits {
            path: path.into(),
            hdu: 0,
            what: "no HDU found: not a FITS file".into(),
        });
    }
    Ok(out)
}

/// Reads the first image from FITS bytes within `limits`; `path` only names the source in
/// errors.
pub fn read_bytes(path: &Path, bytes: &[u8], limits: &Limits) -> Result<Image> {
    let (count, image) = walk_hdus(path, bytes, |index, hdu, offset| match hdu {
        HDU::Primary(h) | HDU::XImage(h) => {
            let naxis = h.get_header().get_xtension().get_naxis();
            if naxis.len() >= 2 && naxis.iter().all(|&n| n > 0) {
                let data = bytes.get(offset..).unwrap_or_default();
                decode_hdu(path, index, h.get_header(), data, limits).map(Some)
            } else {
                Ok(None)
            }
        }
        _ => Ok(None),
    })?;
    image.ok_or_else(|| {
        Error::invalid(
            path,
            format!(
                "no image found: none of the {count} HDU(s) is a primary or IMAGE extension with at least 2 axes"
            ),
        )
    })
}

/// Visits the HDUs in order with their index and the bytes of their data unit onwards (as an
/// offset into `bytes`), until `visit` returns a value. Before an HDU is visited, and before
/// `fitsrs` is asked for the next one (it skips the data unit by the header's sizes), the data
/// unit is checked to lie inside the file. Returns how many HDUs were visited and the value.
fn walk_hdus<T>(
    path: &Path,
    bytes: &[u8],
    mut visit: impl FnMut(usize, &HDU, usize) -> Result<Option<T>>,
) -> Result<(usize, Option<T>)> {
    let mut index = 0;
    for hdu in Fits::from_reader(Cursor::new(bytes)) {
        let hdu = hdu.map_err(|e| header_error(path, index, &e))?;
        let fits_err = |what: String| Error::Fits {
            path: path.into(),
            hdu: index,
            what,
        };
        let size = data_unit_bytes(&hdu).ok_or_else(|| {
            fits_err("the header's data size (NAXISn x BITPIX) overflows 64 bits".into())
        })?;
        let offset = usize::try_from(hdu.get_data_unit_byte_offset()).unwrap_or(usize::MAX);
        let held = bytes.len().saturating_sub(offset);
        if size > held as u64 {
            return Err(fits_err(format!(
                "data unit truncated: the header declares {size} bytes of data, the file holds {held}"
            )));
        }
        if let Some(found) = visit(index, &hdu, offset)? {
            return Ok((index + 1, Some(found)));
        }
        index += 1;
    }
    Ok((index, None))
}

/// Bytes in the data unit of `hdu`, as `fitsrs` counts them to find the next HDU, or `None`
/// when the header's sizes overflow.
fn data_unit_bytes(hdu: &HDU) -> Option<u64> {
    match hdu {
        HDU::Primary(h) | HDU::XImage(h) => {
            let x = h.get_header().get_xtension();
            if x.get_naxis().is_empty() {
                return Some(0);
            }
            x.get_naxis()
                .iter()
                .try_fold(x.get_bitpix().byte_size() as u64, |a, &n| a.checked_mul(n))
        }
        HDU::XBinaryTable(h) => {
            let v: &ValueMap = h.get_header();
            let n1: u64 = v.get_parsed("NAXIS1").ok()?;
            let n2: u64 = v.get_parsed("NAXIS2").ok()?;
            let pcount: u64 = v.get_parsed("PCOUNT").unwrap_or(0);
            n1.checked_mul(n2)?.checked_add(pcount)
        }
        HDU::XASCIITable(h) => {
            let x = h.get_header().get_xtension();
            x.get_naxis1().checked_mul(x.get_naxis2())
        }
    }
}

/// A header that fitsrs could not parse. Its own messages are terse, so the common causes (an
/// unsupported BITPIX, a header without its END card) are named explicitly.
fn header_error(path: &Path, hdu: usize, e: &fitsrs::error::Error) -> Error {
    use fitsrs::error::Error as F;
    let msg = e.to_string();
    let what = if matches!(
        e,
        F::Io(std::io::ErrorKind::UnexpectedEof) | F::FailReadingNextBytes
    ) {
        "the header has no END card: the file ends inside the header (truncated, or not FITS)"
            .to_string()
    } else if msg.contains("expected one of") || msg.contains("8, 16, 32, 64, -32") {
        format!("unsupported BITPIX (FITS allows 8, 16, 32, 64, -32, -64): {msg}")
    } else if msg.contains("80 bytes") || msg.contains("END") {
        format!("truncated or malformed header: {msg}")
    } else {
        format!("cannot parse header: {msg}")
    };
    Error::Fits {
        path: path.into(),
        hdu,
        what,
    }
}

fn number(values: &ValueMap, key: &str) -> Option<f64> {
    match values.get(key)? {
        Value::Integer { value, .. } => Some(*value as f64),
        Value::Float { value, .. } => Some(*value),
        _ => None,
    }
}

/// Decodes the image of the HDU whose header is `header` from `data`, its data unit onwards
/// (checked by [`walk_hdus`] to hold the declared size).
fn decode_hdu(
    path: &Path,
    hdu: usize,
    header: &fitsrs::hdu::header::Header<fitsrs::hdu::header::extension::image::Image>,
    data: &[u8],
    limits: &Limits,
) -> Result<Image> {
    let fits_err = |what: String| Error::Fits {
        path: path.into(),
        hdu,
        what,
    };
    let x = header.get_xtension();
    let naxis = x.get_naxis();
    if naxis.iter().skip(3).any(|&n| n != 1) {
        return Err(fits_err(format!(
            "{} axes {naxis:?}: only 2-D images and 3-D cubes are supported",
            naxis.len()
        )));
    }
    let planes = naxis.get(2).copied().unwrap_or(1);
    limits
        .check_image(path, planes, naxis[0], naxis[1])
        .map_err(|e| match e {
            Error::Invalid { what, .. } => fits_err(what),
            other => other,
        })?;
    // within the limits, so these fit in usize
    let (width, height, planes) = (naxis[0] as usize, naxis[1] as usize, planes as usize);
    let bitpix = x.get_bitpix();
    let size = bitpix.byte_size();
    let count = width * height * planes;
    let raw = count
        .checked_mul(size)
        .and_then(|n| data.get(..n))
        .ok_or_else(|| {
            fits_err(format!(
                "data unit truncated: {count} pixels of {size} bytes"
            ))
        })?;
    let bscale = number(header, "BSCALE").unwrap_or(1.0);
    let bzero = number(header, "BZERO").unwrap_or(0.0);
    let blank = number(header, "BLANK");
    use fitsrs::hdu::header::Bitpix as B;
    let integer = !matches!(bitpix, B::F32 | B::F64);
    let mut values = Vec::with_capacity(count);
    for (i, c) in raw.chunks_exact(size).enumerate() {
        let stored = match bitpix {
            B::U8 => c[0] as f64,
            B::I16 => i16::from_be_bytes([c[0], c[1]]) as f64,
            B::I32 => i32::from_be_bytes([c[0], c[1], c[2], c[3]]) as f64,
            B::I64 => i64::from_be_bytes(c.try_into().unwrap_or([0; 8])) as f64,
            B::F32 => f32::from_be_bytes([c[0], c[1], c[2], c[3]]) as f64,
            B::F64 => f64::from_be_bytes(c.try_into().unwrap_or([0; 8])),
        };
        if integer && blank == Some(stored) {
            values.push(f32::NAN);
            continue;
        }
        let physical = (bzero + bscale * stored) as f32;
        if !physical.is_finite() && stored.is_finite() {
            let keyword = if !(bzero as f32).is_finite() {
                "BZERO"
            } else if !(bscale as f32).is_finite() {
                "BSCALE"
            } else {
                "BSCALE and BZERO"
            };
            return Err(fits_err(format!(
                "{keyword} overflow: BZERO = {bzero:e} + BSCALE = {bscale:e} x the stored value \
                 {stored} of pixel {i} is {physical}, outside the range of f32"
            )));
        }
        values.push(physical);
    }
    Image::new(
        planes,
        height,
        width,
        values,
        SampleType::Fits {
            bitpix: bitpix as i8,
        },
    )
    .map_err(|e| fits_err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// A FITS file from header cards (each padded to 80 characters, `END` added unless `end` is
    /// false, the header padded to 2880 bytes) followed by `data` padded to 2880 bytes.
    fn fits_file(cards: &[&str], end: bool, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for c in cards.iter().copied().chain(end.then_some("END")) {
            out.extend(format!("{c:<80}").bytes());
        }
        out.resize(out.len().div_ceil(2880) * 2880, b' ');
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(2880) * 2880, 0);
        out
    }

    fn read(bytes: &[u8]) -> Result<Image> {
        read_bytes(Path::new("bad.fits"), bytes, &Limits::default())
    }

    const SIMPLE: &str = "SIMPLE  =                    T";

    #[test]
    fn scaled_values_are_read() {
        let data: Vec<u8> = [1i16, -2, 300, 7]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        let f = fits_file(
            &[
                SIMPLE,
                "BITPIX  =                   16",
                "NAXIS   =                    2",
                "NAXIS1  =                    2",
                "NAXIS2  =                    2",
                "BZERO   =                 10.0",
                "BSCALE  =                  2.0",
                "BLANK   =                    7",
            ],
            true,
            &data,
        );
        let img = read(&f).unwrap();
        assert_eq!((img.height, img.width), (2, 2));
        assert_eq!(&img.data[..3], &[12.0, 6.0, 610.0]);
        assert!(img.data[3].is_nan());
    }

    #[test]
    fn bzero_overflowing_f32_is_its_own_error() {
        let f = fits_file(
            &[
                SIMPLE,
                "BITPIX  =                    8",
                "NAXIS   =                    2",
                "NAXIS1  =                    2",
                "NAXIS2  =                    1",
                "BZERO   =                1E300",
            ],
            true,
            &[1, 2],
        );
        let e = read(&f).unwrap_err().to_string();
        assert_eq!(
            e,
            "bad.fits, HDU 0: BZERO overflow: BZERO = 1e300 + BSCALE = 1e0 x the stored value 1 \
             of pixel 0 is inf, outside the range of f32"
        );
    }

    #[test]
    fn huge_axes_are_refused_before_allocating() {
        // 2^61 x 1 doubles: 2^64 bytes, which overflows
        let f = fits_file(
            &[
                SIMPLE,
                "BITPIX  =                  -64",
                "NAXIS   =                    2",
                "NAXIS1  =  2305843009213693952",
                "NAXIS2  =                    1",
            ],
            true,
            &[],
        );
        let e = read(&f).unwrap_err().to_string();
        assert_eq!(
            e,
            "bad.fits, HDU 0: the header's data size (NAXISn x BITPIX) overflows 64 bits"
        );
        // large but representable: more data than the file holds
        let f = fits_file(
            &[
                SIMPLE,
                "BITPIX  =                  -64",
                "NAXIS   =                    2",
                "NAXIS1  =               100000",
                "NAXIS2  =               100000",
            ],
            true,
            &[0; 64],
        );
        let e = read(&f).unwrap_err().to_string();
        assert_eq!(
            e,
            "bad.fits, HDU 0: data unit truncated: the header declares 80000000000 bytes of data, \
             the file holds 2880"
        );
        // within the file but over the pixel limit
        let small = Limits {
            max_image_pixels: 3,
            ..Limits::default()
        };
        let f = fits_file(
            &[
                SIMPLE,
                "BITPIX  =                    8",
                "NAXIS   =                    2",
                "NAXIS1  =                    2",
                "NAXIS2  =                    2",
            ],
            true,
            &[0; 4],
        );
        let e = read_bytes(Path::new("bad.fits"), &f, &small)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("bad.fits, HDU 0: the image is 2 x 2 pixels"),
            "{e}"
        );
    }

    #[test]
    fn a_header_without_end_says_so() {
        let f = fits_file(
            &[
                SIMPLE,
                "BITPIX  =                    8",
                "NAXIS   =                    2",
                "NAXIS1  =                    2",
                "NAXIS2  =                    1",
            ],
            false,
            &[],
        );
        let e = read(&f).unwrap_err().to_string();
        assert_eq!(
            e,
            "bad.fits, HDU 0: the header has no END card: the file ends inside the header \
             (truncated, or not FITS)"
        );
    }

    /// Mutated valid FITS files (bit flips, truncations, random header values) never panic or
    /// allocate past the limits: every one reads or is an error naming the file.
    #[test]
    fn fuzzed_fits_files_are_read_or_named_errors() {
        let dir = crate::source_dir(env!("CARGO_MANIFEST_DIR")).join("../fixtures/fits");
        let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "fits"))
            .map(|p| std::fs::read(p).unwrap())
            .collect();
        seeds.sort();
        assert!(seeds.len() >= 8, "{} fixtures", seeds.len());
        let limits = Limits {
            max_file_bytes: 1 << 20,
            max_image_pixels: 1 << 16,
            max_image_bytes: 1 << 20,
        };
        let keys = [
            "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "BZERO", "BSCALE", "BLANK", "PCOUNT",
            "GCOUNT", "END",
        ];
        let values = [
            "0",
            "-1",
            "1",
            "2",
            "3",
            "8",
            "-64",
            "4294967296",
            "9223372036854775807",
            "18446744073709551615",
            "2305843009213693952",
            "1E300",
            "-1E300",
            "NaN",
            "T",
            "'x'",
            "",
        ];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2880);
        let path = Path::new("fuzz.fits");
        let mut n = 0;
        for round in 0..3000 {
            let mut b = seeds[round % seeds.len()].clone();
            match rng.random_range(0..4) {
                0 => {
                    for _ in 0..rng.random_range(1..8) {
                        let at = rng.random_range(0..b.len());
                        b[at] ^= 1 << rng.random_range(0..8);
                    }
                }
                1 => b.truncate(rng.random_range(0..b.len())),
                _ => {
                    // overwrite a header card with a keyword and a value from the lists
                    let card = rng.random_range(0..b.len().min(2880 * 2) / 80);
                    let text = format!(
                        "{:<8}= {:>20}",
                        keys[rng.random_range(0..keys.len())],
                        values[rng.random_range(0..values.len())]
                    );
                    let text = format!("{text:<80}");
                    b[card * 80..card * 80 + 80].copy_from_slice(text.as_bytes());
                }
            }
            match read_bytes(path, &b, &limits) {
                Ok(img) => assert!(
                    img.data.len() as u64 * 4 <= limits.max_image_bytes,
                    "{} samples",
                    img.data.len()
                ),
                Err(e) => assert!(e.to_string().starts_with("fuzz.fits"), "{e}"),
            }
            n += 1;
        }
        eprintln!("fits fuzz: {n} cases");
        assert_eq!(n, 3000);
    }
}
