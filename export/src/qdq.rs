//! INT8 static quantisation in QDQ format: `QuantizeLinear` / `DequantizeLinear` pairs around
//! float operators, the layout ONNX Runtime fuses into integer kernels and every ONNX runtime
//! can execute (in float, if it has no integer kernels).
//!
//! The steps, on a float32 graph from [`crate::onnx::export`]:
//! 1. [`fold_batch_norms`]: each BatchNormalization right after a Conv is folded into its
//!    weights and bias (exact in real arithmetic; quantising the folded weights is what the
//!    integer kernels need).
//! 2. [`plan`]: which Conv and Gemm nodes are quantised (all but those kept in float), which
//!    activations get a quantise/dequantise pair (their inputs, and their outputs unless those
//!    feed a graph output or a Softmax, which stay in float; both inputs and the output of a
//!    residual Add), and which ReLUs disappear into the grid of the output before them (a
//!    range starting at 0 clamps like a ReLU).
//! 3. [`calibration_tensors`] names the tensors whose range calibration must measure
//!    ([`crate::calibrate`]); [`quantize_qdq`] builds the graph from those ranges: weights int8
//!    symmetric per output channel, biases int32, activations `u8` or `s8` with zero points.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::Result;
use onnx_protobuf::{GraphProto, ModelProto, NodeProto, TensorProto};

use crate::int8_parts::{
    activation_tensors, attr, bias_tensors, dequantize_activation, dequantize_node, err, graph_mut,
    initializer, quantize_node, set_initializer, weight_tensors,
};
use crate::onnx::float_tensor;
use crate::quantize::{ActivationType, Affine};

/// How many nodes read each value (graph outputs count as readers too).
fn reader_counts(g: &GraphProto) -> HashMap<String, usize> {
    let mut n: HashMap<String, usize> = HashMap::new();
    for node in &g.node {
        for i in &node.input {
            *n.entry(i.clone()).or_default() += 1;
        }
    }
    for o in &g.output {
        *n.entry(o.name.clone()).or_default() += 1;
    }
    n
}

/// Folds every BatchNormalization whose input is a Conv output read by nothing else into that
/// Conv: `w' = w * a`, `b' = (b - mean) * a + beta` with `a = gamma / sqrt(var + eps)`. The
/// Conv takes over the BatchNormalization's output name. Returns how many were folded.
pub fn fold_batch_norms(model: &mut ModelProto) -> Result<usize> {
    let g = graph_mut(model)?;
    let readers = reader_counts(g);
    let producer: HashMap<String, usize> = g
        .node
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.output.iter().map(move |o| (o.clone(), i)))
        .collect();
    let mut remove = HashSet::new();
    for b in 0..g.node.len() {
        if g.node[b].op_type != "BatchNormalization" {
            continue;
        }
        let bn = g.node[b].clone();
        let Some(&c) = producer.get(&bn.input[0]) else {
            continue;
        };
        let conv = g.node[c].clone();
        let weight_readers = readers.get(&conv.input[1]).copied().unwrap_or(0);
        if conv.op_type != "Conv" || readers[&bn.input[0]] != 1 || weight_readers != 1 {
            continue;
        }
        let eps = attr(&bn, "epsilon").map(|a| a.f).unwrap_or(1e-5);
        let [gamma, beta, mean, var] =
            [1, 2, 3, 4].map(|k| initializer(g, &bn.input[k]).map(|(v, _)| v));
        let (gamma, beta, mean, var) = (gamma?, beta?, mean?, var?);
        let (mut w, dims) = initializer(g, &conv.input[1])?;
        let channels = dims[0];
        let per = w.len() / channels.max(1);
        let a: Vec<f32> = (0..channels)
            .map(|k| gamma[k] / (var[k] + eps).sqrt())
            .collect();
        for (i, x) in w.iter_mut().enumerate() {
            *x *= a[i / per];
        }
        let old_bias = match conv.input.get(2) {
            Some(name) if !name.is_empty() => initializer(g, name)?.0,
            _ => vec![0.0; channels],
        };
        let bias: Vec<f32> = (0..channels)
            .map(|k| (old_bias[k] - mean[k]) * a[k] + beta[k])
            .collect();
        let bias_name = match conv.input.get(2) {
            Some(name) if !name.is_empty() => name.clone(),
            _ => format!("{}.bias", conv.input[1].trim_end_matches(".weight")),
        };
        set_initializer(g, float_tensor(&conv.input[1], &dims, w));
        set_initializer(g, float_tensor(&bias_name, &[channels], bias));
        let node = &mut g.node[c];
        node.input.truncate(2);
        node.input.push(bias_name);
        node.output = bn.output.clone();
        remove.insert(b);
    }
    let folded = remove.len();
    let mut i = 0;
    g.node.retain(|_| {
        i += 1;
        !remove.contains(&(i - 1))
    });
    let used: HashSet<String> = g.node.iter().flat_map(|n| n.input.clone()).collect();
    g.initializer.retain(|t| used.contains(&t.name));
    Ok(folded)
}

