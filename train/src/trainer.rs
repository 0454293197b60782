//! The training loop: one encoder, the heads chosen in the configuration, validation after
//! every epoch, metrics files and plots, and a checkpoint after every epoch (and when asked to
//! stop), from which `--resume` continues bit for bit.
//!
//! Data parallel (`*_with` and a [`Collective`] of N ranks): rank 0's weights and optimizer
//! state are broadcast at the start; each epoch's shuffle comes from (seed, epoch), so all ranks
//! agree on it, and each global batch of N x `batch_size` images is split over the ranks (see
//! [`step`]); validation is split over the ranks and its metrics summed; only rank 0 reports
//! and writes files. Augmentation, dropout and VAE noise draw, on N > 1 ranks, from a generator
//! seeded by (seed, step, rank), so a resumed run draws the same numbers.
//!
//! Batch normalisation uses each rank's own batch statistics (as Horovod does without
//! SyncBatchNorm), so N ranks x b images is not 1 process x N*b images with statistics over
//! N*b. It is exactly 1 process x N*b images with `micro_batches = N` (statistics per
//! micro-batch of b, gradients summed): the test of the distributed trainer compares these.
//! Running statistics are averaged over ranks (and micro-batches) after every step.

mod step;

pub use step::in_pool;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::Result;
use candle_core::{Device, Tensor};
use deepgalaxy_core::Error;
use deepgalaxy_models::exec::{forward, Mode};
use deepgalaxy_models::{Graph, ModelSpec, Weights};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::checkpoint::{self, checkpoint_dir, EpochRecord, RngState, TrainState};
use crate::config::TrainConfig;
use crate::data::{permutation, Dataset};
use crate::loss;
use crate::metrics::{evaluate, reduce_metrics};
use crate::optim::Optimizer;
use crate::split::split;
use deepgalaxy_collective::{agree, part, Collective, OneProcess};

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
    /// Seconds this step spent in allreduce (0 on one process).
    pub comm_secs: f64,
    /// Seconds the whole step took.
    pub step_secs: f64,
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
    train_with(spec, cfg, initial, observer, stop, &OneProcess)
}

/// [`train_from`] on the ranks of `comm` (data parallel; one rank is the same as
/// [`train_from`]). Every rank calls it; only rank 0 reports to `observer` and writes files.
pub fn train_with(
    spec: ModelSpec,
    cfg: TrainConfig,
    initial: Option<&std::collections::HashMap<String, Tensor>>,
    observer: &dyn Observer,
    stop: &AtomicBool,
    comm: &dyn Collective,
) -> Result<Outcome> {
    let observer = if comm.rank() == 0 { observer } else { &Quiet };
    let mut cfg = cfg;
    cfg.parallel.ranks = comm.size();
    let run = start(spec, cfg, initial, observer, comm.rank());
    let mut run = agree(comm, "while starting", run)?;
    run.share(comm)?;
    run.train_to_end(observer, stop, comm)
}

fn start(
    spec: ModelSpec,
    cfg: TrainConfig,
    initial: Option<&std::collections::HashMap<String, Tensor>>,
    observer: &dyn Observer,
    rank: usize,
) -> Result<Run> {
    cfg.validate()?;
    if !cfg.overwrite {
        checkpoint::refuse_existing_run(&cfg.out)?;
    }
    crate::memory::check_fits(&spec, &cfg)?;
    let device = Device::Cpu;
    let data = Dataset::load(&cfg.data, &spec.preprocess, cfg.target, &|d, t| {
        observer.loading(d, t)
    })?;
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
            ).into());
        }
        observer.initialised(&loaded, &skipped);
    }
    let split = split(
        &data,
        cfg.split,
        cfg.val_fraction,
        cfg.seed,
        &cfg.val_simulations,
        &cfg.test,
    )?;
    if split.train.len() < 2 {
        return Err(
            Error::invalid(&cfg.data, "fewer than two training images after the split").into(),
        );
    }
    let state = TrainState {
        tool_version: env!("CARGO_PKG_VERSION").into(),
        training_digest: deepgalaxy_core::card::digest_file(&cfg.data)?,
        class_t_myr: data.class_t_myr.clone(),
        target: data.target,
        config: cfg.clone(),
        epoch: 0,
        batch_in_epoch: 0,
        step: 0,
        rng: RngState::of(&ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_add(1))),
        split,
        history: vec![],
        paths: 0,
    };
    let optimizer = Optimizer::new(cfg.optimizer.clone());
    Ok(Run {
        spec,
        graph,
        weights,
        optimizer,
        state,
        data,
        device,
        rank,
    })
}

