//! Writing a 2-D `float32` image as a FITS primary HDU (`simulate --format fits`): the one
//! layout we produce, written by hand because `fitsrs` only reads. Cards follow the FITS 4.0
//! fixed format: keyword in columns 1-8, `= ` in 9-10, strings quoted from column 11, numbers
//! right-aligned to column 30, then ` / comment`.

use std::fmt::Write;

use crate::{Error, Result};

/// FITS block size: headers and data units are padded to a multiple of it.
const BLOCK: usize = 2880;

/// A header value.
#[derive(Debug, Clone, PartialEq)]
pub enum HeaderValue {
    /// A character string (printable ASCII, at most 68 characters).
    Text(String),
    /// A real number (written with enough digits to round-trip an `f64`).
    Real(f64),
    /// An integer.
    Integer(i64),
}

/// One header card: keyword (up to 8 of `A-Z 0-9 _ -`), value and comment.
#[derive(Debug, Clone, PartialEq)]
pub struct HeaderCard {
    /// Keyword.
    pub keyword: String,
    /// Value.
    pub value: HeaderValue,
    /// What the value means (may be empty).
    pub comment: String,
}

impl HeaderCard {
    /// A card.
    pub fn new(keyword: &str, value: HeaderValue, comment: &str) -> HeaderCard {
        HeaderCard {
            keyword: keyword.to_string(),
            value,
            comment: comment.to_string(),
        }
    }

    /// The 80-character card.
    fn encode(&self) -> Result<String> {
        let bad = |what: String| Error::setting("FITS header", what);
        let k = &self.keyword;
        if k.is_empty()
            || k.len() > 8
            || !k
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err(bad(format!("`{k}` is not a FITS keyword")));
        }
        let value = match &self.value {
            HeaderValue::Text(s) => {
                if !s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                    return Err(bad(format!("{k}: `{s}` is not printable ASCII")));
                }
                // at least 8 characters between the quotes (FITS 4.0, 4.2.1)
                let quoted = format!("'{:<8}'", s.replace('\'', "''"));
                if quoted.len() > 70 {
                    return Err(bad(format!("{k}: `{s}` is too long for one card")));
                }
                quoted
            }
            HeaderValue::Real(x) => {
                if !x.is_finite() {
                    return Err(bad(format!("{k}: {x} is not a finite number")));
                }
                // Rust's shortest round-trip form, with an E exponent as FITS asks
                let mut t = format!("{x:?}").to_uppercase();
                if !t.contains(['.', 'E']) {
                    t.push_str(".0");
                }
                format!("{t:>20}")
            }
            HeaderValue::Integer(i) => format!("{i:>20}"),
        };
        let mut card = format!("{k:<8}= {value}");
        if !self.comment.is_empty() {
            let _ = write!(card, " / {}", self.comment);
        }
        if !card.is_ascii() {
            return Err(bad(format!("{k}: the comment is not ASCII")));
        }
        // a comment longer than the card is cut: it is only a comment
        card.truncate(80);
        Ok(format!("{card:<80}"))
    }
}

/// A FITS file holding `data` (`width x height`, row-major, the first row first: FITS viewers
/// show it at the bottom) as BITPIX -32 in its primary HDU, with `cards` after the mandatory
/// keywords.
pub fn encode_image(
    width: usize,
    height: usize,
    data: &[f32],
    cards: &[HeaderCard],
) -> Result<Vec<u8>> {
    if width == 0 || height == 0 || data.len() != width * height {
        return Err(Error::setting(
            "FITS image",
            format!("{} values for {width} x {height} pixels", data.len()),
        ));
    }
    let mandatory = [
        ("SIMPLE", "T".to_string(), "a FITS file"),
        ("BITPIX", "-32".to_string(), "IEEE float32"),
        ("NAXIS", "2".to_string(), ""),
        ("NAXIS1", width.to_string(), "columns"),
        ("NAXIS2", height.to_string(), "rows"),
    ];
    let mut header = String::new();
    for (k, v, c) in mandatory {
        let card = if c.is_empty() {
            format!("{k:<8}= {v:>20}")
        } else {
            format!("{k:<8}= {v:>20} / {c}")
        };
        let _ = write!(header, "{card:<80}");
    }
    for c in cards {
        header.push_str(&c.encode()?);
    }
    let _ = write!(header, "{:<80}", "END");
    let mut out = header.into_bytes();
    out.resize(out.len().div_ceil(BLOCK) * BLOCK, b' ');
    for v in data {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::Limits;
    use std::path::Path;

    #[test]
    fn an_image_round_trips_through_the_reader_with_its_cards() {
        let (w, h) = (5, 3);
        let data: Vec<f32> = (0..w * h).map(|i| i as f32 * 0.25 - 1.0).collect();
        let cards = [
            HeaderCard::new(
                "BUNIT",
                HeaderValue::Text("Lsun/pc2".into()),
                "surface brightness",
            ),
            HeaderCard::new("CDELT1", HeaderValue::Real(0.1953125), "kpc per pixel"),
            HeaderCard::new("CAMERA", HeaderValue::Integer(7), ""),
            HeaderCard::new("OBJECT", HeaderValue::Text("it's".into()), ""),
        ];
        let bytes = encode_image(w, h, &data, &cards).unwrap();
        assert_eq!(bytes.len() % BLOCK, 0);
        let text = String::from_utf8_lossy(&bytes[..BLOCK]);
        assert!(text.starts_with("SIMPLE  =                    T"), "{text}");
        assert!(
            text.contains("CDELT1  =            0.1953125 / kpc per pixel"),
            "{text}"
        );
        assert!(text.contains("OBJECT  = 'it''s   '"), "{text}");
        let img =
            super::super::read_bytes(Path::new("x.fits"), &bytes, &Limits::default()).unwrap();
        assert_eq!((img.width, img.height), (w, h));
        assert_eq!(img.data, data);
    }

    #[test]
    fn bad_cards_and_shapes_are_refused() {
        let card =
            |k: &str, v: HeaderValue| encode_image(1, 1, &[0.0], &[HeaderCard::new(k, v, "")]);
        assert!(card("lower", HeaderValue::Integer(1)).is_err());
        assert!(card("TOOLONGKEY", HeaderValue::Integer(1)).is_err());
        assert!(card("NAN", HeaderValue::Real(f64::NAN)).is_err());
        assert!(card("TEXT", HeaderValue::Text("é".into())).is_err());
        assert!(card("TEXT", HeaderValue::Text("x".repeat(69))).is_err());
        assert!(encode_image(2, 2, &[0.0; 3], &[]).is_err());
        assert!(encode_image(0, 0, &[], &[]).is_err());
    }
}
