//! Two galaxies on a bound collision orbit, integrated until merged and relaxed.

use crate::error::{Error, Result};
use crate::gravity::Solver;
use crate::halo::{RigidHalo, RigidHalos};
use crate::ic::{orient, sample_disk, sample_galaxy, GalaxyModel};
use crate::integrate::Simulation;
use crate::orbit::{Orbit, OrbitSpec};
use crate::particles::Particles;
use crate::phase::{separation, Track};
use crate::units::TIME_MYR;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::f64::consts::PI;

/// Number of snapshots per merger (classes 0..70 of the paper).
pub const SNAPSHOTS: usize = 71;

/// Size and mass ratios of the paper's grid.
pub const RATIOS: [f64; 6] = [0.25, 0.5, 0.75, 1.0, 1.25, 1.5];

/// One merger of the grid: the secondary galaxy is the primary scaled in size and mass, on
/// the run's orbit or one of its own.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MergerSpec {
    /// Secondary / primary length scale.
    pub size_ratio: f64,
    /// Secondary / primary mass.
    pub mass_ratio: f64,
    /// This merger's own orbit (`None`: the run's [`MergerConfig`] orbit).
    pub orbit: Option<OrbitShape>,
}

/// The shape of an orbit: how close the galaxies pass and how bound they are.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OrbitShape {
    /// Pericentre in mean disk scale lengths ([`MergerConfig::pericenter_radii`]).
    pub pericenter_radii: f64,
    /// Eccentricity ([`MergerConfig::eccentricity`]).
    pub eccentricity: f64,
}

impl MergerSpec {
    /// Folder and group name: `s_{size}_m_{mass}` as in the original HDF5 files, and
    /// `_p{pericentre}_e{eccentricity}` after it for a merger with its own orbit.
    pub fn name(&self) -> String {
        let base = format!("s_{}_m_{}", self.size_ratio, self.mass_ratio);
        match self.orbit {
            None => base,
            Some(o) => format!("{base}_p{}_e{}", o.pericenter_radii, o.eccentricity),
        }
    }

    /// A per-simulation seed derived from the dataset seed, the ratios and the merger's own
    /// orbit (so two orbits of one pair get their own disk orientations).
    pub fn seed(&self, dataset_seed: u64) -> u64 {
        let s = (self.size_ratio * 1000.0).round() as u64;
        let m = (self.mass_ratio * 1000.0).round() as u64;
        let ratios = splitmix64(splitmix64(dataset_seed ^ 0x5EED_0000_0000) ^ (s << 20) ^ m);
        match self.orbit {
            None => ratios,
            Some(o) => {
                let p = (o.pericenter_radii * 1000.0).round() as u64;
                let e = (o.eccentricity * 1000.0).round() as u64;
                splitmix64(ratios ^ (p << 24) ^ e)
            }
        }
    }

    /// The run's settings with this merger's own orbit, if it has one.
    pub fn config(&self, run: &MergerConfig) -> MergerConfig {
        match self.orbit {
            None => *run,
            Some(o) => MergerConfig {
                pericenter_radii: o.pericenter_radii,
                eccentricity: o.eccentricity,
                ..*run
            },
        }
    }
}

/// SplitMix64's step: a well-mixed 64-bit value from any seed (Steele et al. 2014).
pub(crate) fn splitmix64(mut x: u64) -> u64 {
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
    /// Nine mergers spread over the paper's ratios, for `deepgalaxy demo` ([`DEMO_GRID`]).
    Demo,
    /// 36 mergers that vary the orbit as well as the galaxies ([`ORBIT_GRID_RATIOS`] x
    /// [`ORBIT_GRID_PERICENTERS`] x [`ORBIT_GRID_ECCENTRICITIES`]): as many images as the
    /// paper grid, more distinct encounters (each also draws its own disk orientations).
    Orbits,
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
                        orbit: None,
                    })
                })
                .collect(),
            Grid::Small => [(1.0, 1.0), (0.75, 0.5), (1.25, 1.5)]
                .iter()
                .map(|&(s, m)| MergerSpec {
                    size_ratio: s,
                    mass_ratio: m,
                    orbit: None,
                })
                .collect(),
            Grid::Demo => DEMO_GRID
                .iter()
                .map(|&(size_ratio, mass_ratio)| MergerSpec {
                    size_ratio,
                    mass_ratio,
                    orbit: None,
                })
                .collect(),
            Grid::Orbits => ORBIT_GRID_RATIOS
                .iter()
                .flat_map(|&(size_ratio, mass_ratio)| {
                    ORBIT_GRID_PERICENTERS.iter().flat_map(move |&p| {
                        ORBIT_GRID_ECCENTRICITIES.iter().map(move |&e| MergerSpec {
                            size_ratio,
                            mass_ratio,
                            orbit: Some(OrbitShape {
                                pericenter_radii: p,
                                eccentricity: e,
                            }),
                        })
                    })
                })
                .collect(),
            Grid::Custom(specs) => specs.clone(),
        }
    }
}

