//! `deepgalaxy simulate`: run the galaxy-merger grid and write a labeled image dataset.

use anyhow::Context;
use clap::ValueEnum;
use deepgalaxy_sim::{
    camera::CAMERAS,
    dataset::{read_marker, read_track, ORBIT_FILE},
    halo::DEFAULT_COULOMB_LOG,
    merger::HaloKind,
    observe::{Observation, Psf},
    render::FULL_SCALE_MSUN_PC2,
    simulate_dataset, BitDepth, Grid, MergerConfig, OutputFormat, Progress, SimulateConfig,
    Stretch,
};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::sync::Mutex;

/// Which mergers to run.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum GridArg {
    /// All 36 size x mass ratio combinations of the paper.
    Paper,
    /// Three mergers, for demos and tests.
    Small,
    /// Nine mergers spread over the paper's ratios, for `deepgalaxy demo`.
    Demo,
    /// 36 mergers that also vary the orbit: 4 size x mass pairs, pericentres of 0.5, 1 and 2
    /// disk scale lengths, eccentricities 0.9, 1 and 1.1 (--pericenter and --eccentricity
    /// do not apply to them).
    Orbits,
}

/// How each galaxy's dark halo is modelled.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum HaloArg {
    /// Made of particles (half of each galaxy's particles).
    Live,
    /// A rigid analytic halo moving with its galaxy, every particle in the disks, with
    /// dynamical friction between the halos (`--coulomb-log`): no halo graininess to heat
    /// the disks.
    Rigid,
}

/// Output format.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum FormatArg {
    /// Grey PNG images and catalog.csv.
    Png,
    /// Also the original DeepGalaxy HDF5 file (build with `--features hdf5`).
    Hdf5,
    /// FITS images of the surface brightness (Lsun/pc^2, float32, no stretch) with the pixel
    /// scale in kpc in the header, and catalog.csv.
    Fits,
}

/// Brightness stretch.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RenderStretch {
    /// Logarithmic (three decades).
    Log,
    /// Inverse hyperbolic sine.
    Asinh,
    /// Linear in the surface density (use with `--bits 16`).
    Linear,
}

/// Simulate galaxy mergers with N-body gravity and render a labeled image dataset
/// (71 snapshots x 14 cameras per simulation by default, class = snapshot index).
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Output folder (created if missing; finished simulations in it are not run again).
    #[arg(long)]
    pub out: PathBuf,
    /// Merger grid.
    #[arg(long, value_enum, default_value = "small")]
    pub grid: GridArg,
    /// Run only the first N mergers of the grid.
    #[arg(long)]
    pub mergers: Option<usize>,
    /// Particles per simulation (both galaxies; with live halos half of them in the halos,
    /// with rigid ones all in the disks).
    #[arg(long, default_value_t = MergerConfig::default().particles)]
    pub particles: usize,
    /// Dark halos: live particles or rigid analytic potentials.
    #[arg(long, value_enum, default_value = "live")]
    pub halo: HaloArg,
    /// Coulomb logarithm of the dynamical friction between rigid halos (0 to 20).
    #[arg(long, default_value_t = DEFAULT_COULOMB_LOG)]
    pub coulomb_log: f64,
    /// Image side in pixels (1-2048).
    #[arg(long, default_value_t = 128)]
    pub size: u32,
    /// Cameras per snapshot (1-14), spread over the hemisphere above the orbit plane: fewer
    /// cameras leave room for more mergers in the same number of images (e.g. `--grid orbits
    /// --cameras 4`).
    #[arg(long, default_value_t = CAMERAS)]
    pub cameras: usize,
    /// Random seed (same seed, same images).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output format.
    #[arg(long, value_enum, default_value = "png")]
    pub format: FormatArg,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Bits per pixel of the PNG images (8 or 16).
    #[arg(long, default_value_t = 8, value_parser = parse_bits)]
    pub bits: u8,
    /// Brightness stretch.
    #[arg(long, value_enum, default_value = "log")]
    pub stretch: RenderStretch,
    /// Orbit's pericentre distance in mean disk scale lengths of the two galaxies.
    #[arg(long, default_value_t = MergerConfig::default().pericenter_radii)]
    pub pericenter: f64,
    /// Orbit's eccentricity, through its energy: 1 parabolic, below 1 bound, above 1
    /// hyperbolic (0 to 5).
    #[arg(long, default_value_t = MergerConfig::default().eccentricity)]
    pub eccentricity: f64,
    /// Time of first pericentre after the first snapshot, Myr: the same in every merger, to
    /// within half a snapshot interval.
    #[arg(long, default_value_t = MergerConfig::default().first_pericenter_myr)]
    pub first_pericenter_myr: f64,
    /// Width of every image's field in kpc, one for the whole grid (default: the widest any
    /// merger of the grid needs at its start).
    #[arg(long)]
    pub field_kpc: Option<f64>,
    /// Surface density shown as full white, Msun/pc^2 (Lsun/pc^2 at a mass-to-light ratio of
    /// 1), one for the whole grid.
    #[arg(long, default_value_t = FULL_SCALE_MSUN_PC2)]
    pub full_scale: f64,
    /// Mock observation: point-spread function (none by default).
    #[arg(long, value_enum, requires = "psf_fwhm_kpc")]
    pub psf: Option<PsfArg>,
    /// FWHM of the PSF in kpc at the galaxies.
    #[arg(long, requires = "psf")]
    pub psf_fwhm_kpc: Option<f64>,
    /// Index of the Moffat PSF (above 1; 2.5-4.5 for ground-based seeing).
    #[arg(long, default_value_t = 3.0)]
    pub moffat_beta: f64,
    /// Mock observation: uniform sky added to every pixel, Lsun/pc^2.
    #[arg(long, default_value_t = 0.0)]
    pub sky: f64,
    /// Mock observation: Gaussian noise per pixel (the 1-sigma depth), Lsun/pc^2; each image
    /// draws its own from the seed.
    #[arg(long, default_value_t = 0.0)]
    pub noise: f64,
}

