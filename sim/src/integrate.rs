//! Kick-drift-kick leapfrog with a fixed step (symplectic, time-reversible).

use crate::gravity::{forces_of, Forces, Solver};
use crate::particles::Particles;

/// A running N-body system: particles, current forces and time.
pub struct Simulation {
    /// Particle state.
    pub particles: Particles,
    /// Forces at the current positions.
    pub forces: Forces,
    /// Current time (internal units).
    pub time: f64,
    /// Plummer softening length (kpc).
    pub softening: f64,
    /// Force solver.
    pub solver: Solver,
}

impl Simulation {
    /// Starts a simulation at time 0, computing the initial forces.
    pub fn new(particles: Particles, softening: f64, solver: Solver) -> Simulation {
        let forces = forces_of(&particles, softening, solver);
        Simulation {
            particles,
            forces,
            time: 0.0,
            softening,
            solver,
        }
    }

    /// Advances by one KDK step of length `dt`.
    pub fn step(&mut self, dt: f64) {
        let h = 0.5 * dt;
        kick(&mut self.particles, &self.forces, h);
        for (x, v) in self.particles.pos.iter_mut().zip(&self.particles.vel) {
            for k in 0..3 {
                x[k] += v[k] * dt;
            }
        }
        self.forces = forces_of(&self.particles, self.softening, self.solver);
        kick(&mut self.particles, &self.forces, h);
        self.time += dt;
    }

    /// Kinetic energy.
    pub fn kinetic_energy(&self) -> f64 {
        self.particles.kinetic_energy()
    }

    /// Potential energy from the current forces.
    pub fn potential_energy(&self) -> f64 {
        self.forces.potential_energy(&self.particles.mass)
    }

    /// Total energy K + W.
    pub fn total_energy(&self) -> f64 {
        self.kinetic_energy() + self.potential_energy()
    }

    /// Virial ratio 2K/|W| with W the potential energy (1 for a system in virial equilibrium
    /// under unsoftened gravity).
    pub fn virial_ratio(&self) -> f64 {
        2.0 * self.kinetic_energy() / self.potential_energy().abs()
    }

    /// Clausius virial sum_i m_i x_i . a_i (in the centre-of-mass frame). It equals W for
    /// Newtonian gravity; with Plummer softening it is the term the virial theorem balances
    /// against 2K, and it is smaller in magnitude than W in dense regions.
    pub fn clausius_virial(&self) -> f64 {
        let (c, _) = self.particles.center_of_mass();
        let p = &self.particles;
        (0..p.len())
            .map(|i| {
                let x = p.pos[i];
                let a = self.forces.acc[i];
                p.mass[i] * ((x[0] - c[0]) * a[0] + (x[1] - c[1]) * a[1] + (x[2] - c[2]) * a[2])
            })
            .sum()
    }

    /// Virial ratio 2K / |sum m x.a| (kinetic energy in the centre-of-mass frame), the
    /// softening-consistent form of 2K/|W|.
    pub fn clausius_virial_ratio(&self) -> f64 {
        let (_, v) = self.particles.center_of_mass();
        let p = &self.particles;
        let k: f64 = (0..p.len())
            .map(|i| {
                let u = p.vel[i];
                let d = [u[0] - v[0], u[1] - v[1], u[2] - v[2]];
                0.5 * p.mass[i] * (d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
            })
            .sum();
        2.0 * k / self.clausius_virial().abs()
    }
}

fn kick(p: &mut Particles, f: &Forces, h: f64) {
    for (v, a) in p.vel.iter_mut().zip(&f.acc) {
        for k in 0..3 {
            v[k] += a[k] * h;
        }
    }
}
