//! A labeled image dataset on disk: run the merger grid, render every snapshot from the 14
//! cameras, write the PNGs and the catalog, resumably.
//!
//! Layout under the output folder:
//! * `sims/{name}/c{camera:02}_t{snapshot:02}.png` - the images (`name` = `s_{size}_m_{mass}`);
//!   with `--format fits`, `.fits` files holding the surface brightness itself (Lsun/pc^2,
//!   float32, no stretch) with the pixel scale as a linear WCS in kpc;
//! * `sims/{name}/catalog.csv` - that simulation's rows (paths relative to its folder);
//! * `sims/{name}/orbit.csv` - the separation of the galaxies' centres at every step;
//! * `sims/{name}/done.json` - written last and atomically: a simulation whose `done.json`
//!   holds the same settings is not run again; it also holds the orbit found (pericentres,
//!   coalescence);
//! * `catalog.csv` - all rows, assembled from the simulations' catalogs;
//! * `output_bw_{size}.hdf5` - with `--format hdf5`, the original DeepGalaxy layout, built
//!   from the PNGs (which are kept, so the run stays resumable).
//!
//! Labels are snapshot indices: class 0 is the first snapshot, 100 Myr before first pericentre
//! (to within half a snapshot), class 70 the last. Snapshots are evenly spaced in time and
//! `t_myr` gives each one's time in Myr; `t_peri_myr`, `separation_kpc` and
//! `t_coalescence_myr` give its phase, and the `orbit_*` and `disk*_*` columns the orbit.

use crate::camera::{hemisphere_cameras, CAMERAS};
use crate::error::{Error, Result};
use crate::merger::{
    run_merger, splitmix64, validate, Grid, MergerConfig, MergerPlan, MergerSpec, SetUp,
};
use crate::observe::{Observation, Psf};
use crate::particles::Component;
use crate::phase::Track;
use crate::render::{
    encode_png, surface_brightness, surface_density, to_pixels, BitDepth, Brightness, Stretch,
    FULL_SCALE_MSUN_PC2, MAX_SIZE,
};
use crate::units::{LENGTH_KPC, TIME_MYR};
use deepgalaxy_core::catalog::{Catalog, CatalogRecord};
use deepgalaxy_core::fits::write::{encode_image, HeaderCard, HeaderValue};
use deepgalaxy_core::io::write_atomic;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// PNG images plus `catalog.csv`.
    Png,
    /// PNGs and catalog as above, plus the original DeepGalaxy HDF5 file (needs the `hdf5`
    /// cargo feature).
    Hdf5,
    /// FITS images of the surface brightness (Lsun/pc^2 as float32, before any stretch),
    /// the pixel scale in the header, plus `catalog.csv`.
    Fits,
}

impl OutputFormat {
    /// The image files' extension.
    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Png | OutputFormat::Hdf5 => "png",
            OutputFormat::Fits => "fits",
        }
    }
}

/// Everything that defines a dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct SimulateConfig {
    /// Which mergers to run.
    pub grid: Grid,
    /// Physics and numerics of each merger (particle count, softening, solver, ...).
    pub merger: MergerConfig,
    /// Image side in pixels (1..=2048).
    pub size: u32,
    /// Dataset seed; each simulation derives its own ChaCha stream from it.
    pub seed: u64,
    /// Output format.
    pub format: OutputFormat,
    /// Worker threads (None: all cores).
    pub threads: Option<usize>,
    /// PNG bit depth.
    pub bits: BitDepth,
    /// Brightness stretch.
    pub stretch: Stretch,
    /// Width of every image's field in kpc, the same for the whole grid; `None`: the widest
    /// any merger of the grid needs at its start ([`grid_field_kpc`]).
    pub field_kpc: Option<f64>,
    /// Surface density shown as full white, Msun/pc^2, the same for the whole grid.
    pub full_scale: f64,
    /// PSF, sky and noise added before the stretch (none by default).
    pub observation: Observation,
    /// Cameras per snapshot, 1 to [`CAMERAS`] (the default):
    /// [`crate::camera::hemisphere_cameras`].
    pub cameras: usize,
}

