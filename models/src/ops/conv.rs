//! Dense 2-D convolution as one op: im2col, then matrix products in `gemm`, forward and for
//! both gradients.
//!
//! Why not candle's `conv2d`: on the CPU its backward computes the input gradient with a
//! direct-loop `conv_transpose2d` and the kernel gradient as a convolution whose "kernel" is
//! the whole feature map, both far from gemm speed (measured in `benches/README.md`,
//! Training). Why one op rather than im2col, reshapes and candle's `matmul` as graph nodes:
//! candle's backward gives every node's input a zeroed gradient buffer and adds into it, and
//! the column matrix is 9 times the activations for a 3x3 kernel; that zeroing and adding was
//! a fifth of a training step. Here the only hand-written loops are [`Im2Col`] and its adjoint
//! `Col2Im`, which copy memory; every multiply-add is in `crate::ops::matrix`'s products.

use std::mem::MaybeUninit;
use std::ops::Range;
use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

use crate::ops::matrix::{add_product, product, product_into, transpose_blocks, Mat};
use crate::ops::storage::{on_float_tensors, on_floats, saved, FloatFn};

/// Up to this many output channels a dense convolution is computed plane by plane
/// (`crate::ops::grouped_conv`) rather than by im2col and matrix products: with so few output rows the
/// product is cheap and writing and reading the column matrix is the cost. Measured on the
/// training benchmark (two threads, images/s) with the limit at 0 / 1 / 8 / 16: simple 64 px
/// 141 / 162 / 165 / 145, resnet 128 px 55 / 67 / 69 / 55, efficientnet 128 px 17.0 at 0 and
/// 19.3 at 8. Taking single-channel inputs (the first layer) plane by plane as well was no
/// faster.
const PLANAR_MAX_OUTPUTS: usize = 8;

/// `y = conv2d(x, kernel)` for `x` (N, C, H, W) and `kernel` (O, C, kh, kw), groups 1,
/// dilation 1: the same numbers as `Tensor::conv2d`, with a faster backward.
///
/// With at most [`PLANAR_MAX_OUTPUTS`] output channels it is computed plane by plane.
/// Otherwise by im2col and matrix products, in one of two arrangements.
///
/// The two arrangements of the products are chosen by shape. Where an image has at least as many
/// output positions as the kernel has weights per filter (the early, large layers), one
/// product per image on its (K, Ho*Wo) column block, the kernel gradient summed over the
/// images in place. Where it has fewer (the deep layers, e.g. 4 positions against 1,152
/// weights), per-image products would be thin, so the images' transposed blocks are stacked
/// into one (N*Ho*Wo, K) matrix: one product forward, one for each gradient, and a transpose
/// of the output and of its gradient. The choice was measured on the training benchmark,
/// where it beat stacking every layer (figures: `benches/README.md`, Training).
pub fn conv2d(x: &Tensor, kernel: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    let (_, c, h, w) = x.dims4()?;
    let (o, _, kh, kw) = kernel.dims4()?;
    if o <= PLANAR_MAX_OUTPUTS {
        return crate::ops::grouped_conv::grouped_conv2d(x, kernel, stride, padding, 1);
    }
    let positions = ((h + 2 * padding).saturating_sub(kh) / stride.max(1) + 1)
        * ((w + 2 * padding).saturating_sub(kw) / stride.max(1) + 1);
    conv2d_arranged(x, kernel, stride, padding, positions < c * kh * kw)
}

/// [`conv2d`] with the arrangement chosen by the caller: `stacked` or one product per image.
fn conv2d_arranged(
    x: &Tensor,
    kernel: &Tensor,
    stride: usize,
    padding: usize,
    stacked: bool,
) -> Result<Tensor> {
    let (_, c, h, w) = x.dims4()?;
    let (_, kc, kh, kw) = kernel.dims4()?;
    if kc != c {
        candle_core::bail!("conv2d: input has {c} channels, kernel expects {kc}");
    }
    let window = Window::fitted((kh, kw), stride, padding, (h, w))?;
    let op = Conv2d {
        im2col: Im2Col { window, stacked },
        cols: Mutex::new(None),
    };
    x.contiguous()?.apply_op2(&kernel.contiguous()?, op)
}

