//! Fuzz test of a checkpoint's `state.json`: seeded mutations of a valid one (see
//! `deepgalaxy_core::fuzz`) read through [`checkpoint::load_state`], then the checks a resumed
//! run relies on ([`TrainConfig::validate`], [`RngState::restore`]). Every case is a state
//! whose accepted numbers hold together, or an error naming the file; no panic, bounded memory.

use deepgalaxy_core::fuzz::{mutate, mutate_json, run, PeakAlloc, Rng};
use deepgalaxy_train::augment::Augment;
use deepgalaxy_train::checkpoint::{self, EpochRecord, RngState, TrainState};
use deepgalaxy_train::distributed::Parallel;
use deepgalaxy_train::metrics::EvalMetrics;
use deepgalaxy_train::optim::OptimizerKind;
use deepgalaxy_train::schedule::{Schedule, ScheduleKind};
use deepgalaxy_train::split::{Split, SplitKind};
use deepgalaxy_train::{Heads, LossWeights, TrainConfig};
use rand::SeedableRng;

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

/// JSON values that break numeric fields, lengths and types.
const TOKENS: &[&[u8]] = &[
    b"0",
    b"-1",
    b"1e309",
    b"NaN",
    b"4294967296",
    b"9223372036854775808",
    b"18446744073709551615",
    b"18446744073709551616",
    b"null",
    b"[]",
    b"{}",
    b"\"\"",
    b"\"x\"",
    b"true",
    b",",
    b"\"",
];

fn state() -> TrainState {
    let val = EvalMetrics {
        images: 4,
        top1: 0.5,
        within1: 0.75,
        within2: 1.0,
        mae_myr: 3.5,
        median_abs_myr: 2.5,
        within_10_myr: 0.75,
        within_25_myr: 1.0,
        coverage_1sigma: 0.5,
        sigma_scale: Some(1.5),
        cross_entropy: 1.1,
        recon_mse: 0.02,
        vae_recon_mse: 0.03,
        kl: 2.5,
    };
    TrainState {
        tool_version: "0.1.0".into(),
        config: TrainConfig {
            data: "data/catalog.csv".into(),
            out: "run".into(),
            epochs: 4,
            batch_size: 8,
            max_steps: Some(100),
            heads: Heads::parse("classifier,autoencoder,vae").unwrap(),
            freeze_encoder: false,
            unfreeze_every: Some(2),
            init_from: None,
            split: SplitKind::BySimulation,
            val_fraction: 0.2,
            val_simulations: vec!["s_1_m_1".into()],
            test: Default::default(),
            target: None,
            optimizer: OptimizerKind::by_name("adam").unwrap(),
            schedule: Schedule {
                lr: 1e-3,
                kind: ScheduleKind::Cosine { min_lr: 0.0 },
                warmup: 10,
            },
            loss: LossWeights::default(),
            augment: Augment {
                dihedral: true,
                noise: 0.01,
                blur_fwhm: 0.0,
            },
            seed: 7,
            parallel: Parallel {
                micro_batches: 2,
                ..Parallel::default()
            },
            overwrite: false,
        },
        epoch: 1,
        batch_in_epoch: 3,
        step: 12,
        rng: RngState::of(&rand_chacha::ChaCha8Rng::seed_from_u64(7)),
        split: Split {
            kind: SplitKind::BySimulation,
            train: vec![0, 1, 2, 3, 4, 5],
            val: vec![6, 7],
            val_simulations: vec!["s_1_m_1".into()],
            train_simulations: vec![],
            test: vec![],
            test_simulations: vec![],
        },
        training_digest: "ab".repeat(32),
        class_t_myr: vec![2.0, 7.0, 12.0],
        target: Default::default(),
        paths: deepgalaxy_train::checkpoint::PATHS_RELATIVE_TO_RUN,
        history: vec![EpochRecord {
            epoch: 1,
            step: 9,
            lr: 1e-3,
            train_loss: 1.5,
            train_top1: 0.4,
            images_per_sec: 80.0,
            val: Some(val),
        }],
    }
}

#[test]
fn state_json_fuzz() {
    let dir = tempfile::tempdir().unwrap();
    let value = serde_json::to_value(state()).unwrap();
    let valid = serde_json::to_vec_pretty(&value).unwrap();
    let path = dir.path().join("state.json");
    let (mut parsed, mut valid_configs) = (0, 0);
    let n = run("state.json", 10_000, 0x57a7e, 16 << 20, |rng: &mut Rng| {
        // a quarter of the cases mutate the text, the others the JSON values
        let bytes = if rng.below(4) == 0 {
            mutate(rng, &valid, TOKENS)
        } else {
            let mut v = value.clone();
            // mostly one change, so that most cases still deserialise
            for _ in 0..1 + rng.below(2) * rng.below(3) {
                mutate_json(rng, &mut v);
            }
            serde_json::to_vec_pretty(&v).unwrap()
        };
        std::fs::write(&path, bytes).unwrap();
        match checkpoint::load_state(dir.path()) {
            Ok(s) => {
                parsed += 1;
                let _ = s.rng.restore();
                if s.config.validate().is_ok() {
                    valid_configs += 1;
                    let c = &s.config;
                    assert!(c.epochs >= 1, "{c:?}");
                    let per_micro = c.batch_size / c.parallel.micro_batches.max(1);
                    assert!(
                        c.parallel.micro_batches >= 1 && per_micro >= 2,
                        "accepted {} micro-batches of a batch of {}",
                        c.parallel.micro_batches,
                        c.batch_size
                    );
                }
            }
            Err(e) => {
                let e = e.to_string();
                assert!(
                    e.contains("state.json"),
                    "error does not name the file: {e}"
                );
            }
        }
    });
    assert_eq!(n, 10_000);
    assert!(
        parsed > 1000 && valid_configs > 500,
        "{parsed} parsed, {valid_configs} valid"
    );
}

/// Found by the fuzz test: `micro_batches = 2^63` made `2 * micro_batches` wrap to 0, so a
/// state.json (or command line) with it passed the check meant to refuse it.
#[test]
fn huge_micro_batch_counts_are_refused() {
    let p = Parallel {
        micro_batches: 1 << 63,
        ..Parallel::default()
    };
    let e = p.validate(8).unwrap_err().to_string();
    assert!(e.contains("9223372036854775808 micro-batches"), "{e}");
}
