//! INT8 static quantisation in QOperator format: quantised tensors flow between integer
//! operators instead of QuantizeLinear/DequantizeLinear pairs.
//!
//! From the same folded graph, [`Plan`] and calibrated ranges as the QDQ variant
//! ([`crate::qdq`]), so both formats compute the same integers:
//! * a Conv whose output is quantised becomes `QLinearConv` (int8 per-channel weights, int32
//!   bias, activations `u8`/`s8`), its ReLU, if any, being the output grid's floor;
//! * a Gemm (classifier and VAE heads, whose outputs stay float) becomes `MatMulInteger` on the
//!   quantised input and the transposed int8 weights, then a float rescale by
//!   `input scale x weight scale` per column and the float bias;
//! * a planned Conv whose output stays float runs as a float Conv on dequantised inputs;
//! * every other operator runs in float: a quantised tensor that a float operator reads is
//!   dequantised under its original name, and a float tensor that a quantised operator reads is
//!   quantised into `{name}.q`.
//!
//! tract runs QLinearConv and MatMulInteger with integer kernels (docs/architecture.md), where the QDQ
//! layout only simulates quantisation in float.

use std::collections::{BTreeMap, HashSet};

use crate::Result;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::{ModelProto, NodeProto};

use crate::int8_parts::{
    activation_tensors, bias_tensors, dequantize_activation, dequantize_node, graph_mut,
    quantize_node, set_initializer, weight_tensors,
};
use crate::onnx::{attr_int, float_tensor};
use crate::qdq::{activation_params, weight_axis, Plan};
use crate::quantize::ActivationType;

fn op(op_type: &str, name: &str, inputs: Vec<String>, output: &str) -> NodeProto {
    NodeProto {
        op_type: op_type.into(),
        name: name.into(),
        input: inputs,
        output: vec![output.into()],
        ..Default::default()
    }
}

