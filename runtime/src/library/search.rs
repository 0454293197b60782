//! Exact k-nearest-neighbour search over latents, by kd-tree (kiddo) or brute force.
//!
//! * **Metric.** Neighbours are ranked by squared Euclidean distance computed in `f32`, and
//!   [`Neighbour::distance`] reports the Euclidean distance (its square root), the number a
//!   person reads as "how far in latent space".
//! * **Ties.** Equal distances are ordered by entry index, so the answer is a function of the
//!   data alone: the kd-tree and the brute-force path return exactly the same indices and
//!   bit-identical distances. Both paths compute the reported distance with the same
//!   [`squared_distance`] function; kiddo's own distances (which sum in another order) only
//!   choose candidates, with a safety margin (see [`Searcher::search`]).
//! * **Kd-tree.** kiddo's `ImmutableKdTree<f32, D>` takes the dimension as a const generic,
//!   so the latent sizes 8, 16, 32 and 64 are dispatched explicitly; any other size uses
//!   brute force.
//! * **Brute force** scans every vector, in parallel (rayon) over the library for one query
//!   and over the queries for a batch.
//! * **[`Strategy::Auto`]**, from the `latent_search` benchmark (`benches/README.md`,
//!   "Runtime: latent search"; 2 cores, k = 6):
//!   - fewer than [`AUTO_MIN_KD_LEN`] vectors, or a dimension without a kd-tree: brute force
//!     (a brute query over so few latents takes microseconds; a tree buys little);
//!   - dimension 8 (up to [`AUTO_MAX_STATIC_KD_DIM`]): the kd-tree, faster than brute force
//!     on every 8-D library measured, clustered or uniform;
//!   - dimension 16, 32 or 64: measured on the data itself, because there the winner flips
//!     with the data's structure: on clustered latents the kd-tree was faster, on uniform
//!     ones brute force was. The tree is built, [`AUTO_PROBES`] of the library's own
//!     vectors, evenly spaced, are searched both ways, and the faster path is kept. Only
//!     the speed depends on this timing, never the results (both paths return identical
//!     neighbours).

use std::collections::BinaryHeap;
use std::num::NonZeroUsize;

use crate::Result;
use deepgalaxy_core::Error;
use kiddo::{ImmutableKdTree, SquaredEuclidean};
use rayon::prelude::*;

use crate::library::index::LatentIndex;

/// Latent sizes with a kd-tree; other sizes are searched by brute force.
pub const KD_DIMS: [usize; 4] = [8, 16, 32, 64];
/// [`Strategy::Auto`] uses the kd-tree without measuring up to this dimension.
pub const AUTO_MAX_STATIC_KD_DIM: usize = 8;
/// [`Strategy::Auto`] considers the kd-tree only from this many vectors on.
pub const AUTO_MIN_KD_LEN: usize = 2_000;
/// Queries [`Strategy::Auto`] times on each path for dimensions above
/// [`AUTO_MAX_STATIC_KD_DIM`].
pub const AUTO_PROBES: usize = 16;

/// Relative margin between kiddo's and our summation of the same squared distance. Both sum
/// at most 64 non-negative terms in `f32`, so they differ by less than 64 · 2⁻²⁴ ≈ 4e-6
/// relative; 1e-4 leaves a wide safety factor.
const MARGIN: f32 = 1e-4;
/// Absolute margin, for distances at or near zero.
const TINY: f32 = 1e-30;

/// How to search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Pick by the measured rule (see the module docs).
    Auto,
    /// kiddo kd-tree; an error for dimensions outside [`KD_DIMS`].
    KdTree,
    /// Scan every vector.
    Brute,
}

/// One search result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbour {
    /// Position of the entry in the library (index order).
    pub index: usize,
    /// Euclidean distance in latent space.
    pub distance: f32,
}

/// The kd-tree of one supported dimension.
enum Engine {
    Brute,
    Kd8(Box<ImmutableKdTree<f32, 8>>),
    Kd16(Box<ImmutableKdTree<f32, 16>>),
    Kd32(Box<ImmutableKdTree<f32, 32>>),
    Kd64(Box<ImmutableKdTree<f32, 64>>),
}

/// Answers k-nearest-neighbour queries over a borrowed set of vectors.
pub struct Searcher<'a> {
    vectors: &'a [f32],
    dim: usize,
    engine: Engine,
}

