//! SSIM parity with scikit-image: `tests/peers/ssim_peer.py` computes
//! `structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
//! data_range=R)` on the same pixels, and ours must agree within 1e-4.
//!
//! The interpreter comes from `DEEPGALAXY_PYTHON` (a venv with numpy and scikit-image); when
//! it is unset the test fails: a missing peer is a failure, never a skip.
#![cfg(feature = "peers")]

use std::path::PathBuf;
use std::process::Command;

use deepgalaxy_core::{Image, SampleType};
use deepgalaxy_runtime::library::ssim::ssim;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

fn python() -> PathBuf {
    match std::env::var_os("DEEPGALAXY_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => panic!(
            "DEEPGALAXY_PYTHON is not set: point it at a Python with numpy and scikit-image \
             (e.g. the venv .ci/run creates); the SSIM peer check cannot be skipped"
        ),
    }
}

fn script() -> PathBuf {
    deepgalaxy_core::source_dir(env!("CARGO_MANIFEST_DIR")).join("../tests/peers/ssim_peer.py")
}

/// A smooth "galaxy": two elliptical Gaussian blobs on a faint background, in [0, scale].
fn galaxy(c: usize, h: usize, w: usize, shift: (f32, f32), scale: f32) -> Image {
    let mut data = Vec::with_capacity(c * h * w);
    for ch in 0..c {
        for y in 0..h {
            for x in 0..w {
                let (fy, fx) = (y as f32 - shift.0, x as f32 - shift.1);
                let b1 = (-((fx - 0.4 * w as f32).powi(2) / 30.0
                    + (fy - 0.5 * h as f32).powi(2) / 60.0))
                    .exp();
                let b2 = 0.6
                    * (-((fx - 0.7 * w as f32).powi(2) / 15.0
                        + (fy - 0.35 * h as f32).powi(2) / 15.0))
                        .exp();
                let tint = 1.0 - 0.2 * ch as f32;
                data.push(scale * (0.05 + 0.9 * tint * (b1 + b2).min(1.0)));
            }
        }
    }
    Image::new(c, h, w, data, SampleType::F32).unwrap()
}

fn map(img: &Image, mut f: impl FnMut(usize, f32) -> f32) -> Image {
    let data = img.data.iter().enumerate().map(|(i, &v)| f(i, v)).collect();
    Image::new(img.channels, img.height, img.width, data, img.sample).unwrap()
}

fn noise(c: usize, h: usize, w: usize, seed: u64, scale: f32) -> Image {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let data = (0..c * h * w)
        .map(|_| scale * rng.random::<f32>())
        .collect();
    Image::new(c, h, w, data, SampleType::F32).unwrap()
}

/// 3x3 box blur with clamped borders, per channel.
fn blur(img: &Image) -> Image {
    let (h, w) = (img.height as isize, img.width as isize);
    let mut out = img.clone();
    for c in 0..img.channels {
        let p = img.plane(c);
        for y in 0..h {
            for x in 0..w {
                let mut s = 0.0;
                for dy in -1..=1 {
                    for dx in -1..=1 {
                        let yy = (y + dy).clamp(0, h - 1);
                        let xx = (x + dx).clamp(0, w - 1);
                        s += p[(yy * w + xx) as usize];
                    }
                }
                out.data[c * (h * w) as usize + (y * w + x) as usize] = s / 9.0;
            }
        }
    }
    out
}

#[test]
fn ssim_matches_scikit_image() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let gauss = Normal::new(0.0f32, 0.05).unwrap();
    let g64 = galaxy(1, 64, 64, (0.0, 0.0), 1.0);
    let g3750 = galaxy(1, 37, 50, (0.0, 0.0), 1.0);
    let rgb = galaxy(3, 40, 45, (0.0, 0.0), 255.0);
    let cases: Vec<(&str, Image, Image, f64)> = vec![
        (
            "64x64 + gaussian noise",
            g64.clone(),
            map(&g64, |_, v| v + gauss.sample(&mut rng)),
            1.0,
        ),
        (
            "64x64 shifted by (3, -2) px",
            g64.clone(),
            galaxy(1, 64, 64, (3.0, -2.0), 1.0),
            1.0,
        ),
        ("37x50 blurred", g3750.clone(), blur(&g3750), 1.0),
        (
            "37x50 independent noise",
            noise(1, 37, 50, 1, 1.0),
            noise(1, 37, 50, 2, 1.0),
            1.0,
        ),
        (
            "3x40x45 RGB, range 255, darkened + noise",
            rgb.clone(),
            map(&rgb, |i, v| {
                0.8 * v + 10.0 * ((i * 7919 % 13) as f32 / 13.0)
            }),
            255.0,
        ),
        (
            "11x11, the smallest accepted",
            noise(1, 11, 11, 3, 1.0),
            noise(1, 11, 11, 4, 1.0),
            1.0,
        ),
        (
            "12x200 strip, data range 2",
            noise(1, 12, 200, 5, 1.0),
            map(&noise(1, 12, 200, 5, 1.0), |i, v| {
                v * (1.0 + (i % 3) as f32 * 0.1)
            }),
            2.0,
        ),
    ];

    let dir = tempfile::tempdir().unwrap();
    let mut jobs = Vec::new();
    for (i, (_, a, b, range)) in cases.iter().enumerate() {
        let write = |img: &Image, name: String| {
            let p = dir.path().join(name);
            let bytes: Vec<u8> = img.data.iter().flat_map(|v| v.to_le_bytes()).collect();
            std::fs::write(&p, bytes).unwrap();
            p
        };
        let shape = if a.channels == 1 {
            vec![a.height, a.width]
        } else {
            vec![a.channels, a.height, a.width]
        };
        jobs.push(serde_json::json!({
            "a": write(a, format!("{i}a.f32")),
            "b": write(b, format!("{i}b.f32")),
            "shape": shape,
            "data_range": range,
        }));
    }
    let jobs_file = dir.path().join("jobs.json");
    std::fs::write(&jobs_file, serde_json::to_vec(&jobs).unwrap()).unwrap();
    let out = Command::new(python())
        .arg(script())
        .arg("--jobs")
        .arg(&jobs_file)
        .output()
        .expect("cannot start DEEPGALAXY_PYTHON");
    assert!(
        out.status.success(),
        "ssim_peer.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Vec<f64> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(theirs.len(), cases.len());
    for ((name, a, b, range), want) in cases.iter().zip(theirs) {
        let ours = ssim(a, b, *range).unwrap();
        println!(
            "{name}: ours {ours:.10} skimage {want:.10} diff {:.1e}",
            (ours - want).abs()
        );
        assert!(
            (ours - want).abs() < 1e-4,
            "{name}: ours {ours}, skimage {want}"
        );
    }
}
