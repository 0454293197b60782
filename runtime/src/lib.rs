//! # deepgalaxy-runtime
//!
//! Will own the light half of the toolchain: a `Backend` over tract (default, pure Rust) and
//! ONNX Runtime (feature `ort`), batched inference, the latent index (kiddo kd-tree and brute
//! force), kNN graph and spectral clustering, SSIM and galleries. It must never depend on
//! candle, so a laptop install stays light (issue: runtime).