/// The (size ratio, mass ratio) pairs of [`Grid::Orbits`]: equal galaxies, a small dense
/// companion and a large diffuse one, the extremes and the middle of the paper's range.
pub const ORBIT_GRID_RATIOS: [(f64, f64); 4] = [(1.0, 1.0), (0.5, 0.25), (1.5, 0.5), (0.75, 1.25)];

/// Pericentres of [`Grid::Orbits`], in mean disk scale lengths: a near head-on pass, the
/// default, and a wide one.
pub const ORBIT_GRID_PERICENTERS: [f64; 3] = [0.5, 1.0, 2.0];

/// Eccentricities of [`Grid::Orbits`]: bound, parabolic (the default) and slightly hyperbolic.
pub const ORBIT_GRID_ECCENTRICITIES: [f64; 3] = [0.9, 1.0, 1.1];

/// The demo grid: (size ratio, mass ratio) pairs covering the paper's range, in an order
/// where every prefix (`--mergers N`) still spreads over it.
pub const DEMO_GRID: [(f64, f64); 9] = [
    (1.0, 1.0),
    (0.75, 0.5),
    (1.25, 1.5),
    (0.5, 0.75),
    (1.5, 1.25),
    (1.0, 0.25),
    (0.75, 1.25),
    (1.25, 0.75),
    (1.5, 0.5),
];

/// The mergers of the demo grid that `deepgalaxy demo` keeps out as test mergers: two inside
/// the grid's range of ratios, so the score measures how well the model reads mergers between
/// the simulated ones, as it must for a real galaxy pair whose ratios fall inside the grid.
pub const DEMO_TEST: [(f64, f64); 2] = [(1.0, 1.0), (1.25, 0.75)];

/// The demo's validation merger, also inside the range: the spread of the predicted time is
/// calibrated on it (nothing else is chosen on it; the run's length is fixed).
pub const DEMO_VALIDATION: [(f64, f64); 1] = [(0.75, 1.25)];

/// Names of the demo's test and validation mergers among its first `mergers`, kept only while
/// at least one merger is left to train on.
pub fn demo_held_out(mergers: usize) -> (Vec<String>, Vec<String>) {
    let run = &DEMO_GRID[..mergers.min(DEMO_GRID.len())];
    let names = |set: &[(f64, f64)]| -> Vec<String> {
        set.iter()
            .filter(|m| run.contains(m))
            .map(|&(size_ratio, mass_ratio)| {
                MergerSpec {
                    size_ratio,
                    mass_ratio,
                    orbit: None,
                }
                .name()
            })
            .collect()
    };
    let test = names(&DEMO_TEST);
    if test.len() >= run.len() {
        return (vec![], vec![]);
    }
    let validation = names(&DEMO_VALIDATION);
    if test.len() + validation.len() >= run.len() {
        return (test, vec![]);
    }
    (test, validation)
}

/// How each galaxy's dark halo is modelled.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HaloKind {
    /// Made of particles: [`MergerConfig::disk_fraction`] of each galaxy's particles are in its
    /// disk, the rest in its halo.
    Live,
    /// One rigid analytic halo per galaxy ([`crate::halo`]) and every particle in the disks,
    /// with dynamical friction of this Coulomb logarithm between the halos.
    Rigid {
        /// Coulomb logarithm of the friction ([`crate::halo::DEFAULT_COULOMB_LOG`]).
        coulomb_log: f64,
    },
}

