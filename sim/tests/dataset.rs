//! The dataset writer: catalog shape, files, labels, physics of each run, determinism,
//! resume, and errors on bad input.

use deepgalaxy_core::catalog::Catalog;
use deepgalaxy_sim::dataset::{image_name, read_marker};
use deepgalaxy_sim::merger::SNAPSHOTS;
use deepgalaxy_sim::{
    simulate_dataset, Error, Grid, MergerConfig, MergerSpec, OutputFormat, Progress, SimulateConfig,
};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

fn config(grid: Grid, particles: usize, size: u32, seed: u64, threads: usize) -> SimulateConfig {
    SimulateConfig {
        grid,
        merger: MergerConfig::with_particles(particles),
        size,
        seed,
        threads: Some(threads),
        ..Default::default()
    }
}

/// One merger of `size_ratio` and `mass_ratio`, 3 snapshots with first pericentre 5 Myr
/// after the first: the shortest run that still passes, for tests of the output.
fn short_run(
    size_ratio: f64,
    mass_ratio: f64,
    particles: usize,
    size: u32,
    seed: u64,
) -> (MergerSpec, SimulateConfig) {
    let one = MergerSpec {
        size_ratio,
        mass_ratio,
        orbit: None,
    };
    let mut cfg = config(Grid::Custom(vec![one]), particles, size, seed, 2);
    cfg.merger.snapshots = 3;
    cfg.merger.first_pericenter_myr = 5.0;
    (one, cfg)
}

fn run(cfg: &SimulateConfig, out: &Path) -> (Catalog, Vec<Progress>) {
    let events = Mutex::new(Vec::new());
    let cat = simulate_dataset(cfg, out, &|p| {
        if !matches!(p, Progress::Step { .. }) {
            events.lock().expect("progress log").push(p)
        }
    })
    .expect("simulation runs");
    (cat, events.into_inner().expect("progress log"))
}

fn read_all(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for e in std::fs::read_dir(dir).expect("sim folder") {
        let e = e.expect("entry");
        let name = e.file_name().to_string_lossy().to_string();
        if name.ends_with(".png") || name == "catalog.csv" {
            files.insert(name, std::fs::read(e.path()).expect("file"));
        }
    }
    files
}

/// The 8 flips and rotations of a square image.
fn dihedral(img: &image::GrayImage) -> Vec<image::GrayImage> {
    use image::imageops::{flip_horizontal, rotate90};
    let mut out = vec![img.clone()];
    for _ in 0..3 {
        out.push(rotate90(out.last().expect("one")));
    }
    let flipped: Vec<_> = out.iter().map(flip_horizontal).collect();
    out.extend(flipped);
    out
}

/// Summed absolute pixel difference over the two images' summed brightness (0: identical).
fn relative_difference(a: &image::GrayImage, b: &image::GrayImage) -> f64 {
    let (mut diff, mut total) = (0.0, 0.0);
    for (&x, &y) in a.as_raw().iter().zip(b.as_raw()) {
        diff += f64::from(x.abs_diff(y));
        total += f64::from(x) + f64::from(y);
    }
    diff / total.max(1.0)
}