impl<'a> Searcher<'a> {
    /// A searcher over a latent index.
    pub fn new(index: &'a LatentIndex, strategy: Strategy) -> Result<Searcher<'a>> {
        Searcher::over(index.vectors(), index.dim(), strategy)
    }

    /// A searcher over `vectors.len() / dim` vectors of `dim` finite floats stored one after
    /// another. Builds the kd-tree when the strategy asks for one.
    pub fn over(vectors: &'a [f32], dim: usize, strategy: Strategy) -> Result<Searcher<'a>> {
        if dim == 0 || !vectors.len().is_multiple_of(dim) {
            return Err(Error::setting(
                "latent vectors",
                format!("{} floats are not whole vectors of {dim}", vectors.len()),
            )
            .into());
        }
        if vectors.iter().any(|v| !v.is_finite()) {
            return Err(Error::setting(
                "latent vectors",
                "NaN or infinite values cannot be searched",
            )
            .into());
        }
        let len = vectors.len() / dim;
        if len > u32::MAX as usize {
            return Err(Error::setting(
                "latent vectors",
                format!("{len} vectors exceed the kd-tree's u32 item limit"),
            )
            .into());
        }
        // kiddo reserves the largest finite value as a sentinel
        let kd_safe = vectors.iter().all(|v| v.abs() < f32::MAX);
        if strategy == Strategy::KdTree && !kd_safe {
            return Err(Error::setting(
                "latent vectors",
                "values of ±f32::MAX cannot go into a kd-tree; use brute force",
            )
            .into());
        }
        let brute = Searcher {
            vectors,
            dim,
            engine: Engine::Brute,
        };
        let use_kd = match strategy {
            Strategy::Brute => false,
            Strategy::KdTree if !KD_DIMS.contains(&dim) => {
                return Err(Error::setting(
                    "search strategy",
                    format!(
                        "no kd-tree for latent size {dim} (supported: {KD_DIMS:?}); use brute force"
                    ),
                )
                .into())
            }
            Strategy::KdTree => true,
            Strategy::Auto => KD_DIMS.contains(&dim) && len >= AUTO_MIN_KD_LEN && kd_safe,
        };
        if !use_kd {
            return Ok(brute);
        }
        let engine = match dim {
            8 => Engine::Kd8(Box::new(build_tree::<8>(vectors)?)),
            16 => Engine::Kd16(Box::new(build_tree::<16>(vectors)?)),
            32 => Engine::Kd32(Box::new(build_tree::<32>(vectors)?)),
            _ => Engine::Kd64(Box::new(build_tree::<64>(vectors)?)),
        };
        let kd = Searcher {
            vectors,
            dim,
            engine,
        };
        if strategy == Strategy::Auto && dim > AUTO_MAX_STATIC_KD_DIM {
            let probes: Vec<&[f32]> = (0..AUTO_PROBES)
                .map(|p| kd.vector(p * len / AUTO_PROBES))
                .collect();
            if brute.time(&probes) < kd.time(&probes) {
                return Ok(brute);
            }
        }
        Ok(kd)
    }

    fn vector(&self, i: usize) -> &'a [f32] {
        &self.vectors[i * self.dim..(i + 1) * self.dim]
    }

    /// Wall time of searching the `probes` with k = 6 (`deepgalaxy search`'s default).
    fn time(&self, probes: &[&[f32]]) -> std::time::Duration {
        let start = std::time::Instant::now();
        for q in probes {
            std::hint::black_box(self.search(q, 6).map(|r| r.len()).unwrap_or(0));
        }
        start.elapsed()
    }

    /// The strategy actually in use ([`Strategy::KdTree`] or [`Strategy::Brute`]).
    pub fn strategy(&self) -> Strategy {
        match self.engine {
            Engine::Brute => Strategy::Brute,
            _ => Strategy::KdTree,
        }
    }

    /// Number of vectors searched.
    pub fn len(&self) -> usize {
        self.vectors.len() / self.dim
    }

    /// True when there is nothing to search.
    pub fn is_empty(&self) -> bool {
        self.vectors.is_empty()
    }

    /// The `k` nearest vectors to `query` (all of them when there are fewer), nearest first,
    /// ties by index.
    ///
    /// With the kd-tree, kiddo is asked for `k + 1` neighbours. When the `(k+1)`-th is farther
    /// than the `k`-th by more than the summation margin, the first `k` are certainly the
    /// answer; otherwise (a tie or near-tie at the boundary) every vector within the `k`-th
    /// distance plus the margin is collected and ranked exactly.
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<Neighbour>> {
        self.check_query(query, k)?;
        Ok(match &self.engine {
            Engine::Brute => brute_parallel(self.vectors, self.dim, query, k),
            Engine::Kd8(t) => kd_search(t, self.vectors, query, k),
            Engine::Kd16(t) => kd_search(t, self.vectors, query, k),
            Engine::Kd32(t) => kd_search(t, self.vectors, query, k),
            Engine::Kd64(t) => kd_search(t, self.vectors, query, k),
        })
    }

    /// [`Self::search`] for many queries stored one after another, in parallel over queries.
    pub fn search_many(&self, queries: &[f32], k: usize) -> Result<Vec<Vec<Neighbour>>> {
        if !queries.len().is_multiple_of(self.dim) {
            return Err(Error::setting(
                "search queries",
                format!(
                    "{} floats are not whole vectors of {}",
                    queries.len(),
                    self.dim
                ),
            )
            .into());
        }
        queries
            .par_chunks(self.dim)
            .map(|q| {
                self.check_query(q, k)?;
                Ok(match &self.engine {
                    Engine::Brute => brute_serial(self.vectors, self.dim, q, k, 0),
                    Engine::Kd8(t) => kd_search(t, self.vectors, q, k),
                    Engine::Kd16(t) => kd_search(t, self.vectors, q, k),
                    Engine::Kd32(t) => kd_search(t, self.vectors, q, k),
                    Engine::Kd64(t) => kd_search(t, self.vectors, q, k),
                })
            })
            .collect()
    }

    fn check_query(&self, query: &[f32], k: usize) -> Result<()> {
        if query.len() != self.dim {
            return Err(Error::setting(
                "search query",
                format!(
                    "latent of size {} for a library of size {}",
                    query.len(),
                    self.dim
                ),
            )
            .into());
        }
        if query.iter().any(|v| !v.is_finite()) {
            return Err(Error::setting("search query", "NaN or infinite latent").into());
        }
        if k == 0 {
            return Err(Error::setting("k", "must be at least 1").into());
        }
        Ok(())
    }
}

/// Squared Euclidean distance, summed in eight fixed lanes (so the compiler can vectorise it
/// while the result stays a deterministic function of the inputs), then the lanes pairwise,
/// then the remainder.
pub fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks = a.len() / 8;
    for (ca, cb) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for l in 0..8 {
            let d = ca[l] - cb[l];
            lanes[l] += d * d;
        }
    }
    let mut s = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5]))
        + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
    for (x, y) in a[chunks * 8..].iter().zip(&b[chunks * 8..]) {
        let d = x - y;
        s += d * d;
    }
    s
}

