//! Access to the CPU storage of candle tensors, for the custom operations of this crate.

use candle_core::{Layout, Result, WithDType};

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
