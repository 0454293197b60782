//! Structural similarity (SSIM, Wang et al. 2004), computed exactly as scikit-image's
//! `structural_similarity(im1, im2, gaussian_weights=True, sigma=1.5,
//! use_sample_covariance=False, data_range=R)` does, so numbers can be compared with the
//! paper's (mean SSIM 0.9 between a query and its recommendations) and with Python tools.
//!
//! The recipe, step for step as scikit-image 0.26 runs it:
//!
//! * local statistics through a Gaussian filter with sigma 1.5 truncated at 3.5 sigma: radius
//!   `int(3.5 * 1.5 + 0.5) = 5`, an 11-tap kernel `exp(-x²/2σ²)` normalised to sum 1, applied
//!   separably (rows axis, then columns axis) as `scipy.ndimage.gaussian_filter` does;
//! * boundary mode `reflect` (scipy's half-sample symmetric `d c b a | a b c d | d c b a`);
//! * population (co)variances, `K1 = 0.01`, `K2 = 0.03`, `C1 = (K1 R)²`, `C2 = (K2 R)²`;
//! * the SSIM map is cropped by `pad = (11 - 1) / 2 = 5` pixels on every border and averaged;
//! * several channels: the mean of the per-channel SSIMs (`channel_axis`).
//!
//! Everything is computed in `f64`. Images smaller than 11 pixels on a side are refused, as
//! scikit-image refuses them.

use crate::Result;
use deepgalaxy_core::{Error, Image};

/// Gaussian sigma of the window (Wang et al. 2004).
pub const SIGMA: f64 = 1.5;
/// Truncation of the Gaussian in sigmas, scikit-image's choice that gives an 11-tap window.
pub const TRUNCATE: f64 = 3.5;
/// Stabiliser constant for the luminance term.
pub const K1: f64 = 0.01;
/// Stabiliser constant for the contrast-structure term.
pub const K2: f64 = 0.03;

/// Radius of the Gaussian window, `int(TRUNCATE * SIGMA + 0.5)` as in scipy.ndimage.
const RADIUS: usize = (TRUNCATE * SIGMA + 0.5) as usize;
/// Side of the window (11): the smallest image side SSIM accepts.
pub const WIN_SIZE: usize = 2 * RADIUS + 1;

/// Mean SSIM of two images of the same shape, the mean over channels when there are several.
/// `data_range` is the range the pixel values can span (1.0 for model input in [0, 1], 255 for
/// 8-bit pictures); it sets the stabilisers `C1`, `C2`.
///
/// Errors when the shapes differ, a side is shorter than [`WIN_SIZE`], `data_range` is not a
/// positive finite number, or a pixel is NaN or infinite.
pub fn ssim(a: &Image, b: &Image, data_range: f64) -> Result<f64> {
    if (a.channels, a.height, a.width) != (b.channels, b.height, b.width) {
        return Err(Error::setting(
            "SSIM images",
            format!(
                "shapes differ: {}x{}x{} and {}x{}x{} (channels x height x width)",
                a.channels, a.height, a.width, b.channels, b.height, b.width
            ),
        )
        .into());
    }
    let mut sum = 0.0;
    for c in 0..a.channels {
        sum += ssim_plane(a.plane(c), b.plane(c), a.height, a.width, data_range)?;
    }
    Ok(sum / a.channels as f64)
}

/// Mean SSIM of two single-channel `height x width` images stored row after row.
/// See [`ssim`] for the errors.
pub fn ssim_plane(
    a: &[f32],
    b: &[f32],
    height: usize,
    width: usize,
    data_range: f64,
) -> Result<f64> {
    if a.len() != height * width || b.len() != height * width {
        return Err(Error::setting(
            "SSIM images",
            format!(
                "{height}x{width} needs {} samples, got {} and {}",
                height * width,
                a.len(),
                b.len()
            ),
        )
        .into());
    }
    if height < WIN_SIZE || width < WIN_SIZE {
        return Err(Error::setting(
            "SSIM images",
            format!("{height}x{width} is smaller than the {WIN_SIZE}x{WIN_SIZE} window"),
        )
        .into());
    }
    if !(data_range.is_finite() && data_range > 0.0) {
        return Err(Error::setting(
            "SSIM data range",
            format!("{data_range} is not a positive number"),
        )
        .into());
    }
    if a.iter().chain(b).any(|v| !v.is_finite()) {
        return Err(Error::setting(
            "SSIM images",
            "NaN or infinite pixels (preprocess the images first)",
        )
        .into());
    }
    let x: Vec<f64> = a.iter().map(|&v| f64::from(v)).collect();
    let y: Vec<f64> = b.iter().map(|&v| f64::from(v)).collect();
    let xx: Vec<f64> = x.iter().map(|v| v * v).collect();
    let yy: Vec<f64> = y.iter().map(|v| v * v).collect();
    let xy: Vec<f64> = x.iter().zip(&y).map(|(p, q)| p * q).collect();

    let kernel = gaussian_kernel();
    let blur = |img: &[f64]| gaussian_filter(img, height, width, &kernel);
    let (ux, uy, uxx, uyy, uxy) = (blur(&x), blur(&y), blur(&xx), blur(&yy), blur(&xy));

    let c1 = (K1 * data_range).powi(2);
    let c2 = (K2 * data_range).powi(2);
    let pad = (WIN_SIZE - 1) / 2;
    let mut sum = 0.0;
    for r in pad..height - pad {
        for c in pad..width - pad {
            let i = r * width + c;
            let (mx, my) = (ux[i], uy[i]);
            let vx = uxx[i] - mx * mx;
            let vy = uyy[i] - my * my;
            let vxy = uxy[i] - mx * my;
            let num = (2.0 * mx * my + c1) * (2.0 * vxy + c2);
            let den = (mx * mx + my * my + c1) * (vx + vy + c2);
            sum += num / den;
        }
    }
    Ok(sum / ((height - 2 * pad) * (width - 2 * pad)) as f64)
}

