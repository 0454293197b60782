//! Hyperparameter search (the paper chose its learning rate with Optuna): trials of a training
//! run with the learning rate, the label width and the backbone width drawn from a seeded
//! search space, each scored on the validation mergers (median absolute error of the expected
//! time), weak trials pruned early by the median rule, the results resumable trial by trial.
//!
//! The sampler is seeded random search: with a handful of trials it is as good as Optuna's
//! default TPE sampler, and its trials do not depend on each other's results, so a resumed
//! search draws exactly the trials it would have drawn. The pruner is Optuna's
//! `MedianPruner`: after each epoch from `warmup_epochs` on, a trial whose validation error is
//! worse than the median of the earlier trials' errors at the same epoch stops there.
//!
//! Test mergers are never seen: the base configuration's test set is kept out of every trial
//! exactly as `train` keeps it, and the objective reads validation metrics only.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::Result;
use deepgalaxy_core::io::write_atomic;
use deepgalaxy_core::Error;
use deepgalaxy_models::ModelSpec;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::checkpoint::EpochRecord;
use crate::config::TrainConfig;
use crate::trainer::{train, Observer, Outcome, StepInfo};

/// Where the searched values are drawn from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchSpace {
    /// Learning rate, drawn log-uniformly between the two.
    pub lr: (f64, f64),
    /// Width of the Gaussian targets in classes, drawn uniformly between the two.
    pub label_sigma: (f64, f64),
    /// Backbone width multipliers, one drawn with equal chances.
    pub widths: Vec<f32>,
}

impl SearchSpace {
    /// Checks the ranges are usable.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(crate::Error::from(Error::setting("search space", what)));
        let (lo, hi) = self.lr;
        if !(lo > 0.0 && lo <= hi && hi.is_finite()) {
            return bad(format!("learning rates {lo} to {hi}: need 0 < low <= high"));
        }
        let (lo, hi) = self.label_sigma;
        if !(lo >= 0.0 && lo <= hi && hi.is_finite()) {
            return bad(format!("label widths {lo} to {hi}: need 0 <= low <= high"));
        }
        if self.widths.is_empty() || self.widths.iter().any(|w| !(*w > 0.0 && w.is_finite())) {
            return bad(format!(
                "widths {:?}: need at least one, all positive",
                self.widths
            ));
        }
        Ok(())
    }

    /// Trial `n`'s values, drawn from (seed, n) alone.
    pub fn draw(&self, seed: u64, n: usize) -> Params {
        let mut rng =
            ChaCha8Rng::seed_from_u64(seed ^ (n as u64 + 1).wrapping_mul(0x7a5e_0f1e_3d2c_b9a7));
        let u: f64 = rng.random();
        let lr = (self.lr.0.ln() + u * (self.lr.1.ln() - self.lr.0.ln())).exp();
        let v: f64 = rng.random();
        let label_sigma = self.label_sigma.0 + v * (self.label_sigma.1 - self.label_sigma.0);
        let width = self.widths[rng.random_range(0..self.widths.len())];
        Params {
            lr,
            label_sigma,
            width,
        }
    }
}

/// One trial's values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Params {
    /// Learning rate.
    pub lr: f64,
    /// Width of the Gaussian targets in classes.
    pub label_sigma: f64,
    /// Backbone width multiplier.
    pub width: f32,
}

/// How a trial ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Trained every epoch.
    Complete,
    /// Stopped by the median rule.
    Pruned,
    /// Training failed (the error is recorded); the search goes on.
    Failed,
}

/// A finished trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// Its number, from 0.
    pub number: usize,
    /// Its values.
    pub params: Params,
    /// How it ended.
    pub status: Status,
    /// Validation median absolute error of the expected time after each epoch, Myr.
    pub curve: Vec<f64>,
    /// Its objective: the last epoch's validation median absolute error, Myr.
    pub value: Option<f64>,
    /// Why it failed.
    pub error: Option<String>,
}

