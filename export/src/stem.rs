//! Exact rewrites of a graph's input end, so that its first convolution runs in integers.
//!
//! 1. [`fold_normalization`]: the input normalisation `(x - mean) * inv_std` moves into the
//!    convolutions that read it: `w' = w * inv_std[c]`, `b' = b - sum(w' * mean[c])`, and the
//!    convolution's zero padding (zero *after* normalisation) becomes an explicit `Pad` of the
//!    raw image with the mean (the value that normalises to zero), so the borders are exact too.
//! 2. [`space_to_depth_stem`]: a strided convolution on the image (ResNet's 7x7/2 stem on one
//!    grey channel) becomes `SpaceToDepth(s)` and a stride-1 convolution with `s x s` times the
//!    input channels and a `ceil(k / s)` kernel (the taps beyond `k` are zero). Integer
//!    convolution kernels run a one-channel input poorly (too little work per output to fill
//!    their vector lanes); four channels on a quarter of the positions is the same arithmetic
//!    laid out for them.
//!
//! Both change no output beyond float rounding (`tests` below check the arithmetic against the
//! direct convolution). The INT8 variants apply them before quantisation when their stem is
//! quantised (`variants::Int8Options::integer_stem`).

use std::collections::HashSet;

use crate::int8_parts::{attr, err, graph_mut, initializer, set_initializer};
use crate::onnx::{attr_int, attr_ints, float_tensor, int_tensor};
use crate::Result;
use onnx_protobuf::{GraphProto, ModelProto, NodeProto};

/// What [`fold_normalization`] did: the convolutions that now read the raw image, and the value
/// their borders are padded with (the normalisation mean), which the image's quantisation range
/// must contain.
#[derive(Debug, Clone, PartialEq)]
pub struct Folded {
    /// Conv nodes (by name) whose weights and bias now include the normalisation.
    pub convs: Vec<String>,
    /// The raw pixel value that normalises to zero.
    pub pad_value: f32,
}

fn is_initializer(g: &GraphProto, name: &str) -> bool {
    g.initializer.iter().any(|t| t.name == name)
}

fn readers(g: &GraphProto, value: &str) -> Vec<usize> {
    (0..g.node.len())
        .filter(|&i| g.node[i].input.iter().any(|x| x == value))
        .collect()
}

/// `pads` of a Conv as `[top, left, bottom, right]` (zeros when absent).
fn conv_pads(node: &NodeProto) -> Result<[i64; 4]> {
    match attr(node, "pads") {
        None => Ok([0; 4]),
        Some(a) if a.ints.len() == 4 => Ok([a.ints[0], a.ints[1], a.ints[2], a.ints[3]]),
        Some(a) => Err(err(format!("`{}` has pads {:?}", node.name, a.ints)).into()),
    }
}

/// Replaces (or adds) an attribute of `node`.
fn set_attr(node: &mut NodeProto, a: onnx_protobuf::AttributeProto) {
    node.attribute.retain(|x| x.name != a.name);
    node.attribute.push(a);
}

/// A Conv whose weights (and bias, if any) are initialisers, with group 1 and no dilation.
fn plain_conv(g: &GraphProto, n: &NodeProto) -> bool {
    n.op_type == "Conv"
        && n.input.len() >= 2
        && is_initializer(g, &n.input[1])
        && n.input
            .get(2)
            .is_none_or(|b| b.is_empty() || is_initializer(g, b))
        && attr(n, "group").is_none_or(|a| a.i == 1)
        && attr(n, "dilations").is_none_or(|a| a.ints.iter().all(|&d| d == 1))
}