/// Builds the QOperator graph of `model` (folded and planned by [`crate::qdq::plan`]) from
/// calibrated activation `ranges`.
pub fn quantize_qoperator(
    model: &ModelProto,
    plan: &Plan,
    ranges: &BTreeMap<String, (f32, f32)>,
    ty: ActivationType,
) -> Result<ModelProto> {
    let params = activation_params(plan, ranges, ty)?;
    let mut model = model.clone();
    let g = graph_mut(&mut model)?;
    let nodes = std::mem::take(&mut g.node);
    let quantized: HashSet<&String> = plan.quantized.iter().collect();
    let full: HashSet<&str> = plan
        .activations
        .iter()
        .filter(|(_, f)| *f)
        .map(|(t, _)| t.as_str())
        .collect();
    // a planned Conv becomes QLinearConv when its output is quantised
    let qlinear = |n: &NodeProto| {
        quantized.contains(&n.name) && n.op_type == "Conv" && full.contains(n.output[0].as_str())
    };
    let integer_reader =
        |n: &NodeProto| qlinear(n) || (quantized.contains(&n.name) && n.op_type == "Gemm");
    // quantised tensors some float operator (or the graph's output) reads in float
    let mut float_read: HashSet<String> = g.output.iter().map(|o| o.name.clone()).collect();
    for n in &nodes {
        for (i, v) in n.input.iter().enumerate() {
            if !(integer_reader(n) && i == 0) {
                float_read.insert(v.clone());
            }
        }
    }
    let mut out: Vec<NodeProto> = Vec::with_capacity(nodes.len() * 2);
    let mut dequantized: HashSet<String> = HashSet::new();
    let mut inits = Vec::new();
    let quantize_after = |t: &str, out: &mut Vec<NodeProto>, inits: &mut Vec<_>| {
        if let Some(a) = params.get(t) {
            inits.extend(activation_tensors(t, a));
            out.push(quantize_node(t));
        }
    };
    for input in &g.input {
        quantize_after(&input.name, &mut out, &mut inits);
    }
    for node in nodes {
        let name = node.name.clone();
        let y = node.output[0].clone();
        if qlinear(&node) {
            let x = node.input[0].clone();
            let wname = node.input[1].clone();
            let (scales, tensors) = weight_tensors(g, &wname, 0, false)?;
            inits.extend(tensors);
            let mut inputs = vec![
                format!("{x}.q"),
                format!("{x}.scale"),
                format!("{x}.zero_point"),
                wname.clone(),
                format!("{wname}.scale"),
                format!("{wname}.zero_point"),
            ];
            inits.extend(activation_tensors(&y, &params[&y]));
            inputs.extend([format!("{y}.scale"), format!("{y}.zero_point")]);
            if let Some(b) = node.input.get(2).filter(|b| !b.is_empty()) {
                inits.extend(bias_tensors(g, b, params[&x].scale, &scales)?);
                inputs.push(b.clone());
            }
            let mut q = op("QLinearConv", &name, inputs, &format!("{y}.q"));
            q.attribute = node.attribute.clone();
            out.push(q);
            if float_read.contains(&y) {
                out.push(dequantize_activation(&y, &y));
            }
            continue;
        }
        if quantized.contains(&name) && node.op_type == "Gemm" {
            let x = node.input[0].clone();
            let wname = node.input[1].clone();
            let transposed = weight_axis(&node) == 0;
            let (scales, tensors) = weight_tensors(g, &wname, weight_axis(&node), transposed)?;
            inits.extend(tensors);
            let sx = params[&x].scale;
            let rescale: Vec<f32> = scales.iter().map(|s| sx * s).collect();
            inits.push(float_tensor(
                &format!("{name}.rescale"),
                &[rescale.len()],
                rescale,
            ));
            out.push(op(
                "MatMulInteger",
                &format!("{name}.matmul"),
                vec![
                    format!("{x}.q"),
                    wname.clone(),
                    format!("{x}.zero_point"),
                    format!("{wname}.zero_point"),
                ],
                &format!("{name}.int32"),
            ));
            let mut cast = op(
                "Cast",
                &format!("{name}.cast"),
                vec![format!("{name}.int32")],
                &format!("{name}.acc"),
            );
            cast.attribute = vec![attr_int("to", DataType::FLOAT as i64)];
            out.push(cast);
            let has_bias = node.input.get(2).is_some_and(|b| !b.is_empty());
            let scaled = if has_bias {
                format!("{name}.scaled")
            } else {
                y.clone()
            };
            out.push(op(
                "Mul",
                &format!("{name}.rescale"),
                vec![format!("{name}.acc"), format!("{name}.rescale")],
                &scaled,
            ));
            if has_bias {
                out.push(op(
                    "Add",
                    &format!("{name}.bias"),
                    vec![scaled, node.input[2].clone()],
                    &y,
                ));
            }
            quantize_after(&y, &mut out, &mut inits);
            continue;
        }
        let mut node = node;
        if quantized.contains(&name) {
            // a planned Conv whose output stays float: a float Conv on the dequantised input,
            // weights and bias, exactly as in the QDQ graph
            let x = node.input[0].clone();
            if dequantized.insert(x.clone()) {
                out.push(dequantize_activation(&x, &format!("{x}.dq")));
            }
            node.input[0] = format!("{x}.dq");
            let wname = node.input[1].clone();
            let (scales, tensors) = weight_tensors(g, &wname, 0, false)?;
            inits.extend(tensors);
            out.push(dequantize_node(&wname, Some(0)));
            node.input[1] = format!("{wname}.dq");
            if let Some(b) = node.input.get(2).filter(|b| !b.is_empty()).cloned() {
                inits.extend(bias_tensors(g, &b, params[&x].scale, &scales)?);
                out.push(dequantize_node(&b, Some(0)));
                node.input[2] = format!("{b}.dq");
            }
        }
        // float readers of a fully quantised activation read it dequantised, as in the QDQ
        // graph: a ReLU fused into the grid (after a residual Add) exists only there
        for v in node.input.iter_mut() {
            if full.contains(v.as_str()) && dequantized.contains(v.as_str()) {
                *v = format!("{v}.dq");
            }
        }
        let produced = node.output.clone();
        out.push(node);
        for t in produced {
            quantize_after(&t, &mut out, &mut inits);
            if full.contains(t.as_str()) && float_read.contains(&t) && dequantized.insert(t.clone())
            {
                out.push(dequantize_activation(&t, &format!("{t}.dq")));
            }
        }
    }
    for t in inits {
        set_initializer(g, t);
    }
    g.node = out;
    Ok(model)
}