/// A search: what it trains and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TuneConfig {
    /// The network of every trial before its width is applied.
    pub spec: ModelSpec,
    /// The training run every trial starts from (its folder is the search's).
    pub base: TrainConfig,
    /// The values searched.
    pub space: SearchSpace,
    /// Trials in all.
    pub trials: usize,
    /// Seed of the draws.
    pub seed: u64,
    /// Epochs before pruning may stop a trial.
    pub warmup_epochs: usize,
}

/// The search's files in its folder: the configuration, and the trials so far.
const CONFIG: &str = "tune.json";
const TRIALS: &str = "trials.json";

/// The median rule: prune `value` at `epoch` (1-based) when at least two earlier trials
/// reached that epoch and `value` is worse than their median there.
pub fn should_prune(earlier: &[Trial], epoch: usize, value: f64) -> bool {
    let at: Vec<f64> = earlier
        .iter()
        .filter_map(|t| t.curve.get(epoch - 1).copied())
        .filter(|v| v.is_finite())
        .collect();
    at.len() >= 2 && value > deepgalaxy_core::time::median(&at)
}

/// Reports a search's progress (the command line prints it).
pub trait TuneObserver: Sync {
    /// A trial starts.
    fn trial_start(&self, _number: usize, _params: &Params) {}
    /// A trial's epoch ended with this validation error.
    fn epoch(&self, _number: usize, _epoch: usize, _value: f64) {}
    /// A trial ended.
    fn trial_end(&self, _trial: &Trial) {}
}

/// Watches one trial's epochs: records the curve, prunes by the median rule, and passes the
/// user's stop request on to the trial.
struct Watch<'a> {
    earlier: &'a [Trial],
    number: usize,
    warmup: usize,
    curve: Mutex<Vec<f64>>,
    pruned: AtomicBool,
    trial_stop: &'a AtomicBool,
    user_stop: &'a AtomicBool,
    report: &'a dyn TuneObserver,
}

impl Observer for Watch<'_> {
    fn step(&self, _: &StepInfo) {
        if self.user_stop.load(Ordering::Relaxed) {
            self.trial_stop.store(true, Ordering::Relaxed);
        }
    }

    fn epoch_end(&self, r: &EpochRecord) {
        let value = r.val.as_ref().map_or(f64::NAN, |v| v.median_abs_myr);
        if let Ok(mut c) = self.curve.lock() {
            c.push(value);
        }
        self.report.epoch(self.number, r.epoch, value);
        if r.epoch >= self.warmup && should_prune(self.earlier, r.epoch, value) {
            self.pruned.store(true, Ordering::Relaxed);
            self.trial_stop.store(true, Ordering::Relaxed);
        }
    }
}

