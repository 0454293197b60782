//! An exported DeepGalaxy model ready to run: the ONNX file's model card and interface, and a
//! [`Backend`] that executes it.
//!
//! The card says how images become input (through the core [`preprocess()`] function, the same
//! one training used) and what each class means in Myr; the interface says which outputs the
//! file has (`probabilities`, `logits`, `latent` for `model.onnx`; `reconstruction` for the
//! autoencoder and decoder). Opening a file checks the two agree (input size, class count,
//! latent size, outputs that follow the batch), and every run checks each output has one row
//! per image.

use std::path::{Path, PathBuf};

use crate::Result;
use deepgalaxy_core::{preprocess, Error, Image, ModelCard};
use sha2::{Digest, Sha256};
use tract_onnx::prelude::Framework;

use crate::inference::backend::{self, Backend, BackendKind, Tensor};
use crate::library::index::ModelIdentity;

/// How to run a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOptions {
    /// The engine.
    pub backend: BackendKind,
    /// Threads (tract: concurrent single-threaded runs; ONNX Runtime: intra-op threads).
    pub threads: usize,
    /// Images per run.
    pub batch: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            backend: BackendKind::Tract,
            threads: 1,
            batch: 8,
        }
    }
}

/// An ONNX file exported by deepgalaxy, loaded in a backend.
pub struct Model {
    path: PathBuf,
    card: ModelCard,
    digest: String,
    input: String,
    input_shape: Vec<usize>,
    outputs: Vec<String>,
    backend: Box<dyn Backend>,
    options: RunOptions,
}

impl Model {
    /// Reads the card and interface of the file at `path` and loads it in the chosen backend.
    pub fn open(path: &Path, options: RunOptions) -> Result<Model> {
        Model::from_bytes(path, &deepgalaxy_core::io::read_bytes(path)?, options)
    }

