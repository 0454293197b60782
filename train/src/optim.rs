//! Optimizers with PyTorch's update rules (checked in `tests/parity.rs`): SGD (momentum,
//! Nesterov), Adam, AdamW and AdaDelta, the paper's choice.
//!
//! Written here rather than taken from candle-nn: candle-nn has AdamW and plain SGD only, and
//! keeps its moment estimates private, so they could not be checkpointed for an exact resume.
//! Each parameter's state is a list of tensors, saved in `optimizer.safetensors`.

use std::collections::{BTreeMap, HashMap};

use candle_core::{backprop::GradStore, DType, Result, Tensor, Var, WithDType};
use serde::{Deserialize, Serialize};

/// Which optimizer and its hyper-parameters (the learning rate comes from the schedule).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", deny_unknown_fields)]
pub enum OptimizerKind {
    /// Stochastic gradient descent with optional momentum (PyTorch's dampening-free form).
    Sgd {
        /// Momentum (0 for plain SGD).
        momentum: f64,
        /// Nesterov momentum.
        nesterov: bool,
        /// L2 weight decay added to the gradient.
        weight_decay: f64,
    },
    /// Adam with L2 weight decay added to the gradient.
    Adam {
        /// First-moment decay.
        beta1: f64,
        /// Second-moment decay.
        beta2: f64,
        /// Denominator epsilon.
        eps: f64,
        /// L2 weight decay.
        weight_decay: f64,
    },
    /// Adam with decoupled weight decay (Loshchilov & Hutter).
    AdamW {
        /// First-moment decay.
        beta1: f64,
        /// Second-moment decay.
        beta2: f64,
        /// Denominator epsilon.
        eps: f64,
        /// Decoupled weight decay.
        weight_decay: f64,
    },
    /// AdaDelta (Zeiler 2012), as used by the DeepGalaxy paper (learning rate 8.0).
    AdaDelta {
        /// Running-average decay.
        rho: f64,
        /// Epsilon.
        eps: f64,
    },
}

impl OptimizerKind {
    /// An optimizer by name with PyTorch's defaults (`sgd` with momentum 0.9).
    pub fn by_name(name: &str) -> Option<OptimizerKind> {
        Some(match name {
            "sgd" => OptimizerKind::Sgd {
                momentum: 0.9,
                nesterov: false,
                weight_decay: 0.0,
            },
            "adam" => OptimizerKind::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.0,
            },
            "adamw" => OptimizerKind::AdamW {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.01,
            },
            "adadelta" => OptimizerKind::AdaDelta {
                rho: 0.9,
                eps: 1e-6,
            },
            _ => return None,
        })
    }

    /// The learning rate the project suggests for this optimizer.
    pub fn default_lr(&self) -> f64 {
        match self {
            OptimizerKind::Sgd { .. } => 0.01,
            OptimizerKind::Adam { .. } | OptimizerKind::AdamW { .. } => 1e-3,
            OptimizerKind::AdaDelta { .. } => 1.0,
        }
    }
}

/// An optimizer over named variables, with its per-variable state.
pub struct Optimizer {
    kind: OptimizerKind,
    /// Steps taken (Adam's bias correction counts from 1).
    pub step: u64,
    state: BTreeMap<String, Vec<Tensor>>,
}

impl Optimizer {
    /// A fresh optimizer.
    pub fn new(kind: OptimizerKind) -> Optimizer {
        Optimizer {
            kind,
            step: 0,
            state: BTreeMap::new(),
        }
    }

