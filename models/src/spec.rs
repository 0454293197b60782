//! `ModelSpec`: the architecture as data. It is the one description of a DeepGalaxy network;
//! [`crate::graph::Graph::build`] turns it into layers, which the candle executor runs and the
//! ONNX exporter translates, so the trained and the exported model cannot drift apart.

use deepgalaxy_core::preprocess::Preprocess;
use deepgalaxy_core::Error;
use deepgalaxy_core::Result;
use serde::{Deserialize, Serialize};

/// A whole network: the shared encoder, the three heads, and how its input is prepared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// How images become the network input; its `size` and `channels` are the input shape and
    /// its `normalization` is the network's first operation.
    pub preprocess: Preprocess,
    /// The convolutional encoder E producing the feature maps M.
    pub backbone: Backbone,
    /// Timescale classes (71 in the paper; taken from the data).
    pub num_classes: usize,
    /// Dropout before the classifier's linear layer.
    pub dropout: f32,
    /// Size of the VAE latent z (16 or 32 in the paper).
    pub latent_dim: usize,
}

/// The encoder family and its size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", deny_unknown_fields)]
pub enum Backbone {
    /// Plain stages of `depth` x (3x3 conv, batch norm, ReLU) followed by 2x2 max pooling.
    Simple {
        /// Output channels of each stage; each stage halves the resolution.
        widths: Vec<usize>,
        /// Convolutions per stage.
        depth: usize,
    },
    /// ResNet-18 layout (basic residual blocks, [2, 2, 2, 2]) with widths 64/128/256/512 times
    /// `width`.
    Resnet {
        /// Width multiplier.
        width: f32,
    },
    /// EfficientNet-B0 layout (MBConv: expansion, depthwise conv, squeeze-excite, SiLU) with
    /// width and depth multipliers.
    Efficientnet {
        /// Channel multiplier (rounded to multiples of 8).
        width: f32,
        /// Repeat multiplier (rounded up).
        depth: f32,
    },
}

impl Backbone {
    /// This backbone with its widths multiplied by `factor` (`simple`'s convolution widths
    /// rounded, at least 4 channels; `resnet`'s and `efficientnet`'s width multiplier scaled):
    /// `tune`'s width draws, relative to the trained backbone.
    pub fn scaled(&self, factor: f32) -> Backbone {
        match self {
            Backbone::Simple { widths, depth } => Backbone::Simple {
                widths: widths
                    .iter()
                    .map(|&w| ((w as f32 * factor).round() as usize).max(4))
                    .collect(),
                depth: *depth,
            },
            Backbone::Resnet { width } => Backbone::Resnet {
                width: width * factor,
            },
            Backbone::Efficientnet { width, depth } => Backbone::Efficientnet {
                width: width * factor,
                depth: *depth,
            },
        }
    }

    /// This backbone at width multiplier `width`, as the literature counts it: `resnet`'s over
    /// ResNet-18's 64/128/256/512 channels, `efficientnet`'s over B0's (depth kept), `simple`'s
    /// over the 16/32/64/128 channels [`Backbone::by_name`] gives it: `train --width`.
    pub fn with_width(&self, width: f32) -> Backbone {
        match self {
            Backbone::Simple { .. } => self.scaled(width),
            Backbone::Resnet { .. } => Backbone::Resnet { width },
            Backbone::Efficientnet { depth, .. } => Backbone::Efficientnet {
                width,
                depth: *depth,
            },
        }
    }

    /// The backbone's name on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Backbone::Simple { .. } => "simple",
            Backbone::Resnet { .. } => "resnet",
            Backbone::Efficientnet { .. } => "efficientnet",
        }
    }

    /// A backbone by name with the project's default size for a 2-core CPU: `simple` with
    /// widths 16/32/64/128, `resnet` at width 0.25, `efficientnet` at width 0.5 and depth 0.5.
    pub fn by_name(name: &str) -> Result<Backbone> {
        match name {
            "simple" => Ok(Backbone::Simple {
                widths: vec![16, 32, 64, 128],
                depth: 1,
            }),
            "resnet" => Ok(Backbone::Resnet { width: 0.25 }),
            "efficientnet" => Ok(Backbone::Efficientnet {
                width: 0.5,
                depth: 0.5,
            }),
            other => Err(Error::setting(
                "backbone",
                format!("`{other}` is not one of simple, resnet, efficientnet"),
            )),
        }
    }

    /// Total downsampling factor of the encoder (input side / feature-map side).
    pub fn stride(&self) -> usize {
        match self {
            Backbone::Simple { widths, .. } => 1 << widths.len(),
            Backbone::Resnet { .. } | Backbone::Efficientnet { .. } => 32,
        }
    }
}

impl ModelSpec {
    /// A spec with the given backbone and class count and the project defaults elsewhere.
    pub fn new(backbone: Backbone, preprocess: Preprocess, num_classes: usize) -> ModelSpec {
        ModelSpec {
            preprocess,
            backbone,
            num_classes,
            dropout: 0.2,
            latent_dim: 16,
        }
    }

    /// Input channels.
    pub fn channels(&self) -> usize {
        self.preprocess.channels as usize
    }

    /// Input side in pixels.
    pub fn size(&self) -> usize {
        self.preprocess.size as usize
    }

    /// Checks the spec describes a network that can be built.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::setting("model spec", what));
        self.preprocess.validate()?;
        if self.num_classes < 2 {
            return bad(format!(
                "{} class(es): a classifier needs at least 2 (does the data have one label only?)",
                self.num_classes
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("dropout {} is not in [0, 1)", self.dropout));
        }
        if self.latent_dim == 0 {
            return bad("latent_dim must be positive".into());
        }
        match &self.backbone {
            Backbone::Simple { widths, depth }
                if (widths.is_empty() || widths.contains(&0) || *depth == 0) =>
            {
                return bad("simple backbone needs non-zero widths and depth".into());
            }
            Backbone::Resnet { width } | Backbone::Efficientnet { width, .. }
                if !(*width > 0.0 && *width <= 4.0) =>
            {
                return bad(format!("width multiplier {width} is not in (0, 4]"));
            }
            Backbone::Efficientnet { depth, .. } if !(*depth > 0.0 && *depth <= 4.0) => {
                return bad(format!("depth multiplier {depth} is not in (0, 4]"));
            }
            _ => {}
        }
        let stride = self.backbone.stride();
        if !self.size().is_multiple_of(stride) {
            return bad(format!(
                "image size {} is not a multiple of the {} backbone's stride {stride}",
                self.size(),
                self.backbone.name()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_scale_every_backbone() {
        let s = Backbone::Simple {
            widths: vec![8, 16, 32],
            depth: 1,
        }
        .scaled(0.25);
        assert_eq!(
            s,
            Backbone::Simple {
                widths: vec![4, 4, 8],
                depth: 1
            }
        );
        assert_eq!(
            Backbone::Resnet { width: 0.25 }.scaled(2.0),
            Backbone::Resnet { width: 0.5 }
        );
    }

    #[test]
    fn with_width_sets_the_published_multiplier() {
        let resnet = Backbone::by_name("resnet").unwrap();
        assert_eq!(resnet.with_width(1.0), Backbone::Resnet { width: 1.0 });
        assert_eq!(
            Backbone::by_name("efficientnet").unwrap().with_width(1.0),
            Backbone::Efficientnet {
                width: 1.0,
                depth: 0.5
            }
        );
        assert_eq!(
            Backbone::by_name("simple").unwrap().with_width(0.5),
            Backbone::Simple {
                widths: vec![8, 16, 32, 64],
                depth: 1
            }
        );
    }
}
