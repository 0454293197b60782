//! Spectral clustering wall time against the number of latents (dense Laplacian
//! eigendecomposition with faer), the measurement behind `cluster::DEFAULT_MAX_DENSE`.
//!
//! ```text
//! cargo bench -p deepgalaxy-runtime --bench spectral
//! ```

use std::time::Instant;

use deepgalaxy_runtime::analysis::cluster::{
    adjusted_rand_index, spectral_clustering, SpectralConfig,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

fn main() {
    let dim = 16;
    println!("| latents | seconds | clusters found | ARI vs planted (8 blobs) |");
    println!("| ---: | ---: | ---: | ---: |");
    for &n in &[500usize, 1000, 2000, 3000, 4000] {
        let mut rng = ChaCha8Rng::seed_from_u64(n as u64);
        let noise = Normal::new(0.0f32, 0.3).unwrap();
        let mut v = Vec::with_capacity(n * dim);
        let mut truth = Vec::with_capacity(n);
        for _ in 0..n {
            let b = rng.random_range(0..8);
            for d in 0..dim {
                v.push(if d == b { 6.0 } else { 0.0 } + noise.sample(&mut rng));
            }
            truth.push(b);
        }
        let config = SpectralConfig {
            max_dense: n,
            ..SpectralConfig::default()
        };
        let t = Instant::now();
        let r = spectral_clustering(&v, dim, &config).unwrap();
        let secs = t.elapsed().as_secs_f64();
        let ari = adjusted_rand_index(&r.labels, &truth).unwrap();
        println!("| {n} | {secs:.2} | {} | {ari:.3} |", r.clusters);
    }
}
