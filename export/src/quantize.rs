//! The arithmetic of INT8 quantisation, as ONNX defines it: `QuantizeLinear` computes
//! `saturate(round_half_even(x / scale) + zero_point)` and `DequantizeLinear`
//! `(q - zero_point) * scale`. Weights are symmetric per output channel (`scale = max|w| /
//! 127`, zero point 0, values in -127..=127 so that negation stays representable); activations
//! are asymmetric (a zero point) in `u8` or `s8`, from a calibrated range that always contains
//! 0 so that zero padding and ReLU's floor are exact. Biases are int32 with scale
//! `input scale x weight scale`, as `QLinearConv` and ONNX Runtime's QDQ fusion expect.

use crate::Result;
use deepgalaxy_core::Error;
use onnx_protobuf::tensor_proto::DataType;
use serde::{Deserialize, Serialize};

/// Largest magnitude of a symmetric int8 weight.
pub const WEIGHT_QMAX: f32 = 127.0;

/// The integer type of quantised activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActivationType {
    /// uint8, 0..=255 (ONNX Runtime's default; fastest on most x86 CPUs).
    U8,
    /// int8, -128..=127.
    S8,
}

impl ActivationType {
    /// From the command line's `u8` / `s8`.
    pub fn parse(s: &str) -> Result<ActivationType> {
        match s {
            "u8" | "uint8" => Ok(ActivationType::U8),
            "s8" | "int8" => Ok(ActivationType::S8),
            other => {
                Err(Error::setting("activations", format!("`{other}` is not u8 or s8")).into())
            }
        }
    }

    /// `u8` or `s8`.
    pub fn name(self) -> &'static str {
        match self {
            ActivationType::U8 => "u8",
            ActivationType::S8 => "s8",
        }
    }

    /// Smallest and largest integer.
    pub fn bounds(self) -> (i32, i32) {
        match self {
            ActivationType::U8 => (0, 255),
            ActivationType::S8 => (-128, 127),
        }
    }

    /// The ONNX element type.
    pub fn data_type(self) -> DataType {
        match self {
            ActivationType::U8 => DataType::UINT8,
            ActivationType::S8 => DataType::INT8,
        }
    }
}

/// Scale and zero point of an affine quantisation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine {
    /// Real value of one integer step.
    pub scale: f32,
    /// Integer that stands for real 0.
    pub zero_point: i32,
    /// The integer type.
    pub ty: ActivationType,
}

impl Affine {
    /// Parameters covering `[min, max]`, widened to contain 0. A range of zero width (a
    /// constant-zero tensor) gets scale 1, so dequantisation stays exact.
    pub fn from_range(min: f32, max: f32, ty: ActivationType) -> Result<Affine> {
        if !(min.is_finite() && max.is_finite()) || min > max {
            return Err(Error::setting(
                "quantisation",
                format!("activation range [{min}, {max}] is not a finite interval"),
            )
            .into());
        }
        let (lo, hi) = (min.min(0.0), max.max(0.0));
        let (qmin, qmax) = ty.bounds();
        let scale = if hi > lo {
            (hi - lo) / (qmax - qmin) as f32
        } else {
            1.0
        };
        let zero_point = ((qmin as f32 - lo / scale).round_ties_even() as i32).clamp(qmin, qmax);
        Ok(Affine {
            scale,
            zero_point,
            ty,
        })
    }

    /// `QuantizeLinear` of one value.
    pub fn quantize(&self, x: f32) -> i32 {
        let (qmin, qmax) = self.ty.bounds();
        ((x / self.scale).round_ties_even() as i64 + self.zero_point as i64)
            .clamp(qmin as i64, qmax as i64) as i32
    }

    /// `DequantizeLinear` of one value.
    pub fn dequantize(&self, q: i32) -> f32 {
        (q - self.zero_point) as f32 * self.scale
    }
}

/// Per-channel symmetric int8 weights: values and one scale per slice along `axis`.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedWeights {
    /// Quantised values, same layout as the float tensor.
    pub values: Vec<i8>,
    /// `max|w| / 127` of each channel (1 for an all-zero channel).
    pub scales: Vec<f32>,
    /// The channel axis.
    pub axis: usize,
}

