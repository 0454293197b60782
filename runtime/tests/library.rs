//! The model-independent half of `deepgalaxy index` / `search`, end to end on files: images are
//! read and preprocessed by deepgalaxy-core, "embedded" by a stand-in encoder (4x4 block means
//! of the 16x16 model input, a 16-D latent), indexed, written, read back, searched, checked with
//! SSIM, turned into a time estimate and drawn as a gallery.

use std::path::Path;

use deepgalaxy_core::time::TimeTarget;
use deepgalaxy_core::{image::load, preprocess, Image, Preprocess};
use deepgalaxy_runtime::drawing::gallery::{write_gallery, Tile};
use deepgalaxy_runtime::library::estimate::{estimate_time, Weighting};
use deepgalaxy_runtime::library::index::{Entry, LatentIndex, ModelIdentity};
use deepgalaxy_runtime::library::search::{Searcher, Strategy};
use deepgalaxy_runtime::library::ssim::ssim;

const STEPS: usize = 30;

/// Frame `i` of a toy merger: two blobs approaching each other as `i` grows.
fn frame(i: usize, jitter: u32) -> image::GrayImage {
    let sep = 30.0 - 0.8 * i as f32;
    image::GrayImage::from_fn(48, 48, |x, y| {
        let (fx, fy) = (x as f32, y as f32);
        let b = |cx: f32, cy: f32, r2: f32| (-((fx - cx).powi(2) + (fy - cy).powi(2)) / r2).exp();
        let v = b(24.0 - sep / 2.0, 24.0, 18.0) + 0.7 * b(24.0 + sep / 2.0, 24.0, 10.0);
        let noise = ((x * 31 + y * 17 + jitter * 7) % 11) as f32 / 11.0 * jitter as f32;
        image::Luma([(v.min(1.0) * 230.0 + 10.0 + noise).min(255.0) as u8])
    })
}

fn model_input(path: &Path, p: &Preprocess) -> Image {
    preprocess(&load(path).unwrap(), p, path).unwrap()
}

/// The stand-in encoder: 4x4 block means of a 16x16 grey input.
fn embed(img: &Image) -> Vec<f32> {
    let mut z = vec![0.0; 16];
    for y in 0..16 {
        for x in 0..16 {
            z[(y / 4) * 4 + x / 4] += img.data[y * 16 + x] / 16.0;
        }
    }
    z
}

#[test]
fn index_search_ssim_estimate_and_gallery() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("images")).unwrap();
    let p = Preprocess {
        size: 16,
        ..Preprocess::default()
    };
    let mut vectors = Vec::new();
    let mut entries = Vec::new();
    for i in 0..STEPS {
        let file = format!("images/frame{i:02}.png");
        let path = dir.path().join(&file);
        frame(i, 0).save(&path).unwrap();
        vectors.extend(embed(&model_input(&path, &p)));
        entries.push(Entry {
            id_str: format!("toy_snap{i:02}"),
            file,
            label: Some(i as u32),
            t_myr: Some(5.0 * i as f64),
            t_peri_myr: None,
            simulation: None,
        });
    }
    let model = ModelIdentity {
        model_digest: "0".repeat(64),
        training_digest: None,
        preprocess: p.clone(),
    };
    let index_path = dir.path().join("library.idx");
    LatentIndex::new(16, model, vectors, entries)
        .unwrap()
        .save(&index_path)
        .unwrap();

    // a model with another latent size cannot use this library
    let e = LatentIndex::load(&index_path, Some(32))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("library.idx") && e.contains("latent size 16"),
        "{e}"
    );

    let index = LatentIndex::load(&index_path, Some(16)).unwrap();
    assert_eq!(index.len(), STEPS);
    // the query: frame 12 with noise, preprocessed as the index says
    let query_path = dir.path().join("query.png");
    frame(12, 3).save(&query_path).unwrap();
    let query = model_input(&query_path, &index.model().preprocess);
    let searcher = Searcher::new(&index, Strategy::Auto).unwrap();
    let found = searcher.search(&embed(&query), 3).unwrap();
    let idx: Vec<usize> = found.iter().map(|n| n.index).collect();
    assert_eq!(idx[0], 12, "{found:?}");
    let mut sorted = idx.clone();
    sorted.sort();
    assert_eq!(sorted, vec![11, 12, 13], "{found:?}");

    // SSIM of the query against each neighbour image, both preprocessed identically
    let images: Vec<Image> = found
        .iter()
        .map(|n| {
            model_input(
                &index.resolve_file(&index_path, n.index),
                &index.model().preprocess,
            )
        })
        .collect();
    let scores: Vec<f64> = images
        .iter()
        .map(|im| ssim(&query, im, 1.0).unwrap())
        .collect();
    assert!(scores[0] > 0.95, "{scores:?}");
    assert!(scores.iter().all(|&s| s > 0.7 && s <= 1.0), "{scores:?}");

    println!("neighbours {idx:?}, distances {found:?}, SSIM {scores:?}");
    // kNN time: frames 11, 12, 13 at 55, 60, 65 Myr
    let t = estimate_time(&found, &index, Weighting::Uniform, TimeTarget::Snapshot).unwrap();
    assert!((t.mean_myr - 60.0).abs() < 1e-9, "{t:?}");
    assert!((t.std_myr - (50.0f64 / 3.0).sqrt()).abs() < 1e-9, "{t:?}");

    let gallery = dir.path().join("gallery.png");
    let q = Tile {
        image: &query,
        name: "query.png",
        label: None,
        t_myr: Some(t.mean_myr),
        t_spread: Some(t.std_myr),
        distance: None,
        ssim: None,
    };
    let tiles: Vec<Tile<'_>> = found
        .iter()
        .zip(&images)
        .zip(&scores)
        .map(|((n, im), &s)| {
            let e = &index.entries()[n.index];
            Tile {
                image: im,
                name: &e.id_str,
                label: e.label,
                t_myr: e.t_myr,
                t_spread: None,
                distance: Some(n.distance),
                ssim: Some(s),
            }
        })
        .collect();
    write_gallery(&gallery, "toy library", &q, &tiles).unwrap();
    let png = image::open(&gallery).unwrap().to_rgb8();
    assert_eq!(png.dimensions(), (14 + 4 * (180 + 14), 44 + 180 + 58 + 14));
}
