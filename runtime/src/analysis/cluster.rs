//! The paper's unsupervised path: spectral clustering of the latents without a fixed number
//! of clusters, and the adjusted Rand index to compare clusterings.
//!
//! 1. **kNN graph.** Each latent's `neighbours` nearest others (exact, [`crate::library::search`]);
//!    the graph is symmetrised by union (an edge when either end lists the other).
//! 2. **Affinity: self-tuning** (Zelnik-Manor & Perona 2004, "Self-tuning spectral
//!    clustering"): `w_ij = exp(-d_ij² / (σ_i σ_j))` with `σ_i` the distance from `i` to its
//!    `local_scale`-th neighbour (7 in the paper). A single global width would have to be
//!    tuned per model; the local scale adapts to latent spaces whose density varies from
//!    class to class. (A `σ_i` of 0, from exact duplicates, is raised to the smallest positive
//!    `σ`.)
//! 3. **Normalised Laplacian** `L = I - D^-1/2 W D^-1/2`, and its eigenvalues and eigenvectors
//!    from faer's dense symmetric eigensolver. Dense means O(n²) memory and O(n³) time: with
//!    more than [`SpectralConfig::max_dense`] points (default [`DEFAULT_MAX_DENSE`]) a seeded
//!    random subsample of that size is clustered and every other point takes the cluster of
//!    its nearest sampled latent ([`SpectralClustering::sample`] says which points were
//!    clustered).
//! 4. **Number of clusters:** the largest eigengap `λ_{c} - λ_{c-1}` (eigenvalues ascending,
//!    `c` counted from 1) for `c` up to `max_clusters`, unless given.
//! 5. **Ng-Jordan-Weiss embedding:** the `c` smallest eigenvectors as columns, each row
//!    normalised to unit length, clustered by [`crate::analysis::kmeans`] (k-means++, seeded, restarts).

use std::collections::HashMap;

use crate::Result;
use deepgalaxy_core::Error;
use faer::{Mat, Side};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::analysis::kmeans::kmeans;
use crate::library::search::{Searcher, Strategy};

/// Default largest number of points clustered densely: a 3000 x 3000 `f64` Laplacian is
/// 72 MB, and the whole clustering took 7.9 s on two cores (2000: 2.8 s, 4000: 15 s; the
/// `spectral` bench).
pub const DEFAULT_MAX_DENSE: usize = 3000;

/// Settings of [`spectral_clustering`]; `Default` gives the documented choices.
#[derive(Debug, Clone, PartialEq)]
pub struct SpectralConfig {
    /// Neighbours per point in the kNN graph (default 10).
    pub neighbours: usize,
    /// Which neighbour sets the local scale `σ_i` (default 7, Zelnik-Manor & Perona).
    pub local_scale: usize,
    /// Number of clusters; `None` picks it from the largest eigengap.
    pub clusters: Option<usize>,
    /// Largest number of clusters the eigengap may choose (default 20).
    pub max_clusters: usize,
    /// k-means restarts (default 10).
    pub restarts: usize,
    /// Lloyd iterations per restart at most (default 300).
    pub max_iterations: usize,
    /// Seed for the subsample and k-means.
    pub seed: u64,
    /// Most points clustered densely; more are subsampled (see the module docs).
    pub max_dense: usize,
}

impl Default for SpectralConfig {
    fn default() -> Self {
        SpectralConfig {
            neighbours: 10,
            local_scale: 7,
            clusters: None,
            max_clusters: 20,
            restarts: 10,
            max_iterations: 300,
            seed: 0,
            max_dense: DEFAULT_MAX_DENSE,
        }
    }
}

/// The outcome of [`spectral_clustering`].
#[derive(Debug, Clone, PartialEq)]
pub struct SpectralClustering {
    /// Cluster of every input point, `0..clusters`.
    pub labels: Vec<usize>,
    /// Number of clusters.
    pub clusters: usize,
    /// The smallest Laplacian eigenvalues, ascending (up to `max_clusters + 1` of them).
    pub eigenvalues: Vec<f64>,
    /// Indices of the points that were clustered spectrally when the input was subsampled
    /// (the others took their nearest sampled neighbour's cluster); `None` when all were.
    pub sample: Option<Vec<usize>>,
}

