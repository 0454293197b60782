//! The candle forward pass of a [`Graph`], and the weights it reads.
//!
//! Randomness (weight initialisation, dropout masks, VAE noise) comes from a seeded ChaCha
//! generator the caller owns, never from candle's global generator, so training is
//! reproducible and a resumed run continues bit for bit.

use std::collections::BTreeMap;
use std::sync::Mutex;

use candle_core::{DType, Device, Tensor, Var, D};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::graph::{Graph, NodeId, Op, ParamKind, BN_EPS, BN_MOMENTUM};
use crate::ops::batch_norm::{batch_norm_train, Activation};
use crate::Result;
use deepgalaxy_core::Error;

/// The parameters (trainable [`Var`]s) and buffers (batch-norm running statistics) of a graph,
/// by name, in name order.
pub struct Weights {
    vars: BTreeMap<String, Var>,
    buffers: Mutex<BTreeMap<String, Tensor>>,
    device: Device,
}

impl Weights {
    /// Fresh weights with PyTorch's default initialisation (weights and biases uniform in
    /// +-1/sqrt(fan_in), batch norm at identity), drawn from `seed`.
    pub fn init(graph: &Graph, seed: u64, device: &Device) -> Result<Weights> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut vars = BTreeMap::new();
        let mut buffers = BTreeMap::new();
        for p in graph.params() {
            let n: usize = p.shape.iter().product();
            let data: Vec<f32> = match p.kind {
                ParamKind::Weight { fan_in } | ParamKind::Bias { fan_in } => {
                    let bound = 1.0 / (fan_in as f32).sqrt();
                    (0..n).map(|_| rng.random_range(-bound..bound)).collect()
                }
                ParamKind::Ones | ParamKind::RunningVar => vec![1.0; n],
                ParamKind::Zeros | ParamKind::RunningMean => vec![0.0; n],
            };
            let t = Tensor::from_vec(data, p.shape.as_slice(), device)?;
            if p.kind.trainable() {
                vars.insert(p.name, Var::from_tensor(&t)?);
            } else {
                buffers.insert(p.name, t);
            }
        }
        Ok(Weights {
            vars,
            buffers: Mutex::new(buffers),
            device: device.clone(),
        })
    }

    /// Weights from named tensors (a checkpoint or an import). Every tensor the graph needs
    /// must be present with its shape; `source` names the file in errors.
    pub fn from_tensors(
        graph: &Graph,
        mut tensors: std::collections::HashMap<String, Tensor>,
        source: &std::path::Path,
        device: &Device,
    ) -> Result<Weights> {
        let mut vars = BTreeMap::new();
        let mut buffers = BTreeMap::new();
        for p in graph.params() {
            let t = tensors
                .remove(&p.name)
                .ok_or_else(|| Error::invalid(source, format!("tensor `{}` is missing", p.name)))?;
            if t.dims() != p.shape.as_slice() {
                return Err(Error::invalid(
                    source,
                    format!(
                        "tensor `{}` has shape {:?}, the model needs {:?}",
                        p.name,
                        t.dims(),
                        p.shape
                    ),
                )
                .into());
            }
            let t = t.to_dtype(DType::F32).and_then(|t| t.to_device(device))?;
            if p.kind.trainable() {
                vars.insert(p.name, Var::from_tensor(&t)?);
            } else {
                buffers.insert(p.name, t);
            }
        }
        if let Some(extra) = tensors.keys().next() {
            return Err(Error::invalid(
                source,
                format!("tensor `{extra}` is not part of this model"),
            )
            .into());
        }
        Ok(Weights {
            vars,
            buffers: Mutex::new(buffers),
            device: device.clone(),
        })
    }

    /// A copy with every parameter in `dtype` (buffers stay `f32`): float64 weights make
    /// finite-difference gradient checks exact enough to be decisive.
    pub fn to_dtype(&self, dtype: DType) -> Result<Weights> {
        let vars = self
            .vars
            .iter()
            .map(|(k, v)| {
                let t = v.as_tensor().to_dtype(dtype)?;
                Ok((k.clone(), Var::from_tensor(&t)?))
            })
            .collect::<Result<_>>()?;
        Ok(Weights {
            vars,
            buffers: Mutex::new(self.buffers().clone()),
            device: self.device.clone(),
        })
    }

    /// Copies in every given tensor whose name and shape match one of ours (transfer learning
    /// from another model's weights). Returns the names loaded and, for the others, why not.
    pub fn load_matching(
        &self,
        tensors: &std::collections::HashMap<String, Tensor>,
    ) -> Result<(Vec<String>, Vec<String>)> {
        let (mut loaded, mut skipped) = (Vec::new(), Vec::new());
        let mut names: Vec<&String> = tensors.keys().collect();
        names.sort();
        for name in names {
            let t = &tensors[name];
            let ours = match self.vars.get(name) {
                Some(v) => Some(v.as_tensor().dims().to_vec()),
                None => self.buffers().get(name).map(|b| b.dims().to_vec()),
            };
            match ours {
                None => skipped.push(format!("{name}: not in this model")),
                Some(dims) if dims != t.dims() => skipped.push(format!(
                    "{name}: shape {:?}, this model has {dims:?}",
                    t.dims()
                )),
                Some(_) => {
                    let t = t
                        .to_dtype(DType::F32)
                        .and_then(|t| t.to_device(&self.device))?;
                    match self.vars.get(name) {
                        Some(v) => v.set(&t)?,
                        None => {
                            self.buffers().insert(name.clone(), t);
                        }
                    }
                    loaded.push(name.clone());
                }
            }
        }
        Ok((loaded, skipped))
    }

    /// Every tensor (parameters and buffers) by name, for saving.
    pub fn tensors(&self) -> BTreeMap<String, Tensor> {
        let mut out: BTreeMap<String, Tensor> = self
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect();
        out.extend(self.buffers().iter().map(|(k, v)| (k.clone(), v.clone())));
        out
    }

    /// The trainable parameters, by name.
    pub fn vars(&self) -> &BTreeMap<String, Var> {
        &self.vars
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    fn buffers(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Tensor>> {
        // a poisoned lock only means another thread panicked mid-update; the map is still whole
        self.buffers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Training or inference behaviour of dropout, batch norm and the VAE sample.
pub enum Mode<'a> {
    /// Inference: no dropout, running statistics, z = mu.
    Eval,
    /// Training: dropout and VAE noise drawn from the generator, batch statistics (and running
    /// statistics updated).
    Train(&'a mut ChaCha8Rng),
}

/// Runs the graph on a batch of images (`N x C x H x W` pixel values) and returns the
/// `targets` nodes' values, computing only the nodes they need.
pub fn forward(
    graph: &Graph,
    weights: &Weights,
    image: &Tensor,
    targets: &[NodeId],
    mut mode: Mode<'_>,
) -> Result<Vec<Tensor>> {
    forward_from(
        graph,
        weights,
        &[(graph.outputs.image, image.clone())],
        targets,
        &mut mode,
    )
}

/// Like [`forward`], but with chosen nodes' values given (e.g. `z` for the VAE decoder).
pub fn forward_from(
    graph: &Graph,
    weights: &Weights,
    given: &[(NodeId, Tensor)],
    targets: &[NodeId],
    mode: &mut Mode<'_>,
) -> Result<Vec<Tensor>> {
    // the nodes the targets need, not looking upstream of a given value
    let mut need = vec![false; graph.nodes.len()];
    for &t in targets {
        need[t] = true;
    }
    for i in (0..graph.nodes.len()).rev() {
        if need[i] && !given.iter().any(|(g, _)| *g == i) {
            for &j in &graph.nodes[i].inputs {
                need[j] = true;
            }
        }
    }
    // how many nodes (and targets) read each node: a batch norm read only by the ReLU or SiLU
    // right after it is computed with that activation fused in training (one pass instead of
    // two or more, each way), and never stored itself
    let mut readers = vec![0usize; graph.nodes.len()];
    for &j in graph.nodes.iter().flat_map(|n| &n.inputs).chain(targets) {
        readers[j] += 1;
    }
    let mut values: Vec<Option<Tensor>> = vec![None; graph.nodes.len()];
    for (id, t) in given {
        values[*id] = Some(t.clone());
    }
    for (i, node) in graph.nodes.iter().enumerate() {
        if !need[i] || values[i].is_some() {
            continue;
        }
        let inputs: Vec<&Tensor> = node
            .inputs
            .iter()
            .map(|&j| {
                values[j].as_ref().ok_or_else(|| {
                    Error::setting(
                        "model input",
                        format!(
                            "node `{}` needs `{}`, which was not given",
                            node.name, graph.nodes[j].name
                        ),
                    )
                })
            })
            .collect::<deepgalaxy_core::Result<_>>()?;
        let fused = match mode {
            Mode::Train(_) if values.get(i + 1).is_some_and(Option::is_none) => {
                fusable_activation(graph, i, &readers)
            }
            _ => Activation::Identity,
        };
        let out = eval(&node.op, &inputs, weights, mode, fused).map_err(|source| {
            crate::Error::Layer {
                layer: node.name.clone(),
                source,
            }
        })?;
        let at = if fused == Activation::Identity {
            i
        } else {
            i + 1
        };
        values[at] = Some(out);
    }
    targets
        .iter()
        .map(|&t| {
            values[t]
                .clone()
                .ok_or_else(|| Error::setting("model", format!("node {t} was not computed")).into())
        })
        .collect()
}

/// A per-channel constant shaped to broadcast over `like` (and of its dtype).
fn per_channel(v: &[f32], like: &Tensor) -> candle_core::Result<Tensor> {
    Tensor::from_slice(v, (1, v.len(), 1, 1), like.device())?.to_dtype(like.dtype())
}

fn missing(what: &str, name: &str) -> candle_core::Error {
    candle_core::Error::Msg(format!("no {what} `{name}`"))
}

impl Weights {
    fn param(&self, name: &str) -> candle_core::Result<&Tensor> {
        self.vars
            .get(name)
            .map(Var::as_tensor)
            .ok_or_else(|| missing("parameter", name))
    }

    fn buffer(&self, name: &str) -> candle_core::Result<Tensor> {
        self.buffers()
            .get(name)
            .cloned()
            .ok_or_else(|| missing("buffer", name))
    }
}

/// The activation that batch-norm node `i` can compute itself: the ReLU or SiLU node right
/// after it, when that node is its only reader (`readers` counts the nodes and targets reading
/// each node).
fn fusable_activation(graph: &Graph, i: usize, readers: &[usize]) -> Activation {
    let (Some(node), Some(next)) = (graph.nodes.get(i), graph.nodes.get(i + 1)) else {
        return Activation::Identity;
    };
    if !matches!(node.op, Op::BatchNorm { .. }) || readers[i] != 1 || next.inputs != [i] {
        return Activation::Identity;
    }
    match next.op {
        Op::Relu => Activation::Relu,
        Op::Silu => Activation::Silu,
        _ => Activation::Identity,
    }
}

/// The value of `op` on inputs `x`; `fused` (training-mode batch norm only) is the
/// activation that follows it, applied in the same operation.
fn eval(
    op: &Op,
    x: &[&Tensor],
    w: &Weights,
    mode: &mut Mode<'_>,
    fused: Activation,
) -> candle_core::Result<Tensor> {
    let dev = w.device();
    match op {
        Op::Image => Err(candle_core::Error::Msg(
            "the image input was not given".into(),
        )),
        Op::Normalize { mean, std } => {
            let inv: Vec<f32> = std.iter().map(|s| 1.0 / s).collect();
            x[0].broadcast_sub(&per_channel(mean, x[0])?)?
                .broadcast_mul(&per_channel(&inv, x[0])?)
        }
        Op::Conv {
            param,
            c_out,
            stride,
            padding,
            groups,
            bias,
            ..
        } => {
            let kernel = w.param(&format!("{param}.weight"))?;
            let y = if *groups == 1 {
                crate::ops::conv::conv2d(x[0], kernel, *stride, *padding)?
            } else {
                crate::ops::grouped_conv::grouped_conv2d(x[0], kernel, *stride, *padding, *groups)?
            };
            if *bias {
                let b = w.param(&format!("{param}.bias"))?;
                y.broadcast_add(&b.reshape((1, *c_out, 1, 1))?)
            } else {
                Ok(y)
            }
        }
        Op::BatchNorm { param, channels } => {
            let gamma = w.param(&format!("{param}.weight"))?;
            let beta = w.param(&format!("{param}.bias"))?;
            if let Mode::Train(_) = mode {
                let (n, _, h, wd) = x[0].dims4()?;
                let (y, mean, var) = batch_norm_train(x[0], gamma, beta, BN_EPS, fused)?;
                update_running(w, param, &mean, &var, (n * h * wd) as f64)?;
                return Ok(y);
            }
            let c4 = (1, *channels, 1, 1);
            let stat = |key: &str| -> candle_core::Result<Tensor> {
                w.buffer(&format!("{param}.{key}"))?
                    .reshape(c4)?
                    .to_dtype(x[0].dtype())
            };
            x[0].broadcast_sub(&stat("running_mean")?)?
                .broadcast_div(&(stat("running_var")? + BN_EPS)?.sqrt()?)?
                .broadcast_mul(&gamma.reshape(c4)?)?
                .broadcast_add(&beta.reshape(c4)?)
        }
        Op::Relu => crate::ops::relu::relu(x[0]),
        Op::Silu => candle_nn::ops::silu(x[0]),
        Op::Sigmoid => candle_nn::ops::sigmoid(x[0]),
        Op::MaxPool2 => crate::ops::pool::max_pool2(x[0]),
        Op::GlobalAvgPool => x[0].mean_keepdim((2, 3)),
        Op::Flatten => x[0].flatten_from(1),
        Op::Linear { param, .. } => {
            let wt = w.param(&format!("{param}.weight"))?;
            let b = w.param(&format!("{param}.bias"))?;
            x[0].matmul(&wt.t()?)?.broadcast_add(b)
        }
        Op::Dropout { p } => match mode {
            Mode::Train(rng) if *p > 0.0 => {
                let keep = 1.0 - *p;
                let mask: Vec<f32> = (0..x[0].elem_count())
                    .map(|_| {
                        if rng.random::<f32>() < keep {
                            1.0 / keep
                        } else {
                            0.0
                        }
                    })
                    .collect();
                x[0].mul(&Tensor::from_vec(mask, x[0].dims(), dev)?.to_dtype(x[0].dtype())?)
            }
            _ => Ok(x[0].clone()),
        },
        Op::Upsample2 => crate::ops::pool::upsample2(x[0]),
        Op::Add => x[0].add(x[1]),
        Op::Mul => x[0].broadcast_mul(x[1]),
        Op::Reshape { shape } => x[0].reshape((x[0].dim(0)?, shape[0], shape[1], shape[2])),
        Op::Softmax => candle_nn::ops::softmax(x[0], D::Minus1),
        Op::Sample => match mode {
            Mode::Eval => Ok(x[0].clone()),
            Mode::Train(rng) => {
                let eps: Vec<f32> = (0..x[0].elem_count())
                    .map(|_| StandardNormal.sample(&mut **rng))
                    .collect();
                let eps = Tensor::from_vec(eps, x[0].dims(), dev)?.to_dtype(x[0].dtype())?;
                x[0].add(&eps.mul(&(x[1] * 0.5)?.exp()?)?)
            }
        },
    }
}

/// running = (1 - momentum) * running + momentum * batch, with the unbiased batch variance,
/// as PyTorch does. The statistics are detached: they are buffers, not part of the gradient.
fn update_running(
    w: &Weights,
    param: &str,
    mean: &Tensor,
    var: &Tensor,
    count: f64,
) -> candle_core::Result<()> {
    let unbiased = if count > 1.0 {
        count / (count - 1.0)
    } else {
        1.0
    };
    let mean = mean.detach().flatten_all()?;
    let var = (var.detach().flatten_all()? * unbiased)?;
    let mut buffers = w.buffers();
    for (key, batch) in [("running_mean", mean), ("running_var", var)] {
        let name = format!("{param}.{key}");
        let old = buffers.get(&name).ok_or_else(|| missing("buffer", &name))?;
        let batch = batch.to_dtype(old.dtype())?;
        let new = ((old * (1.0 - BN_MOMENTUM))? + (batch * BN_MOMENTUM)?)?;
        buffers.insert(name, new);
    }
    Ok(())
}