impl Default for SimulateConfig {
    fn default() -> Self {
        SimulateConfig {
            grid: Grid::Small,
            merger: MergerConfig::default(),
            size: 128,
            seed: 0,
            format: OutputFormat::Png,
            threads: None,
            bits: BitDepth::Eight,
            stretch: Stretch::Log,
            field_kpc: None,
            full_scale: FULL_SCALE_MSUN_PC2,
            observation: Observation::default(),
            cameras: CAMERAS,
        }
    }
}

/// Progress reports of [`simulate_dataset`].
#[derive(Clone, Debug, PartialEq)]
pub enum Progress {
    /// A simulation starts (`index` of `total`, 0-based).
    Started {
        /// Index of the simulation in the grid.
        index: usize,
        /// Number of simulations in the grid.
        total: usize,
        /// Simulation name.
        name: String,
    },
    /// Integration progress within the current simulation.
    Step {
        /// Index of the simulation.
        index: usize,
        /// Leapfrog steps done.
        done: usize,
        /// Leapfrog steps in this simulation.
        steps: usize,
    },
    /// A simulation finished earlier was found and skipped.
    Skipped {
        /// Index of the simulation.
        index: usize,
        /// Simulation name.
        name: String,
    },
    /// A simulation finished.
    Finished {
        /// Index of the simulation.
        index: usize,
        /// Simulation name.
        name: String,
        /// Wall-clock seconds it took.
        seconds: f64,
    },
}

/// The settings a finished simulation was made with (compared on resume).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct RunKey {
    name: String,
    size_ratio: f64,
    mass_ratio: f64,
    seed: u64,
    particles: usize,
    size: u32,
    bits: BitDepth,
    stretch: Stretch,
    merger: String,
    field_kpc: f64,
    full_scale: f64,
    observation: String,
    /// The images' extension (runs from before FITS output wrote PNGs).
    #[serde(default = "png")]
    images: String,
    /// Cameras per snapshot. No default: markers from before it was recorded are from runs
    /// that were not aimed at their pericentre ([`crate::merger::run_merger`]), so they run
    /// again.
    cameras: usize,
}

fn png() -> String {
    "png".into()
}

/// Contents of `done.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DoneMarker {
    key: RunKey,
    /// Wall-clock seconds of the run.
    pub seconds: f64,
    /// Leapfrog steps.
    pub steps: usize,
    /// Time step (Myr).
    pub dt_myr: f64,
    /// Time of the last snapshot (Myr).
    pub t_end_myr: f64,
    /// Relative energy change between first and last snapshot.
    pub energy_drift: f64,
    /// 2K/|W| at the last snapshot.
    pub final_virial_ratio: f64,
    /// Distance between the two galaxies' centres ([`crate::phase`]) at the last snapshot,
    /// kpc.
    pub final_separation_kpc: f64,
    /// Initial separation of the centres, kpc.
    pub initial_separation_kpc: f64,
    /// Time of snapshot 0 after the start of the run, Myr (the run starts before it; see
    /// [`crate::merger::run_merger`]).
    pub first_snapshot_myr: f64,
    /// Pericentre distance the orbit was set up for, kpc.
    pub requested_pericenter_kpc: f64,
    /// Time of first pericentre the orbit was set up for, from the start of the run, Myr.
    pub requested_first_pericenter_myr: f64,
    /// Every start of the merger, the kept one last: the pericentre its orbit was set up for
    /// and the one the centres reached (see [`crate::merger::run_merger`]).
    #[serde(default)]
    pub starts: Vec<StartRecord>,
    /// Times of the pericentres found from the tracked centres, Myr, first first.
    pub pericenters_myr: Vec<f64>,
    /// Separations at those pericentres, kpc.
    pub pericenter_distances_kpc: Vec<f64>,
    /// Time of coalescence found (separation below the threshold for good), Myr; `None` when
    /// the galaxies had not coalesced by the end.
    pub coalescence_myr: Option<f64>,
}