    /// [`Model::open`] on a file already in memory (e.g. a model built into the binary);
    /// `path` names it in messages and outputs.
    pub fn from_bytes(path: &Path, bytes: &[u8], options: RunOptions) -> Result<Model> {
        let proto = tract_onnx::onnx()
            .proto_model_for_read(&mut &bytes[..])
            .map_err(|e| crate::Error::backend(path, "not a readable ONNX model", e))?;
        let card = ModelCard::from_metadata(
            proto
                .metadata_props
                .iter()
                .map(|p| (p.key.as_str(), p.value.as_str())),
            path,
        )?;
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| Error::invalid(path, "the ONNX model has no graph"))?;
        let initialisers: std::collections::HashSet<&str> =
            graph.initializer.iter().map(|t| t.name.as_str()).collect();
        // tract panics on shapes and data types it cannot load (a damaged or edited file)
        for t in &graph.initializer {
            let bad =
                |what: String| Error::invalid(path, format!("initialiser `{}`: {what}", t.name));
            deepgalaxy_core::element_count(&t.dims).map_err(bad)?;
            // FLOAT, (U)INT8/16/32/64, BOOL, FLOAT16, DOUBLE: the numeric types tract loads
            if !matches!(t.data_type, 1..=7 | 9..=13) {
                return Err(bad(format!(
                    "data type {} is not a numeric type this runtime loads",
                    t.data_type
                ))
                .into());
            }
        }
        let inputs: Vec<_> = graph
            .input
            .iter()
            .filter(|i| !initialisers.contains(i.name.as_str()))
            .collect();
        let [input] = inputs.as_slice() else {
            return Err(Error::invalid(
                path,
                format!("the model has {} inputs, expected one", inputs.len()),
            )
            .into());
        };
        // the sample shape from the file (the batch dimension is free)
        let dims: Vec<usize> =
            input
                .r#type
                .as_ref()
                .and_then(|t| t.value.as_ref())
                .and_then(|v| {
                    let tract_onnx::pb::type_proto::Value::TensorType(t) = v;
                    t.shape.as_ref()
                })
                .map(|s| {
                    s.dim
                        .iter()
                        .skip(1)
                        .map(|d| match d.value {
                            Some(
                                tract_onnx::pb::tensor_shape_proto::dimension::Value::DimValue(v),
                            ) if v > 0 => v as usize,
                            _ => 0,
                        })
                        .collect()
                })
                .unwrap_or_default();
        if dims.is_empty() || dims.contains(&0) {
            return Err(Error::invalid(
                path,
                format!("input `{}` has no fixed sample shape", input.name),
            )
            .into());
        }
        // tract panics on a graph output that nothing produces (a damaged or edited file)
        let produced: std::collections::HashSet<&str> = graph
            .node
            .iter()
            .flat_map(|n| n.output.iter().map(String::as_str))
            .chain(graph.input.iter().map(|i| i.name.as_str()))
            .chain(initialisers.iter().copied())
            .collect();
        if let Some(o) = graph
            .output
            .iter()
            .find(|o| !produced.contains(o.name.as_str()))
        {
            return Err(Error::invalid(
                path,
                format!("the graph output `{}` is produced by no node", o.name),
            )
            .into());
        }
        let outputs: Vec<String> = graph.output.iter().map(|o| o.name.clone()).collect();
        check_interface(path, &proto, &card, &input.name, &dims, &outputs)?;
        let digest = format!("{:x}", Sha256::digest(bytes));
        let backend = backend::from_bytes(path, bytes, options.backend, options.threads)?;
        Ok(Model {
            path: path.to_path_buf(),
            card,
            digest,
            input: input.name.clone(),
            input_shape: dims,
            outputs,
            backend,
            options,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The model card.
    pub fn card(&self) -> &ModelCard {
        &self.card
    }

    /// SHA-256 (hex) of the file.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The size of the latent vector, from the card; an error for a model without one.
    pub fn latent_dim(&self) -> Result<usize> {
        self.card
            .latent_dim
            .ok_or_else(|| {
                Error::invalid(&self.path, "has no latent (its card gives no latent size)")
            })
            .map_err(Into::into)
    }

    /// The identity written into a latent index built with this model.
    pub fn identity(&self) -> ModelIdentity {
        ModelIdentity {
            model_digest: self.digest.clone(),
            training_digest: self.card.training_digest.clone(),
            preprocess: self.card.preprocess.clone(),
        }
    }

    /// Name of the input (`image`, or `latent` for a decoder).
    pub fn input_name(&self) -> &str {
        &self.input
    }

    /// Shape of one input sample (without the batch dimension).
    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    /// Output names in file order.
    pub fn output_names(&self) -> &[String] {
        &self.outputs
    }

    /// Where the output called `name` is among [`Model::output_names`] (and so among a run's
    /// rows), or an error naming the file and the outputs it has.
    pub fn output_index(&self, name: &str) -> Result<usize> {
        self.outputs
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| {
                Error::invalid(
                    &self.path,
                    format!(
                        "the model has no `{name}` output (it has {:?})",
                        self.outputs
                    ),
                )
            })
            .map_err(Into::into)
    }

    /// How the model runs.
    pub fn options(&self) -> RunOptions {
        self.options
    }

    /// The backend (for the number of concurrent workers it wants).
    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    /// The model input for one decoded image: the core preprocessing with the card's settings.
    /// `source` names the image in errors.
    pub fn prepare(&self, image: &Image, source: &Path) -> Result<Vec<f32>> {
        let x = preprocess(image, &self.card.preprocess, source)?;
        let want: usize = self.input_shape.iter().product();
        if x.data.len() != want {
            return Err(Error::setting(
                "model input",
                format!(
                    "preprocessing of {} gives {} values but {} takes {:?}",
                    source.display(),
                    x.data.len(),
                    self.path.display(),
                    self.input_shape
                ),
            )
            .into());
        }
        Ok(x.data)
    }

    /// Runs `n` samples stored one after another in `data`; returns the outputs by name.
    pub fn run(&self, data: Vec<f32>, n: usize) -> Result<Outputs> {
        let mut shape = vec![n];
        shape.extend_from_slice(&self.input_shape);
        let input = Tensor::new(shape, data)?;
        let values = self.backend.run(&input)?;
        if values.len() != self.outputs.len() {
            return Err(Error::invalid(
                &self.path,
                format!(
                    "the backend returned {} outputs, the file declares {}",
                    values.len(),
                    self.outputs.len()
                ),
            )
            .into());
        }
        // one row per image: an output that ignores the batch cannot be split by image
        for (name, value) in self.outputs.iter().zip(&values) {
            if value.shape.first() != Some(&n) {
                return Err(Error::invalid(
                    &self.path,
                    format!(
                        "output `{name}` has shape {:?} for a batch of {n} images: its first \
                         dimension is not the batch",
                        value.shape
                    ),
                )
                .into());
            }
        }
        Ok(Outputs {
            names: self.outputs.clone(),
            values,
        })
    }
}

/// The batch size at which [`check_interface`] infers output shapes: 2, so that an output
/// whose first dimension is a constant 1 is told apart from one that follows the batch.
const PROBE_BATCH: usize = 2;

/// Checks the graph against its card, so that a file carrying someone else's card (or a card
/// copied onto another network) is refused instead of giving confident wrong answers: the
/// `image` input must take the card's `channels x size x size` and a `latent` input the card's
/// latent size; for a batch of [`PROBE_BATCH`] images, as tract infers it from the graph,
/// every output must have the batch as its first dimension, `probabilities` and `logits` the
/// card's class count and `latent` the card's latent size (dimensions tract cannot fix are not
/// compared).
fn check_interface(
    path: &Path,
    proto: &tract_onnx::pb::ModelProto,
    card: &ModelCard,
    input: &str,
    input_shape: &[usize],
    outputs: &[String],
) -> Result<()> {
    use tract_onnx::prelude::{Datum, InferenceFact, InferenceModelExt};
    use tract_onnx::tract_hir::internal::DimLike;
    let bad = |what: String| Err(crate::Error::from(Error::invalid(path, what)));
    let p = &card.preprocess;
    let wanted = match input {
        "image" => Some(vec![p.channels as usize, p.size as usize, p.size as usize]),
        "latent" => card.latent_dim.map(|d| vec![d]),
        _ => None,
    };
    if let Some(wanted) = wanted.filter(|w| w != input_shape) {
        return bad(format!(
            "input `{input}` takes {input_shape:?} but the model card says {wanted:?}: \
             the card does not belong to this graph"
        ));
    }
    let mut probe = vec![PROBE_BATCH];
    probe.extend_from_slice(input_shape);
    let typed = tract_onnx::onnx()
        .with_ignore_value_info(true)
        .model_for_proto_model(proto)
        .and_then(|m| m.with_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), &probe)))
        .and_then(|m| m.into_typed())
        .map_err(|e| {
            crate::Error::backend(
                path,
                format!("cannot infer the output shapes for input {probe:?}"),
                e,
            )
        })?;
    let outlets = typed
        .output_outlets()
        .map_err(|e| crate::Error::backend(path, "the model's outputs", e))?;
    for (name, outlet) in outputs.iter().zip(outlets) {
        let fact = typed
            .outlet_fact(*outlet)
            .map_err(|e| crate::Error::backend(path, format!("output `{name}`"), e))?;
        let dims: Vec<Option<usize>> = fact.shape.iter().map(|d| d.to_usize().ok()).collect();
        let shown: Vec<String> = fact.shape.iter().map(|d| d.to_string()).collect();
        if dims
            .first()
            .is_none_or(|d| d.is_some_and(|d| d != PROBE_BATCH))
        {
            return bad(format!(
                "output `{name}` has shape [{}] for a batch of {PROBE_BATCH} images: its first \
                 dimension is not the batch",
                shown.join(", ")
            ));
        }
        let width = match name.as_str() {
            "probabilities" | "logits" => Some(("class count", card.num_classes)),
            "latent" => card.latent_dim.map(|d| ("latent size", d)),
            _ => None,
        };
        if let Some((what, want)) = width {
            if dims.len() != 2 || dims[1].is_some_and(|d| d != want) {
                return bad(format!(
                    "output `{name}` has shape [{}] but the model card's {what} is {want}: \
                     the card does not belong to this graph",
                    shown.join(", ")
                ));
            }
        }
    }
    Ok(())
}

