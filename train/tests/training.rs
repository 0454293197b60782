//! The training loop end to end on tiny synthetic data: it overfits 32 images, resumes bit for
//! bit, stops on a non-finite loss without touching the last good checkpoint, and refuses
//! malformed specs and one-class data, and holds out the simulations it is told to.

mod common;

use std::path::Path;

use common::{catalog, config, no_stop, spec};
use deepgalaxy_models::ModelSpec;
use deepgalaxy_train::augment::Augment;
use deepgalaxy_train::checkpoint::{checkpoint_dir, load};
use deepgalaxy_train::optim::OptimizerKind;
use deepgalaxy_train::schedule::{Schedule, ScheduleKind};
use deepgalaxy_train::trainer::Quiet;
use deepgalaxy_train::{resume, train, Heads, Outcome, ResumeChanges, TrainConfig};

#[test]
fn a_tiny_model_overfits_32_images() {
    let tmp = tempfile::tempdir().unwrap();
    let data = catalog(tmp.path(), 32, 4);
    let out = tmp.path().join("run");
    let cfg = TrainConfig {
        epochs: 40,
        heads: Heads {
            classifier: true,
            autoencoder: false,
            vae: false,
        },
        val_fraction: 0.0,
        val_simulations: vec![],
        test: Default::default(),
        target: None,
        augment: Augment::none(),
        schedule: Schedule {
            lr: 1e-2,
            kind: ScheduleKind::Constant,
            warmup: 0,
        },
        ..config(&data, &out)
    };
    assert_eq!(
        train(spec(0.0), cfg, &Quiet, &no_stop()).unwrap(),
        Outcome::Finished
    );
    let ck = load(&checkpoint_dir(&out), &candle_core::Device::Cpu).unwrap();
    let h = &ck.state.history;
    assert_eq!(h.len(), 40);
    let summary: Vec<(f64, f64)> = h.iter().map(|r| (r.train_loss, r.train_top1)).collect();
    // training accuracy (as the progress bar shows it: batch statistics) reaches 100%
    assert!(h[30..].iter().any(|r| r.train_top1 == 1.0), "{summary:?}");
    assert!(h[39].train_loss < h[0].train_loss / 4.0, "{summary:?}");
    for f in ["metrics.jsonl", "metrics.csv", "curves.png"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 41);
}

fn model_bytes(out: &Path) -> (Vec<u8>, Vec<u8>) {
    let dir = checkpoint_dir(out);
    (
        std::fs::read(dir.join("model.safetensors")).unwrap(),
        std::fs::read(dir.join("optimizer.safetensors")).unwrap(),
    )
}

#[test]
fn resuming_gives_the_same_weights_as_training_straight() {
    let tmp = tempfile::tempdir().unwrap();
    let data = catalog(tmp.path(), 32, 4);
    // 24 training images / batch 8 = 3 batches per epoch: 4 steps cross an epoch boundary
    let straight = tmp.path().join("straight");
    let cfg = TrainConfig {
        epochs: 2,
        max_steps: Some(4),
        ..config(&data, &straight)
    };
    assert_eq!(
        train(spec(0.2), cfg, &Quiet, &no_stop()).unwrap(),
        Outcome::StepLimit
    );

    let split = tmp.path().join("split");
    let cfg = TrainConfig {
        epochs: 2,
        max_steps: Some(2),
        ..config(&data, &split)
    };
    assert_eq!(
        train(spec(0.2), cfg, &Quiet, &no_stop()).unwrap(),
        Outcome::StepLimit
    );
    let extend = ResumeChanges {
        max_steps: Some(Some(4)),
        ..ResumeChanges::default()
    };
    assert_eq!(
        resume(&split, &extend, &Quiet, &no_stop()).unwrap(),
        Outcome::StepLimit
    );

    let (a, b) = (model_bytes(&straight), model_bytes(&split));
    assert!(a.0 == b.0, "model weights differ after resume");
    assert!(a.1 == b.1, "optimizer state differs after resume");
    let sa = load(&checkpoint_dir(&straight), &candle_core::Device::Cpu)
        .unwrap()
        .state;
    let sb = load(&checkpoint_dir(&split), &candle_core::Device::Cpu)
        .unwrap()
        .state;
    assert_eq!(
        (sa.step, sa.epoch, sa.rng.clone()),
        (sb.step, sb.epoch, sb.rng.clone())
    );
    assert_eq!(sa.step, 4);
    assert_eq!(sa.history.len(), 1);
    // the held-out simulation is one of the four and none of its images is trained on
    assert_eq!(sa.split.val_simulations.len(), 1);
    assert_eq!(sa.split.val.len(), 8);
}

