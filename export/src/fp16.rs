//! The FP16 variant of an exported graph: weights stored and arithmetic done in float16, with
//! float32 inputs and outputs so that clients feed and read the same tensors as for FP32.
//!
//! The conversion is a pass over the ONNX graph, not a second export: every float initialiser a
//! float16 node reads becomes FLOAT16 (same name, so `--init-from` still finds it), a `Cast`
//! is inserted wherever a value crosses between a float32 node and a float16 one, and every
//! graph output gets a final `Cast` back to float32 under its own name. Nodes chosen by the
//! caller stay in float32: the exporter keeps the input normalisation there, so that 16-bit
//! pixels are centred and scaled at full precision before the cast (see
//! [`crate::variants`]).

use std::collections::{HashMap, HashSet};

use crate::Result;
use deepgalaxy_core::Error;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::{ModelProto, NodeProto, TensorProto};

use crate::import::floats;
use crate::onnx::attr_int;

/// Which inputs of an operator carry its float type `T` (the others are shapes, scales or
/// absent): only those follow the node's precision.
pub(crate) fn data_inputs(op_type: &str, n: usize) -> Vec<usize> {
    match op_type {
        // Resize's roi and scales are float32 whatever X is; Reshape's shape is int64
        "Resize" | "Reshape" => vec![0],
        _ => (0..n).collect(),
    }
}

fn fp16_tensor(t: &TensorProto) -> Result<TensorProto> {
    let values = floats(t)
        .map_err(|what| Error::setting("fp16", format!("initialiser `{}`: {what}", t.name)))?
        .ok_or_else(|| Error::setting("fp16", format!("`{}` is not a float tensor", t.name)))?;
    Ok(TensorProto {
        name: t.name.clone(),
        dims: t.dims.clone(),
        data_type: DataType::FLOAT16 as i32,
        raw_data: values
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_bits().to_le_bytes())
            .collect(),
        ..Default::default()
    })
}

fn cast(input: &str, output: &str, to: DataType) -> NodeProto {
    NodeProto {
        op_type: "Cast".into(),
        name: format!("{output}.cast"),
        input: vec![input.into()],
        output: vec![output.into()],
        attribute: vec![attr_int("to", to as i64)],
        ..Default::default()
    }
}

