//! Equilibrium initial conditions of one disk galaxy: a live dark-matter halo plus an
//! exponential stellar disk.
//!
//! * Halo radii are drawn by inverting the cumulative mass profile (NFW truncated at the
//!   virial radius, as in the paper, or a truncated Hernquist sphere).
//! * Halo velocities are isotropic Gaussians with the dispersion from the spherical Jeans
//!   equation `sigma^2(r) = 1/rho(r) * int_r^rt rho G M(r')/r'^2 dr'` in the potential of halo
//!   plus (spherically averaged) disk, capped below the local escape speed. Truncation makes
//!   `sigma -> 0` at the edge, so the sphere has no mass to lose.
//! * Disk particles follow `Sigma ~ exp(-R/Rd)` and `sech^2(z/z0)`. Circular speeds come from
//!   the softened tree accelerations of the sampled particles themselves (binned in radius),
//!   so they include the disk's own flattened gravity and the softening. Dispersions: vertical
//!   from the isothermal sheet `sigma_z^2 = pi G Sigma z0`, radial from a Toomre Q, azimuthal
//!   from the epicyclic ratio, with the asymmetric-drift correction on the mean rotation.

use crate::gravity::{compute_forces, Solver};
use crate::particles::{Component, Particles};
use crate::phase::shrinking_sphere_centre;
use crate::units::G;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::f64::consts::PI;

/// Radial density profile of the dark halo.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HaloProfile {
    /// Navarro-Frenk-White, truncated at the halo radius; scale radius = radius / concentration.
    Nfw {
        /// Concentration r_vir / r_s.
        concentration: f64,
    },
    /// Hernquist sphere truncated at the halo radius.
    Hernquist {
        /// Scale radius a (kpc).
        scale_radius: f64,
    },
}

/// Structural parameters of one galaxy (internal units: kpc, 1e10 Msun).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GalaxyModel {
    /// Halo density profile.
    pub halo: HaloProfile,
    /// Halo mass inside the truncation radius.
    pub halo_mass: f64,
    /// Truncation (virial) radius of the halo.
    pub halo_radius: f64,
    /// Stellar disk mass.
    pub disk_mass: f64,
    /// Exponential scale length of the disk.
    pub disk_scale_length: f64,
    /// Vertical sech^2 scale height of the disk.
    pub disk_scale_height: f64,
    /// Toomre stability parameter that sets the radial velocity dispersion.
    pub toomre_q: f64,
}

impl Default for GalaxyModel {
    /// A compact disk galaxy: a Hernquist halo (scale radius 4 kpc) holding 1e11 Msun inside
    /// its 100 kpc cut-off (92.5% of its total mass), and a 1e10 Msun disk with a 1 kpc scale
    /// length and 0.1 kpc scale height (circular speed ~150 km/s at 5 kpc).
    ///
    /// Why Hernquist and a distant cut: a halo truncated at its virial radius has a cold edge
    /// (the Jeans dispersion falls to zero there), which then falls in and contracts the
    /// inner halo by ~13% within 5 dynamical times (measured with the NFW option); a cut at
    /// 25 scale radii keeps that edge's infall time (~300 time units) beyond any merger run.
    fn default() -> Self {
        GalaxyModel {
            halo: HaloProfile::Hernquist { scale_radius: 4.0 },
            halo_mass: 10.0,
            halo_radius: 100.0,
            disk_mass: 1.0,
            disk_scale_length: 1.0,
            disk_scale_height: 0.1,
            toomre_q: 1.2,
        }
    }
}

impl GalaxyModel {
    /// The same galaxy with every length multiplied by `size` and every mass by `mass`.
    pub fn scaled(&self, size: f64, mass: f64) -> GalaxyModel {
        GalaxyModel {
            halo: match self.halo {
                HaloProfile::Nfw { concentration } => HaloProfile::Nfw { concentration },
                HaloProfile::Hernquist { scale_radius } => HaloProfile::Hernquist {
                    scale_radius: scale_radius * size,
                },
            },
            halo_mass: self.halo_mass * mass,
            halo_radius: self.halo_radius * size,
            disk_mass: self.disk_mass * mass,
            disk_scale_length: self.disk_scale_length * size,
            disk_scale_height: self.disk_scale_height * size,
            toomre_q: self.toomre_q,
        }
    }

