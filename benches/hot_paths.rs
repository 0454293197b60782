//! Criterion benches of the runtime's hot paths, each on its own so a regression shows where:
//!
//! - `preprocess`: one image through `deepgalaxy_core::preprocess` (resize, stretch,
//!   normalise) to the 64x64 input of the default model, from a simulated-size (256 px) and a
//!   Hubble-size (1024 px) grey image;
//! - `inference`: the default architecture (simple backbone, 64x64, 71 classes, 16-D latent)
//!   exported to ONNX, one batch of 1 and of 32 on one thread, per backend (tract always;
//!   ONNX Runtime when built with `--features ort` and `ORT_DYLIB_PATH` is set, else skipped
//!   with a note);
//! - `knn`: the 6 nearest of 100 000 16-D latents, kd-tree against brute force.
//!
//! ```text
//! cargo bench --bench hot_paths                    # tract only
//! cargo bench --features ort --bench hot_paths     # both backends (ORT_DYLIB_PATH set)
//! ```
//!
//! The weights are freshly initialised (seeded): inference time does not depend on their values.
// criterion's macro generates the undocumented `benches` function
#![allow(missing_docs)]

use std::hint::black_box;
use std::path::Path;

use candle_core::Device;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use deepgalaxy_core::card::{ModelCard, CARD_VERSION};
use deepgalaxy_core::image::{Image, SampleType};
use deepgalaxy_core::{preprocess, Preprocess};
use deepgalaxy_export::{export, to_bytes, Target};
use deepgalaxy_models::{Backbone, Graph, ModelSpec, Weights};
use deepgalaxy_runtime::inference::backend::{self, BackendKind, Tensor};
use deepgalaxy_runtime::library::search::{Searcher, Strategy};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The default model's input side.
const SIZE: u32 = 64;

/// A grey `side` x `side` image of two Gaussian galaxies on noise.
fn galaxy_pair(side: usize) -> Image {
    let mut rng = ChaCha8Rng::seed_from_u64(side as u64);
    let s = side as f32;
    let data = (0..side * side)
        .map(|i| {
            let (x, y) = ((i % side) as f32 / s, (i / side) as f32 / s);
            let blob =
                |cx: f32, cy: f32, w: f32| (-((x - cx).powi(2) + (y - cy).powi(2)) / w).exp();
            blob(0.4, 0.5, 0.01) + 0.6 * blob(0.62, 0.45, 0.004) + 0.01 * rng.random::<f32>()
        })
        .collect();
    Image::new(1, side, side, data, SampleType::F32).expect("consistent shape")
}

fn bench_preprocess(c: &mut Criterion) {
    let p = Preprocess {
        size: SIZE,
        ..Preprocess::default()
    };
    let mut g = c.benchmark_group("preprocess");
    for side in [256, 1024] {
        let image = galaxy_pair(side);
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::from_parameter(side), &image, |b, image| {
            b.iter(|| preprocess(black_box(image), &p, Path::new("bench.png")).unwrap())
        });
    }
    g.finish();
}

/// The default architecture exported to ONNX bytes.
fn default_model() -> Vec<u8> {
    let preprocess = Preprocess {
        size: SIZE,
        ..Preprocess::default()
    };
    let spec = ModelSpec::new(
        Backbone::by_name("simple").expect("a known backbone"),
        preprocess.clone(),
        71,
    );
    let graph = Graph::build(&spec).expect("the default spec builds");
    let weights = Weights::init(&graph, 0, &Device::Cpu).expect("initialised weights");
    let card = ModelCard {
        card_version: CARD_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").into(),
        model_spec: serde_json::to_value(&spec).expect("the spec serialises"),
        preprocess,
        num_classes: 71,
        class_t_myr: (0..71).map(|k| 5.0 * k as f64).collect(),
        target: Default::default(),
        time_sigma_scale: None,
        simulations: None,
        latent_dim: Some(spec.latent_dim),
        training_digest: None,
        split: None,
        metrics: Default::default(),
        precision: "fp32".into(),
        quantization: None,
        test: None,
    };
    let proto = export(&graph, &weights, &card, Target::Model).expect("export");
    to_bytes(&proto).expect("serialised model")
}

fn bench_inference(c: &mut Criterion) {
    let bytes = default_model();
    let mut g = c.benchmark_group("inference");
    for kind in [BackendKind::Tract, BackendKind::Ort] {
        let engine = match backend::from_bytes(Path::new("default.onnx"), &bytes, kind, 1) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("inference/{}: skipped ({e})", kind.name());
                continue;
            }
        };
        for batch in [1usize, 32] {
            let side = SIZE as usize;
            let mut rng = ChaCha8Rng::seed_from_u64(batch as u64);
            let input = Tensor::new(
                vec![batch, 1, side, side],
                (0..batch * side * side)
                    .map(|_| rng.random::<f32>())
                    .collect(),
            )
            .expect("consistent shape");
            g.throughput(Throughput::Elements(batch as u64));
            g.bench_with_input(
                BenchmarkId::new(kind.name(), format!("batch{batch}")),
                &input,
                |b, input| b.iter(|| engine.run(black_box(input)).unwrap()),
            );
        }
    }
    g.finish();
}

fn bench_knn(c: &mut Criterion) {
    const N: usize = 100_000;
    const DIM: usize = 16;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let latents: Vec<f32> = (0..N * DIM).map(|_| rng.random::<f32>()).collect();
    let queries: Vec<f32> = (0..64 * DIM).map(|_| rng.random::<f32>()).collect();
    let mut g = c.benchmark_group("knn");
    for (name, strategy) in [("kd-tree", Strategy::KdTree), ("brute", Strategy::Brute)] {
        let searcher = Searcher::over(&latents, DIM, strategy).expect("a searcher");
        let mut q = queries.chunks(DIM).cycle();
        g.bench_function(BenchmarkId::new(name, "100k x 16, k=6"), |b| {
            b.iter(|| searcher.search(black_box(q.next().unwrap()), 6).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench_preprocess, bench_inference, bench_knn);
criterion_main!(benches);
