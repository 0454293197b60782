//! Grouped 2-D convolution computed plane by plane ("direct", without im2col), as one
//! operation with a hand-written backward: EfficientNet's depthwise convolutions (one filter
//! per channel), and dense convolutions with few output channels (the decoders' last layers).
//!
//! Why not candle's ops: candle's grouped `conv2d` runs one convolution per channel, and the
//! earlier depthwise formulation here, a sum of k*k shifted and scaled copies of the padded
//! input, was 2*k*k whole-tensor graph nodes whose backward undoes each broadcast with a
//! strided reduction; that sum was the bulk of an EfficientNet training step. Why not im2col
//! and a matrix product (`crate::ops::conv`) for a dense convolution with few outputs: the column
//! matrix is k*k times the input, and a product with one or a few output rows cannot use
//! gemm's speed, so writing and reading that matrix is the whole cost.
//!
//! Here each output plane (image, output channel) is one forward task, summing its input
//! planes' taps; each input plane (image, input channel) is one backward task, taking its
//! gradient and its share of the kernel gradient from the output planes that read it. The
//! taps are walked as the spans of the kernel window (`crate::ops::conv::Window`, each span one
//! output row of one tap), so every pass is contiguous multiply-adds.

use std::ops::Range;

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

use crate::ops::conv::{zip_strided, Window};
use crate::ops::storage::{on_float_tensors, on_floats, FloatFn};

/// `y = conv2d(x, kernel, groups)` for `x` (N, C, H, W) and `kernel` (O, C / groups, kh, kw),
/// with the same numbers as candle's `conv2d`; `groups = C = O` is the depthwise convolution.
/// Differentiable in both; f32 and f64 on the CPU.
pub fn grouped_conv2d(
    x: &Tensor,
    kernel: &Tensor,
    stride: usize,
    padding: usize,
    groups: usize,
) -> Result<Tensor> {
    let (_, c, h, w) = x.dims4()?;
    let (o, per_group, kh, kw) = kernel.dims4()?;
    if groups == 0 || c % groups != 0 || o % groups != 0 || per_group * groups != c {
        candle_core::bail!(
            "conv2d: a {c}-channel input in {groups} groups needs a (O, {}, k, k) kernel with O \
             a multiple of {groups}, not ({o}, {per_group}, {kh}, {kw})",
            c / groups.max(1)
        );
    }
    let taps = Window::fitted((kh, kw), stride, padding, (h, w))?;
    x.contiguous()?
        .apply_op2(&kernel.contiguous()?, Planar { taps, groups })
}

struct Planar {
    /// Kernel size, stride and padding; its spans over a one-channel image are the taps.
    taps: Window,
    groups: usize,
}

/// The sizes of one call: `n * c` input planes of `h * w`, `n * o` output planes of
/// `ho * wo`, and the channels of a group on each side.
struct Planes {
    c: usize,
    o: usize,
    h: usize,
    w: usize,
    ho: usize,
    wo: usize,
    /// input channels per group
    c_group: usize,
    /// output channels per group
    o_group: usize,
}

impl Planes {
    /// The input channels output channel `oc` reads.
    fn inputs_of(&self, oc: usize) -> Range<usize> {
        let g = oc / self.o_group;
        g * self.c_group..(g + 1) * self.c_group
    }

    /// The output channels that read input channel `ch`.
    fn outputs_of(&self, ch: usize) -> Range<usize> {
        let g = ch / self.c_group;
        g * self.o_group..(g + 1) * self.o_group
    }

    /// Where the k*k taps joining input channel `ch` to output channel `oc` start in the
    /// kernel, (O, C / groups, kh, kw).
    fn taps_at(&self, oc: usize, ch: usize, kk: usize) -> usize {
        (oc * self.c_group + ch % self.c_group) * kk
    }
}

