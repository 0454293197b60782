//! The training loop: one encoder, the heads chosen in the configuration, validation after
//! every epoch, metrics files and plots, and a checkpoint after every epoch (and when asked to
//! stop), from which `--resume` continues bit for bit.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::{Device, Tensor};
use deepgalaxy_core::{Error, Result};
use deepgalaxy_models::exec::{candle_err, forward, Mode};
use deepgalaxy_models::{Graph, ModelSpec, Weights};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::checkpoint::{self, checkpoint_dir, EpochRecord, RngState, TrainState};
use crate::config::TrainConfig;
use crate::data::{permutation, Dataset};
use crate::loss;
use crate::metrics::evaluate;
use crate::optim::Optimizer;
use crate::split::split;

/// What the loop reports while it runs (the command line draws progress bars from it).
pub trait Observer: Sync {
    /// Images loaded so far.
    fn loading(&self, _done: usize, _total: usize) {}
    /// An epoch starts with this many batches.
    fn epoch_start(&self, _epoch: usize, _batches: usize) {}
    /// A step finished.
    fn step(&self, _info: &StepInfo) {}
    /// An epoch finished (validation included).
    fn epoch_end(&self, _record: &EpochRecord) {}
    /// Initial weights were loaded from another model: the tensors taken, and those not.
    fn initialised(&self, _loaded: &[String], _skipped: &[String]) {}
}

/// A step's numbers.
#[derive(Debug, Clone)]
pub struct StepInfo {
    /// Epoch (1-based).
    pub epoch: usize,
    /// Batch within the epoch (1-based).
    pub batch: usize,
    /// Loss of this step.
    pub loss: f64,
    /// Running training accuracy of the epoch.
    pub accuracy: f64,
    /// Running throughput of the epoch.
    pub images_per_sec: f64,
}

/// An observer that reports nothing.
pub struct Quiet;
impl Observer for Quiet {}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// All epochs done.
    Finished,
    /// Stopped at `max_steps`.
    StepLimit,
    /// Stopped on request (Ctrl-C), checkpoint written.
    Interrupted,
}

/// A new run: the network for `spec`, trained as `cfg` says.
pub fn train(
    spec: ModelSpec,
    cfg: TrainConfig,
    observer: &dyn Observer,
    stop: &AtomicBool,
) -> Result<Outcome> {
    train_from(spec, cfg, None, observer, stop)
}

/// A new run whose initial weights are, where name and shape match, `initial` (transfer
/// learning; the rest keep their seeded initialisation).
pub fn train_from(
    spec: ModelSpec,
    cfg: TrainConfig,
    initial: Option<&std::collections::HashMap<String, Tensor>>,
    observer: &dyn Observer,
    stop: &AtomicBool,
) -> Result<Outcome> {
    cfg.validate()?;
    let device = Device::Cpu;
    let data = Dataset::load(&cfg.data, &spec.preprocess, &|d, t| observer.loading(d, t))?;
    let mut spec = spec;
    spec.num_classes = data.num_classes;
    let graph = Graph::build(&spec)?;
    let weights = Weights::init(&graph, cfg.seed, &device)?;
    if let Some(tensors) = initial {
        let (loaded, skipped) = weights.load_matching(tensors)?;
        if loaded.is_empty() {
            return Err(Error::setting(
                "initial weights",
                "no tensor matches this model by name and shape (was it exported from another architecture?)",
            ));
        }
        observer.initialised(&loaded, &skipped);
    }
    let split = split(&data, cfg.split, cfg.val_fraction, cfg.seed)?;
    if split.train.len() < 2 {
        return Err(Error::invalid(
            &cfg.data,
            "fewer than two training images after the split",
        ));
    }
    let state = TrainState {
        tool_version: env!("CARGO_PKG_VERSION").into(),
        training_digest: deepgalaxy_core::card::digest_file(&cfg.data)?,
        class_t_myr: data.class_t_myr.clone(),
        config: cfg.clone(),
        epoch: 0,
        batch_in_epoch: 0,
        step: 0,
        rng: RngState::of(&ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_add(1))),
        split,
        history: vec![],
    };
    let optimizer = Optimizer::new(cfg.optimizer.clone());
    Run {
        spec,
        graph,
        weights,
        optimizer,
        state,
        data,
        device,
    }
    .go(observer, stop)
}

/// Changes a resumed run may make: train longer, or stop at another step.
#[derive(Debug, Clone, Default)]
pub struct Extend {
    /// New total number of epochs.
    pub epochs: Option<usize>,
    /// New step limit (`Some(None)` removes it).
    pub max_steps: Option<Option<u64>>,
}