/// Changes a resumed run may make: train longer, stop at another step, or find its data
/// where it now is. Everything else about the run stays as its checkpoint says.
#[derive(Debug, Clone, Default)]
pub struct ResumeChanges {
    /// New total number of epochs.
    pub epochs: Option<usize>,
    /// New step limit (`Some(None)` removes it).
    pub max_steps: Option<Option<u64>>,
    /// The training data at another path (it must be the same file: its SHA-256 is checked).
    pub data: Option<std::path::PathBuf>,
}

/// Continues the run whose checkpoint is in `out`, with the configuration it was started with
/// (changed only as `extend` says). The checkpoint is saved back into `out`, wherever the run
/// was first started.
pub fn resume(
    out: &Path,
    extend: &ResumeChanges,
    observer: &dyn Observer,
    stop: &AtomicBool,
) -> Result<Outcome> {
    resume_with(out, extend, observer, stop, &OneProcess)
}

/// [`resume`] on the ranks of `comm`, which must be as many as the run was started on.
pub fn resume_with(
    out: &Path,
    extend: &ResumeChanges,
    observer: &dyn Observer,
    stop: &AtomicBool,
    comm: &dyn Collective,
) -> Result<Outcome> {
    let observer = if comm.rank() == 0 { observer } else { &Quiet };
    let run = reopen(out, extend, observer, comm);
    let mut run = agree(comm, "while resuming", run)?;
    run.share(comm)?;
    run.train_to_end(observer, stop, comm)
}

fn reopen(
    out: &Path,
    extend: &ResumeChanges,
    observer: &dyn Observer,
    comm: &dyn Collective,
) -> Result<Run> {
    let device = Device::Cpu;
    let ck = checkpoint::load(&checkpoint_dir(out), &device)?;
    let mut state = ck.state;
    // the run saves where it was found, not where its state says it was started
    state.config.out = out.to_path_buf();
    if let Some(e) = extend.epochs {
        state.config.epochs = e;
    }
    if let Some(m) = extend.max_steps {
        state.config.max_steps = m;
    }
    if let Some(d) = &extend.data {
        state.config.data = d.clone();
    }
    let state_file = checkpoint_dir(out).join("state.json");
    let invalid = |what: String| Error::invalid(&state_file, what);
    state
        .config
        .validate()
        .map_err(|e| invalid(e.to_string()))?;
    let cfg = &state.config;
    if cfg.parallel.ranks != comm.size() {
        return Err(Error::setting(
            "resume",
            format!(
                "the run in {} was trained on {} rank(s) and this job has {}; resume it with `mpirun -np {}` (the global batch and the shards depend on it)",
                out.display(),
                cfg.parallel.ranks,
                comm.size(),
                cfg.parallel.ranks
            ),
        ).into());
    }
    if !cfg.data.is_file() {
        return Err(invalid(format!(
            "the training data {} is not there; if it moved, give its new path with --data",
            cfg.data.display()
        ))
        .into());
    }
    let digest = deepgalaxy_core::card::digest_file(&cfg.data)?;
    if digest != state.training_digest {
        return Err(Error::invalid(
            &cfg.data,
            "the data changed since the checkpoint was written (SHA-256 differs); resuming would not continue the same run",
        ).into());
    }
    let data = Dataset::load(
        &cfg.data,
        &ck.spec.preprocess,
        Some(state.target),
        &|d, t| observer.loading(d, t),
    )?;
    check_resumable(&state, &ck.spec, &data).map_err(invalid)?;
    let optimizer = Optimizer::load(cfg.optimizer.clone(), state.step, ck.optimizer);
    Ok(Run {
        spec: ck.spec,
        graph: ck.graph,
        weights: ck.weights,
        optimizer,
        state,
        data,
        device,
        rank: comm.rank(),
    })
}

