//! Diagnostic run of one merger: prints separation, energy drift and virial ratios, then the
//! pericentres and coalescence found from the tracked centres.
//!
//! `cargo run --release -p deepgalaxy-sim --example probe -- SIZE MASS [N] [STEP_FRACTION] [SOFTENING]`
//! (SOFTENING 0: the N-scaled default); `ECC` and `PERI` in the environment override the orbit,
//! `RIGID=L` gives the galaxies rigid halos with friction of Coulomb logarithm L.
use deepgalaxy_sim::merger::{run_merger, HaloKind, MergerConfig, MergerSpec};
use deepgalaxy_sim::phase::separation;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let s: f64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1.0);
    let m: f64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1.0);
    let n: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(8000);
    let sf: f64 = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(0.15);
    let eps: f64 = args.get(5).and_then(|a| a.parse().ok()).unwrap_or(0.1);
    let cfg = MergerConfig {
        step_fraction: sf,
        eccentricity: std::env::var("ECC")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1.0),
        pericenter_radii: std::env::var("PERI")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1.0),
        softening: if eps > 0.0 {
            eps
        } else {
            MergerConfig::with_particles(n).softening
        },
        particles: n,
        halo: match std::env::var("RIGID").ok().and_then(|v| v.parse().ok()) {
            Some(coulomb_log) => HaloKind::Rigid { coulomb_log },
            None => HaloKind::Live,
        },
        ..Default::default()
    };
    let spec = MergerSpec {
        size_ratio: s,
        mass_ratio: m,
        orbit: None,
    };
    let t0 = std::time::Instant::now();
    let mut e0 = 0.0;
    let r = run_merger(
        &spec,
        &cfg,
        1,
        |i, sim, plan| {
            let e = sim.total_energy();
            if i == 0 {
                e0 = e;
                println!("plan {:?}", plan);
            }
            if i % 2 == 0 {
                println!(
                    "snap {i:2} t={:.1} sep={:.2} dE/E={:.2e} 2K/W={:.3} clausius={:.3} wall={:.1}s",
                    sim.time,
                    separation(sim).unwrap_or(f64::NAN),
                    (e - e0) / e0.abs(),
                    sim.virial_ratio(), sim.clausius_virial_ratio(),
                    t0.elapsed().as_secs_f64()
                );
            }
            Ok(())
        },
        |_, _| {},
    );
    match r {
        Ok((_, run)) => {
            let p = run.track.phases(cfg.coalescence_kpc);
            let myr = deepgalaxy_sim::units::TIME_MYR;
            // times from snapshot 0
            let zero = run.first_snapshot as f64 * cfg.snapshot_interval_myr / myr;
            println!(
                "set up: pericentre {:.2} kpc at {:.1} Myr from the start; snapshot 0 at grid point {}; found from snapshot 0: pericentres {:?} Myr at {:?} kpc, coalescence {:?} Myr",
                run.plan.pericenter,
                run.plan.t_pericenter * myr,
                run.first_snapshot,
                p.pericenters.iter().map(|t| ((t - zero) * myr * 10.0).round() / 10.0).collect::<Vec<_>>(),
                p.pericenter_distances.iter().map(|d| (d * 100.0).round() / 100.0).collect::<Vec<_>>(),
                p.coalescence.map(|t| ((t - zero) * myr * 10.0).round() / 10.0),
            );
        }
        Err(e) => eprintln!("{e}"),
    }
}