/// One start of a merger in `done.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StartRecord {
    /// Pericentre distance the orbit was set up for, kpc.
    pub aimed_pericenter_kpc: f64,
    /// First pericentre distance the centres reached, kpc; `None` without a passage.
    pub realised_pericenter_kpc: Option<f64>,
}

/// Name of each simulation's track of the centres' separation, one row per step
/// (`t_myr,separation_kpc`), from which `orbits.png` is drawn.
pub const ORBIT_FILE: &str = "orbit.csv";

fn check(cfg: &SimulateConfig) -> Result<()> {
    if cfg.size == 0 || cfg.size > MAX_SIZE {
        return Err(Error::Config(format!(
            "image size {} is outside 1..={MAX_SIZE}",
            cfg.size
        )));
    }
    if let Some(f) = cfg.field_kpc.filter(|f| !(f.is_finite() && *f > 0.0)) {
        return Err(Error::Config(format!(
            "field width {f} kpc is not positive"
        )));
    }
    if !(cfg.full_scale.is_finite() && cfg.full_scale > 0.0) {
        return Err(Error::Config(format!(
            "full-scale surface density {} Msun/pc^2 is not positive",
            cfg.full_scale
        )));
    }
    cfg.observation.validate()?;
    if !(1..=CAMERAS).contains(&cfg.cameras) {
        return Err(Error::Config(format!(
            "{} cameras is outside 1..={CAMERAS}",
            cfg.cameras
        )));
    }
    if cfg.threads == Some(0) {
        return Err(Error::Config("thread count must be at least 1".into()));
    }
    if cfg.format == OutputFormat::Hdf5 && !cfg!(feature = "hdf5") {
        return Err(Error::Unsupported(
            "--format hdf5 needs HDF5 support: rebuild with `--features hdf5` (and Debian's \
             libhdf5-dev installed)"
                .into(),
        ));
    }
    validate(&cfg.merger)?;
    // a merger with its own orbit is checked with it
    for spec in cfg.grid.specs().iter().filter(|s| s.orbit.is_some()) {
        validate(&spec.config(&cfg.merger))
            .map_err(|e| Error::Config(format!("{}: {e}", spec.name())))?;
    }
    Ok(())
}

fn key_of(cfg: &SimulateConfig, spec: &MergerSpec, brightness: &Brightness) -> RunKey {
    RunKey {
        name: spec.name(),
        size_ratio: spec.size_ratio,
        mass_ratio: spec.mass_ratio,
        seed: cfg.seed,
        particles: cfg.merger.particles,
        size: cfg.size,
        bits: cfg.bits,
        stretch: cfg.stretch,
        merger: format!("{:?}", spec.config(&cfg.merger)),
        field_kpc: brightness.kpc_per_pixel * f64::from(cfg.size),
        full_scale: brightness.full_scale,
        observation: format!("{:?}", cfg.observation),
        images: cfg.format.extension().into(),
        cameras: cfg.cameras,
    }
}

/// The marker of a finished simulation, if it exists and matches the settings.
fn finished(dir: &Path, key: &RunKey) -> Option<DoneMarker> {
    let text = std::fs::read_to_string(dir.join("done.json")).ok()?;
    let marker: DoneMarker = serde_json::from_str(&text).ok()?;
    (marker.key == *key && dir.join("catalog.csv").is_file()).then_some(marker)
}

