//! Augmentation of square images: the eight flips and quarter turns (a merger has no preferred
//! orientation on the sky), and, to make simulated images look observed, a Gaussian
//! point-spread function of random width and Gaussian noise.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

/// What to apply to each training image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Augment {
    /// Random horizontal/vertical flips and 90-degree rotations.
    pub dihedral: bool,
    /// Standard deviation of added Gaussian noise (0 = none), in [0, 1] pixel units.
    pub noise: f32,
    /// Largest FWHM, in pixels of the network's input, of a Gaussian point-spread function
    /// applied to each image with a FWHM drawn uniformly from 0 to this (0 = none). Blurring
    /// comes before the noise, as in a telescope.
    #[serde(default)]
    pub blur_fwhm: f32,
}

impl Augment {
    /// No augmentation.
    pub fn none() -> Augment {
        Augment {
            dihedral: false,
            noise: 0.0,
            blur_fwhm: 0.0,
        }
    }

    /// Whether anything is applied.
    pub fn is_active(&self) -> bool {
        self.dihedral || self.noise > 0.0 || self.blur_fwhm > 0.0
    }

    /// Applies a random transform to one planar `channels x size x size` image in place.
    pub fn apply(&self, image: &mut [f32], channels: usize, size: usize, rng: &mut ChaCha8Rng) {
        if self.dihedral {
            let t = rng.random_range(0..8u8);
            dihedral(image, channels, size, t);
        }
        if self.blur_fwhm > 0.0 {
            let fwhm = rng.random_range(0.0..self.blur_fwhm);
            gaussian_blur(image, channels, size, fwhm / FWHM_PER_SIGMA);
        }
        if self.noise > 0.0 {
            if let Ok(normal) = Normal::new(0.0f32, self.noise) {
                image.iter_mut().for_each(|v| *v += normal.sample(rng));
            }
        }
    }
}

/// FWHM of a Gaussian over its standard deviation, 2 sqrt(2 ln 2).
const FWHM_PER_SIGMA: f32 = 2.354_82;

/// Convolves each `size x size` plane with a normalised Gaussian of standard deviation `sigma`
/// pixels (separable, truncated at 3 sigma, edges extended), so a flat image stays flat and the
/// total light away from the edges is kept. Nothing happens below 0.1 pixel.
pub fn gaussian_blur(image: &mut [f32], channels: usize, size: usize, sigma: f32) {
    if sigma.is_nan() || sigma < 0.1 || size == 0 {
        return;
    }
    let radius = (3.0 * sigma).ceil() as isize;
    let mut kernel: Vec<f32> = (-radius..=radius)
        .map(|d| (-0.5 * (d as f32 / sigma).powi(2)).exp())
        .collect();
    let total: f32 = kernel.iter().sum();
    kernel.iter_mut().for_each(|k| *k /= total);
    let n = size * size;
    let last = size as isize - 1;
    let mut tmp = vec![0.0f32; n];
    for c in 0..channels {
        let plane = &mut image[c * n..(c + 1) * n];
        // rows, then columns; samples beyond an edge repeat the edge pixel
        for y in 0..size {
            for x in 0..size {
                tmp[y * size + x] = kernel
                    .iter()
                    .zip(-radius..=radius)
                    .map(|(k, d)| k * plane[y * size + (x as isize + d).clamp(0, last) as usize])
                    .sum();
            }
        }
        for y in 0..size {
            for x in 0..size {
                plane[y * size + x] = kernel
                    .iter()
                    .zip(-radius..=radius)
                    .map(|(k, d)| k * tmp[(y as isize + d).clamp(0, last) as usize * size + x])
                    .sum();
            }
        }
    }
}

