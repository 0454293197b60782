//! Simulator benchmarks (plain `harness = false` timing; criterion would add minutes of build
//! time for numbers that are seconds long anyway).
//!
//! `cargo bench -p deepgalaxy-sim --bench gravity -- [forces] [scaling] [sim] [grid]`
//! (no argument: all four). Figures go to benches/README.md, section "Simulator".
//!
//! * forces:  force evaluations per second (particles x evaluations / s) at the default
//!   particle count on 1 and 2 threads, and tree interactions per second.
//! * scaling: tree vs direct summation at several N, with t / (N log2 N) and t / N^2.
//! * sim:     one full merger (1, 1) at the default particle count, 71 x 14 images at 128 px.
//! * grid:    the time-step plan of all 36 paper mergers, and the projected wall time of the
//!   whole paper grid from the measured seconds per step of `sim`.

use deepgalaxy_sim::gravity::{compute_forces, Solver};
use deepgalaxy_sim::merger::{initial_conditions, DEFAULT_PARTICLES};
use deepgalaxy_sim::tree::Octree;
use deepgalaxy_sim::{simulate_dataset, Grid, MergerConfig, MergerSpec, SimulateConfig};
use std::time::Instant;

fn particles(n: usize) -> deepgalaxy_sim::particles::Particles {
    let spec = MergerSpec {
        size_ratio: 1.0,
        mass_ratio: 1.0,
        orbit: None,
    };
    initial_conditions(&spec, &MergerConfig::with_particles(n), 1)
        .expect("valid settings")
        .0
        .particles
}

/// CPU seconds (user + system, all threads) used by this process so far, from
/// /proc/self/stat (Linux clock ticks of 1/100 s). On a machine shared with other jobs the
/// wall clock overstates our cost; CPU time does not.
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1.split_whitespace().collect::<Vec<_>>();
            let ticks = rest.get(11)?.parse::<f64>().ok()? + rest.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(f64::NAN)
}

fn time<T>(reps: usize, mut f: impl FnMut() -> T) -> f64 {
    let _ = f();
    let t = Instant::now();
    for _ in 0..reps {
        std::hint::black_box(f());
    }
    t.elapsed().as_secs_f64() / reps as f64
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool")
}

fn forces() {
    let n = DEFAULT_PARTICLES;
    let p = particles(n);
    let eps = MergerConfig::with_particles(n).softening;
    let tree = Octree::build(&p.pos, &p.mass, 0.6);
    let (cells, parts) = tree.interaction_count();
    println!("## forces: N = {n}, theta = 0.6, two galaxies at t = 0");
    println!(
        "interactions per particle: {:.0} cell (quadrupole) + {:.0} particle",
        cells as f64 / n as f64,
        parts as f64 / n as f64
    );
    for threads in [1, 2] {
        let c0 = cpu_seconds();
        let t = pool(threads).install(|| {
            time(40, || {
                compute_forces(&p.pos, &p.mass, eps, Solver::default())
            })
        });
        let cpu = (cpu_seconds() - c0) / 41.0;
        println!(
            "{threads} thread(s): {:.2} ms wall per evaluation (tree build included), {:.2e} force evaluations/s, {:.2e} interactions/s; {:.2} ms CPU per evaluation",
            t * 1e3,
            n as f64 / t,
            (cells + parts) as f64 / t,
            cpu * 1e3
        );
    }
    let t_build = time(20, || Octree::build(&p.pos, &p.mass, 0.6));
    println!("tree build alone: {:.2} ms", t_build * 1e3);
}

fn scaling() {
    println!("## scaling: tree (theta 0.6) vs direct, 2 threads");
    println!(
        "| N | tree ms | direct ms | direct / tree | tree ns / (N log2 N) | direct ns / N^2 |"
    );
    println!("|---|---|---|---|---|---|");
    for n in [1000, 2000, 4000, 8000, 16000, 32000] {
        let p = particles(n);
        let eps = MergerConfig::with_particles(n).softening;
        let reps = (64_000 / n).max(2);
        let tt = time(reps, || {
            compute_forces(&p.pos, &p.mass, eps, Solver::default())
        });
        let td = time((16_000 / n).max(1), || {
            compute_forces(&p.pos, &p.mass, eps, Solver::Direct)
        });
        let nf = n as f64;
        println!(
            "| {n} | {:.2} | {:.1} | {:.1} | {:.2} | {:.3} |",
            tt * 1e3,
            td * 1e3,
            td / tt,
            tt * 1e9 / (nf * nf.log2()),
            td * 1e9 / (nf * nf)
        );
    }
}

/// Runs the (1, 1) merger at the default settings; returns seconds and leapfrog steps.
fn sim() -> (f64, f64, usize) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let spec = MergerSpec {
        size_ratio: 1.0,
        mass_ratio: 1.0,
        orbit: None,
    };
    let cfg = SimulateConfig {
        grid: Grid::Custom(vec![spec]),
        merger: MergerConfig::with_particles(DEFAULT_PARTICLES),
        ..Default::default()
    };
    let t = Instant::now();
    let c0 = cpu_seconds();
    simulate_dataset(&cfg, tmp.path(), &|_| {}).expect("simulation runs");
    let secs = t.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - c0;
    let m = deepgalaxy_sim::dataset::read_marker(tmp.path(), &spec).expect("marker");
    println!(
        "## sim: merger s_1_m_1, N = {DEFAULT_PARTICLES}, 128 px, 2 threads: {secs:.1} s ({} steps, {:.1} ms/step incl. rendering 994 images), dE/E {:+.1e}, final 2K/|W| {:.3}",
        m.steps,
        secs * 1e3 / m.steps as f64,
        m.energy_drift,
        m.final_virial_ratio
    );
    println!(
        "CPU time {cpu:.1} s (both threads): an unshared 2-core machine would take about {:.1} s",
        cpu / 2.0
    );
    (secs, cpu / 2.0, m.steps)
}

fn grid(measured: Option<(f64, f64, usize)>) {
    let specs = Grid::Paper.specs();
    let cfg = MergerConfig::with_particles(DEFAULT_PARTICLES);
    let steps: Vec<usize> = specs
        .iter()
        .map(|s| {
            let (_, plan) = initial_conditions(s, &cfg, 1).expect("valid settings");
            plan.steps_per_snapshot * (cfg.snapshots - 1)
        })
        .collect();
    let total: usize = steps.iter().sum();
    println!(
        "## grid: 36 paper mergers at N = {DEFAULT_PARTICLES}: {total} leapfrog steps in all (min {}, max {})",
        steps.iter().min().unwrap_or(&0),
        steps.iter().max().unwrap_or(&0)
    );
    if let Some((secs, cpu_half, n)) = measured {
        let projected = secs / n as f64 * total as f64;
        let unshared = cpu_half / n as f64 * total as f64;
        println!(
            "projected paper grid (36 x 71 x 14 images at 128 px): {:.1} min at this run's wall clock, {:.1} min from CPU time on an unshared 2-core machine",
            projected / 60.0,
            unshared / 60.0
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let all = args.is_empty();
    let want = |k: &str| all || args.iter().any(|a| a == k);
    if want("forces") {
        forces();
    }
    if want("scaling") {
        scaling();
    }
    let measured = if want("sim") { Some(sim()) } else { None };
    if want("grid") {
        grid(measured);
    }
}