/// Orders candidates by (squared distance, index); `f32` bits order like the values for the
/// non-negative numbers distances are.
type Key = (u32, usize);

fn key(sq: f32, index: usize) -> Key {
    (sq.to_bits(), index)
}

fn into_neighbours(mut keys: Vec<Key>, k: usize) -> Vec<Neighbour> {
    keys.sort_unstable();
    keys.truncate(k);
    keys.into_iter()
        .map(|(bits, index)| Neighbour {
            index,
            distance: f32::from_bits(bits).sqrt(),
        })
        .collect()
}

/// The `k` smallest keys among vectors `offset..` of `vectors`, unsorted.
fn top_k(vectors: &[f32], dim: usize, query: &[f32], k: usize, offset: usize) -> Vec<Key> {
    let mut heap: BinaryHeap<Key> = BinaryHeap::with_capacity(k + 1);
    for (i, v) in vectors.chunks_exact(dim).enumerate() {
        let candidate = key(squared_distance(v, query), offset + i);
        if heap.len() < k {
            heap.push(candidate);
        } else if heap.peek().is_some_and(|worst| candidate < *worst) {
            heap.pop();
            heap.push(candidate);
        }
    }
    heap.into_vec()
}

fn brute_serial(
    vectors: &[f32],
    dim: usize,
    query: &[f32],
    k: usize,
    offset: usize,
) -> Vec<Neighbour> {
    into_neighbours(top_k(vectors, dim, query, k, offset), k)
}

/// Vectors per rayon task in a single-query scan.
const BRUTE_CHUNK: usize = 16_384;

fn brute_parallel(vectors: &[f32], dim: usize, query: &[f32], k: usize) -> Vec<Neighbour> {
    let keys: Vec<Key> = vectors
        .par_chunks(BRUTE_CHUNK * dim)
        .enumerate()
        .flat_map_iter(|(c, chunk)| top_k(chunk, dim, query, k, c * BRUTE_CHUNK))
        .collect();
    into_neighbours(keys, k)
}

