//! The search runs its trials, records them, prunes by the median rule, continues where it
//! stopped, and refuses to mix two searches in one folder.

mod common;

use std::sync::atomic::AtomicBool;

use common::{catalog, config, spec};
use deepgalaxy_train::tune::{tune, SearchSpace, Status, TuneConfig, TuneObserver};

struct Quiet;
impl TuneObserver for Quiet {}

#[test]
fn trials_are_recorded_continued_and_never_mixed() {
    let tmp = tempfile::tempdir().unwrap();
    let data = catalog(tmp.path(), 32, 2);
    let out = tmp.path().join("search");
    let mut base = config(&data, &out);
    base.epochs = 3;
    let cfg = TuneConfig {
        spec: spec(0.0),
        base,
        space: SearchSpace {
            lr: (1e-4, 1e-2),
            label_sigma: (0.0, 2.0),
            widths: vec![0.5, 1.0],
        },
        trials: 3,
        seed: 5,
        warmup_epochs: 1,
    };
    let go = AtomicBool::new(false);
    let first = tune(&cfg, &out, &Quiet, &go).unwrap();
    assert_eq!(first.len(), 3);
    for (n, t) in first.iter().enumerate() {
        assert_eq!(t.number, n);
        assert_eq!(t.params, cfg.space.draw(5, n));
        assert!(t.error.is_none(), "{t:?}");
        // a trial runs every epoch unless the median rule stopped it
        match t.status {
            Status::Complete => assert_eq!(t.curve.len(), 3),
            Status::Pruned => assert!(t.curve.len() < 3 && n >= 2),
            Status::Failed => panic!("{t:?}"),
        }
        assert!(t.curve.iter().all(|v| v.is_finite() && *v >= 0.0), "{t:?}");
        assert!(out.join(format!("trial-{n:03}/checkpoint")).is_dir());
    }
    // the first two trials have no earlier trials to be compared with
    assert_eq!(first[0].status, Status::Complete);
    assert_eq!(first[1].status, Status::Complete);
    for f in ["tune.json", "trials.json", "trials.md", "trials.png"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    // more trials: the three recorded are kept, one more is run
    let more = TuneConfig {
        trials: 4,
        ..cfg.clone()
    };
    let second = tune(&more, &out, &Quiet, &go).unwrap();
    assert_eq!(second.len(), 4);
    assert_eq!(second[..3], first[..]);
    // another search space in the same folder is refused
    let other = TuneConfig {
        seed: 6,
        ..cfg.clone()
    };
    let err = tune(&other, &out, &Quiet, &go).unwrap_err().to_string();
    assert!(
        err.contains("tune.json") && err.contains("other settings"),
        "{err}"
    );
    // a damaged record of the trials is an error naming it, not a fresh start
    std::fs::write(out.join("trials.json"), b"[{\"number\": ").unwrap();
    let err = tune(&more, &out, &Quiet, &go).unwrap_err().to_string();
    assert!(
        err.contains("trials.json") && err.contains("not a list of trials"),
        "{err}"
    );
    // trials need validation mergers to be scored on
    let mut blind = cfg.clone();
    blind.base.val_fraction = 0.0;
    let err = tune(&blind, &tmp.path().join("blind"), &Quiet, &go)
        .unwrap_err()
        .to_string();
    assert!(err.contains("validation mergers"), "{err}");
}
