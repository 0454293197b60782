//! The translation of a model [`Graph`] into an ONNX `ModelProto`.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use crate::Result;
use deepgalaxy_core::{Error, ModelCard};
use deepgalaxy_models::graph::{Graph, NodeId, Op, BN_EPS};
use deepgalaxy_models::Weights;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::type_proto;
use onnx_protobuf::{
    attribute_proto::AttributeType, AttributeProto, GraphProto, Message, ModelProto, NodeProto,
    OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto,
};

/// ONNX IR version written (ONNX Runtime refuses 0; 8 is read by every current runtime).
pub const IR_VERSION: i64 = 8;
/// Operator set.
pub const OPSET: i64 = 17;

/// Which file to build from the one graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `model.onnx`: `image` -> `probabilities`, `logits`, `latent` (the VAE mean).
    Model,
    /// `autoencoder.onnx`: `image` -> `reconstruction` (FCAE).
    Autoencoder,
    /// `decoder.onnx`: `latent` -> `reconstruction` (VAE decoder then FCAE decoder).
    Decoder,
}

pub(crate) fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: AttributeType::INTS.into(),
        ints: v.to_vec(),
        ..Default::default()
    }
}

pub(crate) fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: AttributeType::INT.into(),
        i: v,
        ..Default::default()
    }
}

pub(crate) fn attr_float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: AttributeType::FLOAT.into(),
        f: v,
        ..Default::default()
    }
}

pub(crate) fn attr_string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: AttributeType::STRING.into(),
        s: v.as_bytes().to_vec(),
        ..Default::default()
    }
}

pub(crate) fn float_tensor(name: &str, dims: &[usize], data: Vec<f32>) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: DataType::FLOAT as i32,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

pub(crate) fn int_tensor(name: &str, data: &[i64]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: vec![data.len() as i64],
        data_type: DataType::INT64 as i32,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// A float tensor value with a symbolic batch dimension `N`.
pub(crate) fn value_info(name: &str, shape: &[usize]) -> ValueInfoProto {
    use onnx_protobuf::tensor_shape_proto::{dimension, Dimension};
    let mut dims = vec![Dimension {
        value: Some(dimension::Value::DimParam("N".into())),
        ..Default::default()
    }];
    dims.extend(shape.iter().map(|&d| Dimension {
        value: Some(dimension::Value::DimValue(d as i64)),
        ..Default::default()
    }));
    ValueInfoProto {
        name: name.into(),
        type_: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::FLOAT as i32,
                shape: Some(TensorShapeProto {
                    dim: dims,
                    ..Default::default()
                })
                .into(),
                ..Default::default()
            })),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    }
}

struct Builder<'a> {
    nodes: Vec<NodeProto>,
    constants: Vec<TensorProto>,
    params: BTreeSet<String>,
    /// The ONNX value holding each graph node's output.
    value: HashMap<NodeId, String>,
    graph: &'a Graph,
}