/// Physical and numerical settings of a merger run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MergerConfig {
    /// The primary galaxy.
    pub galaxy: GalaxyModel,
    /// Total particle count of both galaxies (split in proportion to mass, so all halo
    /// particles weigh the same and all disk particles weigh the same; with rigid halos all
    /// of them are disk particles).
    pub particles: usize,
    /// How the dark halos are modelled.
    pub halo: HaloKind,
    /// Fraction of each galaxy's particles in its disk (with live halos).
    pub disk_fraction: f64,
    /// Plummer softening length (kpc); [`MergerConfig::with_particles`] scales it as
    /// N^(-1/3) so it keeps its ratio to the interparticle spacing.
    pub softening: f64,
    /// Force solver.
    pub solver: Solver,
    /// Pericentre of the orbit (in the potential of the mass enclosed), in mean disk scale
    /// lengths of the two galaxies.
    pub pericenter_radii: f64,
    /// Eccentricity of the orbit through its energy ([`crate::orbit`]): 1 parabolic, below 1
    /// bound, above 1 hyperbolic.
    pub eccentricity: f64,
    /// Time of first pericentre after the first snapshot, Myr: every merger starts where its
    /// orbit reaches pericentre then, so one snapshot means one phase across a grid.
    pub first_pericenter_myr: f64,
    /// Separation of the galaxies' centres (kpc) below which they have coalesced, once they
    /// stay there to the end of the run.
    pub coalescence_kpc: f64,
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
            halo: HaloKind::Live,
            disk_fraction: 0.5,
            softening: 0.1,
            solver: Solver::default(),
            pericenter_radii: 1.0,
            eccentricity: 1.0,
            first_pericenter_myr: 100.0,
            coalescence_kpc: 0.5,
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

/// How long (Myr, rounded up to whole snapshot intervals: [`lead_snapshots`]) the run starts
/// before the configured time to first pericentre: the N-body pericentre comes earlier or
/// later than that of the rigid galaxies the orbit is set up with (by up to 13 Myr in the
/// corners of the paper grid), and the first snapshot is then chosen on the run's snapshot
/// grid from the pericentre found.
pub const LEAD_MYR: f64 = 30.0;

/// [`LEAD_MYR`] in whole snapshot intervals.
pub fn lead_snapshots(cfg: &MergerConfig) -> usize {
    (LEAD_MYR / cfg.snapshot_interval_myr).ceil() as usize
}

/// Largest eccentricity accepted (a fast fly-by).
pub const MAX_ECCENTRICITY: f64 = 5.0;

/// Largest Coulomb logarithm accepted for rigid halos' friction (ln of the ratio of a galaxy
/// group's size to a dwarf's is below 10).
pub const MAX_COULOMB_LOG: f64 = 20.0;

/// How a disk lies relative to the orbit (frame of [`crate::orbit`]: orbital angular
/// momentum along +z).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DiskOrientation {
    /// Angle between the disk's spin and the orbital angular momentum, degrees (0: prograde
    /// in the orbit plane, 180: retrograde).
    pub inclination_deg: f64,
    /// Argument of pericentre: angle in the orbit plane from the line where the disk plane
    /// crosses it (ascending node) to the pericentre, degrees in [0, 360).
    pub pericenter_argument_deg: f64,
}

impl DiskOrientation {
    /// Draws an isotropic spin direction.
    fn random(rng: &mut ChaCha8Rng) -> DiskOrientation {
        let cos_i: f64 = 2.0 * rng.random::<f64>() - 1.0;
        DiskOrientation {
            inclination_deg: cos_i.clamp(-1.0, 1.0).acos().to_degrees(),
            pericenter_argument_deg: 360.0 * rng.random::<f64>(),
        }
    }

    /// The spin's unit vector, for an orbit whose pericentre lies along `pericenter`
    /// (a unit vector in the x-y plane): the node lies `omega` before the pericentre, and the
    /// spin is tilted by the inclination away from +z, perpendicular to the node.
    pub fn spin(&self, pericenter: [f64; 3]) -> [f64; 3] {
        let (i, w) = (
            self.inclination_deg.to_radians(),
            self.pericenter_argument_deg.to_radians(),
        );
        let phi_p = pericenter[1].atan2(pericenter[0]);
        let node = phi_p - w;
        // spin = cos i z - sin i (z x node), so that z x spin points along the node
        [i.sin() * node.sin(), -i.sin() * node.cos(), i.cos()]
    }
}

