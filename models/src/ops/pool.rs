//! The 2x2 block operations of the networks, each as one operation with a hand-written
//! backward: max pooling (2x2, stride 2) and nearest-neighbour 2x upsampling.
//!
//! Why not candle's ops: candle 0.11's `max_pool2d` backward scales the gradient by 1/4 (it
//! multiplies by the window's mean of the max mask; `models/tests/layers.rs` caught it against
//! PyTorch), and its `upsample_nearest2d` backward is a grouped convolution, one per channel,
//! that overwrites rather than adds the gradient of a tensor read twice. Written instead as
//! reshapes, broadcasts and reductions they were right but slow: the backward of a reduction
//! or a broadcast is several strided passes with masks. Here each is one pass per (image,
//! channel) plane, each way.

use candle_core::{CpuStorage, CustomOp1, Device, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

use crate::ops::storage::{on_float_tensors, on_floats, FloatFn};

/// 2x2 max pooling with stride 2 over an (N, C, H, W) tensor; an odd last row or column is
/// dropped, as PyTorch does. The gradient goes to the first maximum of each window in row
/// order, as in PyTorch.
pub fn max_pool2(x: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    if h < 2 || w < 2 {
        candle_core::bail!("max pool: a {h}x{w} input has no 2x2 window");
    }
    x.contiguous()?.apply_op1(MaxPool2)
}

/// Nearest-neighbour 2x upsampling of an (N, C, H, W) tensor to (N, C, 2H, 2W); its
/// gradient is the sum over each 2x2 block.
pub fn upsample2(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Upsample2)
}

/// Runs `f(input plane, output plane)` over every (H, W) -> (Ho, Wo) plane pair, in parallel.
fn per_plane<T: WithDType>(
    x: &[T],
    (h, w): (usize, usize),
    (ho, wo): (usize, usize),
    f: impl Fn(&[T], &mut [T]) + Sync,
) -> Vec<T> {
    if h * w == 0 || ho * wo == 0 {
        return Vec::new();
    }
    let mut out = vec![T::zero(); x.len() / (h * w) * ho * wo];
    out.par_chunks_mut(ho * wo)
        .zip(x.par_chunks(h * w))
        .for_each(|(o, i)| f(i, o));
    out
}

/// The (H, W) size of an operation's input planes, which its kernel needs besides the data.
type Plane = (usize, usize);

struct MaxPool2;

impl MaxPool2 {
    fn forward<T: WithDType>(x: &[T], (h, w): Plane) -> Vec<T> {
        let (ho, wo) = (h / 2, w / 2);
        per_plane(x, (h, w), (ho, wo), |x, y| {
            for (oy, row) in y.chunks_mut(wo).enumerate() {
                let (top, bottom) = (&x[2 * oy * w..], &x[(2 * oy + 1) * w..]);
                for (ox, out) in row.iter_mut().enumerate() {
                    let a = max(top[2 * ox], top[2 * ox + 1]);
                    *out = max(a, max(bottom[2 * ox], bottom[2 * ox + 1]));
                }
            }
        })
    }

    /// dx from the input `x`, the pooled output `y` and its gradient `dy`.
    fn backward<T: WithDType>(x: &[T], (h, w): Plane, y: &[T], dy: &[T]) -> Vec<T> {
        let (ho, wo) = (h / 2, w / 2);
        let mut dx = vec![T::zero(); x.len()];
        dx.par_chunks_mut(h * w)
            .zip(x.par_chunks(h * w))
            .zip(y.par_chunks(ho * wo).zip(dy.par_chunks(ho * wo)))
            .for_each(|((dx, x), (y, dy))| {
                for oy in 0..ho {
                    for ox in 0..wo {
                        let at = oy * wo + ox;
                        let window = [
                            2 * oy * w + 2 * ox,
                            2 * oy * w + 2 * ox + 1,
                            (2 * oy + 1) * w + 2 * ox,
                            (2 * oy + 1) * w + 2 * ox + 1,
                        ];
                        if let Some(&first) = window.iter().find(|&&k| x[k] == y[at]) {
                            dx[first] += dy[at];
                        }
                    }
                }
            });
        dx
    }
}

/// The larger of two values; NaN wins, so a NaN input shows in the output as in PyTorch.
fn max<T: WithDType>(a: T, b: T) -> T {
    if a.to_f64().is_nan() || a >= b {
        a
    } else {
        b
    }
}

impl FloatFn<1> for (&MaxPool2, Plane) {
    type Output = CpuStorage;

    fn call<T: WithDType>(self, [x]: [&[T]; 1]) -> Result<CpuStorage> {
        Ok(T::to_cpu_storage_owned(MaxPool2::forward(x, self.1)))
    }
}

/// The input gradient of [`MaxPool2`] from its input, output and output gradient.
struct MaxPoolGrad<'a> {
    plane: Plane,
    shape: &'a Shape,
    device: &'a Device,
}

impl FloatFn<3> for MaxPoolGrad<'_> {
    type Output = Tensor;

    fn call<T: WithDType>(self, [x, y, dy]: [&[T]; 3]) -> Result<Tensor> {
        let dx = MaxPool2::backward(x, self.plane, y, dy);
        Tensor::from_vec(dx, self.shape, self.device)
    }
}

impl CustomOp1 for MaxPool2 {
    fn name(&self) -> &'static str {
        "max-pool-2x2"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = layout.shape().dims4()?;
        let y = on_floats([(storage, layout)], self.name(), (self, (h, w)))?;
        Ok((y, Shape::from((n, c, h / 2, w / 2))))
    }

    fn bwd(&self, arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let (_, _, h, w) = arg.dims4()?;
        let grad = MaxPoolGrad {
            plane: (h, w),
            shape: arg.shape(),
            device: arg.device(),
        };
        let dy = grad_res.contiguous()?;
        on_float_tensors([arg, res, &dy], "max-pool-2x2 backward", grad).map(Some)
    }
}

