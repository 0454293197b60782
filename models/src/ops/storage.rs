//! Access to the CPU storage of candle tensors, for the custom operations of this crate: each
//! operation's kernel is written once, generic in the float type ([`FloatFn`]), and run on
//! f32 or f64 data by [`on_floats`] (forward passes, which receive storage) or
//! [`on_float_tensors`] (backward passes, which receive tensors).

use std::sync::{Mutex, MutexGuard};

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, Layout, Result, Storage, Tensor, WithDType};

/// What an op's forward pass saved for its backward pass (batch statistics, a column
/// matrix), locked; an error naming `op` if a thread panicked holding it.
pub(crate) fn saved<'a, S>(state: &'a Mutex<S>, op: &str) -> Result<MutexGuard<'a, S>> {
    state.lock().map_err(|_| {
        candle_core::Error::Msg(format!(
            "{op}: a thread panicked holding the state saved for the backward pass"
        ))
    })
}

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

/// A computation over the contiguous data of `N` buffers of one float type, generic in that
/// type.
pub(crate) trait FloatFn<const N: usize> {
    type Output;

    fn call<T: WithDType>(self, data: [&[T]; N]) -> Result<Self::Output>;
}

/// Runs `f` on the contiguous data of `inputs`, all f32 or all f64; otherwise an error naming
/// `op`.
pub(crate) fn on_floats<const N: usize, F: FloatFn<N>>(
    inputs: [(&CpuStorage, &Layout); N],
    op: &str,
    f: F,
) -> Result<F::Output> {
    fn slices<'a, T: WithDType, const N: usize>(
        inputs: [(&'a CpuStorage, &Layout); N],
        op: &str,
    ) -> Result<[&'a [T]; N]> {
        let mut out = [&[] as &[T]; N];
        for (slot, (storage, layout)) in out.iter_mut().zip(inputs) {
            let data = storage.as_slice::<T>().map_err(|_| {
                candle_core::Error::Msg(format!("{op}: the inputs must be of one float type"))
            })?;
            *slot = contiguous(data, layout, op)?;
        }
        Ok(out)
    }
    match inputs.first().map(|(s, _)| s.dtype()) {
        Some(DType::F32) => f.call(slices::<f32, N>(inputs, op)?),
        Some(DType::F64) => f.call(slices::<f64, N>(inputs, op)?),
        other => candle_core::bail!("{op}: only f32 and f64 are supported, not {other:?}"),
    }
}

/// [`on_floats`] on the CPU storage of `tensors`.
pub(crate) fn on_float_tensors<const N: usize, F: FloatFn<N>>(
    tensors: [&Tensor; N],
    op: &str,
    f: F,
) -> Result<F::Output> {
    let guards = tensors.map(|t| t.storage_and_layout());
    let mut cpu = Vec::with_capacity(N);
    for (storage, layout) in &guards {
        match &**storage {
            Storage::Cpu(s) => cpu.push((s, *layout)),
            _ => candle_core::bail!("{op}: only CPU tensors are supported"),
        }
    }
    match <[(&CpuStorage, &Layout); N]>::try_from(cpu) {
        Ok(inputs) => on_floats(inputs, op, f),
        Err(_) => candle_core::bail!("{op}: {N} inputs expected"),
    }
}
