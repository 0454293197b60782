//! Rigid dark halos: each galaxy's halo as its analytic potential, moving as one body.
//!
//! Why: a live halo of a few thousand particles heats the disk it holds by two-body
//! encounters (Lacey & Ostriker 1985), so fast that at the paper's particle counts the disks
//! thicken several-fold within the 350 Myr window (benches/README.md, "Disk stability"). A
//! rigid halo has no graininess: its disk heats only through its own particles, which all go
//! into the disk.
//!
//! Each halo ([`RigidHalo`]) is a body at its galaxy's centre with the galaxy model's halo
//! profile. Its field acts on every disk particle, and each particle pulls the halo back, so
//! momentum is conserved. The two halos pull each other as the centres of two live galaxies
//! do ([`crate::orbit::Pull::new`], the pull the orbit is set up with, tabulated once): mostly
//! each centre pulled by the other's mass within their separation. Two rigid spheres would
//! pull each other only weakly while they overlap, and their galaxies came back after the first
//! passage later than live ones. What a live halo does besides, its wake draining
//! the orbit so that the galaxies sink and coalesce, is Chandrasekhar's dynamical friction
//! ([`RigidHalos`]), applied equal and opposite to both halos. Rigid halos are not stripped,
//! so the friction's Coulomb logarithm is the one free number; it is measured against
//! live-halo mergers (benches/README.md, "Rigid halos").

use crate::ic::{GalaxyModel, JeansTable};
use crate::orbit::Pull;
use crate::units::G;
use rayon::prelude::*;
use std::f64::consts::PI;

/// Coulomb logarithm of the dynamical friction between two rigid halos: the value whose
/// mergers swing out and come back after the first passage as live-halo mergers of the same
/// galaxies do (benches/README.md, "Rigid halos").
pub const DEFAULT_COULOMB_LOG: f64 = 3.0;

/// One galaxy's rigid halo: its profile and its centre's motion.
#[derive(Clone, Debug)]
pub struct RigidHalo {
    /// The galaxy (its halo profile, mass and truncation; the disk's mass counts as the
    /// satellite's in dynamical friction).
    pub model: GalaxyModel,
    /// Position of the halo's centre.
    pub pos: [f64; 3],
    /// Velocity of the halo's centre.
    pub vel: [f64; 3],
    jeans: JeansTable,
}

impl RigidHalo {
    /// The halo of galaxy `model`, centred at `pos` and moving with `vel`.
    pub fn new(model: GalaxyModel, pos: [f64; 3], vel: [f64; 3]) -> RigidHalo {
        RigidHalo {
            model,
            pos,
            vel,
            jeans: JeansTable::new(&model),
        }
    }

    /// The halo's mass (the body's inertia).
    pub fn mass(&self) -> f64 {
        self.model.halo_mass
    }

    /// Acceleration and potential of the halo's field at `x`.
    pub fn field(&self, x: [f64; 3]) -> ([f64; 3], f64) {
        let d = [x[0] - self.pos[0], x[1] - self.pos[1], x[2] - self.pos[2]];
        let r = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
        (self.model.halo_accel(d), self.model.halo_potential(r))
    }
}

/// The rigid halos of a simulation (one per galaxy, galaxy `k` holding halo `k`), their
/// accelerations and the energy they hold.
pub struct RigidHalos {
    /// The halos, galaxy 0 first.
    pub bodies: Vec<RigidHalo>,
    /// Coulomb logarithm of the dynamical friction between two halos (0 switches it off).
    pub coulomb_log: f64,
    /// Acceleration of each halo at the current state.
    pub acc: Vec<[f64; 3]>,
    /// Potential energy of the particles in the halos' fields.
    pub particle_energy: f64,
    /// Mutual potential energy of the two halos.
    pub pair_energy: f64,
    pair: Option<Pull>,
}

fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn norm(a: [f64; 3]) -> f64 {
    (a[0] * a[0] + a[1] * a[1] + a[2] * a[2]).sqrt()
}