/// Point-spread function of a mock observation.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PsfArg {
    /// Gaussian.
    Gaussian,
    /// Moffat (wider wings; `--moffat-beta`).
    Moffat,
}

fn parse_bits(s: &str) -> Result<u8, String> {
    match s {
        "8" => Ok(8),
        "16" => Ok(16),
        _ => Err(format!("{s} is not 8 or 16")),
    }
}

/// Runs the `simulate` subcommand.
pub fn run(args: &SimulateArgs) -> anyhow::Result<()> {
    let grid = match args.grid {
        GridArg::Paper => Grid::Paper,
        GridArg::Small => Grid::Small,
        GridArg::Demo => Grid::Demo,
        GridArg::Orbits => Grid::Orbits,
    };
    let grid = match args.mergers {
        Some(0) => anyhow::bail!("--mergers must be at least 1"),
        Some(n) => Grid::Custom(grid.specs().into_iter().take(n).collect()),
        None => grid,
    };
    let cfg = SimulateConfig {
        grid,
        merger: MergerConfig {
            pericenter_radii: args.pericenter,
            eccentricity: args.eccentricity,
            first_pericenter_myr: args.first_pericenter_myr,
            halo: match args.halo {
                HaloArg::Live => HaloKind::Live,
                HaloArg::Rigid => HaloKind::Rigid {
                    coulomb_log: args.coulomb_log,
                },
            },
            ..MergerConfig::with_particles(args.particles)
        },
        size: args.size,
        cameras: args.cameras,
        seed: args.seed,
        format: match args.format {
            FormatArg::Png => OutputFormat::Png,
            FormatArg::Hdf5 => OutputFormat::Hdf5,
            FormatArg::Fits => OutputFormat::Fits,
        },
        threads: args.threads,
        bits: if args.bits == 16 {
            BitDepth::Sixteen
        } else {
            BitDepth::Eight
        },
        stretch: match args.stretch {
            RenderStretch::Log => Stretch::Log,
            RenderStretch::Asinh => Stretch::Asinh,
            RenderStretch::Linear => Stretch::Linear,
        },
        field_kpc: args.field_kpc,
        full_scale: args.full_scale,
        observation: Observation {
            psf: match (args.psf, args.psf_fwhm_kpc) {
                (Some(PsfArg::Gaussian), Some(fwhm_kpc)) => Some(Psf::Gaussian { fwhm_kpc }),
                (Some(PsfArg::Moffat), Some(fwhm_kpc)) => Some(Psf::Moffat {
                    fwhm_kpc,
                    beta: args.moffat_beta,
                }),
                _ => None,
            },
            sky: args.sky,
            noise: args.noise,
        },
    };
    let n_sims = cfg.grid.specs().len() as u64;
    const TICKS: u64 = 1000;
    let bar = ProgressBar::new(n_sims * TICKS);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {percent:>3}% eta {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let log = Mutex::new(Vec::<String>::new());
    let report = |p: Progress| match p {
        Progress::Started { index, total, name } => {
            bar.set_position(index as u64 * TICKS);
            bar.set_message(format!("simulation {}/{total}: {name}", index + 1));
        }
        Progress::Step { index, done, steps } => {
            bar.set_position(index as u64 * TICKS + done as u64 * TICKS / steps.max(1) as u64);
        }
        Progress::Skipped { index, name } => {
            bar.set_position((index as u64 + 1) * TICKS);
            if let Ok(mut l) = log.lock() {
                l.push(format!("{name}: already finished, skipped"));
            }
        }
        Progress::Finished {
            index,
            name,
            seconds,
        } => {
            bar.set_position((index as u64 + 1) * TICKS);
            if let Ok(mut l) = log.lock() {
                l.push(format!("{name}: {seconds:.1} s"));
            }
        }
    };
    let catalog = simulate_dataset(&cfg, &args.out, &report)
        .with_context(|| format!("simulating into {}", args.out.display()))?;
    bar.finish_and_clear();
    draw_orbits(&cfg, &args.out)?;
    if let Ok(l) = log.lock() {
        for line in l.iter() {
            eprintln!("{line}");
        }
    }
    println!(
        "wrote {} images of {} simulations and {}",
        catalog.records.len(),
        n_sims,
        args.out.join("catalog.csv").display()
    );
    Ok(())
}

/// `orbits.png`: the separation of the galaxies' centres against time from snapshot 0 for
/// every merger, with the time they were set up to reach first pericentre marked.
fn draw_orbits(cfg: &SimulateConfig, out: &std::path::Path) -> anyhow::Result<()> {
    let mut series = Vec::new();
    for spec in cfg.grid.specs() {
        let marker = read_marker(out, &spec)?;
        let track = out.join("sims").join(spec.name()).join(ORBIT_FILE);
        let line = read_track(&track)?
            .into_iter()
            .map(|(t, d)| (t - marker.first_snapshot_myr, d))
            .collect();
        series.push((spec.name(), line));
    }
    let path = out.join("orbits.png");
    deepgalaxy_runtime::drawing::charts::write_lines(
        &path,
        &format!(
            "Separation of the galaxies' centres, {} mergers",
            series.len()
        ),
        ("time from snapshot 0 (Myr)", "separation (kpc)"),
        &series,
        &[cfg.merger.first_pericenter_myr],
    )?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
