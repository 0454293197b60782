//! The training losses, each matching PyTorch's definition (checked in `tests/parity.rs`).

use candle_core::{DType, Device, Result, Tensor, D};

/// Cross-entropy of `logits` (N x K) against class indices, averaged over the batch, with
/// PyTorch's label smoothing: `(1 - eps) * nll + eps * mean_k(-log p_k)`.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor, smoothing: f64) -> Result<Tensor> {
    let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let nll = logp
        .gather(&labels.to_dtype(DType::U32)?.unsqueeze(1)?, 1)?
        .neg()?
        .mean_all()?;
    if smoothing == 0.0 {
        return Ok(nll);
    }
    let uniform = logp.neg()?.mean(D::Minus1)?.mean_all()?;
    (nll * (1.0 - smoothing))? + (uniform * smoothing)?
}

/// Cross-entropy of `logits` (N x K) against a target distribution per row (N x K, rows
/// summing to 1), averaged over the batch: `mean_n(-sum_k q_nk log p_nk)`. PyTorch's
/// `cross_entropy` with probability targets.
pub fn soft_cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    logp.mul(targets)?.sum(D::Minus1)?.neg()?.mean_all()
}

/// Ordinal targets (label distribution learning, Gao et al. 2017): label `y` becomes a
/// Gaussian over the classes, `q_k ~ exp(-(k - y)^2 / (2 sigma^2))`, cut at the ends and
/// renormalised, then mixed with `smoothing` of the uniform distribution. The classes are
/// consecutive snapshots 5 Myr apart, so a one-hot target punishes an answer one snapshot off
/// as hard as one 70 off; the Gaussian teaches the order of the classes instead.
pub fn gaussian_targets(
    labels: &[u32],
    classes: usize,
    sigma: f64,
    smoothing: f64,
    device: &Device,
) -> Result<Tensor> {
    let mut q = Vec::with_capacity(labels.len() * classes);
    for &y in labels {
        let row: Vec<f64> = (0..classes)
            .map(|k| {
                let d = k as f64 - f64::from(y);
                if sigma > 0.0 {
                    (-d * d / (2.0 * sigma * sigma)).exp()
                } else {
                    f64::from(u8::from(d == 0.0))
                }
            })
            .collect();
        let sum: f64 = row.iter().sum();
        q.extend(
            row.iter()
                .map(|v| ((1.0 - smoothing) * v / sum + smoothing / classes as f64) as f32),
        );
    }
    Tensor::from_vec(q, (labels.len(), classes), device)
}

/// Mean squared error over all elements.
pub fn mse(prediction: &Tensor, target: &Tensor) -> Result<Tensor> {
    prediction.sub(target)?.sqr()?.mean_all()
}

/// KL divergence of N(mu, exp(logvar)) from N(0, 1), summed over the latent and averaged over
/// the batch: `mean_n(-0.5 * sum_j(1 + logvar - mu^2 - exp(logvar)))`. This is the term the
/// original DeepGalaxy code left out of its VAE loss.
pub fn kl_divergence(mu: &Tensor, logvar: &Tensor) -> Result<Tensor> {
    let inner = ((logvar + 1.0)? - mu.sqr()?)?.sub(&logvar.exp()?)?;
    (inner.sum(D::Minus1)? * -0.5)?.mean_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_targets_are_distributions_peaked_at_the_label() {
        let labels = [0u32, 5, 10];
        let q: Vec<Vec<f32>> = gaussian_targets(&labels, 11, 2.0, 0.05, &Device::Cpu)
            .unwrap()
            .to_vec2()
            .unwrap();
        for (row, &y) in q.iter().zip(&labels) {
            let sum: f32 = row.iter().sum();
            assert!((sum - 1.0).abs() < 1e-6, "row of label {y} sums to {sum}");
            let peak = (0..row.len())
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .unwrap();
            assert_eq!(peak, y as usize);
            assert!(row.iter().all(|&v| v >= 0.05 / 11.0 - 1e-7));
        }
        // symmetric around a label away from the ends, falling off as exp(-d^2 / 8)
        let mid = &q[1];
        for d in 1..=5 {
            assert!((mid[5 - d] - mid[5 + d]).abs() < 1e-7);
        }
        let g = |d: f32| (-d * d / 8.0).exp();
        let ratio = (mid[6] - 0.05 / 11.0) / (mid[5] - 0.05 / 11.0);
        assert!((ratio - g(1.0)).abs() < 1e-5, "{ratio}");
        // sigma 0 is one-hot
        let hard: Vec<Vec<f32>> = gaussian_targets(&[3], 5, 0.0, 0.0, &Device::Cpu)
            .unwrap()
            .to_vec2()
            .unwrap();
        assert_eq!(hard[0], vec![0.0, 0.0, 0.0, 1.0, 0.0]);
    }
}
