//! Validation metrics: the errors of the expected time (median and mean absolute error,
//! within ±10 and ±25 Myr, coverage of the predicted spread, scored as `predict` and
//! `evaluate` score them, through `deepgalaxy_core::time`), top-1, within-1 and within-2 class
//! accuracy beside them, reconstruction errors and KL, and the confusion matrix.

use candle_core::{Device, Tensor};
use deepgalaxy_models::exec::{forward, Mode};
use deepgalaxy_models::{Graph, Weights};
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::loss;
use crate::Result;
use deepgalaxy_collective::Collective;
use deepgalaxy_core::time::{expected_time, sigma_scale, TimeAnswer, TimeScore};

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
    /// Mean |expected time - true time| in Myr (before issue 20's targets: of the most probable
    /// class's time).
    pub mae_myr: f64,
    /// Median |expected time - true time| in Myr.
    #[serde(default)]
    pub median_abs_myr: f64,
    /// Fraction of expected times within ±10 Myr of the truth.
    #[serde(default)]
    pub within_10_myr: f64,
    /// Fraction within ±25 Myr.
    #[serde(default)]
    pub within_25_myr: f64,
    /// Fraction whose truth lies within the predicted 1-sigma spread.
    #[serde(default)]
    pub coverage_1sigma: f64,
    /// The factor that would make 68% of these truths lie within one spread (see
    /// `deepgalaxy_core::time::sigma_scale`); export writes the last epoch's into the card.
    #[serde(default)]
    pub sigma_scale: Option<f64>,
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

/// One pass's results before they are summarised: means, the confusion matrix, and every
/// image's expected time (the median and coverage need them all).
#[derive(Debug, Clone)]
pub struct Evaluated {
    /// The metrics of these images alone.
    pub metrics: EvalMetrics,
    /// Their confusion matrix.
    pub confusion: Confusion,
    /// Expected time, spread and truth of each image, in the order evaluated.
    pub answers: Vec<TimeAnswer>,
}

/// Evaluates every head on `indices` of `ds` in inference mode.
pub fn evaluate(
    graph: &Graph,
    weights: &Weights,
    ds: &Dataset,
    indices: &[usize],
    batch_size: usize,
    device: &Device,
) -> Result<Evaluated> {
    let n_classes = ds.num_classes;
    let mut confusion = vec![vec![0u32; n_classes]; n_classes];
    let mut answers = Vec::with_capacity(indices.len());
    let (mut ce, mut rec, mut vrec, mut kl) = (0.0, 0.0, 0.0, 0.0);
    let (mut hit0, mut hit1, mut hit2) = (0usize, 0usize, 0usize);
    let o = graph.outputs;
    for chunk in indices.chunks(batch_size.max(1)) {
        let (x, y) = ds.batch(chunk, None, device)?;
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
                .map_err(crate::Error::from)
        };
        ce += n * scalar(loss::cross_entropy(&out[0], &y, 0.0))?;
        rec += n * scalar(loss::mse(&out[1], &x))?;
        vrec += n * scalar(loss::mse(&out[2], &x))?;
        kl += n * scalar(loss::kl_divergence(&out[3], &out[4]))?;
        let probs: Vec<Vec<f32>> =
            candle_nn::ops::softmax_last_dim(&out[0]).and_then(|t| t.to_vec2())?;
        for (&i, q) in chunk.iter().zip(&probs) {
            let s = &ds.samples[i];
            let p = argmax(q);
            let d = (p as i64 - s.label as i64).unsigned_abs();
            hit0 += (d == 0) as usize;
            hit1 += (d <= 1) as usize;
            hit2 += (d <= 2) as usize;
            let truth = s.time_myr.unwrap_or(ds.class_t_myr[s.label as usize]);
            let (predicted, sigma) = expected_time(q, &ds.class_t_myr).unwrap_or((f64::NAN, 0.0));
            answers.push(TimeAnswer {
                predicted,
                sigma,
                truth,
            });
            confusion[s.label as usize][p] += 1;
        }
    }
    let n = indices.len().max(1) as f64;
    let metrics = EvalMetrics::from_parts(
        indices.len(),
        [hit0 as f64 / n, hit1 as f64 / n, hit2 as f64 / n],
        [ce / n, rec / n, vrec / n, kl / n],
        &answers,
    );
    Ok(Evaluated {
        metrics,
        confusion,
        answers,
    })
}