#[test]
fn small_grid_dataset_is_complete_physical_deterministic_and_resumable() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path();
    let cfg = config(Grid::Small, 2000, 32, 11, 2);
    let specs = cfg.grid.specs();
    let (cat, events) = run(&cfg, out);

    // Shape: simulations x 71 snapshots x 14 cameras, labels 0..70, every file present.
    assert_eq!(cat.records.len(), specs.len() * SNAPSHOTS * 14);
    let mut per_label = BTreeMap::new();
    for r in &cat.records {
        assert!(cat.resolve(r).is_file(), "{} missing", r.file_loc);
        *per_label.entry(r.label.expect("label")).or_insert(0) += 1;
        assert_eq!(r.label, r.snapshot);
    }
    assert_eq!(per_label.len(), SNAPSHOTS);
    assert_eq!(*per_label.keys().next().expect("labels"), 0);
    assert_eq!(*per_label.keys().last().expect("labels"), 70);
    assert!(per_label.values().all(|&n| n == specs.len() * 14));
    // Times increase with the label within a simulation, starting at 0.
    for spec in &specs {
        let times: Vec<f64> = cat
            .records
            .iter()
            .filter(|r| r.simulation.as_deref() == Some(&spec.name()) && r.camera == Some(0))
            .map(|r| r.t_myr.expect("t_myr"))
            .collect();
        assert_eq!(times.len(), SNAPSHOTS);
        assert_eq!(times[0], 0.0);
        assert!(times.windows(2).all(|w| w[1] > w[0]));
    }
    let img = image::open(cat.resolve(&cat.records[0])).expect("png decodes");
    assert_eq!((img.width(), img.height()), (32, 32));
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Progress::Started { .. }))
            .count(),
        specs.len()
    );

    // Physics of each run: energy conserved; first pericentre where it was set up, on the same
    // snapshot in every merger.
    for spec in &specs {
        let m = read_marker(out, spec).expect("done.json");
        eprintln!(
            "{}: {:.1} s, {} steps, dE/E {:+.2e}, start {:.1} kpc apart, snapshot 0 at {:.0} Myr, \
             pericentres {:?} Myr at {:?} kpc, coalescence {:?} Myr",
            spec.name(),
            m.seconds,
            m.steps,
            m.energy_drift,
            m.initial_separation_kpc,
            m.first_snapshot_myr,
            m.pericenters_myr,
            m.pericenter_distances_kpc,
            m.coalescence_myr,
        );
        assert!(
            m.energy_drift.abs() < 1e-3,
            "{}: drift {}",
            spec.name(),
            m.energy_drift
        );
        let rows: Vec<_> = cat
            .records
            .iter()
            .filter(|r| r.simulation.as_deref() == Some(&spec.name()))
            .collect();
        // one offset between the paper's time and the time from first pericentre
        let offset = rows[0].t_myr.unwrap() - rows[0].t_peri_myr.expect("t_peri_myr");
        for r in &rows {
            let t = r.t_myr.unwrap() - r.t_peri_myr.unwrap();
            assert!(
                (t - offset).abs() < 1e-3,
                "{}: {t} against {offset}",
                r.id_str
            );
            assert!(r.separation_kpc.unwrap() > 0.0);
        }
        // first pericentre 100 Myr after snapshot 0, to within half a snapshot
        assert!(
            (offset - 100.0).abs() <= 2.5 + 1e-9,
            "{}: {offset}",
            spec.name()
        );
        assert!((m.pericenters_myr[0] - m.first_snapshot_myr - offset).abs() < 1e-3);
        // ... at the distance asked for, within 20%: the kept start's, as found in the track
        let realised = m.pericenter_distances_kpc[0];
        assert!(
            (realised / m.requested_pericenter_kpc - 1.0).abs() <= 0.2,
            "{}: first pericentre {realised} kpc where {} was asked (starts {:?})",
            spec.name(),
            m.requested_pericenter_kpc,
            m.starts
        );
        let kept = m.starts.last().expect("at least one start");
        assert_eq!(kept.realised_pericenter_kpc, Some(realised));
        assert!(m.starts.len() <= deepgalaxy_sim::merger::MAX_STARTS + 1);
        // ... where the separation has its first minimum: closer there than 20 Myr either side
        let sep = |t: f64| {
            rows.iter()
                .find(|r| r.camera == Some(0) && r.t_myr == Some(t))
                .and_then(|r| r.separation_kpc)
                .unwrap()
        };
        let at = (offset / 5.0).round() * 5.0;
        assert!(
            sep(at) < sep(at - 20.0) && sep(at) < sep(at + 20.0),
            "{}",
            spec.name()
        );
        assert!(sep(0.0) > 5.0 * sep(at), "{}", spec.name());
    }

    // No camera's image is a flip or rotation of another's at the same snapshot: opposite
    // cameras of an optically thin system see exact mirror images (difference 0, see
    // `render::tests`), while distinct views differ even where the pair is one blob.
    for spec in &specs {
        for snap in [0, 20, 40] {
            let images: Vec<image::GrayImage> = (0..14)
                .map(|c| {
                    let path = out
                        .join("sims")
                        .join(spec.name())
                        .join(image_name(c, snap, "png"));
                    image::open(&path).expect("png").into_luma8()
                })
                .collect();
            let mut closest = f64::INFINITY;
            for i in 0..14 {
                for j in 0..i {
                    for view in dihedral(&images[j]) {
                        closest = closest.min(relative_difference(&images[i], &view));
                    }
                }
            }
            eprintln!(
                "{} snapshot {snap}: closest camera pair differs by {closest:.4}",
                spec.name()
            );
            assert!(
                closest > 0.002,
                "{} snapshot {snap}: {closest}",
                spec.name()
            );
        }
    }

    // Resume: nothing runs again and nothing changes.
    let second = specs[1].name();
    let dir = out.join("sims").join(&second);
    let before = read_all(&dir);
    let (cat2, events2) = run(&cfg, out);
    assert_eq!(cat2.records, cat.records);
    assert_eq!(
        events2
            .iter()
            .filter(|e| matches!(e, Progress::Skipped { .. }))
            .count(),
        specs.len()
    );
    assert!(!events2
        .iter()
        .any(|e| matches!(e, Progress::Started { .. })));

    // Remove one marker: only that simulation reruns, on one thread this time, and it
    // reproduces every byte.
    std::fs::remove_file(dir.join("done.json")).expect("remove marker");
    std::fs::remove_file(dir.join(image_name(3, 40, "png"))).expect("remove an image");
    let (_, events3) = run(&config(Grid::Small, 2000, 32, 11, 1), out);
    let started: Vec<&Progress> = events3
        .iter()
        .filter(|e| matches!(e, Progress::Started { .. }))
        .collect();
    assert_eq!(started.len(), 1);
    assert!(matches!(started[0], Progress::Started { name, .. } if *name == second));
    let after = read_all(&dir);
    assert_eq!(before.len(), SNAPSHOTS * 14 + 1);
    assert!(before == after, "rerun with 1 thread changed the output");
}

