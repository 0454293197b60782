//! FITS images through `fitsrs`.
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
//! `fitsrs` parses headers; the data unit is sliced from the file's bytes here so that a
//! truncated file is an error rather than a silently short image (`fitsrs`' pixel iterators
//! stop quietly at end of file).

use std::io::Cursor;
use std::path::Path;

use fitsrs::card::Value;
use fitsrs::hdu::header::extension::image::Image as ImageXtension;
use fitsrs::hdu::header::Header;
use fitsrs::{Fits, HDU};

use crate::image::{Image, SampleType};
use crate::{Error, Result};

/// Reads the first image of a FITS file (see the module docs for which HDU and the policies).
pub fn read(path: &Path) -> Result<Image> {
    let bytes = crate::io::read_bytes(path)?;
    read_bytes(path, &bytes)
}

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
    for (index, hdu) in Fits::from_reader(Cursor::new(&bytes[..])).enumerate() {
        let hdu = hdu.map_err(|e| header_error(path, index, &e))?;
        let (kind, naxis, bitpix) = match &hdu {
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
    }
    if out.is_empty() {
        return Err(Error::Fits {
            path: path.into(),
            hdu: 0,
            what: "no HDU found: not a FITS file".into(),
        });
    }
    Ok(out)
}

/// Reads the first image from FITS bytes; `path` only names the source in errors.
pub fn read_bytes(path: &Path, bytes: &[u8]) -> Result<Image> {
    let mut index = 0;
    for hdu in Fits::from_reader(Cursor::new(bytes)) {
        let hdu = hdu.map_err(|e| header_error(path, index, &e))?;
        if let HDU::Primary(h) | HDU::XImage(h) = &hdu {
            let naxis = h.get_header().get_xtension().get_naxis();
            if naxis.len() >= 2 && naxis.iter().all(|&n| n > 0) {
                let offset = h.get_data_unit_byte_offset() as usize;
                return decode_hdu(path, index, h.get_header(), bytes, offset);
            }
        }
        index += 1;
    }
    Err(Error::invalid(
        path,
        format!(
            "no image found: none of the {index} HDU(s) is a primary or IMAGE extension with at least 2 axes"
        ),
    ))
}

/// A header that fitsrs could not parse. Its own messages are terse, so an unsupported BITPIX
/// (the most common cause) is named explicitly.
fn header_error(path: &Path, hdu: usize, e: &fitsrs::error::Error) -> Error {
    let msg = e.to_string();
    let what = if msg.contains("expected one of") || msg.contains("8, 16, 32, 64, -32") {
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

fn number(header: &Header<ImageXtension>, key: &str) -> Option<f64> {
    match header.get(key)? {
        Value::Integer { value, .. } => Some(*value as f64),
        Value::Float { value, .. } => Some(*value),
        _ => None,
    }
}

fn decode_hdu(
    path: &Path,
    hdu: usize,
    header: &Header<ImageXtension>,
    bytes: &[u8],
    offset: usize,
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
    let (width, height) = (naxis[0] as usize, naxis[1] as usize);
    let planes = naxis.get(2).copied().unwrap_or(1) as usize;
    let bitpix = x.get_bitpix();
    let size = bitpix.byte_size();
    let count = width
        .checked_mul(height)
        .and_then(|n| n.checked_mul(planes))
        .ok_or_else(|| fits_err(format!("image of {naxis:?} pixels is too large")))?;
    let end = offset.checked_add(count * size).unwrap_or(usize::MAX);
    if end > bytes.len() {
        return Err(fits_err(format!(
            "data unit truncated: {count} pixels of {size} bytes need {} bytes, the file holds {}",
            count * size,
            bytes.len().saturating_sub(offset)
        )));
    }
    let raw = &bytes[offset..end];
    let bscale = number(header, "BSCALE").unwrap_or(1.0);
    let bzero = number(header, "BZERO").unwrap_or(0.0);
    let blank = number(header, "BLANK");
    let int = |v: i64| -> f32 {
        if blank == Some(v as f64) {
            f32::NAN
        } else {
            (bzero + bscale * v as f64) as f32
        }
    };
    let float = |v: f64| -> f32 { (bzero + bscale * v) as f32 };
    use fitsrs::hdu::header::Bitpix as B;
    let data: Vec<f32> = match bitpix {
        B::U8 => raw.iter().map(|&b| int(b as i64)).collect(),
        B::I16 => raw
            .chunks_exact(2)
            .map(|c| int(i16::from_be_bytes([c[0], c[1]]) as i64))
            .collect(),
        B::I32 => raw
            .chunks_exact(4)
            .map(|c| int(i32::from_be_bytes([c[0], c[1], c[2], c[3]]) as i64))
            .collect(),
        B::I64 => raw
            .chunks_exact(8)
            .map(|c| int(i64::from_be_bytes(c.try_into().unwrap_or([0; 8]))))
            .collect(),
        B::F32 => raw
            .chunks_exact(4)
            .map(|c| float(f32::from_be_bytes([c[0], c[1], c[2], c[3]]) as f64))
            .collect(),
        B::F64 => raw
            .chunks_exact(8)
            .map(|c| float(f64::from_be_bytes(c.try_into().unwrap_or([0; 8]))))
            .collect(),
    };
    Image::new(
        planes,
        height,
        width,
        data,
        SampleType::Fits {
            bitpix: bitpix as i8,
        },
    )
    .map_err(|e| fits_err(e.to_string()))
}
