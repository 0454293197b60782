//! # deepgalaxy-models
//!
//! The architecture as data and its candle execution.
//!
//! * [`spec`]: [`ModelSpec`], the serialisable description of a network (backbone `simple`,
//!   `resnet` or `efficientnet`; classifier, FCAE decoder and VAE heads; input size, channels
//!   and preprocessing). It is written to every checkpoint's `spec.json` and ONNX model card.
//! * [`graph`]: the spec built into a list of named layers. This is the one source of truth:
//!   the candle executor here and the ONNX exporter both walk it.
//! * [`exec`]: the candle forward pass of a graph (training and inference modes), with the
//!   weights ([`Weights`]) initialised deterministically from a seed.
//!
//! * [`ops`]: the CPU kernels (convolutions, pooling, ReLU, training-mode batch norm) as fused
//!   ops with their backward passes.
//! * [`reference`]: the deterministic tensor fill shared with the PyTorch reference scripts.
//!
//! [`Error`]: a failed tensor operation keeps candle's error as its source.
//!
//! This crate trains nothing and writes no files: losses, optimizers and checkpoints are
//! `deepgalaxy-train`'s.

pub mod error;
pub mod exec;
pub mod graph;
pub mod ops;
pub mod reference;
pub mod spec;
#[cfg(test)]
mod testing;

pub use error::{Error, Result};
pub use exec::{forward, Weights};
pub use graph::{Graph, Op, Outputs};
pub use spec::{Backbone, ModelSpec};
