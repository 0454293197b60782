//! Helpers shared by the unit tests of the custom operations, which check each op against
//! candle's own ops in float64.

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor};

use crate::reference::sine_fill;

/// The deterministic fill of `reference::sine_fill`, in float64.
pub fn sine_fill64(shape: &[usize], phase: f64) -> Tensor {
    sine_fill(shape, phase)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
}

/// The largest absolute difference between two tensors of one shape.
pub fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    let d = a.sub(b).unwrap().abs().unwrap().flatten_all().unwrap();
    d.max(0).unwrap().to_scalar::<f64>().unwrap()
}

/// The gradients of `sum(y * weight)`; weighting the outputs makes every gradient entry
/// differ.
pub fn weighted_grads(y: &Tensor, weight: &Tensor) -> GradStore {
    y.mul(weight)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap()
}