/// The convolution op over (x, kernel). The column matrix of the forward pass is kept for the
/// kernel gradient (autograd's saved tensor); the backward pass takes it, or recomputes it if
/// it is gone.
struct Conv2d {
    im2col: Im2Col,
    cols: Mutex<Option<CpuStorage>>,
}

/// The sizes of one convolution: batch, input planes and kernel, output plane.
#[derive(Clone, Copy)]
struct Sizes {
    n: usize,
    /// output channels
    o: usize,
    /// weights per filter, C*kh*kw
    k: usize,
    /// output rows and columns
    ho: usize,
    wo: usize,
    /// output positions per image, Ho*Wo
    hw: usize,
}

impl Conv2d {
    fn sizes(&self, x: &[usize], kernel: &[usize]) -> Sizes {
        let (ho, wo) = self.im2col.window.out_size(x[2], x[3]);
        Sizes {
            n: x[0],
            o: kernel[0],
            k: kernel[1] * kernel[2] * kernel[3],
            ho,
            wo,
            hw: ho * wo,
        }
    }

    /// A 1x1 kernel at stride 1 without padding, one product per image: each image already is
    /// its column block, so no copy is made.
    fn is_pointwise(&self) -> bool {
        let Window {
            kh,
            kw,
            stride,
            padding,
        } = self.im2col.window;
        (kh, kw, stride, padding) == (1, 1, 1, 0) && !self.im2col.stacked
    }
}

/// The forward pass on one float type: x and kernel with their dimensions.
struct ConvForward<'a> {
    op: &'a Conv2d,
    x_dims: &'a [usize],
    k_dims: &'a [usize],
}

impl FloatFn<2> for ConvForward<'_> {
    type Output = (CpuStorage, Shape);

    fn call<T: WithDType>(self, [x, kernel]: [&[T]; 2]) -> Result<Self::Output> {
        let op = self.op;
        let Sizes {
            n,
            o,
            k,
            ho,
            wo,
            hw,
        } = op.sizes(self.x_dims, self.k_dims);
        let shape = Shape::from((n, o, ho, wo));
        let cols = match op.is_pointwise() {
            true => None,
            false => Some(op.im2col.forward(x, self.x_dims).0),
        };
        let columns = cols.as_deref().unwrap_or(x);
        let w = Mat::new(kernel, o, k);
        let out = if op.im2col.stacked {
            // (N*HW, K) x (K, O), then each image's (HW, O) block to (O, HW)
            let rows = product(Mat::new(columns, n * hw, k), w.t())?;
            transpose_blocks(&rows, hw, o)?
        } else {
            let mut out = Vec::with_capacity(n * o * hw);
            for (i, dst) in out.spare_capacity_mut()[..n * o * hw]
                .chunks_mut(o * hw)
                .enumerate()
            {
                product_into(dst, w, Mat::new(&columns[i * k * hw..], k, hw))?;
            }
            // SAFETY: each of the `n` chunks of `o * hw` was initialised by `product_into`.
            unsafe { out.set_len(n * o * hw) };
            out
        };
        if let Some(cols) = cols {
            *saved(&op.cols, "conv2d")? = Some(T::to_cpu_storage_owned(cols));
        }
        Ok((T::to_cpu_storage_owned(out), shape))
    }
}

/// The backward pass on one float type: from x, kernel and the output gradient, the input and
/// kernel gradients.
struct ConvBackward<'a> {
    op: &'a Conv2d,
    x_dims: &'a [usize],
    k_dims: &'a [usize],
    /// the forward pass's column matrix, if it was kept
    cols: Option<&'a CpuStorage>,
}

