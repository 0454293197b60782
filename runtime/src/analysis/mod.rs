//! A model or a library as a whole: evaluation on unseen mergers, spectral clustering with its
//! k-means, and 2-D projections of the latents.

pub mod cluster;
pub mod evaluate;
pub mod kmeans;
pub mod projection;