    /// Total mass of the galaxy.
    pub fn total_mass(&self) -> f64 {
        self.halo_mass + self.disk_mass
    }

    /// Halo mass inside radius r.
    pub fn halo_mass_within(&self, r: f64) -> f64 {
        let rt = self.halo_radius;
        let r = r.min(rt);
        match self.halo {
            HaloProfile::Nfw { concentration } => {
                let rs = rt / concentration;
                let m = |x: f64| (1.0 + x).ln() - x / (1.0 + x);
                self.halo_mass * m(r / rs) / m(concentration)
            }
            HaloProfile::Hernquist { scale_radius: a } => {
                let f = |r: f64| (r / (r + a)).powi(2);
                self.halo_mass * f(r) / f(rt)
            }
        }
    }

    /// Gravitational potential of the halo alone at radius r (continuous at the truncation
    /// radius, Keplerian beyond it).
    pub fn halo_potential(&self, r: f64) -> f64 {
        let rt = self.halo_radius;
        if r >= rt {
            return -G * self.halo_mass / r;
        }
        match self.halo {
            HaloProfile::Nfw { concentration } => {
                let rs = rt / concentration;
                let mc = (1.0 + concentration).ln() - concentration / (1.0 + concentration);
                // ln(1 + r/rs) / r, which tends to 1/rs at the centre
                let inner = |r: f64| {
                    if r < 1e-9 * rs {
                        1.0 / rs
                    } else {
                        (r / rs).ln_1p() / r
                    }
                };
                -G * self.halo_mass / mc * (inner(r) - inner(rt)) - G * self.halo_mass / rt
            }
            HaloProfile::Hernquist { scale_radius: a } => {
                let m_inf = self.halo_mass / (rt / (rt + a)).powi(2);
                -G * m_inf * (1.0 / (r + a) - 1.0 / (rt + a)) - G * self.halo_mass / rt
            }
        }
    }

    /// Acceleration of the halo's field at `x` from its centre: `-G M(<r) x / r^3`.
    pub fn halo_accel(&self, x: [f64; 3]) -> [f64; 3] {
        let r2 = x[0] * x[0] + x[1] * x[1] + x[2] * x[2];
        if r2 == 0.0 {
            return [0.0; 3];
        }
        let r = r2.sqrt();
        let f = -G * self.halo_mass_within(r) / (r2 * r);
        x.map(|c| c * f)
    }

    /// Halo density at radius r (zero beyond the truncation radius).
    pub fn halo_density(&self, r: f64) -> f64 {
        let rt = self.halo_radius;
        if r > rt {
            return 0.0;
        }
        match self.halo {
            HaloProfile::Nfw { concentration } => {
                let rs = rt / concentration;
                let mc = (1.0 + concentration).ln() - concentration / (1.0 + concentration);
                let x = r / rs;
                self.halo_mass / (4.0 * PI * rs.powi(3) * mc) / (x * (1.0 + x).powi(2))
            }
            HaloProfile::Hernquist { scale_radius: a } => {
                let m_inf = self.halo_mass / (rt / (rt + a)).powi(2);
                m_inf * a / (2.0 * PI * r * (r + a).powi(3))
            }
        }
    }

    /// Disk mass inside a sphere of radius r (spherical approximation of the disk).
    pub fn disk_mass_within(&self, r: f64) -> f64 {
        let x = r / self.disk_scale_length;
        self.disk_mass * (1.0 - (1.0 + x) * (-x).exp())
    }

    /// Total mass inside a sphere of radius r.
    pub fn mass_within(&self, r: f64) -> f64 {
        self.halo_mass_within(r) + self.disk_mass_within(r)
    }

    /// Dynamical time sqrt(r^3 / G M(<r)) at radius r.
    pub fn dynamical_time(&self, r: f64) -> f64 {
        (r.powi(3) / (G * self.mass_within(r))).sqrt()
    }
}