impl FloatFn<3> for ConvBackward<'_> {
    type Output = (Tensor, Tensor);

    fn call<T: WithDType>(self, [x, kernel, grad]: [&[T]; 3]) -> Result<Self::Output> {
        let op = self.op;
        let Sizes { n, o, k, hw, .. } = op.sizes(self.x_dims, self.k_dims);
        let recomputed;
        let columns = match (op.is_pointwise(), self.cols) {
            (true, _) => x,
            (false, Some(kept)) => kept.as_slice::<T>()?,
            (false, None) => {
                recomputed = op.im2col.forward(x, self.x_dims).0;
                &recomputed
            }
        };
        let w = Mat::new(kernel, o, k);
        let mut d_kernel = vec![T::zero(); o * k];
        let d_cols = if op.im2col.stacked {
            // the output gradient as (N*HW, O) rows, like the forward product's
            let rows = transpose_blocks(grad, o, hw)?;
            let rows = Mat::new(&rows, n * hw, o);
            add_product(&mut d_kernel, rows.t(), Mat::new(columns, n * hw, k))?;
            product(rows, w)?
        } else {
            let mut d_cols = Vec::with_capacity(n * k * hw);
            for (i, dst) in d_cols.spare_capacity_mut()[..n * k * hw]
                .chunks_mut(k * hw)
                .enumerate()
            {
                let g = Mat::new(&grad[i * o * hw..], o, hw);
                add_product(
                    &mut d_kernel,
                    g,
                    Mat::new(&columns[i * k * hw..], k, hw).t(),
                )?;
                product_into(dst, w.t(), g)?;
            }
            // SAFETY: each of the `n` chunks of `k * hw` was initialised by `product_into`.
            unsafe { d_cols.set_len(n * k * hw) };
            d_cols
        };
        let dev = &candle_core::Device::Cpu;
        let d_x = match op.is_pointwise() {
            true => d_cols,
            false => {
                let (c, h, wd) = (self.x_dims[1], self.x_dims[2], self.x_dims[3]);
                let dims = match op.im2col.stacked {
                    true => [n, hw, k],
                    false => [n, k, hw],
                };
                let col2im = Col2Im {
                    im2col: op.im2col,
                    h,
                    w: wd,
                };
                let (d_x, _) = col2im.forward(&d_cols, &dims);
                debug_assert_eq!(d_x.len(), n * c * h * wd);
                d_x
            }
        };
        Ok((
            Tensor::from_vec(d_x, self.x_dims, dev)?,
            Tensor::from_vec(d_kernel, self.k_dims, dev)?,
        ))
    }
}

impl CustomOp2 for Conv2d {
    fn name(&self) -> &'static str {
        "conv2d"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        kernel: &CpuStorage,
        k_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let forward = ConvForward {
            op: self,
            x_dims: x_layout.dims(),
            k_dims: k_layout.dims(),
        };
        on_floats([(x, x_layout), (kernel, k_layout)], self.name(), forward)
    }

    fn bwd(
        &self,
        x: &Tensor,
        kernel: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad_res.contiguous()?;
        let cols = saved(&self.cols, "conv2d")?.take();
        let backward = ConvBackward {
            op: self,
            x_dims: x.dims(),
            k_dims: kernel.dims(),
            cols: cols.as_ref(),
        };
        let (d_x, d_kernel) = on_float_tensors([x, kernel, &grad], "conv2d backward", backward)?;
        Ok((Some(d_x), Some(d_kernel)))
    }
}

/// A kernel window sliding over an image: its size, stride and zero padding. Its spans are
/// what im2col copies, and the taps of the plane-by-plane convolution (`crate::ops::grouped_conv`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub padding: usize,
}

/// (N, C, H, W) -> (N, C*kh*kw, Ho*Wo): row `(c, i, j)` holds input channel `c` shifted by
/// kernel offset `(i, j)` at every output position, zero where it falls in the padding; or,
/// `stacked`, the transpose of each image's block, (N, Ho*Wo, C*kh*kw), whose rows stack over
/// the batch into one matrix.
#[derive(Debug, Clone, Copy)]
struct Im2Col {
    window: Window,
    stacked: bool,
}

/// One output row `oy` of one column-matrix row `row = (c, i, j)`: the `wo` output positions
/// from `line = oy * wo`, of which those at `ox` read the input from `src` onwards, one input
/// pixel per `stride`; `ox` is empty when the whole row falls in the padding.
pub(crate) struct Span {
    pub row: usize,
    pub line: usize,
    pub ox: Range<usize>,
    pub src: usize,
}

impl Span {
    /// The input indices the span's body reads, one every `stride` from the first (empty
    /// when the span lies wholly in the padding).
    pub fn input(&self, stride: usize) -> Range<usize> {
        match self.ox.len() {
            0 => self.src..self.src,
            len => self.src..self.src + (len - 1) * stride + 1,
        }
    }