/// Time stepping and framing derived from the initial conditions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MergerPlan {
    /// Leapfrog step (internal time units).
    pub dt: f64,
    /// Steps between consecutive snapshots.
    pub steps_per_snapshot: usize,
    /// Time from the first snapshot to the last.
    pub t_end: f64,
    /// Initial separation of the galaxy centres (kpc).
    pub separation: f64,
    /// Pericentre distance asked for (kpc).
    pub pericenter: f64,
    /// Pericentre distance the orbit was set up for (kpc): see [`run_merger`].
    pub aimed_pericenter: f64,
    /// Eccentricity the orbit was set up for.
    pub eccentricity: f64,
    /// Time of first pericentre the orbit was set up for, from the start (internal units):
    /// [`lead_snapshots`] intervals more than the configured time, so that the realised
    /// pericentre comes after the configured time whatever the N-body adds.
    pub t_pericenter: f64,
    /// Each disk's orientation relative to the orbit.
    pub disks: [DiskOrientation; 2],
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
    if !(0.0..=MAX_ECCENTRICITY).contains(&cfg.eccentricity) || !positive(cfg.pericenter_radii) {
        return Err(Error::Config(format!(
            "the orbit needs an eccentricity in [0, {MAX_ECCENTRICITY}] and a positive pericentre"
        )));
    }
    let window = cfg.snapshot_interval_myr * (cfg.snapshots - 1) as f64;
    if !(positive(cfg.first_pericenter_myr) && cfg.first_pericenter_myr < window) {
        return Err(Error::Config(format!(
            "first pericentre at {} Myr is outside the run (0, {window}) Myr",
            cfg.first_pericenter_myr
        )));
    }
    if let HaloKind::Rigid { coulomb_log } = cfg.halo {
        if !(0.0..=MAX_COULOMB_LOG).contains(&coulomb_log) {
            return Err(Error::Config(format!(
                "the Coulomb logarithm {coulomb_log} is outside [0, {MAX_COULOMB_LOG}]"
            )));
        }
    }
    if !positive(cfg.coalescence_kpc) {
        return Err(Error::Config(
            "the coalescence separation must be positive".into(),
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

/// A merger's two galaxy models and the orbit they start on (no particles yet).
#[derive(Clone, Copy, Debug)]
pub struct SetUp {
    /// The primary and the secondary.
    pub galaxies: [GalaxyModel; 2],
    /// The relative orbit ([`crate::orbit`]).
    pub orbit: Orbit,
    /// Pericentre distance asked for (kpc).
    pub pericenter: f64,
    /// Pericentre distance the orbit is set up for (kpc): the one asked for, or another that
    /// brings the N-body galaxies' centres there ([`run_merger`]).
    pub aimed_pericenter: f64,
    /// Time from the start to the planned first pericentre (internal units).
    pub time_to_pericenter: f64,
}

impl SetUp {
    /// The galaxies of `spec` and their orbit under `cfg`, set up for the pericentre asked for.
    pub fn new(spec: &MergerSpec, cfg: &MergerConfig) -> Result<SetUp> {
        SetUp::aimed(spec, cfg, None)
    }

    /// As [`SetUp::new`], with the orbit set up for pericentre `aim` (kpc) when given.
    pub fn aimed(spec: &MergerSpec, cfg: &MergerConfig, aim: Option<f64>) -> Result<SetUp> {
        validate(cfg)?;
        if !(spec.size_ratio > 0.0 && spec.mass_ratio > 0.0) {
            return Err(Error::Config(
                "size and mass ratios must be positive".into(),
            ));
        }
        let g1 = cfg.galaxy;
        let g2 = cfg.galaxy.scaled(spec.size_ratio, spec.mass_ratio);
        let mean_rd = 0.5 * (g1.disk_scale_length + g2.disk_scale_length);
        let rp = cfg.pericenter_radii * mean_rd;
        let aimed = aim.unwrap_or(rp);
        let interval = cfg.snapshot_interval_myr / TIME_MYR;
        let t_peri = cfg.first_pericenter_myr / TIME_MYR + lead_snapshots(cfg) as f64 * interval;
        let orbit = crate::orbit::orbit(
            &g1,
            &g2,
            &OrbitSpec {
                pericenter: aimed,
                eccentricity: cfg.eccentricity,
                time_to_pericenter: t_peri,
            },
        )
        .ok_or_else(|| {
            Error::Config(format!(
                "an orbit of eccentricity {} cannot reach a pericentre of {aimed} kpc",
                cfg.eccentricity
            ))
        })?;
        Ok(SetUp {
            galaxies: [g1, g2],
            orbit,
            pericenter: rp,
            aimed_pericenter: aimed,
            time_to_pericenter: t_peri,
        })
    }

    /// Where each galaxy's centre sits along the separation, as a fraction of it, in the
    /// centre-of-mass frame (the primary on the negative side).
    pub fn mass_fractions(&self) -> [f64; 2] {
        let (m1, m2) = (self.galaxies[0].total_mass(), self.galaxies[1].total_mass());
        [-m2 / (m1 + m2), m1 / (m1 + m2)]
    }

    /// Half width (kpc) of a square field centred on the centre of mass that holds both
    /// disks (to 4 scale lengths) at the start, when they are farthest apart.
    pub fn half_width(&self) -> f64 {
        let d0 = self.orbit.position[0];
        let f = self.mass_fractions();
        (0..2)
            .map(|k| d0 * f[k].abs() + 4.0 * self.galaxies[k].disk_scale_length)
            .fold(0.0, f64::max)
    }
}

/// Both galaxies on their orbit, in the centre-of-mass frame: the particles and, with
/// [`HaloKind::Rigid`], the halos.
pub struct Bodies {
    /// All particles (galaxy 0 first).
    pub particles: Particles,
    /// The rigid halos, galaxy 0 first; `None` with live halos.
    pub halos: Option<RigidHalos>,
}

/// Builds both galaxies on their orbit, in the centre-of-mass frame, and the time plan.
pub fn initial_conditions(
    spec: &MergerSpec,
    cfg: &MergerConfig,
    seed: u64,
) -> Result<(Bodies, MergerPlan)> {
    initial_conditions_aimed(spec, cfg, seed, None)
}

/// As [`initial_conditions`], with the orbit set up for pericentre `aim` (kpc) when given:
/// the same particles and disk orientations (relative to the orbit) for any aim.
pub fn initial_conditions_aimed(
    spec: &MergerSpec,
    cfg: &MergerConfig,
    seed: u64,
    aim: Option<f64>,
) -> Result<(Bodies, MergerPlan)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let set_up = SetUp::aimed(spec, cfg, aim)?;
    let (g1, g2, orbit, rp, t_peri) = (
        set_up.galaxies[0],
        set_up.galaxies[1],
        set_up.orbit,
        set_up.pericenter,
        set_up.time_to_pericenter,
    );
    let q = spec.mass_ratio;
    let n1 = ((cfg.particles as f64) / (1.0 + q)).round() as usize;
    let n2 = cfg.particles - n1;
    let split = |n: usize| {
        let d = ((n as f64) * cfg.disk_fraction).round() as usize;
        (n - d, d)
    };
    let mut parts = Vec::new();
    let mut disks = Vec::new();
    for (k, (model, n)) in [(g1, n1), (g2, n2)].into_iter().enumerate() {
        let mut p = match cfg.halo {
            HaloKind::Live => {
                let (nh, nd) = split(n);
                sample_galaxy(&model, nh, nd, cfg.softening, &mut rng)
            }
            HaloKind::Rigid { .. } => sample_disk(&model, n, cfg.softening, &mut rng),
        };
        let disk = DiskOrientation::random(&mut rng);
        let angle = 2.0 * PI * rng.random::<f64>();
        orient(&mut p, disk.spin(orbit.pericenter_direction), angle);
        p.galaxy.iter_mut().for_each(|g| *g = k as u8);
        parts.push(p);
        disks.push(disk);
    }
    let d0 = orbit.position[0];
    let [f1, f2] = set_up.mass_fractions();
    parts[0].shift(
        orbit.position.map(|c| c * f1),
        orbit.velocity.map(|c| c * f1),
    );
    parts[1].shift(
        orbit.position.map(|c| c * f2),
        orbit.velocity.map(|c| c * f2),
    );
    let mut all = parts[0].clone();
    all.extend(&parts[1]);
    let halos = match cfg.halo {
        HaloKind::Live => {
            all.to_center_of_mass_frame();
            None
        }
        HaloKind::Rigid { coulomb_log } => {
            let mut bodies: Vec<RigidHalo> = [(g1, f1), (g2, f2)]
                .into_iter()
                .map(|(g, f)| {
                    RigidHalo::new(
                        g,
                        orbit.position.map(|c| c * f),
                        orbit.velocity.map(|c| c * f),
                    )
                })
                .collect();
            // the centre of mass of particles and halos together
            let (x, v) = all.center_of_mass();
            let m = all.total_mass();
            let total = m + bodies.iter().map(|h| h.mass()).sum::<f64>();
            let mut cx = x.map(|c| c * m / total);
            let mut cv = v.map(|c| c * m / total);
            for h in &bodies {
                for k in 0..3 {
                    cx[k] += h.pos[k] * h.mass() / total;
                    cv[k] += h.vel[k] * h.mass() / total;
                }
            }
            all.shift(cx.map(|c| -c), cv.map(|c| -c));
            for h in &mut bodies {
                for k in 0..3 {
                    h.pos[k] -= cx[k];
                    h.vel[k] -= cv[k];
                }
            }
            Some(RigidHalos::new(bodies, coulomb_log))
        }
    };

    let interval = cfg.snapshot_interval_myr / TIME_MYR;
    let t_end = interval * (cfg.snapshots - 1) as f64;
    let r_c = 0.2 * g1.disk_scale_length;
    let t_dyn = g1.dynamical_time(r_c).min(g2.dynamical_time(r_c));
    let dt_max = cfg.step_fraction * t_dyn;
    let steps_per_snapshot = (interval / dt_max).ceil().max(1.0) as usize;
    let dt = interval / steps_per_snapshot as f64;
    Ok((
        Bodies {
            particles: all,
            halos,
        },
        MergerPlan {
            dt,
            steps_per_snapshot,
            t_end,
            separation: d0,
            pericenter: rp,
            aimed_pericenter: set_up.aimed_pericenter,
            eccentricity: cfg.eccentricity,
            t_pericenter: t_peri,
            disks: [disks[0], disks[1]],
        },
    ))
}

/// How far the realised first pericentre may lie from the one asked for (within a factor
/// `1 + AIM_TOLERANCE` either way) before the merger is started again on a corrected orbit. The two-body set-up leaves out the
/// disks' tidal response (which depends on their drawn orientations) and the energy the
/// galaxies trade, which move the centres' pericentre by tens of percent.
pub const AIM_TOLERANCE: f64 = 0.1;

/// Most starts of one merger: as set up, then on corrected orbits (see [`run_merger`]).
pub const MAX_STARTS: usize = 4;

/// One start of a merger: the pericentre its orbit was set up for and the one the tracked
/// centres reached (internal length units).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Start {
    /// Pericentre distance the orbit was set up for.
    pub aimed: f64,
    /// First pericentre distance of the centres; `None` when they made no passage.
    pub realised: Option<f64>,
}

impl Start {
    /// |ln(realised / requested)|: how far off the start came (infinite without a passage).
    fn miss(&self, requested: f64) -> f64 {
        self.realised
            .map_or(f64::INFINITY, |r| (r / requested).ln().abs())
    }
}

/// The pericentre to aim at next (kpc) so that the centres reach `requested`, from the starts
/// so far, the realised distance taken as a power of the aimed one (a straight line in
/// ln-ln):
/// * between the latest start that passed nearer than asked and the latest that passed
///   farther, once there are both (interpolated, as in regula falsi);
/// * else corrected from the start that came closest, with the power the least-squares slope
///   over the starts when it lies within 1/2..2, else 1 (at a few thousand particles the
///   centres' response is noisy enough that a slope from two starts can point the wrong way).
///
/// The aim stays within 1/4..4 times the request. `None` without a start that made a passage,
/// or when the aim found is within 1% of one already tried (it would repeat that start).
pub fn next_aim(requested: f64, starts: &[Start]) -> Option<f64> {
    let target = requested.ln();
    let points: Vec<(f64, f64)> = starts
        .iter()
        .filter_map(|s| Some((s.aimed.ln(), s.realised?.ln())))
        .collect();
    let latest = |below: bool| {
        points
            .iter()
            .rev()
            .find(|p| (p.1 < target) == below)
            .copied()
    };
    let aim = match (latest(true), latest(false)) {
        (Some(lo), Some(hi)) => lo.0 + (target - lo.1) * (hi.0 - lo.0) / (hi.1 - lo.1),
        _ => {
            let (x, y) = points
                .iter()
                .min_by(|a, b| (a.1 - target).abs().total_cmp(&(b.1 - target).abs()))
                .copied()?;
            let n = points.len() as f64;
            let (mx, my) = points
                .iter()
                .fold((0.0, 0.0), |(a, b), &(x, y)| (a + x / n, b + y / n));
            let (sxy, sxx) = points.iter().fold((0.0, 0.0), |(a, b), &(x, y)| {
                (a + (x - mx) * (y - my), b + (x - mx) * (x - mx))
            });
            let fitted = sxy / sxx;
            let slope = if sxx > 1e-12 && (0.5..=2.0).contains(&fitted) {
                fitted
            } else {
                1.0
            };
            x + (target - y) / slope
        }
    };
    let limit = 4.0f64.ln();
    let aim = aim.clamp(target - limit, target + limit);
    let new = points.iter().all(|p| (p.0 - aim).abs() > 0.01f64.ln_1p());
    new.then(|| aim.exp())
}

/// What [`run_merger`] returns besides the final state.
#[derive(Clone, Debug)]
pub struct MergerRun {
    /// The time plan (of the start that was kept).
    pub plan: MergerPlan,
    /// Separation of the centres at every step from the start.
    pub track: Track,
    /// Index on the run's snapshot grid (counted from the start) of snapshot 0.
    pub first_snapshot: usize,
    /// Every start, the kept one last.
    pub starts: Vec<Start>,
}

/// Runs one merger. The run starts [`lead_snapshots`] snapshot intervals before the orbit's
/// planned first pericentre and follows the separation of the centres at every step
/// ([`crate::phase`]). Once the first pericentre is confirmed (the galaxies have moved apart
/// again):
/// * when the centres came more than a factor `1 +` [`AIM_TOLERANCE`] nearer or farther than
///   asked, the merger starts again from the same particles on an orbit aimed to correct it
///   ([`next_aim`]), at most [`MAX_STARTS`] times; then the closest start is run again to the
///   end (the runs are deterministic);
/// * otherwise snapshot 0 is the point of the run's snapshot grid nearest to
///   `first_pericenter_myr` before it, and the run ends `snapshots - 1` intervals after that.
///
/// `on_snapshot(grid_index, sim, plan)` is called at every point of the grid from the start
/// (index 0 = initial conditions), including those before snapshot 0, which the caller
/// drops; a new start calls it again from index 0, so the caller keeps one result per index.
/// `on_step(done, total)` reports integration progress of the current start (the total is an
/// estimate until the pericentre is found).
pub fn run_merger(
    spec: &MergerSpec,
    cfg: &MergerConfig,
    seed: u64,
    mut on_snapshot: impl FnMut(usize, &Simulation, &MergerPlan) -> Result<()>,
    mut on_step: impl FnMut(usize, usize),
) -> Result<(Simulation, MergerRun)> {
    let requested = SetUp::new(spec, cfg)?.pericenter;
    let mut starts: Vec<Start> = Vec::new();
    let mut aim = None;
    let mut last_start = false;
    'start: loop {
        let (bodies, plan) = initial_conditions_aimed(spec, cfg, seed, aim)?;
        let mut sim =
            Simulation::with_halos(bodies.particles, bodies.halos, cfg.softening, cfg.solver);
        let sps = plan.steps_per_snapshot;
        let planned = lead_snapshots(cfg);
        let mut last = planned + cfg.snapshots - 1;
        let mut first: Option<usize> = None;
        let mut track = Track::default();
        let sample = |sim: &Simulation, track: &mut Track| -> Result<()> {
            let d = separation(sim)
                .ok_or_else(|| Error::Config("a galaxy has no particles to track".into()))?;
            track.push(sim.time, d);
            Ok(())
        };
        sample(&sim, &mut track)?;
        on_snapshot(0, &sim, &plan)?;
        let interval = cfg.snapshot_interval_myr / TIME_MYR;
        let before = cfg.first_pericenter_myr / TIME_MYR;
        let mut done = 0;
        let mut grid = 0;
        while grid < last {
            for _ in 0..sps {
                sim.step(plan.dt);
                sample(&sim, &mut track)?;
                done += 1;
                on_step(done, last * sps);
            }
            grid += 1;
            on_snapshot(grid, &sim, &plan)?;
            if first.is_some() {
                continue;
            }
            if let Some(i) = track.first_passage() {
                starts.push(Start {
                    aimed: plan.aimed_pericenter,
                    realised: Some(track.closest_near(i)),
                });
                if !last_start
                    && starts
                        .last()
                        .is_some_and(|s| s.miss(requested) > AIM_TOLERANCE.ln_1p())
                {
                    let next = (starts.len() < MAX_STARTS)
                        .then(|| next_aim(requested, &starts))
                        .flatten()
                        .filter(|&a| SetUp::aimed(spec, cfg, Some(a)).is_ok());
                    if let Some(next) = next {
                        aim = Some(next);
                        continue 'start;
                    }
                    let best = starts
                        .iter()
                        .min_by(|a, b| a.miss(requested).total_cmp(&b.miss(requested)))
                        .map(|s| s.aimed);
                    last_start = true;
                    if best != Some(plan.aimed_pericenter) {
                        aim = best;
                        continue 'start;
                    }
                }
                let at = ((track.time[i] - before) / interval).round().max(0.0) as usize;
                first = Some(at);
                last = at + cfg.snapshots - 1;
            } else if grid >= 2 * planned + (before / interval).ceil() as usize {
                // no passage where one was planned (a fall straight into coalescence, or a
                // fly-by that never turns): keep the planned grid
                starts.push(Start {
                    aimed: plan.aimed_pericenter,
                    realised: None,
                });
                first = Some(planned);
            }
        }
        return Ok((
            sim,
            MergerRun {
                plan,
                track,
                first_snapshot: first.unwrap_or(planned),
                starts,
            },
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_orbit_grid_has_36_distinct_mergers_with_their_own_orbits_and_seeds() {
        let specs = Grid::Orbits.specs();
        assert_eq!(specs.len(), 36);
        let names: std::collections::BTreeSet<String> = specs.iter().map(|s| s.name()).collect();
        let seeds: std::collections::BTreeSet<u64> = specs.iter().map(|s| s.seed(0)).collect();
        assert_eq!((names.len(), seeds.len()), (36, 36));
        assert!(names.contains("s_0.5_m_0.25_p2_e1.1"), "{names:?}");
        let run = MergerConfig::default();
        for s in &specs {
            let o = s.orbit.expect("every merger has its own orbit");
            let cfg = s.config(&run);
            assert_eq!(
                (cfg.pericenter_radii, cfg.eccentricity),
                (o.pericenter_radii, o.eccentricity)
            );
            assert_eq!(cfg.particles, run.particles);
        }
        // a merger without its own orbit keeps the paper's name, seed and the run's orbit
        let paper = Grid::Paper.specs()[0];
        assert_eq!(paper.name(), "s_0.25_m_0.25");
        assert_eq!(paper.config(&run), run);
    }

    #[test]
    fn the_next_aim_corrects_a_power_law_response_and_interpolates_once_bracketed() {
        let start = |aimed: f64, realised: f64| Start {
            aimed,
            realised: Some(realised),
        };
        // a proportional response is corrected in one step
        let a = next_aim(1.0, &[start(1.0, 0.6)]).unwrap();
        assert!((a - 1.0 / 0.6).abs() < 1e-12, "{a}");
        // a power law (realised = 0.5 aimed^1.5) once its slope is fitted, from two starts
        // on one side
        let law = |x: f64| 0.5 * x.powf(1.5);
        let starts = [start(1.0, law(1.0)), start(1.2, law(1.2))];
        let third = next_aim(1.0, &starts).unwrap();
        assert!((law(third) - 1.0).abs() < 1e-9, "{third}: {}", law(third));
        // a slope of the wrong sign is noise: slope 1 from the closer start (0.5 at 1)
        let next = next_aim(1.0, &[start(1.0, 0.5), start(1.5, 0.4)]).unwrap();
        assert!((next - 2.0).abs() < 1e-12, "{next}");
        // one start short and one long: interpolated in ln-ln between the latest of each
        let between = next_aim(1.0, &[start(3.0, 2.0), start(1.0, 0.8), start(1.5, 1.25)]).unwrap();
        let expected = (0.8f64.ln().abs() * 1.5f64.ln() / (1.25f64 / 0.8).ln()).exp();
        assert!(
            (between - expected).abs() < 1e-12,
            "{between} against {expected}"
        );
        // an aim already tried is not tried again
        assert_eq!(
            next_aim(1.0, &[start(1.0, 0.84), start(1.0 / 0.84, 0.84)]),
            None
        );
        // the aim stays within 1/4..4 of the request
        let far = next_aim(1.0, &[start(1.0, 0.1)]).unwrap();
        assert!((far - 4.0).abs() < 1e-12, "{far}");
        let none = Start {
            aimed: 1.0,
            realised: None,
        };
        assert_eq!(next_aim(1.0, &[none]), None);
        assert_eq!(next_aim(1.0, &[]), None);
    }

    #[test]
    fn the_demo_keeps_its_held_out_mergers_inside_the_grid_and_leaves_some_to_train_on() {
        assert_eq!(Grid::Demo.specs().len(), DEMO_GRID.len());
        let (test, validation) = demo_held_out(9);
        assert_eq!(test, ["s_1_m_1", "s_1.25_m_0.75"]);
        assert_eq!(validation, ["s_0.75_m_1.25"]);
        // the first 7 mergers hold one test merger and the validation merger
        assert_eq!(demo_held_out(7), (vec![test[0].clone()], validation));
        // the first 2 hold s_1_m_1 and no validation merger
        assert_eq!(demo_held_out(2), (vec!["s_1_m_1".to_string()], vec![]));
        // one merger is all training
        assert_eq!(demo_held_out(1), (vec![], vec![]));
    }
}