/// Runs (or resumes) the whole grid into `out` and returns the assembled catalog, which is
/// also written to `out/catalog.csv`. Deterministic for a given configuration, whatever the
/// thread count.
pub fn simulate_dataset(
    cfg: &SimulateConfig,
    out: &Path,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Catalog> {
    check(cfg)?;
    let sims_dir = out.join("sims");
    std::fs::create_dir_all(&sims_dir).map_err(|e| deepgalaxy_core::Error::io(&sims_dir, e))?;
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(t) = cfg.threads {
        builder = builder.num_threads(t);
    }
    let pool = builder
        .build()
        .map_err(|e| Error::Config(format!("cannot start {:?} threads: {e}", cfg.threads)))?;
    pool.install(|| {
        let specs = cfg.grid.specs();
        let field = match cfg.field_kpc {
            Some(f) => f,
            None => grid_field_kpc(&specs, &cfg.merger)?,
        };
        let brightness = Brightness {
            stretch: cfg.stretch,
            full_scale: cfg.full_scale,
            kpc_per_pixel: field / f64::from(cfg.size),
        };
        let total = specs.len();
        let mut records = Vec::new();
        for (index, spec) in specs.iter().enumerate() {
            let name = spec.name();
            let dir = sims_dir.join(&name);
            let key = key_of(cfg, spec, &brightness);
            if finished(&dir, &key).is_some() {
                progress(Progress::Skipped {
                    index,
                    name: name.clone(),
                });
            } else {
                progress(Progress::Started {
                    index,
                    total,
                    name: name.clone(),
                });
                let start = Instant::now();
                run_one(cfg, spec, &brightness, &dir, key, index, progress)?;
                progress(Progress::Finished {
                    index,
                    name: name.clone(),
                    seconds: start.elapsed().as_secs_f64(),
                });
            }
            let sim_catalog = Catalog::read(&dir.join("catalog.csv"))?;
            for mut r in sim_catalog.records {
                r.file_loc = format!("sims/{name}/{}", r.file_loc);
                records.push(r);
            }
        }
        let catalog = Catalog::new(records);
        catalog.write(&out.join("catalog.csv"))?;
        if cfg.format == OutputFormat::Hdf5 {
            write_hdf5(cfg, out, &specs)?;
        }
        Catalog::read(&out.join("catalog.csv")).map_err(Error::from)
    })
}

/// Image file name of one camera and snapshot (`ext`: [`OutputFormat::extension`]).
pub fn image_name(camera: usize, snapshot: usize, ext: &str) -> String {
    format!("c{camera:02}_t{snapshot:02}.{ext}")
}

/// Name of an image of the run's snapshot grid while the run goes on, before it is known
/// which grid point becomes which snapshot.
fn grid_image_name(camera: usize, grid: usize, ext: &str) -> String {
    format!("{GRID_PREFIX}{grid:03}_c{camera:02}.{ext}")
}

const GRID_PREFIX: &str = ".grid";

/// Removes the grid images left by this run or an interrupted one.
fn remove_grid_images(dir: &Path) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| deepgalaxy_core::Error::io(dir, e))?;
    for entry in entries {
        let path = entry
            .map_err(|e| deepgalaxy_core::Error::io(dir, e))?
            .path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(GRID_PREFIX))
        {
            std::fs::remove_file(&path).map_err(|e| deepgalaxy_core::Error::io(&path, e))?;
        }
    }
    Ok(())
}

