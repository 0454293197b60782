//! What the PNG writers share: the drawing canvas with its embedded font, colour maps and the
//! PNG encoder.
//!
//! Text is drawn with DejaVu Sans, the font `deepgalaxy-core` embeds for every PNG writer
//! ([`deepgalaxy_core::FONT_TTF`]), so drawing needs no system font library (a
//! laptop or CI image may have none). plotters 0.3.7's own `ab_glyph` text path places each
//! glyph's bounding box at the pen position, dropping the left side bearing ("clusters" comes
//! out as "dusters"), so [`Canvas`] wraps plotters' bitmap backend and lays text out itself
//! with `ab_glyph` (bearings, advances and kerning); every other drawing call goes to plotters.
//! Pictures are drawn into an RGB buffer and encoded with the `image` crate.

use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;

use crate::Result;
use ab_glyph::{point, Font, FontRef, PxScale, ScaleFont};
use deepgalaxy_core::Error;
use plotters::prelude::BitMapBackend;
use plotters::style::{FontStyle, RGBColor};
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind,
};

/// Font family name every text style in this crate uses.
pub(crate) const FONT: &str = "sans-serif";

static FONT_BYTES: &[u8] = deepgalaxy_core::FONT_TTF;

/// Registers the embedded font with plotters (once per process).
pub(crate) fn ensure_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES).is_ok()
    }) && font().is_some();
    if ok {
        Ok(())
    } else {
        Err(Error::setting(
            "plot font",
            "the embedded DejaVu Sans font could not be loaded",
        )
        .into())
    }
}

/// The embedded font, parsed once.
fn font() -> Option<&'static FontRef<'static>> {
    static FONT_REF: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    FONT_REF
        .get_or_init(|| FontRef::try_from_slice(FONT_BYTES).ok())
        .as_ref()
}

/// plotters' bitmap backend over an RGB buffer, with text laid out correctly (see the module
/// docs). Every text is drawn in the embedded DejaVu Sans at the style's pixel size.
pub(crate) struct Canvas<'a>(BitMapBackend<'a>);

impl<'a> Canvas<'a> {
    /// A canvas over `buf`, `size.0 * size.1` RGB pixels.
    pub(crate) fn with_buffer(buf: &'a mut [u8], size: (u32, u32)) -> Canvas<'a> {
        Canvas(BitMapBackend::with_buffer(buf, size))
    }
}

type DrawOutcome<E> = std::result::Result<(), DrawingErrorKind<E>>;

/// Glyph coverage of `text` at `size` pixels, in text-local coordinates (origin at the top
/// left of the line box), and the box's width and height.
fn layout(text: &str, size: f64) -> (Vec<(i32, i32, f32)>, i32, i32) {
    let Some(font) = font() else {
        return (Vec::new(), 0, 0);
    };
    let scale = PxScale::from(size as f32);
    let scaled = font.as_scaled(scale);
    let ascent = scaled.ascent();
    let mut pixels = Vec::new();
    let mut pen = 0.0f32;
    let mut prev = None;
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        if let Some(p) = prev {
            pen += scaled.kern(p, id);
        }
        prev = Some(id);
        let glyph = id.with_scale_and_position(scale, point(pen, ascent));
        if let Some(outline) = font.outline_glyph(glyph) {
            let b = outline.px_bounds();
            outline.draw(|x, y, cover| {
                pixels.push((b.min.x as i32 + x as i32, b.min.y as i32 + y as i32, cover));
            });
        }
        pen += scaled.h_advance(id);
    }
    let height = (scaled.ascent() - scaled.descent()).ceil() as i32;
    (pixels, pen.ceil() as i32, height)
}

impl<'a> DrawingBackend for Canvas<'a> {
    type ErrorType = <BitMapBackend<'a> as DrawingBackend>::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.0.get_size()
    }

    fn ensure_prepared(&mut self) -> DrawOutcome<Self::ErrorType> {
        self.0.ensure_prepared()
    }

    fn present(&mut self) -> DrawOutcome<Self::ErrorType> {
        self.0.present()
    }

    fn draw_pixel(&mut self, p: BackendCoord, c: BackendColor) -> DrawOutcome<Self::ErrorType> {
        self.0.draw_pixel(p, c)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> DrawOutcome<Self::ErrorType> {
        self.0.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> DrawOutcome<Self::ErrorType> {
        self.0.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> DrawOutcome<Self::ErrorType> {
        self.0.draw_path(path, style)
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> DrawOutcome<Self::ErrorType> {
        self.0.draw_circle(center, radius, style, fill)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> DrawOutcome<Self::ErrorType> {
        self.0.fill_polygon(vert, style)
    }

    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> DrawOutcome<Self::ErrorType> {
        self.0.blit_bitmap(pos, size, src)
    }

    fn draw_text<T: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &T,
        pos: BackendCoord,
    ) -> DrawOutcome<Self::ErrorType> {
        let colour = style.color();
        if colour.alpha == 0.0 {
            return Ok(());
        }
        let (pixels, width, height) = layout(text, style.size());
        let dx = match style.anchor().h_pos {
            HPos::Left => 0,
            HPos::Right => -width,
            HPos::Center => -width / 2,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0,
            VPos::Center => -height / 2,
            VPos::Bottom => -height,
        };
        let transform = style.transform();
        for (x, y, cover) in pixels {
            let (tx, ty) = transform.transform(x + dx, y + dy);
            let c = BackendColor {
                alpha: colour.alpha * f64::from(cover.clamp(0.0, 1.0)),
                rgb: colour.rgb,
            };
            self.0.draw_pixel((pos.0 + tx, pos.1 + ty), c)?;
        }
        Ok(())
    }

    fn estimate_text_size<T: BackendTextStyle>(
        &self,
        text: &str,
        style: &T,
    ) -> std::result::Result<(u32, u32), DrawingErrorKind<Self::ErrorType>> {
        let (_, width, height) = layout(text, style.size());
        Ok((width.max(0) as u32, height.max(0) as u32))
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
    deepgalaxy_core::io::write_atomic(path, |f| f.write_all(&bytes)).map_err(Into::into)
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

    /// Glyphs keep their side bearings: the "l" of "cl" starts right of the "c"'s ink, and
    /// "il" is wider than the sum of nothing but ink.
    #[test]
    fn text_keeps_side_bearings() {
        let ink = |t: &str| {
            let (px, w, h) = layout(t, 20.0);
            let xs: Vec<i32> = px.iter().filter(|p| p.2 > 0.5).map(|p| p.0).collect();
            (xs, w, h)
        };
        let (c, cw, _) = ink("c");
        let (cl, clw, h) = ink("cl");
        let c_right = *c.iter().max().unwrap();
        // the l's stem is the ink of "cl" right of the c's advance
        let l_left = *cl.iter().filter(|&&x| x >= cw).min().unwrap();
        assert!(l_left > c_right + 1, "l at {l_left}, c ends at {c_right}");
        assert!(clw > cw && h >= 20, "{clw} {cw} {h}");
    }

    #[test]
    fn embedded_font_loads() {
        ensure_font().unwrap();
        ensure_font().unwrap();
    }
}
