//! The layer graph built from a [`ModelSpec`]: a list of nodes in execution order, each an
//! [`Op`] on earlier nodes, with named parameters. It is the single source of truth shared by
//! the candle executor ([`crate::exec`]) and the ONNX exporter: both walk these nodes, so the
//! exported graph is the trained one, op for op and parameter name for parameter name.
//!
//! The one graph holds the shared encoder and all three heads:
//!
//! ```text
//! image -> normalize -> encoder -> M -+-> pool -> dropout -> linear = logits -> softmax = probabilities
//!                                     +-> decoder -> sigmoid = reconstruction            (FCAE)
//!                                     +-> flatten -> linear = mu, linear = logvar
//!                                           -> sample = z -> linear -> reshape = M' -> decoder
//!                                              -> sigmoid = vae_reconstruction           (VAE)
//! ```
//!
//! The two decoder passes share their weights (same parameter names). Reconstructions are in
//! model-input pixel units ([0, 1]), so `decoder.onnx` yields pictures directly.

//! The parts: [`ops`] (the operation and node types), `builder` (appending nodes with their
//! shapes) and `backbones` (the encoders and the decoder, each written once).

mod backbones;
mod builder;
pub mod ops;

use serde::Serialize;

use crate::spec::{Backbone, ModelSpec};
use crate::Result;
use backbones::{decoder, efficientnet, resnet, simple};
use builder::Builder;
pub use ops::{Node, NodeId, Op, Outputs, Param, ParamKind};

/// The built network.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Graph {
    /// Nodes in execution order.
    pub nodes: Vec<Node>,
    /// Where the meaningful outputs are.
    pub outputs: Outputs,
}

/// Batch-norm epsilon, as in PyTorch.
pub const BN_EPS: f64 = 1e-5;
/// Batch-norm running-statistics momentum, as in PyTorch.
pub const BN_MOMENTUM: f64 = 0.1;

impl Graph {
    /// Builds the network a spec describes (the spec is validated first).
    pub fn build(spec: &ModelSpec) -> Result<Graph> {
        spec.validate()?;
        let mut b = Builder { nodes: Vec::new() };
        let (c, s) = (spec.channels(), spec.size());
        let image = b.push("image".into(), Op::Image, vec![], vec![c, s, s]);
        let norm = &spec.preprocess.normalization;
        let x = b.unary(
            image,
            "normalize".into(),
            Op::Normalize {
                mean: norm.mean.clone(),
                std: norm.std.clone(),
            },
        );
        let features = match &spec.backbone {
            Backbone::Simple { widths, depth } => simple(&mut b, x, widths, *depth),
            Backbone::Resnet { width } => resnet(&mut b, x, *width),
            Backbone::Efficientnet { width, depth } => efficientnet(&mut b, x, *width, *depth),
        };

        // classifier
        let pooled = b.unary(features, "classifier.pool".into(), Op::GlobalAvgPool);
        let flat = b.unary(pooled, "classifier.flatten".into(), Op::Flatten);
        let dropped = b.unary(
            flat,
            "classifier.dropout".into(),
            Op::Dropout { p: spec.dropout },
        );
        let logits = b.linear(dropped, "classifier.linear", spec.num_classes);
        let probabilities = b.unary(logits, "probabilities".into(), Op::Softmax);

        // FCAE decoder on M
        let stages = spec.backbone.stride().trailing_zeros() as usize;
        let reconstruction = decoder(&mut b, features, stages, c, "reconstruction");

        // VAE on flattened M
        let (fc, fh, fw) = b.chw(features);
        let flat_m = b.unary(features, "vae.flatten".into(), Op::Flatten);
        let mu = b.linear(flat_m, "vae.mu", spec.latent_dim);
        let logvar = b.linear(flat_m, "vae.logvar", spec.latent_dim);
        let z = b.push(
            "vae.z".into(),
            Op::Sample,
            vec![mu, logvar],
            vec![spec.latent_dim],
        );
        let m = b.linear(z, "vae.expand", fc * fh * fw);
        let m = b.push(
            "vae.reshape".into(),
            Op::Reshape {
                shape: [fc, fh, fw],
            },
            vec![m],
            vec![fc, fh, fw],
        );
        let m = b.unary(m, "vae.act".into(), Op::Relu);
        let vae_reconstruction = decoder(&mut b, m, stages, c, "vae_reconstruction");

        Ok(Graph {
            nodes: b.nodes,
            outputs: Outputs {
                image,
                features,
                logits,
                probabilities,
                mu,
                logvar,
                z,
                reconstruction,
                vae_reconstruction,
            },
        })
    }