    /// The output positions of the span's body within its (Ho, Wo) plane.
    pub fn out(&self) -> Range<usize> {
        self.line + self.ox.start..self.line + self.ox.end
    }
}

impl Window {
    /// The window of a `kernel` (kh, kw) at `stride` with `padding` over an `input` (h, w);
    /// an error when the kernel does not fit the padded input or the stride is 0.
    pub fn fitted(
        (kh, kw): (usize, usize),
        stride: usize,
        padding: usize,
        (h, w): (usize, usize),
    ) -> Result<Window> {
        if stride == 0 || h + 2 * padding < kh || w + 2 * padding < kw {
            candle_core::bail!(
                "conv2d: a {kh}x{kw} kernel at stride {stride} does not fit a {h}x{w} input"
            );
        }
        Ok(Window {
            kh,
            kw,
            stride,
            padding,
        })
    }

    pub fn out_size(&self, h: usize, w: usize) -> (usize, usize) {
        (
            (h + 2 * self.padding - self.kh) / self.stride + 1,
            (w + 2 * self.padding - self.kw) / self.stride + 1,
        )
    }

    /// The output columns whose input column `ox * stride + j - padding` lies in `0..w`.
    fn valid_columns(&self, j: usize, w: usize, wo: usize) -> Range<usize> {
        let (s, p, j, w) = (
            self.stride as isize,
            self.padding as isize,
            j as isize,
            w as isize,
        );
        let ceil_div = |a: isize| if a <= 0 { 0 } else { (a + s - 1) / s };
        let first = (ceil_div(p - j) as usize).min(wo);
        let end = (ceil_div(w + p - j) as usize).clamp(first, wo);
        first..end
    }

    /// Calls `f` for every [`Span`] of one image of `c` channels, in column order. Spans
    /// tile the image's column block exactly, so a writer that fills each span whole writes
    /// every entry once.
    pub fn for_each_span(&self, c: usize, h: usize, w: usize, mut f: impl FnMut(Span)) {
        let (ho, wo) = self.out_size(h, w);
        for ch in 0..c {
            for i in 0..self.kh {
                for j in 0..self.kw {
                    let row = (ch * self.kh + i) * self.kw + j;
                    let cols = self.valid_columns(j, w, wo);
                    for oy in 0..ho {
                        let iy = (oy * self.stride + i) as isize - self.padding as isize;
                        let line = oy * wo;
                        if iy < 0 || iy >= h as isize || cols.is_empty() {
                            f(Span {
                                row,
                                line,
                                ox: 0..0,
                                src: 0,
                            });
                            continue;
                        }
                        let ix = cols.start * self.stride + j - self.padding;
                        f(Span {
                            row,
                            line,
                            ox: cols.clone(),
                            src: (ch * h + iy as usize) * w + ix,
                        });
                    }
                }
            }
        }
    }
}

impl FloatCopy for Im2Col {
    fn forward<T: WithDType>(&self, x: &[T], dims: &[usize]) -> (Vec<T>, Shape) {
        let (n, c, h, w) = (dims[0], dims[1], dims[2], dims[3]);
        let window = self.window;
        let (ho, wo) = window.out_size(h, w);
        let k = c * window.kh * window.kw;
        let per_out = k * ho * wo;
        let s = window.stride;
        // where column entry (row, position) of an image's block lies
        let at = |row: usize, position: usize| {
            if self.stacked {
                position * k + row
            } else {
                row * ho * wo + position
            }
        };
        // Every entry is written exactly once below (spans tile each image's block), so the
        // buffer is not zeroed first: zeroing it was 6% of a training step.
        let mut out: Vec<T> = Vec::with_capacity(n * per_out);
        out.spare_capacity_mut()[..n * per_out]
            .par_chunks_mut(per_out)
            .zip(x.par_chunks(c * h * w))
            .for_each(|(dst, src)| {
                window.for_each_span(c, h, w, |span| {
                    let zero = MaybeUninit::new(T::zero());
                    if !self.stacked {
                        let line = &mut dst[at(span.row, span.line)..][..wo];
                        let (head, rest) = line.split_at_mut(span.ox.start);
                        let (body, tail) = rest.split_at_mut(span.ox.len());
                        head.fill(zero);
                        tail.fill(zero);
                        // indexing is bounds-checked: a span past the input panics instead of
                        // leaving entries unwritten
                        zip_strided(body, &src[span.input(s)], s, |d, v| {
                            d.write(*v);
                        });
                        return;
                    }
                    let mut values = src[span.input(s)].iter().step_by(s);
                    for ox in 0..wo {
                        let v = match span.ox.contains(&ox) {
                            // as many values as the span's body has entries (bounds-checked)
                            true => MaybeUninit::new(*values.next().expect("span input")),
                            false => zero,
                        };
                        dst[at(span.row, span.line + ox)] = v;
                    }
                })
            });
        // SAFETY: the capacity is `n * per_out`, and the loop above initialised every one of
        // those entries (each span covers the `wo` entries of one output line of one column
        // row, and the spans of a chunk cover all its rows and lines).
        unsafe { out.set_len(n * per_out) };
        let shape = if self.stacked {
            (n, ho * wo, k)
        } else {
            (n, k, ho * wo)
        };
        (out, Shape::from(shape))
    }
}