/// Applies element `t` (0..8) of the dihedral group: bit 2 transposes, bit 1 flips rows,
/// bit 0 flips columns.
pub fn dihedral(image: &mut [f32], channels: usize, size: usize, t: u8) {
    if t == 0 {
        return;
    }
    let n = size * size;
    let mut plane = vec![0.0f32; n];
    for c in 0..channels {
        let src = &mut image[c * n..(c + 1) * n];
        for y in 0..size {
            for x in 0..size {
                let (mut sy, mut sx) = if t & 4 != 0 { (x, y) } else { (y, x) };
                if t & 2 != 0 {
                    sy = size - 1 - sy;
                }
                if t & 1 != 0 {
                    sx = size - 1 - sx;
                }
                plane[y * size + x] = src[sy * size + sx];
            }
        }
        src.copy_from_slice(&plane);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eight_transforms_are_distinct_and_invertible() {
        let base: Vec<f32> = (0..9).map(|v| v as f32).collect();
        let mut seen = Vec::new();
        for t in 0..8 {
            let mut img = base.clone();
            dihedral(&mut img, 1, 3, t);
            let mut sorted = img.clone();
            sorted.sort_by(f32::total_cmp);
            assert_eq!(sorted, base, "a permutation of the pixels");
            assert!(!seen.contains(&img), "transform {t} repeats another");
            seen.push(img);
        }
        // flipping columns twice is the identity; t=1 on [[0,1,2],..] gives [[2,1,0],..]
        let mut img = base.clone();
        dihedral(&mut img, 1, 3, 1);
        assert_eq!(&img[..3], &[2.0, 1.0, 0.0]);
        dihedral(&mut img, 1, 3, 1);
        assert_eq!(img, base);
    }

    #[test]
    fn the_blur_keeps_flat_images_flat_and_a_point_becomes_the_stated_gaussian() {
        let mut flat = vec![-2.0f32; 2 * 16 * 16];
        gaussian_blur(&mut flat, 2, 16, 1.5);
        assert!(flat.iter().all(|v| (v + 2.0).abs() < 1e-5));
        // a point in the middle: total light kept, and the second moment is sigma^2 per axis
        let (size, sigma) = (33usize, 2.0f32);
        let mut point = vec![0.0f32; size * size];
        point[16 * size + 16] = 1.0;
        gaussian_blur(&mut point, 1, size, sigma);
        let total: f32 = point.iter().sum();
        assert!((total - 1.0).abs() < 1e-5, "{total}");
        let var_x: f32 = (0..size * size)
            .map(|i| point[i] * ((i % size) as f32 - 16.0).powi(2))
            .sum();
        // truncation at 3 sigma removes 1.1% of the variance
        assert!((var_x / (sigma * sigma) - 1.0).abs() < 0.02, "{var_x}");
        let peak = point[16 * size + 16];
        let expect = 1.0 / (2.0 * std::f32::consts::PI * sigma * sigma);
        assert!((peak / expect - 1.0).abs() < 0.02, "{peak} vs {expect}");
        // below a tenth of a pixel nothing changes
        let before = point.clone();
        gaussian_blur(&mut point, 1, size, 0.05);
        assert_eq!(point, before);
    }

    #[test]
    fn blur_augmentation_draws_its_width_from_the_seed() {
        use rand::SeedableRng;
        let aug = Augment {
            dihedral: false,
            noise: 0.0,
            blur_fwhm: 4.0,
        };
        let mut base = vec![0.0f32; 17 * 17];
        base[8 * 17 + 8] = 1.0;
        let run = |seed| {
            let mut img = base.clone();
            aug.apply(&mut img, 1, 17, &mut ChaCha8Rng::seed_from_u64(seed));
            img
        };
        assert_eq!(run(3), run(3));
        let peaks: Vec<f32> = (0..8).map(|s| run(s)[8 * 17 + 8]).collect();
        assert!(peaks.iter().all(|&p| p < 1.0 && p > 0.0), "{peaks:?}");
        assert!(
            peaks.iter().any(|&p| (p - peaks[0]).abs() > 1e-3),
            "{peaks:?}"
        );
    }
}
