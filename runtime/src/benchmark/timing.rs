//! Timing: a warm-up, then repeats; the median is quoted, with latency percentiles.

use std::time::Instant;

use serde::Serialize;

/// Throughput and latency of one configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// Median images per second over the repeats.
    pub images_per_sec: f64,
    /// Images per second of every repeat.
    pub runs: Vec<f64>,
    /// Median per-batch latency in ms (all repeats' batches).
    pub p50_ms: f64,
    /// 99th percentile per-batch latency in ms.
    pub p99_ms: f64,
}

/// The `q`-quantile (0..=1) of `v` by nearest rank; 0 for an empty slice.
pub fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[((q * (s.len() - 1) as f64).round() as usize).min(s.len() - 1)]
}

/// Times `repeats` passes of `pass` over `images` images after one warm-up call of `warm`.
/// `pass` returns the per-batch latencies (seconds) it saw; the first error of either stops it.
pub fn measure<E>(
    images: usize,
    repeats: usize,
    warm: impl FnOnce() -> Result<(), E>,
    mut pass: impl FnMut() -> Result<Vec<f64>, E>,
) -> Result<Throughput, E> {
    warm()?;
    let mut runs = Vec::new();
    let mut latencies = Vec::new();
    for _ in 0..repeats.max(1) {
        let start = Instant::now();
        latencies.extend(pass()?.into_iter().map(|s| s * 1e3));
        runs.push(images as f64 / start.elapsed().as_secs_f64());
    }
    Ok(Throughput {
        images_per_sec: quantile(&runs, 0.5),
        p50_ms: quantile(&latencies, 0.5),
        p99_ms: quantile(&latencies, 0.99),
        runs,
    })
}

#[cfg(test)]
mod tests {
    use super::quantile;

    #[test]
    fn quantiles_by_nearest_rank() {
        let v = [5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(quantile(&v, 0.5), 3.0);
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert_eq!(quantile(&v, 1.0), 5.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }
}