/// The first most probable class.
fn argmax(q: &[f32]) -> usize {
    (0..q.len())
        .reduce(|a, b| if q[b] > q[a] { b } else { a })
        .unwrap_or(0)
}

impl EvalMetrics {
    /// The metrics of `images` images from their class accuracies (top-1, within 1, within
    /// 2), their mean losses (cross-entropy, reconstruction, VAE reconstruction, KL) and every
    /// image's time answer.
    fn from_parts(
        images: usize,
        [top1, within1, within2]: [f64; 3],
        [cross_entropy, recon_mse, vae_recon_mse, kl]: [f64; 4],
        answers: &[TimeAnswer],
    ) -> EvalMetrics {
        let t = TimeScore::of(answers);
        let time = |f: fn(&TimeScore) -> f64| t.as_ref().map_or(0.0, f);
        EvalMetrics {
            images,
            top1,
            within1,
            within2,
            mae_myr: time(|t| t.mean_abs_myr),
            median_abs_myr: time(|t| t.median_abs_myr),
            within_10_myr: time(|t| t.within_10_myr),
            within_25_myr: time(|t| t.within_25_myr),
            coverage_1sigma: time(|t| t.coverage_1sigma),
            sigma_scale: sigma_scale(answers),
            cross_entropy,
            recon_mse,
            vae_recon_mse,
            kl,
        }
    }
}

/// The metrics of the union of every rank's images, from each rank's own: the means weighted
/// by image count, the confusion matrices summed, and the time metrics recomputed from every
/// image's answer. Rank `k` evaluated images `offset..offset + local.answers.len()` of the
/// `total` (contiguous parts, as `deepgalaxy_collective::part` makes them).
pub fn reduce_metrics(
    comm: &dyn Collective,
    local: Evaluated,
    offset: usize,
    total: usize,
) -> (EvalMetrics, Confusion) {
    if comm.size() == 1 {
        return (local.metrics, local.confusion);
    }
    let m = &local.metrics;
    let n = m.images as f64;
    let means = [
        m.top1,
        m.within1,
        m.within2,
        m.cross_entropy,
        m.recon_mse,
        m.vae_recon_mse,
        m.kl,
    ];
    let head = 1 + means.len();
    let k = local.confusion.len();
    let mut buf: Vec<f32> = std::iter::once(n)
        .chain(means.iter().map(|v| v * n))
        .map(|v| v as f32)
        .chain(local.confusion.iter().flatten().map(|&c| c as f32))
        .collect();
    // every rank's answers at their global positions, zeros elsewhere: the sum is all of them
    let answers_at = buf.len();
    buf.resize(answers_at + 3 * total, 0.0);
    for (j, a) in local.answers.iter().enumerate() {
        let at = answers_at + 3 * (offset + j);
        buf[at..at + 3].copy_from_slice(&[a.predicted as f32, a.sigma as f32, a.truth as f32]);
    }
    comm.allreduce_sum(&mut buf);
    let images = buf[0] as f64;
    let mean = |i: usize| buf[1 + i] as f64 / images.max(1.0);
    let summed = (0..k)
        .map(|i| (0..k).map(|j| buf[head + i * k + j] as u32).collect())
        .collect();
    let answers: Vec<TimeAnswer> = buf[answers_at..]
        .chunks_exact(3)
        .map(|a| TimeAnswer {
            predicted: a[0].into(),
            sigma: a[1].into(),
            truth: a[2].into(),
        })
        .collect();
    let metrics = EvalMetrics::from_parts(
        images as usize,
        [mean(0), mean(1), mean(2)],
        [mean(3), mean(4), mean(5), mean(6)],
        &answers,
    );
    (metrics, summed)
}