/// A run's outputs, looked up by name.
#[derive(Debug, Clone)]
pub struct Outputs {
    names: Vec<String>,
    values: Vec<Tensor>,
}

impl Outputs {
    /// The output called `name`, or an error naming what the file has.
    pub fn get(&self, name: &str) -> Result<&Tensor> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| &self.values[i])
            .ok_or_else(|| {
                Error::setting(
                    "model output",
                    format!("the model has no `{name}` output (it has {:?})", self.names),
                )
            })
            .map_err(Into::into)
    }

    /// Whether an output called `name` exists.
    pub fn has(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use deepgalaxy_core::card::CARD_VERSION;
    use deepgalaxy_core::Preprocess;
    use prost::Message;
    use tract_onnx::pb;

    /// Side of the test models' input images.
    pub(crate) const SIDE: usize = 4;

    pub(crate) fn card(classes: usize, latent: usize) -> ModelCard {
        ModelCard {
            card_version: CARD_VERSION,
            tool_version: "test".into(),
            model_spec: serde_json::json!({}),
            preprocess: Preprocess {
                size: SIDE as u32,
                ..Preprocess::default()
            },
            num_classes: classes,
            class_t_myr: (0..classes).map(|c| 5.0 * c as f64).collect(),
            target: Default::default(),
            time_sigma_scale: None,
            simulations: None,
            latent_dim: Some(latent),
            training_digest: None,
            split: None,
            metrics: Default::default(),
            precision: "fp32".into(),
            quantization: None,
            test: None,
        }
    }

    fn tensor(name: &str, dims: &[usize], values: impl Fn(usize) -> f32) -> pb::TensorProto {
        let n = dims.iter().product();
        pb::TensorProto {
            name: name.into(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: pb::tensor_proto::DataType::Float as i32,
            float_data: (0..n).map(values).collect(),
            ..Default::default()
        }
    }

    fn node(
        op: &str,
        inputs: &[&str],
        output: &str,
        attribute: Vec<pb::AttributeProto>,
    ) -> pb::NodeProto {
        pb::NodeProto {
            op_type: op.into(),
            name: output.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            attribute,
            ..Default::default()
        }
    }

    fn named(name: &str) -> pb::ValueInfoProto {
        pb::ValueInfoProto {
            name: name.into(),
            ..Default::default()
        }
    }

    /// A linear model `image [N, 1, 4, 4]` -> `logits`, `probabilities` (`classes` wide) and
    /// `latent` (`latent` wide), written to `dir/name` with `card`. With `fixed_rows`, the
    /// probabilities are a constant of that many rows whatever the batch.
    pub(crate) fn write_model(
        dir: &Path,
        name: &str,
        classes: usize,
        latent: usize,
        fixed_rows: Option<usize>,
        card: &ModelCard,
    ) -> PathBuf {
        use pb::tensor_shape_proto::{dimension::Value as D, Dimension};
        let pixels = SIDE * SIDE;
        let dims = [
            D::DimParam("N".into()),
            D::DimValue(1),
            D::DimValue(SIDE as i64),
            D::DimValue(SIDE as i64),
        ];
        let input = pb::ValueInfoProto {
            name: "image".into(),
            r#type: Some(pb::TypeProto {
                value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                    elem_type: pb::tensor_proto::DataType::Float as i32,
                    shape: Some(pb::TensorShapeProto {
                        dim: dims
                            .into_iter()
                            .map(|v| Dimension {
                                value: Some(v),
                                ..Default::default()
                            })
                            .collect(),
                    }),
                })),
                ..Default::default()
            }),
            ..Default::default()
        };
        let axis = pb::AttributeProto {
            name: "axis".into(),
            i: 1,
            r#type: pb::attribute_proto::AttributeType::Int as i32,
            ..Default::default()
        };
        let mut initializer = vec![
            tensor("w", &[pixels, classes], |i| (i % 7) as f32 * 0.1),
            tensor("v", &[pixels, latent], |i| (i % 5) as f32 * 0.2),
        ];
        let mut nodes = vec![
            node("Flatten", &["image"], "flat", vec![axis.clone()]),
            node("MatMul", &["flat", "w"], "logits", vec![]),
            node("MatMul", &["flat", "v"], "latent", vec![]),
        ];
        match fixed_rows {
            None => nodes.push(node("Softmax", &["logits"], "probabilities", vec![axis])),
            Some(rows) => {
                initializer.push(tensor("constant", &[rows, classes], |_| {
                    1.0 / classes as f32
                }));
                nodes.push(node("Identity", &["constant"], "probabilities", vec![]));
            }
        }
        let proto = pb::ModelProto {
            ir_version: 8,
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: 17,
            }],
            graph: Some(pb::GraphProto {
                name: "test".into(),
                node: nodes,
                initializer,
                input: vec![input],
                output: vec![named("probabilities"), named("logits"), named("latent")],
                ..Default::default()
            }),
            metadata_props: card
                .to_metadata()
                .unwrap()
                .into_iter()
                .map(|(key, value)| pb::StringStringEntryProto { key, value })
                .collect(),
            ..Default::default()
        };
        let path = dir.join(name);
        std::fs::write(&path, proto.encode_to_vec()).unwrap();
        path
    }

    fn open_err(path: &Path) -> String {
        match Model::open(path, RunOptions::default()) {
            Ok(_) => panic!("{} opened", path.display()),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_matching_model_opens_and_runs_one_row_per_image() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_model(dir.path(), "ok.onnx", 3, 2, None, &card(3, 2));
        let model = Model::open(&path, RunOptions::default()).unwrap();
        let out = model.run(vec![0.5; 3 * SIDE * SIDE], 3).unwrap();
        let p = out.get("probabilities").unwrap();
        assert_eq!(p.shape, [3, 3]);
        assert!((p.row(2).iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(out.get("latent").unwrap().shape, [3, 2]);
    }

    #[test]
    fn a_card_copied_onto_another_graph_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        // a 1000-class network carrying a 3-class card
        let path = write_model(dir.path(), "other.onnx", 1000, 2, None, &card(3, 2));
        let e = open_err(&path);
        assert_eq!(
            e,
            format!(
                "{}: output `probabilities` has shape [2, 1000] but the model card's class \
                 count is 3: the card does not belong to this graph",
                path.display()
            )
        );
        let path = write_model(dir.path(), "latent.onnx", 3, 5, None, &card(3, 2));
        let e = open_err(&path);
        assert!(
            e.contains("output `latent` has shape [2, 5] but the model card's latent size is 2"),
            "{e}"
        );
        let mut big = card(3, 2);
        big.preprocess.size = 8;
        let path = write_model(dir.path(), "size.onnx", 3, 2, None, &big);
        let e = open_err(&path);
        assert!(
            e.contains("input `image` takes [1, 4, 4] but the model card says [1, 8, 8]"),
            "{e}"
        );
    }

    #[test]
    fn outputs_that_ignore_the_batch_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        // one row whatever the batch: refused when opened
        let path = write_model(dir.path(), "one.onnx", 3, 2, Some(1), &card(3, 2));
        let e = open_err(&path);
        assert_eq!(
            e,
            format!(
                "{}: output `probabilities` has shape [1, 3] for a batch of 2 images: its first \
                 dimension is not the batch",
                path.display()
            )
        );
        // two rows whatever the batch: passes the probe, but a run of 3 images is an error
        let path = write_model(dir.path(), "two.onnx", 3, 2, Some(2), &card(3, 2));
        let model = Model::open(&path, RunOptions::default()).unwrap();
        let e = model
            .run(vec![0.5; 3 * SIDE * SIDE], 3)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!(
                "{}: output `probabilities` has shape [2, 3] for a batch of 3 images: its first \
                 dimension is not the batch",
                path.display()
            )
        );
    }
}