fn run_one(
    cfg: &SimulateConfig,
    spec: &MergerSpec,
    brightness: &Brightness,
    dir: &Path,
    key: RunKey,
    index: usize,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<()> {
    let start = Instant::now();
    std::fs::create_dir_all(dir).map_err(|e| deepgalaxy_core::Error::io(dir, e))?;
    // A stale marker from other settings must not survive a half-finished rerun.
    let marker = dir.join("done.json");
    if marker.exists() {
        std::fs::remove_file(&marker).map_err(|e| deepgalaxy_core::Error::io(&marker, e))?;
    }
    remove_grid_images(dir)?;
    let cameras = hemisphere_cameras(cfg.cameras);
    let half_width = 0.5 * brightness.kpc_per_pixel * f64::from(cfg.size);
    let mut text = scale_columns(brightness);
    text.extend(observation_columns(&cfg.observation));
    let text = text.into_iter().collect::<Vec<_>>();
    let text: Vec<(&str, String)> = text.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let size = cfg.size as usize;
    let name = spec.name();
    let ext = cfg.format.extension();
    let fits_shared = fits_header(&text, &name, brightness, size);
    // energy and virial ratio at every point of the run's snapshot grid
    let mut states = Vec::new();
    let (_, run) = run_merger(
        spec,
        &spec.config(&cfg.merger),
        spec.seed(cfg.seed),
        |grid, sim, _| {
            let p = &sim.particles;
            let stars: Vec<usize> = (0..p.len())
                .filter(|&i| p.component[i] == Component::Disk)
                .collect();
            let pos: Vec<[f64; 3]> = stars.iter().map(|&i| p.pos[i]).collect();
            let mass: Vec<f64> = stars.iter().map(|&i| p.mass[i]).collect();
            let files: Vec<Result<()>> = cameras
                .par_iter()
                .enumerate()
                .map(|(c, cam)| {
                    let img = surface_density(&pos, &mass, cam, size, half_width);
                    let mut sb = surface_brightness(&img, brightness.kpc_per_pixel);
                    if cfg.observation.is_some() {
                        let seed = noise_seed(spec.seed(cfg.seed), c, grid);
                        sb = cfg
                            .observation
                            .apply(&sb, size, brightness.kpc_per_pixel, seed);
                    }
                    let path = dir.join(grid_image_name(c, grid, ext));
                    let bytes = if cfg.format == OutputFormat::Fits {
                        let header = image_cards(&fits_shared, c, grid);
                        let values: Vec<f32> = sb.iter().map(|&v| v as f32).collect();
                        encode_image(size, size, &values, &header).map_err(|e| Error::Image {
                            path: path.clone(),
                            what: e.to_string(),
                        })?
                    } else {
                        encode_png(&to_pixels(&sb, brightness), size, cfg.bits, &text, &path)?
                    };
                    write_atomic(&path, |f| f.write_all(&bytes))?;
                    Ok(())
                })
                .collect();
            files.into_iter().collect::<Result<Vec<()>>>()?;
            // a new start of the merger begins the grid again
            states.truncate(grid);
            states.push((sim.total_energy(), sim.virial_ratio()));
            Ok(())
        },
        |done, steps| progress(Progress::Step { index, done, steps }),
    )?;
    let (plan, track, first_grid) = (&run.plan, &run.track, run.first_snapshot);
    let phases = track.phases(cfg.merger.coalescence_kpc);
    let myr = |t: f64| t * TIME_MYR;
    let first = phases.pericenters.first().copied();
    let mut orbit_columns = orbit_columns(plan);
    orbit_columns.extend(scale_columns(brightness));
    orbit_columns.extend(observation_columns(&cfg.observation));
    let interval = cfg.merger.snapshot_interval_myr;
    let mut records = Vec::with_capacity(cfg.merger.snapshots * cfg.cameras);
    for snap in 0..cfg.merger.snapshots {
        let grid = first_grid + snap;
        // the run's time of this snapshot
        let t = grid as f64 * interval / TIME_MYR;
        for c in 0..cfg.cameras {
            let (from, to) = (
                dir.join(grid_image_name(c, grid, ext)),
                dir.join(image_name(c, snap, ext)),
            );
            std::fs::rename(&from, &to).map_err(|e| deepgalaxy_core::Error::io(&from, e))?;
            records.push(CatalogRecord {
                id_str: format!("{name}_c{c:02}_t{snap:02}"),
                file_loc: image_name(c, snap, ext),
                simulation: Some(name.clone()),
                camera: Some(c as u32),
                snapshot: Some(snap as u32),
                label: Some(snap as u32),
                // a whole multiple of the interval, so int(t_myr / interval) is the label
                t_myr: Some(snap as f64 * interval),
                mass_ratio: Some(spec.mass_ratio),
                size_ratio: Some(spec.size_ratio),
                t_peri_myr: first.map(|p| thousandths(myr(t - p))),
                separation_kpc: track.separation_at(t).map(|d| thousandths(d * LENGTH_KPC)),
                t_coalescence_myr: phases.coalescence.map(|c| thousandths(myr(t - c))),
                extra: orbit_columns.clone(),
            });
        }
    }
    remove_grid_images(dir)?;
    deepgalaxy_core::io::sync_dir(dir)?;
    Catalog::new(records).write(&dir.join("catalog.csv"))?;
    write_track(&dir.join(ORBIT_FILE), track)?;
    let last_grid = first_grid + cfg.merger.snapshots - 1;
    let (e0, e1) = (states[first_grid].0, states[last_grid].0);
    let done = DoneMarker {
        key,
        seconds: start.elapsed().as_secs_f64(),
        steps: plan.steps_per_snapshot * last_grid,
        dt_myr: plan.dt * TIME_MYR,
        t_end_myr: plan.t_end * TIME_MYR,
        energy_drift: (e1 - e0) / e0.abs(),
        final_virial_ratio: states[last_grid].1,
        final_separation_kpc: track.separation.last().copied().unwrap_or_default() * LENGTH_KPC,
        first_snapshot_myr: first_grid as f64 * interval,
        initial_separation_kpc: plan.separation * LENGTH_KPC,
        requested_pericenter_kpc: plan.pericenter * LENGTH_KPC,
        requested_first_pericenter_myr: myr(plan.t_pericenter),
        starts: run
            .starts
            .iter()
            .map(|s| StartRecord {
                aimed_pericenter_kpc: s.aimed * LENGTH_KPC,
                realised_pericenter_kpc: s.realised.map(|d| d * LENGTH_KPC),
            })
            .collect(),
        pericenters_myr: phases.pericenters.iter().map(|&t| myr(t)).collect(),
        pericenter_distances_kpc: phases
            .pericenter_distances
            .iter()
            .map(|d| d * LENGTH_KPC)
            .collect(),
        coalescence_myr: phases.coalescence.map(myr),
    };
    let json = serde_json::to_vec_pretty(&done).map_err(|e| Error::Config(e.to_string()))?;
    write_atomic(&marker, |f| f.write_all(&json))?;
    Ok(())
}

/// `x` rounded to three decimals: times to a thousandth of a Myr and separations to a parsec
/// are finer than a step and than the centres' own scatter.
fn thousandths(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The images' physical scale as catalog columns and PNG text: pixel side, the surface
/// density of full white, the stretch and the mass-to-light ratio that makes it a surface
/// brightness.
fn scale_columns(brightness: &Brightness) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "kpc_per_pixel".to_string(),
            format!("{}", brightness.kpc_per_pixel),
        ),
        (
            "full_scale_msun_pc2".to_string(),
            format!("{}", brightness.full_scale),
        ),
        ("stretch".to_string(), brightness.stretch.name().to_string()),
        ("mass_to_light".to_string(), "1".to_string()),
    ])
}

