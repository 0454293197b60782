//! What the PNG writers share: the embedded font, colour maps and the PNG encoder.
//!
//! Text is drawn with DejaVu Sans, embedded from `assets/DejaVuSans.ttf` (Bitstream Vera
//! licence, `assets/DejaVuSans-LICENSE.txt`) and registered with plotters' `ab_glyph`
//! backend, so drawing needs no system font library (a laptop or CI image may have none).
//! Pictures are drawn into an RGB buffer and encoded with the `image` crate.

use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;

use deepgalaxy_core::{Error, Result};
use plotters::style::{FontStyle, RGBColor};

/// Font family name every text style in this crate uses.
pub(crate) const FONT: &str = "sans-serif";

static FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Registers the embedded font with plotters (once per process).
pub(crate) fn ensure_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(Error::setting(
            "plot font",
            "the embedded DejaVu Sans font could not be loaded",
        ))
    }
}

/// A plotters drawing error as ours, naming what was being drawn.
pub(crate) fn drawing_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::setting(what, format!("drawing failed: {e}"))
}

/// Encodes an RGB picture as PNG and writes it atomically.
pub(crate) fn write_png(path: &Path, picture: &image::RgbImage) -> Result<()> {
    let mut bytes = Vec::new();
    picture
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .map_err(|e| Error::invalid(path, format!("cannot encode PNG: {e}")))?;
    deepgalaxy_core::io::write_atomic(path, |f| f.write_all(&bytes))
}

/// Matplotlib's viridis at `t` in [0, 1] (clamped), linearly interpolated between nine
/// samples of the map.
pub(crate) fn viridis(t: f64) -> RGBColor {
    const STOPS: [(u8, u8, u8); 9] = [
        (68, 1, 84),
        (71, 45, 123),
        (59, 82, 139),
        (44, 114, 142),
        (33, 145, 140),
        (40, 174, 128),
        (94, 201, 98),
        (173, 220, 48),
        (253, 231, 37),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = t * (STOPS.len() - 1) as f64;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f64;
    let mix = |a: u8, b: u8| (f64::from(a) + f * (f64::from(b) - f64::from(a))).round() as u8;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// A distinct colour per category: matplotlib's tab10, then tab20's light shades, then hues
/// spaced by the golden angle.
pub(crate) fn category_colour(i: usize) -> RGBColor {
    const TAB20: [u32; 20] = [
        0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd, 0x8c564b, 0xe377c2, 0x7f7f7f, 0xbcbd22,
        0x17becf, 0xaec7e8, 0xffbb78, 0x98df8a, 0xff9896, 0xc5b0d5, 0xc49c94, 0xf7b6d2, 0xc7c7c7,
        0xdbdb8d, 0x9edae5,
    ];
    if let Some(&c) = TAB20.get(i) {
        return RGBColor((c >> 16) as u8, (c >> 8) as u8, c as u8);
    }
    let hue = (i as f64 * 137.507_764) % 360.0;
    hsl(hue, 0.65, 0.5)
}

fn hsl(h: f64, s: f64, l: f64) -> RGBColor {
    let c = (1.0 - (2.0 * l - 1.0).abs()) * s;
    let x = c * (1.0 - ((h / 60.0) % 2.0 - 1.0).abs());
    let (r, g, b) = match (h / 60.0) as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = l - c / 2.0;
    let to = |v: f64| ((v + m) * 255.0).round() as u8;
    RGBColor(to(r), to(g), to(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viridis_ends_and_middle() {
        assert_eq!(viridis(0.0), RGBColor(68, 1, 84));
        assert_eq!(viridis(1.0), RGBColor(253, 231, 37));
        assert_eq!(viridis(0.5), RGBColor(33, 145, 140));
        assert_eq!(viridis(f64::NAN), viridis(0.0));
    }

    #[test]
    fn categories_are_distinct() {
        let colours: std::collections::HashSet<(u8, u8, u8)> = (0..40)
            .map(|i| {
                let c = category_colour(i);
                (c.0, c.1, c.2)
            })
            .collect();
        assert_eq!(colours.len(), 40);
        assert_eq!(category_colour(0), RGBColor(0x1f, 0x77, 0xb4));
    }

    #[test]
    fn embedded_font_loads() {
        ensure_font().unwrap();
        ensure_font().unwrap();
    }
}
