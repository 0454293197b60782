//! The preprocessing contract: how any image file becomes the tensor a DeepGalaxy network sees.
//!
//! One serialisable [`Preprocess`] travels with the model (in the checkpoint's `spec.json` and
//! the ONNX model card), and one function, [`preprocess()`], applies it. Training and inference
//! both call it; nothing else in the project resizes, crops or stretches an image, so a model
//! cannot see differently prepared pixels at deployment than in training.
//!
//! The steps, in order:
//! 1. **missing pixels** (NaN, FITS BLANK) are replaced following [`Missing`];
//! 2. **channels**: RGB to grey is the mean of the planes, grey to RGB repeats the plane
//!    (a FITS cube of any depth averages to grey);
//! 3. **centre crop** to a square of `crop` times the shorter side (`None`: no crop, the aspect
//!    ratio is not kept);
//! 4. **scale** to [0, 1] following [`Scale`], then clamp (before the resize, because the
//!    `image` crate's resamplers clamp `f32` samples to [0, 1]);
//! 5. **resize** to `size` x `size` with the chosen [`ResizeFilter`] (the `image` crate's
//!    separable filters, whose support widens when shrinking, so downsampling is antialiased);
//! 6. **stretch** ([`Stretch`]: linear, log or asinh), which keeps 0 at 0 and 1 at 1.
//!
//! The result is the *model input*: the pixel values an ONNX client feeds. The per-channel
//! affine [`Normalization`] is part of the contract too, but it is the first operation *inside*
//! the network (the candle model and the exported ONNX graph both start with it), so that a
//! client never has to know the constants.

use serde::{Deserialize, Serialize};

use crate::image::{Image, SampleType};
use crate::{Error, Result};

/// How to turn an image into model input. See the module docs for the order of the steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preprocess {
    /// Output side in pixels (square output).
    pub size: u32,
    /// Output channels: 1 (grey) or 3 (RGB).
    pub channels: u32,
    /// Resampling filter for the resize.
    pub filter: ResizeFilter,
    /// Centre square crop as a fraction of the shorter side, in (0, 1]; `None` keeps the whole
    /// frame and lets the resize change the aspect ratio.
    pub crop: Option<f32>,
    /// How raw values map to [0, 1].
    pub scale: Scale,
    /// Intensity stretch applied after scaling.
    pub stretch: Stretch,
    /// What NaN/BLANK pixels become.
    pub missing: Missing,
    /// Per-channel normalisation applied by the network's first layer.
    pub normalization: Normalization,
}

impl Default for Preprocess {
    /// 128x128 grey, centre square crop, antialiased bilinear resize, the stored type's range
    /// (percentiles for FITS), no extra stretch (simulated images are stretched when rendered),
    /// missing pixels set to the image minimum, normalisation to mean 0.5 and std 0.25.
    fn default() -> Self {
        Preprocess {
            size: 128,
            channels: 1,
            filter: ResizeFilter::Triangle,
            crop: Some(1.0),
            scale: Scale::Auto,
            stretch: Stretch::Linear,
            missing: Missing::Minimum,
            normalization: Normalization::standard(1),
        }
    }
}

/// Resampling filter (the `image` crate's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResizeFilter {
    /// Nearest neighbour.
    Nearest,
    /// Linear (tent) filter: bilinear, antialiased when shrinking.
    Triangle,
    /// Catmull-Rom cubic.
    CatmullRom,
    /// Gaussian, sigma 0.5 of the output pixel.
    Gaussian,
    /// Lanczos with window 3.
    Lanczos3,
}

impl From<ResizeFilter> for ::image::imageops::FilterType {
    fn from(f: ResizeFilter) -> Self {
        use ::image::imageops::FilterType as F;
        match f {
            ResizeFilter::Nearest => F::Nearest,
            ResizeFilter::Triangle => F::Triangle,
            ResizeFilter::CatmullRom => F::CatmullRom,
            ResizeFilter::Gaussian => F::Gaussian,
            ResizeFilter::Lanczos3 => F::Lanczos3,
        }
    }
}