/// Calls `f(a, b)` for each entry of `a` and every `stride`-th entry of `b`; the common unit
/// stride is a plain zip, which the compiler can turn into vector copies.
pub(crate) fn zip_strided<A, B>(a: A, b: B, stride: usize, mut f: impl FnMut(A::Item, B::Item))
where
    A: IntoIterator,
    B: IntoIterator,
{
    if stride == 1 {
        a.into_iter().zip(b).for_each(|(x, y)| f(x, y));
    } else {
        a.into_iter()
            .zip(b.into_iter().step_by(stride))
            .for_each(|(x, y)| f(x, y));
    }
}

/// A copy op over f32 or f64 data, generic in the element type.
trait FloatCopy {
    fn forward<T: WithDType>(&self, x: &[T], dims: &[usize]) -> (Vec<T>, Shape);
}

/// A copy op with the dimensions of its input, run on f32 or f64 data by `on_floats`.
impl<Op: FloatCopy> FloatFn<1> for (&Op, &[usize]) {
    type Output = (CpuStorage, Shape);

    fn call<T: WithDType>(self, [x]: [&[T]; 1]) -> Result<Self::Output> {
        let (out, shape) = self.0.forward(x, self.1);
        Ok((T::to_cpu_storage_owned(out), shape))
    }
}

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "im2col"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        on_floats([(storage, layout)], self.name(), (self, layout.dims()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let (_, _, h, w) = arg.dims4()?;
        let grad = grad_res.contiguous()?.apply_op1_no_bwd(&Col2Im {
            im2col: *self,
            h,
            w,
        })?;
        Ok(Some(grad))
    }
}

/// The adjoint of [`Im2Col`]: (N, C*kh*kw, Ho*Wo) -> (N, C, H, W), summing every column entry
/// back onto the input pixel it was copied from.
struct Col2Im {
    im2col: Im2Col,
    h: usize,
    w: usize,
}

impl FloatCopy for Col2Im {
    fn forward<T: WithDType>(&self, cols: &[T], dims: &[usize]) -> (Vec<T>, Shape) {
        let window = self.im2col.window;
        let taps = window.kh * window.kw;
        let (ho, wo) = window.out_size(self.h, self.w);
        let (stacked, s) = (self.im2col.stacked, window.stride);
        let k = if stacked { dims[2] } else { dims[1] };
        let (n, c) = (dims[0], k / taps);
        let per_in = c * self.h * self.w;
        let mut out = vec![T::zero(); n * per_in];
        out.par_chunks_mut(per_in)
            .zip(cols.par_chunks(dims[1] * dims[2]))
            .for_each(|(dst, src)| {
                window.for_each_span(c, self.h, self.w, |span| {
                    let input = &mut dst[span.input(s)];
                    if stacked {
                        let values = span.out().map(|position| &src[position * k + span.row]);
                        zip_strided(values, input, s, |v, d| *d += *v);
                    } else {
                        let values = &src[span.row * ho * wo..][span.out()];
                        zip_strided(values, input, s, |v, d| *d += *v);
                    }
                })
            });
        (out, Shape::from((n, c, self.h, self.w)))
    }
}