#[test]
fn a_non_finite_loss_stops_and_keeps_the_last_good_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let data = catalog(tmp.path(), 16, 2);
    let out = tmp.path().join("run");
    train(spec(0.0), config(&data, &out), &Quiet, &no_stop()).unwrap();
    let before = model_bytes(&out);
    let cfg = TrainConfig {
        epochs: 3,
        overwrite: true,
        optimizer: OptimizerKind::by_name("sgd").unwrap(),
        schedule: Schedule {
            lr: 1e30,
            kind: ScheduleKind::Constant,
            warmup: 0,
        },
        ..config(&data, &out)
    };
    let err = train(spec(0.0), cfg, &Quiet, &no_stop())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the loss became") && err.contains("intact"),
        "{err}"
    );
    assert!(
        model_bytes(&out) == before,
        "the good checkpoint was overwritten"
    );
}

#[test]
fn one_class_data_and_malformed_specs_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = catalog(tmp.path(), 8, 1);
    let out = tmp.path().join("run");
    let err = train(spec(0.0), config(&data, &out), &Quiet, &no_stop())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("catalog.csv") && err.contains("at least two classes"),
        "{err}"
    );

    let data = catalog(tmp.path(), 16, 2);
    train(spec(0.0), config(&data, &out), &Quiet, &no_stop()).unwrap();
    let spec_path = checkpoint_dir(&out).join("spec.json");
    let text = std::fs::read_to_string(&spec_path).unwrap();
    std::fs::write(&spec_path, text.replacen("\"dropout\"", "\"dropuot\"", 1)).unwrap();
    let err = resume(&out, &ResumeChanges::default(), &Quiet, &no_stop())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("spec.json") && err.contains("malformed"),
        "{err}"
    );

    std::fs::write(&spec_path, text).unwrap();
    let model = checkpoint_dir(&out).join("model.safetensors");
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(&model, &bytes[..bytes.len() / 2]).unwrap();
    let err = resume(&out, &ResumeChanges::default(), &Quiet, &no_stop())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("model.safetensors"), "{err}");
}

#[test]
fn progressive_unfreezing_opens_the_encoder_from_the_top() {
    let tmp = tempfile::tempdir().unwrap();
    let data = catalog(tmp.path(), 16, 2);
    let out = tmp.path().join("run");
    let cfg = TrainConfig {
        epochs: 1,
        unfreeze_every: Some(1),
        ..config(&data, &out)
    };
    let s = spec(0.0);
    train(s.clone(), cfg, &Quiet, &no_stop()).unwrap();
    let graph = deepgalaxy_models::Graph::build(&ModelSpec {
        num_classes: 2,
        ..s
    })
    .unwrap();
    let fresh = deepgalaxy_models::Weights::init(&graph, 7, &candle_core::Device::Cpu)
        .unwrap()
        .tensors();
    let same = |out: &Path, name: &str| {
        let ck = load(&checkpoint_dir(out), &candle_core::Device::Cpu).unwrap();
        let a = ck.weights.tensors()[name]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        a == fresh[name].flatten_all().unwrap().to_vec1::<f32>().unwrap()
    };
    // epoch 1: the whole encoder is frozen, the heads train
    assert!(same(&out, "encoder.stage0.conv0.conv.weight"));
    assert!(same(&out, "encoder.stage1.conv0.conv.weight"));
    assert!(!same(&out, "classifier.linear.weight"));
    // epoch 2: the top stage opens, the bottom one stays
    resume(
        &out,
        &ResumeChanges {
            epochs: Some(2),
            ..ResumeChanges::default()
        },
        &Quiet,
        &no_stop(),
    )
    .unwrap();
    assert!(same(&out, "encoder.stage0.conv0.conv.weight"));
    assert!(!same(&out, "encoder.stage1.conv0.conv.weight"));
}

