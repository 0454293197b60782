//! Helpers shared by the training tests: tiny synthetic data, a tiny model, a quick run.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use deepgalaxy_core::preprocess::Preprocess;
use deepgalaxy_core::{Catalog, CatalogRecord};
use deepgalaxy_models::{Backbone, ModelSpec};
use deepgalaxy_train::augment::Augment;
use deepgalaxy_train::optim::OptimizerKind;
use deepgalaxy_train::schedule::{Schedule, ScheduleKind};
use deepgalaxy_train::split::SplitKind;
use deepgalaxy_train::{Heads, LossWeights, TrainConfig};

pub const SIZE: u32 = 32;

/// `n` 8-bit images of `classes` classes: a blob whose brightness and width encode the class
/// (the classifier pools globally, so these are visible to it and position is not), plus
/// per-image noise, spread over 4 simulations.
pub fn catalog(dir: &Path, n: usize, classes: u32) -> PathBuf {
    let mut records = Vec::new();
    for i in 0..n {
        let label = i as u32 % classes;
        let width = 2.0 * (1.0 + label as f32).powi(2);
        let (cx, cy) = (14.0 + (i % 5) as f32, 18.0 - (i % 3) as f32);
        let img = image::GrayImage::from_fn(SIZE, SIZE, |x, y| {
            let d2 = (x as f32 - cx).powi(2) + (y as f32 - cy).powi(2);
            let noise = ((i * 31 + x as usize * 7 + y as usize * 13) % 17) as f32;
            image::Luma([((60.0 + 50.0 * label as f32) * (-d2 / width).exp() + noise) as u8])
        });
        let name = format!("img{i}.png");
        img.save(dir.join(&name)).unwrap();
        records.push(CatalogRecord {
            id_str: format!("g{i}"),
            file_loc: name,
            simulation: Some(format!("sim{}", i % 4)),
            label: Some(label),
            t_myr: Some(label as f64 * 5.0 + 2.5),
            ..Default::default()
        });
    }
    let path = dir.join("catalog.csv");
    Catalog::new(records).write(&path).unwrap();
    path
}

pub fn spec(dropout: f32) -> ModelSpec {
    let mut s = ModelSpec::new(
        Backbone::Simple {
            widths: vec![8, 16],
            depth: 1,
        },
        Preprocess {
            size: SIZE,
            ..Preprocess::default()
        },
        2,
    );
    s.dropout = dropout;
    s.latent_dim = 8;
    s
}

pub fn config(data: &Path, out: &Path) -> TrainConfig {
    TrainConfig {
        data: data.to_path_buf(),
        out: out.to_path_buf(),
        epochs: 1,
        batch_size: 8,
        max_steps: None,
        heads: Heads {
            classifier: true,
            autoencoder: true,
            vae: true,
        },
        freeze_encoder: false,
        unfreeze_every: None,
        init_from: None,
        split: SplitKind::BySimulation,
        val_fraction: 0.25,
        val_simulations: vec![],
        test: Default::default(),
        target: None,
        optimizer: OptimizerKind::by_name("adam").unwrap(),
        schedule: Schedule {
            lr: 3e-3,
            kind: ScheduleKind::Constant,
            warmup: 0,
        },
        loss: LossWeights::default(),
        augment: Augment {
            dihedral: true,
            noise: 0.01,
            blur_fwhm: 0.0,
        },
        seed: 7,
        parallel: Default::default(),
        overwrite: false,
    }
}

/// A run of one training step (16 images, 2 classes) in `dir/run`; returns the run folder.
pub fn one_step_run(dir: &Path) -> PathBuf {
    let data = catalog(dir, 16, 2);
    let run = dir.join("run");
    let cfg = TrainConfig {
        max_steps: Some(1),
        ..config(&data, &run)
    };
    deepgalaxy_train::train(
        spec(0.0),
        cfg,
        &deepgalaxy_train::trainer::Quiet,
        &no_stop(),
    )
    .unwrap();
    run
}

/// A stop flag that is never raised.
pub fn no_stop() -> AtomicBool {
    AtomicBool::new(false)
}
