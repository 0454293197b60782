//! Losses and optimizers against PyTorch: the numbers below come from `torch_reference.py`
//! (same folder), computed in float64; ours run in float32.

use candle_core::{backprop::GradStore, Device, Tensor, Var};
use deepgalaxy_train::loss;
use deepgalaxy_train::optim::{Optimizer, OptimizerKind};

const LOSSES: &[(&str, &[f64])] = &[
    ("cross_entropy_0.0", &[2.818522588e+00, 5.444826694e-01]),
    ("cross_entropy_0.1", &[2.875093982e+00, 5.641327686e-01]),
    ("gaussian_1.5_0.1", &[2.655628266e+00, 4.865431470e-01]),
    ("mse", &[1.740806472e-02, 4.042388805e-02]),
    ("kl", &[1.178222279e+00, 2.087692201e+00, 3.166224040e-01]),
];
const OPTIMIZERS: &[(&str, &[f64])] = &[
    (
        "sgd",
        &[
            8.919396887e-02,
            7.220990562e-01,
            9.860218666e-01,
            7.461016235e-01,
            1.249341353e-01,
        ],
    ),
    (
        "sgd_momentum",
        &[
            -1.115296340e-01,
            4.896949909e-01,
            8.406924880e-01,
            7.621081629e-01,
            2.940974803e-01,
        ],
    ),
    (
        "sgd_nesterov",
        &[
            -2.759695969e-01,
            3.947226214e-01,
            8.637172328e-01,
            8.913647070e-01,
            4.635375807e-01,
        ],
    ),
    (
        "adam",
        &[
            2.662627098e-01,
            8.322585065e-01,
            9.660937279e-01,
            6.059689485e-01,
            -5.316300535e-02,
        ],
    ),
    (
        "adamw",
        &[
            2.654123359e-01,
            8.297965785e-01,
            9.634089625e-01,
            6.043119361e-01,
            -5.294793593e-02,
        ],
    ),
    (
        "adadelta",
        &[
            2.230648868e-01,
            8.223878007e-01,
            9.836308899e-01,
            6.525130851e-01,
            9.520260511e-05,
        ],
    ),
];

fn sine_fill(shape: &[usize], phase: f64) -> Tensor {
    deepgalaxy_models::reference::sine_fill(shape, phase).unwrap()
}

fn scalar(t: &Tensor) -> f64 {
    t.to_dtype(candle_core::DType::F64)
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

fn projection(grads: &GradStore, v: &Var) -> f64 {
    let g = grads.get(v.as_tensor()).unwrap();
    scalar(&g.mul(&sine_fill(g.dims(), 0.25)).unwrap())
}

fn reference<'a>(table: &'a [(&str, &'a [f64])], name: &str) -> &'a [f64] {
    table.iter().find(|(n, _)| *n == name).unwrap().1
}

fn close(name: &str, ours: &[f64], theirs: &[f64]) {
    assert_eq!(ours.len(), theirs.len());
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        assert!(
            (a - b).abs() <= 1e-5 * b.abs().max(1.0),
            "{name}[{i}]: ours {a} vs PyTorch {b}"
        );
    }
}

#[test]
fn losses_match_pytorch() {
    let logits = Var::from_tensor(&(sine_fill(&[4, 7], 0.1) * 3.0).unwrap()).unwrap();
    let labels = Tensor::new(&[0u32, 3, 6, 2], &Device::Cpu).unwrap();
    for (eps, name) in [(0.0, "cross_entropy_0.0"), (0.1, "cross_entropy_0.1")] {
        let l = loss::cross_entropy(logits.as_tensor(), &labels, eps).unwrap();
        let g = l.backward().unwrap();
        close(
            name,
            &[scalar(&l), projection(&g, &logits)],
            reference(LOSSES, name),
        );
    }
    // one-hot targets with smoothing are PyTorch's label smoothing; then Gaussian targets
    let truth = [0u32, 3, 6, 2];
    for (sigma, eps, name) in [
        (0.0, 0.1, "cross_entropy_0.1"),
        (1.5, 0.1, "gaussian_1.5_0.1"),
    ] {
        let q = loss::gaussian_targets(&truth, 7, sigma, eps, &Device::Cpu).unwrap();
        let l = loss::soft_cross_entropy(logits.as_tensor(), &q).unwrap();
        let g = l.backward().unwrap();
        close(
            name,
            &[scalar(&l), projection(&g, &logits)],
            reference(LOSSES, name),
        );
    }
    let sig = |t: Tensor| candle_nn::ops::sigmoid(&t).unwrap();
    let x = Var::from_tensor(&sig(sine_fill(&[2, 1, 3, 3], 0.1))).unwrap();
    let t = sig(sine_fill(&[2, 1, 3, 3], 0.9));
    let l = loss::mse(x.as_tensor(), &t).unwrap();
    let g = l.backward().unwrap();
    close(
        "mse",
        &[scalar(&l), projection(&g, &x)],
        reference(LOSSES, "mse"),
    );
    let mu = Var::from_tensor(&sine_fill(&[3, 4], 0.2)).unwrap();
    let logvar = Var::from_tensor(&(sine_fill(&[3, 4], 1.3) * 0.5).unwrap()).unwrap();
    let l = loss::kl_divergence(mu.as_tensor(), logvar.as_tensor()).unwrap();
    let g = l.backward().unwrap();
    close(
        "kl",
        &[scalar(&l), projection(&g, &mu), projection(&g, &logvar)],
        reference(LOSSES, "kl"),
    );
}

#[test]
fn optimizers_match_pytorch_over_three_steps() {
    let kinds = [
        (
            "sgd",
            OptimizerKind::Sgd {
                momentum: 0.0,
                nesterov: false,
                weight_decay: 0.0,
            },
            0.1,
        ),
        (
            "sgd_momentum",
            OptimizerKind::Sgd {
                momentum: 0.9,
                nesterov: false,
                weight_decay: 0.01,
            },
            0.1,
        ),
        (
            "sgd_nesterov",
            OptimizerKind::Sgd {
                momentum: 0.9,
                nesterov: true,
                weight_decay: 0.0,
            },
            0.1,
        ),
        (
            "adam",
            OptimizerKind::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.01,
            },
            0.01,
        ),
        (
            "adamw",
            OptimizerKind::AdamW {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.1,
            },
            0.01,
        ),
        (
            "adadelta",
            OptimizerKind::AdaDelta {
                rho: 0.9,
                eps: 1e-6,
            },
            8.0,
        ),
    ];
    for (name, kind, lr) in kinds {
        let p = Var::from_tensor(&sine_fill(&[5], 0.3)).unwrap();
        let key = "p".to_string();
        let mut opt = Optimizer::new(kind.clone());
        for step in 0..3 {
            // a loss whose gradient with respect to p is exactly sine_fill(5, 0.7 + step)
            let l = p
                .as_tensor()
                .mul(&sine_fill(&[5], 0.7 + step as f64))
                .unwrap()
                .sum_all()
                .unwrap();
            let grads = l.backward().unwrap();
            opt.step(&[(&key, &p)], &grads, lr).unwrap();
            if step == 0 {
                // state survives a save/load round trip mid-run
                opt = Optimizer::load(kind.clone(), opt.step, opt.tensors());
            }
        }
        let got: Vec<f64> = p
            .as_tensor()
            .to_vec1::<f32>()
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect();
        close(name, &got, reference(OPTIMIZERS, name));
    }
}