/// Checks that a checkpoint's progress fits its model and data, so that a damaged or edited
/// `state.json` is refused before training instead of panicking in the middle of it.
fn check_resumable(
    state: &TrainState,
    spec: &ModelSpec,
    data: &Dataset,
) -> std::result::Result<(), String> {
    let n = data.samples.len();
    let split = &state.split;
    if let Some(&i) = split
        .train
        .iter()
        .chain(&split.val)
        .chain(&split.test)
        .find(|&&i| i >= n)
    {
        return Err(format!(
            "the split names image {i}, but the data holds {n} images"
        ));
    }
    if split.train.len() < 2 {
        return Err("the split has fewer than two training images".into());
    }
    if spec.num_classes != data.num_classes {
        return Err(format!(
            "the model has {} classes and the data {}",
            spec.num_classes, data.num_classes
        ));
    }
    if state.history.len() != state.epoch {
        return Err(format!(
            "{} epoch(s) done but {} in the history",
            state.epoch,
            state.history.len()
        ));
    }
    let per_epoch = split
        .train
        .len()
        .div_ceil(state.config.batch_size * state.config.parallel.ranks.max(1));
    if state.batch_in_epoch > per_epoch {
        return Err(format!(
            "batch {} of the epoch is past its {per_epoch} batches",
            state.batch_in_epoch
        ));
    }
    Ok(())
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
    rank: usize,
}