#[test]
fn another_seed_gives_other_images() {
    let (one, mut cfg) = short_run(1.0, 1.0, 1000, 16, 1);
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    run(&cfg, &a);
    cfg.seed = 2;
    run(&cfg, &b);
    let name = one.name();
    let fa = read_all(&a.join("sims").join(&name));
    let fb = read_all(&b.join("sims").join(&name));
    let png = image_name(0, 0, "png");
    assert_ne!(fa[&png], fb[&png]);
}

#[test]
fn fewer_cameras_give_fewer_distinct_views_per_snapshot() {
    let (one, mut cfg) = short_run(1.0, 1.0, 1000, 16, 1);
    let tmp = tempfile::tempdir().expect("tempdir");
    cfg.cameras = 3;
    let (cat, _) = run(&cfg, tmp.path());
    assert_eq!(cat.records.len(), 3 * 3);
    let cameras: std::collections::BTreeSet<u32> =
        cat.records.iter().filter_map(|r| r.camera).collect();
    assert_eq!(cameras, [0, 1, 2].into());
    let dir = tmp.path().join("sims").join(one.name());
    assert!(!dir.join(image_name(3, 0, "png")).exists());
    let views: Vec<Vec<u8>> = (0..3)
        .map(|c| std::fs::read(dir.join(image_name(c, 1, "png"))).expect("png"))
        .collect();
    assert!(views[0] != views[1] && views[1] != views[2] && views[0] != views[2]);
    // the camera count is part of a run's settings: 14 cameras run the merger again
    cfg.cameras = 14;
    let (cat, _) = run(&cfg, tmp.path());
    assert_eq!(cat.records.len(), 3 * 14);
}

