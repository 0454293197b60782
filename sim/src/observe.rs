//! Mock observations: what a telescope adds to the simulated surface brightness before the
//! stretch. A point-spread function (Gaussian or Moffat, its FWHM in kpc at the galaxies), a
//! uniform sky and Gaussian noise per pixel at a stated depth, all in the surface-brightness
//! unit of the images (Lsun/pc^2 at a mass-to-light ratio of 1, [`crate::render`]), and
//! deterministic for a seed, so training images can look like SDSS or HST images.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ic::normal;

/// A point-spread function.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Psf {
    /// Gaussian of this full width at half maximum (kpc).
    Gaussian {
        /// FWHM, kpc.
        fwhm_kpc: f64,
    },
    /// Moffat profile `(1 + (r/alpha)^2)^(-beta)` of this FWHM (kpc) and index `beta`
    /// (2.5-4.5 for ground-based seeing; larger wings as beta falls).
    Moffat {
        /// FWHM, kpc.
        fwhm_kpc: f64,
        /// Power index, above 1.
        beta: f64,
    },
}

impl Psf {
    /// FWHM in kpc.
    pub fn fwhm_kpc(&self) -> f64 {
        match *self {
            Psf::Gaussian { fwhm_kpc } | Psf::Moffat { fwhm_kpc, .. } => fwhm_kpc,
        }
    }

    /// The profile at radius `r` (same unit as the FWHM), up to normalisation.
    fn profile(&self, r: f64) -> f64 {
        match *self {
            Psf::Gaussian { fwhm_kpc } => {
                let sigma = fwhm_kpc / (8.0 * 2f64.ln()).sqrt();
                (-0.5 * (r / sigma).powi(2)).exp()
            }
            Psf::Moffat { fwhm_kpc, beta } => {
                let alpha = fwhm_kpc / (2.0 * (2f64.powf(1.0 / beta) - 1.0).sqrt());
                (1.0 + (r / alpha).powi(2)).powf(-beta)
            }
        }
    }

    /// The kernel on pixels of `kpc_per_pixel`, `2 h + 1` wide with `h` covering 4 FWHM
    /// (each pixel integrated on a 5x5 grid, so a PSF narrower than a pixel stays exact),
    /// normalised to sum 1.
    pub fn kernel(&self, kpc_per_pixel: f64) -> (usize, Vec<f64>) {
        const SUB: usize = 5;
        let h = ((4.0 * self.fwhm_kpc() / kpc_per_pixel).ceil() as usize).max(1);
        let side = 2 * h + 1;
        let mut k = vec![0.0; side * side];
        for y in 0..side {
            for x in 0..side {
                let mut sum = 0.0;
                for sy in 0..SUB {
                    for sx in 0..SUB {
                        let dx = x as f64 - h as f64 + (sx as f64 + 0.5) / SUB as f64 - 0.5;
                        let dy = y as f64 - h as f64 + (sy as f64 + 0.5) / SUB as f64 - 0.5;
                        sum += self.profile(dx.hypot(dy) * kpc_per_pixel);
                    }
                }
                k[y * side + x] = sum;
            }
        }
        let total: f64 = k.iter().sum();
        k.iter_mut().for_each(|v| *v /= total);
        (h, k)
    }
}

/// What the telescope adds; every part optional.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// Blurring.
    pub psf: Option<Psf>,
    /// Uniform sky added to every pixel (Lsun/pc^2).
    pub sky: f64,
    /// Standard deviation of the Gaussian noise per pixel (Lsun/pc^2): the 1-sigma depth.
    pub noise: f64,
}

impl Observation {
    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::Config(what));
        if !(self.sky.is_finite() && self.sky >= 0.0) {
            return bad(format!("sky {} is not a surface brightness >= 0", self.sky));
        }
        if !(self.noise.is_finite() && self.noise >= 0.0) {
            return bad(format!(
                "noise {} is not a surface brightness >= 0",
                self.noise
            ));
        }
        match self.psf {
            Some(p) if !(p.fwhm_kpc().is_finite() && p.fwhm_kpc() > 0.0) => {
                bad(format!("PSF FWHM {} kpc is not positive", p.fwhm_kpc()))
            }
            Some(Psf::Moffat { beta, .. }) if !(beta.is_finite() && beta > 1.0) => {
                bad(format!("Moffat beta {beta} is not above 1"))
            }
            _ => Ok(()),
        }
    }

    /// Whether it changes anything.
    pub fn is_some(&self) -> bool {
        self.psf.is_some() || self.sky > 0.0 || self.noise > 0.0
    }

    /// Observes the `size` x `size` surface brightness `sb` (row-major) with pixels of
    /// `kpc_per_pixel`: PSF (flux beyond the frame is lost, as on a detector), then sky, then
    /// noise drawn from `seed`.
    pub fn apply(&self, sb: &[f64], size: usize, kpc_per_pixel: f64, seed: u64) -> Vec<f64> {
        let mut out = match self.psf {
            Some(psf) => convolve(sb, size, &psf.kernel(kpc_per_pixel)),
            None => sb.to_vec(),
        };
        if self.sky > 0.0 || self.noise > 0.0 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            for v in &mut out {
                *v += self.sky + self.noise * normal(&mut rng);
            }
        }
        out
    }
}

