//! Batch normalisation in training mode as one fused operation with a hand-written backward,
//! optionally with the ReLU or SiLU that follows it (see `Activation`).
//!
//! Why not candle's tensor ops: written as `mean`, `sub`, `sqr`, `mean`, `div`, `mul`, `add`,
//! one batch norm is about ten graph nodes, and candle's backward undoes every broadcast with
//! a strided reduction over the batch and spatial axes. A profile of a training step
//! (`benches/README.md`, Training) put a quarter of the time in those reductions. Here the
//! forward pass is two contiguous passes over each channel and the backward pass two more,
//! returning the input, scale and shift gradients together (the textbook formula, e.g.
//! Ioffe & Szegedy 2015, eq. in section 3).

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

use crate::ops::storage::{on_float_tensors, on_floats, saved, FloatFn};

/// Below this many elements the work stays on the calling thread.
const PARALLEL_MIN: usize = 1 << 16;

/// `y = (x - mean) / sqrt(var + eps) * gamma + beta` over an (N, C, H, W) `x`, with the batch
/// mean and biased variance of each channel (over N, H and W); `gamma` and `beta` are (C).
/// `act` is an activation applied to `y` in the same pass (and differentiated in the same
/// backward pass), saving the separate activation node's passes over the tensor.
/// Returns `y` and the batch mean and biased variance (C), detached, for the running
/// statistics. Differentiable in `x`, `gamma` and `beta`; f32 and f64 on the CPU.
pub fn batch_norm_train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    act: Activation,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (_, c, _, _) = x.dims4()?;
    let stats = Arc::new(Mutex::new(Stats::default()));
    let y = x.contiguous()?.apply_op3(
        &gamma.contiguous()?,
        &beta.contiguous()?,
        BatchNormTrain {
            eps,
            act,
            stats: stats.clone(),
        },
    )?;
    let s = saved(&stats, "batch norm")?;
    let var: Vec<f64> = s.inv_std.iter().map(|i| 1.0 / (i * i) - eps).collect();
    let mean = Tensor::from_slice(&s.mean, c, x.device())?.to_dtype(x.dtype())?;
    let var = Tensor::from_slice(&var, c, x.device())?.to_dtype(x.dtype())?;
    Ok((y, mean, var))
}

/// Per-channel batch statistics of the forward pass, kept for the backward pass.
#[derive(Debug, Default)]
struct Stats {
    mean: Vec<f64>,
    inv_std: Vec<f64>,
}

/// An activation fused after the normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// None.
    Identity,
    /// `max(z, 0)`; its gradient is zero where the output is not positive, as PyTorch's is
    /// at zero.
    Relu,
    /// `z * sigmoid(z)`.
    Silu,
}

impl Activation {
    fn apply(self, z: f64) -> f64 {
        match self {
            Activation::Identity => z,
            Activation::Relu => z.max(0.0),
            Activation::Silu => z / (1.0 + (-z).exp()),
        }
    }

    /// d silu / dz = s * (1 + z * (1 - s)) with s = sigmoid(z).
    fn silu_slope(z: f64) -> f64 {
        let s = 1.0 / (1.0 + (-z).exp());
        s * (1.0 + z * (1.0 - s))
    }
}

struct BatchNormTrain {
    eps: f64,
    act: Activation,
    stats: Arc<Mutex<Stats>>,
}

/// Calls `f(channel)` for every channel, in parallel when the tensor is large.
fn per_channel<R: Send>(c: usize, total: usize, f: impl Fn(usize) -> R + Sync + Send) -> Vec<R> {
    if total >= PARALLEL_MIN {
        (0..c).into_par_iter().map(f).collect()
    } else {
        (0..c).map(f).collect()
    }
}

/// Fills `out` one (H, W) plane at a time: `f(channel, plane_index, plane)`.
fn planes_mut<T: Send>(
    out: &mut [T],
    c: usize,
    hw: usize,
    f: impl Fn(usize, usize, &mut [T]) + Sync,
) {
    if out.len() >= PARALLEL_MIN {
        out.par_chunks_mut(hw)
            .enumerate()
            .for_each(|(i, p)| f(i % c, i, p));
    } else {
        out.chunks_mut(hw)
            .enumerate()
            .for_each(|(i, p)| f(i % c, i, p));
    }
}

/// Sums of the `S` terms `g(value, index)` over channel `ch` of an (N, C, HW) buffer, in one
/// pass, in f64.
fn channel_sum<T: WithDType, const S: usize>(
    x: &[T],
    c: usize,
    hw: usize,
    ch: usize,
    g: impl Fn(f64, usize) -> [f64; S],
) -> [f64; S] {
    let n = x.len() / (c * hw);
    let mut s = [0.0; S];
    for b in 0..n {
        let at = (b * c + ch) * hw;
        for (k, v) in x[at..at + hw].iter().enumerate() {
            for (sum, term) in s.iter_mut().zip(g(v.to_f64(), at + k)) {
                *sum += term;
            }
        }
    }
    s
}

