//! Data parallelism: the trainer's settings for it ([`Parallel`], [`LrScaling`]), its fault
//! injection hook and the ring-allreduce cost model. The communication itself is
//! `deepgalaxy-collective`'s.
//!
//! What a distributed step does (see `trainer`): every rank computes the gradient of its shard
//! of the global batch, the gradients are summed with allreduce in fused flat buckets
//! (`allreduce_buckets`) and divided by the global batch, and every rank applies the same
//! update. Failures are agreed on (`agree`) so that all ranks stop together, naming the rank
//! that failed and why.

use crate::Result;
use deepgalaxy_core::Error;
use serde::{Deserialize, Serialize};

/// How the learning rate follows the number of ranks N (the global batch is N x the local).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrScaling {
    /// The configured rate as is.
    #[default]
    None,
    /// N x the rate (Goyal et al.; the original DeepGalaxy code did this to AdaDelta, without
    /// warm-up).
    Linear,
    /// sqrt(N) x the rate.
    Sqrt,
}

impl LrScaling {
    /// The factor for `ranks` ranks.
    pub fn factor(self, ranks: usize) -> f64 {
        match self {
            LrScaling::None => 1.0,
            LrScaling::Linear => ranks as f64,
            LrScaling::Sqrt => (ranks as f64).sqrt(),
        }
    }
}

/// The data-parallel part of a run's configuration (recorded in the checkpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Parallel {
    /// Ranks the run trains on (set by the trainer from the communicator; a resumed run must
    /// use as many, since the global batch and the shuffle's shards depend on it).
    pub ranks: usize,
    /// Each rank's batch is split into this many micro-batches whose gradients are summed
    /// before the update. Batch-norm statistics are per micro-batch, exactly as they are per
    /// rank, so 1 process with `micro_batches = N` computes what N ranks compute.
    pub micro_batches: usize,
    /// Learning-rate scaling with the number of ranks.
    pub lr_scaling: LrScaling,
    /// Linear warm-up over this many epochs (on top of the schedule's warm-up steps; the
    /// longer of the two applies).
    pub warmup_epochs: f64,
    /// Gradient fusion bucket size in MiB of `f32` (the flat buffers that are allreduced).
    pub bucket_mib: f64,
}

impl Default for Parallel {
    fn default() -> Self {
        Parallel {
            ranks: 1,
            micro_batches: 1,
            lr_scaling: LrScaling::None,
            warmup_epochs: 0.0,
            bucket_mib: 25.0,
        }
    }
}

impl Parallel {
    /// Checks the numbers are usable with a local batch of `batch_size`.
    pub fn validate(&self, batch_size: usize) -> Result<()> {
        let bad = |what: String| {
            Err(crate::Error::from(Error::setting(
                "distributed training",
                what,
            )))
        };
        // checked: 2 x a huge count must not wrap to a small number that passes
        let smallest_batch = self.micro_batches.checked_mul(2);
        if self.micro_batches == 0 || smallest_batch.is_none_or(|n| batch_size < n) {
            return bad(format!(
                "{} micro-batches of a batch of {batch_size} leave fewer than 2 images in one (batch normalisation needs two)",
                self.micro_batches
            ));
        }
        if !(self.warmup_epochs >= 0.0 && self.warmup_epochs.is_finite()) {
            return bad(format!(
                "warm-up epochs {} must be 0 or more",
                self.warmup_epochs
            ));
        }
        if !(self.bucket_mib > 0.0 && self.bucket_mib.is_finite()) {
            return bad(format!(
                "bucket size {} MiB must be positive",
                self.bucket_mib
            ));
        }
        Ok(())
    }

    /// Floats per fusion bucket.
    pub fn bucket_floats(&self) -> usize {
        ((self.bucket_mib * 1024.0 * 1024.0 / 4.0) as usize).max(1)
    }
}

/// A test hook for the failure handling: `DEEPGALAXY_FAULT=<rank>:<step>:<kind>` makes that
/// rank fail at that optimizer step, with `kind` one of `error` (returns an error), `nan` (the
/// loss becomes NaN) or `kill` (the process sends itself SIGKILL, as `kill -9` would).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// An ordinary error.
    Error,
    /// A non-finite loss.
    Nan,
    /// Sudden death.
    Kill,
}

