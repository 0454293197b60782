//! ReLU as one operation with a one-pass backward, for the ReLUs not fused into a batch norm
//! (after ResNet's residual adds, and the VAE's expansion).
//!
//! Why not candle's `relu`: its backward builds a zero tensor, compares against it, converts
//! the mask to floats and multiplies, four passes and two buffers the size of the activation.
//! Here the gradient is one pass: `dy` where the output is positive, else zero (PyTorch's
//! choice at zero).

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

use crate::ops::storage::{on_floats, FloatFn};

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// `max(x, 0)` element-wise, differentiable; f32 and f64 on the CPU.
pub fn relu(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Relu)
}

struct Relu;

impl FloatFn<1> for &Relu {
    type Output = CpuStorage;

    fn call<T: WithDType>(self, [x]: [&[T]; 1]) -> Result<CpuStorage> {
        let y = x
            .par_iter()
            .with_min_len(CHUNK)
            .map(|&v| if v > T::zero() { v } else { T::zero() })
            .collect();
        Ok(T::to_cpu_storage_owned(y))
    }
}

impl CustomOp1 for Relu {
    fn name(&self) -> &'static str {
        "relu"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let y = on_floats([(storage, layout)], self.name(), self)?;
        Ok((y, layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            grad_res
                .contiguous()?
                .apply_op2_no_bwd(&res.contiguous()?, &ReluGrad)?,
        ))
    }
}

/// `dy` where the ReLU's output `y` is positive, else zero.
struct ReluGrad;

impl FloatFn<2> for &ReluGrad {
    type Output = CpuStorage;

    fn call<T: WithDType>(self, [dy, y]: [&[T]; 2]) -> Result<CpuStorage> {
        let dx = dy
            .par_iter()
            .zip(y)
            .with_min_len(CHUNK)
            .map(|(&g, &v)| if v > T::zero() { g } else { T::zero() })
            .collect();
        Ok(T::to_cpu_storage_owned(dx))
    }
}

impl CustomOp2 for ReluGrad {
    fn name(&self) -> &'static str {
        "relu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dx = on_floats([(s1, l1), (s2, l2)], self.name(), self)?;
        Ok((dx, l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    use super::relu;

    /// Value and gradient equal candle's ReLU away from zero; at zero the gradient is zero.
    #[test]
    fn relu_matches_candle_and_has_zero_gradient_at_zero() {
        let v: Vec<f64> = (0..50_000)
            .map(|i| ((i * 37 % 101) as f64 - 50.0) / 7.0)
            .collect();
        let x = Var::from_vec(v.clone(), v.len(), &Device::Cpu).unwrap();
        let w = Tensor::from_vec(
            (0..v.len())
                .map(|i| (i % 13) as f64 - 6.0)
                .collect::<Vec<_>>(),
            v.len(),
            &Device::Cpu,
        )
        .unwrap();
        let (ours, theirs) = (relu(x.as_tensor()).unwrap(), x.as_tensor().relu().unwrap());
        let flat = |t: &Tensor| t.to_vec1::<f64>().unwrap();
        assert_eq!(flat(&ours), flat(&theirs));
        let grad = |y: &Tensor| {
            let g = y.mul(&w).unwrap().sum_all().unwrap().backward().unwrap();
            flat(g.get(&x).unwrap())
        };
        let (go, gt) = (grad(&ours), grad(&theirs));
        for (i, &xv) in v.iter().enumerate() {
            if xv == 0.0 {
                assert_eq!(go[i], 0.0, "zero input {i}");
            } else {
                assert_eq!(go[i], gt[i], "input {i} = {xv}");
            }
        }
        assert!(v.contains(&0.0), "the test covers zero");
    }
}