/// Runs (or continues) the search in `out`: trials already recorded there are kept, the rest
/// are run in order. A search started with other settings is refused. Returns every trial;
/// stops early, with the trials so far, when `user_stop` is set (the unfinished trial runs
/// again from its start next time).
pub fn tune(
    cfg: &TuneConfig,
    out: &Path,
    report: &dyn TuneObserver,
    user_stop: &AtomicBool,
) -> Result<Vec<Trial>> {
    cfg.space.validate()?;
    if cfg.base.val_fraction == 0.0 && cfg.base.val_simulations.is_empty() {
        return Err(Error::setting(
            "tune",
            "trials are scored on validation mergers: give --val-fraction or --val-simulations",
        )
        .into());
    }
    deepgalaxy_core::io::create_dir_all(out)?;
    let mut trials = open(cfg, out)?;
    for number in trials.len()..cfg.trials {
        if user_stop.load(Ordering::Relaxed) {
            break;
        }
        let params = cfg.space.draw(cfg.seed, number);
        report.trial_start(number, &params);
        let mut spec = cfg.spec.clone();
        spec.backbone = cfg.spec.backbone.scaled(params.width);
        let mut run = cfg.base.clone();
        run.out = trial_dir(out, number);
        run.schedule.lr = params.lr;
        run.loss.label_sigma = params.label_sigma;
        run.overwrite = true;
        let trial_stop = AtomicBool::new(false);
        let watch = Watch {
            earlier: &trials,
            number,
            warmup: cfg.warmup_epochs.max(1),
            curve: Mutex::new(Vec::new()),
            pruned: AtomicBool::new(false),
            trial_stop: &trial_stop,
            user_stop,
            report,
        };
        let outcome = train(spec, run, &watch, &trial_stop);
        let curve = watch.curve.into_inner().unwrap_or_default();
        let pruned = watch.pruned.load(Ordering::Relaxed);
        let (status, error) = match outcome {
            Ok(Outcome::Interrupted) if !pruned => break,
            Ok(Outcome::Interrupted) => (Status::Pruned, None),
            Ok(_) => (Status::Complete, None),
            Err(e) => (
                Status::Failed,
                Some(deepgalaxy_core::error::with_sources(&e)),
            ),
        };
        let value = curve.last().copied().filter(|v| v.is_finite());
        let trial = Trial {
            number,
            params,
            status,
            curve,
            value,
            error,
        };
        report.trial_end(&trial);
        trials.push(trial);
        save_json(&out.join(TRIALS), &trials)?;
        write_reports(out, &trials)?;
    }
    Ok(trials)
}

/// `trials.md` (the table) and `trials.png` (every trial's validation curve) in `out`.
pub fn write_reports(out: &Path, trials: &[Trial]) -> Result<()> {
    let md = to_markdown(trials);
    write_atomic(&out.join("trials.md"), |f| {
        std::io::Write::write_all(f, md.as_bytes())
    })?;
    let curves: Vec<(String, Vec<f64>)> = trials
        .iter()
        .map(|t| {
            let status = format!("{:?}", t.status).to_lowercase();
            (format!("trial {} ({status})", t.number), t.curve.clone())
        })
        .collect();
    crate::plots::trials(&out.join("trials.png"), &curves)
}

/// The folder of trial `n`'s run.
pub fn trial_dir(out: &Path, n: usize) -> PathBuf {
    out.join(format!("trial-{n:03}"))
}

/// The trials already in `out`, after checking the search there (if any) is this one.
fn open(cfg: &TuneConfig, out: &Path) -> Result<Vec<Trial>> {
    let config = out.join(CONFIG);
    let mut recorded = cfg.clone();
    if config.exists() {
        let text = std::fs::read_to_string(&config).map_err(|e| Error::io(&config, e))?;
        let before: TuneConfig = serde_json::from_str(&text)
            .map_err(|e| Error::invalid(&config, format!("not a search configuration: {e}")))?;
        // only the number of trials may grow
        recorded.trials = before.trials;
        if before != recorded {
            return Err(Error::invalid(
                &config,
                "a search with other settings is in this folder: choose another --out (only --trials may change when continuing)",
            ).into());
        }
    }
    save_json(&config, cfg)?;
    let path = out.join(TRIALS);
    if !path.exists() {
        return Ok(vec![]);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| Error::invalid(&path, format!("not a list of trials: {e}")).into())
}

fn save_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_vec_pretty(value)
        .map_err(|e| Error::invalid(path, format!("cannot serialise: {e}")))?;
    write_atomic(path, |f| std::io::Write::write_all(f, &text)).map_err(Into::into)
}

