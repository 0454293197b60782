//! Recommendations for a query image: its nearest library entries in latent space, each
//! validated by the SSIM between the query and the neighbour image (both preprocessed
//! identically, with the index's preprocessing, data range 1), and the kNN estimate of the
//! query's time. This is the paper's similarity search, with its SSIM check made explicit.

use std::path::{Path, PathBuf};

use deepgalaxy_core::{preprocess, Image, Result};
use serde::Serialize;

use crate::estimate::{estimate_time, TimeEstimate, Weighting};
use crate::index::LatentIndex;
use crate::search::Searcher;
use crate::ssim::ssim;

/// Data range of preprocessed images (values in [0, 1]) for SSIM.
pub const SSIM_DATA_RANGE: f64 = 1.0;

/// One recommended library entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommended {
    /// Position in the index.
    pub index: usize,
    /// The entry's id.
    pub id: String,
    /// Its image file (resolved against the index's folder).
    pub file: PathBuf,
    /// Its class, when known.
    pub label: Option<u32>,
    /// Its time in Myr, when known.
    pub t_myr: Option<f64>,
    /// Euclidean distance in latent space.
    pub distance: f32,
    /// SSIM between the preprocessed query and neighbour images; `None` (with the reason in
    /// `ssim_error`) when the neighbour image cannot be read.
    pub ssim: Option<f64>,
    /// Why there is no SSIM.
    pub ssim_error: Option<String>,
}

/// A query's neighbours and time estimate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    /// Neighbours, nearest first.
    pub neighbours: Vec<Recommended>,
    /// kNN estimate of the query's time (neighbours with a time only).
    pub estimate: Option<TimeEstimate>,
}

/// The image as the index's model saw it: decoded, then the index's preprocessing.
pub fn preprocessed(index: &LatentIndex, path: &Path) -> Result<Image> {
    let image = deepgalaxy_core::image::load(path)?;
    preprocess(&image, &index.model().preprocess, path)
}

/// The `k` nearest entries to `latent` in `index` (stored at `index_path`, against which
/// relative image paths resolve), with SSIM against `query` (already [`preprocessed`]).
pub fn recommend(
    index: &LatentIndex,
    index_path: &Path,
    searcher: &Searcher<'_>,
    query: &Image,
    latent: &[f32],
    k: usize,
) -> Result<Recommendation> {
    let found = searcher.search(latent, k)?;
    let estimate = estimate_time(&found, index, Weighting::Uniform);
    let neighbours = found
        .iter()
        .map(|n| {
            let entry = &index.entries()[n.index];
            let file = index.resolve_file(index_path, n.index);
            let s = preprocessed(index, &file).and_then(|img| ssim(query, &img, SSIM_DATA_RANGE));
            Recommended {
                index: n.index,
                id: entry.id_str.clone(),
                file,
                label: entry.label,
                t_myr: entry.t_myr,
                distance: n.distance,
                ssim: s.as_ref().ok().copied(),
                ssim_error: s.err().map(|e| e.to_string()),
            }
        })
        .collect();
    Ok(Recommendation {
        neighbours,
        estimate,
    })
}