/// The mock observation as catalog columns and PNG text.
fn observation_columns(obs: &Observation) -> BTreeMap<String, String> {
    let (psf, fwhm, beta) = match obs.psf {
        None => ("none", String::new(), String::new()),
        Some(Psf::Gaussian { fwhm_kpc }) => ("gaussian", format!("{fwhm_kpc}"), String::new()),
        Some(Psf::Moffat { fwhm_kpc, beta }) => {
            ("moffat", format!("{fwhm_kpc}"), format!("{beta}"))
        }
    };
    let mut columns = BTreeMap::from([
        ("psf".to_string(), psf.to_string()),
        ("sky_lsun_pc2".to_string(), format!("{}", obs.sky)),
        ("noise_lsun_pc2".to_string(), format!("{}", obs.noise)),
    ]);
    if !fwhm.is_empty() {
        columns.insert("psf_fwhm_kpc".into(), fwhm);
    }
    if !beta.is_empty() {
        columns.insert("psf_moffat_beta".into(), beta);
    }
    columns
}

/// The header cards every FITS image of a merger shares: the pixel scale as a linear WCS in
/// kpc from the frame's centre, the unit, and the scale and observation columns of the
/// catalog under FITS keywords ([`image_cards`] adds each image's own).
fn fits_header(
    columns: &[(&str, String)],
    simulation: &str,
    brightness: &Brightness,
    size: usize,
) -> Vec<HeaderCard> {
    use HeaderValue::{Real, Text};
    let centre = 0.5 * size as f64 + 0.5;
    let mut cards = vec![
        HeaderCard::new("BUNIT", Text("Lsun/pc2".into()), "surface brightness"),
        HeaderCard::new(
            "OBJECT",
            Text(simulation.into()),
            "merger: size and mass ratio",
        ),
    ];
    for axis in ["1", "2"] {
        cards.extend([
            HeaderCard::new(&format!("CTYPE{axis}"), Text("LINEAR".into()), ""),
            HeaderCard::new(&format!("CUNIT{axis}"), Text("kpc".into()), ""),
            HeaderCard::new(&format!("CRPIX{axis}"), Real(centre), "the frame's centre"),
            HeaderCard::new(&format!("CRVAL{axis}"), Real(0.0), ""),
            HeaderCard::new(
                &format!("CDELT{axis}"),
                Real(brightness.kpc_per_pixel),
                "kpc per pixel",
            ),
        ]);
    }
    // the catalog's columns that mean something for a FITS image, by keyword
    for (column, keyword, comment) in [
        ("mass_to_light", "MTOL", "mass-to-light ratio (solar units)"),
        ("psf", "PSF", "point-spread function"),
        ("psf_fwhm_kpc", "PSFFWHM", "PSF FWHM (kpc)"),
        ("psf_moffat_beta", "PSFBETA", "Moffat beta"),
        ("sky_lsun_pc2", "SKY", "sky level (Lsun/pc2)"),
        ("noise_lsun_pc2", "NOISE", "noise sigma (Lsun/pc2)"),
    ] {
        if let Some((_, v)) = columns.iter().find(|(k, _)| *k == column) {
            let value = v.parse::<f64>().map_or_else(|_| Text(v.clone()), Real);
            cards.push(HeaderCard::new(keyword, value, comment));
        }
    }
    cards
}