/// How raw sample values map to [0, 1] (values outside are clamped).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Scale {
    /// The stored type's range for 8/16-bit pictures (0..255, 0..65535); for FITS and floats,
    /// the 0.5 and 99.5 percentiles of the image, the astronomer's usual display cut.
    Auto,
    /// The image's own minimum and maximum.
    MinMax,
    /// The given percentiles (0..100) of the image's values.
    Percentile {
        /// Lower percentile, maps to 0.
        low: f32,
        /// Upper percentile, maps to 1.
        high: f32,
    },
    /// Fixed raw values.
    Fixed {
        /// Raw value mapped to 0.
        low: f32,
        /// Raw value mapped to 1.
        high: f32,
    },
}

/// Intensity stretch on [0, 1] values; each maps 0 to 0 and 1 to 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Stretch {
    /// y = x.
    Linear,
    /// y = log10(a x + 1) / log10(a + 1), DS9's log scale (a = 1000 there).
    Log {
        /// Strength; larger lifts faint structure more.
        a: f32,
    },
    /// y = asinh(x / beta) / asinh(1 / beta), Lupton et al.'s stretch: linear below beta,
    /// logarithmic above.
    Asinh {
        /// Softening; smaller is closer to log.
        beta: f32,
    },
}

impl Stretch {
    /// DS9's log scale (a = 1000): the log stretch `train --stretch log` uses.
    pub const LOG: Stretch = Stretch::Log { a: 1000.0 };
    /// Lupton et al.'s stretch, linear below a tenth of the range: `train --stretch asinh`.
    pub const ASINH: Stretch = Stretch::Asinh { beta: 0.1 };

    /// Applies the stretch to one value in [0, 1].
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Stretch::Linear => x,
            Stretch::Log { a } => (a * x).ln_1p() / a.ln_1p(),
            Stretch::Asinh { beta } => (x / beta).asinh() / (1.0 / beta).asinh(),
        }
    }
}

/// What NaN and BLANK pixels become before resizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Missing {
    /// The smallest finite value of the image (the sky background in astronomical data).
    Minimum,
    /// Zero.
    Zero,
    /// Refuse the image with an error.
    Reject,
}

/// Per-channel affine normalisation `(x - mean) / std`, applied by the network's first layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalization {
    /// Per-channel mean.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation (positive).
    pub std: Vec<f32>,
}

impl Normalization {
    /// Every channel's values in [0, 1] to mean 0.5 and std 0.25, i.e. onto about [-2, 2]: the
    /// normalisation of every model `train` builds.
    pub fn standard(channels: usize) -> Normalization {
        Normalization {
            mean: vec![0.5; channels],
            std: vec![0.25; channels],
        }
    }
}

impl Normalization {
    /// Normalises a planar image in place.
    pub fn apply(&self, image: &mut Image) -> Result<()> {
        self.check(image.channels)?;
        self.for_planes(image, |x, m, s| (x - m) / s);
        Ok(())
    }

    /// Undoes [`Normalization::apply`] in place (for showing reconstructions as pictures).
    pub fn invert(&self, image: &mut Image) -> Result<()> {
        self.check(image.channels)?;
        self.for_planes(image, |x, m, s| x * s + m);
        Ok(())
    }

    fn for_planes(&self, image: &mut Image, f: impl Fn(f32, f32, f32) -> f32) {
        let n = image.height * image.width;
        for (c, plane) in image.data.chunks_mut(n).enumerate() {
            let (m, s) = (self.mean[c], self.std[c]);
            plane.iter_mut().for_each(|x| *x = f(*x, m, s));
        }
    }

    fn check(&self, channels: usize) -> Result<()> {
        if self.mean.len() != channels || self.std.len() != channels {
            return Err(Error::setting(
                "normalization",
                format!(
                    "{} means and {} stds for {channels} channel(s)",
                    self.mean.len(),
                    self.std.len()
                ),
            ));
        }
        if self.std.iter().any(|&s| !(s > 0.0 && s.is_finite())) {
            return Err(Error::setting(
                "normalization",
                "every std must be finite and positive",
            ));
        }
        Ok(())
    }
}

