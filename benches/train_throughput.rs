//! Training throughput of every backbone, beside PyTorch training the identical network.
//!
//! ```text
//! RAYON_NUM_THREADS=1 cargo bench --bench train_throughput
//! RAYON_NUM_THREADS=2 cargo bench --bench train_throughput
//! RAYON_NUM_THREADS=2 cargo bench --bench train_throughput -- simple resnet   # some backbones
//! ```
//!
//! For each backbone and image size it times full training steps (all three heads, Adam, batch
//! 16) of our candle network, then runs `benches/torch_train.py` on the graph JSON of the same
//! network when `DEEPGALAXY_TORCH_PYTHON` names a Python with torch, and prints both with their
//! ratio, plus this process's peak resident memory. Figures go to `benches/README.md`.

use std::time::Instant;

use candle_core::{Device, Tensor};
use deepgalaxy_core::preprocess::Preprocess;
use deepgalaxy_models::exec::{forward, Mode};
use deepgalaxy_models::{Backbone, Graph, ModelSpec, Weights};
use deepgalaxy_train::loss;
use deepgalaxy_train::optim::{Optimizer, OptimizerKind};
use rand::SeedableRng;

/// The allocator `deepgalaxy` itself uses (see `src/main.rs`), so the figures match the tool.
#[path = "../src/allocator.rs"]
#[allow(unsafe_code)] // mimalloc's option calls
mod allocator;
#[global_allocator]
static ALLOCATOR: allocator::MiMalloc = allocator::MiMalloc;

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn ours(graph: &Graph, batch: usize, steps: usize) -> f64 {
    let device = Device::Cpu;
    let weights = Weights::init(graph, 0, &device).expect("weights");
    let shape = &graph.nodes[graph.outputs.image].shape;
    let classes = graph.nodes[graph.outputs.logits].shape[0] as u32;
    let x = Tensor::rand(0f32, 1f32, (batch, shape[0], shape[1], shape[2]), &device).expect("x");
    let y: Vec<u32> = (0..batch as u32).map(|i| i % classes).collect();
    let y = Tensor::new(y.as_slice(), &device).expect("y");
    let mut opt = Optimizer::new(OptimizerKind::by_name("adam").expect("adam"));
    let vars: Vec<(&String, &candle_core::Var)> = weights.vars().iter().collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let o = graph.outputs;
    let mut step = || {
        let out = forward(
            graph,
            &weights,
            &x,
            &[
                o.logits,
                o.reconstruction,
                o.mu,
                o.logvar,
                o.vae_reconstruction,
            ],
            Mode::Train(&mut rng),
        )
        .expect("forward");
        let l = (loss::cross_entropy(&out[0], &y, 0.0).unwrap()
            + loss::mse(&out[1], &x).unwrap()
            + loss::mse(&out[4], &x).unwrap()
            + (loss::kl_divergence(&out[2], &out[3]).unwrap() * 1e-3).unwrap())
        .unwrap();
        let grads = l.backward().expect("backward");
        opt.step(&vars, &grads, 1e-3).expect("step");
    };
    deepgalaxy_train::trainer::in_pool(|| {
        for _ in 0..2 {
            step();
        }
        let t = Instant::now();
        for _ in 0..steps {
            step();
        }
        (batch * steps) as f64 / t.elapsed().as_secs_f64()
    })
}

fn torch(graph: &Graph, batch: usize, threads: usize, steps: usize) -> Option<f64> {
    let py = std::env::var_os("DEEPGALAXY_TORCH_PYTHON")?;
    let dir = tempfile::tempdir().ok()?;
    let path = dir.path().join("graph.json");
    std::fs::write(&path, serde_json::to_string(graph).ok()?).ok()?;
    let script =
        deepgalaxy_core::source_dir(env!("CARGO_MANIFEST_DIR")).join("benches/torch_train.py");
    let out = std::process::Command::new(py)
        .arg(script)
        .args([
            path.to_str()?,
            &batch.to_string(),
            &threads.to_string(),
            &steps.to_string(),
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "torch peer failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn main() {
    allocator::keep_freed_memory();
    let threads: usize = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
    // `cargo bench --bench train_throughput -- resnet` measures only the backbones named
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let batch = 16;
    println!("| backbone | size | threads | ours img/s | PyTorch img/s | PyTorch / ours |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for name in ["simple", "resnet", "efficientnet"] {
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        for size in [64u32, 128] {
            let spec = ModelSpec::new(
                Backbone::by_name(name).expect("backbone"),
                Preprocess {
                    size,
                    ..Preprocess::default()
                },
                71,
            );
            let graph = Graph::build(&spec).expect("graph");
            // after two warm-up steps; enough that PyTorch's figure is steady from run to run
            // (3 steps at 128 px gave it 67 and 153 images/s in two runs)
            let steps = if size == 64 { 16 } else { 6 };
            let a = ours(&graph, batch, steps);
            let b = torch(&graph, batch, threads, steps);
            let (bs, ratio) = match b {
                Some(b) => (format!("{b:.1}"), format!("{:.2}", b / a)),
                None => ("-".into(), "-".into()),
            };
            println!("| {name} | {size} | {threads} | {a:.1} | {bs} | {ratio} |");
        }
    }
    println!(
        "\npeak resident memory of this process: {:.0} MB",
        peak_rss_mb()
    );
}
