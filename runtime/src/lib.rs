//! # deepgalaxy-runtime
//!
//! The light half of the toolchain: what an astronomer installs on a laptop to use a model
//! they were sent. It never depends on candle, so a laptop install stays light
//! (tract is pure Rust, ONNX Runtime is loaded at run time).
//!
//! * [`inference`]: running an exported model.
//!   [`inference::backend`] is the [`inference::backend::Backend`] trait over tract (always)
//!   and ONNX Runtime (feature `ort`, library from `ORT_DYLIB_PATH`); [`inference::model`] an
//!   exported file with its model card and interface, preprocessing through the core function;
//!   [`inference::infer`] batched inference over many files, decoding overlapping inference,
//!   failures reported per file; [`inference::inputs`] files, folders, globs and catalogs;
//!   [`inference::predict`] top-k classes, expected time and spread, scores, CSV/JSON;
//!   [`inference::sharded`] batch inference split over the ranks of a distributed job;
//!   [`inference::flops`] the arithmetic a graph does; [`inference::summary`] what an ONNX
//!   file holds (interface, parameter count, card) for `deepgalaxy inspect`.
//! * [`library`]: similarity search over a library of simulated mergers.
//!   [`library::index`] is the latent index file (versioned header, model identity, vectors,
//!   per-entry id/file/label/t_myr, SHA-256 checksum), written atomically, damaged, truncated
//!   or mismatched files being errors naming the file and the problem; [`library::search`]
//!   exact k-nearest-neighbour search by kiddo kd-tree or brute force, with identical results
//!   and a measured rule to pick between them; [`library::recommend`] neighbours with SSIM and
//!   the kNN time estimate ([`library::estimate`]); [`library::ssim`] structural similarity
//!   exactly as scikit-image computes it; [`library::explore`] what `deepgalaxy serve` answers
//!   about an uploaded image (prediction, neighbours, its place on the latent map).
//! * [`analysis`]: what a model or a library says as a whole. [`analysis::evaluate`] scores
//!   a model on mergers it never saw; [`analysis::cluster`] is the paper's unsupervised path
//!   (kNN graph, normalised Laplacian, eigengap, spectral clustering, adjusted Rand index) with
//!   its seeded k-means ([`analysis::kmeans`]); [`analysis::projection`] 2-D PCA and t-SNE of
//!   the latents; [`analysis::agreement`] how closely a reduced-precision variant's outputs
//!   follow the FP32 model's.
//! * [`benchmark`]: what `deepgalaxy bench` measures. [`benchmark::precision`] runs every
//!   exported precision on every backend (throughput, speed-up, accuracy, agreement) beside
//!   the Python onnxruntime peer ([`benchmark::peer`]), timed by [`benchmark::timing`] and
//!   set against this CPU's peak ([`benchmark::cpu`]).
//! * [`drawing`]: the PNGs. [`drawing::latent_map`] (scatter coloured by cluster or class),
//!   [`drawing::gallery`] (a query beside its neighbours with captions) and
//!   [`drawing::charts`], drawn with plotters on an in-memory bitmap; text uses the DejaVu
//!   Sans font embedded in `deepgalaxy-core`, so no system font library is needed.
//!
//! Errors: [`Error`] keeps a backend's own error as its source; files and settings are the
//! core crate's error.
//!
//! Benchmarks: `benches/latent_search.rs` (kd-tree against brute force, the basis of
//! [`library::search::Strategy::Auto`]) and `benches/spectral.rs` (clustering time against size).

pub mod analysis;
pub mod benchmark;
pub mod drawing;
pub mod error;
pub mod inference;
pub mod library;

pub use error::{Error, Result};
