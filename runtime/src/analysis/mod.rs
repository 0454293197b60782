//! A model or a library as a whole: evaluation on unseen mergers, how closely a reduced-precision
//! variant follows FP32, spectral clustering with its k-means, and 2-D projections of the latents.

pub mod agreement;
pub mod cluster;
pub mod evaluate;
pub mod kmeans;
pub mod projection;