/// Spectral clustering of `vectors.len() / dim` latents (see the module docs).
pub fn spectral_clustering(
    vectors: &[f32],
    dim: usize,
    config: &SpectralConfig,
) -> Result<SpectralClustering> {
    if dim == 0 || !vectors.len().is_multiple_of(dim) {
        return Err(Error::setting(
            "latent vectors",
            format!("{} floats are not whole vectors of {dim}", vectors.len()),
        )
        .into());
    }
    let n = vectors.len() / dim;
    if config.neighbours == 0 || config.local_scale == 0 || config.max_clusters == 0 {
        return Err(Error::setting(
            "clustering",
            "neighbours, local_scale and max_clusters must be at least 1",
        )
        .into());
    }
    if config.max_dense < 2 {
        return Err(Error::setting("clustering", "max_dense must be at least 2").into());
    }
    if n < 2 {
        return Err(Error::setting("clustering", format!("{n} latents: need at least 2")).into());
    }
    if n > config.max_dense {
        return subsampled(vectors, dim, config);
    }
    let searcher = Searcher::over(vectors, dim, Strategy::Auto)?;
    let graph = affinity_graph(
        &searcher,
        vectors,
        dim,
        config.neighbours,
        config.local_scale,
    )?;
    let (eigenvalues, vectors_l) = laplacian_eigen(&graph, n)?;
    let limit = config.max_clusters.min(n - 1).max(1);
    let clusters = match config.clusters {
        Some(c) if c == 0 || c > n => {
            return Err(Error::setting("clusters", format!("{c} clusters for {n} latents")).into())
        }
        Some(c) => c,
        None => largest_eigengap(&eigenvalues, limit),
    };
    // Ng-Jordan-Weiss: rows of the first `clusters` eigenvectors, normalised.
    let mut embedding = vec![0.0; n * clusters];
    for i in 0..n {
        let row = &mut embedding[i * clusters..(i + 1) * clusters];
        for (j, r) in row.iter_mut().enumerate() {
            *r = vectors_l[(i, j)];
        }
        let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
        if norm > 0.0 {
            row.iter_mut().for_each(|v| *v /= norm);
        }
    }
    let km = kmeans(
        &embedding,
        clusters,
        clusters,
        config.restarts,
        config.max_iterations,
        config.seed,
    )?;
    Ok(SpectralClustering {
        labels: canonical_labels(&km.labels),
        clusters,
        eigenvalues: eigenvalues.into_iter().take(limit + 1).collect(),
        sample: None,
    })
}

/// Clusters a seeded random subsample of `max_dense` points, then gives every point the
/// cluster of its nearest sampled latent.
fn subsampled(vectors: &[f32], dim: usize, config: &SpectralConfig) -> Result<SpectralClustering> {
    let n = vectors.len() / dim;
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut sample = rand::seq::index::sample(&mut rng, n, config.max_dense).into_vec();
    sample.sort_unstable();
    let sub: Vec<f32> = sample
        .iter()
        .flat_map(|&i| vectors[i * dim..(i + 1) * dim].iter().copied())
        .collect();
    let inner = spectral_clustering(&sub, dim, config)?;
    let searcher = Searcher::over(&sub, dim, Strategy::Auto)?;
    let nearest = searcher.search_many(vectors, 1)?;
    let labels = nearest
        .iter()
        .map(|nb| nb.first().map_or(0, |x| inner.labels[x.index]))
        .collect();
    Ok(SpectralClustering {
        labels,
        sample: Some(sample),
        ..inner
    })
}

/// The symmetric self-tuning affinity of the kNN graph, as (row, column, weight) per row.
fn affinity_graph(
    searcher: &Searcher<'_>,
    vectors: &[f32],
    dim: usize,
    neighbours: usize,
    local_scale: usize,
) -> Result<Vec<Vec<(usize, f64)>>> {
    let n = vectors.len() / dim;
    let k = neighbours.min(n - 1);
    let found = searcher.search_many(vectors, k + 1)?;
    // each point's neighbours without itself
    let lists: Vec<Vec<(usize, f64)>> = found
        .into_iter()
        .enumerate()
        .map(|(i, nb)| {
            nb.into_iter()
                .filter(|x| x.index != i)
                .take(k)
                .map(|x| (x.index, f64::from(x.distance)))
                .collect()
        })
        .collect();
    let scale_at = local_scale.min(k) - 1;
    let mut sigma: Vec<f64> = lists.iter().map(|l| l[scale_at].1).collect();
    let floor = sigma
        .iter()
        .copied()
        .filter(|&s| s > 0.0)
        .fold(f64::INFINITY, f64::min);
    let floor = if floor.is_finite() { floor } else { 1.0 };
    sigma
        .iter_mut()
        .filter(|s| **s <= 0.0)
        .for_each(|s| *s = floor);
    let mut edges: Vec<HashMap<usize, f64>> = vec![HashMap::new(); n];
    for (i, list) in lists.iter().enumerate() {
        for &(j, d) in list {
            let w = (-d * d / (sigma[i] * sigma[j])).exp();
            edges[i].insert(j, w);
            edges[j].insert(i, w);
        }
    }
    Ok(edges
        .into_iter()
        .map(|m| {
            let mut row: Vec<(usize, f64)> = m.into_iter().collect();
            row.sort_unstable_by_key(|&(j, _)| j);
            row
        })
        .collect())
}