/// The best trial: the lowest objective among complete trials.
pub fn best(trials: &[Trial]) -> Option<&Trial> {
    trials
        .iter()
        .filter(|t| t.status == Status::Complete)
        .filter_map(|t| t.value.map(|v| (t, v)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(t, _)| t)
}

/// The trials as a Markdown table, best first among the complete ones.
pub fn to_markdown(trials: &[Trial]) -> String {
    let mut md = String::from(
        "| trial | learning rate | label width (classes) | backbone width | status | epochs | validation median abs. error (Myr) |\n| --- | --- | --- | --- | --- | --- | --- |\n",
    );
    let mut order: Vec<&Trial> = trials.iter().collect();
    order.sort_by(|a, b| {
        let key = |t: &Trial| {
            (
                t.status != Status::Complete,
                t.value.unwrap_or(f64::INFINITY),
            )
        };
        let (ka, kb) = (key(a), key(b));
        ka.0.cmp(&kb.0).then(ka.1.total_cmp(&kb.1))
    });
    for t in order {
        let status = match (&t.status, &t.error) {
            (Status::Failed, Some(e)) => format!("failed: {e}"),
            (s, _) => format!("{s:?}").to_lowercase(),
        };
        md += &format!(
            "| {} | {:.2e} | {:.2} | {} | {status} | {} | {} |\n",
            t.number,
            t.params.lr,
            t.params.label_sigma,
            t.params.width,
            t.curve.len(),
            t.value.map_or("-".into(), |v| format!("{v:.1}"))
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(curve: &[f64]) -> Trial {
        Trial {
            number: 0,
            params: Params {
                lr: 1e-3,
                label_sigma: 1.0,
                width: 1.0,
            },
            status: Status::Complete,
            curve: curve.to_vec(),
            value: curve.last().copied(),
            error: None,
        }
    }

    #[test]
    fn the_median_rule_needs_two_earlier_trials_at_the_epoch() {
        let earlier = [trial(&[30.0, 20.0]), trial(&[40.0]), trial(&[35.0, 25.0])];
        // epoch 1: median of 30, 40, 35 is 35
        assert!(should_prune(&earlier, 1, 36.0));
        assert!(!should_prune(&earlier, 1, 35.0));
        // epoch 2: median of 20 and 25
        assert!(should_prune(&earlier, 2, 23.0));
        assert!(!should_prune(&earlier, 2, 22.5));
        // epoch 3: nobody got there
        assert!(!should_prune(&earlier, 3, 1e9));
        assert!(!should_prune(&earlier[..1], 1, 1e9));
    }

    #[test]
    fn draws_stay_in_the_space_and_depend_on_seed_and_number_only() {
        let space = SearchSpace {
            lr: (1e-4, 1e-2),
            label_sigma: (0.5, 3.0),
            widths: vec![0.5, 1.0, 2.0],
        };
        space.validate().unwrap();
        let draws: Vec<Params> = (0..200).map(|n| space.draw(9, n)).collect();
        for p in &draws {
            assert!((1e-4..=1e-2).contains(&p.lr), "{p:?}");
            assert!((0.5..=3.0).contains(&p.label_sigma), "{p:?}");
            assert!(space.widths.contains(&p.width), "{p:?}");
        }
        assert_eq!(space.draw(9, 17), draws[17]);
        assert_ne!(space.draw(10, 17), draws[17]);
        // log-uniform: about half the rates below the geometric middle, 1e-3
        let low = draws.iter().filter(|p| p.lr < 1e-3).count();
        assert!((70..130).contains(&low), "{low}");
        for w in [0.5, 1.0, 2.0] {
            assert!(draws.iter().filter(|p| p.width == w).count() > 40);
        }
        let bad = SearchSpace {
            lr: (0.0, 1.0),
            ..space.clone()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn the_best_is_the_lowest_complete_trial() {
        let mut a = trial(&[30.0, 12.0]);
        a.number = 0;
        let mut b = trial(&[8.0]);
        b.number = 1;
        b.status = Status::Pruned;
        let mut c = trial(&[25.0, 10.0]);
        c.number = 2;
        let all = [a, b, c];
        assert_eq!(best(&all).map(|t| t.number), Some(2));
        let md = to_markdown(&all);
        let rows: Vec<&str> = md.lines().skip(2).collect();
        assert!(
            rows[0].starts_with("| 2 |") && rows[2].contains("pruned"),
            "{md}"
        );
    }
}
