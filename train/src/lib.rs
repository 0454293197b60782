//! # deepgalaxy-train
//!
//! Training a DeepGalaxy network (see `deepgalaxy-models` for the architecture):
//!
//! * [`data`]: the dataset in memory (catalog or original HDF5), preprocessed once through the
//!   core contract and kept as 8/16-bit values; batches.
//! * [`split`]: `by-simulation` (default: whole simulations held out) or the paper's `random`.
//! * [`augment`]: flips and quarter turns, Gaussian noise.
//! * [`loss`], [`optim`], [`schedule`]: PyTorch-equivalent losses and optimizers (checked
//!   against PyTorch), learning-rate schedules with warm-up.
//! * [`trainer`]: the loop, validation ([`metrics`]), metrics files ([`report`]), PNG plots
//!   ([`plots`]) and atomic [`checkpoint`]s with bit-exact resume.
//! * [`memory`]: what a configuration needs, checked before anything is loaded.
//! * [`distributed`]: data parallelism over MPI ranks (feature `mpi`) behind a small
//!   `deepgalaxy_collective::Collective` trait, with a single-process implementation always
//!   compiled.
//!
//! [`Error`] keeps its sources: candle's, the model crate's and the core crate's errors.
//!
//! It knows nothing about ONNX.

pub mod augment;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod distributed;
pub mod error;
pub mod loss;
pub mod memory;
pub mod metrics;
pub mod optim;
pub mod plots;
pub mod report;
pub mod schedule;
pub mod split;
pub mod trainer;
pub mod tune;

pub use config::{Heads, LossWeights, TrainConfig};
pub use error::{Error, Result};
pub use trainer::{
    resume, resume_with, train, train_from, train_with, Observer, Outcome, ResumeChanges,
};