    /// Every parameter and buffer the graph reads, each once, in first-use order.
    pub fn params(&self) -> Vec<Param> {
        let mut out: Vec<Param> = Vec::new();
        let mut add = |name: String, shape: Vec<usize>, kind: ParamKind| {
            if !out.iter().any(|p| p.name == name) {
                out.push(Param { name, shape, kind });
            }
        };
        for node in &self.nodes {
            match &node.op {
                Op::Conv {
                    param,
                    c_in,
                    c_out,
                    kernel,
                    groups,
                    bias,
                    ..
                } => {
                    let fan_in = c_in / groups * kernel * kernel;
                    add(
                        format!("{param}.weight"),
                        vec![*c_out, c_in / groups, *kernel, *kernel],
                        ParamKind::Weight { fan_in },
                    );
                    if *bias {
                        add(
                            format!("{param}.bias"),
                            vec![*c_out],
                            ParamKind::Bias { fan_in },
                        );
                    }
                }
                Op::BatchNorm { param, channels } => {
                    add(format!("{param}.weight"), vec![*channels], ParamKind::Ones);
                    add(format!("{param}.bias"), vec![*channels], ParamKind::Zeros);
                    add(
                        format!("{param}.running_mean"),
                        vec![*channels],
                        ParamKind::RunningMean,
                    );
                    add(
                        format!("{param}.running_var"),
                        vec![*channels],
                        ParamKind::RunningVar,
                    );
                }
                Op::Linear {
                    param,
                    inputs,
                    outputs,
                } => {
                    add(
                        format!("{param}.weight"),
                        vec![*outputs, *inputs],
                        ParamKind::Weight { fan_in: *inputs },
                    );
                    add(
                        format!("{param}.bias"),
                        vec![*outputs],
                        ParamKind::Bias { fan_in: *inputs },
                    );
                }
                _ => {}
            }
        }
        out
    }

    /// The nodes needed to compute `targets`, as a mask over [`Graph::nodes`].
    pub fn needed(&self, targets: &[NodeId]) -> Vec<bool> {
        let mut need = vec![false; self.nodes.len()];
        for &t in targets {
            need[t] = true;
        }
        for i in (0..self.nodes.len()).rev() {
            if need[i] {
                for &j in &self.nodes[i].inputs {
                    need[j] = true;
                }
            }
        }
        need
    }
}

/// The encoder parameter prefixes of each stage, first to last, for freezing and progressive
/// unfreezing (a parameter belongs to a stage when its name starts with the prefix).
pub fn encoder_stages(graph: &Graph) -> Vec<String> {
    let mut stages: Vec<String> = Vec::new();
    for node in &graph.nodes[..=graph.outputs.features] {
        if let Some(rest) = node.name.strip_prefix("encoder.") {
            let stage = format!("encoder.{}", rest.split('.').next().unwrap_or(rest));
            if !stages.contains(&stage) {
                stages.push(stage);
            }
        }
    }
    stages
}

#[cfg(test)]
mod tests {
    use super::*;
    use backbones::round_filters;
    use deepgalaxy_core::preprocess::Preprocess;

    fn spec(backbone: Backbone, size: u32) -> ModelSpec {
        ModelSpec::new(
            backbone,
            Preprocess {
                size,
                ..Preprocess::default()
            },
            71,
        )
    }