/// Folds the graph input's normalisation (`Sub` of a per-channel mean, then `Mul` by the inverse
/// standard deviation) into the convolutions that read it (see the module docs). Nothing is
/// changed, and `None` returned, unless every reader of the normalised image is such a
/// convolution and every channel has the same mean (ONNX's `Pad` takes one value; the
/// project's normalisation, `Normalization::standard`, has one).
pub fn fold_normalization(model: &mut ModelProto) -> Result<Option<Folded>> {
    let g = graph_mut(model)?;
    let Some(input) = g.input.first().map(|i| i.name.clone()) else {
        return Ok(None);
    };
    let Some(si) = g.node.iter().position(|n| {
        n.op_type == "Sub"
            && n.input.len() == 2
            && n.input[0] == input
            && is_initializer(g, &n.input[1])
    }) else {
        return Ok(None);
    };
    let sub = g.node[si].clone();
    let &[mi] = readers(g, &sub.output[0]).as_slice() else {
        return Ok(None);
    };
    let mul = g.node[mi].clone();
    let Some(inv_name) = mul.input.iter().find(|v| **v != sub.output[0]) else {
        return Ok(None);
    };
    if mul.op_type != "Mul" || mul.input.len() != 2 || !is_initializer(g, inv_name) {
        return Ok(None);
    }
    let convs = readers(g, &mul.output[0]);
    let graph_outputs: HashSet<&String> = g.output.iter().map(|o| &o.name).collect();
    if convs.is_empty()
        || graph_outputs.contains(&mul.output[0])
        || convs.iter().any(|&c| {
            !plain_conv(g, &g.node[c])
                || g.node[c].input[0] != mul.output[0]
                || readers(g, &g.node[c].input[1]).len() != 1
        })
    {
        return Ok(None);
    }
    let (mean, _) = initializer(g, &sub.input[1])?;
    let (inv, _) = initializer(g, inv_name)?;
    let Some(&m) = mean.first() else {
        return Ok(None);
    };
    if mean.iter().any(|&v| v != m) || inv.len() != mean.len() {
        return Ok(None);
    }
    let mut folded = Vec::new();
    for &c in &convs {
        let conv = g.node[c].clone();
        let (mut w, dims) = initializer(g, &conv.input[1])?;
        let &[out_ch, in_ch, _, _] = dims.as_slice() else {
            return Err(err(format!("`{}` has weights of shape {dims:?}", conv.name)).into());
        };
        if in_ch != inv.len() {
            return Err(err(format!(
                "`{}` reads {in_ch} channels but the normalisation has {}",
                conv.name,
                inv.len()
            ))
            .into());
        }
        let per_in = w.len() / (out_ch * in_ch).max(1);
        for (i, x) in w.iter_mut().enumerate() {
            *x *= inv[(i / per_in) % in_ch];
        }
        let per_out = w.len() / out_ch.max(1);
        let old_bias = match conv.input.get(2) {
            Some(b) if !b.is_empty() => initializer(g, b)?.0,
            _ => vec![0.0; out_ch],
        };
        if old_bias.len() != out_ch {
            return Err(err(format!(
                "`{}` has {} biases for {out_ch} outputs",
                conv.name,
                old_bias.len()
            ))
            .into());
        }
        // b' = b - sum(w' * mean), summed in f64 so the border correction is not rounded twice
        let bias: Vec<f32> = (0..out_ch)
            .map(|o| {
                let s: f64 = w[o * per_out..(o + 1) * per_out]
                    .iter()
                    .map(|&x| x as f64 * m as f64)
                    .sum();
                (old_bias[o] as f64 - s) as f32
            })
            .collect();
        let bias_name = match conv.input.get(2) {
            Some(b) if !b.is_empty() => b.clone(),
            _ => format!("{}.bias", conv.input[1].trim_end_matches(".weight")),
        };
        set_initializer(g, float_tensor(&conv.input[1], &dims, w));
        set_initializer(g, float_tensor(&bias_name, &[out_ch], bias));
        let [t, l, b, r] = conv_pads(&conv)?;
        let node = &mut g.node[c];
        node.input.truncate(2);
        node.input.push(bias_name);
        if [t, l, b, r] == [0; 4] {
            node.input[0] = input.clone();
        } else {
            let padded = format!("{}.padded", conv.name);
            set_attr(node, attr_ints("pads", &[0, 0, 0, 0]));
            node.input[0] = padded.clone();
            add_pad(g, &input, &padded, [t, l, b, r], m);
        }
        folded.push(conv.name);
    }
    g.node.retain(|n| n.name != sub.name && n.name != mul.name);
    let used: HashSet<String> = g.node.iter().flat_map(|n| n.input.clone()).collect();
    g.initializer.retain(|t| used.contains(&t.name));
    topological_sort(g)?;
    Ok(Some(Folded {
        convs: folded,
        pad_value: m,
    }))
}

