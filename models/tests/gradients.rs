//! The whole network's backward pass against finite differences: the layers are checked one
//! by one against PyTorch in `layers.rs`; this checks they are wired together right (shared
//! decoder weights, residual adds, squeeze-excite, all heads at once) for every backbone.

use candle_core::{DType, Device, Tensor};
use deepgalaxy_core::preprocess::Preprocess;
use deepgalaxy_models::exec::{forward, Mode};
use deepgalaxy_models::{Backbone, Graph, ModelSpec, Weights};

fn sine_fill(shape: &[usize], phase: f64) -> Tensor {
    deepgalaxy_models::reference::sine_fill(shape, phase).unwrap()
}

/// A scalar of every head's output, in training mode (batch statistics) without noise.
fn objective(graph: &Graph, weights: &Weights, x: &Tensor) -> Tensor {
    let o = graph.outputs;
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
    let outs = forward(
        graph,
        weights,
        x,
        &[o.logits, o.reconstruction, o.mu, o.logvar],
        Mode::Train(&mut rng),
    )
    .unwrap();
    let mut total = Tensor::new(0f64, &Device::Cpu).unwrap();
    for (k, t) in outs.iter().enumerate() {
        let t = t.to_dtype(candle_core::DType::F64).unwrap();
        let c = sine_fill(t.dims(), 0.5 + k as f64)
            .to_dtype(candle_core::DType::F64)
            .unwrap();
        total = (total + t.mul(&c).unwrap().sum_all().unwrap()).unwrap();
    }
    total
}

fn check(backbone: Backbone, size: u32) {
    let mut spec = ModelSpec::new(
        backbone,
        Preprocess {
            size,
            ..Preprocess::default()
        },
        3,
    );
    spec.dropout = 0.0;
    spec.latent_dim = 4;
    let graph = Graph::build(&spec).unwrap();
    let weights = Weights::init(&graph, 3, &Device::Cpu)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap();
    let x = ((sine_fill(&[4, 1, size as usize, size as usize], 0.1) + 1.0).unwrap() * 0.5)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap();
    let grads = objective(&graph, &weights, &x).backward().unwrap();
    let mut checked = 0;
    // the first, a middle and the last parameter tensors of the encoder, plus every head
    let names: Vec<&String> = weights.vars().keys().collect();
    let picks: Vec<&String> = names
        .iter()
        .enumerate()
        .filter(|(i, n)| {
            !n.starts_with("encoder.") || *i == 0 || *i == names.len() / 2 || *i % 7 == 0
        })
        .map(|(_, n)| *n)
        .collect();
    for name in picks {
        let var = &weights.vars()[name];
        let Some(g) = grads.get(var.as_tensor()) else {
            continue;
        };
        let g = g.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let orig = var
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        // the element with the largest gradient: finite differences are clearest there
        let i = (0..g.len())
            .max_by(|&a, &b| g[a].abs().total_cmp(&g[b].abs()))
            .unwrap();
        // in float64 a tiny step is exact enough and crosses no ReLU kink (in float32, steps
        // large enough to beat rounding crossed kinks and were off by several percent)
        let eps = 1e-7f64;
        let at = |delta: f64| {
            let mut v = orig.clone();
            v[i] += delta;
            var.set(&Tensor::from_vec(v, var.as_tensor().dims(), &Device::Cpu).unwrap())
                .unwrap();
            objective(&graph, &weights, &x).to_scalar::<f64>().unwrap()
        };
        let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
        at(0.0);
        let analytic = g[i];
        assert!(
            (numeric - analytic).abs() <= 1e-4 * analytic.abs().max(1e-1),
            "{name}[{i}]: backward {analytic} vs finite difference {numeric}"
        );
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} tensors checked");
}

#[test]
fn simple_network_gradients_match_finite_differences() {
    check(
        Backbone::Simple {
            widths: vec![4, 8],
            depth: 2,
        },
        16,
    );
}

#[test]
fn resnet_gradients_match_finite_differences() {
    check(Backbone::Resnet { width: 0.125 }, 32);
}

#[test]
fn efficientnet_gradients_match_finite_differences() {
    check(
        Backbone::Efficientnet {
            width: 0.25,
            depth: 0.25,
        },
        32,
    );
}
