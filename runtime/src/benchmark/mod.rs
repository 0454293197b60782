//! Measurements a user can reproduce on their own machine, behind `deepgalaxy bench`:
//! [`timing`] (warm-up, repeats, median and latency percentiles), [`cpu`] (this CPU's
//! theoretical peak, for achieved GFLOP/s beside it), [`peer`] (Python onnxruntime on the same
//! files, the peer row) and [`precision`] (every exported precision on every backend:
//! throughput, speed-up over FP32, accuracy and agreement, with its report and plots).

pub mod cpu;
pub mod peer;
pub mod precision;
pub mod timing;