/// A standard normal deviate (Box-Muller; deterministic for a given RNG state).
pub fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * PI * u2).cos()
}

/// Solves `f(x) = target` for increasing f on [lo, hi] by bisection.
fn bisect(f: impl Fn(f64) -> f64, target: f64, mut lo: f64, mut hi: f64) -> f64 {
    for _ in 0..80 {
        let mid = 0.5 * (lo + hi);
        if f(mid) < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// Tabulated Jeans dispersion and potential of the halo, on a logarithmic radius grid.
#[derive(Clone, Debug)]
pub(crate) struct JeansTable {
    ln_r: Vec<f64>,
    sigma2: Vec<f64>,
    phi: Vec<f64>,
}

impl JeansTable {
    pub(crate) fn new(model: &GalaxyModel) -> JeansTable {
        let n = 600;
        let rt = model.halo_radius;
        let r_min = 1e-5 * rt;
        let ln_r: Vec<f64> = (0..n)
            .map(|i| r_min.ln() + (rt / r_min).ln() * i as f64 / (n - 1) as f64)
            .collect();
        let r: Vec<f64> = ln_r.iter().map(|l| l.exp()).collect();
        let grav: Vec<f64> = r
            .iter()
            .map(|&r| G * model.mass_within(r) / (r * r))
            .collect();
        let mut sigma2 = vec![0.0; n];
        let mut phi = vec![0.0; n];
        // The disk extends past the halo edge a little; count all of it in the edge potential.
        phi[n - 1] = -G * (model.halo_mass + model.disk_mass) / rt;
        let mut integral = 0.0;
        for i in (0..n - 1).rev() {
            let dl = ln_r[i + 1] - ln_r[i];
            let f = |j: usize| model.halo_density(r[j]) * grav[j] * r[j];
            integral += 0.5 * (f(i) + f(i + 1)) * dl;
            sigma2[i] = integral / model.halo_density(r[i]);
            phi[i] = phi[i + 1] - 0.5 * (grav[i] * r[i] + grav[i + 1] * r[i + 1]) * dl;
        }
        JeansTable { ln_r, sigma2, phi }
    }

    /// Isotropic velocity dispersion squared and potential at radius r.
    pub(crate) fn at(&self, r: f64) -> (f64, f64) {
        let l = r.ln();
        let n = self.ln_r.len();
        if l <= self.ln_r[0] {
            return (self.sigma2[0], self.phi[0]);
        }
        if l >= self.ln_r[n - 1] {
            return (self.sigma2[n - 1], self.phi[n - 1]);
        }
        let step = self.ln_r[1] - self.ln_r[0];
        let i = (((l - self.ln_r[0]) / step) as usize).min(n - 2);
        let t = (l - self.ln_r[i]) / step;
        (
            self.sigma2[i] * (1.0 - t) + self.sigma2[i + 1] * t,
            self.phi[i] * (1.0 - t) + self.phi[i + 1] * t,
        )
    }
}

/// Draws a galaxy in equilibrium, centred at rest at the origin with its disk in the x-y
/// plane rotating counter-clockwise about +z. `softening` is the Plummer length used in the
/// simulation (it enters the disk's circular speeds).
pub fn sample_galaxy(
    model: &GalaxyModel,
    n_halo: usize,
    n_disk: usize,
    softening: f64,
    rng: &mut ChaCha8Rng,
) -> Particles {
    let mut p = Particles::default();
    let rt = model.halo_radius;
    let jeans = JeansTable::new(model);
    let m_halo = model.halo_mass / n_halo.max(1) as f64;
    for _ in 0..n_halo {
        let u: f64 = rng.random::<f64>() * model.halo_mass;
        let r = bisect(|r| model.halo_mass_within(r), u, 0.0, rt);
        let dir = random_direction(rng);
        let (s2, phi) = jeans.at(r);
        let s = s2.max(0.0).sqrt();
        let v_max2 = 0.95 * 2.0 * phi.abs();
        let mut v = [0.0; 3];
        for _ in 0..100 {
            v = [s * normal(rng), s * normal(rng), s * normal(rng)];
            if v[0] * v[0] + v[1] * v[1] + v[2] * v[2] < v_max2 {
                break;
            }
        }
        p.pos.push(dir.map(|c| c * r));
        p.vel.push(v);
        p.mass.push(m_halo);
        p.component.push(Component::Halo);
        p.galaxy.push(0);
    }
    restore_jeans_energy(&mut p, &jeans);
    let disk_start = p.len();
    place_disk(&mut p, model, n_disk, rng);
    if n_disk > 0 {
        set_disk_velocities(&mut p, disk_start, model, softening, |_| [0.0; 3], rng);
    }
    p.to_center_of_mass_frame();
    // the origin at the galaxy's densest point, as the merger's tracker finds it, rather than
    // at its centre of mass: with a few thousand particles drawn at random the two differ by
    // up to a kiloparsec, which the orbit would otherwise carry into the centres' angular
    // momentum and so into the pericentre (the momentum stays zero)
    if let Some(c) = shrinking_sphere_centre(&p, 0) {
        p.shift(c.map(|x| -x), [0.0; 3]);
    }
    p
}

/// Draws the disk of a galaxy whose halo is rigid ([`crate::halo`]): `n_disk` disk particles
/// in equilibrium in their own softened gravity plus the halo's analytic field, centred at
/// rest on the origin, where the halo's centre is. Disk in the x-y plane, rotating
/// counter-clockwise about +z.
pub fn sample_disk(
    model: &GalaxyModel,
    n_disk: usize,
    softening: f64,
    rng: &mut ChaCha8Rng,
) -> Particles {
    let mut p = Particles::default();
    place_disk(&mut p, model, n_disk, rng);
    p.to_center_of_mass_frame();
    if n_disk > 0 {
        set_disk_velocities(&mut p, 0, model, softening, |x| model.halo_accel(x), rng);
    }
    p.to_center_of_mass_frame();
    p
}

/// Appends `n_disk` disk particles at rest: `Sigma ~ exp(-R/Rd)` (cut at 15 scale lengths)
/// and `sech^2(z/z0)`.
fn place_disk(p: &mut Particles, model: &GalaxyModel, n_disk: usize, rng: &mut ChaCha8Rng) {
    let rd = model.disk_scale_length;
    let z0 = model.disk_scale_height;
    let m_disk = model.disk_mass / n_disk.max(1) as f64;
    for _ in 0..n_disk {
        let u: f64 = rng.random::<f64>();
        // Cumulative mass of an exponential disk is 1 - (1 + x) e^-x; cut at 15 scale lengths.
        let x = bisect(|x| 1.0 - (1.0 + x) * (-x).exp(), u, 0.0, 15.0);
        let phi = 2.0 * PI * rng.random::<f64>();
        let uz: f64 = rng.random::<f64>().clamp(1e-9, 1.0 - 1e-9);
        let z = z0 * (2.0 * uz - 1.0).atanh();
        p.pos.push([x * rd * phi.cos(), x * rd * phi.sin(), z]);
        p.vel.push([0.0; 3]);
        p.mass.push(m_disk);
        p.component.push(Component::Disk);
        p.galaxy.push(0);
    }
}

/// The escape-speed cap removes the Gaussian's tail and with it ~5% of the kinetic energy the
/// Jeans equation asks for, which makes the halo collapse. Restore it locally: in radial bins
/// of 64 particles, scale speeds so the bin's kinetic energy is 3/2 sum m sigma^2, keeping
/// every particle below 0.99 of its escape speed.
fn restore_jeans_energy(p: &mut Particles, jeans: &JeansTable) {
    let mut idx: Vec<usize> = (0..p.len()).collect();
    let radius = |x: [f64; 3]| (x[0] * x[0] + x[1] * x[1] + x[2] * x[2]).sqrt();
    idx.sort_by(|&a, &b| radius(p.pos[a]).total_cmp(&radius(p.pos[b])));
    for bin in idx.chunks(64) {
        let (mut want, mut have) = (0.0, 0.0);
        for &i in bin {
            let (s2, _) = jeans.at(radius(p.pos[i]));
            let v = p.vel[i];
            want += 1.5 * s2.max(0.0);
            have += 0.5 * (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
        }
        if have <= 0.0 {
            continue;
        }
        let f = (want / have).sqrt();
        for &i in bin {
            let (_, phi) = jeans.at(radius(p.pos[i]));
            let v = p.vel[i];
            let speed = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
            let limit = 0.99 * (2.0 * phi.abs()).sqrt();
            let g = if speed * f > limit {
                limit / speed.max(1e-300)
            } else {
                f
            };
            p.vel[i] = v.map(|c| c * g);
        }
    }
}

/// Gives the disk particles (from `start` on) rotation plus dispersion in the potential of
/// all particles plus the external field `external` (a rigid halo's, or none).
fn set_disk_velocities(
    p: &mut Particles,
    start: usize,
    model: &GalaxyModel,
    softening: f64,
    external: impl Fn([f64; 3]) -> [f64; 3],
    rng: &mut ChaCha8Rng,
) {
    let mut forces = compute_forces(&p.pos, &p.mass, softening, Solver::Tree { theta: 0.4 });
    for (a, &x) in forces.acc.iter_mut().zip(&p.pos) {
        let e = external(x);
        for k in 0..3 {
            a[k] += e[k];
        }
    }
    let n = p.len();
    // Radial acceleration times R, binned in cylindrical radius.
    let mut samples: Vec<(f64, f64)> = (start..n)
        .map(|i| {
            let x = p.pos[i];
            let r = (x[0] * x[0] + x[1] * x[1]).sqrt().max(1e-12);
            let a_r = radial(&forces.acc[i], x).min(0.0);
            (r, -a_r * r)
        })
        .collect();
    samples.sort_by(|a, b| a.0.total_cmp(&b.0));
    let per_bin = (samples.len() / 40).max(16);
    let bins: Vec<(f64, f64)> = samples
        .chunks(per_bin)
        .map(|c| {
            let k = c.len() as f64;
            (
                c.iter().map(|s| s.0).sum::<f64>() / k,
                c.iter().map(|s| s.1).sum::<f64>() / k,
            )
        })
        .collect();
    let vc2_at = |r: f64| -> f64 {
        if r <= bins[0].0 {
            return bins[0].1 * r / bins[0].0;
        }
        for w in bins.windows(2) {
            if r <= w[1].0 {
                let t = (r - w[0].0) / (w[1].0 - w[0].0);
                return w[0].1 * (1.0 - t) + w[1].1 * t;
            }
        }
        // Beyond the last bin: Keplerian fall-off.
        let last = bins[bins.len() - 1];
        last.1 * last.0 / r
    };
    let rd = model.disk_scale_length;
    let sigma0 = model.disk_mass / (2.0 * PI * rd * rd);
    for i in start..n {
        let x = p.pos[i];
        let r = (x[0] * x[0] + x[1] * x[1]).sqrt().max(1e-12);
        let vc2 = vc2_at(r).max(0.0);
        let vc = vc2.sqrt();
        let sigma_surface = sigma0 * (-r / rd).exp();
        let sigma_z = (PI * G * sigma_surface * model.disk_scale_height).sqrt();
        // Epicyclic frequency for a locally flat rotation curve: kappa = sqrt(2) vc / R.
        let kappa = 2f64.sqrt() * vc / r.max(0.1 * rd);
        let sigma_r = (model.toomre_q * 3.36 * G * sigma_surface / kappa.max(1e-12)).min(0.5 * vc);
        let sigma_phi = sigma_r / 2f64.sqrt();
        let vphi2 = vc2 + sigma_r * sigma_r * (0.5 - 2.0 * r / rd);
        let vphi = vphi2.max(0.0).sqrt() + sigma_phi * normal(rng);
        let vr = sigma_r * normal(rng);
        let vz = sigma_z * normal(rng);
        let (c, s) = (x[0] / r, x[1] / r);
        p.vel[i] = [vr * c - vphi * s, vr * s + vphi * c, vz];
    }
}

/// Cylindrical radial component of an acceleration at position x.
fn radial(a: &[f64; 3], x: [f64; 3]) -> f64 {
    let r = (x[0] * x[0] + x[1] * x[1]).sqrt().max(1e-12);
    (a[0] * x[0] + a[1] * x[1]) / r
}

/// A uniformly distributed unit vector.
pub fn random_direction(rng: &mut ChaCha8Rng) -> [f64; 3] {
    let z: f64 = 2.0 * rng.random::<f64>() - 1.0;
    let phi = 2.0 * PI * rng.random::<f64>();
    let s = (1.0 - z * z).max(0.0).sqrt();
    [s * phi.cos(), s * phi.sin(), z]
}

/// Rotates positions and velocities of all particles so that +z maps onto `axis`, after
/// a rotation by `angle` about z.
pub fn orient(p: &mut Particles, axis: [f64; 3], angle: f64) {
    let n = axis;
    // An orthonormal basis (e1, e2, n).
    let helper = if n[2].abs() < 0.9 {
        [0.0, 0.0, 1.0]
    } else {
        [1.0, 0.0, 0.0]
    };
    let e1 = normalize(cross(helper, n));
    let e2 = cross(n, e1);
    let (c, s) = (angle.cos(), angle.sin());
    let rot = |v: [f64; 3]| -> [f64; 3] {
        let x = c * v[0] - s * v[1];
        let y = s * v[0] + c * v[1];
        let z = v[2];
        [
            x * e1[0] + y * e2[0] + z * n[0],
            x * e1[1] + y * e2[1] + z * n[1],
            x * e1[2] + y * e2[2] + z * n[2],
        ]
    };
    for v in p.pos.iter_mut().chain(p.vel.iter_mut()) {
        *v = rot(*v);
    }
}

/// Cross product.
pub fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

/// Unit vector along a.
pub fn normalize(a: [f64; 3]) -> [f64; 3] {
    let l = (a[0] * a[0] + a[1] * a[1] + a[2] * a[2]).sqrt();
    a.map(|c| c / l)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hernquist (1990) eq. 10: isotropic dispersion of an untruncated Hernquist sphere.
    fn hernquist_sigma2(r: f64, a: f64, m: f64) -> f64 {
        let x = r / a;
        G * m / (12.0 * a)
            * (12.0 * x * (1.0 + x).powi(3) * ((1.0 + x) / x).ln()
                - x / (1.0 + x) * (25.0 + 52.0 * x + 42.0 * x * x + 12.0 * x.powi(3)))
    }

    #[test]
    fn jeans_dispersion_matches_hernquist_analytic() {
        let a = 1.0;
        let model = GalaxyModel {
            halo: HaloProfile::Hernquist { scale_radius: a },
            halo_mass: 1.0,
            halo_radius: 1e3,
            disk_mass: 0.0,
            disk_scale_length: 1.0,
            disk_scale_height: 0.1,
            toomre_q: 1.2,
        };
        let table = JeansTable::new(&model);
        for r in [0.01, 0.1, 0.5, 1.0, 3.0, 10.0] {
            let (s2, _) = table.at(r);
            let want = hernquist_sigma2(r, a, 1.0);
            assert!((s2 / want - 1.0).abs() < 0.01, "r={r}: {s2} vs {want}");
        }
    }

    #[test]
    fn a_sampled_galaxy_is_centred_on_its_densest_point_at_rest() {
        let model = GalaxyModel::default();
        let mut rng = rand::SeedableRng::seed_from_u64(3);
        let p = sample_galaxy(&model, 600, 400, 0.1, &mut rng);
        let centre = shrinking_sphere_centre(&p, 0).expect("particles");
        assert!(centre.iter().all(|c| c.abs() < 1e-9), "{centre:?}");
        let (x, v) = p.center_of_mass();
        assert!(v.iter().all(|c| c.abs() < 1e-12), "momentum {v:?}");
        // the point the tracker follows is not where the mass is on average
        assert!(x.iter().any(|c| c.abs() > 1e-6), "{x:?}");
    }
}
