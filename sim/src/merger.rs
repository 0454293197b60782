//! Two galaxies on a bound collision orbit, integrated until merged and relaxed.

use crate::error::{Error, Result};
use crate::gravity::Solver;
use crate::ic::{orient, random_direction, sample_galaxy, GalaxyModel};
use crate::integrate::Simulation;
use crate::particles::{Component, Particles};
use crate::units::{G, TIME_MYR};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::f64::consts::PI;

/// Number of snapshots per merger (classes 0..70 of the paper).
pub const SNAPSHOTS: usize = 71;

/// Size and mass ratios of the paper's grid.
pub const RATIOS: [f64; 6] = [0.25, 0.5, 0.75, 1.0, 1.25, 1.5];

/// One merger of the grid: the secondary galaxy is the primary scaled in size and mass.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MergerSpec {
    /// Secondary / primary length scale.
    pub size_ratio: f64,
    /// Secondary / primary mass.
    pub mass_ratio: f64,
}

impl MergerSpec {
    /// Folder and group name, `s_{size}_m_{mass}` as in the original HDF5 files.
    pub fn name(&self) -> String {
        format!("s_{}_m_{}", self.size_ratio, self.mass_ratio)
    }

    /// A per-simulation seed derived from the dataset seed and the ratios.
    pub fn seed(&self, dataset_seed: u64) -> u64 {
        let s = (self.size_ratio * 1000.0).round() as u64;
        let m = (self.mass_ratio * 1000.0).round() as u64;
        splitmix64(splitmix64(dataset_seed ^ 0x5EED_0000_0000) ^ (s << 20) ^ m)
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Which mergers to run.
#[derive(Clone, Debug, PartialEq)]
pub enum Grid {
    /// All 36 combinations of size and mass ratio in {0.25, 0.5, 0.75, 1, 1.25, 1.5}.
    Paper,
    /// Three mergers for demos and tests: (size, mass) = (1, 1), (0.75, 0.5), (1.25, 1.5).
    Small,
    /// Any list of mergers (e.g. one simulation for a quick demo).
    Custom(Vec<MergerSpec>),
}

impl Grid {
    /// The mergers of this grid, in a fixed order.
    pub fn specs(&self) -> Vec<MergerSpec> {
        match self {
            Grid::Paper => RATIOS
                .iter()
                .flat_map(|&s| {
                    RATIOS.iter().map(move |&m| MergerSpec {
                        size_ratio: s,
                        mass_ratio: m,
                    })
                })
                .collect(),
            Grid::Small => [(1.0, 1.0), (0.75, 0.5), (1.25, 1.5)]
                .iter()
                .map(|&(s, m)| MergerSpec {
                    size_ratio: s,
                    mass_ratio: m,
                })
                .collect(),
            Grid::Custom(specs) => specs.clone(),
        }
    }
}

/// Physical and numerical settings of a merger run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MergerConfig {
    /// The primary galaxy.
    pub galaxy: GalaxyModel,
    /// Total particle count of both galaxies (split in proportion to mass, so all halo
    /// particles weigh the same and all disk particles weigh the same).
    pub particles: usize,
    /// Fraction of each galaxy's particles in its disk.
    pub disk_fraction: f64,
    /// Plummer softening length (kpc); [`MergerConfig::with_particles`] scales it as
    /// N^(-1/3) so it keeps its ratio to the interparticle spacing.
    pub softening: f64,
    /// Force solver.
    pub solver: Solver,
    /// Initial separation in units of the mean disk scale length of the two galaxies.
    pub separation_radii: f64,
    /// Pericentre of the initial Keplerian orbit, in mean disk scale lengths.
    pub pericenter_radii: f64,
    /// Eccentricity of the initial Keplerian orbit (below 1: bound).
    pub eccentricity: f64,
    /// Time step as a fraction of the shortest dynamical time of the two galaxies at 0.2
    /// primary disk scale lengths.
    pub step_fraction: f64,
    /// Time between snapshots in Myr (5 in the paper, whose class is `int(t_myr / 5)`; 71
    /// snapshots then span 350 Myr, long enough for every merger of the grid to finish and
    /// relax).
    pub snapshot_interval_myr: f64,
    /// Number of snapshots (71 in the paper).
    pub snapshots: usize,
}

/// Default particle count of a merger (both galaxies).
pub const DEFAULT_PARTICLES: usize = 10_000;

impl MergerConfig {
    /// The default settings for `n` particles, with softening 0.1 kpc at the default count,
    /// scaled as (DEFAULT_PARTICLES / n)^(1/3).
    pub fn with_particles(n: usize) -> MergerConfig {
        MergerConfig {
            particles: n,
            softening: 0.1 * (DEFAULT_PARTICLES as f64 / n.max(1) as f64).cbrt(),
            ..MergerConfig::default()
        }
    }
}

impl Default for MergerConfig {
    fn default() -> Self {
        MergerConfig {
            galaxy: GalaxyModel::default(),
            particles: DEFAULT_PARTICLES,
            disk_fraction: 0.5,
            softening: 0.1,
            solver: Solver::default(),
            separation_radii: 20.0,
            pericenter_radii: 1.0,
            eccentricity: 0.9,
            step_fraction: 0.15,
            snapshot_interval_myr: 5.0,
            snapshots: SNAPSHOTS,
        }
    }
}

/// Smallest particle count accepted (below it the galaxies are too grainy to stay disks).
pub const MIN_PARTICLES: usize = 1000;
/// Largest particle count accepted.
pub const MAX_PARTICLES: usize = 20_000_000;

/// Time stepping and framing derived from the initial conditions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MergerPlan {
    /// Leapfrog step (internal time units).
    pub dt: f64,
    /// Steps between consecutive snapshots.
    pub steps_per_snapshot: usize,
    /// Time of the last snapshot.
    pub t_end: f64,
    /// Initial separation of the galaxy centres (kpc).
    pub separation: f64,
    /// Keplerian time to first pericentre.
    pub t_pericenter: f64,
    /// Half width of the camera field of view (kpc), fixed for the whole simulation.
    pub half_width: f64,
}

