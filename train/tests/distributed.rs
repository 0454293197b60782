//! The distributed trainer without MPI: two ranks on two threads of this process, through a
//! [`Collective`] built from a barrier and shared slots. Two ranks of batch b give the weights
//! one process of batch 2b gives with 2 micro-batches (batch norm per b, as on the ranks), the
//! validation metrics of one process, and a rank that cannot start stops both, naming itself.

mod common;

use std::path::Path;
use std::sync::{Arc, Barrier, Mutex};

use candle_core::Device;
use common::{catalog, config, no_stop, spec};
use deepgalaxy_collective::Collective;
use deepgalaxy_train::augment::Augment;
use deepgalaxy_train::checkpoint::{checkpoint_dir, load};
use deepgalaxy_train::distributed::{LrScaling, Parallel};
use deepgalaxy_train::trainer::Quiet;
use deepgalaxy_train::{train, train_with, Heads, Outcome, TrainConfig};

/// What the ranks of one process share.
struct Shared {
    barrier: Barrier,
    slots: Mutex<Vec<Vec<f32>>>,
    bytes: Mutex<Vec<u8>>,
}

/// One rank on a thread.
struct ThreadRank {
    rank: usize,
    size: usize,
    shared: Arc<Shared>,
}

fn ranks(size: usize) -> Vec<ThreadRank> {
    let shared = Arc::new(Shared {
        barrier: Barrier::new(size),
        slots: Mutex::new(vec![Vec::new(); size]),
        bytes: Mutex::new(Vec::new()),
    });
    (0..size)
        .map(|rank| ThreadRank {
            rank,
            size,
            shared: shared.clone(),
        })
        .collect()
}

impl Collective for ThreadRank {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn broadcast(&self, buf: &mut [f32], root: usize) {
        if self.rank == root {
            self.shared.slots.lock().unwrap()[root] = buf.to_vec();
        }
        self.shared.barrier.wait();
        buf.copy_from_slice(&self.shared.slots.lock().unwrap()[root]);
        self.shared.barrier.wait();
    }
    fn broadcast_bytes(&self, buf: &mut Vec<u8>, root: usize) {
        if self.rank == root {
            *self.shared.bytes.lock().unwrap() = buf.clone();
        }
        self.shared.barrier.wait();
        *buf = self.shared.bytes.lock().unwrap().clone();
        self.shared.barrier.wait();
    }
    fn allreduce_sum(&self, buf: &mut [f32]) {
        self.shared.slots.lock().unwrap()[self.rank] = buf.to_vec();
        self.shared.barrier.wait();
        {
            let slots = self.shared.slots.lock().unwrap();
            buf.iter_mut().for_each(|b| *b = 0.0);
            for slot in slots.iter() {
                buf.iter_mut().zip(slot).for_each(|(b, s)| *b += s);
            }
        }
        self.shared.barrier.wait();
    }
    fn barrier(&self) {
        self.shared.barrier.wait();
    }
}

/// A run without random streams that differ per rank (no augmentation, dropout or VAE noise).
fn deterministic(data: &Path, out: &Path, batch: usize, parallel: Parallel) -> TrainConfig {
    TrainConfig {
        epochs: 2,
        batch_size: batch,
        heads: Heads {
            classifier: true,
            autoencoder: true,
            vae: false,
        },
        augment: Augment::none(),
        parallel,
        ..config(data, out)
    }
}

/// Runs every rank's configuration on its own thread; returns each rank's outcome.
fn on_threads(configs: Vec<TrainConfig>) -> Vec<Result<Outcome, String>> {
    let handles: Vec<_> = ranks(configs.len())
        .into_iter()
        .zip(configs)
        .map(|(rank, cfg)| {
            std::thread::spawn(move || {
                train_with(spec(0.0), cfg, None, &Quiet, &no_stop(), &rank)
                    .map_err(|e| e.to_string())
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn two_thread_ranks_equal_one_process_with_two_micro_batches() {
    let tmp = tempfile::tempdir().unwrap();
    let data = catalog(tmp.path(), 40, 4);
    let (two, one) = (tmp.path().join("two"), tmp.path().join("one"));
    let scaled = Parallel {
        lr_scaling: LrScaling::Linear,
        warmup_epochs: 0.5,
        ..Parallel::default()
    };
    let cfg = deterministic(&data, &two, 4, scaled);
    let results = on_threads(vec![cfg.clone(), cfg.clone()]);
    assert_eq!(results, vec![Ok(Outcome::Finished), Ok(Outcome::Finished)]);

    let mut single = deterministic(
        &data,
        &one,
        8,
        Parallel {
            micro_batches: 2,
            warmup_epochs: 0.5,
            ..Parallel::default()
        },
    );
    // linear scaling on 2 ranks doubles the rate
    single.schedule.lr = 2.0 * cfg.schedule.lr;
    train(spec(0.0), single, &Quiet, &no_stop()).unwrap();

    let (a, b) = (
        load(&checkpoint_dir(&two), &Device::Cpu).unwrap(),
        load(&checkpoint_dir(&one), &Device::Cpu).unwrap(),
    );
    assert_eq!(a.state.step, b.state.step);
    assert_eq!(a.state.config.parallel.ranks, 2);
    assert!(a.state.step >= 6, "{} steps", a.state.step);
    let (ta, tb) = (a.weights.tensors(), b.weights.tensors());
    for (name, x) in &ta {
        let x: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
        let y: Vec<f32> = tb[name].flatten_all().unwrap().to_vec1().unwrap();
        let scale = y.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        let worst = x
            .iter()
            .zip(&y)
            .fold(0f32, |m, (p, q)| m.max((p - q).abs() / scale));
        assert!(worst <= 1e-5, "{name}: relative difference {worst:e}");
    }
    // validation split over the two ranks and summed: the same metrics as one process
    let (va, vb) = (
        a.state.history[1].val.as_ref().unwrap(),
        b.state.history[1].val.as_ref().unwrap(),
    );
    assert_eq!(va.images, vb.images);
    assert_eq!(va.top1, vb.top1);
    assert!((va.cross_entropy - vb.cross_entropy).abs() <= 1e-5 * vb.cross_entropy.max(1.0));
    assert!((va.recon_mse - vb.recon_mse).abs() <= 1e-5 * vb.recon_mse.max(1.0));
}

#[test]
fn a_rank_that_cannot_start_stops_every_rank_and_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let data = catalog(tmp.path(), 16, 2);
    let out = tmp.path().join("run");
    let good = deterministic(&data, &out, 4, Parallel::default());
    let missing = tmp.path().join("elsewhere/catalog.csv");
    let bad = TrainConfig {
        data: missing.clone(),
        ..good.clone()
    };
    let results = on_threads(vec![good, bad]);
    for r in &results {
        let err = r.as_ref().unwrap_err();
        assert!(
            err.contains("rank 1 of 2 failed while starting; all ranks stopped")
                && err.contains("elsewhere/catalog.csv"),
            "{err}"
        );
    }
    assert!(!checkpoint_dir(&out).exists(), "a checkpoint was written");
}

#[test]
fn micro_batches_need_two_images_each() {
    let tmp = tempfile::tempdir().unwrap();
    let data = catalog(tmp.path(), 16, 2);
    let cfg = deterministic(
        &data,
        &tmp.path().join("run"),
        5,
        Parallel {
            micro_batches: 3,
            ..Parallel::default()
        },
    );
    let err = train(spec(0.0), cfg, &Quiet, &no_stop())
        .unwrap_err()
        .to_string();
    assert!(err.contains("3 micro-batches of a batch of 5"), "{err}");
}
