//! Latent search latency: kd-tree (kiddo) vs brute force, per query, on uniform and clustered
//! latents. Prints a markdown table for `benches/README.md` ("Runtime: latent search").
//!
//! ```text
//! cargo bench -p deepgalaxy-runtime --bench latent_search            # full: 100k and 1M, 16-D, plus the Auto sweep
//! cargo bench -p deepgalaxy-runtime --bench latent_search -- --quick # 100k only
//! ```
//!
//! "Auto setup" is the time `Searcher::over(.., Strategy::Auto)` took: the tree build plus,
//! from 16-D on, the timed probe queries.
//!
//! Latency is the mean wall time of `Searcher::search` (one query at a time; brute force
//! scans in parallel on all cores) for k = 6, over queries drawn fresh from the same
//! distribution as the library. "Clustered" is 64 Gaussian blobs (sigma 0.02 per axis)
//! with centres uniform in the unit cube, like a latent space that separates simulations.

use std::hint::black_box;
use std::time::Instant;

use deepgalaxy_runtime::library::search::{Searcher, Strategy};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

const K: usize = 6;

fn uniform(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n * dim).map(|_| rng.random::<f32>()).collect()
}

fn clustered(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    // the centres depend on the dimension only, so library and queries share them
    let mut crng = ChaCha8Rng::seed_from_u64(1000 + dim as u64);
    let centres: Vec<f32> = (0..64 * dim).map(|_| crng.random::<f32>()).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let noise = Normal::new(0.0f32, 0.02).unwrap();
    let mut v = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let c = rng.random_range(0..64);
        for d in 0..dim {
            v.push(centres[c * dim + d] + noise.sample(&mut rng));
        }
    }
    v
}

/// Mean seconds per query of `searcher` over `queries`, after a short warm-up.
fn per_query(searcher: &Searcher<'_>, queries: &[f32], dim: usize) -> f64 {
    for q in queries.chunks(dim).take(3) {
        black_box(searcher.search(q, K).unwrap());
    }
    let start = Instant::now();
    let mut n = 0;
    for q in queries.chunks(dim) {
        black_box(searcher.search(black_box(q), K).unwrap());
        n += 1;
    }
    start.elapsed().as_secs_f64() / n as f64
}

fn fmt(seconds: f64) -> String {
    if seconds >= 1e-3 {
        format!("{:.2} ms", seconds * 1e3)
    } else {
        format!("{:.1} µs", seconds * 1e6)
    }
}

/// One table row: build time, kd and brute latency, ratio.
fn row(n: usize, dim: usize, kind: &str, queries_kd: usize, queries_brute: usize) {
    let (data, queries) = match kind {
        "uniform" => (uniform(n, dim, 1), uniform(queries_kd, dim, 2)),
        _ => (clustered(n, dim, 1), clustered(queries_kd, dim, 2)),
    };
    let t = Instant::now();
    let kd = Searcher::over(&data, dim, Strategy::KdTree).unwrap();
    let build = t.elapsed().as_secs_f64();
    let brute = Searcher::over(&data, dim, Strategy::Brute).unwrap();
    let kd_t = per_query(&kd, &queries, dim);
    let brute_t = per_query(&brute, &queries[..queries_brute * dim], dim);
    // the two paths must agree on what they found
    for q in queries.chunks(dim).take(5) {
        assert_eq!(kd.search(q, K).unwrap(), brute.search(q, K).unwrap());
    }
    let t = Instant::now();
    let auto = Searcher::over(&data, dim, Strategy::Auto)
        .unwrap()
        .strategy();
    let auto_setup = t.elapsed().as_secs_f64();
    let picked = if auto == Strategy::KdTree {
        "kd-tree"
    } else {
        "brute"
    };
    println!(
        "| {n} | {dim} | {kind} | {} | {} | {} | {:.1}x | {picked} | {} |",
        fmt(build),
        fmt(kd_t),
        fmt(brute_t),
        brute_t / kd_t,
        fmt(auto_setup),
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    println!(
        "threads: {} (rayon), k = {K}\n",
        rayon::current_num_threads()
    );
    println!(
        "| N | D | data | kd-tree build | kd-tree / query | brute / query | brute ÷ kd | Auto picks | Auto setup |"
    );
    println!("| ---: | ---: | --- | ---: | ---: | ---: | ---: | --- | ---: |");
    let sizes: &[usize] = if quick {
        &[100_000]
    } else {
        &[100_000, 1_000_000]
    };
    for &n in sizes {
        for kind in ["clustered", "uniform"] {
            row(n, 16, kind, 400, if n > 100_000 { 40 } else { 200 });
        }
    }
    if quick {
        return;
    }
    // the sweep behind Strategy::Auto: every kd-tree dimension, small to medium libraries
    for &dim in &[8, 16, 32, 64] {
        for &n in &[1_000, 2_000, 10_000, 100_000] {
            for kind in ["clustered", "uniform"] {
                row(n, dim, kind, 200, 100);
            }
        }
    }
}
