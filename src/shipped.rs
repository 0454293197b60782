//! The model that ships with deepgalaxy, built into the binary so that `predict`, `embed`,
//! `index`, `search` and `evaluate` work on a fresh install without training. How it was made,
//! what it was tested on and how it scored: `shipped/MODEL.md`, and its card
//! (`deepgalaxy inspect shipped/model.onnx`).

/// Where the shipped model lives in the repository; it names the model in messages and
/// outputs.
pub const PATH: &str = "shipped/model.onnx";

/// The shipped model's bytes (FP32 ONNX with its model card).
pub const MODEL: &[u8] = include_bytes!("../shipped/model.onnx");