impl CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        "col2im"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        on_floats([(storage, layout)], self.name(), (self, layout.dims()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::sine_fill;
    use crate::testing::{max_diff, sine_fill64, weighted_grads};
    use candle_core::Var;

    /// Forward and both gradients equal candle's direct convolution (float64, to 1e-10), in
    /// both arrangements of the products.
    #[test]
    fn matches_candle_conv2d_forward_and_backward() {
        let cases = [
            // (n, c, h, w, o, k, stride, padding)
            (2, 3, 7, 6, 4, 3, 1, 1),
            (2, 3, 9, 8, 5, 3, 2, 1),
            (1, 2, 6, 6, 3, 1, 1, 0),
            (3, 4, 8, 8, 2, 1, 2, 0),
            (1, 1, 5, 7, 2, 5, 1, 2),
            (2, 2, 4, 4, 3, 2, 2, 0),
            // kernel offsets whose every tap falls in the padding, and stride 3
            (1, 2, 2, 1, 2, 5, 1, 2),
            (2, 2, 10, 7, 3, 3, 3, 1),
        ];
        for &(n, c, h, w, _, k, s, p) in &cases {
            for stacked in [false, true] {
                adjoint(n, c, h, w, k, s, p, stacked);
            }
        }
        let both = cases.iter().flat_map(|&case| [(case, false), (case, true)]);
        for ((n, c, h, w, o, k, s, p), stacked) in both {
            let x = Var::from_tensor(&sine_fill64(&[n, c, h, w], 0.3)).unwrap();
            let kern = Var::from_tensor(&sine_fill64(&[o, c, k, k], 1.1)).unwrap();
            let ours = conv2d_arranged(x.as_tensor(), kern.as_tensor(), s, p, stacked).unwrap();
            let theirs = x.as_tensor().conv2d(kern.as_tensor(), p, s, 1, 1).unwrap();
            assert_eq!(ours.dims(), theirs.dims());
            let weight = sine_fill64(ours.dims(), 0.7);
            let go = weighted_grads(&ours, &weight);
            let case = format!("n{n} c{c} {h}x{w} o{o} k{k} s{s} p{p} stacked {stacked}");
            assert!(max_diff(&ours, &theirs) < 1e-10, "{case}: forward");
            // candle's own backward fails when the stride leaves input rows unread (its
            // transposed convolution comes out a row short); the adjoint test covers those
            if (h + 2 * p - k) % s != 0 || (w + 2 * p - k) % s != 0 {
                continue;
            }
            let gt = weighted_grads(&theirs, &weight);
            // a second backward pass finds the column matrix taken by the first, and
            // recomputes it
            let again = weighted_grads(&ours, &weight);
            for (name, v) in [("input", &x), ("kernel", &kern)] {
                let d = max_diff(go.get(v).unwrap(), gt.get(v).unwrap());
                assert!(d < 1e-10, "{case}: {name} gradient off by {d}");
                let d = max_diff(go.get(v).unwrap(), again.get(v).unwrap());
                assert_eq!(d, 0.0, "{case}: {name} gradient of a second backward pass");
            }
        }
    }

    /// Col2Im is the adjoint of Im2Col: <im2col(x), c> = <x, col2im(c)> for any x and c, so
    /// the gradient it passes back is exact.
    #[allow(clippy::too_many_arguments)]
    fn adjoint(
        n: usize,
        c: usize,
        h: usize,
        w: usize,
        k: usize,
        s: usize,
        p: usize,
        stacked: bool,
    ) {
        let window = Window {
            kh: k,
            kw: k,
            stride: s,
            padding: p,
        };
        let op = Im2Col { window, stacked };
        let x = sine_fill(&[n, c, h, w], 0.2).unwrap();
        let cols = x.apply_op1_no_bwd(&op).unwrap();
        let r = sine_fill(cols.dims(), 1.7).unwrap();
        let back = r.apply_op1_no_bwd(&Col2Im { im2col: op, h, w }).unwrap();
        let dot = |a: &Tensor, b: &Tensor| -> f32 {
            a.mul(b).unwrap().sum_all().unwrap().to_scalar().unwrap()
        };
        let (lhs, rhs) = (dot(&cols, &r), dot(&x, &back));
        assert!(
            (lhs - rhs).abs() <= 1e-4 * lhs.abs().max(1.0),
            "k{k} s{s} p{p} on {h}x{w}, stacked {stacked}: {lhs} vs {rhs}"
        );
    }
}
