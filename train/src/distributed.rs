//! Data parallelism: the communication the trainer needs, behind a small [`Collective`] trait.
//!
//! * [`Single`] is one process on its own (always compiled), so every code path of the
//!   distributed trainer runs, and is tested, without MPI.
//! * [`Mpi`] (feature `mpi`) is the MPI world of `mpirun -np N` (the `mpi` crate over OpenMPI).
//!
//! What a distributed step does (see `trainer`): every rank computes the gradient of its shard
//! of the global batch, the gradients are summed with allreduce in fused flat buckets
//! ([`allreduce_buckets`]) and divided by the global batch, and every rank applies the same
//! update. Failures are agreed on ([`agree`]) so that all ranks stop together, naming the rank
//! that failed and why.

use std::ops::Range;
use std::time::Instant;

use deepgalaxy_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// The collective operations data-parallel training needs. Every rank must call the same
/// operations in the same order (they are collective).
pub trait Collective {
    /// This process's rank, `0..size`.
    fn rank(&self) -> usize;
    /// Number of ranks.
    fn size(&self) -> usize;
    /// Overwrites `buf` on every rank with `root`'s.
    fn broadcast(&self, buf: &mut [f32], root: usize);
    /// Overwrites `buf` on every rank with `root`'s (lengths may differ before the call).
    fn broadcast_bytes(&self, buf: &mut Vec<u8>, root: usize);
    /// Element-wise sum over ranks, in place.
    fn allreduce_sum(&self, buf: &mut [f32]);
    /// Waits until every rank has arrived.
    fn barrier(&self);
}

/// One process on its own: rank 0 of 1; every collective is the identity.
pub struct Single;

impl Collective for Single {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn broadcast(&self, _buf: &mut [f32], _root: usize) {}
    fn broadcast_bytes(&self, _buf: &mut Vec<u8>, _root: usize) {}
    fn allreduce_sum(&self, _buf: &mut [f32]) {}
    fn barrier(&self) {}
}

#[cfg(feature = "mpi")]
pub use self::mpi_world::Mpi;

#[cfg(feature = "mpi")]
mod mpi_world {
    use mpi::collective::SystemOperation;
    use mpi::traits::*;

    use super::Collective;
    use deepgalaxy_core::{Error, Result};

    /// The MPI world (`MPI_COMM_WORLD`); MPI is finalised when this is dropped.
    pub struct Mpi {
        // the communicator goes before the universe that finalises MPI
        world: mpi::topology::SimpleCommunicator,
        _universe: mpi::environment::Universe,
    }

    impl Mpi {
        /// Initialises MPI (once per process).
        pub fn init() -> Result<Mpi> {
            let universe = mpi::initialize().ok_or_else(|| {
                Error::setting("MPI", "MPI is already initialised in this process")
            })?;
            Ok(Mpi {
                world: universe.world(),
                _universe: universe,
            })
        }
    }

    impl Collective for Mpi {
        fn rank(&self) -> usize {
            self.world.rank() as usize
        }
        fn size(&self) -> usize {
            self.world.size() as usize
        }
        fn broadcast(&self, buf: &mut [f32], root: usize) {
            self.world.process_at_rank(root as i32).broadcast_into(buf);
        }
        fn broadcast_bytes(&self, buf: &mut Vec<u8>, root: usize) {
            let root = self.world.process_at_rank(root as i32);
            let mut len = buf.len() as u64;
            root.broadcast_into(&mut len);
            buf.resize(len as usize, 0);
            root.broadcast_into(&mut buf[..]);
        }
        fn allreduce_sum(&self, buf: &mut [f32]) {
            let send = buf.to_vec();
            self.world
                .all_reduce_into(&send[..], buf, SystemOperation::sum());
        }
        fn barrier(&self) {
            self.world.barrier();
        }
    }
}

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
        let bad = |what: String| Err(Error::setting("distributed training", what));
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

/// Part `k` of `n` nearly equal contiguous parts of `0..len` (sizes differ by at most one,
/// larger parts first).
pub fn part(len: usize, k: usize, n: usize) -> Range<usize> {
    let (q, r) = (len / n, len % n);
    let start = k * q + k.min(r);
    start..start + q + usize::from(k < r)
}

/// Every rank passes its own outcome; all ranks get `Ok` only if every rank succeeded, and
/// otherwise the same error, naming the lowest failed rank and its reason (`during` says when,
/// e.g. "at step 12"). With one rank the outcome is returned as is.
pub fn agree<T>(comm: &dyn Collective, during: &str, outcome: Result<T>) -> Result<T> {
    if comm.size() == 1 {
        return outcome;
    }
    let mut failed = vec![0f32; comm.size()];
    failed[comm.rank()] = f32::from(u8::from(outcome.is_err()));
    comm.allreduce_sum(&mut failed);
    let Some(culprit) = failed.iter().position(|&f| f > 0.0) else {
        return outcome;
    };
    let mut reason = match &outcome {
        Err(e) if comm.rank() == culprit => e.to_string().into_bytes(),
        _ => Vec::new(),
    };
    comm.broadcast_bytes(&mut reason, culprit);
    let others = failed.iter().filter(|&&f| f > 0.0).count() - 1;
    let also = if others > 0 {
        format!(" ({others} other rank(s) failed too)")
    } else {
        String::new()
    };
    Err(Error::setting(
        "distributed training",
        format!(
            "rank {culprit} of {} failed {during}{also}; all ranks stopped: {}",
            comm.size(),
            String::from_utf8_lossy(&reason)
        ),
    ))
}

/// Every rank's `mine`, in rank order, on every rank (a broadcast from each rank in turn:
/// meant for results of modest size, such as predictions).
pub fn all_gather_bytes(comm: &dyn Collective, mine: Vec<u8>) -> Vec<Vec<u8>> {
    let mut mine = Some(mine);
    (0..comm.size())
        .map(|root| {
            let mut buf = if root == comm.rank() {
                mine.take().unwrap_or_default()
            } else {
                Vec::new()
            };
            comm.broadcast_bytes(&mut buf, root);
            buf
        })
        .collect()
}

/// Sums `buf` over ranks in place, in consecutive buckets of at most `bucket` floats (the
/// fused flat buffers of Horovod and DDP). Returns the seconds spent communicating.
pub fn allreduce_buckets(comm: &dyn Collective, buf: &mut [f32], bucket: usize) -> f64 {
    let t = Instant::now();
    if comm.size() > 1 {
        for chunk in buf.chunks_mut(bucket.max(1)) {
            comm.allreduce_sum(chunk);
        }
    }
    t.elapsed().as_secs_f64()
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
            )),
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
    fn parts_cover_the_range_evenly_and_in_order() {
        let parts: Vec<_> = (0..3).map(|k| part(10, k, 3)).collect();
        assert_eq!(parts, vec![0..4, 4..7, 7..10]);
        assert_eq!(part(4, 1, 2), 2..4);
        assert_eq!(part(1, 1, 2), 1..1);
    }

    #[test]
    fn one_rank_agrees_with_itself_and_sums_nothing() {
        let e: Result<()> = Err(Error::setting("x", "y"));
        assert_eq!(
            agree(&Single, "at step 1", e).unwrap_err().to_string(),
            "invalid x: y"
        );
        let mut buf = vec![1.0, 2.0, 3.0];
        allreduce_buckets(&Single, &mut buf, 2);
        assert_eq!(buf, vec![1.0, 2.0, 3.0]);
        assert_eq!(all_gather_bytes(&Single, vec![7, 8]), vec![vec![7, 8]]);
    }

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