/// What [`quantize_qdq`] will do to a graph (after [`fold_batch_norms`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Conv and Gemm nodes (by name) computed from int8 weights and quantised inputs.
    pub quantized: Vec<String>,
    /// ReLU nodes removed because the quantised output before them clamps at 0 (by name).
    pub fused_relus: Vec<String>,
    /// Quantised activations: (tensor, whether every reader reads it quantised). Inputs of
    /// quantised nodes that other nodes also read are quantised for those nodes only.
    pub activations: Vec<(String, bool)>,
    /// Activations quantised on another's grid: (a MaxPool's output, its input). The largest
    /// of some values lies in their range, so the grid is exact for it, and equal parameters on
    /// both sides are what lets ONNX Runtime drop the pair and pool the integers themselves.
    pub pooled: Vec<(String, String)>,
}

pub(crate) fn weight_axis(node: &NodeProto) -> usize {
    match node.op_type.as_str() {
        "Gemm" if attr(node, "transB").is_none_or(|a| a.i == 0) => 1,
        _ => 0,
    }
}

/// Decides what to quantise; `float_nodes` names Conv, Gemm or residual Add nodes to leave in
/// float. The graph's ReLUs are fused into the node before them where the plan allows it (the
/// graph is changed accordingly), so call this on a copy and hand the copy to [`quantize_qdq`].
pub fn plan(model: &mut ModelProto, float_nodes: &HashSet<String>) -> Result<Plan> {
    let g = graph_mut(model)?;
    let outputs: HashSet<String> = g.output.iter().map(|o| o.name.clone()).collect();
    let inits: HashSet<String> = g.initializer.iter().map(|t| t.name.clone()).collect();
    let readers = |g: &GraphProto, v: &str| -> Vec<usize> {
        (0..g.node.len())
            .filter(|&i| g.node[i].input.iter().any(|x| x == v))
            .collect()
    };
    let float_reader = |g: &GraphProto, v: &str| {
        outputs.contains(v)
            || readers(g, v)
                .iter()
                .any(|&i| matches!(g.node[i].op_type.as_str(), "Softmax" | "Identity"))
    };
    let mut quantized = Vec::new();
    let mut fused_relus = Vec::new();
    let mut full: Vec<String> = Vec::new();
    let mut inputs: Vec<String> = Vec::new();
    let mut add_inputs: Vec<String> = Vec::new();
    let mut pooled: Vec<(String, String)> = Vec::new();
    let mut remove = Vec::new();
    // The output of node `k`, quantised for every reader unless a float operator reads it; a
    // lone ReLU after it is fused (its output becomes node `k`'s).
    let quantize_output = |g: &mut GraphProto,
                           k: usize,
                           full: &mut Vec<String>,
                           fused_relus: &mut Vec<String>,
                           remove: &mut Vec<usize>| {
        let out = g.node[k].output[0].clone();
        let r = readers(g, &out);
        if r.len() == 1 && g.node[r[0]].op_type == "Relu" && !outputs.contains(&out) {
            let relu_out = g.node[r[0]].output[0].clone();
            if !float_reader(g, &relu_out) {
                fused_relus.push(g.node[r[0]].name.clone());
                remove.push(r[0]);
                g.node[k].output[0] = relu_out.clone();
                full.push(relu_out);
                return;
            }
        }
        if !float_reader(g, &out) {
            full.push(out);
        }
    };
    for k in 0..g.node.len() {
        let node = g.node[k].clone();
        if float_nodes.contains(&node.name) {
            continue;
        }
        // A max pool of an integer activation pools on its grid (see `Plan::pooled`).
        if node.op_type == "MaxPool" && full.contains(&node.input[0]) {
            if !float_reader(g, &node.output[0]) {
                pooled.push((node.output[0].clone(), node.input[0].clone()));
                full.push(node.output[0].clone());
            }
            continue;
        }
        // A residual Add of two activations gets pairs on both inputs and its output, the
        // pattern ONNX Runtime runs as QLinearAdd; in float, the integer convolutions around
        // it would be cut off by float Adds and ReLUs and the layout transposes they force.
        // Not after a float MaxPool: ONNX Runtime would move the pair above the pooling and
        // run it on u8 without its blocked float kernel (measured: MaxPool 30% of an INT8
        // ResNet whose stem was float).
        let float_pool = |v: &String| {
            g.node.iter().any(|n| {
                n.op_type == "MaxPool" && n.output.contains(v) && !full.contains(&n.output[0])
            })
        };
        let residual = node.op_type == "Add"
            && node.input.len() == 2
            && node
                .input
                .iter()
                .all(|v| !inits.contains(v) && !float_reader(g, v) && !float_pool(v));
        if residual {
            add_inputs.extend(node.input.iter().cloned());
            quantize_output(g, k, &mut full, &mut fused_relus, &mut remove);
            continue;
        }
        let weighted = matches!(node.op_type.as_str(), "Conv" | "Gemm")
            && node.input.len() >= 2
            && inits.contains(&node.input[1])
            && node
                .input
                .get(2)
                .is_none_or(|b| b.is_empty() || inits.contains(b))
            && attr(&node, "transA").is_none_or(|a| a.i == 0);
        if !weighted {
            continue;
        }
        quantized.push(node.name.clone());
        if !inputs.contains(&node.input[0]) {
            inputs.push(node.input[0].clone());
        }
        quantize_output(g, k, &mut full, &mut fused_relus, &mut remove);
    }
    let mut i = 0;
    g.node.retain(|_| {
        i += 1;
        !remove.contains(&(i - 1))
    });
    for t in add_inputs {
        if !full.contains(&t) {
            full.push(t);
        }
    }
    let mut activations: Vec<(String, bool)> = full.iter().map(|t| (t.clone(), true)).collect();
    for t in inputs {
        if !full.contains(&t) {
            activations.push((t, false));
        }
    }
    Ok(Plan {
        quantized,
        fused_relus,
        activations,
        pooled,
    })
}

