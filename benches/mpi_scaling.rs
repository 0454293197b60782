//! Data-parallel training over MPI: images/s on 1 and 2 ranks (one thread each), the scaling
//! efficiency, the per-step split between compute and allreduce, allreduce latency and
//! bandwidth, and a ring-allreduce projection to 4..1024 workers beside the paper's figures.
//!
//! ```text
//! cargo bench --features mpi --bench mpi_scaling
//! ```
//!
//! The bench launches itself under `mpirun --allow-run-as-root --oversubscribe -np N` with
//! `RAYON_NUM_THREADS=1` (N = 1, then 2); each launch trains the default network (simple
//! backbone, 64x64, all three heads, Adam) on synthetic images for a few steps through
//! `deepgalaxy_train::train_with`, and rank 0 prints its timings as one JSON line. The
//! projection is a model, not a measurement: see `benches/README.md` and
//! `benches/mpi_scaling.png`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::Instant;

use deepgalaxy_collective::{Collective, Mpi};
use deepgalaxy_core::preprocess::Preprocess;
use deepgalaxy_core::{Catalog, CatalogRecord};
use deepgalaxy_models::{Backbone, Graph, ModelSpec};
use deepgalaxy_train::augment::Augment;
use deepgalaxy_train::distributed::{Network, Parallel};
use deepgalaxy_train::optim::OptimizerKind;
use deepgalaxy_train::schedule::{Schedule, ScheduleKind};
use deepgalaxy_train::split::SplitKind;
use deepgalaxy_train::trainer::StepInfo;
use deepgalaxy_train::{Heads, LossWeights, Observer, TrainConfig};
use serde_json::{json, Value};

const SIZE: u32 = 64;
const BATCH: usize = 16;
const STEPS: u64 = 14;
const WARM: usize = 2;
const CLASSES: u32 = 8;

/// Stated parameters of an EDR InfiniBand / Omni-Path (100 Gb/s) cluster for the model.
const CLUSTER: Network = Network {
    alpha: 2e-6,
    bandwidth: 10e9,
};

/// The paper's measured efficiencies (Cai et al. 2020, Horovod): (workers, efficiency).
const PAPER: [(f64, f64); 2] = [(128.0, 0.93), (512.0, 0.73)];

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("worker") => worker(Path::new(&std::env::args().nth(2).expect("data path"))),
        _ => driver(),
    }
}

/// Synthetic 8-bit blobs, enough for every rank's batches of a run without repeats.
fn dataset(dir: &Path) -> PathBuf {
    let n = 2 * BATCH * STEPS as usize + 32;
    let records = (0..n)
        .map(|i| {
            let label = i as u32 % CLASSES;
            let img = image::GrayImage::from_fn(SIZE, SIZE, |x, y| {
                let d2 = (x as f32 - 32.0).powi(2) + (y as f32 - 30.0).powi(2);
                let v = (40.0 + 20.0 * label as f32) * (-d2 / (20.0 + 9.0 * label as f32)).exp();
                image::Luma([(v + ((i * 7 + x as usize * 3 + y as usize) % 11) as f32) as u8])
            });
            let name = format!("g{i}.png");
            img.save(dir.join(&name)).expect("write image");
            CatalogRecord {
                id_str: format!("g{i}"),
                file_loc: name,
                simulation: Some(format!("sim{}", i % 4)),
                label: Some(label),
                t_myr: Some(label as f64 * 5.0),
                ..Default::default()
            }
        })
        .collect();
    let path = dir.join("catalog.csv");
    Catalog::new(records).write(&path).expect("write catalog");
    path
}

fn spec() -> ModelSpec {
    let preprocess = Preprocess {
        size: SIZE,
        ..Preprocess::default()
    };
    let backbone = Backbone::by_name("simple").expect("simple backbone");
    ModelSpec::new(backbone, preprocess, CLASSES as usize)
}

/// Timings of every step, collected on rank 0.
struct Steps(Mutex<Vec<(f64, f64)>>);

impl Observer for Steps {
    fn step(&self, s: &StepInfo) {
        if let Ok(mut v) = self.0.lock() {
            v.push((s.step_secs, s.comm_secs));
        }
    }
}

/// Seconds per allreduce of `floats` floats (median of `reps`).
fn allreduce_secs(comm: &dyn Collective, floats: usize, reps: usize) -> f64 {
    let mut buf = vec![1f32; floats];
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            comm.barrier();
            let t = Instant::now();
            comm.allreduce_sum(&mut buf);
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[reps / 2]
}