impl BatchNormTrain {
    fn forward<T: WithDType>(
        &self,
        x: &[T],
        dims: &[usize],
        gamma: &[T],
        beta: &[T],
    ) -> Result<Vec<T>> {
        let (c, hw) = (dims[1], dims[2] * dims[3]);
        let m = (x.len() / c) as f64;
        let mean = per_channel(c, x.len(), |ch| {
            channel_sum(x, c, hw, ch, |v, _| [v])[0] / m
        });
        let inv_std = per_channel(c, x.len(), |ch| {
            let var = channel_sum(x, c, hw, ch, |v, _| [(v - mean[ch]).powi(2)])[0] / m;
            1.0 / (var + self.eps).sqrt()
        });
        let mut y = vec![T::zero(); x.len()];
        planes_mut(&mut y, c, hw, |ch, i, plane| {
            let scale = inv_std[ch] * gamma[ch].to_f64();
            let shift = beta[ch].to_f64() - mean[ch] * scale;
            for (o, v) in plane.iter_mut().zip(&x[i * hw..(i + 1) * hw]) {
                *o = T::from_f64(self.act.apply(v.to_f64() * scale + shift));
            }
        });
        *saved(&self.stats, "batch norm")? = Stats { mean, inv_std };
        Ok(y)
    }

    /// (dx, dgamma, dbeta) on `dev` from the upstream gradient `dy`:
    /// dbeta = sum(dy), dgamma = sum(dy * xhat),
    /// dx = gamma * inv_std / M * (M * dy - dbeta - xhat * dgamma), sums over N, H, W;
    /// with a fused activation, `dy` is first taken back through it.
    fn backward<T: WithDType>(
        &self,
        (x, dims): (&[T], &[usize]),
        (gamma, beta): (&[T], &[T]),
        (y, dy): (&[T], &[T]),
        dev: &candle_core::Device,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let (c, hw) = (dims[1], dims[2] * dims[3]);
        let m = (x.len() / c) as f64;
        let s = saved(&self.stats, "batch norm")?;
        let (mean, inv_std) = (&s.mean, &s.inv_std);
        let act = self.act;
        // dy taken back through the activation: from the output alone for the ReLU, from the
        // normalised value recomputed from `x` for SiLU
        let grad = |g: f64, k: usize| match act {
            Activation::Identity => g,
            Activation::Relu => {
                if y[k] > T::zero() {
                    g
                } else {
                    0.0
                }
            }
            Activation::Silu => {
                let ch = k / hw % c;
                let xhat = (x[k].to_f64() - mean[ch]) * inv_std[ch];
                let z = xhat * gamma[ch].to_f64() + beta[ch].to_f64();
                g * Activation::silu_slope(z)
            }
        };
        let sums = per_channel(c, x.len(), |ch| {
            let [d_beta, d_gamma] = channel_sum(dy, c, hw, ch, |g, k| {
                let g = grad(g, k);
                [g, g * (x[k].to_f64() - mean[ch]) * inv_std[ch]]
            });
            (d_gamma, d_beta)
        });
        let mut dx = vec![T::zero(); x.len()];
        planes_mut(&mut dx, c, hw, |ch, i, plane| {
            let (d_gamma, d_beta) = sums[ch];
            let k = gamma[ch].to_f64() * inv_std[ch] / m;
            let span = i * hw..(i + 1) * hw;
            for (at, (o, v)) in plane.iter_mut().zip(&x[span.clone()]).enumerate() {
                let xhat = (v.to_f64() - mean[ch]) * inv_std[ch];
                let g = grad(dy[span.start + at].to_f64(), span.start + at);
                *o = T::from_f64(k * (m * g - d_beta - xhat * d_gamma));
            }
        });
        let d_gamma: Vec<T> = sums.iter().map(|s| T::from_f64(s.0)).collect();
        let d_beta: Vec<T> = sums.iter().map(|s| T::from_f64(s.1)).collect();
        Ok((
            Tensor::from_vec(dx, dims, dev)?,
            Tensor::from_vec(d_gamma, c, dev)?,
            Tensor::from_vec(d_beta, c, dev)?,
        ))
    }
}

impl FloatFn<3> for (&BatchNormTrain, &[usize]) {
    type Output = CpuStorage;

    fn call<T: WithDType>(self, [x, gamma, beta]: [&[T]; 3]) -> Result<CpuStorage> {
        Ok(T::to_cpu_storage_owned(
            self.0.forward(x, self.1, gamma, beta)?,
        ))
    }
}

/// The gradients of [`BatchNormTrain`] for the tensor `x` (shape and device).
struct BatchNormGrad<'a> {
    op: &'a BatchNormTrain,
    x: &'a Tensor,
}

impl FloatFn<5> for BatchNormGrad<'_> {
    type Output = (Tensor, Tensor, Tensor);

    fn call<T: WithDType>(self, [x, gamma, beta, y, dy]: [&[T]; 5]) -> Result<Self::Output> {
        self.op
            .backward((x, self.x.dims()), (gamma, beta), (y, dy), self.x.device())
    }
}