    /// Applies one update with learning rate `lr` to every variable in `vars` that has a
    /// gradient in `grads` (frozen variables are simply not passed).
    pub fn step(&mut self, vars: &[(&String, &Var)], grads: &GradStore, lr: f64) -> Result<()> {
        self.step += 1;
        let t = self.step as i32;
        for (name, var) in vars {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            // detached: a gradient can carry its computation graph, and state built from it
            // would keep every step's graph alive (memory grew by gigabytes per epoch)
            let g = &g.detach();
            let p = &var.as_tensor().detach();
            let state = self.state.entry((*name).clone()).or_default();
            let new = match &self.kind {
                OptimizerKind::Sgd {
                    momentum,
                    nesterov,
                    weight_decay,
                } => {
                    let g = decay(g, p, *weight_decay)?;
                    if *momentum == 0.0 {
                        (p - (g * lr)?)?
                    } else {
                        let buf = match state.first() {
                            None => g.clone(),
                            Some(b) => ((b * *momentum)? + &g)?,
                        };
                        let dir = if *nesterov {
                            (&g + (&buf * *momentum)?)?
                        } else {
                            buf.clone()
                        };
                        *state = vec![buf];
                        (p - (dir * lr)?)?
                    }
                }
                OptimizerKind::Adam {
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                } => {
                    let g = decay(g, p, *weight_decay)?;
                    adam(state, p, &g, &AdamStep::new(lr, (*beta1, *beta2), *eps, t))?
                }
                OptimizerKind::AdamW {
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                } => {
                    let p = (p * (1.0 - lr * weight_decay))?;
                    adam(state, &p, g, &AdamStep::new(lr, (*beta1, *beta2), *eps, t))?
                }
                OptimizerKind::AdaDelta { rho, eps } => {
                    let (sq, acc) = match state.as_slice() {
                        [sq, acc] => (sq.clone(), acc.clone()),
                        _ => (g.zeros_like()?, g.zeros_like()?),
                    };
                    let sq = ((sq * *rho)? + (g.sqr()? * (1.0 - rho))?)?;
                    let std = (&sq + *eps)?.sqrt()?;
                    let delta = (&acc + *eps)?.sqrt()?.div(&std)?.mul(g)?;
                    let acc = ((acc * *rho)? + (delta.sqr()? * (1.0 - rho))?)?;
                    *state = vec![sq, acc];
                    (p - (delta * lr)?)?
                }
            };
            for t in state.iter_mut() {
                *t = t.detach();
            }
            var.set(&new.detach())?;
        }
        Ok(())
    }

    /// The state as named tensors (`{var}.{index}`) plus the step count, for saving.
    pub fn tensors(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (name, ts) in &self.state {
            for (i, t) in ts.iter().enumerate() {
                out.insert(format!("{name}.{i}"), t.clone());
            }
        }
        out
    }

    /// Restores state saved by [`Optimizer::tensors`].
    pub fn load(kind: OptimizerKind, step: u64, tensors: HashMap<String, Tensor>) -> Optimizer {
        let mut state: BTreeMap<String, Vec<(usize, Tensor)>> = BTreeMap::new();
        for (key, t) in tensors {
            if let Some((name, idx)) = key.rsplit_once('.') {
                if let Ok(i) = idx.parse::<usize>() {
                    state.entry(name.to_owned()).or_default().push((i, t));
                }
            }
        }
        let state = state
            .into_iter()
            .map(|(k, mut v)| {
                v.sort_by_key(|(i, _)| *i);
                (k, v.into_iter().map(|(_, t)| t).collect())
            })
            .collect();
        Optimizer { kind, step, state }
    }

    /// The optimizer's kind.
    pub fn kind(&self) -> &OptimizerKind {
        &self.kind
    }
}

fn decay(g: &Tensor, p: &Tensor, wd: f64) -> Result<Tensor> {
    if wd == 0.0 {
        Ok(g.clone())
    } else {
        g + (p * wd)?
    }
}

/// Adam's hyper-parameters for one step (`t` counts from 1).
struct AdamStep {
    lr: f64,
    b1: f64,
    b2: f64,
    eps: f64,
    t: i32,
}

impl AdamStep {
    fn new(lr: f64, (b1, b2): (f64, f64), eps: f64, t: i32) -> Self {
        AdamStep { lr, b1, b2, eps, t }
    }
}

/// One Adam step for one variable, in a single pass over its elements; returns the new value
/// and stores the new moments in `state`.
///
/// Why not tensor ops: written with candle's operators the update is about a dozen graph-free
/// tensor operations per variable, each a separate pass and allocation, and the per-operation
/// cost dominated for the many small variables of a network. The arithmetic here is the same
/// element for element, in the variable's own type and in the same order (scalars converted
/// as candle's `affine` converts them), so the results are unchanged.
fn adam(state: &mut Vec<Tensor>, p: &Tensor, g: &Tensor, h: &AdamStep) -> Result<Tensor> {
    match p.dtype() {
        DType::F32 => adam_typed::<f32>(state, p, g, h),
        DType::F64 => adam_typed::<f64>(state, p, g, h),
        other => candle_core::bail!("adam: {other:?} parameters are not supported"),
    }
}