/// `img` convolved with the kernel `(h, k)` (`2 h + 1` wide), zero outside the frame.
fn convolve(img: &[f64], size: usize, (h, k): &(usize, Vec<f64>)) -> Vec<f64> {
    let (n, h) = (size as i64, *h as i64);
    let side = (2 * h + 1) as usize;
    let mut out = vec![0.0; size * size];
    for y in 0..n {
        for x in 0..n {
            let v = img[(y * n + x) as usize];
            if v == 0.0 {
                continue;
            }
            // spread this pixel's light over its neighbours
            for ky in -h..=h {
                let ty = y + ky;
                if ty < 0 || ty >= n {
                    continue;
                }
                for kx in -h..=h {
                    let tx = x + kx;
                    if tx >= 0 && tx < n {
                        out[(ty * n + tx) as usize] +=
                            v * k[((ky + h) as usize) * side + (kx + h) as usize];
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Full width at half maximum of the central row of a centred image, in pixels, by
    /// linear interpolation between the samples around half maximum.
    fn fwhm_pixels(img: &[f64], size: usize) -> f64 {
        let row = &img[(size / 2) * size..(size / 2 + 1) * size];
        let peak = row[size / 2];
        let half = 0.5 * peak;
        let mut x = size / 2;
        while row[x + 1] > half {
            x += 1;
        }
        let f = (row[x] - half) / (row[x] - row[x + 1]);
        2.0 * ((x - size / 2) as f64 + f)
    }

    #[test]
    fn the_psf_keeps_the_flux_and_has_the_width_asked() {
        let size = 101;
        let mut point = vec![0.0; size * size];
        point[50 * size + 50] = 1000.0;
        for psf in [
            Psf::Gaussian { fwhm_kpc: 2.0 },
            Psf::Moffat {
                fwhm_kpc: 2.0,
                beta: 3.0,
            },
        ] {
            let obs = Observation {
                psf: Some(psf),
                ..Observation::default()
            };
            // 0.25 kpc pixels: the FWHM is 8 pixels
            let img = obs.apply(&point, size, 0.25, 1);
            let flux: f64 = img.iter().sum();
            assert!((flux / 1000.0 - 1.0).abs() < 1e-9, "{psf:?}: {flux}");
            let w = fwhm_pixels(&img, size);
            assert!((w / 8.0 - 1.0).abs() < 0.03, "{psf:?}: FWHM {w} pixels");
        }
        // a PSF far narrower than a pixel leaves the image as it was
        let sharp = Observation {
            psf: Some(Psf::Gaussian { fwhm_kpc: 0.001 }),
            ..Observation::default()
        };
        let img = sharp.apply(&point, size, 0.25, 1);
        assert!((img[50 * size + 50] - 1000.0).abs() < 1e-6);
    }

    #[test]
    fn sky_and_noise_have_the_level_and_depth_asked_and_follow_the_seed() {
        let size = 200;
        let blank = vec![0.0; size * size];
        let obs = Observation {
            psf: None,
            sky: 5.0,
            noise: 2.0,
        };
        let img = obs.apply(&blank, size, 1.0, 42);
        let n = img.len() as f64;
        let mean = img.iter().sum::<f64>() / n;
        let sd = (img.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        assert!((mean - 5.0).abs() < 0.02, "mean {mean}");
        assert!((sd / 2.0 - 1.0).abs() < 0.02, "sd {sd}");
        assert_eq!(img, obs.apply(&blank, size, 1.0, 42));
        assert_ne!(img, obs.apply(&blank, size, 1.0, 43));
    }

    #[test]
    fn bad_settings_are_refused() {
        let bad = [
            Observation {
                sky: -1.0,
                ..Observation::default()
            },
            Observation {
                noise: f64::NAN,
                ..Observation::default()
            },
            Observation {
                psf: Some(Psf::Gaussian { fwhm_kpc: 0.0 }),
                ..Observation::default()
            },
            Observation {
                psf: Some(Psf::Moffat {
                    fwhm_kpc: 1.0,
                    beta: 1.0,
                }),
                ..Observation::default()
            },
        ];
        for o in bad {
            assert!(o.validate().is_err(), "{o:?}");
        }
        assert!(Observation::default().validate().is_ok());
        assert!(!Observation::default().is_some());
    }
}
