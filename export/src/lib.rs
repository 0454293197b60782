//! # deepgalaxy-export
//!
//! Will own the translation of a `ModelSpec` and its trained weights into ONNX graphs
//! (`model.onnx`, `decoder.onnx`, `autoencoder.onnx`) with the model card in `metadata_props`,
//! FP16 conversion, INT8 static quantization with calibration, and loading ONNX initialisers
//! back into candle variables for transfer learning (issue: ONNX export).
