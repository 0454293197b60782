//! The training losses, each matching PyTorch's definition (checked in `tests/parity.rs`).

use candle_core::{DType, Result, Tensor, D};

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
