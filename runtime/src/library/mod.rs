//! Similarity search over a library of simulated mergers: the latent index file, exact kNN
//! search, the kNN time estimate and SSIM, and what `deepgalaxy serve` answers about an
//! uploaded image (`explore`).

pub mod estimate;
pub mod explore;
pub mod index;
pub mod recommend;
pub mod search;
pub mod ssim;