impl Builder<'_> {
    fn node(
        &mut self,
        op: &str,
        name: &str,
        inputs: Vec<String>,
        attrs: Vec<AttributeProto>,
    ) -> String {
        self.nodes.push(NodeProto {
            op_type: op.into(),
            name: name.into(),
            input: inputs,
            output: vec![name.into()],
            attribute: attrs,
            ..Default::default()
        });
        name.into()
    }

    fn param(&mut self, name: String) -> String {
        self.params.insert(name.clone());
        name
    }

    fn translate(&mut self, id: NodeId) -> Result<()> {
        let node = &self.graph.nodes[id];
        let name = node.name.clone();
        let ins: Vec<String> = node.inputs.iter().map(|j| self.value[j].clone()).collect();
        let out = match &node.op {
            Op::Image => return Err(Error::setting("export", "the image node is an input").into()),
            Op::Sample | Op::Dropout { .. } => ins[0].clone(), // inference: z = mu, no dropout
            Op::Normalize { mean, std } => {
                let c = mean.len();
                let inv: Vec<f32> = std.iter().map(|s| 1.0 / s).collect();
                self.constants.push(float_tensor(
                    &format!("{name}.mean"),
                    &[1, c, 1, 1],
                    mean.clone(),
                ));
                self.constants
                    .push(float_tensor(&format!("{name}.inv_std"), &[1, c, 1, 1], inv));
                let centred = self.node(
                    "Sub",
                    &format!("{name}.sub"),
                    vec![ins[0].clone(), format!("{name}.mean")],
                    vec![],
                );
                self.node(
                    "Mul",
                    &name,
                    vec![centred, format!("{name}.inv_std")],
                    vec![],
                )
            }
            Op::Conv {
                param,
                kernel,
                stride,
                padding,
                groups,
                bias,
                ..
            } => {
                let mut inputs = vec![ins[0].clone(), self.param(format!("{param}.weight"))];
                if *bias {
                    inputs.push(self.param(format!("{param}.bias")));
                }
                let (k, s, p) = (*kernel as i64, *stride as i64, *padding as i64);
                self.node(
                    "Conv",
                    &name,
                    inputs,
                    vec![
                        attr_ints("kernel_shape", &[k, k]),
                        attr_ints("strides", &[s, s]),
                        attr_ints("pads", &[p, p, p, p]),
                        attr_int("group", *groups as i64),
                    ],
                )
            }
            Op::BatchNorm { param, .. } => {
                let inputs = vec![
                    ins[0].clone(),
                    self.param(format!("{param}.weight")),
                    self.param(format!("{param}.bias")),
                    self.param(format!("{param}.running_mean")),
                    self.param(format!("{param}.running_var")),
                ];
                self.node(
                    "BatchNormalization",
                    &name,
                    inputs,
                    vec![attr_float("epsilon", BN_EPS as f32)],
                )
            }
            Op::Relu => self.node("Relu", &name, ins, vec![]),
            Op::Sigmoid => self.node("Sigmoid", &name, ins, vec![]),
            Op::Silu => {
                // opset 17 has no SiLU: x * sigmoid(x)
                let s = self.node("Sigmoid", &format!("{name}.sigmoid"), ins.clone(), vec![]);
                self.node("Mul", &name, vec![ins[0].clone(), s], vec![])
            }
            Op::MaxPool2 => self.node(
                "MaxPool",
                &name,
                ins,
                vec![
                    attr_ints("kernel_shape", &[2, 2]),
                    attr_ints("strides", &[2, 2]),
                ],
            ),
            Op::GlobalAvgPool => self.node("GlobalAveragePool", &name, ins, vec![]),
            Op::Flatten => self.node("Flatten", &name, ins, vec![attr_int("axis", 1)]),
            Op::Linear { param, .. } => {
                let inputs = vec![
                    ins[0].clone(),
                    self.param(format!("{param}.weight")),
                    self.param(format!("{param}.bias")),
                ];
                self.node("Gemm", &name, inputs, vec![attr_int("transB", 1)])
            }
            Op::Upsample2 => {
                self.constants.push(float_tensor(
                    &format!("{name}.scales"),
                    &[4],
                    vec![1.0, 1.0, 2.0, 2.0],
                ));
                self.node(
                    "Resize",
                    &name,
                    vec![ins[0].clone(), String::new(), format!("{name}.scales")],
                    vec![
                        attr_string("mode", "nearest"),
                        attr_string("coordinate_transformation_mode", "asymmetric"),
                        attr_string("nearest_mode", "floor"),
                    ],
                )
            }
            Op::Add => self.node("Add", &name, ins, vec![]),
            Op::Mul => self.node("Mul", &name, ins, vec![]),
            Op::Reshape { shape } => {
                let s = [-1, shape[0] as i64, shape[1] as i64, shape[2] as i64];
                self.constants
                    .push(int_tensor(&format!("{name}.shape"), &s));
                self.node(
                    "Reshape",
                    &name,
                    vec![ins[0].clone(), format!("{name}.shape")],
                    vec![],
                )
            }
            Op::Softmax => self.node("Softmax", &name, ins, vec![attr_int("axis", -1)]),
        };
        self.value.insert(id, out);
        Ok(())
    }
}

