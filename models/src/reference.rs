//! The deterministic fill shared with the PyTorch reference scripts
//! (`models/tests/torch_reference.py`, `train/tests/torch_reference.py`): tensors are
//! `sine_fill(shape, phase)[i] = sin(phase + 0.731 i)` on both sides, so parity tests need no
//! matching random generators.

use candle_core::{Device, Result, Tensor};

/// `sin(phase + 0.731 i)` for i in 0..n, computed in f64 and stored as f32, on the CPU.
pub fn sine_fill(shape: &[usize], phase: f64) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|i| (phase + 0.731 * i as f64).sin() as f32)
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu)
}
