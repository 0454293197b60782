//! What an ONNX file is, for `deepgalaxy inspect`: its interface, size and model card, read with
//! tract's ONNX protobuf types so that inspecting a model needs only the runtime (the slim
//! build has no export crate).

use std::path::Path;

use deepgalaxy_core::card::ModelCard;
use deepgalaxy_core::Error;
use serde::Serialize;
use tract_onnx::prelude::Framework;

use crate::Result;

/// What an ONNX file is, for `deepgalaxy inspect`.
#[derive(Debug, Clone, Serialize)]
pub struct OnnxSummary {
    /// IR version.
    pub ir_version: i64,
    /// Default-domain opset.
    pub opset: i64,
    /// Producer.
    pub producer: String,
    /// Input names.
    pub inputs: Vec<String>,
    /// Output names.
    pub outputs: Vec<String>,
    /// Operator nodes.
    pub nodes: usize,
    /// Parameters (elements of all initialisers).
    pub parameters: usize,
    /// The deepgalaxy model card, when the file has one.
    pub card: Option<ModelCard>,
}

/// Reads an ONNX file's interface and model card. A file that is not ONNX, has no graph, has
/// an initialiser whose size cannot be counted or a damaged card is an error naming the file.
pub fn inspect_onnx(path: &Path) -> Result<OnnxSummary> {
    let bytes = deepgalaxy_core::io::read_bytes(path)?;
    let model = tract_onnx::onnx()
        .proto_model_for_read(&mut &bytes[..])
        .map_err(|e| crate::Error::backend(path, "not a readable ONNX model", e))?;
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| Error::invalid(path, "the ONNX model has no graph"))?;
    let mut parameters = 0usize;
    for t in &graph.initializer {
        let bad = |what: String| Error::invalid(path, format!("initialiser `{}`: {what}", t.name));
        let n = deepgalaxy_core::element_count(&t.dims).map_err(bad)?;
        parameters = parameters
            .checked_add(n)
            .ok_or_else(|| bad("the parameter count overflows".into()))?;
    }
    let props: Vec<(&str, &str)> = model
        .metadata_props
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_str()))
        .collect();
    let card = if props
        .iter()
        .any(|(k, _)| k.starts_with(deepgalaxy_core::card::KEY_PREFIX))
    {
        Some(ModelCard::from_metadata(props, path)?)
    } else {
        None
    };
    Ok(OnnxSummary {
        ir_version: model.ir_version,
        opset: model
            .opset_import
            .iter()
            .find(|o| o.domain.is_empty())
            .map(|o| o.version)
            .unwrap_or(0),
        producer: format!("{} {}", model.producer_name, model.producer_version),
        inputs: graph.input.iter().map(|i| i.name.clone()).collect(),
        outputs: graph.output.iter().map(|o| o.name.clone()).collect(),
        nodes: graph.node.len(),
        parameters,
        card,
    })
}
impl OnnxSummary {
    /// A short human-readable description.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "onnx: IR {} opset {} by {}, {} nodes, {} parameters\ninputs: {}\noutputs: {}\n",
            self.ir_version,
            self.opset,
            self.producer,
            self.nodes,
            self.parameters,
            self.inputs.join(", "),
            self.outputs.join(", ")
        );
        match &self.card {
            None => out += "no deepgalaxy model card\n",
            Some(c) => {
                let backbone = c
                    .model_spec
                    .get("backbone")
                    .map(|b| b.to_string())
                    .unwrap_or_default();
                out += &format!(
                    "model card: {} classes ({:.1}..{:.1} Myr), latent {}, precision {}, split {}\nbackbone: {backbone}\npreprocess: {}x{} x {} channel(s), stretch {:?}\ntraining data sha256: {}\nmetrics: {:?}\n",
                    c.num_classes,
                    c.class_t_myr.first().copied().unwrap_or(0.0),
                    c.class_t_myr.last().copied().unwrap_or(0.0),
                    c.latent_dim.map(|d| d.to_string()).unwrap_or("-".into()),
                    c.precision,
                    c.split.as_deref().unwrap_or("-"),
                    c.preprocess.size,
                    c.preprocess.size,
                    c.preprocess.channels,
                    c.preprocess.stretch,
                    c.training_digest.as_deref().unwrap_or("-"),
                    c.metrics
                );
            }
        }
        out
    }
}