/// scipy.ndimage's `_gaussian_kernel1d(sigma, 0, radius)`: `exp(-x²/2σ²)` for
/// `x = -radius..=radius`, normalised to sum 1.
fn gaussian_kernel() -> [f64; WIN_SIZE] {
    let mut k = [0.0; WIN_SIZE];
    let s2 = SIGMA * SIGMA;
    for (i, w) in k.iter_mut().enumerate() {
        let x = i as f64 - RADIUS as f64;
        *w = (-0.5 / s2 * x * x).exp();
    }
    let total: f64 = k.iter().sum();
    k.iter_mut().for_each(|w| *w /= total);
    k
}

/// scipy.ndimage mode `reflect`: index `i` (possibly outside `0..n`) mirrored about the pixel
/// edges, periodic with period `2n` (`d c b a | a b c d | d c b a`).
fn reflect(i: isize, n: usize) -> usize {
    let period = 2 * n as isize;
    let m = i.rem_euclid(period) as usize;
    if m < n {
        m
    } else {
        2 * n - 1 - m
    }
}

/// Separable Gaussian filter, first along the rows axis (vertical), then along the columns.
fn gaussian_filter(img: &[f64], height: usize, width: usize, k: &[f64; WIN_SIZE]) -> Vec<f64> {
    let r = RADIUS as isize;
    let mut tmp = vec![0.0; img.len()];
    for row in 0..height {
        for (t, &w) in k.iter().enumerate() {
            let src = reflect(row as isize + t as isize - r, height) * width;
            let dst = row * width;
            for col in 0..width {
                tmp[dst + col] += w * img[src + col];
            }
        }
    }
    let mut out = vec![0.0; img.len()];
    for row in 0..height {
        let line = &tmp[row * width..(row + 1) * width];
        for col in 0..width {
            let mut acc = 0.0;
            for (t, &w) in k.iter().enumerate() {
                acc += w * line[reflect(col as isize + t as isize - r, width)];
            }
            out[row * width + col] = acc;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use deepgalaxy_core::SampleType;
    use rand::{Rng, SeedableRng};

    fn noise(h: usize, w: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..h * w).map(|_| rng.random::<f32>()).collect()
    }

    #[test]
    fn window_is_the_11_tap_gaussian() {
        assert_eq!(WIN_SIZE, 11);
        let k = gaussian_kernel();
        assert!((k.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        // centre tap of a 1.5-sigma Gaussian truncated at 5: 1 / sum(exp(-x²/4.5))
        let total: f64 = (-5..=5).map(|x: i32| (-(x * x) as f64 / 4.5).exp()).sum();
        assert!((k[5] - 1.0 / total).abs() < 1e-15);
        assert_eq!(k[0], k[10]);
    }

    #[test]
    fn reflect_matches_scipy() {
        // scipy 'reflect' on n = 4: ... 1 0 | 0 1 2 3 | 3 2 ...
        let got: Vec<usize> = (-5..9).map(|i| reflect(i, 4)).collect();
        assert_eq!(got, vec![3, 3, 2, 1, 0, 0, 1, 2, 3, 3, 2, 1, 0, 0]);
        assert_eq!(reflect(-3, 1), 0);
    }

    #[test]
    fn identical_images_score_one() {
        let a = noise(32, 40, 1);
        let s = ssim_plane(&a, &a, 32, 40, 1.0).unwrap();
        assert!((s - 1.0).abs() < 1e-12, "{s}");
    }

    #[test]
    fn symmetric_and_bounded() {
        let a = noise(30, 30, 2);
        let b = noise(30, 30, 3);
        let ab = ssim_plane(&a, &b, 30, 30, 1.0).unwrap();
        let ba = ssim_plane(&b, &a, 30, 30, 1.0).unwrap();
        assert!((ab - ba).abs() < 1e-14);
        assert!((-1.0..=1.0).contains(&ab));
        // independent uniform noise is nearly uncorrelated
        assert!(ab.abs() < 0.1, "{ab}");
        // a negated image anticorrelates: SSIM well below zero
        let neg: Vec<f32> = a.iter().map(|v| 1.0 - v).collect();
        let an = ssim_plane(&a, &neg, 30, 30, 1.0).unwrap();
        assert!((-1.0..-0.5).contains(&an), "{an}");
    }

    #[test]
    fn channels_average() {
        let (a0, a1) = (noise(16, 16, 4), noise(16, 16, 5));
        let b1 = noise(16, 16, 6);
        let img =
            |p: &[f32], q: &[f32]| Image::new(2, 16, 16, [p, q].concat(), SampleType::F32).unwrap();
        let two = ssim(&img(&a0, &a1), &img(&a0, &b1), 1.0).unwrap();
        let single = ssim_plane(&a1, &b1, 16, 16, 1.0).unwrap();
        assert!((two - (1.0 + single) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn bad_input_is_an_error() {
        let a = noise(10, 20, 7);
        assert!(ssim_plane(&a, &a, 10, 20, 1.0).is_err());
        let b = noise(20, 20, 7);
        assert!(ssim_plane(&b, &b, 20, 20, 0.0).is_err());
        assert!(ssim_plane(&b, &b[..399], 20, 20, 1.0).is_err());
        let mut c = b.clone();
        c[3] = f32::NAN;
        assert!(ssim_plane(&b, &c, 20, 20, 1.0).is_err());
    }
}
