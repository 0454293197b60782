//! k-means (Lloyd's algorithm) with k-means++ seeding and restarts, on `f64` points.
//!
//! Written here rather than taken from a crate: the maintained Rust k-means crates either pull
//! in `ndarray`/`linfa` (a heavy tree for ~100 lines) or do not take a seeded RNG, and the
//! spectral clustering of [`crate::analysis::cluster`] needs bit-for-bit reproducible labels from a
//! seed. Everything here is deterministic given the seed.

use crate::Result;
use deepgalaxy_core::Error;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A k-means result.
#[derive(Debug, Clone, PartialEq)]
pub struct KMeans {
    /// Cluster of each point, `0..k`.
    pub labels: Vec<usize>,
    /// `k` centroids of `dim` values, one after another.
    pub centroids: Vec<f64>,
    /// Sum of squared distances of the points to their centroids.
    pub inertia: f64,
}

/// Clusters `points.len() / dim` points into `k` groups. Runs `restarts` (at least 1) seeded
/// k-means++ initialisations, each refined by at most `max_iterations` Lloyd steps, and keeps
/// the one with the smallest inertia (the first on ties). A cluster that empties is re-seeded
/// with the point farthest from its centroid. Errors unless `1 <= k <= number of points` and
/// the points are whole, finite vectors of `dim`.
pub fn kmeans(
    points: &[f64],
    dim: usize,
    k: usize,
    restarts: usize,
    max_iterations: usize,
    seed: u64,
) -> Result<KMeans> {
    if dim == 0 || !points.len().is_multiple_of(dim) || points.iter().any(|v| !v.is_finite()) {
        return Err(Error::setting(
            "k-means points",
            format!(
                "{} values are not whole, finite vectors of {dim}",
                points.len()
            ),
        )
        .into());
    }
    let n = points.len() / dim;
    if k == 0 || k > n {
        return Err(Error::setting("k-means", format!("{k} clusters for {n} points")).into());
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut best: Option<KMeans> = None;
    for _ in 0..restarts.max(1) {
        let centroids = plus_plus(points, dim, k, &mut rng);
        let run = lloyd(points, dim, centroids, max_iterations);
        if best.as_ref().is_none_or(|b| run.inertia < b.inertia) {
            best = Some(run);
        }
    }
    Ok(best.unwrap_or_else(|| lloyd(points, dim, points[..k * dim].to_vec(), max_iterations)))
}

fn sq(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// k-means++ seeding (Arthur & Vassilvitskii 2007): the first centre uniformly, each next one
/// with probability proportional to the squared distance to the nearest chosen centre.
fn plus_plus(points: &[f64], dim: usize, k: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let n = points.len() / dim;
    let first = rng.random_range(0..n);
    let mut centroids = points[first * dim..(first + 1) * dim].to_vec();
    let mut nearest: Vec<f64> = points
        .chunks_exact(dim)
        .map(|p| sq(p, &centroids[..dim]))
        .collect();
    for _ in 1..k {
        let total: f64 = nearest.iter().sum();
        let pick = if total > 0.0 {
            let mut target = rng.random::<f64>() * total;
            let mut chosen = n - 1;
            for (i, &d) in nearest.iter().enumerate() {
                if target < d {
                    chosen = i;
                    break;
                }
                target -= d;
            }
            chosen
        } else {
            // every point coincides with a centre: any point will do
            rng.random_range(0..n)
        };
        let c = points[pick * dim..(pick + 1) * dim].to_vec();
        for (d, p) in nearest.iter_mut().zip(points.chunks_exact(dim)) {
            *d = d.min(sq(p, &c));
        }
        centroids.extend(c);
    }
    centroids
}

fn assign(points: &[f64], dim: usize, centroids: &[f64]) -> (Vec<usize>, Vec<f64>) {
    points
        .chunks_exact(dim)
        .map(|p| {
            centroids
                .chunks_exact(dim)
                .enumerate()
                .map(|(c, m)| (c, sq(p, m)))
                .fold((0, f64::INFINITY), |a, b| if b.1 < a.1 { b } else { a })
        })
        .unzip()
}

fn lloyd(points: &[f64], dim: usize, mut centroids: Vec<f64>, max_iterations: usize) -> KMeans {
    let k = centroids.len() / dim;
    let (mut labels, mut dists) = assign(points, dim, &centroids);
    for _ in 0..max_iterations {
        let mut sums = vec![0.0; k * dim];
        let mut counts = vec![0usize; k];
        for (p, &l) in points.chunks_exact(dim).zip(&labels) {
            counts[l] += 1;
            for (s, v) in sums[l * dim..(l + 1) * dim].iter_mut().zip(p) {
                *s += v;
            }
        }
        for c in 0..k {
            if counts[c] == 0 {
                // re-seed an empty cluster with the worst-fitted point
                let far = dists
                    .iter()
                    .enumerate()
                    .fold(0, |a, (i, &d)| if d > dists[a] { i } else { a });
                sums[c * dim..(c + 1) * dim].copy_from_slice(&points[far * dim..(far + 1) * dim]);
                counts[c] = 1;
                dists[far] = 0.0;
            }
            let m = counts[c] as f64;
            sums[c * dim..(c + 1) * dim]
                .iter_mut()
                .for_each(|s| *s /= m);
        }
        centroids = sums;
        let (new_labels, new_dists) = assign(points, dim, &centroids);
        dists = new_dists;
        if new_labels == labels {
            break;
        }
        labels = new_labels;
    }
    KMeans {
        inertia: dists.iter().sum(),
        labels,
        centroids,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separates_two_obvious_groups() {
        // 1-D: {0, 0.1, 0.2} and {10, 10.1}
        let pts = [0.0, 10.0, 0.1, 10.1, 0.2];
        let r = kmeans(&pts, 1, 2, 3, 100, 1).unwrap();
        assert_eq!(r.labels[0], r.labels[2]);
        assert_eq!(r.labels[0], r.labels[4]);
        assert_eq!(r.labels[1], r.labels[3]);
        assert_ne!(r.labels[0], r.labels[1]);
        // inertia: 0.02 around 0.1, plus 0.005 around 10.05
        assert!((r.inertia - 0.025).abs() < 1e-12, "{}", r.inertia);
        // same seed, same answer
        assert_eq!(kmeans(&pts, 1, 2, 3, 100, 1).unwrap(), r);
    }

    #[test]
    fn k_equal_to_n_puts_each_point_alone() {
        let pts = [0.0, 0.0, 1.0, 0.0, 0.0, 1.0];
        let r = kmeans(&pts, 2, 3, 2, 50, 9).unwrap();
        let mut l = r.labels.clone();
        l.sort();
        assert_eq!(l, vec![0, 1, 2]);
        assert_eq!(r.inertia, 0.0);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(kmeans(&[], 2, 1, 1, 10, 0).is_err());
        assert!(kmeans(&[0.0, 1.0], 2, 2, 1, 10, 0).is_err());
        assert!(kmeans(&[0.0, 1.0, 2.0], 2, 1, 1, 10, 0).is_err());
        assert!(kmeans(&[0.0, f64::NAN], 1, 1, 1, 10, 0).is_err());
        assert!(kmeans(&[0.0, 1.0], 1, 0, 1, 10, 0).is_err());
    }
}