fn worker(data: &Path) {
    let comm = Mpi::init().expect("MPI");
    let out = tempfile::tempdir().expect("temp dir");
    let cfg = TrainConfig {
        data: data.to_path_buf(),
        out: out.path().to_path_buf(),
        epochs: 1,
        batch_size: BATCH,
        max_steps: Some(STEPS),
        heads: Heads::parse("classifier,autoencoder,vae").expect("heads"),
        freeze_encoder: false,
        unfreeze_every: None,
        init_from: None,
        split: SplitKind::Random,
        val_fraction: 0.0,
        val_simulations: vec![],
        test: Default::default(),
        target: None,
        optimizer: OptimizerKind::by_name("adam").expect("adam"),
        schedule: Schedule {
            lr: 1e-3,
            kind: ScheduleKind::Constant,
            warmup: 0,
        },
        loss: LossWeights::default(),
        augment: Augment {
            dihedral: true,
            noise: 0.0,
            blur_fwhm: 0.0,
        },
        seed: 1,
        parallel: Parallel::default(),
        overwrite: false,
    };
    let steps = Steps(Mutex::new(Vec::new()));
    let stop = AtomicBool::new(false);
    deepgalaxy_train::train_with(spec(), cfg, None, &steps, &stop, &comm).expect("training");
    let graph = Graph::build(&spec()).expect("graph");
    let grad_floats: usize = graph
        .params()
        .iter()
        .filter(|p| p.kind.trainable())
        .map(|p| p.shape.iter().product::<usize>())
        .sum();
    let mut sizes = [
        1usize,
        1 << 10,
        1 << 14,
        1 << 18,
        grad_floats,
        1 << 20,
        1 << 22,
    ];
    sizes.sort_unstable();
    let allreduce: Vec<(usize, f64)> = if comm.size() > 1 {
        sizes
            .iter()
            .map(|&n| {
                (
                    n,
                    allreduce_secs(&comm, n, if n > 1 << 18 { 7 } else { 31 }),
                )
            })
            .collect()
    } else {
        vec![]
    };
    if comm.rank() == 0 {
        let steps = steps.0.into_inner().unwrap_or_default();
        println!(
            "RESULT {}",
            json!({
                "ranks": comm.size(),
                "steps": &steps[WARM.min(steps.len())..],
                "grad_floats": grad_floats,
                "allreduce": allreduce,
            })
        );
    }
}

