//! Depthwise 2-D convolution (groups = channels, one k x k filter per channel) as one
//! operation with a hand-written backward, for EfficientNet's MBConv blocks.
//!
//! Why not candle's ops: candle's grouped `conv2d` runs one convolution per channel, and the
//! previous formulation here, a sum of k*k shifted and scaled copies of the padded input, was
//! 2*k*k whole-tensor graph nodes whose backward undoes each broadcast with a strided
//! reduction; at stride 2 it also computed the full stride-1 output and kept a quarter of it.
//! That sum was the bulk of an EfficientNet training step (`benches/README.md`, Training).
//! Here each (image, channel) plane is one task: the taps are walked as the spans of the
//! kernel window (`crate::conv::Window`, each span one output row of one tap), so forward,
//! input gradient and kernel gradient are each one pass of contiguous multiply-adds per tap
//! and row.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

use crate::conv::{zip_strided, Window};
use crate::storage::{on_float_tensors, on_floats, FloatFn};

/// `y = conv2d(x, kernel, groups = C)` for `x` (N, C, H, W) and `kernel` (C, 1, k, k), with the
/// same numbers as candle's grouped `conv2d`. Differentiable in both; f32 and f64 on the CPU.
pub fn depthwise_conv2d(
    x: &Tensor,
    kernel: &Tensor,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    let (_, c, h, w) = x.dims4()?;
    let (kc, one, kh, kw) = kernel.dims4()?;
    if kc != c || one != 1 {
        candle_core::bail!("depthwise conv: a {c}-channel input needs a ({c}, 1, k, k) kernel");
    }
    if stride == 0 || h + 2 * padding < kh || w + 2 * padding < kw {
        candle_core::bail!("depthwise conv: a {kh}x{kw} kernel does not fit a {h}x{w} input");
    }
    let taps = Window {
        kh,
        kw,
        stride,
        padding,
    };
    x.contiguous()?
        .apply_op2(&kernel.contiguous()?, Depthwise { taps })
}

struct Depthwise {
    /// Kernel size, stride and padding; its spans over a one-channel image are the taps.
    taps: Window,
}

/// The sizes of one call: `n * c` planes of `h * w` inputs and `ho * wo` outputs.
struct Planes {
    c: usize,
    h: usize,
    w: usize,
    ho: usize,
    wo: usize,
}

impl Depthwise {
    fn planes(&self, dims: &[usize]) -> Planes {
        let (ho, wo) = self.taps.out_size(dims[2], dims[3]);
        Planes {
            c: dims[1],
            h: dims[2],
            w: dims[3],
            ho,
            wo,
        }
    }

    /// The k*k taps of the channel of plane `i`.
    fn kernel_of<'a, T>(&self, kernel: &'a [T], p: &Planes, i: usize) -> &'a [T] {
        let kk = self.taps.kh * self.taps.kw;
        let ch = i % p.c;
        &kernel[ch * kk..(ch + 1) * kk]
    }

    fn forward<T: WithDType>(&self, x: &[T], dims: &[usize], kernel: &[T]) -> Vec<T> {
        let p = self.planes(dims);
        let s = self.taps.stride;
        let mut y = vec![T::zero(); x.len() / (p.h * p.w) * p.ho * p.wo];
        y.par_chunks_mut(p.ho * p.wo)
            .zip(x.par_chunks(p.h * p.w))
            .enumerate()
            .for_each(|(i, (out, input))| {
                let k = self.kernel_of(kernel, &p, i);
                self.taps.for_each_span(1, p.h, p.w, |span| {
                    let tap = k[span.row];
                    zip_strided(&mut out[span.out()], &input[span.input(s)], s, |o, v| {
                        *o += tap * *v
                    });
                });
            });
        y
    }

    /// (dx, dkernel) from the upstream gradient `dy`: each tap sends `tap * dy` back to the
    /// pixels it read, and its gradient is the sum of `dy * pixel` over them and the batch.
    fn backward<T: WithDType>(
        &self,
        (x, dims): (&[T], &[usize]),
        (kernel, kernel_dims): (&[T], &[usize]),
        dy: &[T],
        dev: &candle_core::Device,
    ) -> Result<(Tensor, Tensor)> {
        let p = self.planes(dims);
        let s = self.taps.stride;
        let kk = self.taps.kh * self.taps.kw;
        let mut dx = vec![T::zero(); x.len()];
        let per_plane: Vec<Vec<T>> = dx
            .par_chunks_mut(p.h * p.w)
            .zip(x.par_chunks(p.h * p.w))
            .zip(dy.par_chunks(p.ho * p.wo))
            .enumerate()
            .map(|(i, ((dxp, input), g))| {
                let k = self.kernel_of(kernel, &p, i);
                let mut dk = vec![T::zero(); kk];
                self.taps.for_each_span(1, p.h, p.w, |span| {
                    let tap = k[span.row];
                    let mut sum = T::zero();
                    zip_strided(&g[span.out()], &input[span.input(s)], s, |g, v| {
                        sum += *g * *v
                    });
                    dk[span.row] += sum;
                    zip_strided(&g[span.out()], &mut dxp[span.input(s)], s, |g, d| {
                        *d += tap * *g
                    });
                });
                dk
            })
            .collect();
        let mut dk = vec![T::zero(); p.c * kk];
        for (i, plane) in per_plane.iter().enumerate() {
            let ch = i % p.c;
            for (d, v) in dk[ch * kk..(ch + 1) * kk].iter_mut().zip(plane) {
                *d += *v;
            }
        }
        Ok((
            Tensor::from_vec(dx, dims, dev)?,
            Tensor::from_vec(dk, kernel_dims, dev)?,
        ))
    }
}

