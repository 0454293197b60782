//! Validation metrics: top-1, within-1 and within-2 class accuracy, mean absolute error in Myr,
//! reconstruction errors and KL, and the confusion matrix.

use candle_core::{Device, Tensor};
use deepgalaxy_models::exec::{forward, Mode};
use deepgalaxy_models::{Graph, Weights};
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::distributed::Collective;
use crate::loss;
use deepgalaxy_core::Result;
use deepgalaxy_models::exec::candle_err;

/// Metrics of one pass over a set of images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalMetrics {
    /// Images evaluated.
    pub images: usize,
    /// Fraction with the right class.
    pub top1: f64,
    /// Fraction within one class of the truth.
    pub within1: f64,
    /// Fraction within two classes.
    pub within2: f64,
    /// Mean |t(predicted class) - t(true)| in Myr.
    pub mae_myr: f64,
    /// Cross-entropy.
    pub cross_entropy: f64,
    /// FCAE reconstruction MSE.
    pub recon_mse: f64,
    /// VAE reconstruction MSE.
    pub vae_recon_mse: f64,
    /// KL divergence of the VAE posterior.
    pub kl: f64,
}

/// `confusion[true][predicted]` counts.
pub type Confusion = Vec<Vec<u32>>;

/// Evaluates every head on `indices` of `ds` in inference mode.
pub fn evaluate(
    graph: &Graph,
    weights: &Weights,
    ds: &Dataset,
    indices: &[usize],
    batch_size: usize,
    device: &Device,
) -> Result<(EvalMetrics, Confusion)> {
    let n_classes = ds.num_classes;
    let mut confusion = vec![vec![0u32; n_classes]; n_classes];
    let (mut ce, mut rec, mut vrec, mut kl, mut abs_err) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut hit0, mut hit1, mut hit2) = (0usize, 0usize, 0usize);
    let o = graph.outputs;
    for chunk in indices.chunks(batch_size.max(1)) {
        let (x, y) = ds.batch(chunk, None, device).map_err(candle_err)?;
        let out = forward(
            graph,
            weights,
            &x,
            &[
                o.logits,
                o.reconstruction,
                o.vae_reconstruction,
                o.mu,
                o.logvar,
            ],
            Mode::Eval,
        )?;
        let n = chunk.len() as f64;
        let scalar = |t: candle_core::Result<Tensor>| -> Result<f64> {
            t.and_then(|t| t.to_scalar::<f32>())
                .map(f64::from)
                .map_err(candle_err)
        };
        ce += n * scalar(loss::cross_entropy(&out[0], &y, 0.0))?;
        rec += n * scalar(loss::mse(&out[1], &x))?;
        vrec += n * scalar(loss::mse(&out[2], &x))?;
        kl += n * scalar(loss::kl_divergence(&out[3], &out[4]))?;
        let pred: Vec<u32> = out[0]
            .argmax(1)
            .and_then(|t| t.to_vec1())
            .map_err(candle_err)?;
        for (&i, &p) in chunk.iter().zip(&pred) {
            let s = &ds.samples[i];
            let d = (p as i64 - s.label as i64).unsigned_abs();
            hit0 += (d == 0) as usize;
            hit1 += (d <= 1) as usize;
            hit2 += (d <= 2) as usize;
            let truth = s.t_myr.unwrap_or(ds.class_t_myr[s.label as usize]);
            abs_err += (ds.class_t_myr[p as usize] - truth).abs();
            confusion[s.label as usize][p as usize] += 1;
        }
    }
    let n = indices.len().max(1) as f64;
    Ok((
        EvalMetrics {
            images: indices.len(),
            top1: hit0 as f64 / n,
            within1: hit1 as f64 / n,
            within2: hit2 as f64 / n,
            mae_myr: abs_err / n,
            cross_entropy: ce / n,
            recon_mse: rec / n,
            vae_recon_mse: vrec / n,
            kl: kl / n,
        },
        confusion,
    ))
}

/// The metrics of the union of every rank's images, from each rank's own (the means weighted
/// by image count, the confusion matrices summed).
pub fn reduce_metrics(
    comm: &dyn Collective,
    m: EvalMetrics,
    confusion: Confusion,
) -> (EvalMetrics, Confusion) {
    if comm.size() == 1 {
        return (m, confusion);
    }
    let n = m.images as f64;
    let means = [
        m.top1,
        m.within1,
        m.within2,
        m.mae_myr,
        m.cross_entropy,
        m.recon_mse,
        m.vae_recon_mse,
        m.kl,
    ];
    let mut buf: Vec<f32> = std::iter::once(n)
        .chain(means.iter().map(|v| v * n))
        .map(|v| v as f32)
        .chain(confusion.iter().flatten().map(|&c| c as f32))
        .collect();
    comm.allreduce_sum(&mut buf);
    let total = buf[0] as f64;
    let mean = |k: usize| buf[1 + k] as f64 / total.max(1.0);
    let k = confusion.len();
    let summed = (0..k)
        .map(|i| (0..k).map(|j| buf[9 + i * k + j] as u32).collect())
        .collect();
    (
        EvalMetrics {
            images: total as usize,
            top1: mean(0),
            within1: mean(1),
            within2: mean(2),
            mae_myr: mean(3),
            cross_entropy: mean(4),
            recon_mse: mean(5),
            vae_recon_mse: mean(6),
            kl: mean(7),
        },
        summed,
    )
}