/// Checks the settings, returning a readable error for impossible values.
pub fn validate(cfg: &MergerConfig) -> Result<()> {
    if cfg.particles < MIN_PARTICLES || cfg.particles > MAX_PARTICLES {
        return Err(Error::Config(format!(
            "particle count {} is outside {}..={}",
            cfg.particles, MIN_PARTICLES, MAX_PARTICLES
        )));
    }
    if cfg.snapshots < 2 {
        return Err(Error::Config("at least 2 snapshots are needed".into()));
    }
    let positive = |x: f64| x.is_finite() && x > 0.0;
    if !positive(cfg.softening)
        || !positive(cfg.step_fraction)
        || !positive(cfg.snapshot_interval_myr)
    {
        return Err(Error::Config(
            "softening, step fraction and snapshot interval must be positive".into(),
        ));
    }
    if !(0.0..1.0).contains(&cfg.eccentricity) {
        return Err(Error::Config(
            "the orbit must be bound: eccentricity in [0, 1)".into(),
        ));
    }
    if let Solver::Tree { theta } = cfg.solver {
        if !(positive(theta) && theta < 1.5) {
            return Err(Error::Config(format!(
                "opening angle {theta} is outside (0, 1.5)"
            )));
        }
    }
    Ok(())
}

/// Builds both galaxies on their orbit, in the centre-of-mass frame, and the time plan.
pub fn initial_conditions(
    spec: &MergerSpec,
    cfg: &MergerConfig,
    seed: u64,
) -> Result<(Particles, MergerPlan)> {
    validate(cfg)?;
    if !(spec.size_ratio > 0.0 && spec.mass_ratio > 0.0) {
        return Err(Error::Config(
            "size and mass ratios must be positive".into(),
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let g1 = cfg.galaxy;
    let g2 = cfg.galaxy.scaled(spec.size_ratio, spec.mass_ratio);
    let q = spec.mass_ratio;
    let n1 = ((cfg.particles as f64) / (1.0 + q)).round() as usize;
    let n2 = cfg.particles - n1;
    let split = |n: usize| {
        let d = ((n as f64) * cfg.disk_fraction).round() as usize;
        (n - d, d)
    };
    let mut parts = Vec::new();
    for (k, (model, n)) in [(g1, n1), (g2, n2)].into_iter().enumerate() {
        let (nh, nd) = split(n);
        let mut p = sample_galaxy(&model, nh, nd, cfg.softening, &mut rng);
        let axis = random_direction(&mut rng);
        let angle = 2.0 * PI * rng.random::<f64>();
        orient(&mut p, axis, angle);
        p.galaxy.iter_mut().for_each(|g| *g = k as u8);
        parts.push(p);
    }
    // Relative Keplerian orbit of two point masses in the x-y plane.
    let mean_rd = 0.5 * (g1.disk_scale_length + g2.disk_scale_length);
    let d0 = cfg.separation_radii * mean_rd;
    let rp = cfg.pericenter_radii * mean_rd;
    let e = cfg.eccentricity;
    let (m1, m2) = (g1.total_mass(), g2.total_mass());
    let mu = G * (m1 + m2);
    let a = rp / (1.0 - e);
    let v2 = mu * (2.0 / d0 - 1.0 / a);
    let l = (mu * a * (1.0 - e * e)).sqrt();
    let vt = l / d0;
    let vr = -(v2 - vt * vt).max(0.0).sqrt();
    let cos_e = ((1.0 - d0 / a) / e).clamp(-1.0, 1.0);
    let ecc_anomaly = cos_e.acos();
    let t_peri = (ecc_anomaly - e * ecc_anomaly.sin()) / (mu / a.powi(3)).sqrt();
    let rel_x = [d0, 0.0, 0.0];
    let rel_v = [vr, vt, 0.0];
    let f1 = -m2 / (m1 + m2);
    let f2 = m1 / (m1 + m2);
    parts[0].shift(rel_x.map(|c| c * f1), rel_v.map(|c| c * f1));
    parts[1].shift(rel_x.map(|c| c * f2), rel_v.map(|c| c * f2));
    let mut all = parts[0].clone();
    all.extend(&parts[1]);
    all.to_center_of_mass_frame();

    let interval = cfg.snapshot_interval_myr / TIME_MYR;
    let t_end = interval * (cfg.snapshots - 1) as f64;
    let r_c = 0.2 * g1.disk_scale_length;
    let t_dyn = g1.dynamical_time(r_c).min(g2.dynamical_time(r_c));
    let dt_max = cfg.step_fraction * t_dyn;
    let steps_per_snapshot = (interval / dt_max).ceil().max(1.0) as usize;
    let dt = interval / steps_per_snapshot as f64;
    let half_width = (d0 * f2.abs() + 4.0 * g2.disk_scale_length)
        .max(d0 * f1.abs() + 4.0 * g1.disk_scale_length);
    Ok((
        all,
        MergerPlan {
            dt,
            steps_per_snapshot,
            t_end,
            separation: d0,
            t_pericenter: t_peri,
            half_width,
        },
    ))
}

/// Runs one merger. `on_snapshot(index, sim)` is called at each of the snapshot times
/// (index 0 = initial conditions); `on_step(done, total)` reports integration progress.
pub fn run_merger(
    spec: &MergerSpec,
    cfg: &MergerConfig,
    seed: u64,
    mut on_snapshot: impl FnMut(usize, &Simulation, &MergerPlan) -> Result<()>,
    mut on_step: impl FnMut(usize, usize),
) -> Result<(Simulation, MergerPlan)> {
    let (particles, plan) = initial_conditions(spec, cfg, seed)?;
    let mut sim = Simulation::new(particles, cfg.softening, cfg.solver);
    let total = plan.steps_per_snapshot * (cfg.snapshots - 1);
    on_snapshot(0, &sim, &plan)?;
    let mut done = 0;
    for snap in 1..cfg.snapshots {
        for _ in 0..plan.steps_per_snapshot {
            sim.step(plan.dt);
            done += 1;
            on_step(done, total);
        }
        on_snapshot(snap, &sim, &plan)?;
    }
    Ok((sim, plan))
}

/// Position of the most bound disk particle of each galaxy (its centre while it survives;
/// halo particles are not used because the halos overlap and exchange particles early).
pub fn galaxy_centers(sim: &Simulation) -> [[f64; 3]; 2] {
    let mut best = [(f64::INFINITY, [0.0; 3]); 2];
    for i in 0..sim.particles.len() {
        let g = sim.particles.galaxy[i] as usize;
        let disk = sim.particles.component[i] == Component::Disk;
        if g < 2 && disk && sim.forces.pot[i] < best[g].0 {
            best[g] = (sim.forces.pot[i], sim.particles.pos[i]);
        }
    }
    [best[0].1, best[1].1]
}