/// Continues the run whose checkpoint is in `out`, with the configuration it was started with
/// (changed only as `extend` says).
pub fn resume(
    out: &Path,
    extend: &Extend,
    observer: &dyn Observer,
    stop: &AtomicBool,
) -> Result<Outcome> {
    let device = Device::Cpu;
    let ck = checkpoint::load(&checkpoint_dir(out), &device)?;
    let mut state = ck.state;
    if let Some(e) = extend.epochs {
        state.config.epochs = e;
    }
    if let Some(m) = extend.max_steps {
        state.config.max_steps = m;
    }
    let cfg = &state.config;
    let digest = deepgalaxy_core::card::digest_file(&cfg.data)?;
    if digest != state.training_digest {
        return Err(Error::invalid(
            &cfg.data,
            "the data changed since the checkpoint was written (SHA-256 differs); resuming would not continue the same run",
        ));
    }
    let data = Dataset::load(&cfg.data, &ck.spec.preprocess, &|d, t| {
        observer.loading(d, t)
    })?;
    let optimizer = Optimizer::load(cfg.optimizer.clone(), state.step, ck.optimizer);
    Run {
        spec: ck.spec,
        graph: ck.graph,
        weights: ck.weights,
        optimizer,
        state,
        data,
        device,
    }
    .go(observer, stop)
}

/// The encoder stages kept fixed in `epoch` (1-based): all of them with `freeze_encoder`; with
/// `unfreeze_every` K, all but the top `(epoch - 1) / K` (progressive unfreezing).
pub fn frozen_stages(cfg: &TrainConfig, stages: &[String], epoch: usize) -> Vec<String> {
    match cfg.unfreeze_every {
        Some(k) => {
            let open = ((epoch - 1) / k.max(1)).min(stages.len());
            stages[..stages.len() - open].to_vec()
        }
        None if cfg.freeze_encoder => stages.to_vec(),
        None => vec![],
    }
}

struct Run {
    spec: ModelSpec,
    graph: Graph,
    weights: Weights,
    optimizer: Optimizer,
    state: TrainState,
    data: Dataset,
    device: Device,
}

