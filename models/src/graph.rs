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

use serde::Serialize;

use crate::spec::{Backbone, ModelSpec};
use deepgalaxy_core::Result;

/// Index of a node in [`Graph::nodes`].
pub type NodeId = usize;

/// One operation. Shapes are per sample (batch first is implied).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Op {
    /// The image input, `C x H x W` pixel values in [0, 1].
    Image,
    /// `(x - mean[c]) / std[c]` per channel: the preprocessing's normalisation.
    Normalize {
        /// Per-channel mean.
        mean: Vec<f32>,
        /// Per-channel standard deviation.
        std: Vec<f32>,
    },
    /// 2-D convolution with square kernel; parameters `{param}.weight` (and `.bias`).
    Conv {
        /// Parameter prefix.
        param: String,
        /// Input channels.
        c_in: usize,
        /// Output channels.
        c_out: usize,
        /// Kernel side.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Zero padding on each side.
        padding: usize,
        /// Groups (`c_in` for depthwise).
        groups: usize,
        /// Whether there is a bias.
        bias: bool,
    },
    /// Batch normalisation; parameters `{param}.weight`, `.bias` and buffers
    /// `.running_mean`, `.running_var`.
    BatchNorm {
        /// Parameter prefix.
        param: String,
        /// Channels.
        channels: usize,
    },
    /// max(x, 0).
    Relu,
    /// x * sigmoid(x).
    Silu,
    /// 1 / (1 + exp(-x)).
    Sigmoid,
    /// 2x2 max pooling, stride 2.
    MaxPool2,
    /// Mean over H and W, keeping them as 1 x 1.
    GlobalAvgPool,
    /// `C x H x W` to `C*H*W`.
    Flatten,
    /// `y = x W^T + b`; parameters `{param}.weight` (out x in) and `.bias`.
    Linear {
        /// Parameter prefix.
        param: String,
        /// Input features.
        inputs: usize,
        /// Output features.
        outputs: usize,
    },
    /// Dropout with probability `p` in training, identity in inference.
    Dropout {
        /// Drop probability.
        p: f32,
    },
    /// Nearest-neighbour 2x upsampling.
    Upsample2,
    /// Element-wise sum of two nodes of the same shape.
    Add,
    /// Product of a `C x H x W` node and a `C x 1 x 1` node (squeeze-excite scaling).
    Mul,
    /// `F` to `C x H x W`.
    Reshape {
        /// Target shape.
        shape: [usize; 3],
    },
    /// Softmax over the features.
    Softmax,
    /// The VAE's z from (mu, logvar): `mu + eps * exp(0.5 * logvar)` in training, `mu` in
    /// inference (and the input of `decoder.onnx`).
    Sample,
}

/// A node: an operation on earlier nodes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    /// Unique name (becomes the ONNX node name).
    pub name: String,
    /// What it computes.
    pub op: Op,
    /// Earlier nodes it reads.
    pub inputs: Vec<NodeId>,
    /// Output shape per sample.
    pub shape: Vec<usize>,
}

/// The nodes other code asks for by meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Outputs {
    /// The image input.
    pub image: NodeId,
    /// The encoder's feature maps M.
    pub features: NodeId,
    /// Classifier logits.
    pub logits: NodeId,
    /// Class probabilities.
    pub probabilities: NodeId,
    /// VAE mean (the latent used for search).
    pub mu: NodeId,
    /// VAE log-variance.
    pub logvar: NodeId,
    /// VAE sample z.
    pub z: NodeId,
    /// FCAE reconstruction of the input from M.
    pub reconstruction: NodeId,
    /// VAE reconstruction from z.
    pub vae_reconstruction: NodeId,
}

/// What kind of parameter a tensor is, for initialisation and training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ParamKind {
    /// Convolution or linear weight: Kaiming-uniform with PyTorch's default bound.
    Weight {
        /// Fan-in used for the bound.
        fan_in: usize,
    },
    /// Bias: uniform in +-1/sqrt(fan_in), PyTorch's default.
    Bias {
        /// Fan-in used for the bound.
        fan_in: usize,
    },
    /// Batch-norm scale, starts at 1.
    Ones,
    /// Batch-norm shift, starts at 0.
    Zeros,
    /// Batch-norm running mean (not trained), starts at 0.
    RunningMean,
    /// Batch-norm running variance (not trained), starts at 1.
    RunningVar,
}

impl ParamKind {
    /// Whether the optimizer updates it (running statistics are buffers).
    pub fn trainable(self) -> bool {
        !matches!(self, ParamKind::RunningMean | ParamKind::RunningVar)
    }
}

/// A named tensor the graph needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Param {
    /// Full name, e.g. `encoder.stage0.conv0.weight`.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Kind.
    pub kind: ParamKind,
}

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

struct Builder {
    nodes: Vec<Node>,
}

impl Builder {
    fn push(&mut self, name: String, op: Op, inputs: Vec<NodeId>, shape: Vec<usize>) -> NodeId {
        self.nodes.push(Node {
            name,
            op,
            inputs,
            shape,
        });
        self.nodes.len() - 1
    }