#[test]
fn linear_images_sum_to_the_disk_mass_on_one_scale_for_the_grid() {
    use deepgalaxy_sim::observe::Psf;
    use deepgalaxy_sim::{BitDepth, Stretch};
    let specs = vec![
        MergerSpec {
            size_ratio: 1.0,
            mass_ratio: 0.5,
            orbit: None,
        },
        MergerSpec {
            size_ratio: 0.75,
            mass_ratio: 1.5,
            orbit: None,
        },
    ];
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(Grid::Custom(specs.clone()), 2000, 64, 5, 2);
    cfg.merger.snapshots = 3;
    cfg.merger.first_pericenter_myr = 5.0;
    cfg.stretch = Stretch::Linear;
    cfg.bits = BitDepth::Sixteen;
    // high enough that no pixel saturates
    cfg.full_scale = 1e6;
    // without a PSF, and blurred by a 1 kpc Gaussian (flux spread past the frame is lost,
    // a few per cent here)
    for (name, psf) in [
        ("sharp", None),
        ("blurred", Some(Psf::Gaussian { fwhm_kpc: 1.0 })),
    ] {
        cfg.observation.psf = psf;
        let (cat, _) = run(&cfg, &tmp.path().join(name));
        check_flux(&cat, cfg.full_scale, psf.is_some());
    }
}

#[test]
fn mergers_of_the_orbit_grid_run_on_their_own_orbits() {
    let specs: Vec<MergerSpec> = Grid::Orbits
        .specs()
        .into_iter()
        .filter(|s| s.name() == "s_1_m_1_p0.5_e0.9" || s.name() == "s_1_m_1_p2_e1.1")
        .collect();
    assert_eq!(specs.len(), 2);
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(Grid::Custom(specs.clone()), 1000, 16, 3, 2);
    cfg.merger.snapshots = 3;
    cfg.merger.first_pericenter_myr = 5.0;
    let (cat, _) = run(&cfg, tmp.path());
    let column = |sim: &str, key: &str| -> f64 {
        let r = cat
            .records
            .iter()
            .find(|r| r.simulation.as_deref() == Some(sim))
            .expect("rows of the merger");
        r.extra[key].parse().expect("number")
    };
    let (near, wide) = ("s_1_m_1_p0.5_e0.9", "s_1_m_1_p2_e1.1");
    assert_eq!(column(near, "orbit_eccentricity"), 0.9);
    assert_eq!(column(wide, "orbit_eccentricity"), 1.1);
    // the same two galaxies: the requested pericentre scales with the pericentre radii
    let ratio = column(wide, "orbit_pericenter_kpc") / column(near, "orbit_pericenter_kpc");
    assert!((ratio - 4.0).abs() < 1e-6, "{ratio}");
    // each merger draws its own disk orientations
    assert_ne!(
        column(near, "disk1_inclination_deg"),
        column(wide, "disk1_inclination_deg")
    );
}

#[test]
fn fits_images_hold_the_surface_brightness_the_pngs_show_and_its_scale() {
    use deepgalaxy_sim::{BitDepth, Stretch};
    let (one, mut cfg) = short_run(1.0, 0.5, 2000, 32, 5);
    let tmp = tempfile::tempdir().expect("tempdir");
    cfg.stretch = Stretch::Linear;
    cfg.bits = BitDepth::Sixteen;
    cfg.full_scale = 1e6;
    let (png, _) = run(&cfg, &tmp.path().join("png"));
    cfg.format = OutputFormat::Fits;
    let (fits, _) = run(&cfg, &tmp.path().join("fits"));
    assert_eq!(png.records.len(), fits.records.len());
    let limits = deepgalaxy_core::limits::Limits::default();
    for (p, f) in png.records.iter().zip(&fits.records) {
        assert_eq!(f.file_loc, p.file_loc.replace(".png", ".fits"));
        assert_eq!((f.t_peri_myr, &f.extra), (p.t_peri_myr, &p.extra));
        let path = fits.resolve(f);
        let bytes = std::fs::read(&path).expect("fits");
        let img = deepgalaxy_core::fits::read_bytes(&path, &bytes, &limits).expect("fits reads");
        let shown = image::open(png.resolve(p)).expect("png").into_luma16();
        // the 16-bit linear PNG is the same surface brightness, rounded to a step of the scale
        let step = cfg.full_scale / 65535.0;
        for (&v, &q) in img.data.iter().zip(shown.as_raw()) {
            let d = (f64::from(v) - f64::from(q) * step).abs();
            assert!(
                d <= 0.5 * step + 1e-6 * f64::from(v).abs(),
                "{}: {v} vs {q}",
                f.id_str
            );
        }
        // the header carries the scale the catalog states
        let header = String::from_utf8_lossy(&bytes[..2880]).to_string();
        let kpc: f64 = f.extra["kpc_per_pixel"].parse().expect("number");
        let cdelt = header
            .as_bytes()
            .chunks(80)
            .map(|c| String::from_utf8_lossy(c).to_string())
            .find(|c| c.starts_with("CDELT1  ="))
            .expect("CDELT1");
        let value: f64 = cdelt[10..30].trim().parse().expect("number");
        assert_eq!(value, kpc, "{cdelt}");
        assert!(header.contains("BUNIT   = 'Lsun/pc2'"), "{header}");
        assert!(
            header.contains(&format!("OBJECT  = '{}'", one.name())),
            "{header}"
        );
    }
}