/// The name of the initialiser holding the pads of the `Pad` that writes `output`.
fn pads_name(output: &str) -> String {
    format!("{output}.pads")
}

/// Appends a constant `Pad` of NCHW `input` by `[top, left, bottom, right]` with `value`,
/// writing `output` (its pads and value are the initialisers `{output}.pads`, `.value`).
fn add_pad(g: &mut GraphProto, input: &str, output: &str, [t, l, b, r]: [i64; 4], value: f32) {
    g.node.push(NodeProto {
        op_type: "Pad".into(),
        name: output.into(),
        input: vec![input.into(), pads_name(output), format!("{output}.value")],
        output: vec![output.into()],
        ..Default::default()
    });
    set_initializer(g, int_tensor(&pads_name(output), &[0, 0, t, l, 0, 0, b, r]));
    set_initializer(
        g,
        float_tensor(&format!("{output}.value"), &[], vec![value]),
    );
}

/// Orders the nodes so that every value is produced before it is read (the rewrites append
/// nodes at the end).
fn topological_sort(g: &mut GraphProto) -> Result<()> {
    let mut known: HashSet<String> = g
        .input
        .iter()
        .map(|i| i.name.clone())
        .chain(g.initializer.iter().map(|t| t.name.clone()))
        .chain(std::iter::once(String::new()))
        .collect();
    let mut pending = std::mem::take(&mut g.node);
    while !pending.is_empty() {
        let before = pending.len();
        let mut rest = Vec::new();
        for n in pending {
            if n.input.iter().all(|i| known.contains(i)) {
                known.extend(n.output.iter().cloned());
                g.node.push(n);
            } else {
                rest.push(n);
            }
        }
        if rest.len() == before {
            return Err(err(format!(
                "the graph has a cycle or an unknown input at `{}`",
                rest[0].name
            ))
            .into());
        }
        pending = rest;
    }
    Ok(())
}

/// The `[H, W]` of the graph's NCHW input, when fixed.
fn input_hw(g: &GraphProto) -> Option<[i64; 2]> {
    use onnx_protobuf::tensor_shape_proto::dimension::Value;
    use onnx_protobuf::type_proto;
    let input = g.input.first()?;
    let Some(type_proto::Value::TensorType(t)) = &input.type_.as_ref()?.value else {
        return None;
    };
    let dims = &t.shape.as_ref()?.dim;
    let fixed = |k: usize| match dims.get(k)?.value {
        Some(Value::DimValue(v)) => Some(v),
        _ => None,
    };
    Some([fixed(2)?, fixed(3)?])
}

