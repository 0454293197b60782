//! # deepgalaxy-runtime
//!
//! The light half of the toolchain: what an astronomer installs on a laptop to use a model
//! they were sent. It never depends on candle, so a laptop install stays light.
//!
//! Model-independent parts (this crate today):
//!
//! * [`ssim`]: structural similarity exactly as scikit-image computes it (Gaussian window 11,
//!   sigma 1.5, K1 0.01, K2 0.03, data range stated), to validate recommendations.
//! * [`index`]: the latent index file (versioned header, model identity, vectors, per-entry
//!   id/file/label/t_myr, SHA-256 checksum), written atomically; damaged, truncated or
//!   mismatched files are errors naming the file and the problem.
//! * [`search`]: exact k-nearest-neighbour search by kiddo kd-tree (latent sizes 8/16/32/64)
//!   or brute force, with identical results, and a measured rule to pick between them.
//! * [`estimate`]: the kNN estimate of a query's time (mean and spread of its neighbours'
//!   `t_myr`).
//! * [`cluster`]: the paper's unsupervised path: kNN graph with self-tuning affinities,
//!   normalised graph Laplacian, eigengap, Ng-Jordan-Weiss spectral clustering; and the
//!   adjusted Rand index. [`kmeans`] is its seeded k-means.
//! * [`latent_map`]: 2-D PCA and t-SNE (the `bhtsne` crate) of the latents, drawn as a PNG
//!   scatter plot coloured by cluster (legend) or class (colour bar).
//! * [`gallery`]: a PNG of a query image beside its neighbours with captions (label, time,
//!   distance, SSIM).
//!
//! Plots are drawn with plotters on an in-memory bitmap; text uses an embedded DejaVu Sans
//! font (DejaVu Sans, from `deepgalaxy-core`) laid out with `ab_glyph`, so no system font
//! library is needed. Benchmarks: `benches/latent_search.rs` (kd-tree vs brute force, the
//! basis of [`search::Strategy::Auto`]) and `benches/spectral.rs` (clustering time vs size).
//!
//! Running models (no candle either: tract is pure Rust, ONNX Runtime is loaded at run time):
//!
//! * [`backend`]: the [`backend::Backend`] trait over tract (always) and ONNX Runtime (feature
//!   `ort`, library from `ORT_DYLIB_PATH`).
//! * [`model`]: an exported file with its model card and interface, preprocessing through the
//!   core function; [`infer`]: batched inference over many files, decoding overlapping
//!   inference, failures reported per file; [`inputs`]: files, folders, globs and catalogs.
//! * [`sharded`]: batch inference split over the ranks of a distributed job.
//! * [`predict`]: top-k classes, expected time and spread, scores, CSV/JSON;
//!   [`recommend`]: neighbours with SSIM and the kNN time estimate.

pub mod backend;
pub mod charts;
pub mod cluster;
pub mod estimate;
pub mod evaluate;
pub mod flops;
pub mod gallery;
pub mod index;
pub mod infer;
pub mod inputs;
pub mod kmeans;
pub mod latent_map;
pub mod model;
mod plot;
pub mod predict;
pub mod projection;
pub mod recommend;
pub mod search;
pub mod sharded;
pub mod ssim;