    fn shape(&self, id: NodeId) -> &[usize] {
        &self.nodes[id].shape
    }

    fn chw(&self, id: NodeId) -> (usize, usize, usize) {
        let s = self.shape(id);
        (s[0], s[1], s[2])
    }

    #[allow(clippy::too_many_arguments)]
    fn conv(
        &mut self,
        x: NodeId,
        name: &str,
        c_out: usize,
        kernel: usize,
        stride: usize,
        groups: usize,
        bias: bool,
    ) -> NodeId {
        let (c_in, h, w) = self.chw(x);
        let padding = kernel / 2;
        let out = |n: usize| (n + 2 * padding - kernel) / stride + 1;
        let op = Op::Conv {
            param: name.into(),
            c_in,
            c_out,
            kernel,
            stride,
            padding,
            groups,
            bias,
        };
        self.push(name.into(), op, vec![x], vec![c_out, out(h), out(w)])
    }

    fn bn(&mut self, x: NodeId, name: &str) -> NodeId {
        let shape = self.shape(x).to_vec();
        let op = Op::BatchNorm {
            param: name.into(),
            channels: shape[0],
        };
        self.push(name.into(), op, vec![x], shape)
    }

    fn unary(&mut self, x: NodeId, name: String, op: Op) -> NodeId {
        let s = self.shape(x).to_vec();
        let shape = match op {
            Op::MaxPool2 => vec![s[0], s[1] / 2, s[2] / 2],
            Op::Upsample2 => vec![s[0], s[1] * 2, s[2] * 2],
            Op::GlobalAvgPool => vec![s[0], 1, 1],
            Op::Flatten => vec![s.iter().product()],
            _ => s,
        };
        self.push(name, op, vec![x], shape)
    }

    /// conv -> batch norm -> activation, named `{name}.conv`, `{name}.bn`, `{name}.act`.
    fn conv_bn_act(
        &mut self,
        x: NodeId,
        name: &str,
        c_out: usize,
        kernel: usize,
        stride: usize,
        groups: usize,
        act: Option<Op>,
    ) -> NodeId {
        let y = self.conv(
            x,
            &format!("{name}.conv"),
            c_out,
            kernel,
            stride,
            groups,
            false,
        );
        let y = self.bn(y, &format!("{name}.bn"));
        match act {
            Some(op) => self.unary(y, format!("{name}.act"), op),
            None => y,
        }
    }

    fn binary(&mut self, a: NodeId, b: NodeId, name: String, op: Op) -> NodeId {
        let shape = self.shape(a).to_vec();
        self.push(name, op, vec![a, b], shape)
    }

    fn linear(&mut self, x: NodeId, name: &str, outputs: usize) -> NodeId {
        let inputs = self.shape(x)[0];
        let op = Op::Linear {
            param: name.into(),
            inputs,
            outputs,
        };
        self.push(name.into(), op, vec![x], vec![outputs])
    }
}

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

fn simple(b: &mut Builder, mut x: NodeId, widths: &[usize], depth: usize) -> NodeId {
    for (i, &w) in widths.iter().enumerate() {
        for j in 0..depth {
            x = b.conv_bn_act(
                x,
                &format!("encoder.stage{i}.conv{j}"),
                w,
                3,
                1,
                1,
                Some(Op::Relu),
            );
        }
        x = b.unary(x, format!("encoder.stage{i}.pool"), Op::MaxPool2);
    }
    x
}

fn scaled(c: usize, width: f32) -> usize {
    ((c as f32 * width).round() as usize).max(8)
}

/// ResNet-18. The stem's 3x3/2 max pool is a 2x2/2 one: candle has no backward pass for
/// pooling whose kernel differs from its stride; the output shape is the same.
fn resnet(b: &mut Builder, x: NodeId, width: f32) -> NodeId {
    let w0 = scaled(64, width);
    let mut x = b.conv_bn_act(x, "encoder.stem", w0, 7, 2, 1, Some(Op::Relu));
    x = b.unary(x, "encoder.stem.pool".into(), Op::MaxPool2);
    for (li, base) in [64, 128, 256, 512].into_iter().enumerate() {
        let c = scaled(base, width);
        for bi in 0..2 {
            let name = format!("encoder.layer{}.block{bi}", li + 1);
            let stride = if li > 0 && bi == 0 { 2 } else { 1 };
            let c_in = b.shape(x)[0];
            let y = b.conv_bn_act(x, &format!("{name}.a"), c, 3, stride, 1, Some(Op::Relu));
            let y = b.conv_bn_act(y, &format!("{name}.b"), c, 3, 1, 1, None);
            let shortcut = if stride != 1 || c_in != c {
                b.conv_bn_act(x, &format!("{name}.down"), c, 1, stride, 1, None)
            } else {
                x
            };
            let sum = b.binary(y, shortcut, format!("{name}.add"), Op::Add);
            x = b.unary(sum, format!("{name}.act"), Op::Relu);
        }
    }
    x
}

