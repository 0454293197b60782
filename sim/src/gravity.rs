//! Gravitational accelerations: Barnes-Hut tree or direct summation, parallel over particles.
//!
//! Each particle's force is summed by one thread in a fixed order (the tree walk or the index
//! order), so results are bit-identical whatever the number of rayon threads.

use crate::particles::Particles;
use crate::tree::Octree;
use crate::units::G;
use rayon::prelude::*;

/// How forces are computed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Solver {
    /// Barnes-Hut octree with quadrupole moments and the given opening angle.
    Tree {
        /// Opening angle (default 0.6).
        theta: f64,
    },
    /// Exact O(N^2) summation in f64 (reference and small-N runs).
    Direct,
}

/// Default opening angle of the tree.
pub const DEFAULT_THETA: f64 = 0.6;

impl Default for Solver {
    fn default() -> Self {
        Solver::Tree {
            theta: DEFAULT_THETA,
        }
    }
}

/// Accelerations and potentials (per unit mass) of all particles.
pub struct Forces {
    /// Acceleration of each particle.
    pub acc: Vec<[f64; 3]>,
    /// Gravitational potential at each particle (self-interaction excluded).
    pub pot: Vec<f64>,
}

impl Forces {
    /// Total potential energy W = 1/2 sum m_i phi_i.
    pub fn potential_energy(&self, mass: &[f64]) -> f64 {
        0.5 * self.pot.iter().zip(mass).map(|(p, m)| p * m).sum::<f64>()
    }
}

/// Computes accelerations and potentials with Plummer softening `eps`.
pub fn compute_forces(pos: &[[f64; 3]], mass: &[f64], eps: f64, solver: Solver) -> Forces {
    let n = pos.len();
    let mut acc = vec![[0.0; 3]; n];
    let mut pot = vec![0.0; n];
    match solver {
        Solver::Tree { theta } => {
            let tree = Octree::build(pos, mass, theta);
            let (a, p) = tree.forces(eps);
            for i in 0..n {
                acc[i] = a[i].map(|c| c * G);
                pot[i] = p[i] * G;
            }
        }
        Solver::Direct => {
            let eps2 = eps * eps;
            acc.par_iter_mut()
                .zip(pot.par_iter_mut())
                .enumerate()
                .with_min_len(16)
                .for_each(|(i, (a, p))| {
                    let xi = pos[i];
                    let mut s = [0.0; 3];
                    let mut ph = 0.0;
                    for j in 0..n {
                        if j == i {
                            continue;
                        }
                        let d = [pos[j][0] - xi[0], pos[j][1] - xi[1], pos[j][2] - xi[2]];
                        let r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2] + eps2;
                        let inv_r = 1.0 / r2.sqrt();
                        let f = mass[j] * inv_r * inv_r * inv_r;
                        s[0] += f * d[0];
                        s[1] += f * d[1];
                        s[2] += f * d[2];
                        ph -= mass[j] * inv_r;
                    }
                    *a = s.map(|c| c * G);
                    *p = ph * G;
                });
        }
    }
    Forces { acc, pot }
}

/// Forces on a particle set.
pub fn forces_of(p: &Particles, eps: f64, solver: Solver) -> Forces {
    compute_forces(&p.pos, &p.mass, eps, solver)
}
