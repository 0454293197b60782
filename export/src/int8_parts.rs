//! The ONNX pieces both INT8 layouts are built from ([`crate::qdq`] and
//! [`crate::qoperator`]): initialiser access, integer tensors, and the quantise/dequantise
//! nodes and tensors of weights, biases and activations under one naming scheme (`{t}.q`,
//! `{t}.scale`, `{t}.zero_point`, `{t}.dq`).

use crate::Result;
use deepgalaxy_core::Error;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::{AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto};

use crate::import::floats;
use crate::onnx::{attr_int, float_tensor};
use crate::quantize::{quantize_bias, quantize_weights, Affine};

/// A quantisation error.
pub(crate) fn err(what: impl Into<String>) -> Error {
    Error::setting("quantisation", what)
}

/// The model's graph, to edit.
pub(crate) fn graph_mut(model: &mut ModelProto) -> Result<&mut GraphProto> {
    model
        .graph
        .as_mut()
        .ok_or_else(|| err("the model has no graph"))
        .map_err(Into::into)
}

/// The float values and shape of initialiser `name`.
pub(crate) fn initializer(g: &GraphProto, name: &str) -> Result<(Vec<f32>, Vec<usize>)> {
    let t = g
        .initializer
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| err(format!("`{name}` is not an initialiser")))?;
    let v = floats(t)
        .map_err(|what| err(format!("initialiser `{name}`: {what}")))?
        .ok_or_else(|| err(format!("initialiser `{name}` is not float")))?;
    Ok((v, t.dims.iter().map(|&d| d.max(0) as usize).collect()))
}

/// Replaces the initialiser of `t`'s name by `t`, or adds it.
pub(crate) fn set_initializer(g: &mut GraphProto, t: TensorProto) {
    match g.initializer.iter_mut().find(|x| x.name == t.name) {
        Some(x) => *x = t,
        None => g.initializer.push(t),
    }
}

/// The attribute `name` of `node`.
pub(crate) fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

/// A tensor of type `ty` holding little-endian `raw` bytes.
fn typed_tensor(name: &str, dims: &[usize], ty: DataType, raw: Vec<u8>) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: ty as i32,
        raw_data: raw,
        ..Default::default()
    }
}

/// An integer tensor of `ty` (INT8, UINT8 or INT32) holding `values`.
pub(crate) fn int_values(name: &str, dims: &[usize], ty: DataType, values: &[i32]) -> TensorProto {
    let raw = match ty {
        DataType::INT32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        DataType::INT8 => values.iter().map(|&v| v as i8 as u8).collect(),
        _ => values.iter().map(|&v| v as u8).collect(),
    };
    typed_tensor(name, dims, ty, raw)
}

/// A QuantizeLinear or DequantizeLinear node (`op`) of `[x, scale, zero_point]`, per channel
/// along `axis` when given.
pub(crate) fn qdq_node(
    op: &str,
    name: &str,
    inputs: [&str; 3],
    output: &str,
    axis: Option<i64>,
) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: name.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute: axis.map(|a| attr_int("axis", a)).into_iter().collect(),
        ..Default::default()
    }
}

/// A `DequantizeLinear` of activation `t` (`{t}.q` with `{t}.scale`, `{t}.zero_point`) into
/// `output`.
pub(crate) fn dequantize_activation(t: &str, output: &str) -> NodeProto {
    qdq_node(
        "DequantizeLinear",
        &format!("{t}.dequantize"),
        [
            &format!("{t}.q"),
            &format!("{t}.scale"),
            &format!("{t}.zero_point"),
        ],
        output,
        None,
    )
}

/// The scalar `{t}.scale` and `{t}.zero_point` initialisers of activation `t`.
pub(crate) fn activation_tensors(t: &str, a: &Affine) -> [TensorProto; 2] {
    [
        float_tensor(&format!("{t}.scale"), &[], vec![a.scale]),
        int_values(
            &format!("{t}.zero_point"),
            &[],
            a.ty.data_type(),
            &[a.zero_point],
        ),
    ]
}

/// `QuantizeLinear` of activation `t` into `{t}.q`.
pub(crate) fn quantize_node(t: &str) -> NodeProto {
    qdq_node(
        "QuantizeLinear",
        &format!("{t}.quantize"),
        [t, &format!("{t}.scale"), &format!("{t}.zero_point")],
        &format!("{t}.q"),
        None,
    )
}

/// A `DequantizeLinear` of initialiser `t` (with `{t}.scale`, `{t}.zero_point`) into `{t}.dq`.
pub(crate) fn dequantize_node(t: &str, axis: Option<i64>) -> NodeProto {
    qdq_node(
        "DequantizeLinear",
        &format!("{t}.dequantize"),
        [t, &format!("{t}.scale"), &format!("{t}.zero_point")],
        &format!("{t}.dq"),
        axis,
    )
}

/// The int8 initialisers of weight `wname`, symmetric per channel along `axis`: values (under
/// the weight's own name; transposed from `[N, K]` to `[K, N]` when `transpose`, for MatMul),
/// `{w}.scale` and `{w}.zero_point`. Returns the per-channel scales too.
pub(crate) fn weight_tensors(
    g: &GraphProto,
    wname: &str,
    axis: usize,
    transpose: bool,
) -> Result<(Vec<f32>, Vec<TensorProto>)> {
    let (w, dims) = initializer(g, wname)?;
    let q = quantize_weights(&w, &dims, axis)?;
    let c = q.scales.len();
    let (values, dims): (Vec<i32>, Vec<usize>) = if transpose && dims.len() == 2 {
        let (n, k) = (dims[0], dims[1]);
        let t = (0..k * n).map(|i| q.values[(i % n) * k + i / n] as i32);
        (t.collect(), vec![k, n])
    } else {
        (q.values.iter().map(|&v| v as i32).collect(), dims)
    };
    let tensors = vec![
        int_values(wname, &dims, DataType::INT8, &values),
        float_tensor(&format!("{wname}.scale"), &[c], q.scales.clone()),
        int_values(
            &format!("{wname}.zero_point"),
            &[c],
            DataType::INT8,
            &vec![0; c],
        ),
    ];
    Ok((q.scales, tensors))
}

/// The int32 initialisers of bias `bname` for an input of scale `input_scale` and weights of
/// per-channel `scales`: values, `{b}.scale` and `{b}.zero_point`.
pub(crate) fn bias_tensors(
    g: &GraphProto,
    bname: &str,
    input_scale: f32,
    scales: &[f32],
) -> Result<Vec<TensorProto>> {
    let (b, _) = initializer(g, bname)?;
    let c = scales.len();
    let (qb, sb) = quantize_bias(&b, input_scale, scales);
    Ok(vec![
        int_values(bname, &[c], DataType::INT32, &qb),
        float_tensor(&format!("{bname}.scale"), &[c], sb),
        int_values(
            &format!("{bname}.zero_point"),
            &[c],
            DataType::INT32,
            &vec![0; c],
        ),
    ])
}