/// The tensors whose ranges calibration must measure for `plan` (pooled outputs take their
/// input's).
pub fn calibration_tensors(plan: &Plan) -> Vec<String> {
    plan.activations
        .iter()
        .map(|(t, _)| t.clone())
        .filter(|t| !plan.pooled.iter().any(|(out, _)| out == t))
        .collect()
}

/// The quantisation parameters of each planned activation, from calibrated `ranges`.
pub fn activation_params(
    plan: &Plan,
    ranges: &BTreeMap<String, (f32, f32)>,
    ty: ActivationType,
) -> Result<HashMap<String, Affine>> {
    plan.activations
        .iter()
        .map(|(t, _)| {
            let source = plan
                .pooled
                .iter()
                .find(|(out, _)| out == t)
                .map_or(t, |(_, input)| input);
            let &(lo, hi) = ranges
                .get(source)
                .ok_or_else(|| err(format!("no calibrated range for `{source}`")))?;
            Ok((t.clone(), Affine::from_range(lo, hi, ty)?))
        })
        .collect()
}

/// Builds the QDQ graph of `model` (already folded and planned by [`plan`]) from calibrated
/// activation `ranges`.
pub fn quantize_qdq(
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
    let full: HashMap<&str, bool> = plan
        .activations
        .iter()
        .map(|(t, f)| (t.as_str(), *f))
        .collect();
    let mut out: Vec<NodeProto> = Vec::with_capacity(nodes.len() * 3);
    let mut inits: Vec<TensorProto> = Vec::new();

    let qdq = |t: &str, a: &Affine, out: &mut Vec<NodeProto>, inits: &mut Vec<TensorProto>| {
        inits.extend(activation_tensors(t, a));
        out.push(quantize_node(t));
        out.push(dequantize_activation(t, &format!("{t}.dq")));
    };
    // activations that are graph inputs are quantised first
    for input in &g.input {
        if let Some(a) = params.get(&input.name) {
            qdq(&input.name, a, &mut out, &mut inits);
        }
    }
    for mut node in nodes {
        let is_q = quantized.contains(&node.name);
        for (i, v) in node.input.iter_mut().enumerate() {
            let reads_q = match full.get(v.as_str()) {
                Some(true) => true,
                Some(false) => is_q && i == 0,
                None => false,
            };
            if reads_q {
                *v = format!("{v}.dq");
            }
        }
        if is_q {
            let x = node.input[0].trim_end_matches(".dq").to_string();
            let wname = node.input[1].clone();
            let axis = weight_axis(&node);
            let (scales, tensors) = weight_tensors(g, &wname, axis, false)?;
            inits.extend(tensors);
            out.push(dequantize_node(&wname, Some(axis as i64)));
            node.input[1] = format!("{wname}.dq");
            if let Some(bname) = node.input.get(2).filter(|b| !b.is_empty()).cloned() {
                inits.extend(bias_tensors(g, &bname, params[&x].scale, &scales)?);
                out.push(dequantize_node(&bname, Some(0)));
                node.input[2] = format!("{bname}.dq");
            }
        }
        let produced = node.output.clone();
        out.push(node);
        for t in produced {
            if let Some(a) = params.get(&t) {
                qdq(&t, a, &mut out, &mut inits);
            }
        }
    }
    for t in inits {
        set_initializer(g, t);
    }
    g.node = out;
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::{attr_int, value_info};
    use onnx_protobuf::tensor_proto::DataType;
    use onnx_protobuf::AttributeProto;

    fn node(op: &str, name: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> NodeProto {
        NodeProto {
            op_type: op.into(),
            name: name.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![name.into()],
            attribute: attrs,
            ..Default::default()
        }
    }

    /// x -> conv (2 channels) -> bn -> relu -> gemm -> softmax
    fn tiny() -> ModelProto {
        let f = float_tensor;
        ModelProto {
            graph: Some(GraphProto {
                node: vec![
                    node("Conv", "conv", &["x", "conv.weight"], vec![]),
                    node(
                        "BatchNormalization",
                        "bn",
                        &["conv", "bn.weight", "bn.bias", "bn.mean", "bn.var"],
                        vec![],
                    ),
                    node("Relu", "act", &["bn"], vec![]),
                    node("Flatten", "flat", &["act"], vec![]),
                    node(
                        "Gemm",
                        "fc",
                        &["flat", "fc.weight", "fc.bias"],
                        vec![attr_int("transB", 1)],
                    ),
                    node("Softmax", "p", &["fc"], vec![]),
                ],
                initializer: vec![
                    f("conv.weight", &[2, 1, 1, 1], vec![0.5, -2.0]),
                    f("bn.weight", &[2], vec![2.0, 1.0]),
                    f("bn.bias", &[2], vec![0.1, 0.0]),
                    f("bn.mean", &[2], vec![1.0, 0.0]),
                    f("bn.var", &[2], vec![3.0, 1.0]),
                    f("fc.weight", &[3, 2], vec![1.0, 0.0, 0.0, 1.0, 0.5, 0.5]),
                    f("fc.bias", &[3], vec![0.0, 0.1, 0.2]),
                ],
                input: vec![value_info("x", &[1, 1, 1])],
                output: vec![value_info("p", &[3])],
                ..Default::default()
            })
            .into(),
            ..Default::default()
        }
    }

    #[test]
    fn batch_norm_folds_into_the_conv() {
        let mut m = tiny();
        assert_eq!(fold_batch_norms(&mut m).unwrap(), 1);
        let g = m.graph.as_ref().unwrap();
        let ops: Vec<&str> = g.node.iter().map(|n| n.op_type.as_str()).collect();
        assert_eq!(ops, ["Conv", "Relu", "Flatten", "Gemm", "Softmax"]);
        assert_eq!(g.node[0].output, ["bn"]);
        assert_eq!(g.node[0].input, ["x", "conv.weight", "conv.bias"]);
        let a0 = 2.0 / (3.0f32 + 1e-5).sqrt();
        let a1 = 1.0 / (1.0f32 + 1e-5).sqrt();
        assert_eq!(
            initializer(g, "conv.weight").unwrap().0,
            [0.5 * a0, -2.0 * a1]
        );
        assert_eq!(
            initializer(g, "conv.bias").unwrap().0,
            [(0.0 - 1.0) * a0 + 0.1, 0.0 * a1 + 0.0]
        );
        assert!(g.initializer.iter().all(|t| !t.name.starts_with("bn.")));
    }

    #[test]
    fn the_plan_keeps_softmax_inputs_in_float_and_fuses_relu() {
        let mut m = tiny();
        fold_batch_norms(&mut m).unwrap();
        let p = plan(&mut m, &HashSet::new()).unwrap();
        assert_eq!(p.quantized, ["conv", "fc"]);
        assert_eq!(p.fused_relus, ["act"]);
        // the conv output (now named after the relu) is quantised for every reader; the Gemm's
        // output feeds Softmax and stays float; x and flat are quantised inputs
        assert_eq!(
            p.activations,
            [
                ("act".to_string(), true),
                ("x".to_string(), false),
                ("flat".to_string(), false)
            ]
        );
        assert_eq!(calibration_tensors(&p), ["act", "x", "flat"]);
        let mut m2 = tiny();
        fold_batch_norms(&mut m2).unwrap();
        let kept: HashSet<String> = ["fc".to_string()].into();
        let p = plan(&mut m2, &kept).unwrap();
        assert_eq!(p.quantized, ["conv"]);
    }

    #[test]
    fn a_max_pool_of_an_integer_activation_pools_on_its_grid() {
        // tiny() with a max pool between the ReLU and the flatten
        let mut m = tiny();
        let g = graph_mut(&mut m).unwrap();
        g.node.insert(3, node("MaxPool", "pool", &["act"], vec![]));
        g.node[4].input[0] = "pool".into();
        fold_batch_norms(&mut m).unwrap();
        let p = plan(&mut m, &HashSet::new()).unwrap();
        assert_eq!(p.pooled, [("pool".to_string(), "act".to_string())]);
        assert!(p.activations.contains(&("pool".to_string(), true)));
        // the pool's range is its input's, not calibrated on its own
        assert!(!calibration_tensors(&p).contains(&"pool".to_string()));
        let ranges: BTreeMap<String, (f32, f32)> = [
            ("x".to_string(), (-1.0, 3.0)),
            ("act".to_string(), (0.0, 4.0)),
            ("flat".to_string(), (0.0, 2.0)),
        ]
        .into();
        let params = activation_params(&p, &ranges, ActivationType::U8).unwrap();
        assert_eq!(params["pool"], params["act"]);
        // a pool of a float activation (the stem kept in float) stays float
        let mut m = tiny();
        let g = graph_mut(&mut m).unwrap();
        g.node.insert(3, node("MaxPool", "pool", &["act"], vec![]));
        g.node[4].input[0] = "pool".into();
        fold_batch_norms(&mut m).unwrap();
        let kept: HashSet<String> = ["conv".to_string()].into();
        assert!(plan(&mut m, &kept).unwrap().pooled.is_empty());
    }

    #[test]
    fn qdq_graph_has_int8_weights_int32_biases_and_pairs_on_activations() {
        let mut m = tiny();
        fold_batch_norms(&mut m).unwrap();
        let p = plan(&mut m, &HashSet::new()).unwrap();
        let ranges: BTreeMap<String, (f32, f32)> = [
            ("x".to_string(), (-1.0, 3.0)),
            ("act".to_string(), (0.0, 4.0)),
            ("flat".to_string(), (0.0, 4.0)),
        ]
        .into();
        let q = quantize_qdq(&m, &p, &ranges, ActivationType::U8).unwrap();
        let g = q.graph.as_ref().unwrap();
        let ops: Vec<(&str, &str)> = g
            .node
            .iter()
            .map(|n| (n.op_type.as_str(), n.name.as_str()))
            .collect();
        assert_eq!(
            ops,
            [
                ("QuantizeLinear", "x.quantize"),
                ("DequantizeLinear", "x.dequantize"),
                ("DequantizeLinear", "conv.weight.dequantize"),
                ("DequantizeLinear", "conv.bias.dequantize"),
                ("Conv", "conv"),
                ("QuantizeLinear", "act.quantize"),
                ("DequantizeLinear", "act.dequantize"),
                ("Flatten", "flat"),
                ("QuantizeLinear", "flat.quantize"),
                ("DequantizeLinear", "flat.dequantize"),
                ("DequantizeLinear", "fc.weight.dequantize"),
                ("DequantizeLinear", "fc.bias.dequantize"),
                ("Gemm", "fc"),
                ("Softmax", "p"),
            ]
        );
        let conv = g.node.iter().find(|n| n.name == "conv").unwrap();
        assert_eq!(conv.input, ["x.dq", "conv.weight.dq", "conv.bias.dq"]);
        assert_eq!(conv.output, ["act"]);
        let t = |name: &str| g.initializer.iter().find(|t| t.name == name).unwrap();
        assert_eq!(t("conv.weight").data_type, DataType::INT8 as i32);
        assert_eq!(t("conv.weight").raw_data, [127u8, (-127i8) as u8]);
        assert_eq!(t("fc.bias").data_type, DataType::INT32 as i32);
        assert_eq!(t("x.zero_point").raw_data, [64u8]); // round(255 / 4) = round(63.75)
        assert_eq!(t("act.zero_point").raw_data, [0u8]);
        // the Gemm bias scale is the input scale times each weight scale
        let (s, _) = initializer(g, "fc.bias.scale").unwrap();
        let sx = 4.0f32 / 255.0;
        assert_eq!(
            s,
            [sx * (1.0 / 127.0), sx * (1.0 / 127.0), sx * (0.5 / 127.0)]
        );
        let e = quantize_qdq(&m, &p, &BTreeMap::new(), ActivationType::U8).unwrap_err();
        assert!(
            e.to_string().contains("no calibrated range for `act`"),
            "{e}"
        );
    }

    /// x -> conv a -> relu -> conv b; add(b, x) -> relu -> gemm: a residual block
    fn residual() -> ModelProto {
        let f = float_tensor;
        ModelProto {
            graph: Some(GraphProto {
                node: vec![
                    node("Conv", "a", &["x", "a.weight"], vec![]),
                    node("Relu", "a_act", &["a"], vec![]),
                    node("Conv", "b", &["a_act", "b.weight"], vec![]),
                    node("Add", "add", &["b", "x"], vec![]),
                    node("Relu", "act", &["add"], vec![]),
                    node("Flatten", "flat", &["act"], vec![]),
                    node(
                        "Gemm",
                        "fc",
                        &["flat", "fc.weight"],
                        vec![attr_int("transB", 1)],
                    ),
                ],
                initializer: vec![
                    f("a.weight", &[1, 1, 1, 1], vec![0.5]),
                    f("b.weight", &[1, 1, 1, 1], vec![-2.0]),
                    f("fc.weight", &[2, 1], vec![1.0, -1.0]),
                ],
                input: vec![value_info("x", &[1, 1, 1])],
                output: vec![value_info("fc", &[2])],
                ..Default::default()
            })
            .into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_residual_add_is_quantised_on_both_inputs_and_its_relu_fused() {
        let mut m = residual();
        let p = plan(&mut m, &HashSet::new()).unwrap();
        assert_eq!(p.quantized, ["a", "b", "fc"]);
        assert_eq!(p.fused_relus, ["a_act", "act"]);
        // x feeds conv a and the Add: quantised for both readers now
        assert_eq!(
            p.activations,
            [
                ("a_act".to_string(), true),
                ("b".to_string(), true),
                ("act".to_string(), true),
                ("x".to_string(), true),
                ("flat".to_string(), false)
            ]
        );
        let ranges: BTreeMap<String, (f32, f32)> = ["x", "a_act", "b", "act", "flat"]
            .iter()
            .map(|t| (t.to_string(), (0.0, 2.0)))
            .collect();
        let q = quantize_qdq(&m, &p, &ranges, ActivationType::U8).unwrap();
        let g = q.graph.as_ref().unwrap();
        let add = g.node.iter().find(|n| n.name == "add").unwrap();
        assert_eq!(add.input, ["b.dq", "x.dq"]);
        assert_eq!(add.output, ["act"]);
        assert!(g.node.iter().all(|n| n.op_type != "Relu"));
        // QOperator: the Add stays a float operator, so whatever reads its output in float
        // must read it through the grid, which is where the fused ReLU clamps
        let q = crate::qoperator::quantize_qoperator(&m, &p, &ranges, ActivationType::U8).unwrap();
        let g = q.graph.as_ref().unwrap();
        let flat = g.node.iter().find(|n| n.name == "flat").unwrap();
        assert_eq!(flat.input, ["act.dq"]);
        assert!(g.node.iter().any(|n| n.op_type == "DequantizeLinear"
            && n.input[0] == "act.q"
            && n.output == ["act.dq"]));
        // kept in float by name: no pairs on the Add's own account, its ReLU stays
        let mut m = residual();
        let p = plan(&mut m, &["add".to_string()].into()).unwrap();
        assert_eq!(p.fused_relus, ["a_act"]);
        assert!(p.activations.contains(&("x".to_string(), false)));
        // after a MaxPool the Add stays in float, so the pooling keeps a float consumer
        let mut m = residual();
        let g = m.graph.as_mut().unwrap();
        g.node.insert(0, node("MaxPool", "pool", &["x"], vec![]));
        for n in g.node.iter_mut().skip(1) {
            for v in n.input.iter_mut().filter(|v| *v == "x") {
                *v = "pool".into();
            }
        }
        let p = plan(&mut m, &HashSet::new()).unwrap();
        assert_eq!(p.fused_relus, ["a_act"]);
        assert!(p.activations.contains(&("pool".to_string(), false)));
    }
}
