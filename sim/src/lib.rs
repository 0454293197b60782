//! # deepgalaxy-sim
//!
//! Galaxy-merger N-body simulations that produce the DeepGalaxy training set (Cai et al.
//! 2020): initial conditions ([`ic`]), Barnes-Hut gravity ([`tree`], [`gravity`]), leapfrog
//! integration ([`integrate`]), the merger grid ([`merger`]), cameras ([`camera`]),
//! rendering ([`render`]) and the labeled dataset on disk ([`dataset`]).
//!
//! ## Units
//! G = 1, length 1 kpc, mass 1e10 Msun; hence velocity 207.386 km/s and time 4.7148 Myr
//! (see [`units`]). Catalog times are in Myr.
//!
//! ## Why a hand-written octree
//! The maintained Rust spatial crates (kd-trees, `rstar`, `kiddo`) answer neighbour queries;
//! none carries per-node mass moments, and the Barnes-Hut crates on crates.io are toy
//! monopole codes in f64 without softening, rayon, or a skip-pointer walk. This tree stores
//! nodes in f32 (half the memory traffic), accumulates moments and per-particle sums in f64,
//! uses quadrupole moments with the Barnes (1994) offset-aware opening criterion and Plummer
//! softening, and walks each particle independently so results do not depend on the number
//! of threads.

pub mod camera;
pub mod dataset;
pub mod error;
pub mod gravity;
pub mod ic;
pub mod integrate;
pub mod merger;
pub mod particles;
pub mod render;
pub mod tree;
pub mod units;

pub use dataset::{simulate_dataset, OutputFormat, Progress, SimulateConfig};
pub use error::{Error, Result};
pub use merger::{Grid, MergerConfig, MergerSpec};
pub use render::{BitDepth, Stretch};