fn launch(ranks: usize, data: &Path) -> Value {
    let exe = std::env::current_exe().expect("own path");
    let out = Command::new("mpirun")
        .args(["--allow-run-as-root", "--oversubscribe", "-np"])
        .arg(ranks.to_string())
        .arg(&exe)
        .arg("worker")
        .arg(data)
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .expect("mpirun (Debian openmpi-bin)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| {
            panic!(
                "{ranks} rank(s) gave no result:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    serde_json::from_str(line).expect("result JSON")
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    s / n.max(1) as f64
}

/// (step seconds, allreduce seconds) averaged over the measured steps.
fn per_step(r: &Value) -> (f64, f64) {
    let steps = r["steps"].as_array().expect("steps");
    let f = |k: usize| mean(steps.iter().map(|s| s[k].as_f64().unwrap_or(f64::NAN)));
    (f(0), f(1))
}

/// The 2-rank network from allreduce timings of `(bytes, seconds)`: alpha from the smallest
/// message (a 2-rank ring sends 2 messages), bandwidth from the one nearest `bytes`.
fn network_from(points: &[(f64, f64)], bytes: f64) -> Network {
    let smallest = points
        .iter()
        .fold((f64::MAX, 0.0), |m, p| if p.0 < m.0 { *p } else { m });
    let alpha = smallest.1 / 2.0;
    let near = points.iter().fold((0.0, 0.0), |m, p| {
        if (p.0 - bytes).abs() < (m.0 - bytes).abs() {
            *p
        } else {
            m
        }
    });
    Network {
        alpha,
        bandwidth: near.0 / (near.1 - 2.0 * alpha).max(1e-9),
    }
}

fn driver() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dataset(dir.path());
    let one = launch(1, &data);
    let two = launch(2, &data);
    let (t1, _) = per_step(&one);
    let (t2, c2) = per_step(&two);
    let ips1 = BATCH as f64 / t1;
    let ips2 = 2.0 * BATCH as f64 / t2;
    let efficiency = ips2 / (2.0 * ips1);
    let grad_floats = two["grad_floats"].as_f64().expect("grad_floats");
    let bytes = 4.0 * grad_floats;
    println!("# data-parallel training, simple backbone {SIZE}x{SIZE}, batch {BATCH} per rank, RAYON_NUM_THREADS=1");
    println!("gradient: {grad_floats} floats ({:.2} MB)", bytes / 1e6);
    println!("1 rank : {t1:.3} s/step, {ips1:.1} images/s");
    println!(
        "2 ranks: {t2:.3} s/step ({:.3} s compute, {c2:.4} s allreduce = {:.1}%), {ips2:.1} images/s",
        t2 - c2,
        100.0 * c2 / t2
    );
    println!("scaling efficiency (2 ranks): {efficiency:.3}");
    let points: Vec<(f64, f64)> = two["allreduce"]
        .as_array()
        .expect("allreduce")
        .iter()
        .map(|p| {
            (
                4.0 * p[0].as_f64().unwrap_or(f64::NAN),
                p[1].as_f64().unwrap_or(f64::NAN),
            )
        })
        .collect();
    println!("\n| floats | bytes | allreduce (2 ranks, median) | GB/s |");
    println!("| ---: | ---: | ---: | ---: |");
    for (b, t) in &points {
        println!(
            "| {} | {b:.0} | {:.1} µs | {:.2} |",
            b / 4.0,
            t * 1e6,
            b / t / 1e9
        );
    }
    let here = network_from(&points, bytes);
    println!(
        "\nthis machine (2-rank ring, t = 2 alpha + bytes / B): alpha = {:.2} µs (1 float), B = {:.2} GB/s (at the gradient's size)",
        here.alpha * 1e6,
        here.bandwidth / 1e9
    );
    // the model's compute time: one rank's step on this machine
    let workers: Vec<usize> = (2..=10).map(|k| 1usize << k).collect();
    let curve = |net: &Network, bytes: f64, compute: f64| -> Vec<(f64, f64)> {
        workers
            .iter()
            .map(|&p| (p as f64, net.efficiency(p, compute, bytes)))
            .collect()
    };
    // a 19.3M-parameter gradient (EfficientNet-B4's size): the compute per step at which the
    // model gives the paper's 0.73 at 512 workers, then what it predicts at 128
    let big = 4.0 * 19.3e6;
    let (p_fit, e_fit) = PAPER[1];
    let t_fit = e_fit / (1.0 - e_fit) * CLUSTER.ring_allreduce_secs(p_fit as usize, big);
    let models = vec![
        (
            format!(
                "model: this network ({t1:.2} s/step), InfiniBand EDR/Omni-Path (alpha {} µs, {} GB/s)",
                CLUSTER.alpha * 1e6,
                CLUSTER.bandwidth / 1e9
            ),
            curve(&CLUSTER, bytes, t1),
        ),
        (
            "model: this network, this machine's alpha/B (shared memory)".to_string(),
            curve(&here, bytes, t1),
        ),
        (
            format!(
                "model: 19.3M-param gradient, InfiniBand, {:.0} ms/step (fitted to 0.73 at 512)",
                t_fit * 1e3
            ),
            curve(&CLUSTER, big, t_fit),
        ),
    ];
    println!("\nprojected efficiency (ring allreduce, no overlap):");
    println!(
        "| workers | this net, InfiniBand | this net, this machine's alpha/B | 19.3M params, InfiniBand, {:.0} ms/step |",
        t_fit * 1e3
    );
    println!("| ---: | ---: | ---: | ---: |");
    for (k, &p) in workers.iter().enumerate() {
        println!(
            "| {p} | {:.3} | {:.3} | {:.3} |",
            models[0].1[k].1, models[1].1[k].1, models[2].1[k].1
        );
    }
    println!(
        "fitted at 512 (0.73): compute {:.1} ms/step; the model then predicts {:.3} at 128 (paper: 0.93)",
        t_fit * 1e3,
        CLUSTER.efficiency(128, t_fit, big)
    );
    let observed = vec![
        (
            "Cai et al. 2020 (Horovod, measured)".to_string(),
            PAPER.to_vec(),
        ),
        (
            "this machine, 2 ranks (measured)".to_string(),
            vec![(2.0, efficiency)],
        ),
    ];
    let png =
        deepgalaxy_core::source_dir(env!("CARGO_MANIFEST_DIR")).join("benches/mpi_scaling.png");
    deepgalaxy_train::plots::scaling(
        &png,
        "Scaling efficiency: ring-allreduce model (lines) vs measurements (points)",
        &models,
        &observed,
    )
    .expect("plot");
    println!("\nwrote {}", png.display());
}
