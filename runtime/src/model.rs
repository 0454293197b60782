//! An exported DeepGalaxy model ready to run: the ONNX file's model card and interface, and a
//! [`Backend`] that executes it.
//!
//! The card says how images become input (through the core [`preprocess()`] function, the same
//! one training used) and what each class means in Myr; the interface says which outputs the
//! file has (`probabilities`, `logits`, `latent` for `model.onnx`; `reconstruction` for the
//! autoencoder and decoder).

use std::path::{Path, PathBuf};

use deepgalaxy_core::{preprocess, Error, Image, ModelCard, Result};
use sha2::{Digest, Sha256};
use tract_onnx::prelude::Framework;

use crate::backend::{self, Backend, BackendKind, Tensor};
use crate::index::ModelIdentity;

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
        let bytes = deepgalaxy_core::io::read_bytes(path)?;
        let proto = tract_onnx::onnx()
            .proto_model_for_read(&mut &bytes[..])
            .map_err(|e| Error::invalid(path, format!("not a readable ONNX model: {e:#}")))?;
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
                )));
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
            ));
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
            ));
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
            ));
        }
        let outputs = graph.output.iter().map(|o| o.name.clone()).collect();
        let digest = format!("{:x}", Sha256::digest(&bytes));
        let backend = backend::from_bytes(path, &bytes, options.backend, options.threads)?;
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
            ));
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
            ));
        }
        Ok(Outputs {
            names: self.outputs.clone(),
            values,
        })
    }
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
    }

    /// Whether an output called `name` exists.
    pub fn has(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }
}
