//! The encoders (`simple`, `resnet`, `efficientnet`) and the decoder shared by the FCAE and
//! VAE heads, each written once as calls on the builder.

use super::builder::Builder;
use super::ops::{NodeId, Op};

/// The plain encoder: per stage `depth` 3x3 convolutions with batch norm and ReLU, then a
/// 2x2 max pool.
pub(super) fn simple(b: &mut Builder, mut x: NodeId, widths: &[usize], depth: usize) -> NodeId {
    for (i, &w) in widths.iter().enumerate() {
        for j in 0..depth {
            x = b.conv_bn_act(
                x,
                &format!("encoder.stage{i}.conv{j}"),
                w,
                3,
                1,
                1,
                Some(Op::Relu),
            );
        }
        x = b.unary(x, format!("encoder.stage{i}.pool"), Op::MaxPool2);
    }
    x
}

/// `c` channels scaled by `width`, at least 8.
fn scaled(c: usize, width: f32) -> usize {
    ((c as f32 * width).round() as usize).max(8)
}

/// ResNet-18. The stem's 3x3/2 max pool is a 2x2/2 one: candle has no backward pass for
/// pooling whose kernel differs from its stride; the output shape is the same.
pub(super) fn resnet(b: &mut Builder, x: NodeId, width: f32) -> NodeId {
    let w0 = scaled(64, width);
    let mut x = b.conv_bn_act(x, "encoder.stem", w0, 7, 2, 1, Some(Op::Relu));
    x = b.unary(x, "encoder.stem.pool".into(), Op::MaxPool2);
    for (li, base) in [64, 128, 256, 512].into_iter().enumerate() {
        let c = scaled(base, width);
        for bi in 0..2 {
            let name = format!("encoder.layer{}.block{bi}", li + 1);
            let stride = if li > 0 && bi == 0 { 2 } else { 1 };
            let c_in = b.shape(x)[0];
            let y = b.conv_bn_act(x, &format!("{name}.a"), c, 3, stride, 1, Some(Op::Relu));
            let y = b.conv_bn_act(y, &format!("{name}.b"), c, 3, 1, 1, None);
            let shortcut = if stride != 1 || c_in != c {
                b.conv_bn_act(x, &format!("{name}.down"), c, 1, stride, 1, None)
            } else {
                x
            };
            let sum = b.binary(y, shortcut, format!("{name}.add"), Op::Add);
            x = b.unary(sum, format!("{name}.act"), Op::Relu);
        }
    }
    x
}

/// EfficientNet's channel rounding: multiples of 8, never more than 10% below the target.
pub(super) fn round_filters(c: usize, width: f32) -> usize {
    let target = c as f32 * width;
    let mut r = (((target + 4.0) as usize) / 8 * 8).max(8);
    if (r as f32) < 0.9 * target {
        r += 8;
    }
    r
}

/// EfficientNet-B0 (Tan & Le 2019) with width/depth multipliers; no drop-connect.
pub(super) fn efficientnet(b: &mut Builder, x: NodeId, width: f32, depth: f32) -> NodeId {
    // (expansion, kernel, stride, output channels, repeats)
    const B0: [(usize, usize, usize, usize, usize); 7] = [
        (1, 3, 1, 16, 1),
        (6, 3, 2, 24, 2),
        (6, 5, 2, 40, 2),
        (6, 3, 2, 80, 3),
        (6, 5, 1, 112, 3),
        (6, 5, 2, 192, 4),
        (6, 3, 1, 320, 1),
    ];
    let mut x = b.conv_bn_act(
        x,
        "encoder.stem",
        round_filters(32, width),
        3,
        2,
        1,
        Some(Op::Silu),
    );
    for (si, &(expand, kernel, stride, c, repeats)) in B0.iter().enumerate() {
        let c_out = round_filters(c, width);
        let repeats = (repeats as f32 * depth).ceil().max(1.0) as usize;
        for r in 0..repeats {
            let name = format!("encoder.stage{}.block{r}", si + 1);
            let s = if r == 0 { stride } else { 1 };
            x = mbconv(b, x, &name, expand, kernel, s, c_out);
        }
    }
    b.conv_bn_act(
        x,
        "encoder.head",
        round_filters(1280, width),
        1,
        1,
        1,
        Some(Op::Silu),
    )
}

fn mbconv(
    b: &mut Builder,
    x: NodeId,
    name: &str,
    expand: usize,
    kernel: usize,
    stride: usize,
    c_out: usize,
) -> NodeId {
    let c_in = b.shape(x)[0];
    let mid = c_in * expand;
    let mut y = x;
    if expand != 1 {
        y = b.conv_bn_act(y, &format!("{name}.expand"), mid, 1, 1, 1, Some(Op::Silu));
    }
    y = b.conv_bn_act(
        y,
        &format!("{name}.dw"),
        mid,
        kernel,
        stride,
        mid,
        Some(Op::Silu),
    );
    // squeeze-excite on the depthwise output, reduced to a quarter of the block's input
    let se = (c_in / 4).max(1);
    let s = b.unary(y, format!("{name}.se.pool"), Op::GlobalAvgPool);
    let s = b.conv(s, &format!("{name}.se.reduce"), se, 1, 1, 1, true);
    let s = b.unary(s, format!("{name}.se.act"), Op::Silu);
    let s = b.conv(s, &format!("{name}.se.expand"), mid, 1, 1, 1, true);
    let s = b.unary(s, format!("{name}.se.gate"), Op::Sigmoid);
    y = b.binary(y, s, format!("{name}.se.scale"), Op::Mul);
    y = b.conv_bn_act(y, &format!("{name}.project"), c_out, 1, 1, 1, None);
    if stride == 1 && c_in == c_out {
        y = b.binary(y, x, format!("{name}.add"), Op::Add);
    }
    y
}

/// The fully convolutional decoder: `stages` x (3x3 conv, batch norm, ReLU, 2x upsample),
/// then a 3x3 conv to the image channels and a sigmoid. Parameters are named `decoder.*`
/// whichever input it decodes, so both passes share them; `tag` keeps node names unique.
/// It starts with a convolution, never an upsample, on its input: candle's upsample backward
/// overwrites rather than adds the gradient of a tensor read twice (M feeds three heads).
pub(super) fn decoder(
    b: &mut Builder,
    x: NodeId,
    stages: usize,
    channels: usize,
    tag: &str,
) -> NodeId {
    let mut y = x;
    let c_m = b.shape(x)[0];
    for i in 0..stages {
        let c = (c_m >> (i + 1)).clamp(8, 256);
        let conv = b.conv(y, &format!("decoder.stage{i}.conv"), c, 3, 1, 1, false);
        b.nodes[conv].name = format!("{tag}.stage{i}.conv");
        let bn = b.bn(conv, &format!("decoder.stage{i}.bn"));
        b.nodes[bn].name = format!("{tag}.stage{i}.bn");
        let act = b.unary(bn, format!("{tag}.stage{i}.act"), Op::Relu);
        y = b.unary(act, format!("{tag}.stage{i}.up"), Op::Upsample2);
    }
    let out = b.conv(y, "decoder.out", channels, 3, 1, 1, true);
    b.nodes[out].name = format!("{tag}.out");
    b.unary(out, tag.to_string(), Op::Sigmoid)
}