#[test]
fn initial_weights_load_where_name_and_shape_match() {
    let tmp = tempfile::tempdir().unwrap();
    let data = catalog(tmp.path(), 16, 2);
    let donor = deepgalaxy_models::Graph::build(&ModelSpec {
        num_classes: 2,
        ..spec(0.0)
    })
    .unwrap();
    let donor_w = deepgalaxy_models::Weights::init(&donor, 99, &candle_core::Device::Cpu).unwrap();
    let mut tensors: std::collections::HashMap<String, candle_core::Tensor> =
        donor_w.tensors().into_iter().collect();
    // a head of another shape (e.g. a different class count) is skipped, not forced
    tensors.insert(
        "classifier.linear.weight".into(),
        candle_core::Tensor::zeros((9, 16), candle_core::DType::F32, &candle_core::Device::Cpu)
            .unwrap(),
    );
    struct Record(std::sync::Mutex<(usize, Vec<String>)>);
    impl deepgalaxy_train::Observer for Record {
        fn initialised(&self, loaded: &[String], skipped: &[String]) {
            *self.0.lock().unwrap() = (loaded.len(), skipped.to_vec());
        }
    }
    let rec = Record(std::sync::Mutex::new((0, vec![])));
    let out = tmp.path().join("run");
    let cfg = TrainConfig {
        max_steps: Some(0),
        ..config(&data, &out)
    };
    deepgalaxy_train::train_from(spec(0.0), cfg, Some(&tensors), &rec, &no_stop()).unwrap();
    let (loaded, skipped) = rec.0.lock().unwrap().clone();
    assert_eq!(loaded, tensors.len() - 1);
    assert_eq!(skipped.len(), 1);
    assert!(
        skipped[0].contains("classifier.linear.weight: shape [9, 16], this model has [2, 16]"),
        "{skipped:?}"
    );
    let ck = load(&checkpoint_dir(&out), &candle_core::Device::Cpu).unwrap();
    let t = ck.weights.tensors();
    for name in [
        "encoder.stage0.conv0.conv.weight",
        "vae.mu.weight",
        "decoder.out.bias",
    ] {
        assert_eq!(
            t[name].flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            donor_w.tensors()[name]
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
            "{name}"
        );
    }
}

#[test]
fn named_simulations_are_held_out_and_unknown_ones_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = catalog(tmp.path(), 16, 2);
    let out = tmp.path().join("run");
    let mut cfg = config(&data, &out);
    cfg.max_steps = Some(1);
    cfg.val_simulations = vec!["sim2".into(), "sim0".into(), "sim2".into()];
    train(spec(0.0), cfg.clone(), &Quiet, &no_stop()).unwrap();
    let state = load(&checkpoint_dir(&out), &candle_core::Device::Cpu)
        .unwrap()
        .state;
    assert_eq!(state.split.val_simulations, ["sim0", "sim2"]);
    // catalog() puts image i in simulation i % 4
    assert!(state.split.val.iter().all(|i| i % 2 == 0));
    assert_eq!(state.split.val.len(), 8);
    assert_eq!(state.split.train.len(), 8);

    cfg.out = tmp.path().join("run2");
    cfg.val_simulations = vec!["sim9".into()];
    let err = train(spec(0.0), cfg.clone(), &Quiet, &no_stop())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("catalog.csv") && err.contains("sim9") && err.contains("sim0, sim1"),
        "{err}"
    );
    cfg.val_simulations = ["sim0", "sim1", "sim2", "sim3"].map(String::from).to_vec();
    let err = train(spec(0.0), cfg.clone(), &Quiet, &no_stop())
        .unwrap_err()
        .to_string();
    assert!(err.contains("none is left to train on"), "{err}");
    cfg.val_simulations = vec!["sim1".into()];
    cfg.split = deepgalaxy_train::split::SplitKind::Random;
    let err = train(spec(0.0), cfg, &Quiet, &no_stop())
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs the by-simulation split"), "{err}");
}

#[test]
fn a_negative_label_sigma_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = catalog(tmp.path(), 16, 2);
    let mut cfg = config(&data, &tmp.path().join("run"));
    cfg.loss.label_sigma = -1.0;
    let err = train(spec(0.0), cfg, &Quiet, &no_stop())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("label sigma -1 must be zero or positive"),
        "{err}"
    );
}