    #[test]
    fn every_backbone_maps_the_input_back_to_its_size() {
        for (name, size) in [("simple", 64), ("resnet", 64), ("efficientnet", 128)] {
            let s = spec(Backbone::by_name(name).unwrap(), size);
            let g = Graph::build(&s).unwrap();
            let f = &g.nodes[g.outputs.features].shape;
            let side = size as usize / s.backbone.stride();
            assert_eq!(&f[1..], &[side, side], "{name}");
            for out in [g.outputs.reconstruction, g.outputs.vae_reconstruction] {
                assert_eq!(
                    g.nodes[out].shape,
                    vec![1, size as usize, size as usize],
                    "{name}"
                );
            }
            assert_eq!(g.nodes[g.outputs.logits].shape, vec![71]);
            assert_eq!(g.nodes[g.outputs.mu].shape, vec![16]);
            let names: std::collections::HashSet<_> = g.nodes.iter().map(|n| &n.name).collect();
            assert_eq!(
                names.len(),
                g.nodes.len(),
                "{name}: node names must be unique"
            );
        }
    }

    #[test]
    fn resnet18_has_its_layout() {
        let g = Graph::build(&spec(Backbone::Resnet { width: 1.0 }, 64)).unwrap();
        let convs = g.nodes[..=g.outputs.features]
            .iter()
            .filter(|n| matches!(n.op, Op::Conv { .. }))
            .count();
        // stem + 8 blocks x 2 convs + 3 downsampling shortcuts
        assert_eq!(convs, 1 + 16 + 3);
        assert_eq!(g.nodes[g.outputs.features].shape[0], 512);
        // 11.2M parameters in ResNet-18's convolutions and batch norms (no fc)
        let n: usize = g
            .params()
            .iter()
            .filter(|p| p.name.starts_with("encoder.") && p.kind.trainable())
            .map(|p| p.shape.iter().product::<usize>())
            .sum();
        assert_eq!(n, 11_176_512 - 9_408 + 7 * 7 * 64);
    }

    #[test]
    fn efficientnet_b0_has_its_layout() {
        let g = Graph::build(&spec(
            Backbone::Efficientnet {
                width: 1.0,
                depth: 1.0,
            },
            64,
        ))
        .unwrap();
        let blocks = g
            .nodes
            .iter()
            .filter(|n| n.name.ends_with(".se.scale"))
            .count();
        assert_eq!(blocks, 16);
        assert_eq!(g.nodes[g.outputs.features].shape[0], 1280);
        assert_eq!(round_filters(32, 0.5), 16);
        assert_eq!(round_filters(1280, 1.1), 1408);
    }

    #[test]
    fn decoders_share_parameters_and_stages_are_listed() {
        let g = Graph::build(&spec(Backbone::by_name("simple").unwrap(), 64)).unwrap();
        let params = g.params();
        let dec: Vec<_> = params
            .iter()
            .filter(|p| p.name.starts_with("decoder."))
            .collect();
        // 4 stages x (conv weight + 4 bn tensors) + out weight and bias, each once
        assert_eq!(dec.len(), 4 * 5 + 2);
        assert_eq!(
            encoder_stages(&g),
            vec![
                "encoder.stage0",
                "encoder.stage1",
                "encoder.stage2",
                "encoder.stage3"
            ]
        );
    }

    #[test]
    fn needed_excludes_other_heads() {
        let g = Graph::build(&spec(Backbone::by_name("simple").unwrap(), 64)).unwrap();
        let need = g.needed(&[g.outputs.logits]);
        assert!(need[g.outputs.features] && need[g.outputs.image]);
        assert!(!need[g.outputs.reconstruction] && !need[g.outputs.mu]);
    }

    #[test]
    fn bad_specs_are_refused() {
        let mut s = spec(Backbone::by_name("resnet").unwrap(), 48);
        assert!(Graph::build(&s)
            .unwrap_err()
            .to_string()
            .contains("stride 32"));
        s.preprocess.size = 64;
        s.num_classes = 1;
        assert!(Graph::build(&s)
            .unwrap_err()
            .to_string()
            .contains("at least 2"));
        let json = r#"{"kind":"simple","widths":[8],"depth":1,"extra":3}"#;
        assert!(serde_json::from_str::<Backbone>(json).is_err());
    }
}
