//! The memory a training configuration needs, estimated before anything is loaded, so that a
//! run that cannot fit is refused at once with the reason instead of aborting on an
//! allocation after minutes of image loading.
//!
//! The estimate is deliberately generous (an upper bound in practice): the dataset is kept as
//! 16-bit values, every node of the graph holds its output, its gradient and one saved
//! intermediate per image of a batch, and every parameter its value, gradient and two
//! optimizer moments.

use std::path::Path;

use crate::Result;
use deepgalaxy_core::{Catalog, Error};
use deepgalaxy_models::{Graph, ModelSpec};

use crate::config::TrainConfig;

/// Per-image values kept for each graph node while a batch trains: output, gradient and one
/// intermediate (column matrices, saved masks).
const ACTIVATION_COPIES: f64 = 3.0;
/// Values kept per parameter: weight, gradient, and the two moments of Adam.
const PARAMETER_COPIES: f64 = 4.0;
/// Bytes per stored dataset value (16-bit quantisation, the larger of the two).
const DATASET_BYTES_PER_VALUE: f64 = 2.0;

/// What a configuration needs, in bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The preprocessed dataset held in memory.
    pub dataset: f64,
    /// Activations, gradients and parameters of one training step.
    pub training: f64,
}

impl Estimate {
    /// The total.
    pub fn total(&self) -> f64 {
        self.dataset + self.training
    }
}

/// The estimate for `images` images of `spec` trained with `batch` images per step (per rank).
pub fn estimate(spec: &ModelSpec, images: usize, batch: usize) -> Result<Estimate> {
    let graph = Graph::build(spec)?;
    let per_image: f64 = graph
        .nodes
        .iter()
        .map(|n| n.shape.iter().map(|&d| d as f64).product::<f64>())
        .sum();
    let params: f64 = graph
        .params()
        .iter()
        .map(|p| p.shape.iter().map(|&d| d as f64).product::<f64>())
        .sum();
    let pixels = (spec.channels() * spec.size() * spec.size()) as f64;
    Ok(Estimate {
        dataset: images as f64 * pixels * DATASET_BYTES_PER_VALUE,
        training: 4.0 * (batch as f64 * per_image * ACTIVATION_COPIES + params * PARAMETER_COPIES),
    })
}

/// The memory this machine can still give, in bytes (Linux's `MemAvailable`), or `None` where
/// it cannot be read.
pub fn available() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024.0)
}

/// Number of images a catalog lists (HDF5 files are not counted: 0).
fn catalog_images(data: &Path) -> Result<usize> {
    let ext = data
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("h5" | "hdf5") => Ok(0),
        _ => Ok(Catalog::read(data)?.records.len()),
    }
}

/// Refuses a configuration whose estimate exceeds the memory available, saying what it needs
/// and what to change.
pub fn check_fits(spec: &ModelSpec, cfg: &TrainConfig) -> Result<()> {
    let Some(free) = available() else {
        return Ok(());
    };
    refuse_above(spec, &cfg.data, cfg.batch_size, free)
}

fn refuse_above(spec: &ModelSpec, data: &Path, batch: usize, free: f64) -> Result<()> {
    let images = catalog_images(data)?;
    let e = estimate(spec, images, batch)?;
    if e.total() <= free {
        return Ok(());
    }
    let gb = |b: f64| b / 1e9;
    Err(Error::setting(
        "training",
        format!(
            "this configuration needs about {:.1} GB ({:.1} GB for {images} images at {}x{} with {} channel(s), {:.1} GB for a step of {} images) and {:.1} GB is available: lower --image-size or --batch-size",
            gb(e.total()),
            gb(e.dataset),
            spec.size(),
            spec.size(),
            spec.channels(),
            gb(e.training),
            batch,
            gb(free)
        ),
    ).into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use deepgalaxy_core::Preprocess;
    use deepgalaxy_models::Backbone;

    fn spec(size: u32, channels: u32) -> ModelSpec {
        let p = Preprocess {
            size,
            channels,
            normalization: deepgalaxy_core::preprocess::Normalization {
                mean: vec![0.5; channels as usize],
                std: vec![0.25; channels as usize],
            },
            ..Preprocess::default()
        };
        ModelSpec::new(Backbone::by_name("resnet").unwrap(), p, 71)
    }

    #[test]
    fn the_estimate_bounds_a_measured_run_from_above_within_a_few_times() {
        // measured peak of `train --backbone resnet --image-size 128 --batch-size 8` on the
        // demo's held-out catalog (994 images): 298 MB, process and libraries included
        let e = estimate(&spec(128, 1), 994, 8).unwrap();
        assert!(e.total() > 150e6 && e.total() < 1.2e9, "{e:?}");
        // the dataset part is exact arithmetic
        assert_eq!(e.dataset, 994.0 * 128.0 * 128.0 * 2.0);
    }

    #[test]
    fn an_8192_pixel_rgb_run_is_refused_before_loading() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("catalog.csv");
        let mut text = String::from("id_str,file_loc,label\n");
        for i in 0..100 {
            // empty files: nothing is decoded before the estimate
            std::fs::write(tmp.path().join(format!("g{i}.png")), b"").unwrap();
            text.push_str(&format!("g{i},g{i}.png,{}\n", i % 2));
        }
        std::fs::write(&data, text).unwrap();
        let err = refuse_above(&spec(8192, 3), &data, 16, 24e9)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("100 images at 8192x8192 with 3 channel(s)") && err.contains("24.0 GB"),
            "{err}"
        );
        // the same data at 64 pixels fits
        refuse_above(&spec(64, 1), &data, 16, 24e9).unwrap();
    }
}