impl Run {
    fn train_to_end(
        mut self,
        observer: &dyn Observer,
        stop: &AtomicBool,
        comm: &dyn Collective,
    ) -> Result<Outcome> {
        let cfg = self.state.config.clone();
        let (rank, ranks) = (comm.rank(), comm.size());
        let mut rng = self.state.rng.restore()?;
        let stages = deepgalaxy_models::graph::encoder_stages(&self.graph);
        // on N ranks a Ctrl-C anywhere stops every rank after the same step
        let mut stop_agreed = false;
        while self.state.epoch < cfg.epochs {
            let epoch = self.state.epoch + 1;
            let frozen = frozen_stages(&cfg, &stages, epoch);
            // owned (a Var is a handle), so that the step may borrow the run mutably
            let trained: Vec<(String, candle_core::Var)> = self
                .weights
                .vars()
                .iter()
                .filter(|(name, _)| !frozen.iter().any(|s| name.starts_with(&format!("{s}."))))
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect();
            let refs: Vec<(&String, &candle_core::Var)> =
                trained.iter().map(|(n, v)| (n, v)).collect();
            // every epoch's order comes from (seed, epoch), so a resumed run sees the same one
            // and every rank the same one
            let mut order_rng = ChaCha8Rng::seed_from_u64(
                cfg.seed ^ (epoch as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            );
            let order: Vec<usize> = permutation(self.state.split.train.len(), &mut order_rng)
                .into_iter()
                .map(|k| self.state.split.train[k])
                .collect();
            // global batches; each micro-batch of each rank needs two images for batch norm
            let least = 2 * ranks * cfg.parallel.micro_batches;
            let batches: Vec<&[usize]> = order
                .chunks(cfg.batch_size * ranks)
                .filter(|b| b.len() >= least)
                .collect();
            observer.epoch_start(epoch, batches.len());
            let started = Instant::now();
            let (mut loss_sum, mut seen, mut correct) = (0.0, 0usize, 0usize);
            let per_epoch = batches.len() as u64;
            let total = per_epoch * cfg.epochs as u64;
            let schedule = cfg.parallel.schedule(&cfg.schedule, per_epoch);
            let mut lr = schedule.lr_at(self.state.step, per_epoch, total);
            for (b, batch) in batches.iter().enumerate().skip(self.state.batch_in_epoch) {
                let asked = if ranks == 1 {
                    stop.load(Ordering::Relaxed)
                } else {
                    stop_agreed
                };
                if asked {
                    self.state.rng = RngState::of(&rng);
                    self.save_on_root(comm)?;
                    return Ok(Outcome::Interrupted);
                }
                if cfg.max_steps.is_some_and(|m| self.state.step >= m) {
                    self.state.rng = RngState::of(&rng);
                    self.save_on_root(comm)?;
                    return Ok(Outcome::StepLimit);
                }
                let t = Instant::now();
                lr = schedule.lr_at(self.state.step, per_epoch, total);
                let mut rank_rng;
                let draw = if ranks == 1 {
                    &mut rng
                } else {
                    rank_rng = ChaCha8Rng::seed_from_u64(
                        cfg.seed
                            ^ self.state.step.wrapping_mul(0xd6e8_feb8_6659_fd93)
                            ^ (rank as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                    );
                    &mut rank_rng
                };
                let during = format!(
                    "at epoch {epoch}, batch {} (step {})",
                    b + 1,
                    self.state.step
                );
                let done = self.step(
                    batch,
                    &refs,
                    lr,
                    draw,
                    comm,
                    stop.load(Ordering::Relaxed),
                    &during,
                )?;
                stop_agreed = done.stop;
                self.state.step += 1;
                self.state.batch_in_epoch = b + 1;
                loss_sum += done.loss_sum;
                seen += done.images;
                correct += done.hits;
                observer.step(&StepInfo {
                    epoch,
                    batch: b + 1,
                    loss: done.loss_sum / done.images.max(1) as f64,
                    accuracy: correct as f64 / seen.max(1) as f64,
                    images_per_sec: seen as f64 / started.elapsed().as_secs_f64().max(1e-9),
                    comm_secs: done.comm_secs,
                    step_secs: t.elapsed().as_secs_f64(),
                });
            }
            let val = self.validate(comm)?;
            let record = EpochRecord {
                epoch,
                step: self.state.step,
                lr,
                train_loss: loss_sum / seen.max(1) as f64,
                train_top1: correct as f64 / seen.max(1) as f64,
                images_per_sec: seen as f64 / started.elapsed().as_secs_f64().max(1e-9),
                val: val.as_ref().map(|(m, _)| m.clone()),
            };
            self.state.history.push(record.clone());
            self.state.epoch = epoch;
            self.state.batch_in_epoch = 0;
            self.state.rng = RngState::of(&rng);
            let written = if rank == 0 {
                self.write_epoch(val.as_ref().map(|(_, c)| c))
            } else {
                Ok(())
            };
            agree(comm, &format!("writing epoch {epoch}'s files"), written)?;
            observer.epoch_end(&record);
        }
        Ok(Outcome::Finished)
    }

    /// Validation metrics over the whole validation set, each rank evaluating its part.
    fn validate(
        &self,
        comm: &dyn Collective,
    ) -> Result<Option<(crate::metrics::EvalMetrics, crate::metrics::Confusion)>> {
        let val = &self.state.split.val;
        if val.is_empty() {
            return Ok(None);
        }
        let range = part(val.len(), comm.rank(), comm.size());
        let offset = range.start;
        let mine = &val[range];
        let local = step::in_pool(|| {
            evaluate(
                &self.graph,
                &self.weights,
                &self.data,
                mine,
                self.state.config.batch_size,
                &self.device,
            )
        });
        let local = agree(comm, "in validation", local)?;
        Ok(Some(reduce_metrics(comm, local, offset, val.len())))
    }

    /// Rank 0's files after an epoch: metrics, plots, checkpoint.
    fn write_epoch(&self, confusion: Option<&crate::metrics::Confusion>) -> Result<()> {
        let out = &self.state.config.out;
        if let Some(c) = confusion {
            crate::plots::confusion(&out.join("confusion.png"), c)?;
        }
        crate::report::write_metrics(out, &self.state.history)?;
        crate::plots::curves(&out.join("curves.png"), &self.state.history)?;
        self.save()
    }

    /// Rank 0 writes the checkpoint; every rank learns whether it worked.
    fn save_on_root(&self, comm: &dyn Collective) -> Result<()> {
        let saved = if comm.rank() == 0 {
            self.save()
        } else {
            Ok(())
        };
        agree(comm, "writing the checkpoint", saved)
    }

    /// Rank 0's weights and optimizer state, copied to every rank.
    fn share(&mut self, comm: &dyn Collective) -> Result<()> {
        if comm.size() == 1 {
            return Ok(());
        }
        let weights = broadcast_tensors(comm, self.weights.tensors(), &self.device)?;
        self.weights.load_matching(&weights)?;
        let state = broadcast_tensors(
            comm,
            self.optimizer.tensors().into_iter().collect(),
            &self.device,
        )?;
        self.optimizer = Optimizer::load(self.optimizer.kind().clone(), self.state.step, state);
        Ok(())
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
        let pred: Vec<u32> = out[0].argmax(1).and_then(|t| t.to_vec1())?;
        let truth: Vec<u32> = y.to_vec1()?;
        let hits = pred.iter().zip(&truth).filter(|(a, b)| a == b).count();
        let mut terms: Vec<Tensor> = Vec::new();
        let c = |r: candle_core::Result<Tensor>| r.map_err(crate::Error::from);
        if h.classifier {
            let ce = if w.label_sigma > 0.0 {
                let q = c(loss::gaussian_targets(
                    &truth,
                    out[0].dim(1)?,
                    w.label_sigma,
                    w.label_smoothing,
                    x.device(),
                ))?;
                loss::soft_cross_entropy(&out[0], &q)
            } else {
                loss::cross_entropy(&out[0], y, w.label_smoothing)
            };
            terms.push(c(ce.and_then(|l| l * w.classifier))?);
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

/// Rank 0's `tensors` on every rank: their names and shapes first, then their values.
fn broadcast_tensors(
    comm: &dyn Collective,
    tensors: std::collections::BTreeMap<String, Tensor>,
    device: &Device,
) -> Result<std::collections::HashMap<String, Tensor>> {
    let layout: Vec<(String, Vec<usize>)> = tensors
        .iter()
        .map(|(k, t)| (k.clone(), t.dims().to_vec()))
        .collect();
    let mut bytes = serde_json::to_vec(&layout)
        .map_err(|e| Error::setting("distributed training", e.to_string()))?;
    comm.broadcast_bytes(&mut bytes, 0);
    let layout: Vec<(String, Vec<usize>)> = serde_json::from_slice(&bytes)
        .map_err(|e| Error::setting("distributed training", e.to_string()))?;
    let mut flat = if comm.rank() == 0 {
        step::flatten(tensors.values())?
    } else {
        vec![
            0.0;
            layout
                .iter()
                .map(|(_, d)| d.iter().product::<usize>())
                .sum()
        ]
    };
    comm.broadcast(&mut flat, 0);
    let mut out = std::collections::HashMap::new();
    let mut offset = 0;
    for (name, dims) in layout {
        let n: usize = dims.iter().product();
        let t = Tensor::from_slice(&flat[offset..offset + n], dims.as_slice(), device)?;
        offset += n;
        out.insert(name, t);
    }
    Ok(out)
}