fn build_tree<const D: usize>(vectors: &[f32]) -> Result<ImmutableKdTree<f32, D>> {
    let points: Vec<[f32; D]> = vectors
        .chunks_exact(D)
        .map(|c| {
            let mut p = [0.0f32; D];
            p.copy_from_slice(c);
            p
        })
        .collect();
    ImmutableKdTree::new_from_slice(&points)
        .map_err(|e| Error::setting("kd-tree", format!("construction failed: {e:?}")))
        .map_err(Into::into)
}

fn kd_search<const D: usize>(
    tree: &ImmutableKdTree<f32, D>,
    vectors: &[f32],
    query: &[f32],
    k: usize,
) -> Vec<Neighbour> {
    let n = vectors.len() / D;
    if n == 0 {
        return Vec::new();
    }
    let mut q = [0.0f32; D];
    q.copy_from_slice(query);
    let ours = |item: u32| {
        let i = item as usize;
        key(squared_distance(&vectors[i * D..(i + 1) * D], query), i)
    };
    let want = NonZeroUsize::new((k + 1).min(n)).unwrap_or(NonZeroUsize::MIN);
    let found = tree
        .query(&q)
        .nearest_n::<SquaredEuclidean<f32>>(want)
        .execute();
    if found.len() <= k {
        // the whole library
        return into_neighbours(found.iter().map(|r| ours(r.item)).collect(), k);
    }
    let kth = found[k - 1].distance;
    let limit = kth * (1.0 + MARGIN) + TINY;
    if found[k].distance > limit {
        return into_neighbours(found[..k].iter().map(|r| ours(r.item)).collect(), k);
    }
    // A tie or near-tie at the k-th place: rank every candidate within the margin exactly.
    let radius = kth * (1.0 + 3.0 * MARGIN) + TINY;
    let candidates = tree
        .query(&q)
        .within::<SquaredEuclidean<f32>>(radius)
        .execute();
    into_neighbours(candidates.iter().map(|r| ours(r.item)).collect(), k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_distr::{Distribution, Normal};

    fn uniform(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..n * dim).map(|_| rng.random::<f32>()).collect()
    }

    /// Gaussian blobs with a small spread, plus exact duplicates (ties).
    fn clustered(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let centres: Vec<f32> = (0..10 * dim).map(|_| rng.random::<f32>() * 10.0).collect();
        let noise = Normal::new(0.0f32, 0.05).unwrap();
        let mut v = Vec::with_capacity(n * dim);
        for i in 0..n {
            if i % 17 == 5 {
                // an exact copy of an earlier vector
                let j = (i / 2) * dim;
                let copy = v[j..j + dim].to_vec();
                v.extend(copy);
                continue;
            }
            let c = rng.random_range(0..10);
            for d in 0..dim {
                v.push(centres[c * dim + d] + noise.sample(&mut rng));
            }
        }
        v
    }

    /// Reference: sort everything.
    fn reference(vectors: &[f32], dim: usize, q: &[f32], k: usize) -> Vec<Neighbour> {
        let keys = vectors
            .chunks_exact(dim)
            .enumerate()
            .map(|(i, v)| key(squared_distance(v, q), i))
            .collect();
        into_neighbours(keys, k)
    }

    #[test]
    fn kd_tree_equals_brute_force_exactly() {
        for &dim in &KD_DIMS {
            for (name, data) in [
                ("uniform", uniform(3000, dim, dim as u64)),
                ("clustered", clustered(3000, dim, 100 + dim as u64)),
            ] {
                let kd = Searcher::over(&data, dim, Strategy::KdTree).unwrap();
                let brute = Searcher::over(&data, dim, Strategy::Brute).unwrap();
                assert_eq!(kd.strategy(), Strategy::KdTree);
                // queries: library members (distance 0, duplicates), and fresh points
                let mut queries = data[..20 * dim].to_vec();
                queries.extend(uniform(20, dim, 7 + dim as u64));
                if name == "clustered" {
                    queries.extend(clustered(20, dim, 100 + dim as u64 + 1000));
                }
                for k in [1, 2, 6, 25] {
                    let a = kd.search_many(&queries, k).unwrap();
                    let b = brute.search_many(&queries, k).unwrap();
                    assert_eq!(a, b, "{name} dim {dim} k {k}");
                    for (qi, q) in queries.chunks(dim).enumerate() {
                        assert_eq!(a[qi], reference(&data, dim, q, k));
                        assert_eq!(brute.search(q, k).unwrap(), a[qi]);
                        assert_eq!(kd.search(q, k).unwrap(), a[qi]);
                    }
                }
            }
        }
    }

    #[test]
    fn ties_are_broken_by_index() {
        // four copies of the same point, and one far away
        let dim = 8;
        let mut data = vec![1.0f32; 4 * dim];
        data.extend(vec![5.0f32; dim]);
        for strategy in [Strategy::KdTree, Strategy::Brute] {
            let s = Searcher::over(&data, dim, strategy).unwrap();
            let got = s.search(&[1.0; 8], 3).unwrap();
            let idx: Vec<usize> = got.iter().map(|n| n.index).collect();
            assert_eq!(idx, vec![0, 1, 2]);
            assert!(got.iter().all(|n| n.distance == 0.0));
            // k beyond the library returns everything
            let all = s.search(&[5.0; 8], 10).unwrap();
            assert_eq!(all.len(), 5);
            assert_eq!(all[0].index, 4);
            assert_eq!(all[1].distance, (16.0f32 * 8.0).sqrt());
        }
    }

    #[test]
    fn brute_force_handles_any_dimension() {
        let data = uniform(500, 5, 3);
        let s = Searcher::over(&data, 5, Strategy::Auto).unwrap();
        assert_eq!(s.strategy(), Strategy::Brute);
        let q = &data[10 * 5..11 * 5];
        let got = s.search(q, 4).unwrap();
        assert_eq!(got, reference(&data, 5, q, 4));
        assert_eq!(
            got[0],
            Neighbour {
                index: 10,
                distance: 0.0
            }
        );
        assert!(Searcher::over(&data, 5, Strategy::KdTree).is_err());
    }

    #[test]
    fn auto_follows_the_measured_rule() {
        let pick = |n: usize, dim: usize| {
            let data = clustered(n, dim, 5);
            Searcher::over(&data, dim, Strategy::Auto)
                .unwrap()
                .strategy()
        };
        assert_eq!(pick(1999, 16), Strategy::Brute);
        assert_eq!(pick(1999, 8), Strategy::Brute);
        assert_eq!(pick(2000, 8), Strategy::KdTree);
        assert_eq!(pick(5000, 12), Strategy::Brute);
        // 16, 32 and 64 are timed on the data: either way the answers are the same
        let data = clustered(3000, 32, 6);
        let auto = Searcher::over(&data, 32, Strategy::Auto).unwrap();
        let brute = Searcher::over(&data, 32, Strategy::Brute).unwrap();
        let q = &data[7 * 32..8 * 32];
        assert_eq!(auto.search(q, 6).unwrap(), brute.search(q, 6).unwrap());
    }

    #[test]
    fn bad_queries_are_errors() {
        let data = uniform(100, 8, 4);
        let s = Searcher::over(&data, 8, Strategy::Auto).unwrap();
        assert!(s.search(&[0.0; 7], 3).is_err());
        assert!(s.search(&[f32::NAN; 8], 3).is_err());
        assert!(s.search(&[0.0; 8], 0).is_err());
        assert!(s.search_many(&[0.0; 9], 3).is_err());
        assert!(Searcher::over(&data[..7], 8, Strategy::Auto).is_err());
        let mut nan = data.clone();
        nan[3] = f32::NAN;
        assert!(Searcher::over(&nan, 8, Strategy::Auto).is_err());
        let mut max = uniform(3000, 8, 5);
        max[3] = f32::MAX;
        assert!(Searcher::over(&max, 8, Strategy::KdTree).is_err());
        let auto = Searcher::over(&max, 8, Strategy::Auto).unwrap();
        assert_eq!(auto.strategy(), Strategy::Brute);
        // an empty library answers with nothing, on both paths
        for strategy in [Strategy::KdTree, Strategy::Brute] {
            let empty = Searcher::over(&[], 8, strategy).unwrap();
            assert!(empty.is_empty());
            assert_eq!(empty.search(&[0.0; 8], 3).unwrap(), vec![]);
        }
    }

    #[test]
    fn squared_distance_is_the_plain_sum() {
        let a: Vec<f32> = (0..19).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..19).map(|i| (i % 3) as f32).collect();
        let plain: f64 = a
            .iter()
            .zip(&b)
            .map(|(x, y)| f64::from(x - y).powi(2))
            .sum();
        assert!((f64::from(squared_distance(&a, &b)) - plain).abs() < 1e-4 * plain);
    }
}