impl Preprocess {
    /// Checks every field is in range, so a bad spec fails before any image is touched.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::setting("preprocessing", what));
        if !(1..=8192).contains(&self.size) {
            return bad(format!("size {} is not in 1..=8192", self.size));
        }
        if !matches!(self.channels, 1 | 3) {
            return bad(format!("channels must be 1 or 3, not {}", self.channels));
        }
        if let Some(c) = self.crop {
            if !(c > 0.0 && c <= 1.0) {
                return bad(format!("crop {c} is not in (0, 1]"));
            }
        }
        match self.scale {
            Scale::Percentile { low, high } if !(0.0 <= low && low < high && high <= 100.0) => {
                return bad(format!(
                    "percentiles {low}..{high} are not 0 <= low < high <= 100"
                ));
            }
            Scale::Fixed { low, high } if !(low < high && low.is_finite() && high.is_finite()) => {
                return bad(format!("fixed range {low}..{high} is empty or not finite"));
            }
            _ => {}
        }
        match self.stretch {
            Stretch::Log { a } if !(a > 0.0 && a.is_finite()) => {
                return bad(format!("log stretch a = {a} must be positive"));
            }
            Stretch::Asinh { beta } if !(beta > 0.0 && beta.is_finite()) => {
                return bad(format!("asinh stretch beta = {beta} must be positive"));
            }
            _ => {}
        }
        self.normalization.check(self.channels as usize)
    }
}

/// Applies `p` to `image`: the one preprocessing function of the project. Returns the model
/// input, `p.channels` x `p.size` x `p.size` values in [0, 1] (before [`Normalization`]).
/// `source` names the image in errors.
pub fn preprocess(image: &Image, p: &Preprocess, source: &std::path::Path) -> Result<Image> {
    p.validate()?;
    let mut planes = fill_missing(image, p.missing, source)?;
    planes = convert_channels(&planes, p.channels as usize, source)?;
    if let Some(frac) = p.crop {
        planes = centre_crop(&planes, frac);
    }
    let (lo, hi) = scale_range(&planes, image.sample, p.scale);
    let span = if hi > lo { hi - lo } else { 1.0 };
    for v in planes.data.iter_mut() {
        *v = ((*v - lo) / span).clamp(0.0, 1.0);
    }
    let mut out = resize(&planes, p.size as usize, p.filter);
    for v in out.data.iter_mut() {
        *v = p.stretch.apply(v.clamp(0.0, 1.0));
    }
    out.sample = SampleType::F32;
    Ok(out)
}

fn fill_missing(image: &Image, policy: Missing, source: &std::path::Path) -> Result<Image> {
    let bad = image.count_nonfinite();
    if bad == 0 {
        return Ok(image.clone());
    }
    let fill = match policy {
        Missing::Reject => {
            return Err(Error::invalid(
                source,
                format!("{bad} missing (NaN/BLANK) pixels and the preprocessing rejects them"),
            ))
        }
        Missing::Zero => 0.0,
        Missing::Minimum => match image.finite_range() {
            Some((lo, _)) => lo,
            None => return Err(Error::invalid(source, "every pixel is NaN or BLANK")),
        },
    };
    let mut out = image.clone();
    out.data
        .iter_mut()
        .filter(|v| !v.is_finite())
        .for_each(|v| *v = fill);
    Ok(out)
}

fn convert_channels(image: &Image, channels: usize, source: &std::path::Path) -> Result<Image> {
    let n = image.height * image.width;
    let data = match (image.channels, channels) {
        (a, b) if a == b => return Ok(image.clone()),
        (_, 1) => {
            let k = image.channels as f32;
            (0..n)
                .map(|i| {
                    (0..image.channels)
                        .map(|c| image.data[c * n + i])
                        .sum::<f32>()
                        / k
                })
                .collect()
        }
        (1, 3) => image.data.repeat(3),
        (a, b) => {
            return Err(Error::invalid(
                source,
                format!("cannot turn {a} channels into {b} (only grey<->RGB and cube->grey)"),
            ))
        }
    };
    Image::new(channels, image.height, image.width, data, image.sample)
}

fn centre_crop(image: &Image, frac: f32) -> Image {
    let side = ((image.height.min(image.width) as f32 * frac).round() as usize).max(1);
    if side == image.height && side == image.width {
        return image.clone();
    }
    let (y0, x0) = ((image.height - side) / 2, (image.width - side) / 2);
    let mut data = Vec::with_capacity(image.channels * side * side);
    for c in 0..image.channels {
        let plane = image.plane(c);
        for y in y0..y0 + side {
            data.extend_from_slice(&plane[y * image.width + x0..y * image.width + x0 + side]);
        }
    }
    Image {
        channels: image.channels,
        height: side,
        width: side,
        data,
        sample: image.sample,
    }
}