impl RigidHalos {
    /// One or two halos (an isolated galaxy or a merger) with dynamical friction of Coulomb
    /// logarithm `coulomb_log` between them.
    ///
    /// # Panics
    /// With more than two halos: a merger has two galaxies.
    pub fn new(bodies: Vec<RigidHalo>, coulomb_log: f64) -> RigidHalos {
        assert!(
            bodies.len() <= 2,
            "{} rigid halos: at most two",
            bodies.len()
        );
        let pair = (bodies.len() == 2).then(|| {
            let halo_only = |g: &GalaxyModel| GalaxyModel {
                disk_mass: 0.0,
                ..*g
            };
            Pull::new(&halo_only(&bodies[0].model), &halo_only(&bodies[1].model))
        });
        let n = bodies.len();
        RigidHalos {
            bodies,
            coulomb_log,
            acc: vec![[0.0; 3]; n],
            particle_energy: 0.0,
            pair_energy: 0.0,
            pair,
        }
    }

    /// Adds the halos' fields to the particles' accelerations `acc` and sets the halos' own
    /// accelerations (the particles' pull, each other's and friction) and energies. Each sum
    /// runs in a fixed order, so the result does not depend on the number of threads.
    pub fn add_forces(&mut self, pos: &[[f64; 3]], mass: &[f64], acc: &mut [[f64; 3]]) {
        let bodies = &self.bodies;
        let per_particle: Vec<([[f64; 3]; 2], f64)> = acc
            .par_iter_mut()
            .zip(pos.par_iter().zip(mass.par_iter()))
            .with_min_len(256)
            .map(|(a, (&x, &m))| {
                let mut pull = [[0.0; 3]; 2];
                let mut energy = 0.0;
                for (k, h) in bodies.iter().enumerate() {
                    let (g, phi) = h.field(x);
                    for c in 0..3 {
                        a[c] += g[c];
                        pull[k][c] = -m * g[c];
                    }
                    energy += m * phi;
                }
                (pull, energy)
            })
            .collect();
        let mut halo_force = vec![[0.0; 3]; bodies.len()];
        self.particle_energy = 0.0;
        for (pull, energy) in &per_particle {
            for (k, f) in halo_force.iter_mut().enumerate() {
                for c in 0..3 {
                    f[c] += pull[k][c];
                }
            }
            self.particle_energy += energy;
        }
        self.pair_energy = 0.0;
        if let (Some(pair), [h0, h1]) = (&self.pair, &bodies[..]) {
            let d = sub(h1.pos, h0.pos);
            let r = norm(d);
            let reduced = h0.mass() * h1.mass() / (h0.mass() + h1.mass());
            self.pair_energy = reduced * pair.potential(r);
            let mut f = [0.0; 3];
            if r > 0.0 {
                let towards = reduced * pair.accel(r) / r;
                f = d.map(|c| c * towards);
            }
            let drag = self.friction(h0, h1);
            for c in 0..3 {
                halo_force[0][c] += f[c] + drag[c];
                halo_force[1][c] -= f[c] + drag[c];
            }
        }
        for ((a, f), h) in self.acc.iter_mut().zip(&halo_force).zip(bodies) {
            *a = f.map(|c| c / h.mass());
        }
    }

