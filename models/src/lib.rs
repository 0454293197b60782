//! # deepgalaxy-models
//!
//! Will own the architecture as data: `ModelSpec` (serde) describing the backbone (`simple`,
//! `resnet`, `efficientnet`), the heads (71-class timescale classifier, fully convolutional
//! autoencoder decoder, VAE on the flattened feature maps), input size and channels, and the
//! candle modules built from it. Both the candle forward pass and the ONNX graph are generated
//! from this one description. It trains nothing and writes no files (issue: models and trainer).