fn resize(image: &Image, size: usize, filter: ResizeFilter) -> Image {
    if image.height == size && image.width == size {
        return image.clone();
    }
    let mut data = Vec::with_capacity(image.channels * size * size);
    for c in 0..image.channels {
        let plane = ::image::ImageBuffer::<::image::Luma<f32>, _>::from_raw(
            image.width as u32,
            image.height as u32,
            image.plane(c).to_vec(),
        )
        .expect("plane length equals width * height by Image's invariant");
        let resized = ::image::imageops::resize(&plane, size as u32, size as u32, filter.into());
        data.extend_from_slice(resized.as_raw());
    }
    Image {
        channels: image.channels,
        height: size,
        width: size,
        data,
        sample: image.sample,
    }
}

/// The raw values that map to 0 and 1.
fn scale_range(image: &Image, sample: SampleType, scale: Scale) -> (f32, f32) {
    match scale {
        Scale::Fixed { low, high } => (low, high),
        Scale::MinMax => image.finite_range().unwrap_or((0.0, 1.0)),
        Scale::Percentile { low, high } => percentiles(&image.data, low, high),
        Scale::Auto => sample
            .natural_range()
            .unwrap_or_else(|| percentiles(&image.data, 0.5, 99.5)),
    }
}

/// Two percentiles (0..100) of the values, by linear interpolation between order statistics.
fn percentiles(values: &[f32], low: f32, high: f32) -> (f32, f32) {
    let mut v: Vec<f32> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (0.0, 1.0);
    }
    v.sort_unstable_by(f32::total_cmp);
    let at = |q: f32| {
        let pos = q / 100.0 * (v.len() - 1) as f32;
        let (i, f) = (pos.floor() as usize, pos.fract());
        let j = (i + 1).min(v.len() - 1);
        v[i] + (v[j] - v[i]) * f
    };
    (at(low), at(high))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn grey(h: usize, w: usize, f: impl Fn(usize, usize) -> f32, sample: SampleType) -> Image {
        let data = (0..h * w).map(|i| f(i / w, i % w)).collect();
        Image::new(1, h, w, data, sample).unwrap()
    }

    fn spec(size: u32) -> Preprocess {
        Preprocess {
            size,
            ..Preprocess::default()
        }
    }

    #[test]
    fn resizing_a_constant_image_keeps_it_constant() {
        let img = grey(300, 200, |_, _| 77.0, SampleType::U8);
        for filter in [
            ResizeFilter::Nearest,
            ResizeFilter::Triangle,
            ResizeFilter::CatmullRom,
            ResizeFilter::Gaussian,
            ResizeFilter::Lanczos3,
        ] {
            for size in [64, 128, 257] {
                let p = Preprocess {
                    filter,
                    crop: None,
                    ..spec(size)
                };
                let out = preprocess(&img, &p, Path::new("c.png")).unwrap();
                assert_eq!(out.data.len(), (size * size) as usize);
                for v in &out.data {
                    assert!((v - 77.0 / 255.0).abs() < 1e-5, "{filter:?} {size}: {v}");
                }
            }
        }
    }

    #[test]
    fn stretch_values_match_their_formulas() {
        // log10(1000*0.5+1)/log10(1001) and asinh(0.5/0.1)/asinh(10), computed by hand.
        let log = Stretch::Log { a: 1000.0 };
        assert!(
            (log.apply(0.5) - 0.899_815_7).abs() < 1e-6,
            "{}",
            log.apply(0.5)
        );
        let asinh = Stretch::Asinh { beta: 0.1 };
        assert!(
            (asinh.apply(0.5) - 0.771_269_6).abs() < 1e-6,
            "{}",
            asinh.apply(0.5)
        );
        for s in [Stretch::Linear, log, asinh] {
            assert_eq!(s.apply(0.0), 0.0);
            assert!((s.apply(1.0) - 1.0).abs() < 1e-6);
        }
    }

    #[test]
    fn normalization_round_trips() {
        let mut img = grey(4, 5, |y, x| (y * 5 + x) as f32 / 19.0, SampleType::F32);
        let before = img.clone();
        let n = Normalization {
            mean: vec![0.3],
            std: vec![0.2],
        };
        n.apply(&mut img).unwrap();
        assert!((img.data[0] - (-1.5)).abs() < 1e-6);
        n.invert(&mut img).unwrap();
        for (a, b) in img.data.iter().zip(&before.data) {
            assert!((a - b).abs() < 1e-6);
        }
        let wrong = Normalization {
            mean: vec![0.0; 3],
            std: vec![1.0; 3],
        };
        assert!(wrong.apply(&mut img).is_err());
    }

    #[test]
    fn identity_size_is_exact_and_scales_by_the_stored_type() {
        let img = grey(8, 8, |y, x| (y * 8 + x) as f32 * 1000.0, SampleType::U16);
        let out = preprocess(&img, &spec(8), Path::new("x.png")).unwrap();
        for (o, i) in out.data.iter().zip(&img.data) {
            assert_eq!(*o, (i / 65535.0).clamp(0.0, 1.0));
        }
    }

    #[test]
    fn centre_crop_takes_the_middle_square() {
        let img = grey(2, 4, |y, x| (y * 4 + x) as f32, SampleType::F32);
        let p = Preprocess {
            scale: Scale::Fixed {
                low: 0.0,
                high: 7.0,
            },
            ..spec(2)
        };
        let out = preprocess(&img, &p, Path::new("x.fits")).unwrap();
        let expect: Vec<f32> = [1.0, 2.0, 5.0, 6.0].iter().map(|v| v / 7.0).collect();
        assert_eq!(out.data, expect);
    }

    #[test]
    fn rgb_to_grey_is_the_mean_and_grey_to_rgb_repeats() {
        let img = Image::new(3, 1, 1, vec![30.0, 60.0, 90.0], SampleType::U8).unwrap();
        let out = preprocess(&img, &spec(1), Path::new("x.png")).unwrap();
        assert!((out.data[0] - 60.0 / 255.0).abs() < 1e-7);
        let p = Preprocess {
            channels: 3,
            normalization: Normalization {
                mean: vec![0.5; 3],
                std: vec![0.25; 3],
            },
            ..spec(1)
        };
        let g = Image::new(1, 1, 1, vec![51.0], SampleType::U8).unwrap();
        assert_eq!(
            preprocess(&g, &p, Path::new("g.png")).unwrap().data,
            vec![0.2; 3]
        );
    }

    #[test]
    fn missing_pixels_follow_the_policy() {
        let img = Image::new(1, 1, 3, vec![f32::NAN, 2.0, 4.0], SampleType::F32).unwrap();
        let p = Preprocess {
            size: 3,
            crop: None,
            filter: ResizeFilter::Nearest,
            scale: Scale::Fixed {
                low: 0.0,
                high: 4.0,
            },
            ..spec(3)
        };
        // Nearest resize from 3x1 to 3x3 repeats rows: first column is the filled value.
        let out = preprocess(&img, &p, Path::new("m.fits")).unwrap();
        assert_eq!(out.data[0], 0.5);
        let zero = Preprocess {
            missing: Missing::Zero,
            ..p.clone()
        };
        assert_eq!(
            preprocess(&img, &zero, Path::new("m.fits")).unwrap().data[0],
            0.0
        );
        let reject = Preprocess {
            missing: Missing::Reject,
            ..p
        };
        let err = preprocess(&img, &reject, Path::new("m.fits")).unwrap_err();
        assert!(err.to_string().contains("m.fits") && err.to_string().contains("1 missing"));
    }

    #[test]
    fn percentiles_interpolate_order_statistics() {
        let v: Vec<f32> = (0..101).map(|i| i as f32).collect();
        assert_eq!(percentiles(&v, 0.5, 99.5), (0.5, 99.5));
        assert_eq!(percentiles(&v, 0.0, 100.0), (0.0, 100.0));
    }

    #[test]
    fn bad_settings_are_refused() {
        for p in [
            Preprocess {
                channels: 2,
                ..spec(8)
            },
            Preprocess { size: 0, ..spec(8) },
            Preprocess {
                crop: Some(1.5),
                ..spec(8)
            },
            Preprocess {
                stretch: Stretch::Log { a: -1.0 },
                ..spec(8)
            },
            Preprocess {
                scale: Scale::Percentile {
                    low: 90.0,
                    high: 10.0,
                },
                ..spec(8)
            },
        ] {
            assert!(p.validate().is_err(), "{p:?}");
        }
        // serde refuses unknown fields, so a typo in spec.json is an error, not a default
        let json = r#"{"size":64,"channels":1,"filter":"triangle","crop":null,"scale":{"kind":"auto"},
            "stretch":{"kind":"linear"},"missing":"zero","normalisation":{"mean":[0],"std":[1]}}"#;
        assert!(serde_json::from_str::<Preprocess>(json).is_err());
    }
}
