//! One optimizer step. On one process with one micro-batch it is the plain step (forward,
//! backward, update). Otherwise every rank computes the gradient of its part of the global
//! batch, micro-batch by micro-batch, weighted by image count; the sums travel in one flat
//! buffer (gradients, batch-norm running statistics, loss, hits, images, stop flag) that is
//! allreduced in fused buckets, and every rank applies the same averaged update.

use crate::Result;
use candle_core::{Tensor, Var};
use deepgalaxy_core::Error;
use rand_chacha::ChaCha8Rng;

use super::Run;
use crate::distributed::Fault;
use deepgalaxy_collective::{agree, allreduce_buckets, part, Collective};

/// What a step did, summed over ranks.
pub(super) struct Done {
    /// Sum over images of the loss.
    pub loss_sum: f64,
    /// Correct classifications.
    pub hits: usize,
    /// Images in the global batch.
    pub images: usize,
    /// Some rank was asked to stop (Ctrl-C): every rank stops after this step.
    pub stop: bool,
    /// Seconds spent in allreduce.
    pub comm_secs: f64,
}

/// A rank's sums before the reduction.
struct Local {
    flat: Vec<f32>,
    grads: candle_core::backprop::GradStore,
    with_grad: Vec<usize>,
}

/// Runs `f`, a step's computation, on a thread of candle's CPU thread pool
/// (`Device::with_context`). Called from outside the pool, every parallel section of the step
/// (each convolution, batch norm, matrix product) would hand its work to the pool's threads
/// and put this thread to sleep until they finish; inside it, the calling thread takes part
/// and the pool stays warm between sections. Measured on the training benchmark with two
/// threads: simple at 64 px 92 -> 112 images/s, resnet 115 -> 138 (`benches/README.md`).
pub fn in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    candle_core::Device::Cpu.with_context(f)
}

/// Values of `tensors`, concatenated.
pub(crate) fn flatten<'a>(tensors: impl Iterator<Item = &'a Tensor>) -> Result<Vec<f32>> {
    let mut flat = Vec::new();
    for t in tensors {
        flat.extend(t.flatten_all().and_then(|t| t.to_vec1::<f32>())?);
    }
    Ok(flat)
}

/// Tensors shaped like `like`, with values from `flat` starting at `*offset` (advanced).
fn unflatten(flat: &[f32], offset: &mut usize, like: &Tensor) -> Result<Tensor> {
    let n = like.elem_count();
    let t = Tensor::from_slice(&flat[*offset..*offset + n], like.dims(), like.device())?;
    *offset += n;
    Ok(t)
}

