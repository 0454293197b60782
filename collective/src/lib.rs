//! # deepgalaxy-collective
//!
//! The communication between the ranks of a distributed job, behind a small [`Collective`]
//! trait, shared by data-parallel training (`deepgalaxy-train`) and sharded batch inference
//! (`deepgalaxy-runtime`):
//!
//! * [`OneProcess`] is one process on its own (always compiled), so every code path of the
//!   distributed trainer and of sharded inference runs, and is tested, without MPI.
//! * `Mpi` (feature `mpi`) is the MPI world of `mpirun -np N` (the `mpi` crate over OpenMPI).
//! * [`part`] splits work into contiguous shards; [`agree`] makes all ranks stop together when
//!   one fails, naming it; [`all_gather_bytes`] and [`allreduce_buckets`] move results and
//!   gradients.

use std::ops::Range;
use std::time::Instant;

use deepgalaxy_core::{Error, Result};

/// The collective operations data-parallel training and sharded inference need. Every rank must call the same
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
pub struct OneProcess;

impl Collective for OneProcess {
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

/// The ranks to work on: the MPI world when `distributed`, else this process alone. Without
/// the `mpi` feature, `distributed` is an error saying how to build with it.
pub fn world(distributed: bool) -> Result<Box<dyn Collective>> {
    if !distributed {
        return Ok(Box::new(OneProcess));
    }
    #[cfg(feature = "mpi")]
    {
        Ok(Box::new(Mpi::init()?))
    }
    #[cfg(not(feature = "mpi"))]
    Err(Error::setting(
        "--distributed",
        "needs a deepgalaxy built with MPI: `cargo build --release --features mpi` (Debian packages libopenmpi-dev openmpi-bin libclang-dev clang)",
    ))
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
pub fn agree<T, E>(
    comm: &dyn Collective,
    during: &str,
    outcome: std::result::Result<T, E>,
) -> std::result::Result<T, E>
where
    E: std::error::Error + From<Error>,
{
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
        Err(e) if comm.rank() == culprit => deepgalaxy_core::error::with_sources(e).into_bytes(),
        _ => Vec::new(),
    };
    comm.broadcast_bytes(&mut reason, culprit);
    let others = failed.iter().filter(|&&f| f > 0.0).count() - 1;
    let also = if others > 0 {
        format!(" ({others} other rank(s) failed too)")
    } else {
        String::new()
    };
    Err(E::from(Error::setting(
        "distributed training",
        format!(
            "rank {culprit} of {} failed {during}{also}; all ranks stopped: {}",
            comm.size(),
            String::from_utf8_lossy(&reason)
        ),
    )))
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
            agree(&OneProcess, "at step 1", e).unwrap_err().to_string(),
            "invalid x: y"
        );
        let mut buf = vec![1.0, 2.0, 3.0];
        allreduce_buckets(&OneProcess, &mut buf, 2);
        assert_eq!(buf, vec![1.0, 2.0, 3.0]);
        assert_eq!(all_gather_bytes(&OneProcess, vec![7, 8]), vec![vec![7, 8]]);
    }
}
