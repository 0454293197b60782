//! Optimizers with PyTorch's update rules (checked in `tests/parity.rs`): SGD (momentum,
//! Nesterov), Adam, AdamW and AdaDelta, the paper's choice.
//!
//! Written here rather than taken from candle-nn: candle-nn has AdamW and plain SGD only, and
//! keeps its moment estimates private, so they could not be checkpointed for an exact resume.
//! Each parameter's state is a list of tensors, saved in `optimizer.safetensors`.

use std::collections::{BTreeMap, HashMap};

use candle_core::{backprop::GradStore, Result, Tensor, Var};
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
                    adam(state, p, &g, lr, *beta1, *beta2, *eps, t)?
                }
                OptimizerKind::AdamW {
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                } => {
                    let p = (p * (1.0 - lr * weight_decay))?;
                    adam(state, &p, g, lr, *beta1, *beta2, *eps, t)?
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

#[allow(clippy::too_many_arguments)]
fn adam(
    state: &mut Vec<Tensor>,
    p: &Tensor,
    g: &Tensor,
    lr: f64,
    b1: f64,
    b2: f64,
    eps: f64,
    t: i32,
) -> Result<Tensor> {
    let (m, v) = match state.as_slice() {
        [m, v] => (m.clone(), v.clone()),
        _ => (g.zeros_like()?, g.zeros_like()?),
    };
    let m = ((m * b1)? + (g * (1.0 - b1))?)?;
    let v = ((v * b2)? + (g.sqr()? * (1.0 - b2))?)?;
    let mhat = (&m / (1.0 - b1.powi(t)))?;
    let vhat = (&v / (1.0 - b2.powi(t)))?;
    let update = mhat.div(&(vhat.sqrt()? + eps)?)?;
    *state = vec![m, v];
    p - (update * lr)?
}
