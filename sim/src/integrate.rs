//! Kick-drift-kick leapfrog with a fixed step (symplectic, time-reversible; with rigid halos'
//! dynamical friction it is neither, by design).

use crate::gravity::{forces_of, Forces, Solver};
use crate::halo::RigidHalos;
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
    /// The galaxies' rigid halos, when their halos are not made of particles.
    pub halos: Option<RigidHalos>,
}

impl Simulation {
    /// Starts a simulation at time 0, computing the initial forces.
    pub fn new(particles: Particles, softening: f64, solver: Solver) -> Simulation {
        Simulation::with_halos(particles, None, softening, solver)
    }

    /// As [`Simulation::new`], the particles also moving in the fields of `halos`.
    pub fn with_halos(
        particles: Particles,
        mut halos: Option<RigidHalos>,
        softening: f64,
        solver: Solver,
    ) -> Simulation {
        let forces = all_forces(&particles, halos.as_mut(), softening, solver);
        Simulation {
            particles,
            forces,
            time: 0.0,
            softening,
            solver,
            halos,
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
        if let Some(halos) = &mut self.halos {
            halos.kick(h);
            halos.drift(dt);
        }
        self.forces = all_forces(
            &self.particles,
            self.halos.as_mut(),
            self.softening,
            self.solver,
        );
        kick(&mut self.particles, &self.forces, h);
        if let Some(halos) = &mut self.halos {
            halos.kick(h);
        }
        self.time += dt;
    }

    /// Kinetic energy (particles and rigid halos).
    pub fn kinetic_energy(&self) -> f64 {
        self.particles.kinetic_energy() + self.halos.as_ref().map_or(0.0, |h| h.kinetic_energy())
    }

    /// Potential energy from the current forces: the particles' own, and with rigid halos the
    /// particles' in the halos' fields and the halos' mutual energy.
    pub fn potential_energy(&self) -> f64 {
        self.forces.potential_energy(&self.particles.mass)
            + self
                .halos
                .as_ref()
                .map_or(0.0, |h| h.particle_energy + h.pair_energy)
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

    /// Clausius virial sum_i m_i x_i . a_i of the particles (in their centre-of-mass frame;
    /// a diagnostic of live galaxies). It equals W for
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

/// The particles' gravity, plus the rigid halos' fields (which also sets the halos'
/// accelerations).
fn all_forces(
    p: &Particles,
    halos: Option<&mut RigidHalos>,
    softening: f64,
    solver: Solver,
) -> Forces {
    let mut forces = forces_of(p, softening, solver);
    if let Some(halos) = halos {
        halos.add_forces(&p.pos, &p.mass, &mut forces.acc);
    }
    forces
}

fn kick(p: &mut Particles, f: &Forces, h: f64) {
    for (v, a) in p.vel.iter_mut().zip(&f.acc) {
        for k in 0..3 {
            v[k] += a[k] * h;
        }
    }
}
