//! Recommendations for a query image: its nearest library entries in latent space, each
//! validated by the SSIM between the query and the neighbour image (both preprocessed
//! identically, with the index's preprocessing, data range 1), and the kNN estimate of the
//! query's time. This is the paper's similarity search, with its SSIM check made explicit.
//!
//! A query that is itself an image of a library simulation (a catalog image, in evaluation)
//! never counts that simulation: its other cameras and neighbouring snapshots would be found
//! first and make the estimate and the SSIM look far better than for a merger never seen.

use std::path::{Path, PathBuf};

use crate::Result;
use deepgalaxy_core::{preprocess, Image};
use serde::Serialize;

use std::collections::HashMap;

use deepgalaxy_core::time::TimeTarget;

use crate::library::estimate::{estimate_time, TimeEstimate, Weighting};
use crate::library::index::LatentIndex;
use crate::library::search::{Searcher, Strategy};
use crate::library::ssim::ssim;

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
    /// Its time since the simulation started in Myr, when known.
    pub t_myr: Option<f64>,
    /// Its time relative to first pericentre in Myr, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub t_peri_myr: Option<f64>,
    /// Its simulation, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub simulation: Option<String>,
    /// Euclidean distance in latent space.
    pub distance: f32,
    /// SSIM between the preprocessed query and neighbour images; `None` (with the reason in
    /// `ssim_error`) when the neighbour image cannot be read.
    pub ssim: Option<f64>,
    /// Why there is no SSIM.
    pub ssim_error: Option<String>,
}

impl Recommended {
    /// The neighbour's time under `target`.
    pub fn time(&self, target: TimeTarget) -> Option<f64> {
        target.pick(self.t_myr, self.t_peri_myr)
    }
}

/// A query's neighbours and time estimate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    /// Neighbours, nearest first.
    pub neighbours: Vec<Recommended>,
    /// kNN estimate of the query's time under the model's target (neighbours with a time
    /// only).
    pub estimate: Option<TimeEstimate>,
    /// Library entries of the query's own simulation that were nearer than the last
    /// neighbour kept, and were skipped.
    pub own_simulation_skipped: usize,
}

/// The image as the index's model saw it: decoded, then the index's preprocessing.
pub fn preprocessed(index: &LatentIndex, path: &Path) -> Result<Image> {
    let image = deepgalaxy_core::image::load(path)?;
    preprocess(&image, &index.model().preprocess, path).map_err(Into::into)
}

/// A latent index ready to recommend from: the index, where it lives (relative image paths
/// resolve against its folder), its search structure, what time the estimates are in, and how
/// many entries each simulation has (so a query can skip its own).
pub struct Library<'a> {
    index: &'a LatentIndex,
    path: &'a Path,
    searcher: Searcher<'a>,
    target: TimeTarget,
    per_simulation: HashMap<&'a str, usize>,
}

impl<'a> Library<'a> {
    /// The library of `index` stored at `path`, searched with `strategy`, estimating times
    /// under `target` (the querying model's).
    pub fn new(
        index: &'a LatentIndex,
        path: &'a Path,
        strategy: Strategy,
        target: TimeTarget,
    ) -> Result<Library<'a>> {
        let mut per_simulation: HashMap<&str, usize> = HashMap::new();
        for e in index.entries() {
            if let Some(s) = &e.simulation {
                *per_simulation.entry(s.as_str()).or_default() += 1;
            }
        }
        Ok(Library {
            index,
            path,
            searcher: Searcher::new(index, strategy)?,
            target,
            per_simulation,
        })
    }

    /// The index.
    pub fn index(&self) -> &LatentIndex {
        self.index
    }

    /// The `k` nearest entries to `latent`, with SSIM against `query` (already
    /// [`preprocessed`]), skipping every entry of `own_simulation` (the query's simulation,
    /// when it has one).
    pub fn recommend(
        &self,
        query: &Image,
        latent: &[f32],
        k: usize,
        own_simulation: Option<&str>,
    ) -> Result<Recommendation> {
        let own = |i: usize| {
            own_simulation.is_some_and(|s| self.index.entries()[i].simulation.as_deref() == Some(s))
        };
        let extra = own_simulation.map_or(0, |s| self.per_simulation.get(s).copied().unwrap_or(0));
        let mut found = Vec::with_capacity(k);
        let mut skipped = 0;
        for n in self.searcher.search(latent, k + extra)? {
            if found.len() == k {
                break;
            }
            if own(n.index) {
                skipped += 1;
            } else {
                found.push(n);
            }
        }
        let estimate = estimate_time(&found, self.index, Weighting::Uniform, self.target);
        let neighbours = found
            .iter()
            .map(|n| {
                let entry = &self.index.entries()[n.index];
                let file = self.index.resolve_file(self.path, n.index);
                let s = preprocessed(self.index, &file)
                    .and_then(|img| ssim(query, &img, SSIM_DATA_RANGE));
                Recommended {
                    index: n.index,
                    id: entry.id_str.clone(),
                    file,
                    label: entry.label,
                    t_myr: entry.t_myr,
                    t_peri_myr: entry.t_peri_myr,
                    simulation: entry.simulation.clone(),
                    distance: n.distance,
                    ssim: s.as_ref().ok().copied(),
                    ssim_error: s.err().map(|e| e.to_string()),
                }
            })
            .collect();
        Ok(Recommendation {
            neighbours,
            estimate,
            own_simulation_skipped: skipped,
        })
    }
}