/// Every image of `cat` sums to its two disks' mass within 10%, on the catalog's one scale.
fn check_flux(cat: &Catalog, full_scale: f64, blurred: bool) {
    let kpc_per_pixel: f64 = cat.records[0].extra["kpc_per_pixel"]
        .parse()
        .expect("number");
    assert!(cat
        .records
        .iter()
        .all(|r| r.extra["kpc_per_pixel"] == cat.records[0].extra["kpc_per_pixel"]));
    for r in &cat.records {
        assert_eq!(r.extra["psf"], if blurred { "gaussian" } else { "none" });
        let path = cat.resolve(r);
        let bytes = std::fs::read(&path).expect("png");
        let reader = png::Decoder::new(std::io::Cursor::new(&bytes))
            .read_info()
            .expect("png header");
        let text = &reader.info().uncompressed_latin1_text;
        assert!(text
            .iter()
            .any(|t| t.keyword == "kpc_per_pixel" && t.text == r.extra["kpc_per_pixel"]));
        let img = image::open(&path).expect("png").into_luma16();
        let flux: f64 = img.as_raw().iter().map(|&v| f64::from(v) / 65535.0).sum();
        let msun = flux * full_scale * (kpc_per_pixel * 1000.0).powi(2);
        // the default primary's disk is 1e10 Msun; the secondary's is mass_ratio times that
        let disks = 1e10 * (1.0 + r.mass_ratio.expect("mass ratio"));
        let ratio = msun / disks;
        assert!((0.9..=1.0 + 1e-3).contains(&ratio), "{}: {ratio}", r.id_str);
    }
}

#[test]
fn bad_settings_are_errors_not_panics() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path();
    let noop = |_: Progress| {};
    for size in [0, 4096] {
        let cfg = SimulateConfig {
            size,
            ..Default::default()
        };
        let e = simulate_dataset(&cfg, out, &noop).expect_err("bad size");
        assert!(matches!(e, Error::Config(_)), "{e}");
        assert!(e.to_string().contains("image size"), "{e}");
    }
    for cameras in [0, 15] {
        let cfg = SimulateConfig {
            cameras,
            ..Default::default()
        };
        let e = simulate_dataset(&cfg, out, &noop).expect_err("bad camera count");
        assert!(
            e.to_string()
                .contains(&format!("{cameras} cameras is outside 1..=14")),
            "{e}"
        );
    }
    let cfg = config(Grid::Small, 10, 32, 0, 1);
    let e = simulate_dataset(&cfg, out, &noop).expect_err("too few particles");
    assert!(e.to_string().contains("particle count"), "{e}");
    // An output folder inside a regular file cannot be created.
    let file = out.join("file");
    std::fs::write(&file, b"x").expect("write");
    let e = simulate_dataset(&SimulateConfig::default(), &file.join("out"), &noop)
        .expect_err("unwritable output");
    assert!(e.to_string().contains("file"), "{e}");
    if !cfg!(feature = "hdf5") {
        let cfg = SimulateConfig {
            format: OutputFormat::Hdf5,
            ..Default::default()
        };
        let e = simulate_dataset(&cfg, out, &noop).expect_err("no hdf5 support");
        assert!(e.to_string().contains("--features hdf5"), "{e}");
    }
}

