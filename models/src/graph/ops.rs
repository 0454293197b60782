//! What a graph is made of: the operations ([`Op`]), the nodes that apply them, the named
//! outputs, and the parameters each node owns.

use serde::Serialize;

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