    /// Dynamical friction force on `h0` (the opposite acts on `h1`): the drag on each galaxy as
    /// a satellite moving through the other's halo at their relative velocity, weighted by the
    /// other's share of the total mass (each galaxy's share of the relative motion in the
    /// centre-of-mass frame: in a minor merger, mostly the small one's drag),
    /// Chandrasekhar's formula with a Maxwellian of the halo's Jeans dispersion and the
    /// density at the separation. The satellite's mass is its mass within the separation: the
    /// part of an extended galaxy outside it overlaps the host rather than moving through it as
    /// one body (and in a live halo it is stripped), so the drag of two whole galaxies at a
    /// few kiloparsecs would stop them before their first passage, which live halos do not.
    fn friction(&self, h0: &RigidHalo, h1: &RigidHalo) -> [f64; 3] {
        if self.coulomb_log <= 0.0 {
            return [0.0; 3];
        }
        let v = sub(h0.vel, h1.vel);
        let speed = norm(v);
        if speed == 0.0 {
            return [0.0; 3];
        }
        let r = norm(sub(h1.pos, h0.pos));
        let drag = |satellite: &RigidHalo, host: &RigidHalo| {
            let rho = host.model.halo_density(r);
            let (sigma2, _) = host.jeans.at(r);
            let x = speed / (2.0 * sigma2.max(1e-30_f64)).sqrt();
            let fraction = libm::erf(x) - 2.0 * x / PI.sqrt() * (-x * x).exp();
            let m = satellite.model.mass_within(r);
            4.0 * PI * G * G * m * m * rho * self.coulomb_log * fraction / (speed * speed)
        };
        let (m0, m1) = (h0.model.total_mass(), h1.model.total_mass());
        let force = (m1 * drag(h0, h1) + m0 * drag(h1, h0)) / (m0 + m1);
        v.map(|c| -force * c / speed)
    }

    /// Kinetic energy of the halos.
    pub fn kinetic_energy(&self) -> f64 {
        self.bodies
            .iter()
            .map(|h| 0.5 * h.mass() * norm(h.vel).powi(2))
            .sum()
    }

    /// Kicks the halos by their accelerations over `h`.
    pub fn kick(&mut self, h: f64) {
        for (b, a) in self.bodies.iter_mut().zip(&self.acc) {
            for c in 0..3 {
                b.vel[c] += a[c] * h;
            }
        }
    }