/// Rewrites each strided, unpadded convolution that reads the graph input, directly or through
/// a constant `Pad` (as [`fold_normalization`] leaves the stem), as `SpaceToDepth(stride)` and
/// a stride-1 convolution (see the module docs). Returns the rewritten Conv nodes, which keep
/// their names and weight names (the weights change shape).
pub fn space_to_depth_stem(model: &mut ModelProto) -> Result<Vec<String>> {
    let g = graph_mut(model)?;
    let Some(input) = g.input.first().map(|i| i.name.clone()) else {
        return Ok(vec![]);
    };
    let Some([h, w]) = input_hw(g) else {
        return Ok(vec![]);
    };
    let mut done = Vec::new();
    for c in 0..g.node.len() {
        let conv = g.node[c].clone();
        if !plain_conv(g, &conv) || conv_pads(&conv)? != [0; 4] {
            continue;
        }
        let strides = attr(&conv, "strides").map_or(vec![1, 1], |a| a.ints.clone());
        let kernel = attr(&conv, "kernel_shape").map(|a| a.ints.clone());
        let (s, k) = match (strides.as_slice(), kernel.as_deref()) {
            (&[s, s2], Some(&[k, k2])) if s == s2 && k == k2 && s > 1 => (s, k),
            _ => continue,
        };
        // the convolution's input: the image, or a Pad of it read by this convolution only
        let pad = g.node.iter().position(|n| {
            n.op_type == "Pad" && n.output[0] == conv.input[0] && n.input[0] == input
        });
        if conv.input[0] != input && pad.is_none() {
            continue;
        }
        let pads = match pad {
            Some(p) => {
                if readers(g, &conv.input[0]).len() != 1
                    || attr(&g.node[p], "mode").is_some_and(|a| a.s != b"constant")
                {
                    continue;
                }
                let (v, _) = int_initializer(g, &g.node[p].input[1])?;
                if v.len() != 8 || v[..2] != [0, 0] || v[4..6] != [0, 0] {
                    continue;
                }
                [v[2], v[3], v[6], v[7]]
            }
            None => [0; 4],
        };
        let (hp, wp) = (h + pads[0] + pads[2], w + pads[1] + pads[3]);
        let k2 = (k + s - 1) / s;
        let (ho, wo) = ((hp - k) / s + 1, (wp - k) / s + 1);
        // the padded side SpaceToDepth needs: s x (outputs - 1 + new kernel), at least the
        // side read now (the extra rows and columns meet only zero taps)
        let (need_h, need_w) = (s * (ho - 1 + k2), s * (wo - 1 + k2));
        if need_h < hp || need_w < wp {
            continue;
        }
        let (wt, dims) = initializer(g, &conv.input[1])?;
        let (su, ku, k2u) = (s as usize, k as usize, k2 as usize);
        let &[o, ci, kh, kw] = dims.as_slice() else {
            return Err(err(format!("`{}` has weights of shape {dims:?}", conv.name)).into());
        };
        if (kh, kw) != (ku, ku) {
            continue;
        }
        let cn = ci * su * su;
        let mut w2 = vec![0.0f32; o * cn * k2u * k2u];
        for oo in 0..o {
            for cc in 0..ci {
                for ky in 0..ku {
                    for kx in 0..ku {
                        let (i, dy, j, dx) = (ky / su, ky % su, kx / su, kx % su);
                        let ch = (dy * su + dx) * ci + cc;
                        w2[((oo * cn + ch) * k2u + i) * k2u + j] =
                            wt[((oo * ci + cc) * ku + ky) * ku + kx];
                    }
                }
            }
        }
        set_initializer(g, float_tensor(&conv.input[1], &[o, cn, k2u, k2u], w2));
        let full = [
            pads[0],
            pads[1],
            pads[2] + need_h - hp,
            pads[3] + need_w - wp,
        ];
        let [t, l, b, r] = full;
        let source = match pad {
            Some(p) => {
                let pads = g.node[p].input[1].clone();
                set_initializer(g, int_tensor(&pads, &[0, 0, t, l, 0, 0, b, r]));
                g.node[p].output[0].clone()
            }
            None if full == [0; 4] => input.clone(),
            None => {
                // the added rows and columns meet only zero taps: any value will do
                let padded = format!("{}.padded", conv.name);
                add_pad(g, &input, &padded, full, 0.0);
                padded
            }
        };
        let s2d = format!("{}.s2d", conv.name);
        g.node.push(NodeProto {
            op_type: "SpaceToDepth".into(),
            name: s2d.clone(),
            input: vec![source],
            output: vec![s2d.clone()],
            attribute: vec![attr_int("blocksize", s)],
            ..Default::default()
        });
        let node = &mut g.node[c];
        node.input[0] = s2d;
        set_attr(node, attr_ints("kernel_shape", &[k2, k2]));
        set_attr(node, attr_ints("strides", &[1, 1]));
        done.push(conv.name);
    }
    topological_sort(g)?;
    Ok(done)
}

