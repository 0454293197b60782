//! # deepgalaxy-export
//!
//! ONNX graphs from the same [`deepgalaxy_models::Graph`] the candle model runs: every node
//! becomes one or two ONNX operators and every parameter an initialiser of the same name, so
//! the exported file is the trained network (checked against ONNX Runtime in
//! `tests/onnx_parity.rs`). Written with `onnx-protobuf` (IR 8, opset 17) and the model card in
//! `metadata_props`.
//!
//! [`files`] turns a training checkpoint into `model.onnx`, `autoencoder.onnx` and
//! `decoder.onnx`, and reads an ONNX file's interface and card back.
//!
//! [`import`] reads an ONNX file's float initialisers back as tensors, for transfer learning.
//!
//! Still to come (issue 6): FP16 and INT8 variants and the agreement report.

pub mod files;
pub mod import;
pub mod onnx;

pub use files::{export_checkpoint, inspect_onnx};
pub use onnx::{export, to_bytes, Target};