impl CustomOp3 for BatchNormTrain {
    fn name(&self) -> &'static str {
        "batch-norm-train"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dims = l1.dims();
        if dims.len() != 4
            || l2.shape().elem_count() != dims[1]
            || l3.shape().elem_count() != dims[1]
        {
            candle_core::bail!("batch norm: input {dims:?} needs per-channel scale and shift");
        }
        let y = on_floats([(s1, l1), (s2, l2), (s3, l3)], self.name(), (self, dims))?;
        Ok((y, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dy = grad_res.contiguous()?;
        let grad = BatchNormGrad { op: self, x };
        let (dx, dg, db) =
            on_float_tensors([x, gamma, beta, res, &dy], "batch norm backward", grad)?;
        Ok((
            Some(dx),
            Some(dg.reshape(gamma.shape())?),
            Some(db.reshape(gamma.shape())?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Tensor, Var};

    use super::{batch_norm_train, Activation};
    use crate::testing::max_diff;

    /// The same computation in candle's own ops, differentiated by candle.
    fn unfused(
        x: &Tensor,
        g: &Tensor,
        b: &Tensor,
        eps: f64,
        act: Activation,
    ) -> candle_core::Result<Tensor> {
        let c = x.dim(1)?;
        let mean = x.mean_keepdim((0, 2, 3))?;
        let var = x.broadcast_sub(&mean)?.sqr()?.mean_keepdim((0, 2, 3))?;
        let y = x
            .broadcast_sub(&mean)?
            .broadcast_div(&(var + eps)?.sqrt()?)?
            .broadcast_mul(&g.reshape((1, c, 1, 1))?)?
            .broadcast_add(&b.reshape((1, c, 1, 1))?)?;
        match act {
            Activation::Identity => Ok(y),
            Activation::Relu => y.relu(),
            Activation::Silu => candle_nn::ops::silu(&y),
        }
    }

    fn filled(shape: &[usize], seed: u64) -> Vec<f64> {
        let n: usize = shape.iter().product();
        (0..n)
            .map(|i| {
                (((i as u64 * 2654435761 + seed * 40503) % 1000) as f64 / 500.0 - 1.0) * 3.0 + 0.5
            })
            .collect()
    }

    #[test]
    fn fused_batch_norm_matches_candle_ops_in_value_and_gradient() {
        let dev = Device::Cpu;
        // small (serial) and large (parallel) paths, with each fused activation
        let acts = [Activation::Identity, Activation::Relu, Activation::Silu];
        let cases = [[3usize, 4, 5, 6], [8, 16, 32, 32]]
            .into_iter()
            .flat_map(|shape| acts.map(|act| (shape, act)));
        for (shape, act) in cases {
            let x = Var::from_vec(filled(&shape, 1), &shape[..], &dev).unwrap();
            let g = Var::from_vec(filled(&[shape[1]], 2), shape[1], &dev).unwrap();
            let b = Var::from_vec(filled(&[shape[1]], 3), shape[1], &dev).unwrap();
            let w = Tensor::from_vec(filled(&shape, 4), &shape[..], &dev).unwrap();
            let (y, mean, var) = batch_norm_train(&x, &g, &b, 1e-5, act).unwrap();
            let r = unfused(&x, &g, &b, 1e-5, act).unwrap();
            assert!(
                max_diff(&y, &r) < 1e-12,
                "forward {shape:?} {act:?}: {}",
                max_diff(&y, &r)
            );
            let m = x.mean_keepdim((0, 2, 3)).unwrap().flatten_all().unwrap();
            assert!(max_diff(&mean, &m) < 1e-12);
            let v = x
                .broadcast_sub(&x.mean_keepdim((0, 2, 3)).unwrap())
                .unwrap()
                .sqr()
                .unwrap()
                .mean((0, 2, 3))
                .unwrap();
            assert!(max_diff(&var, &v) < 1e-10);
            let gy = (y * &w).unwrap().sum_all().unwrap().backward().unwrap();
            let gr = (r * &w).unwrap().sum_all().unwrap().backward().unwrap();
            for (name, t) in [
                ("x", x.as_tensor()),
                ("gamma", g.as_tensor()),
                ("beta", b.as_tensor()),
            ] {
                let (a, e) = (gy.get(t).unwrap(), gr.get(t).unwrap());
                assert!(
                    max_diff(a, e) < 1e-10,
                    "d{name} {shape:?} {act:?}: {}",
                    max_diff(a, e)
                );
            }
            // and in f32, within float rounding
            let x32 = x.as_tensor().to_dtype(DType::F32).unwrap();
            let (g32, b32) = (
                g.as_tensor().to_dtype(DType::F32).unwrap(),
                b.as_tensor().to_dtype(DType::F32).unwrap(),
            );
            let (y32, _, _) = batch_norm_train(&x32, &g32, &b32, 1e-5, act).unwrap();
            let r32 = unfused(&x32, &g32, &b32, 1e-5, act).unwrap();
            let d32 = (y32 - r32)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(d32 < 1e-4, "f32 forward {shape:?}: {d32}");
        }
    }
}