/// Builds the ONNX model of `target` from `graph` and `weights` (batch-norm running statistics
/// included), with `card` in its metadata.
pub fn export(
    graph: &Graph,
    weights: &Weights,
    card: &ModelCard,
    target: Target,
) -> Result<ModelProto> {
    let o = graph.outputs;
    let (input, input_name, outputs): (NodeId, &str, Vec<(NodeId, &str)>) = match target {
        Target::Model => (
            o.image,
            "image",
            vec![
                (o.probabilities, "probabilities"),
                (o.logits, "logits"),
                (o.mu, "latent"),
            ],
        ),
        Target::Autoencoder => (o.image, "image", vec![(o.reconstruction, "reconstruction")]),
        Target::Decoder => (
            o.z,
            "latent",
            vec![(o.vae_reconstruction, "reconstruction")],
        ),
    };
    // nodes the outputs need, not looking upstream of the input
    let mut need = vec![false; graph.nodes.len()];
    for (id, _) in &outputs {
        need[*id] = true;
    }
    for i in (0..graph.nodes.len()).rev() {
        if need[i] && i != input {
            for &j in &graph.nodes[i].inputs {
                need[j] = true;
            }
        }
    }
    let mut b = Builder {
        nodes: vec![],
        constants: vec![],
        params: BTreeSet::new(),
        value: HashMap::new(),
        graph,
    };
    b.value.insert(input, input_name.to_string());
    for (i, &needed) in need.iter().enumerate() {
        if needed && i != input {
            b.translate(i)?;
        }
    }
    for (id, name) in &outputs {
        let v = b.value[id].clone();
        if v != *name {
            b.node("Identity", name, vec![v], vec![]);
        }
    }
    let tensors = weights.tensors();
    let mut initializer = b.constants;
    for p in &b.params {
        let t = tensors.get(p).ok_or_else(|| {
            Error::setting(
                "export",
                format!("tensor `{p}` is missing from the weights"),
            )
        })?;
        let data: Vec<f32> = t
            .flatten_all()
            .and_then(|t| t.to_dtype(candle_core::DType::F32))
            .and_then(|t| t.to_vec1())
            .map_err(|e| Error::setting("export", format!("tensor `{p}`: {e}")))?;
        initializer.push(float_tensor(p, t.dims(), data));
    }
    let graph_proto = GraphProto {
        name: format!(
            "deepgalaxy_{}",
            card.model_spec
                .get("backbone")
                .and_then(|b| b.get("kind"))
                .and_then(|k| k.as_str())
                .unwrap_or("model")
        ),
        node: b.nodes,
        initializer,
        input: vec![value_info(input_name, &graph.nodes[input].shape)],
        output: outputs
            .iter()
            .map(|(id, name)| value_info(name, &graph.nodes[*id].shape))
            .collect(),
        ..Default::default()
    };
    Ok(ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
            ..Default::default()
        }],
        producer_name: "deepgalaxy".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(graph_proto).into(),
        metadata_props: metadata(card)?,
        ..Default::default()
    })
}

fn metadata(card: &ModelCard) -> Result<Vec<StringStringEntryProto>> {
    Ok(card
        .to_metadata()?
        .into_iter()
        .map(|(key, value)| StringStringEntryProto {
            key,
            value,
            ..Default::default()
        })
        .collect())
}

/// Replaces a model's card (a variant records its own precision and quantisation).
pub fn set_card(model: &mut ModelProto, card: &ModelCard) -> Result<()> {
    card.validate()?;
    model.metadata_props = metadata(card)?;
    Ok(())
}

/// The ONNX nodes of the graph's input normalisation (`Sub` then `Mul`), which reduced-precision
/// variants keep in float32.
pub fn normalization_nodes(graph: &Graph) -> Vec<String> {
    graph
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Normalize { .. }))
        .flat_map(|n| [format!("{}.sub", n.name), n.name.clone()])
        .collect()
}

/// The model's protobuf bytes.
pub fn to_bytes(model: &ModelProto) -> Result<Vec<u8>> {
    model.write_to_bytes().map_err(crate::Error::Encode)
}

/// Reads an ONNX file, with an error naming it when it is not a model.
pub fn read(path: &Path) -> Result<ModelProto> {
    let bytes = deepgalaxy_core::io::read_bytes(path)?;
    ModelProto::parse_from_bytes(&bytes).map_err(|source| crate::Error::NotOnnx {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes a model atomically.
pub fn write(path: &Path, model: &ModelProto) -> Result<()> {
    let bytes = to_bytes(model)?;
    deepgalaxy_core::io::write_atomic(path, |f| std::io::Write::write_all(f, &bytes))
        .map_err(Into::into)
}