struct Upsample2;

impl FloatFn<1> for (&Upsample2, Plane) {
    type Output = CpuStorage;

    fn call<T: WithDType>(self, [x]: [&[T]; 1]) -> Result<CpuStorage> {
        let (h, w) = self.1;
        let y = per_plane(x, (h, w), (2 * h, 2 * w), |x, y| {
            for (oy, row) in y.chunks_mut(2 * w).enumerate() {
                let src = &x[oy / 2 * w..(oy / 2 + 1) * w];
                for (pair, v) in row.chunks_mut(2).zip(src) {
                    pair.fill(*v);
                }
            }
        });
        Ok(T::to_cpu_storage_owned(y))
    }
}

impl CustomOp1 for Upsample2 {
    fn name(&self) -> &'static str {
        "upsample-2x"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = layout.shape().dims4()?;
        let y = on_floats([(storage, layout)], self.name(), (self, (h, w)))?;
        Ok((y, Shape::from((n, c, 2 * h, 2 * w))))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad_res.contiguous()?.apply_op1_no_bwd(&BlockSum2)?))
    }
}

/// The adjoint of [`Upsample2`]: (N, C, 2H, 2W) -> (N, C, H, W), each output the sum of its
/// 2x2 block.
struct BlockSum2;

/// Takes the plane size of its input (2H, 2W).
impl FloatFn<1> for (&BlockSum2, Plane) {
    type Output = CpuStorage;

    fn call<T: WithDType>(self, [g]: [&[T]; 1]) -> Result<CpuStorage> {
        let (h2, w2) = self.1;
        let (h, w) = (h2 / 2, w2 / 2);
        let dx = per_plane(g, (2 * h, 2 * w), (h, w), |g, dx| {
            for (oy, row) in dx.chunks_mut(w).enumerate() {
                let (top, bottom) = (&g[2 * oy * 2 * w..], &g[(2 * oy + 1) * 2 * w..]);
                for (ox, out) in row.iter_mut().enumerate() {
                    *out = top[2 * ox] + top[2 * ox + 1] + bottom[2 * ox] + bottom[2 * ox + 1];
                }
            }
        });
        Ok(T::to_cpu_storage_owned(dx))
    }
}

impl CustomOp1 for BlockSum2 {
    fn name(&self) -> &'static str {
        "block-sum-2x2"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, h2, w2) = layout.shape().dims4()?;
        let dx = on_floats([(storage, layout)], self.name(), (self, (h2, w2)))?;
        Ok((dx, Shape::from((n, c, h2 / 2, w2 / 2))))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Tensor, Var};

    use super::{max_pool2, upsample2};
    use crate::testing::{max_diff, sine_fill64, weighted_grads};

    /// Upsampling equals a broadcast, and its gradient the broadcast's (a sum per block).
    #[test]
    fn upsample_matches_a_broadcast_in_value_and_gradient() {
        let x = Var::from_tensor(&sine_fill64(&[2, 3, 5, 4], 0.4)).unwrap();
        let ours = upsample2(x.as_tensor()).unwrap();
        let theirs = x
            .as_tensor()
            .reshape((2, 3, 5, 1, 4, 1))
            .unwrap()
            .broadcast_as((2, 3, 5, 2, 4, 2))
            .unwrap()
            .reshape((2, 3, 10, 8))
            .unwrap();
        assert_eq!(max_diff(&ours, &theirs), 0.0);
        let weight = sine_fill64(&[2, 3, 10, 8], 0.9);
        let grad = |y: &Tensor| weighted_grads(y, &weight).get(&x).unwrap().clone();
        assert!(max_diff(&grad(&ours), &grad(&theirs)) < 1e-12);
    }

    /// Pooling equals the maximum over a reshaped view (odd edges dropped); the gradient goes
    /// to the first maximum of each window only, also when a window ties.
    #[test]
    fn max_pool_matches_the_window_maximum_and_routes_the_gradient_to_the_first_maximum() {
        let x = Var::from_tensor(&sine_fill64(&[2, 3, 7, 6], 0.6)).unwrap();
        let ours = max_pool2(x.as_tensor()).unwrap();
        let theirs = x
            .as_tensor()
            .narrow(2, 0, 6)
            .unwrap()
            .reshape((2, 3, 3, 2, 3, 2))
            .unwrap()
            .max(5)
            .unwrap()
            .max(3)
            .unwrap();
        assert_eq!(max_diff(&ours, &theirs), 0.0);
        // without ties the two gradients agree
        let weight = sine_fill64(&[2, 3, 3, 3], 0.9);
        let grad = |y: &Tensor| weighted_grads(y, &weight).get(&x).unwrap().clone();
        assert!(max_diff(&grad(&ours), &grad(&theirs)) < 1e-12);
        // a tied window: all of its gradient goes to its first entry
        let tied = Var::from_tensor(
            &Tensor::new(&[[[[1f64, 1.], [1., 0.]]]], &candle_core::Device::Cpu).unwrap(),
        )
        .unwrap();
        let g = max_pool2(tied.as_tensor())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let dx = g
            .get(&tied)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        assert_eq!(dx, [1.0, 0.0, 0.0, 0.0]);
    }

    /// An input smaller than the window is an error, not an empty output.
    #[test]
    fn pooling_an_input_smaller_than_the_window_is_an_error() {
        let err = max_pool2(&sine_fill64(&[1, 2, 1, 5], 0.3)).unwrap_err();
        assert!(
            err.to_string().contains("1x5 input has no 2x2 window"),
            "{err}"
        );
    }
}