impl Fault {
    /// The fault set for `rank` at `step` in the environment, if any.
    pub fn at(rank: usize, step: u64) -> Option<Fault> {
        let spec = std::env::var("DEEPGALAXY_FAULT").ok()?;
        let mut it = spec.split(':');
        let (r, s, k) = (it.next()?, it.next()?, it.next()?);
        if r.parse::<usize>().ok()? != rank || s.parse::<u64>().ok()? != step {
            return None;
        }
        match k {
            "error" => Some(Fault::Error),
            "nan" => Some(Fault::Nan),
            "kill" => Some(Fault::Kill),
            _ => None,
        }
    }

    /// Applies an `Error` or `Kill` fault (a `Nan` one is the caller's to apply to the loss).
    pub fn strike(self, rank: usize, step: u64) -> Result<()> {
        match self {
            Fault::Nan => Ok(()),
            Fault::Error => Err(Error::setting(
                "training",
                format!("injected fault (DEEPGALAXY_FAULT) on rank {rank} at step {step}"),
            )
            .into()),
            Fault::Kill => {
                let pid = std::process::id().to_string();
                let _ = std::process::Command::new("kill")
                    .args(["-9", &pid])
                    .status();
                std::process::abort()
            }
        }
    }
}

/// A network for the ring-allreduce cost model: per-message latency and bandwidth.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Network {
    /// Latency of one message, seconds.
    pub alpha: f64,
    /// Bandwidth, bytes per second.
    pub bandwidth: f64,
}

impl Network {
    /// Seconds a ring allreduce of `bytes` takes on `p` workers: 2(p - 1) messages of
    /// `bytes / p` each (reduce-scatter, then all-gather), i.e.
    /// `2 (p - 1) alpha + 2 (p - 1) / p * bytes / bandwidth`.
    pub fn ring_allreduce_secs(&self, p: usize, bytes: f64) -> f64 {
        if p <= 1 {
            return 0.0;
        }
        let steps = 2.0 * (p as f64 - 1.0);
        steps * self.alpha + steps / p as f64 * bytes / self.bandwidth
    }

    /// Scaling efficiency of synchronous data parallelism without overlap: compute time over
    /// compute plus allreduce time, per step.
    pub fn efficiency(&self, p: usize, compute_secs: f64, bytes: f64) -> f64 {
        compute_secs / (compute_secs + self.ring_allreduce_secs(p, bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_allreduce_costs_latency_per_step_and_twice_the_data() {
        let net = Network {
            alpha: 1e-6,
            bandwidth: 1e9,
        };
        assert_eq!(net.ring_allreduce_secs(1, 1e9), 0.0);
        // 4 workers: 6 messages, 2 * 3/4 of 1 GB at 1 GB/s
        assert!((net.ring_allreduce_secs(4, 1e9) - (6e-6 + 1.5)).abs() < 1e-12);
        assert!((net.efficiency(4, 1.5, 1e9) - 1.5 / (3.0 + 6e-6)).abs() < 1e-12);
        // the bandwidth term approaches 2 bytes / bandwidth, the latency term keeps growing
        assert!(net.ring_allreduce_secs(1024, 0.0) > 2e-3);
    }

    #[test]
    fn learning_rate_scales_with_ranks() {
        assert_eq!(LrScaling::None.factor(4), 1.0);
        assert_eq!(LrScaling::Linear.factor(4), 4.0);
        assert_eq!(LrScaling::Sqrt.factor(4), 2.0);
    }

    #[test]
    fn micro_batches_need_two_images_each() {
        let p = Parallel {
            micro_batches: 3,
            ..Parallel::default()
        };
        assert!(p.validate(6).is_ok());
        let err = p.validate(5).unwrap_err().to_string();
        assert!(err.contains("fewer than 2 images"), "{err}");
        assert_eq!(Parallel::default().bucket_floats(), 25 * 1024 * 1024 / 4);
    }
}