#[cfg(feature = "hdf5")]
#[test]
fn hdf5_output_follows_the_original_layout() {
    use deepgalaxy_core::hdf5::H5Dataset;
    let spec = MergerSpec {
        size_ratio: 0.5,
        mass_ratio: 1.5,
        orbit: None,
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(Grid::Custom(vec![spec]), 1000, 16, 3, 2);
    cfg.merger.snapshots = 4;
    cfg.merger.first_pericenter_myr = 10.0;
    cfg.format = OutputFormat::Hdf5;
    let (cat, _) = run(&cfg, tmp.path());
    let h5 = H5Dataset::open(&tmp.path().join("output_bw_16.hdf5")).expect("readable HDF5");
    assert_eq!((h5.height, h5.width), (16, 16));
    assert_eq!(h5.records.len(), cat.records.len());
    assert!(h5.records.iter().all(|r| r.simulation == "s_0.5_m_1.5"));
    // Pixel values survive PNG -> HDF5 (8-bit PNG, so within half a grey level).
    let first = h5
        .records
        .iter()
        .find(|r| r.camera == 0 && r.snapshot == 0)
        .expect("camera 0, snapshot 0");
    let img = h5.read_image(first).expect("image");
    let png = image::open(cat.resolve(&cat.records[0]))
        .expect("png")
        .into_luma8();
    assert_eq!(cat.records[0].camera, Some(0));
    assert_eq!(img.data.len(), png.as_raw().len());
    let worst = img
        .data
        .iter()
        .zip(png.as_raw())
        .map(|(&h, &p)| (h as f64 - p as f64 / 255.0).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1.0 / 255.0, "HDF5 and PNG differ by {worst}");
    assert!(png.as_raw().iter().any(|&p| p > 0));
}

#[test]
fn a_merger_with_rigid_halos_reaches_its_pericentre_on_time_whatever_the_threads() {
    let (spec, mut cfg) = short_run(0.75, 0.5, 2000, 16, 5);
    cfg.merger.halo = deepgalaxy_sim::merger::HaloKind::Rigid {
        coulomb_log: deepgalaxy_sim::halo::DEFAULT_COULOMB_LOG,
    };
    cfg.merger.snapshots = 7;
    cfg.merger.first_pericenter_myr = 15.0;
    let tmp = tempfile::tempdir().expect("tempdir");
    let (cat, _) = run(&cfg, tmp.path());
    assert_eq!(cat.records.len(), 7 * cfg.cameras);
    let m = read_marker(tmp.path(), &spec).expect("done.json");
    // the halos' centres are the galaxies': first pericentre at the distance asked, 15 Myr
    // after snapshot 0
    let realised = m.pericenter_distances_kpc[0];
    assert!(
        (realised / m.requested_pericenter_kpc - 1.0).abs() <= 0.2,
        "first pericentre {realised} kpc where {} was asked (starts {:?})",
        m.requested_pericenter_kpc,
        m.starts
    );
    let offset = cat.records[0].t_myr.unwrap() - cat.records[0].t_peri_myr.unwrap();
    assert!((offset - 15.0).abs() <= 2.5 + 1e-9, "{offset}");
    // every particle is a disk particle, and the images show them
    let first = tmp
        .path()
        .join("sims")
        .join(spec.name())
        .join(image_name(0, 0, "png"));
    let img = image::open(&first).expect("image").to_luma8();
    assert!(img.pixels().filter(|p| p.0[0] > 0).count() > 20);
    // one thread makes the same images
    let one = tempfile::tempdir().expect("tempdir");
    cfg.threads = Some(1);
    run(&cfg, one.path());
    assert_eq!(
        read_all(&tmp.path().join("sims").join(spec.name())),
        read_all(&one.path().join("sims").join(spec.name()))
    );
}