fn adam_typed<T: WithDType>(
    state: &mut Vec<Tensor>,
    p: &Tensor,
    g: &Tensor,
    h: &AdamStep,
) -> Result<Tensor> {
    let flat = |t: &Tensor| t.flatten_all()?.to_vec1::<T>();
    let mut p_new = flat(p)?;
    let g = flat(g)?;
    let (mut m, mut v) = match state.as_slice() {
        [m, v] => (flat(m)?, flat(v)?),
        _ => (vec![T::zero(); g.len()], vec![T::zero(); g.len()]),
    };
    let c = |x: f64| T::from_f64(x);
    let (b1, nb1, b2, nb2) = (c(h.b1), c(1.0 - h.b1), c(h.b2), c(1.0 - h.b2));
    let bias1 = c(1.0 / (1.0 - h.b1.powi(h.t)));
    let bias2 = c(1.0 / (1.0 - h.b2.powi(h.t)));
    let (eps, lr) = (c(h.eps), c(h.lr));
    for (((p, g), m), v) in p_new.iter_mut().zip(&g).zip(&mut m).zip(&mut v) {
        *m = *m * b1 + *g * nb1;
        *v = *v * b2 + *g * *g * nb2;
        let mhat = *m * bias1;
        let vhat = *v * bias2;
        // through f64 and back is the correctly rounded square root in f32 too
        let update = mhat / (c(vhat.to_f64().sqrt()) + eps);
        *p -= update * lr;
    }
    let shape = p.shape();
    *state = vec![
        Tensor::from_vec(m, shape, p.device())?,
        Tensor::from_vec(v, shape, p.device())?,
    ];
    Tensor::from_vec(p_new, shape, p.device())
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::{adam, AdamStep};

    /// The update written in candle's tensor operators, as it was before the one-pass version.
    fn adam_tensor_ops(state: &mut Vec<Tensor>, p: &Tensor, g: &Tensor, h: &AdamStep) -> Tensor {
        let (m, v) = match state.as_slice() {
            [m, v] => (m.clone(), v.clone()),
            _ => (g.zeros_like().unwrap(), g.zeros_like().unwrap()),
        };
        let m = ((m * h.b1).unwrap() + (g * (1.0 - h.b1)).unwrap()).unwrap();
        let v = ((v * h.b2).unwrap() + (g.sqr().unwrap() * (1.0 - h.b2)).unwrap()).unwrap();
        let mhat = (&m / (1.0 - h.b1.powi(h.t))).unwrap();
        let vhat = (&v / (1.0 - h.b2.powi(h.t))).unwrap();
        let update = mhat.div(&(vhat.sqrt().unwrap() + h.eps).unwrap()).unwrap();
        *state = vec![m, v];
        (p - (update * h.lr).unwrap()).unwrap()
    }

    /// Five f32 steps with changing gradients: parameters and both moments equal bit for bit,
    /// so checkpoints and trained models are unchanged by the one-pass update.
    #[test]
    fn one_pass_adam_equals_the_tensor_formulation_bit_for_bit() {
        let dev = Device::Cpu;
        let n = 1000;
        let wave = |phase: f32, scale: f32| -> Tensor {
            let v: Vec<f32> = (0..n)
                .map(|i| ((i as f32 * 0.37 + phase).sin() * scale) * (1.0 + (i % 7) as f32))
                .collect();
            Tensor::from_vec(v, (10, 100), &dev).unwrap()
        };
        let (mut p1, mut p2) = (wave(0.0, 1.0), wave(0.0, 1.0));
        let (mut s1, mut s2) = (Vec::new(), Vec::new());
        for t in 1..=5 {
            let g = wave(t as f32, 10f32.powi(-t));
            let h = AdamStep {
                lr: 3e-3,
                b1: 0.9,
                b2: 0.999,
                eps: 1e-8,
                t,
            };
            p1 = adam(&mut s1, &p1, &g, &h).unwrap();
            p2 = adam_tensor_ops(&mut s2, &p2, &g, &h);
        }
        let bits = |t: &Tensor| -> Vec<u32> {
            let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            v.iter().map(|x| x.to_bits()).collect()
        };
        assert_eq!(bits(&p1), bits(&p2), "parameters");
        for (a, b) in s1.iter().zip(&s2) {
            assert_eq!(bits(a), bits(b), "moments");
        }
        assert_ne!(bits(&p1), bits(&wave(0.0, 1.0)), "the parameters moved");
    }
}
