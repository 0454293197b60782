//! A labeled image dataset on disk: run the merger grid, render every snapshot from the 14
//! cameras, write the PNGs and the catalog, resumably.
//!
//! Layout under the output folder:
//! * `sims/{name}/c{camera:02}_t{snapshot:02}.png` - the images (`name` = `s_{size}_m_{mass}`);
//! * `sims/{name}/catalog.csv` - that simulation's rows (paths relative to its folder);
//! * `sims/{name}/done.json` - written last and atomically: a simulation whose `done.json`
//!   holds the same settings is not run again;
//! * `catalog.csv` - all rows, assembled from the simulations' catalogs;
//! * `output_bw_{size}.hdf5` - with `--format hdf5`, the original DeepGalaxy layout, built
//!   from the PNGs (which are kept, so the run stays resumable).
//!
//! Labels are snapshot indices: class 0 is the first snapshot (galaxies ~20 disk scale lengths
//! apart), class 70 the last (merged remnant). Snapshots are evenly spaced in time and
//! `t_myr` gives each one's time in Myr.

use crate::camera::{cube_cameras, CAMERAS};
use crate::error::{Error, Result};
use crate::merger::{galaxy_centers, run_merger, validate, Grid, MergerConfig, MergerSpec};
use crate::particles::{dist, Component};
use crate::render::{apply_stretch, encode_png, surface_density, BitDepth, Stretch, MAX_SIZE};
use crate::units::{LENGTH_KPC, TIME_MYR};
use deepgalaxy_core::catalog::{Catalog, CatalogRecord};
use deepgalaxy_core::io::write_atomic;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
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
    /// Distance between the two galaxies' centres (most bound disk particles) at the last
    /// snapshot, kpc; 0.1-0.3 kpc (the softening scale) once merged.
    pub final_separation_kpc: f64,
}

fn check(cfg: &SimulateConfig) -> Result<()> {
    if cfg.size == 0 || cfg.size > MAX_SIZE {
        return Err(Error::Config(format!(
            "image size {} is outside 1..={MAX_SIZE}",
            cfg.size
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
    validate(&cfg.merger)
}

fn key_of(cfg: &SimulateConfig, spec: &MergerSpec) -> RunKey {
    RunKey {
        name: spec.name(),
        size_ratio: spec.size_ratio,
        mass_ratio: spec.mass_ratio,
        seed: cfg.seed,
        particles: cfg.merger.particles,
        size: cfg.size,
        bits: cfg.bits,
        stretch: cfg.stretch,
        merger: format!("{:?}", cfg.merger),
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
        let total = specs.len();
        let mut records = Vec::new();
        for (index, spec) in specs.iter().enumerate() {
            let name = spec.name();
            let dir = sims_dir.join(&name);
            let key = key_of(cfg, spec);
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
                run_one(cfg, spec, &dir, key, index, progress)?;
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

/// Image file name of one camera and snapshot.
pub fn image_name(camera: usize, snapshot: usize) -> String {
    format!("c{camera:02}_t{snapshot:02}.png")
}

fn run_one(
    cfg: &SimulateConfig,
    spec: &MergerSpec,
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
    let cameras = cube_cameras();
    let size = cfg.size as usize;
    let name = spec.name();
    let mut records = Vec::with_capacity(cfg.merger.snapshots * CAMERAS);
    let mut energies = (0.0, 0.0);
    let mut last_virial = 0.0;
    let mut last_separation = 0.0;
    let (_, plan) = run_merger(
        spec,
        &cfg.merger,
        spec.seed(cfg.seed),
        |snap, sim, plan| {
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
                    let img = surface_density(&pos, &mass, cam, size, plan.half_width);
                    let values = apply_stretch(&img, cfg.stretch);
                    let path = dir.join(image_name(c, snap));
                    let png = encode_png(&values, size, cfg.bits, &path)?;
                    write_atomic(&path, |f| f.write_all(&png))?;
                    Ok(())
                })
                .collect();
            files.into_iter().collect::<Result<Vec<()>>>()?;
            // A whole multiple of the interval, so int(t_myr / interval) is the label exactly.
            let t_myr = snap as f64 * cfg.merger.snapshot_interval_myr;
            for c in 0..CAMERAS {
                records.push(CatalogRecord {
                    id_str: format!("{name}_c{c:02}_t{snap:02}"),
                    file_loc: image_name(c, snap),
                    simulation: Some(name.clone()),
                    camera: Some(c as u32),
                    snapshot: Some(snap as u32),
                    label: Some(snap as u32),
                    t_myr: Some(t_myr),
                    mass_ratio: Some(spec.mass_ratio),
                    size_ratio: Some(spec.size_ratio),
                    ..Default::default()
                });
            }
            let e = sim.total_energy();
            if snap == 0 {
                energies.0 = e;
            }
            energies.1 = e;
            last_virial = sim.virial_ratio();
            let c = galaxy_centers(sim);
            last_separation = dist(c[0], c[1]) * LENGTH_KPC;
            Ok(())
        },
        |done, steps| progress(Progress::Step { index, done, steps }),
    )?;
    Catalog::new(records).write(&dir.join("catalog.csv"))?;
    let done = DoneMarker {
        key,
        seconds: start.elapsed().as_secs_f64(),
        steps: plan.steps_per_snapshot * (cfg.merger.snapshots - 1),
        dt_myr: plan.dt * TIME_MYR,
        t_end_myr: plan.t_end * TIME_MYR,
        energy_drift: (energies.1 - energies.0) / energies.0.abs(),
        final_virial_ratio: last_virial,
        final_separation_kpc: last_separation,
    };
    let json = serde_json::to_vec_pretty(&done).map_err(|e| Error::Config(e.to_string()))?;
    write_atomic(&marker, |f| f.write_all(&json))?;
    Ok(())
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
        let mut cameras: Vec<H5Camera> = (0..CAMERAS)
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