    /// Moves the halos with their velocities over `dt`.
    pub fn drift(&mut self, dt: f64) {
        for b in &mut self.bodies {
            for c in 0..3 {
                b.pos[c] += b.vel[c] * dt;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gravity::Solver;
    use crate::ic::HaloProfile;
    use crate::integrate::Simulation;
    use crate::particles::{Component, Particles};

    fn galaxy(halo: HaloProfile) -> GalaxyModel {
        GalaxyModel {
            halo,
            ..GalaxyModel::default()
        }
    }

    #[test]
    fn the_field_is_minus_the_gradient_of_the_potential_inside_and_beyond_the_cut() {
        for halo in [
            HaloProfile::Hernquist { scale_radius: 4.0 },
            HaloProfile::Nfw {
                concentration: 10.0,
            },
        ] {
            let h = RigidHalo::new(galaxy(halo), [1.0, -2.0, 0.5], [0.0; 3]);
            let dir = [0.48, 0.6, 0.64];
            for r in [0.05, 0.7, 4.0, 30.0, 99.0, 150.0] {
                let at = |r: f64| [1.0 + r * dir[0], -2.0 + r * dir[1], 0.5 + r * dir[2]];
                let (g, _) = h.field(at(r));
                let step = 1e-5 * r;
                let slope = (h.field(at(r + step)).1 - h.field(at(r - step)).1) / (2.0 * step);
                let radial = g[0] * dir[0] + g[1] * dir[1] + g[2] * dir[2];
                assert!(
                    (radial + slope).abs() < 1e-6 * slope.abs(),
                    "{halo:?} r={r}: {radial} against {}",
                    -slope
                );
                // the field points at the centre
                assert!((norm(g) - radial.abs()).abs() < 1e-12 * norm(g));
            }
            // continuous at the cut and Keplerian beyond it
            let m = h.model.halo_mass;
            assert!((h.model.halo_potential(100.0) + m / 100.0).abs() < 1e-12);
            assert!((h.model.halo_potential(100.0 - 1e-9) + m / 100.0).abs() < 1e-9);
        }
    }

    /// Two halos on a bound orbit, each with a ring of light particles.
    fn pair(coulomb_log: f64) -> Simulation {
        let g1 = GalaxyModel::default();
        let g2 = g1.scaled(0.5, 0.5);
        let mut p = Particles::default();
        for (k, (centre, vel)) in [
            ([-5.0, 0.0, 0.0], [0.0, -0.1, 0.0]),
            ([10.0, 0.0, 0.0], [0.0, 0.2, 0.0]),
        ]
        .into_iter()
        .enumerate()
        {
            for j in 0..8 {
                let phi = std::f64::consts::TAU * j as f64 / 8.0;
                p.pos.push([
                    centre[0] + 2.0 * phi.cos(),
                    centre[1] + 2.0 * phi.sin(),
                    0.0,
                ]);
                p.vel
                    .push([vel[0] - 0.4 * phi.sin(), vel[1] + 0.4 * phi.cos(), 0.0]);
                p.mass.push(0.01);
                p.component.push(Component::Disk);
                p.galaxy.push(k as u8);
            }
        }
        let halos = RigidHalos::new(
            vec![
                RigidHalo::new(g1, [-5.0, 0.0, 0.0], [0.0, -0.1, 0.0]),
                RigidHalo::new(g2, [10.0, 0.0, 0.0], [0.0, 0.2, 0.0]),
            ],
            coulomb_log,
        );
        Simulation::with_halos(p, Some(halos), 0.1, Solver::Direct)
    }

    fn momentum(sim: &Simulation) -> [f64; 3] {
        let mut total = [0.0; 3];
        let p = &sim.particles;
        for i in 0..p.len() {
            for c in 0..3 {
                total[c] += p.mass[i] * p.vel[i][c];
            }
        }
        for h in &sim.halos.as_ref().unwrap().bodies {
            for c in 0..3 {
                total[c] += h.mass() * h.vel[c];
            }
        }
        total
    }

    #[test]
    fn halos_and_particles_conserve_momentum_and_without_friction_energy() {
        let mut sim = pair(0.0);
        let e0 = sim.total_energy();
        let p0 = momentum(&sim);
        for _ in 0..2000 {
            sim.step(0.01);
        }
        let de = ((sim.total_energy() - e0) / e0).abs();
        assert!(de < 1e-3, "energy drift {de}");
        let p1 = momentum(&sim);
        for c in 0..3 {
            assert!((p1[c] - p0[c]).abs() < 1e-10, "{p0:?} -> {p1:?}");
        }
    }

    #[test]
    fn friction_drains_the_orbit_until_the_halos_merge_and_keeps_momentum() {
        let (mut free, mut dragged) = (pair(0.0), pair(3.0));
        let p0 = momentum(&dragged);
        let e0 = dragged.total_energy();
        let mut last = e0;
        let (mut free_widest, mut dragged_widest) = (0.0f64, 0.0f64);
        for s in 0..40_000 {
            free.step(0.005);
            dragged.step(0.005);
            // friction only takes energy away, to within the leapfrog's own error (which
            // swings as the centres cross, where their pull turns over): compared every 500
            // steps
            if s % 500 == 499 {
                let e = dragged.total_energy();
                assert!(
                    e <= last + 1e-2 * e0.abs(),
                    "step {s}: energy rose {last} -> {e}"
                );
                last = e;
            }
            if s >= 30_000 {
                free_widest = free_widest.max(crate::phase::separation(&free).unwrap());
                dragged_widest = dragged_widest.max(crate::phase::separation(&dragged).unwrap());
            }
        }
        // the free pair still swings out; the dragged one has sunk to one centre
        assert!(
            dragged_widest < 0.5 && free_widest > 5.0,
            "widest over the last quarter: dragged {dragged_widest}, free {free_widest}"
        );
        // the orbit's energy went into friction; without it the energy stays
        assert!(last < e0 - 2.0 * e0.abs(), "{e0} -> {last}");
        let free_drift = (free.total_energy() / e0 - 1.0).abs();
        assert!(free_drift < 1e-3, "{free_drift}");
        let p1 = momentum(&dragged);
        for c in 0..3 {
            assert!((p1[c] - p0[c]).abs() < 1e-9, "{p0:?} -> {p1:?}");
        }
    }
}
