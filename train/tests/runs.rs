//! A run is never lost: it saves only into the folder it is resumed from (so a copy can be
//! resumed without touching the original, from any working directory), a new run refuses a
//! folder that holds one, a resume changes only what it is told to, and a damaged `state.json`
//! is refused before training.

mod common;

use std::path::Path;

use common::{catalog, config, no_stop, one_step_run, spec};
use deepgalaxy_train::checkpoint::{checkpoint_dir, load, load_state};
use deepgalaxy_train::trainer::Quiet;
use deepgalaxy_train::{resume, train, Outcome, ResumeChanges, TrainConfig};

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn a_copied_run_resumes_into_the_copy_and_the_original_is_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let data = catalog(tmp.path(), 16, 2);
    let original = tmp.path().join("run");
    let cfg = TrainConfig {
        epochs: 2,
        max_steps: Some(1),
        ..config(&data, &original)
    };
    train(spec(0.0), cfg, &Quiet, &no_stop()).unwrap();
    let before = files(&checkpoint_dir(&original));
    // state.json keeps the paths relative to the run folder
    let text = std::fs::read_to_string(checkpoint_dir(&original).join("state.json")).unwrap();
    let raw: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(raw["config"]["data"], "../catalog.csv");
    assert_eq!(raw["config"]["out"], ".");

    // a copy beside the original finds the same data and saves only into itself
    let copy = tmp.path().join("copy");
    copy_dir(&original, &copy);
    let extend = ResumeChanges {
        max_steps: Some(None),
        ..ResumeChanges::default()
    };
    assert_eq!(
        resume(&copy, &extend, &Quiet, &no_stop()).unwrap(),
        Outcome::Finished
    );
    assert_eq!(files(&checkpoint_dir(&original)), before);
    let state = load_state(&checkpoint_dir(&copy)).unwrap();
    assert_eq!(
        (state.epoch, state.config.out.as_path()),
        (2, copy.as_path())
    );
    assert!(copy.join("metrics.csv").is_file());

    // a copy at another depth no longer reaches the data by the stored path: the error says
    // how to point at it, and --data does (the digest proves it is the same file)
    let deep = tmp.path().join("a").join("b").join("run");
    copy_dir(&original, &deep);
    let err = resume(&deep, &extend, &Quiet, &no_stop())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("state.json") && err.contains("is not there") && err.contains("--data"),
        "{err}"
    );
    let moved = ResumeChanges {
        data: Some(data.clone()),
        ..extend
    };
    assert_eq!(
        resume(&deep, &moved, &Quiet, &no_stop()).unwrap(),
        Outcome::Finished
    );
    assert_eq!(files(&checkpoint_dir(&original)), before);
}

#[test]
fn a_new_run_refuses_a_folder_holding_one_unless_told_to_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let data = catalog(tmp.path(), 16, 2);
    let out = tmp.path().join("run");
    let cfg = TrainConfig {
        max_steps: Some(1),
        ..config(&data, &out)
    };
    train(spec(0.0), cfg.clone(), &Quiet, &no_stop()).unwrap();
    let before = files(&checkpoint_dir(&out));
    let err = train(spec(0.0), cfg.clone(), &Quiet, &no_stop())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!(
            "{}: already holds a training run (epoch 0 of 1, step 1)",
            out.display()
        )) && err.contains("--resume")
            && err.contains("--overwrite"),
        "{err}"
    );
    assert_eq!(files(&checkpoint_dir(&out)), before);
    let again = TrainConfig {
        overwrite: true,
        seed: 8,
        ..cfg
    };
    train(spec(0.0), again, &Quiet, &no_stop()).unwrap();
    assert_ne!(files(&checkpoint_dir(&out)), before);
    // the instruction is not part of the run: it is not saved
    let text = std::fs::read_to_string(checkpoint_dir(&out).join("state.json")).unwrap();
    assert!(!text.contains("overwrite"), "{text}");
}

#[test]
fn resuming_keeps_the_runs_epochs_unless_told() {
    let tmp = tempfile::tempdir().unwrap();
    let data = catalog(tmp.path(), 16, 2);
    let out = tmp.path().join("run");
    let cfg = TrainConfig {
        epochs: 3,
        max_steps: Some(1),
        ..config(&data, &out)
    };
    train(spec(0.0), cfg, &Quiet, &no_stop()).unwrap();
    let extend = ResumeChanges {
        max_steps: Some(None),
        ..ResumeChanges::default()
    };
    resume(&out, &extend, &Quiet, &no_stop()).unwrap();
    let state = load_state(&checkpoint_dir(&out)).unwrap();
    assert_eq!((state.epoch, state.config.epochs), (3, 3));
}

#[test]
fn a_damaged_state_json_is_refused_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = one_step_run(tmp.path());
    let path = checkpoint_dir(&out).join("state.json");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    type Case<'a> = (&'a str, Box<dyn Fn(&mut serde_json::Value)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "batch size 0",
            Box::new(|s| s["config"]["batch_size"] = 0.into()),
            "batch size must be at least 2",
        ),
        (
            "split index out of range",
            Box::new(|s| s["split"]["train"][0] = 99999.into()),
            "the split names image 99999, but the data holds 16 images",
        ),
        (
            "class times of the wrong length",
            Box::new(|s| s["class_t_myr"] = serde_json::json!([1.0, 2.0, 3.0])),
            "class_t_myr holds 3 times for 2 classes",
        ),
        (
            "batch past the epoch",
            Box::new(|s| s["batch_in_epoch"] = 500.into()),
            "batch 500 of the epoch is past its",
        ),
        (
            "history shorter than the epochs done",
            Box::new(|s| s["epoch"] = 3.into()),
            "3 epoch(s) done but 0 in the history",
        ),
    ];
    for (name, edit, expected) in cases {
        let mut s = state.clone();
        edit(&mut s);
        std::fs::write(&path, serde_json::to_string(&s).unwrap()).unwrap();
        let before = files(&checkpoint_dir(&out));
        let err = match resume(&out, &ResumeChanges::default(), &Quiet, &no_stop()) {
            Err(e) => e.to_string(),
            Ok(o) => panic!("{name}: resumed ({o:?})"),
        };
        assert!(
            err.contains("state.json") && err.contains(expected),
            "{name}: {err}"
        );
        assert_eq!(files(&checkpoint_dir(&out)), before, "{name}");
    }
    // the intact state resumes
    std::fs::write(&path, serde_json::to_string(&state).unwrap()).unwrap();
    let extend = ResumeChanges {
        max_steps: Some(Some(2)),
        ..ResumeChanges::default()
    };
    resume(&out, &extend, &Quiet, &no_stop()).unwrap();
    assert_eq!(
        load(&checkpoint_dir(&out), &candle_core::Device::Cpu)
            .unwrap()
            .state
            .step,
        2
    );
}