/// `shared` and the cards of one image: its camera and its point of the run's snapshot grid.
fn image_cards(shared: &[HeaderCard], camera: usize, grid: usize) -> Vec<HeaderCard> {
    use HeaderValue::Integer;
    let mut cards = shared.to_vec();
    cards.extend([
        HeaderCard::new("CAMERA", Integer(camera as i64), "viewing direction (0-13)"),
        HeaderCard::new(
            "GRIDPT",
            Integer(grid as i64),
            "point of the run's snapshot grid",
        ),
    ]);
    cards
}

/// The noise seed of one image: the simulation's seed, the camera and the grid point, mixed
/// so that every image draws its own noise whatever the thread count.
fn noise_seed(simulation: u64, camera: usize, grid: usize) -> u64 {
    splitmix64(splitmix64(simulation ^ 0x0B5E_7A7E) ^ ((camera as u64) << 20) ^ grid as u64)
}

/// The field width (kpc) that holds every merger of `specs` from its start: twice the
/// widest [`SetUp::half_width`], rounded up to a whole kpc.
pub fn grid_field_kpc(specs: &[MergerSpec], cfg: &MergerConfig) -> Result<f64> {
    let mut widest: f64 = 0.0;
    for spec in specs {
        widest = widest.max(SetUp::new(spec, &spec.config(cfg))?.half_width());
    }
    Ok((2.0 * widest).ceil())
}

