//! Matrix products on slices, through the `gemm` crate that candle's CPU matmul itself uses,
//! for the custom ops that multiply inside their own forward and backward passes (the
//! convolution, `crate::ops::conv`).
//!
//! Why not candle's `matmul` there: it starts every product from a zeroed buffer and cannot
//! add into an existing one, and as separate graph nodes the products would each get a zeroed
//! gradient buffer in candle's backward pass. Here a product writes into memory that was never
//! zeroed, or adds into a gradient, and the operands may be transposed views.

use std::mem::MaybeUninit;

use candle_core::{Result, WithDType};
use gemm::{gemm, Parallelism};
use rayon::prelude::*;

/// A `rows x cols` matrix over a slice: entry `(r, c)` at `r * rs + c * cs`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mat<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a, T> Mat<'a, T> {
    /// The row-major `rows x cols` matrix at the start of `data`.
    pub fn new(data: &'a [T], rows: usize, cols: usize) -> Self {
        Mat {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose: a view of the same data.
    pub fn t(self) -> Self {
        Mat {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    /// Whether every entry lies inside the slice.
    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

/// Checks that `a · b` is defined, its operands lie in their slices and the product fills a
/// row-major destination of `dst_len` entries; an error naming the shapes otherwise.
fn check<T>(dst_len: usize, a: &Mat<T>, b: &Mat<T>) -> Result<()> {
    if a.cols != b.rows || dst_len != a.rows * b.cols || !a.in_bounds() || !b.in_bounds() {
        candle_core::bail!(
            "matrix product: ({}, {}) x ({}, {}) into {dst_len} entries, or an operand outside its \
             data",
            a.rows,
            a.cols,
            b.rows,
            b.cols
        );
    }
    Ok(())
}

/// `dst = a · b` (or `dst += a · b` when `accumulate`), `dst` row-major.
///
/// # Safety
///
/// `check` must have passed for these operands and `a.rows * b.cols` entries; `dst` must be
/// valid for writes of `a.rows * b.cols` entries of `T` and not alias `a` or `b`, and, when
/// `accumulate`, every one of those entries must be initialised (gemm reads them).
unsafe fn product_raw<T: WithDType>(dst: *mut T, a: Mat<T>, b: Mat<T>, accumulate: bool) {
    let parallelism = match rayon::current_num_threads() {
        1 => Parallelism::None,
        n => Parallelism::Rayon(n),
    };
    // SAFETY: the caller's contract: every entry of `a` and `b` in bounds, `dst` `a.rows *
    // b.cols` long and initialised when gemm reads it (`read_dst`, i.e. `accumulate`);
    // otherwise gemm writes every entry (`dst = 1 * a·b`). T is f32 or f64 (see `storage`),
    // which gemm dispatches to its SIMD kernels.
    unsafe {
        gemm(
            a.rows,
            b.cols,
            a.cols,
            dst,
            1,
            b.cols as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            T::one(),
            T::one(),
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// Writes `a · b` into `dst` (row-major, `a.rows x b.cols`), initialising every entry.
pub(crate) fn product_into<T: WithDType>(
    dst: &mut [MaybeUninit<T>],
    a: Mat<T>,
    b: Mat<T>,
) -> Result<()> {
    check(dst.len(), &a, &b)?;
    // SAFETY: checked; `dst` is a distinct `&mut` slice of exactly that length, written, not read.
    unsafe { product_raw(dst.as_mut_ptr().cast(), a, b, false) };
    Ok(())
}

/// `a · b` as a new row-major vector, its buffer never zeroed.
pub(crate) fn product<T: WithDType>(a: Mat<T>, b: Mat<T>) -> Result<Vec<T>> {
    let len = a.rows * b.cols;
    let mut out = Vec::with_capacity(len);
    product_into(&mut out.spare_capacity_mut()[..len], a, b)?;
    // SAFETY: `product_into` initialised all `len` entries.
    unsafe { out.set_len(len) };
    Ok(out)
}

/// `dst += a · b`, `dst` row-major.
pub(crate) fn add_product<T: WithDType>(dst: &mut [T], a: Mat<T>, b: Mat<T>) -> Result<()> {
    check(dst.len(), &a, &b)?;
    // SAFETY: checked; `dst` is a distinct, initialised `&mut` slice of exactly that length.
    unsafe { product_raw(dst.as_mut_ptr(), a, b, true) };
    Ok(())
}

/// Transposes each row-major `rows x cols` block of `data`: block `b` of the result is block
/// `b` of `data` as a row-major `cols x rows` matrix. Parallel over the blocks. An error when
/// `data` is not a whole number of blocks.
pub(crate) fn transpose_blocks<T: WithDType>(
    data: &[T],
    rows: usize,
    cols: usize,
) -> Result<Vec<T>> {
    let size = rows * cols;
    if !data.is_empty() && (size == 0 || !data.len().is_multiple_of(size)) {
        candle_core::bail!(
            "transpose: {} entries are not whole {rows}x{cols} blocks",
            data.len()
        );
    }
    let mut out = Vec::with_capacity(data.len());
    if size > 0 {
        out.spare_capacity_mut()[..data.len()]
            .par_chunks_mut(size)
            .zip(data.par_chunks(size))
            .for_each(|(dst, src)| {
                for (r, row) in src.chunks(cols).enumerate() {
                    for (c, v) in row.iter().enumerate() {
                        dst[c * rows + r] = MaybeUninit::new(*v);
                    }
                }
            });
    }
    // SAFETY: `data` is whole blocks, and in each block every (r, c) wrote its entry
    // `c * rows + r`, which covers the block.
    unsafe { out.set_len(data.len()) };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The product by definition, for comparison.
    fn naive(a: Mat<f64>, b: Mat<f64>) -> Vec<f64> {
        let at = |m: &Mat<f64>, r: usize, c: usize| m.data[r * m.rs + c * m.cs];
        let mut out = vec![0.0; a.rows * b.cols];
        for r in 0..a.rows {
            for c in 0..b.cols {
                out[r * b.cols + c] = (0..a.cols).map(|k| at(&a, r, k) * at(&b, k, c)).sum();
            }
        }
        out
    }

    /// Products of plain and transposed views equal the definition; accumulation adds; a
    /// mismatch of shapes is an error, not a read outside the data.
    #[test]
    fn products_of_views_match_the_definition() {
        let a: Vec<f64> = (0..12).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..20).map(|i| (i as f64 * 0.91).cos()).collect();
        let close = |x: &[f64], y: &[f64]| {
            x.len() == y.len() && x.iter().zip(y).all(|(g, w)| (g - w).abs() < 1e-12)
        };
        let (ma, mb) = (Mat::new(&a, 3, 4), Mat::new(&b, 4, 5));
        assert!(close(&product(ma, mb).unwrap(), &naive(ma, mb)));
        // (4x3)ᵀ · (5x4)ᵀ viewed from the same data
        let (ta, tb) = (Mat::new(&a, 4, 3).t(), Mat::new(&b, 5, 4).t());
        let want = naive(ta, tb);
        assert!(close(&product(ta, tb).unwrap(), &want));
        let mut acc = want.clone();
        add_product(&mut acc, ta, tb).unwrap();
        let twice: Vec<f64> = want.iter().map(|w| 2.0 * w).collect();
        assert!(close(&acc, &twice));
        assert!(product(ma, ma).is_err());
        assert!(product(Mat::new(&a, 4, 4), Mat::new(&b, 4, 5)).is_err());
    }

    #[test]
    fn transposes_each_block() {
        let data: Vec<f32> = (0..12).map(|i| i as f32).collect();
        // two 2x3 blocks
        assert_eq!(
            transpose_blocks(&data, 2, 3).unwrap(),
            [0., 3., 1., 4., 2., 5., 6., 9., 7., 10., 8., 11.]
        );
        assert!(transpose_blocks(&data, 5, 1).is_err());
    }
}