/// Quantises a row-major tensor of shape `dims` per channel along `axis` (0 for Conv weights
/// `[out, in/g, k, k]` and for Gemm weights used with `transB = 1`, `[out, in]`).
pub fn quantize_weights(data: &[f32], dims: &[usize], axis: usize) -> Result<QuantizedWeights> {
    let n: usize = dims.iter().product();
    if axis >= dims.len() || n != data.len() {
        return Err(Error::setting(
            "quantisation",
            format!(
                "weights of shape {dims:?} ({} values) have no axis {axis}",
                data.len()
            ),
        )
        .into());
    }
    let channels = dims[axis];
    let inner: usize = dims[axis + 1..].iter().product();
    let channel = |i: usize| (i / inner) % channels;
    let mut max_abs = vec![0.0f32; channels];
    for (i, w) in data.iter().enumerate() {
        if !w.is_finite() {
            return Err(Error::setting(
                "quantisation",
                format!("weight {i} is {w}: a model with non-finite weights cannot be quantised"),
            )
            .into());
        }
        let c = channel(i);
        max_abs[c] = max_abs[c].max(w.abs());
    }
    let scales: Vec<f32> = max_abs
        .iter()
        .map(|&m| if m > 0.0 { m / WEIGHT_QMAX } else { 1.0 })
        .collect();
    let values = data
        .iter()
        .enumerate()
        .map(|(i, w)| {
            (w / scales[channel(i)])
                .round_ties_even()
                .clamp(-WEIGHT_QMAX, WEIGHT_QMAX) as i8
        })
        .collect();
    Ok(QuantizedWeights {
        values,
        scales,
        axis,
    })
}

/// Int32 biases for an input of scale `input_scale` and per-channel weight `scales`: each
/// `round(b / (input_scale * scale[c]))`, with the scales returned.
pub fn quantize_bias(bias: &[f32], input_scale: f32, scales: &[f32]) -> (Vec<i32>, Vec<f32>) {
    let s: Vec<f32> = scales.iter().map(|w| input_scale * w).collect();
    let q = bias
        .iter()
        .zip(&s)
        .map(|(b, s)| {
            (b / s)
                .round_ties_even()
                .clamp(i32::MIN as f32, i32::MAX as f32) as i32
        })
        .collect();
    (q, s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_round_trip_is_exact_on_the_grid_and_saturates_off_it() {
        let a = Affine::from_range(-1.0, 3.0, ActivationType::U8).unwrap();
        assert_eq!(a.scale, 4.0 / 255.0);
        assert_eq!(a.zero_point, 64); // round(255 / 4) = round(63.75)
        assert_eq!(a.quantize(0.0), 64);
        assert_eq!(a.dequantize(64), 0.0);
        for q in 0..=255 {
            assert_eq!(a.quantize(a.dequantize(q)), q, "grid point {q}");
        }
        assert_eq!(a.quantize(100.0), 255);
        assert_eq!(a.quantize(-100.0), 0);
        // ties round to even, as ONNX QuantizeLinear does
        let unit = Affine {
            scale: 1.0,
            zero_point: 0,
            ty: ActivationType::S8,
        };
        assert_eq!(
            [2.5, 3.5, -2.5, 0.5].map(|x| unit.quantize(x)),
            [2, 4, -2, 0]
        );
        let s = Affine::from_range(0.0, 2.0, ActivationType::S8).unwrap();
        assert_eq!((s.scale, s.zero_point), (2.0 / 255.0, -128));
        assert_eq!(
            s.dequantize(s.quantize(-5.0)),
            0.0,
            "a ReLU range floors at 0"
        );
        // ranges are widened to include zero
        let p = Affine::from_range(1.0, 2.0, ActivationType::U8).unwrap();
        assert_eq!((p.zero_point, p.dequantize(0)), (0, 0.0));
        assert!(Affine::from_range(f32::NAN, 1.0, ActivationType::U8).is_err());
        assert!(Affine::from_range(2.0, 1.0, ActivationType::U8).is_err());
    }

    #[test]
    fn per_channel_scales_are_max_abs_over_127() {
        // 2 output channels x 3 values
        let w = [0.5, -1.27, 0.0, 0.01, 0.021, -0.04];
        let q = quantize_weights(&w, &[2, 3], 0).unwrap();
        assert_eq!(q.scales, vec![1.27 / 127.0, 0.04 / 127.0]);
        assert_eq!(q.values, vec![50, -127, 0, 32, 67, -127]);
        // dequantised values are within half a step of the originals
        for (i, (&v, &x)) in q.values.iter().zip(&w).enumerate() {
            let s = q.scales[i / 3];
            assert!((v as f32 * s - x).abs() <= s / 2.0 + 1e-7, "{i}");
        }
        // axis 1 of a [2, 2] tensor groups columns
        let q = quantize_weights(&[1.0, -2.0, -3.0, 0.5], &[2, 2], 1).unwrap();
        assert_eq!(q.scales, vec![3.0 / 127.0, 2.0 / 127.0]);
        assert_eq!(q.values, vec![42, -127, -127, 32]);
        let zero = quantize_weights(&[0.0, 0.0], &[2, 1], 0).unwrap();
        assert_eq!((zero.scales, zero.values), (vec![1.0, 1.0], vec![0, 0]));
        assert!(quantize_weights(&[1.0], &[2], 0).is_err());
        assert!(quantize_weights(&[f32::NAN], &[1], 0).is_err());
    }

    #[test]
    fn biases_use_the_product_of_scales() {
        let (q, s) = quantize_bias(&[1.0, -0.5], 0.5, &[0.25, 0.1]);
        assert_eq!(s, vec![0.125, 0.05]);
        assert_eq!(q, vec![8, -10]);
    }
}
