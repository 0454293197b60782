//! Diagnostic run of one isolated galaxy: the disk's thickness (rms height) and radial velocity
//! dispersion between 1 and 3 scale lengths, every 50 Myr over 350 Myr, to choose the particle
//! mix and softening that keep a disk from heating on the run's own timescale.
//!
//! `cargo run --release -p deepgalaxy-sim --example disk_heating -- HALO DISK SOFTENING [STEP_FRACTION]`
//!
//! HALO is the number of halo particles, or `rigid` for the analytic halo of
//! [`deepgalaxy_sim::halo`].
use deepgalaxy_sim::disk::DiskShape;
use deepgalaxy_sim::gravity::Solver;
use deepgalaxy_sim::halo::{RigidHalo, RigidHalos};
use deepgalaxy_sim::ic::{sample_disk, sample_galaxy, GalaxyModel};
use deepgalaxy_sim::integrate::Simulation;
use deepgalaxy_sim::units::TIME_MYR;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, d: f64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let rigid = args.get(1).is_some_and(|a| a == "rigid");
    let (halo, disk, eps, fraction) = (arg(1, 2500.0), arg(2, 2500.0), arg(3, 0.1), arg(4, 0.15));
    let model = GalaxyModel::default();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut sim = if rigid {
        let p = sample_disk(&model, disk as usize, eps, &mut rng);
        let halo = RigidHalo::new(model, [0.0; 3], [0.0; 3]);
        Simulation::with_halos(
            p,
            Some(RigidHalos::new(vec![halo], 0.0)),
            eps,
            Solver::default(),
        )
    } else {
        let p = sample_galaxy(&model, halo as usize, disk as usize, eps, &mut rng);
        Simulation::new(p, eps, Solver::default())
    };
    let dt = fraction * model.dynamical_time(0.2 * model.disk_scale_length);
    let start = DiskShape::measure(&sim.particles, model.disk_scale_length).expect("a disk");
    let every = (50.0 / TIME_MYR / dt).round() as usize;
    let steps = (350.0 / TIME_MYR / dt).ceil() as usize;
    println!("dt {:.3} Myr, {steps} steps; t=0: {start:?}", dt * TIME_MYR);
    let clock = std::time::Instant::now();
    for s in 1..=steps {
        sim.step(dt);
        if s % every == 0 || s == steps {
            let now = DiskShape::measure(&sim.particles, model.disk_scale_length).expect("a disk");
            println!(
                "t={:5.1} Myr: rms height {:.4} ({:+.1}%), sigma_R {:.4} ({:+.1}%), {:.0} s",
                sim.time * TIME_MYR,
                now.rms_height,
                100.0 * (now.rms_height / start.rms_height - 1.0),
                now.radial_dispersion,
                100.0 * (now.radial_dispersion / start.radial_dispersion - 1.0),
                clock.elapsed().as_secs_f64(),
            );
        }
    }
}
