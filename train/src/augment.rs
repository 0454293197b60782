//! Augmentation of square images: the eight flips and quarter turns (a merger has no preferred
//! orientation on the sky), and optional Gaussian noise.

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
}

impl Augment {
    /// No augmentation.
    pub fn none() -> Augment {
        Augment {
            dihedral: false,
            noise: 0.0,
        }
    }

    /// Whether anything is applied.
    pub fn is_active(&self) -> bool {
        self.dihedral || self.noise > 0.0
    }

    /// Applies a random transform to one planar `channels x size x size` image in place.
    pub fn apply(&self, image: &mut [f32], channels: usize, size: usize, rng: &mut ChaCha8Rng) {
        if self.dihedral {
            let t = rng.random_range(0..8u8);
            dihedral(image, channels, size, t);
        }
        if self.noise > 0.0 {
            if let Ok(normal) = Normal::new(0.0f32, self.noise) {
                image.iter_mut().for_each(|v| *v += normal.sample(rng));
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
}
