//! Access to the CPU storage of candle tensors, for the custom operations of this crate.

use candle_core::{CpuStorage, Layout, Result, WithDType};

/// The contiguous slice of `storage` under `layout`, or an error naming `op`.
pub(crate) fn contiguous<'a, T: WithDType>(
    v: &'a [T],
    layout: &Layout,
    op: &str,
) -> Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("{op}: the input must be contiguous"),
    }
}

/// Dispatches `f` on the contiguous f32 or f64 data of `storage`.
pub(crate) fn float_map(
    storage: &CpuStorage,
    layout: &Layout,
    name: &str,
    f32_fn: impl FnOnce(&[f32]) -> Vec<f32>,
    f64_fn: impl FnOnce(&[f64]) -> Vec<f64>,
) -> Result<CpuStorage> {
    Ok(match storage {
        CpuStorage::F32(v) => CpuStorage::F32(f32_fn(contiguous(v, layout, name)?)),
        CpuStorage::F64(v) => CpuStorage::F64(f64_fn(contiguous(v, layout, name)?)),
        _ => candle_core::bail!("{name}: only f32 and f64 are supported"),
    })
}