impl FloatFn<2> for (&Depthwise, &[usize]) {
    type Output = CpuStorage;

    fn call<T: WithDType>(self, [x, kernel]: [&[T]; 2]) -> Result<CpuStorage> {
        Ok(T::to_cpu_storage_owned(self.0.forward(x, self.1, kernel)))
    }
}

/// The gradients of [`Depthwise`] for the tensors `x` and `kernel` (shapes and device).
struct DepthwiseGrad<'a> {
    op: &'a Depthwise,
    x: &'a Tensor,
    kernel: &'a Tensor,
}

impl FloatFn<3> for DepthwiseGrad<'_> {
    type Output = (Tensor, Tensor);

    fn call<T: WithDType>(self, [x, kernel, dy]: [&[T]; 3]) -> Result<(Tensor, Tensor)> {
        self.op.backward(
            (x, self.x.dims()),
            (kernel, self.kernel.dims()),
            dy,
            self.x.device(),
        )
    }
}

impl CustomOp2 for Depthwise {
    fn name(&self) -> &'static str {
        "depthwise-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dims = l1.dims();
        let y = on_floats([(s1, l1), (s2, l2)], self.name(), (self, dims))?;
        let p = self.planes(dims);
        Ok((y, Shape::from((dims[0], p.c, p.ho, p.wo))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        kernel: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dy = grad_res.contiguous()?;
        let grad = DepthwiseGrad {
            op: self,
            x,
            kernel,
        };
        let (dx, dk) = on_float_tensors([x, kernel, &dy], "depthwise-conv2d backward", grad)?;
        Ok((Some(dx), Some(dk)))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Var;

    use super::depthwise_conv2d;
    use crate::testing::{det64, max_diff, weighted_grads};

    /// Forward and both gradients equal candle's grouped convolution (float64, to 1e-10).
    #[test]
    fn matches_candle_grouped_conv2d_forward_and_backward() {
        // (n, c, h, w, k, stride, padding); candle's own backward needs the stride to read
        // the last input rows, so every case does
        let cases = [
            (2, 3, 7, 7, 3, 1, 1),
            (2, 4, 9, 9, 3, 2, 1),
            (1, 2, 9, 9, 5, 2, 2),
            (3, 2, 6, 5, 5, 1, 2),
            (1, 3, 5, 5, 1, 1, 0),
        ];
        for (n, c, h, w, k, s, p) in cases {
            let x = Var::from_tensor(&det64(&[n, c, h, w], 0.3)).unwrap();
            let kern = Var::from_tensor(&det64(&[c, 1, k, k], 1.1)).unwrap();
            let ours = depthwise_conv2d(x.as_tensor(), kern.as_tensor(), s, p).unwrap();
            let theirs = x.as_tensor().conv2d(kern.as_tensor(), p, s, 1, c).unwrap();
            assert_eq!(ours.dims(), theirs.dims());
            let weight = det64(ours.dims(), 0.7);
            let (go, gt) = (
                weighted_grads(&ours, &weight),
                weighted_grads(&theirs, &weight),
            );
            let case = format!("n{n} c{c} {h}x{w} k{k} s{s} p{p}");
            assert!(max_diff(&ours, &theirs) < 1e-10, "{case}: forward");
            for (name, v) in [("input", &x), ("kernel", &kern)] {
                let d = max_diff(go.get(v).unwrap(), gt.get(v).unwrap());
                assert!(d < 1e-10, "{case}: {name} gradient off by {d}");
            }
        }
    }

    /// A kernel that is not one filter per channel, or larger than the padded input, is an
    /// error naming the shapes.
    #[test]
    fn mismatched_kernels_are_errors() {
        let x = det64(&[1, 3, 4, 4], 0.1);
        let err = depthwise_conv2d(&x, &det64(&[2, 1, 3, 3], 0.2), 1, 1).unwrap_err();
        assert!(err.to_string().contains("(3, 1, k, k) kernel"), "{err}");
        let err = depthwise_conv2d(&x, &det64(&[3, 1, 7, 7], 0.2), 1, 0).unwrap_err();
        assert!(
            err.to_string().contains("does not fit a 4x4 input"),
            "{err}"
        );
    }
}