impl Run {
    fn go(mut self, observer: &dyn Observer, stop: &AtomicBool) -> Result<Outcome> {
        let cfg = self.state.config.clone();
        let mut rng = self.state.rng.restore()?;
        let stages = deepgalaxy_models::graph::encoder_stages(&self.graph);
        while self.state.epoch < cfg.epochs {
            let epoch = self.state.epoch + 1;
            let frozen = frozen_stages(&cfg, &stages, epoch);
            let refs: Vec<(&String, &candle_core::Var)> = self
                .weights
                .vars()
                .iter()
                .filter(|(name, _)| !frozen.iter().any(|s| name.starts_with(&format!("{s}."))))
                .collect();
            // every epoch's order comes from (seed, epoch), so a resumed run sees the same one
            let mut order_rng = ChaCha8Rng::seed_from_u64(
                cfg.seed ^ (epoch as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            );
            let order: Vec<usize> = permutation(self.state.split.train.len(), &mut order_rng)
                .into_iter()
                .map(|k| self.state.split.train[k])
                .collect();
            let batches: Vec<&[usize]> = order
                .chunks(cfg.batch_size)
                .filter(|b| b.len() >= 2)
                .collect();
            observer.epoch_start(epoch, batches.len());
            let started = Instant::now();
            let (mut loss_sum, mut seen, mut correct, mut images) = (0.0, 0usize, 0usize, 0usize);
            let per_epoch = batches.len() as u64;
            let total = per_epoch * cfg.epochs as u64;
            let mut lr = cfg.schedule.lr_at(self.state.step, per_epoch, total);
            for (b, batch) in batches.iter().enumerate().skip(self.state.batch_in_epoch) {
                if stop.load(Ordering::Relaxed) {
                    self.state.rng = RngState::of(&rng);
                    self.save()?;
                    return Ok(Outcome::Interrupted);
                }
                if cfg.max_steps.is_some_and(|m| self.state.step >= m) {
                    self.state.rng = RngState::of(&rng);
                    self.save()?;
                    return Ok(Outcome::StepLimit);
                }
                let aug = cfg.augment.is_active().then_some(&cfg.augment);
                let (x, y) = self
                    .data
                    .batch(batch, aug.map(|a| (a, &mut rng)), &self.device)
                    .map_err(candle_err)?;
                let (loss, hits) = self.loss(&x, &y, &mut rng)?;
                let value = loss.to_scalar::<f32>().map_err(candle_err)? as f64;
                if !value.is_finite() {
                    return Err(Error::setting(
                        "training",
                        format!(
                            "the loss became {value} at epoch {epoch}, batch {} (step {}); stopped without saving, the last good checkpoint in {} is intact. Try a lower learning rate.",
                            b + 1,
                            self.state.step,
                            checkpoint_dir(&cfg.out).display()
                        ),
                    ));
                }
                let grads = loss.backward().map_err(candle_err)?;
                lr = cfg.schedule.lr_at(self.state.step, per_epoch, total);
                self.optimizer.step(&refs, &grads, lr).map_err(candle_err)?;
                self.state.step += 1;
                self.state.batch_in_epoch = b + 1;
                loss_sum += value * batch.len() as f64;
                seen += batch.len();
                correct += hits;
                images += batch.len();
                observer.step(&StepInfo {
                    epoch,
                    batch: b + 1,
                    loss: value,
                    accuracy: correct as f64 / seen as f64,
                    images_per_sec: images as f64 / started.elapsed().as_secs_f64().max(1e-9),
                });
            }
            let val = if self.state.split.val.is_empty() {
                None
            } else {
                let (m, confusion) = evaluate(
                    &self.graph,
                    &self.weights,
                    &self.data,
                    &self.state.split.val,
                    cfg.batch_size,
                    &self.device,
                )?;
                crate::plots::confusion(&cfg.out.join("confusion.png"), &confusion)?;
                Some(m)
            };
            let record = EpochRecord {
                epoch,
                step: self.state.step,
                lr,
                train_loss: loss_sum / seen.max(1) as f64,
                train_top1: correct as f64 / seen.max(1) as f64,
                images_per_sec: images as f64 / started.elapsed().as_secs_f64().max(1e-9),
                val,
            };
            self.state.history.push(record.clone());
            self.state.epoch = epoch;
            self.state.batch_in_epoch = 0;
            self.state.rng = RngState::of(&rng);
            crate::report::write_metrics(&cfg.out, &self.state.history)?;
            crate::plots::curves(&cfg.out.join("curves.png"), &self.state.history)?;
            self.save()?;
            observer.epoch_end(&record);
        }
        Ok(Outcome::Finished)
    }

    /// The weighted loss of the configured heads, and the classifier's correct count.
    fn loss(&self, x: &Tensor, y: &Tensor, rng: &mut ChaCha8Rng) -> Result<(Tensor, usize)> {
        let cfg = &self.state.config;
        let o = self.graph.outputs;
        let h = cfg.heads;
        let mut targets = vec![o.logits];
        if h.autoencoder {
            targets.push(o.reconstruction);
        }
        if h.vae {
            targets.extend([o.mu, o.logvar, o.vae_reconstruction]);
        }
        let out = forward(&self.graph, &self.weights, x, &targets, Mode::Train(rng))?;
        let w = &cfg.loss;
        let pred: Vec<u32> = out[0]
            .argmax(1)
            .and_then(|t| t.to_vec1())
            .map_err(candle_err)?;
        let truth: Vec<u32> = y.to_vec1().map_err(candle_err)?;
        let hits = pred.iter().zip(&truth).filter(|(a, b)| a == b).count();
        let mut terms: Vec<Tensor> = Vec::new();
        let c = |r: candle_core::Result<Tensor>| r.map_err(candle_err);
        if h.classifier {
            terms
                .push(c(loss::cross_entropy(&out[0], y, w.label_smoothing)
                    .and_then(|l| l * w.classifier))?);
        }
        let mut k = 1;
        if h.autoencoder {
            terms.push(c(loss::mse(&out[k], x).and_then(|l| l * w.autoencoder))?);
            k += 1;
        }
        if h.vae {
            let kl = c(loss::kl_divergence(&out[k], &out[k + 1]))?;
            let rec = c(loss::mse(&out[k + 2], x))?;
            terms.push(c((kl * w.beta)
                .and_then(|k| rec + k)
                .and_then(|l| l * w.vae))?);
        }
        let mut total = terms.remove(0);
        for t in terms {
            total = c(total + t)?;
        }
        Ok((total, hits))
    }

    fn save(&self) -> Result<()> {
        checkpoint::save(
            &checkpoint_dir(&self.state.config.out),
            &self.spec,
            &self.weights,
            &self.optimizer,
            &self.state,
        )
    }
}