/// An INT64 initialiser's values.
fn int_initializer(g: &GraphProto, name: &str) -> Result<(Vec<i64>, Vec<usize>)> {
    let t = g
        .initializer
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| err(format!("no initialiser `{name}`")))?;
    let v = if t.raw_data.is_empty() {
        t.int64_data.clone()
    } else {
        t.raw_data
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
            .collect()
    };
    Ok((v, t.dims.iter().map(|&d| d as usize).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::value_info;

    fn node(
        op: &str,
        name: &str,
        inputs: &[&str],
        attrs: Vec<onnx_protobuf::AttributeProto>,
    ) -> NodeProto {
        NodeProto {
            op_type: op.into(),
            name: name.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![name.into()],
            attribute: attrs,
            ..Default::default()
        }
    }

    /// image (2 channels, 8x8) -> Sub(mean) -> Mul(inv_std) -> Conv 3x3/2, pad 1, weights `w`
    fn normalized_conv(mean: [f32; 2], w: (Vec<usize>, Vec<f32>)) -> ModelProto {
        ModelProto {
            graph: Some(GraphProto {
                node: vec![
                    node("Sub", "sub", &["image", "mean"], vec![]),
                    node("Mul", "norm", &["sub", "inv"], vec![]),
                    node(
                        "Conv",
                        "conv",
                        &["norm", "conv.weight"],
                        vec![
                            attr_ints("kernel_shape", &[3, 3]),
                            attr_ints("strides", &[2, 2]),
                            attr_ints("pads", &[1, 1, 1, 1]),
                        ],
                    ),
                ],
                initializer: vec![
                    float_tensor("mean", &[1, 2, 1, 1], mean.to_vec()),
                    float_tensor("inv", &[1, 2, 1, 1], vec![4.0, 2.0]),
                    float_tensor("conv.weight", &w.0, w.1),
                ],
                input: vec![value_info("image", &[2, 8, 8])],
                output: vec![value_info("conv", &[1, 4, 4])],
                ..Default::default()
            })
            .into(),
            ..Default::default()
        }
    }

    #[test]
    fn folding_moves_the_scale_into_the_weights_and_the_mean_into_bias_and_border() {
        let w: Vec<f32> = (0..18).map(|i| i as f32 / 10.0).collect();
        let mut m = normalized_conv([0.5, 0.5], (vec![1, 2, 3, 3], w.clone()));
        let f = fold_normalization(&mut m).unwrap().unwrap();
        assert_eq!((f.convs, f.pad_value), (vec!["conv".to_string()], 0.5));
        let g = m.graph.as_ref().unwrap();
        let ops: Vec<&str> = g.node.iter().map(|n| n.op_type.as_str()).collect();
        assert_eq!(ops, ["Pad", "Conv"]);
        let (folded, _) = initializer(g, "conv.weight").unwrap();
        let scaled: Vec<f32> = w
            .iter()
            .enumerate()
            .map(|(i, x)| x * if i < 9 { 4.0 } else { 2.0 })
            .collect();
        assert_eq!(folded, scaled);
        let (bias, _) = initializer(g, "conv.bias").unwrap();
        let expected: f32 = -scaled.iter().map(|x| x * 0.5).sum::<f32>();
        assert!((bias[0] - expected).abs() < 1e-5, "{bias:?} {expected}");
        // then space-to-depth: 4 x 2 channels, a 2x2 kernel, stride 1, the pad grown to 10
        assert_eq!(space_to_depth_stem(&mut m).unwrap(), ["conv"]);
        let g = m.graph.as_ref().unwrap();
        let ops: Vec<&str> = g.node.iter().map(|n| n.op_type.as_str()).collect();
        assert_eq!(ops, ["Pad", "SpaceToDepth", "Conv"]);
        assert_eq!(initializer(g, "conv.weight").unwrap().1, [1, 8, 2, 2]);
        let (pads, _) = int_initializer(g, "conv.padded.pads").unwrap();
        assert_eq!(pads, [0, 0, 1, 1, 0, 0, 1, 1]);
    }

    #[test]
    fn unequal_means_are_left_alone_and_malformed_weights_are_errors() {
        let w = (vec![1, 2, 3, 3], vec![0.1; 18]);
        let mut m = normalized_conv([0.5, 0.25], w);
        let before = m.clone();
        assert_eq!(fold_normalization(&mut m).unwrap(), None);
        assert_eq!(m, before);
        let mut bad = normalized_conv([0.5, 0.5], (vec![2, 9], vec![0.1; 18]));
        let e = fold_normalization(&mut bad).unwrap_err().to_string();
        assert!(e.contains("shape [2, 9]"), "{e}");
    }
}