/// Eigenvalues (ascending) and eigenvectors (columns) of `I - D^-1/2 W D^-1/2`.
fn laplacian_eigen(graph: &[Vec<(usize, f64)>], n: usize) -> Result<(Vec<f64>, Mat<f64>)> {
    let degree: Vec<f64> = graph
        .iter()
        .map(|row| row.iter().map(|&(_, w)| w).sum())
        .collect();
    let inv_sqrt: Vec<f64> = degree
        .iter()
        .map(|&d| if d > 0.0 { 1.0 / d.sqrt() } else { 0.0 })
        .collect();
    let mut l = Mat::<f64>::identity(n, n);
    for (i, row) in graph.iter().enumerate() {
        for &(j, w) in row {
            l[(i, j)] -= inv_sqrt[i] * w * inv_sqrt[j];
        }
    }
    let eig = l
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| Error::setting("graph Laplacian", format!("eigensolver failed: {e:?}")))?;
    let values: Vec<f64> = eig.S().column_vector().iter().copied().collect();
    Ok((values, eig.U().to_owned()))
}

/// The `c` in `1..=limit` with the largest `λ_c - λ_{c-1}` (the first on ties).
pub fn largest_eigengap(eigenvalues: &[f64], limit: usize) -> usize {
    (1..=limit.min(eigenvalues.len().saturating_sub(1)))
        .map(|c| (c, eigenvalues[c] - eigenvalues[c - 1]))
        .fold((1, f64::NEG_INFINITY), |a, b| if b.1 > a.1 { b } else { a })
        .0
}

/// Renumbers labels by first appearance (0 for the first point's cluster, ...), so equal
/// partitions print equal labels.
fn canonical_labels(labels: &[usize]) -> Vec<usize> {
    let mut map = HashMap::new();
    labels
        .iter()
        .map(|&l| {
            let next = map.len();
            *map.entry(l).or_insert(next)
        })
        .collect()
}

