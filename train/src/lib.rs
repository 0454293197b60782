//! # deepgalaxy-train
//!
//! Will own batching, augmentation, losses, optimizers (Adam, AdamW, SGD, AdaDelta), schedules,
//! the training loop, dataset splits (`by-simulation` by default, the paper's `random` 80/20 for
//! comparison), metrics, atomic checkpoints with bit-exact resume, and MPI data parallelism
//! behind the `mpi` feature. It knows nothing about ONNX (issues: models and trainer; MPI).
