//! Physical scalings of the internal N-body units.
//!
//! The integrator works with G = 1. Lengths are in kpc and masses in 1e10 solar masses, so
//! with G = 4.30091e-6 kpc (km/s)^2 / Msun the velocity unit is sqrt(G * 1e10 Msun / kpc)
//! = 207.386 km/s and the time unit is kpc / (207.386 km/s) = 4.7148 Myr.

/// Gravitational constant in internal units.
pub const G: f64 = 1.0;
/// One internal length unit in kpc.
pub const LENGTH_KPC: f64 = 1.0;
/// One internal mass unit in solar masses.
pub const MASS_MSUN: f64 = 1.0e10;
/// One internal velocity unit in km/s.
pub const VELOCITY_KMS: f64 = 207.386;
/// One internal time unit in Myr.
pub const TIME_MYR: f64 = 4.7148;