/// The FP16 version of a float32 `model`. Nodes for which `keep_f32` is true compute in
/// float32; all others in float16. Inputs and outputs stay float32 with their names.
pub fn to_fp16(model: &ModelProto, keep_f32: &dyn Fn(&NodeProto) -> bool) -> Result<ModelProto> {
    let mut model = model.clone();
    let graph = model
        .graph
        .as_mut()
        .ok_or_else(|| Error::setting("fp16", "the model has no graph"))?;
    let nodes = std::mem::take(&mut graph.node);
    let half: Vec<bool> = nodes.iter().map(|n| !keep_f32(n)).collect();

    // initialisers read only as data inputs of float16 nodes are stored in float16
    let mut readers: HashMap<&str, Vec<bool>> = HashMap::new();
    for (node, &h) in nodes.iter().zip(&half) {
        let data = data_inputs(&node.op_type, node.input.len());
        for (i, name) in node.input.iter().enumerate() {
            readers
                .entry(name.as_str())
                .or_default()
                .push(h && data.contains(&i));
        }
    }
    let mut is_half: HashMap<String, bool> = HashMap::new();
    for t in graph.initializer.iter_mut() {
        let all_half = readers
            .get(t.name.as_str())
            .is_some_and(|r| r.iter().all(|&h| h));
        if all_half && t.data_type == DataType::FLOAT as i32 {
            *t = fp16_tensor(t)?;
        }
        is_half.insert(t.name.clone(), t.data_type == DataType::FLOAT16 as i32);
    }
    for input in &graph.input {
        is_half.insert(input.name.clone(), false);
    }

    // graph outputs computed in float16 are renamed, then cast back under their own name
    let outputs: HashSet<String> = graph.output.iter().map(|o| o.name.clone()).collect();
    let mut rename: HashMap<String, String> = HashMap::new();
    for (node, &h) in nodes.iter().zip(&half) {
        for o in &node.output {
            if h && outputs.contains(o) {
                rename.insert(o.clone(), format!("{o}.fp16"));
            }
        }
    }

    let mut out_nodes = Vec::with_capacity(nodes.len() + 8);
    let mut casts: HashMap<(String, bool), String> = HashMap::new();
    for (mut node, h) in nodes.into_iter().zip(half) {
        for v in node.input.iter_mut().chain(node.output.iter_mut()) {
            if let Some(r) = rename.get(v) {
                *v = r.clone();
            }
        }
        for i in data_inputs(&node.op_type, node.input.len()) {
            let name = node.input[i].clone();
            if name.is_empty() || is_half.get(&name).copied().unwrap_or(false) == h {
                continue;
            }
            let key = (name.clone(), h);
            let converted = match casts.get(&key) {
                Some(c) => c.clone(),
                None => {
                    let (c, to) = if h {
                        (format!("{name}.to_fp16"), DataType::FLOAT16)
                    } else {
                        (format!("{name}.to_fp32"), DataType::FLOAT)
                    };
                    out_nodes.push(cast(&name, &c, to));
                    is_half.insert(c.clone(), h);
                    casts.insert(key, c.clone());
                    c
                }
            };
            node.input[i] = converted;
        }
        for o in &node.output {
            is_half.insert(o.clone(), h);
        }
        out_nodes.push(node);
    }
    for o in &graph.output {
        if let Some(r) = rename.get(&o.name) {
            out_nodes.push(cast(r, &o.name, DataType::FLOAT));
        }
    }
    graph.node = out_nodes;
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;
    use onnx_protobuf::GraphProto;

    fn node(op: &str, name: &str, inputs: &[&str]) -> NodeProto {
        NodeProto {
            op_type: op.into(),
            name: name.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![name.into()],
            ..Default::default()
        }
    }

    #[test]
    fn casts_sit_exactly_at_the_precision_boundaries() {
        let w = crate::onnx::float_tensor("w", &[2], vec![1.0, 1.0 / 3.0]);
        let mean = crate::onnx::float_tensor("mean", &[1], vec![0.5]);
        let scales = crate::onnx::float_tensor("scales", &[4], vec![1.0, 1.0, 2.0, 2.0]);
        let model = ModelProto {
            graph: Some(GraphProto {
                node: vec![
                    node("Sub", "normalize", &["image", "mean"]),
                    node("Mul", "scaled", &["normalize", "w"]),
                    node("Resize", "up", &["scaled", "", "scales"]),
                    node("Softmax", "out", &["up"]),
                ],
                initializer: vec![w, mean, scales],
                input: vec![crate::onnx::value_info("image", &[2])],
                output: vec![crate::onnx::value_info("out", &[2])],
                ..Default::default()
            })
            .into(),
            ..Default::default()
        };
        let half = to_fp16(&model, &|n| n.name == "normalize").unwrap();
        let g = half.graph.as_ref().unwrap();
        let ops: Vec<(&str, &str, Vec<&str>)> = g
            .node
            .iter()
            .map(|n| {
                (
                    n.op_type.as_str(),
                    n.output[0].as_str(),
                    n.input.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            ops,
            vec![
                ("Sub", "normalize", vec!["image", "mean"]),
                ("Cast", "normalize.to_fp16", vec!["normalize"]),
                ("Mul", "scaled", vec!["normalize.to_fp16", "w"]),
                ("Resize", "up", vec!["scaled", "", "scales"]),
                ("Softmax", "out.fp16", vec!["up"]),
                ("Cast", "out", vec!["out.fp16"]),
            ]
        );
        let types: HashMap<&str, i32> = g
            .initializer
            .iter()
            .map(|t| (t.name.as_str(), t.data_type))
            .collect();
        assert_eq!(types["w"], DataType::FLOAT16 as i32);
        assert_eq!(
            types["mean"],
            DataType::FLOAT as i32,
            "read by a float32 node"
        );
        assert_eq!(
            types["scales"],
            DataType::FLOAT as i32,
            "Resize scales are float32"
        );
        // 1/3 is stored as the nearest float16
        let w = g.initializer.iter().find(|t| t.name == "w").unwrap();
        let back = floats(w).unwrap().unwrap();
        assert_eq!(back, vec![1.0, half::f16::from_f32(1.0 / 3.0).to_f32()]);
        assert_ne!(back[1], 1.0 / 3.0);
    }
}