impl Planar {
    fn planes(&self, x_dims: &[usize], o: usize) -> Planes {
        let (ho, wo) = self.taps.out_size(x_dims[2], x_dims[3]);
        let c = x_dims[1];
        Planes {
            c,
            o,
            h: x_dims[2],
            w: x_dims[3],
            ho,
            wo,
            c_group: c / self.groups,
            o_group: o / self.groups,
        }
    }

    fn forward<T: WithDType>(&self, x: &[T], dims: &[usize], kernel: &[T], o: usize) -> Vec<T> {
        let p = self.planes(dims, o);
        let (s, kk) = (self.taps.stride, self.taps.kh * self.taps.kw);
        let (in_plane, out_plane) = (p.h * p.w, p.ho * p.wo);
        let mut y = vec![T::zero(); dims[0] * o * out_plane];
        y.par_chunks_mut(out_plane)
            .enumerate()
            .for_each(|(i, out)| {
                let (image, oc) = (i / o, i % o);
                for ch in p.inputs_of(oc) {
                    let input = &x[(image * p.c + ch) * in_plane..][..in_plane];
                    let k = &kernel[p.taps_at(oc, ch, kk)..][..kk];
                    self.taps.for_each_span(1, p.h, p.w, |span| {
                        let tap = k[span.row];
                        zip_strided(&mut out[span.out()], &input[span.input(s)], s, |o, v| {
                            *o += tap * *v
                        });
                    });
                }
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
        let p = self.planes(dims, kernel_dims[0]);
        let (s, kk) = (self.taps.stride, self.taps.kh * self.taps.kw);
        let (in_plane, out_plane) = (p.h * p.w, p.ho * p.wo);
        let mut dx = vec![T::zero(); x.len()];
        // per input plane, the kernel gradient of the taps that read it, output by output
        let per_plane: Vec<Vec<T>> = dx
            .par_chunks_mut(in_plane)
            .zip(x.par_chunks(in_plane))
            .enumerate()
            .map(|(i, (dxp, input))| {
                let (image, ch) = (i / p.c, i % p.c);
                let mut dk = vec![T::zero(); p.o_group * kk];
                for (j, oc) in p.outputs_of(ch).enumerate() {
                    let g = &dy[(image * p.o + oc) * out_plane..][..out_plane];
                    let k = &kernel[p.taps_at(oc, ch, kk)..][..kk];
                    let dk = &mut dk[j * kk..(j + 1) * kk];
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
                }
                dk
            })
            .collect();
        let mut dk = vec![T::zero(); kernel.len()];
        for (i, plane) in per_plane.iter().enumerate() {
            let ch = i % p.c;
            for (oc, part) in p.outputs_of(ch).zip(plane.chunks(kk)) {
                let at = p.taps_at(oc, ch, kk);
                for (d, v) in dk[at..at + kk].iter_mut().zip(part) {
                    *d += *v;
                }
            }
        }
        Ok((
            Tensor::from_vec(dx, dims, dev)?,
            Tensor::from_vec(dk, kernel_dims, dev)?,
        ))
    }
}

/// The forward pass for an input of dimensions `.1` and `.2` output channels.
impl FloatFn<2> for (&Planar, &[usize], usize) {
    type Output = CpuStorage;

    fn call<T: WithDType>(self, [x, kernel]: [&[T]; 2]) -> Result<CpuStorage> {
        Ok(T::to_cpu_storage_owned(
            self.0.forward(x, self.1, kernel, self.2),
        ))
    }
}

/// The gradients of [`Planar`] for the tensors `x` and `kernel` (shapes and device).
struct PlanarGrad<'a> {
    op: &'a Planar,
    x: &'a Tensor,
    kernel: &'a Tensor,
}

impl FloatFn<3> for PlanarGrad<'_> {
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

impl CustomOp2 for Planar {
    fn name(&self) -> &'static str {
        "grouped-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (dims, o) = (l1.dims(), l2.dims()[0]);
        let y = on_floats([(s1, l1), (s2, l2)], self.name(), (self, dims, o))?;
        let p = self.planes(dims, o);
        Ok((y, Shape::from((dims[0], o, p.ho, p.wo))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        kernel: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dy = grad_res.contiguous()?;
        let grad = PlanarGrad {
            op: self,
            x,
            kernel,
        };
        let (dx, dk) = on_float_tensors([x, kernel, &dy], "grouped-conv2d backward", grad)?;
        Ok((Some(dx), Some(dk)))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Var;

    use super::grouped_conv2d;
    use crate::testing::{max_diff, sine_fill64, weighted_grads};

    /// Forward and both gradients equal candle's grouped convolution (float64, to 1e-10):
    /// depthwise, dense and in between.
    #[test]
    fn matches_candle_grouped_conv2d_forward_and_backward() {
        // (n, c, o, groups, h, w, k, stride, padding); candle's own backward needs the stride
        // to read the last input rows, so every case does
        let cases = [
            (2, 3, 3, 3, 7, 7, 3, 1, 1),
            (2, 4, 4, 4, 9, 9, 3, 2, 1),
            (1, 2, 2, 2, 9, 9, 5, 2, 2),
            (3, 2, 2, 2, 6, 5, 5, 1, 2),
            (1, 3, 3, 3, 5, 5, 1, 1, 0),
            // dense, to one and to several output channels
            (2, 3, 1, 1, 7, 6, 3, 1, 1),
            (2, 4, 5, 1, 9, 9, 3, 2, 1),
            // two groups of two input channels, three outputs each
            (2, 4, 6, 2, 7, 7, 3, 1, 1),
        ];
        for (n, c, o, groups, h, w, k, s, p) in cases {
            let x = Var::from_tensor(&sine_fill64(&[n, c, h, w], 0.3)).unwrap();
            let kern = Var::from_tensor(&sine_fill64(&[o, c / groups, k, k], 1.1)).unwrap();
            let ours = grouped_conv2d(x.as_tensor(), kern.as_tensor(), s, p, groups).unwrap();
            let theirs = x
                .as_tensor()
                .conv2d(kern.as_tensor(), p, s, 1, groups)
                .unwrap();
            assert_eq!(ours.dims(), theirs.dims());
            let weight = sine_fill64(ours.dims(), 0.7);
            let (go, gt) = (
                weighted_grads(&ours, &weight),
                weighted_grads(&theirs, &weight),
            );
            let case = format!("n{n} c{c} o{o} groups {groups} {h}x{w} k{k} s{s} p{p}");
            assert!(max_diff(&ours, &theirs) < 1e-10, "{case}: forward");
            for (name, v) in [("input", &x), ("kernel", &kern)] {
                let d = max_diff(go.get(v).unwrap(), gt.get(v).unwrap());
                assert!(d < 1e-10, "{case}: {name} gradient off by {d}");
            }
        }
    }

    /// A kernel whose channels do not match the groups, or larger than the padded input, is
    /// an error naming the shapes.
    #[test]
    fn mismatched_kernels_are_errors() {
        let x = sine_fill64(&[1, 3, 4, 4], 0.1);
        let err = grouped_conv2d(&x, &sine_fill64(&[3, 2, 3, 3], 0.2), 1, 1, 3).unwrap_err();
        assert!(err.to_string().contains("(O, 1, k, k) kernel"), "{err}");
        let err = grouped_conv2d(&x, &sine_fill64(&[4, 1, 3, 3], 0.2), 1, 1, 3).unwrap_err();
        assert!(err.to_string().contains("multiple of 3"), "{err}");
        let err = grouped_conv2d(&x, &sine_fill64(&[3, 1, 7, 7], 0.2), 1, 0, 3).unwrap_err();
        assert!(
            err.to_string().contains("does not fit a 4x4 input"),
            "{err}"
        );
    }
}
