//! # deepgalaxy-export
//!
//! ONNX graphs from the same [`deepgalaxy_models::Graph`] the candle model runs: every node
//! becomes one or two ONNX operators and every parameter an initialiser of the same name, so
//! the exported file is the trained network (checked against ONNX Runtime in
//! `tests/onnx_parity.rs`). Written with `onnx-protobuf` (IR 8, opset 17) and the model card in
//! `metadata_props`.
//!
//! [`bundle`] turns a trained model (graph, weights and card) into `model.onnx`, `autoencoder.onnx` and
//! `decoder.onnx`, and records test scores in an exported card (reading a file's interface and card
//! back is `deepgalaxy_runtime::inference::summary`, so the slim build can inspect models).
//!
//! [`import`] reads an ONNX file's float initialisers back as tensors, for transfer learning.
//!
//! Reduced precision ([`variants`] names the files):
//! * [`fp16`]: float16 weights and compute with float32 inputs and outputs;
//! * INT8 static quantisation: [`quantize`] (the integer arithmetic), [`calibrate`] (ranges
//!   measured by running the candle model on calibration images), [`qdq`] (QDQ graphs) and
//!   [`qoperator`] (QLinearConv / MatMulInteger graphs); [`stem`] rewrites the first convolution
//!   exactly (normalisation folded in, space-to-depth) so that it runs in integers too. How closely a variant follows FP32 is
//!   measured where models run: `deepgalaxy_runtime::analysis::agreement`.
//! * [`Error`]: keeps its sources (protobuf's, the model crate's, the core crate's).

pub mod bundle;
pub mod calibrate;
pub mod error;
pub mod fp16;
pub mod import;
mod int8_parts;
pub mod onnx;
pub mod qdq;
pub mod qoperator;
pub mod quantize;
pub mod stem;
pub mod variants;

pub use bundle::{export_model, record_test};
pub use error::{Error, Result};
pub use onnx::{export, to_bytes, Target};
