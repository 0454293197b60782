//! `deepgalaxy tune`: a hyperparameter search over `train`'s runs; the search, its pruning and
//! its files are deepgalaxy-train's (`tune`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use deepgalaxy_train::tune::{
    best, trial_dir, tune, Params, SearchSpace, Trial, TuneConfig, TuneObserver,
};

use crate::train::TrainArgs;

/// Search the learning rate, the label width and the backbone width on the validation mergers.
#[derive(Debug, clap::Args)]
pub struct TuneArgs {
    /// The training run every trial is (its --out is the search's folder; --lr and
    /// --label-sigma are replaced by each trial's draws).
    #[command(flatten)]
    pub train: TrainArgs,
    /// Trials in all (a search continued in the same --out keeps its trials and runs the rest).
    #[arg(long, default_value_t = 12)]
    pub trials: usize,
    /// Lowest learning rate (drawn log-uniformly).
    #[arg(long, default_value_t = 3e-4)]
    pub lr_min: f64,
    /// Highest learning rate.
    #[arg(long, default_value_t = 1e-2)]
    pub lr_max: f64,
    /// Narrowest Gaussian target, in classes.
    #[arg(long, default_value_t = 0.5)]
    pub label_sigma_min: f64,
    /// Widest Gaussian target, in classes.
    #[arg(long, default_value_t = 3.0)]
    pub label_sigma_max: f64,
    /// Backbone width multipliers to choose from.
    #[arg(long, value_delimiter = ',', default_value = "0.5,1,2")]
    pub widths: Vec<f32>,
    /// Epochs every trial trains before the median rule may stop it.
    #[arg(long, default_value_t = 2)]
    pub prune_after: usize,
}

struct Report;

impl TuneObserver for Report {
    fn trial_start(&self, n: usize, p: &Params) {
        eprintln!(
            "trial {n}: learning rate {:.2e}, label width {:.2}, backbone width {}",
            p.lr, p.label_sigma, p.width
        );
    }
    fn epoch(&self, n: usize, epoch: usize, value: f64) {
        eprintln!("  trial {n} epoch {epoch}: validation median |error| {value:.1} Myr");
    }
    fn trial_end(&self, t: &Trial) {
        eprintln!(
            "  trial {} {:?}: {}",
            t.number,
            t.status,
            t.value.map_or("no score".into(), |v| format!("{v:.1} Myr"))
        );
    }
}

/// Runs `tune`.
pub fn run(args: &TuneArgs) -> anyhow::Result<()> {
    let t = &args.train;
    anyhow::ensure!(
        !t.resume,
        "tune continues a search by itself: run it again with the same --out (drop --resume)"
    );
    anyhow::ensure!(
        !t.distributed,
        "tune runs its trials in one process (drop --distributed)"
    );
    let data = t
        .data
        .clone()
        .ok_or_else(|| anyhow::anyhow!("--data is required"))?;
    let (spec, mut base) = crate::train::build(t, data)?;
    base.overwrite = false;
    let cfg = TuneConfig {
        spec,
        base,
        space: SearchSpace {
            lr: (args.lr_min, args.lr_max),
            label_sigma: (args.label_sigma_min, args.label_sigma_max),
            widths: args.widths.clone(),
        },
        trials: args.trials,
        seed: t.seed,
        warmup_epochs: args.prune_after,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstopping the trial after this step (run again with the same --out to go on)");
    });
    let trials = tune(&cfg, &t.out, &Report, &stop)?;
    println!(
        "{} of {} trials done; trials.md and trials.png in {}",
        trials.len(),
        args.trials,
        t.out.display()
    );
    if let Some(b) = best(&trials) {
        println!(
            "best: trial {} (validation median |error| {:.1} Myr): --lr {:e} --label-sigma {:.3} and backbone width {}; its run is in {}",
            b.number,
            b.value.unwrap_or(f64::NAN),
            b.params.lr,
            b.params.label_sigma,
            b.params.width,
            trial_dir(&t.out, b.number).display()
        );
    }
    Ok(())
}