/// EfficientNet's channel rounding: multiples of 8, never more than 10% below the target.
fn round_filters(c: usize, width: f32) -> usize {
    let target = c as f32 * width;
    let mut r = (((target + 4.0) as usize) / 8 * 8).max(8);
    if (r as f32) < 0.9 * target {
        r += 8;
    }
    r
}

/// EfficientNet-B0 (Tan & Le 2019) with width/depth multipliers; no drop-connect.
fn efficientnet(b: &mut Builder, x: NodeId, width: f32, depth: f32) -> NodeId {
    // (expansion, kernel, stride, output channels, repeats)
    const B0: [(usize, usize, usize, usize, usize); 7] = [
        (1, 3, 1, 16, 1),
        (6, 3, 2, 24, 2),
        (6, 5, 2, 40, 2),
        (6, 3, 2, 80, 3),
        (6, 5, 1, 112, 3),
        (6, 5, 2, 192, 4),
        (6, 3, 1, 320, 1),
    ];
    let mut x = b.conv_bn_act(
        x,
        "encoder.stem",
        round_filters(32, width),
        3,
        2,
        1,
        Some(Op::Silu),
    );
    for (si, &(expand, kernel, stride, c, repeats)) in B0.iter().enumerate() {
        let c_out = round_filters(c, width);
        let repeats = (repeats as f32 * depth).ceil().max(1.0) as usize;
        for r in 0..repeats {
            let name = format!("encoder.stage{}.block{r}", si + 1);
            let s = if r == 0 { stride } else { 1 };
            x = mbconv(b, x, &name, expand, kernel, s, c_out);
        }
    }
    b.conv_bn_act(
        x,
        "encoder.head",
        round_filters(1280, width),
        1,
        1,
        1,
        Some(Op::Silu),
    )
}

fn mbconv(
    b: &mut Builder,
    x: NodeId,
    name: &str,
    expand: usize,
    kernel: usize,
    stride: usize,
    c_out: usize,
) -> NodeId {
    let c_in = b.shape(x)[0];
    let mid = c_in * expand;
    let mut y = x;
    if expand != 1 {
        y = b.conv_bn_act(y, &format!("{name}.expand"), mid, 1, 1, 1, Some(Op::Silu));
    }
    y = b.conv_bn_act(
        y,
        &format!("{name}.dw"),
        mid,
        kernel,
        stride,
        mid,
        Some(Op::Silu),
    );
    // squeeze-excite on the depthwise output, reduced to a quarter of the block's input
    let se = (c_in / 4).max(1);
    let s = b.unary(y, format!("{name}.se.pool"), Op::GlobalAvgPool);
    let s = b.conv(s, &format!("{name}.se.reduce"), se, 1, 1, 1, true);
    let s = b.unary(s, format!("{name}.se.act"), Op::Silu);
    let s = b.conv(s, &format!("{name}.se.expand"), mid, 1, 1, 1, true);
    let s = b.unary(s, format!("{name}.se.gate"), Op::Sigmoid);
    y = b.binary(y, s, format!("{name}.se.scale"), Op::Mul);
    y = b.conv_bn_act(y, &format!("{name}.project"), c_out, 1, 1, 1, None);
    if stride == 1 && c_in == c_out {
        y = b.binary(y, x, format!("{name}.add"), Op::Add);
    }
    y
}

/// The fully convolutional decoder: `stages` x (3x3 conv, batch norm, ReLU, 2x upsample),
/// then a 3x3 conv to the image channels and a sigmoid. Parameters are named `decoder.*`
/// whichever input it decodes, so both passes share them; `tag` keeps node names unique.
/// It starts with a convolution, never an upsample, on its input: candle's upsample backward
/// overwrites rather than adds the gradient of a tensor read twice (M feeds three heads).
fn decoder(b: &mut Builder, x: NodeId, stages: usize, channels: usize, tag: &str) -> NodeId {
    let mut y = x;
    let c_m = b.shape(x)[0];
    for i in 0..stages {
        let c = (c_m >> (i + 1)).clamp(8, 256);
        let conv = b.conv(y, &format!("decoder.stage{i}.conv"), c, 3, 1, 1, false);
        b.nodes[conv].name = format!("{tag}.stage{i}.conv");
        let bn = b.bn(conv, &format!("decoder.stage{i}.bn"));
        b.nodes[bn].name = format!("{tag}.stage{i}.bn");
        let act = b.unary(bn, format!("{tag}.stage{i}.act"), Op::Relu);
        y = b.unary(act, format!("{tag}.stage{i}.up"), Op::Upsample2);
    }
    let out = b.conv(y, "decoder.out", channels, 3, 1, 1, true);
    b.nodes[out].name = format!("{tag}.out");
    b.unary(out, tag.to_string(), Op::Sigmoid)
}

#[cfg(test)]
mod tests {
    use super::*;
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
