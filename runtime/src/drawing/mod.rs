//! The PNGs the runtime draws: latent maps, neighbour galleries and small charts, on plotters
//! with the embedded font.

pub mod charts;
pub mod gallery;
pub mod latent_map;
pub(crate) mod plot;