/// The merger's orbit as catalog columns: the pericentre and eccentricity it was set up with
/// and each disk's inclination and argument of pericentre, the same on every row.
fn orbit_columns(plan: &MergerPlan) -> BTreeMap<String, String> {
    let mut columns = BTreeMap::new();
    columns.insert(
        "orbit_pericenter_kpc".into(),
        format!("{}", plan.pericenter * LENGTH_KPC),
    );
    columns.insert(
        "orbit_aimed_pericenter_kpc".into(),
        format!("{}", plan.aimed_pericenter * LENGTH_KPC),
    );
    columns.insert(
        "orbit_eccentricity".into(),
        format!("{}", plan.eccentricity),
    );
    for (k, disk) in plan.disks.iter().enumerate() {
        columns.insert(
            format!("disk{}_inclination_deg", k + 1),
            format!("{:.2}", disk.inclination_deg),
        );
        columns.insert(
            format!("disk{}_pericenter_argument_deg", k + 1),
            format!("{:.2}", disk.pericenter_argument_deg),
        );
    }
    columns
}

/// Writes the separation track, in Myr and kpc.
fn write_track(path: &Path, track: &Track) -> Result<()> {
    write_atomic(path, |f| {
        let mut w = csv::Writer::from_writer(std::io::BufWriter::new(f));
        w.write_record(["t_myr", "separation_kpc"])?;
        for (t, d) in track.time.iter().zip(&track.separation) {
            w.write_record([
                format!("{:.4}", t * TIME_MYR),
                format!("{:.5}", d * LENGTH_KPC),
            ])?;
        }
        w.flush()
    })?;
    Ok(())
}

/// Reads a simulation's [`ORBIT_FILE`]: (time in Myr, separation in kpc) per step.
pub fn read_track(path: &Path) -> Result<Vec<(f64, f64)>> {
    let mut reader = csv::Reader::from_path(path)
        .map_err(|e| deepgalaxy_core::Error::invalid(path, e.to_string()))?;
    reader
        .deserialize::<(f64, f64)>()
        .map(|row| row.map_err(|e| deepgalaxy_core::Error::invalid(path, e.to_string()).into()))
        .collect()
}

/// Reads the `done.json` of a finished simulation in `out` (for reports and benchmarks).
pub fn read_marker(out: &Path, spec: &MergerSpec) -> Result<DoneMarker> {
    let path: PathBuf = out.join("sims").join(spec.name()).join("done.json");
    let text = std::fs::read_to_string(&path).map_err(|e| deepgalaxy_core::Error::io(&path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| deepgalaxy_core::Error::invalid(&path, e.to_string()).into())
}

#[cfg(feature = "hdf5")]
fn write_hdf5(cfg: &SimulateConfig, out: &Path, specs: &[MergerSpec]) -> Result<()> {
    use deepgalaxy_core::hdf5::{write_deepgalaxy, H5Camera, H5Simulation};
    let size = cfg.size as usize;
    let catalog = Catalog::read(&out.join("catalog.csv"))?;
    let mut sims = Vec::new();
    for spec in specs {
        let name = spec.name();
        let mut cameras: Vec<H5Camera> = (0..cfg.cameras)
            .map(|_| H5Camera {
                images: Vec::new(),
                t_myr: Vec::new(),
            })
            .collect();
        for r in catalog
            .records
            .iter()
            .filter(|r| r.simulation.as_deref() == Some(&name))
        {
            let c = r.camera.unwrap_or(0) as usize;
            let path = catalog.resolve(r);
            let img = image::open(&path)
                .map_err(|e| Error::Image {
                    path: path.clone(),
                    what: e.to_string(),
                })?
                .into_luma16();
            cameras[c]
                .images
                .extend(img.as_raw().iter().map(|&v| v as f32 / 65535.0));
            cameras[c].t_myr.push(r.t_myr.unwrap_or(0.0));
        }
        sims.push(H5Simulation {
            size_ratio: spec.size_ratio,
            mass_ratio: spec.mass_ratio,
            height: size,
            width: size,
            cameras,
        });
    }
    write_deepgalaxy(&out.join(format!("output_bw_{size}.hdf5")), &sims)?;
    Ok(())
}

#[cfg(not(feature = "hdf5"))]
fn write_hdf5(_cfg: &SimulateConfig, _out: &Path, _specs: &[MergerSpec]) -> Result<()> {
    Err(Error::Unsupported(
        "--format hdf5 needs HDF5 support: rebuild with `--features hdf5`".into(),
    ))
}