/// Adjusted Rand index (Hubert & Arabie 1985) of two labelings of the same points: 1 for
/// identical partitions (whatever the label names), about 0 for independent ones. When the
/// index is undefined (both partitions all singletons, or both one cluster) it is 1, as in
/// scikit-learn.
pub fn adjusted_rand_index(a: &[usize], b: &[usize]) -> Result<f64> {
    if a.len() != b.len() {
        return Err(
            Error::setting("labelings", format!("{} and {} labels", a.len(), b.len())).into(),
        );
    }
    let pairs = |c: u64| c * c.saturating_sub(1) / 2;
    let mut table: HashMap<(usize, usize), u64> = HashMap::new();
    let mut rows: HashMap<usize, u64> = HashMap::new();
    let mut cols: HashMap<usize, u64> = HashMap::new();
    for (&x, &y) in a.iter().zip(b) {
        *table.entry((x, y)).or_default() += 1;
        *rows.entry(x).or_default() += 1;
        *cols.entry(y).or_default() += 1;
    }
    let index = table.values().map(|&c| pairs(c)).sum::<u64>() as f64;
    let sum_a = rows.values().map(|&c| pairs(c)).sum::<u64>() as f64;
    let sum_b = cols.values().map(|&c| pairs(c)).sum::<u64>() as f64;
    let total = pairs(a.len() as u64) as f64;
    if total == 0.0 {
        return Ok(1.0);
    }
    let expected = sum_a * sum_b / total;
    let max = (sum_a + sum_b) / 2.0;
    if max == expected {
        return Ok(1.0);
    }
    Ok((index - expected) / (max - expected))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;
    use rand_distr::{Distribution, Normal};

    /// `blobs` Gaussian blobs of `per` points in `dim` dimensions, centres 10 apart on
    /// distinct axes, spread 0.3; returns the latents and the true blob of each.
    fn blobs(blobs: usize, per: usize, dim: usize, seed: u64) -> (Vec<f32>, Vec<usize>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let noise = Normal::new(0.0f32, 0.3).unwrap();
        let mut v = Vec::new();
        let mut truth = Vec::new();
        // shuffled order so cluster ids cannot come from position
        let mut order: Vec<usize> = (0..blobs * per).map(|i| i % blobs).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.random_range(0..=i));
        }
        for b in order {
            for d in 0..dim {
                let centre = if d == b { 10.0 } else { 0.0 };
                v.push(centre + noise.sample(&mut rng));
            }
            truth.push(b);
        }
        (v, truth)
    }

    #[test]
    fn recovers_four_planted_blobs() {
        let (v, truth) = blobs(4, 50, 16, 1);
        let r = spectral_clustering(&v, 16, &SpectralConfig::default()).unwrap();
        assert_eq!(r.clusters, 4, "eigenvalues {:?}", r.eigenvalues);
        assert_eq!(adjusted_rand_index(&r.labels, &truth).unwrap(), 1.0);
        // four (near-)zero eigenvalues, one per disconnected blob, then a gap
        assert!(r.eigenvalues[3] < 1e-9, "{:?}", r.eigenvalues);
        assert!(r.eigenvalues[4] > 0.3, "{:?}", r.eigenvalues);
        assert!(r.sample.is_none());
        // reproducible
        assert_eq!(
            spectral_clustering(&v, 16, &SpectralConfig::default()).unwrap(),
            r
        );
    }

    #[test]
    fn given_cluster_count_and_subsampling() {
        let (v, truth) = blobs(3, 60, 8, 2);
        let config = SpectralConfig {
            clusters: Some(3),
            max_dense: 90,
            ..SpectralConfig::default()
        };
        let r = spectral_clustering(&v, 8, &config).unwrap();
        assert_eq!(r.clusters, 3);
        assert_eq!(r.sample.as_ref().map(Vec::len), Some(90));
        assert_eq!(r.labels.len(), 180);
        assert_eq!(adjusted_rand_index(&r.labels, &truth).unwrap(), 1.0);
    }

    #[test]
    fn eigengap_picks_the_largest_jump() {
        let ev = [0.0, 0.0, 0.01, 0.5, 0.55, 0.9];
        assert_eq!(largest_eigengap(&ev, 5), 3);
        assert_eq!(largest_eigengap(&ev, 2), 2);
    }

    #[test]
    fn adjusted_rand_index_values() {
        let a = [0, 0, 1, 1, 2, 2];
        let renamed = [5, 5, 3, 3, 9, 9];
        assert_eq!(adjusted_rand_index(&a, &renamed).unwrap(), 1.0);
        // scikit-learn's documented example: adjusted_rand_score([0,0,1,1],[0,0,1,2]) = 4/7
        let r = adjusted_rand_index(&[0, 0, 1, 1], &[0, 0, 1, 2]).unwrap();
        assert!((r - 4.0 / 7.0).abs() < 1e-15, "{r}");
        // by hand: contingency [[2,1,0],[0,1,2]]: index 2, row pairs 6, column pairs 3,
        // 15 pairs, expected 6*3/15 = 1.2, max 4.5: (2-1.2)/(4.5-1.2) = 8/33
        let r = adjusted_rand_index(&[0, 0, 0, 1, 1, 1], &[0, 0, 1, 1, 2, 2]).unwrap();
        assert!((r - 8.0 / 33.0).abs() < 1e-15, "{r}");
        // one cluster vs all singletons: no agreement beyond chance
        assert_eq!(adjusted_rand_index(&[0, 0, 0], &[0, 1, 2]).unwrap(), 0.0);
        assert!(adjusted_rand_index(&[0], &[0, 1]).is_err());
    }

    #[test]
    fn bad_settings_are_errors() {
        let (v, _) = blobs(2, 5, 4, 3);
        assert!(spectral_clustering(&v[..3], 4, &SpectralConfig::default()).is_err());
        assert!(spectral_clustering(&v[..4], 4, &SpectralConfig::default()).is_err());
        let c = SpectralConfig {
            clusters: Some(11),
            ..SpectralConfig::default()
        };
        assert!(spectral_clustering(&v, 4, &c).is_err());
    }
}
