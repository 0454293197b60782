//! `deepgalaxy bench speedup`: the paper's headline ratio measured on one machine — seconds to
//! simulate one merger at the default resolution against seconds to infer the timescale of one
//! image (end to end from the file, batch 1, one thread, tract).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use deepgalaxy_runtime::inference::infer::run_items;
use deepgalaxy_runtime::inference::inputs::InputItem;
use deepgalaxy_runtime::inference::model::{Model, RunOptions};
use deepgalaxy_sim::{simulate_dataset, Grid, MergerConfig, MergerSpec, SimulateConfig};

use deepgalaxy_runtime::benchmark::timing::quantile;

/// Arguments of `bench speedup`.
#[derive(Debug, clap::Args)]
pub struct SpeedupArgs {
    /// The exported model to time (model.onnx).
    #[arg(long)]
    pub model: PathBuf,
    /// Particles of the simulated merger (the simulator's default).
    #[arg(long, default_value_t = MergerConfig::default().particles)]
    pub particles: usize,
    /// Image side of the simulation output.
    #[arg(long, default_value_t = 128)]
    pub size: u32,
    /// Timed inferences (the median is quoted).
    #[arg(long, default_value_t = 30)]
    pub repeats: usize,
}

/// Runs `bench speedup`.
pub fn run(args: &SpeedupArgs) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir().context("temporary folder")?;
    let cfg = SimulateConfig {
        grid: Grid::Custom(vec![MergerSpec {
            size_ratio: 1.0,
            mass_ratio: 1.0,
            orbit: None,
        }]),
        merger: MergerConfig::with_particles(args.particles),
        size: args.size,
        ..SimulateConfig::default()
    };
    eprintln!(
        "simulating one merger ({} particles, {} px, 71 snapshots x 14 cameras)...",
        args.particles, args.size
    );
    let start = Instant::now();
    let catalog = simulate_dataset(&cfg, tmp.path(), &|_| {})?;
    let sim_seconds = start.elapsed().as_secs_f64();
    let record = &catalog.records[catalog.records.len() / 2];
    let item = InputItem {
        id: record.id_str.clone(),
        path: catalog.resolve(record),
        label: record.label,
        t_myr: record.t_myr,
        t_peri_myr: record.t_peri_myr,
        simulation: record.simulation.clone(),
    };
    let model = Model::open(
        &args.model,
        RunOptions {
            threads: 1,
            batch: 1,
            ..RunOptions::default()
        },
    )?;
    let items = std::slice::from_ref(&item);
    run_items(&model, items, &|_| {})[0]
        .clone()
        .map_err(anyhow::Error::msg)?;
    let mut times = Vec::new();
    for _ in 0..args.repeats.max(1) {
        let t = Instant::now();
        run_items(&model, items, &|_| {})[0]
            .clone()
            .map_err(anyhow::Error::msg)?;
        times.push(t.elapsed().as_secs_f64());
    }
    let infer_seconds = quantile(&times, 0.5);
    let ratio = sim_seconds / infer_seconds;
    println!(
        "seconds per simulated merger: {sim_seconds:.1} ({} particles, {} CPU threads)",
        args.particles,
        rayon::current_num_threads()
    );
    println!(
        "seconds per inferred image: {infer_seconds:.5} (median of {}, {}, batch 1, 1 thread)",
        times.len(),
        args.model.display()
    );
    println!("Speed-up over simulation: {ratio:.0}");
    println!("(the paper: 10^4-10^5, 2 s of inference against 1-2 days of simulation)");
    Ok(())
}