impl Run {
    /// Takes one step on the global batch `batch` with learning rate `lr`, updating `refs`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn step(
        &mut self,
        batch: &[usize],
        refs: &[(&String, &Var)],
        lr: f64,
        rng: &mut ChaCha8Rng,
        comm: &dyn Collective,
        stop: bool,
        during: &str,
    ) -> Result<Done> {
        let micro = self.state.config.parallel.micro_batches;
        let fault = Fault::at(comm.rank(), self.state.step);
        if comm.size() == 1 && micro == 1 {
            let (loss, hits) = in_pool(|| {
                let (loss, hits) = self.gradient_of(batch, rng, fault)?;
                let grads = loss.backward()?;
                self.optimizer.step(refs, &grads, lr)?;
                Ok::<_, crate::Error>((loss, hits))
            })?;
            let loss = loss.to_scalar::<f32>()? as f64;
            return Ok(Done {
                loss_sum: loss * batch.len() as f64,
                hits,
                images: batch.len(),
                stop,
                comm_secs: 0.0,
            });
        }
        let mine = &batch[part(batch.len(), comm.rank(), comm.size())];
        let local = in_pool(|| self.local_sums(mine, refs, rng, fault, stop));
        let Local {
            mut flat,
            mut grads,
            with_grad,
        } = agree(comm, during, local)?;
        let bucket = self.state.config.parallel.bucket_floats();
        let comm_secs = allreduce_buckets(comm, &mut flat, bucket);
        let tail = flat.len() - 4;
        let images = flat[tail + 2] as f64;
        let mut offset = 0;
        for &k in &with_grad {
            let var = refs[k].1.as_tensor();
            let g = (unflatten(&flat, &mut offset, var)? / images)?;
            grads.insert(var, g);
        }
        // running statistics: the mean over every micro-batch of every rank
        let parts = (micro * comm.size()) as f64;
        let buffers = self.buffers();
        let mut averaged = std::collections::HashMap::new();
        for (name, like) in &buffers {
            let t = (unflatten(&flat, &mut offset, like)? / parts)?;
            averaged.insert(name.clone(), t);
        }
        self.weights.load_matching(&averaged)?;
        self.optimizer.step(refs, &grads, lr)?;
        Ok(Done {
            loss_sum: flat[tail] as f64,
            hits: flat[tail + 1] as usize,
            images: images as usize,
            stop: flat[tail + 3] > 0.0,
            comm_secs,
        })
    }

    /// The batch-norm running statistics (the weights that are not trained), by name.
    fn buffers(&self) -> Vec<(String, Tensor)> {
        let vars = self.weights.vars();
        self.weights
            .tensors()
            .into_iter()
            .filter(|(name, _)| !vars.contains_key(name))
            .collect()
    }

    /// This rank's sums over its micro-batches: gradients x images, running statistics, then
    /// loss x images, hits, images and the stop flag.
    fn local_sums(
        &self,
        mine: &[usize],
        refs: &[(&String, &Var)],
        rng: &mut ChaCha8Rng,
        fault: Option<Fault>,
        stop: bool,
    ) -> Result<Local> {
        let micro = self.state.config.parallel.micro_batches;
        let start: std::collections::HashMap<String, Tensor> = self.buffers().into_iter().collect();
        let (mut grad_sum, mut buffer_sum) = (Vec::new(), Vec::new());
        let (mut loss_sum, mut hits) = (0.0, 0usize);
        let mut with_grad = Vec::new();
        let mut last = None;
        for m in 0..micro {
            let piece = &mine[part(mine.len(), m, micro)];
            // every micro-batch starts from the same running statistics, as every rank does
            self.weights.load_matching(&start)?;
            let (loss, h) = self.gradient_of(piece, rng, fault)?;
            let grads = loss.backward()?;
            if m == 0 {
                with_grad = (0..refs.len())
                    .filter(|&k| grads.get(refs[k].1.as_tensor()).is_some())
                    .collect();
            }
            let n = piece.len() as f64;
            let mut present = Vec::with_capacity(with_grad.len());
            for &k in &with_grad {
                let g = grads.get(refs[k].1.as_tensor()).ok_or_else(|| {
                    Error::setting("training", format!("no gradient for `{}`", refs[k].0))
                })?;
                present.push((g * n)?);
            }
            add_into(&mut grad_sum, flatten(present.iter())?);
            add_into(
                &mut buffer_sum,
                flatten(self.buffers().iter().map(|(_, t)| t))?,
            );
            loss_sum += loss.to_scalar::<f32>()? as f64 * n;
            hits += h;
            last = Some(grads);
        }
        let grads = last.ok_or_else(|| Error::setting("training", "an empty step"))?;
        let mut flat = grad_sum;
        flat.extend(buffer_sum);
        flat.extend([
            loss_sum as f32,
            hits as f32,
            mine.len() as f32,
            f32::from(u8::from(stop)),
        ]);
        Ok(Local {
            flat,
            grads,
            with_grad,
        })
    }

    /// The loss of `indices` (forward pass) and the correct count, failing on a non-finite
    /// loss with the message the single-process trainer has always given.
    fn gradient_of(
        &self,
        indices: &[usize],
        rng: &mut ChaCha8Rng,
        fault: Option<Fault>,
    ) -> Result<(Tensor, usize)> {
        let cfg = &self.state.config;
        if let Some(f) = fault {
            f.strike(self.rank, self.state.step)?;
        }
        let aug = cfg.augment.is_active().then_some(&cfg.augment);
        let (x, y) = self
            .data
            .batch(indices, aug.map(|a| (a, &mut *rng)), &self.device)?;
        let (loss, hits) = self.loss(&x, &y, rng)?;
        let mut value = loss.to_scalar::<f32>()? as f64;
        if fault == Some(Fault::Nan) {
            value = f64::NAN;
        }
        if !value.is_finite() {
            return Err(Error::setting(
                "training",
                format!(
                    "the loss became {value} at epoch {}, batch {} (step {}); stopped without saving, the last good checkpoint in {} is intact. Try a lower learning rate.",
                    self.state.epoch + 1,
                    self.state.batch_in_epoch + 1,
                    self.state.step,
                    crate::checkpoint::checkpoint_dir(&cfg.out).display()
                ),
            ).into());
        }
        Ok((loss, hits))
    }
}

/// `acc += add` element-wise (`acc` starts empty).
fn add_into(acc: &mut Vec<f32>, add: Vec<f32>) {
    if acc.is_empty() {
        *acc = add;
    } else {
        acc.iter_mut().zip(add).for_each(|(a, b)| *a += b);
    }
}
