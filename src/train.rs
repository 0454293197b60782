//! `deepgalaxy train`: arguments, progress bars and Ctrl-C; the work is deepgalaxy-train's.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use clap::ValueEnum;
use deepgalaxy_core::preprocess::{Preprocess, Scale, Stretch};
use deepgalaxy_core::time::TimeTarget;
use deepgalaxy_models::{Backbone, ModelSpec};
use deepgalaxy_train::augment::Augment;
use deepgalaxy_train::checkpoint::EpochRecord;
use deepgalaxy_train::distributed::{LrScaling, Parallel};
use deepgalaxy_train::optim::OptimizerKind;
use deepgalaxy_train::schedule::{Schedule, ScheduleKind};
use deepgalaxy_train::split::{SplitKind, TestSet};
use deepgalaxy_train::trainer::StepInfo;
use deepgalaxy_train::{Heads, LossWeights, Observer, Outcome, ResumeChanges, TrainConfig};
use indicatif::{ProgressBar, ProgressStyle};

/// Validation split.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum SplitArg {
    /// Hold out whole simulations (no other view or neighbouring snapshot leaks into training).
    BySimulation,
    /// The paper's per-image random 80/20 split, for comparison (optimistic).
    Random,
}

/// What time the classes stand for.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum TargetArg {
    /// Time relative to the merger's first pericentre, in 5 Myr bins (catalog `t_peri_myr`).
    TPeri,
    /// The paper's snapshot class, time since the simulation started (`label`, `t_myr`).
    Snapshot,
}

/// Learning-rate schedule.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ScheduleArg {
    /// Constant.
    Constant,
    /// Halve every quarter of the run.
    Step,
    /// Cosine decay to zero.
    Cosine,
}

/// How the learning rate follows the number of ranks.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LrScalingArg {
    /// Keep the given rate.
    None,
    /// Multiply it by the number of ranks (use with a warm-up).
    Linear,
    /// Multiply it by the square root of the number of ranks.
    Sqrt,
}

/// Intensity stretch applied in preprocessing.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PreprocessStretch {
    /// None (simulated images are stretched when rendered).
    Linear,
    /// DS9's log (a = 1000).
    Log,
    /// asinh (beta = 0.1).
    Asinh,
}

/// Train the encoder with its classifier, autoencoder and VAE heads.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// A catalog.csv or an original-layout HDF5 file. With --resume: the run's data at a new
    /// path, if it moved (it must be the same file).
    #[arg(long, required_unless_present = "resume")]
    pub data: Option<PathBuf>,
    /// Output folder: checkpoint/, metrics.jsonl, metrics.csv, curves.png, confusion.png.
    #[arg(long)]
    pub out: PathBuf,
    /// Encoder: simple, resnet (ResNet-18 layout, width 0.25) or efficientnet (B0, 0.5/0.5).
    #[arg(long, default_value = "simple", conflicts_with = "resume")]
    pub backbone: String,
    /// Width multiplier: resnet's over ResNet-18's 64-512 channels (default 0.25; 1 is the
    /// published ResNet-18), efficientnet's over B0's (default 0.5), simple's over its 16-128
    /// channels (default 1; rounded, at least 4). Recorded in the spec, checkpoint and card.
    #[arg(long, value_parser = crate::run_args::positive_f32, conflicts_with = "resume")]
    pub width: Option<f32>,
    /// Image side the network sees (a multiple of the backbone's stride: 16 simple, 32 others).
    #[arg(long, default_value_t = 64, conflicts_with = "resume")]
    pub image_size: u32,
    /// Input channels (1 grey, 3 RGB).
    #[arg(long, default_value_t = 1, conflicts_with = "resume")]
    pub channels: u32,
    /// Preprocessing stretch.
    #[arg(long, value_enum, default_value = "linear", conflicts_with = "resume")]
    pub stretch: PreprocessStretch,
    /// Which raw values become 0 and 1 before the stretch: `auto` (8/16-bit: the type's
    /// range; FITS and floats: the image's 0.5 and 99.5 percentiles), `minmax`,
    /// `percentile:LOW,HIGH` (of each image) or `fixed:LOW,HIGH` (one physical scale for every
    /// image, e.g. `fixed:0,2000` on `simulate --format fits` surface brightness, Lsun/pc^2).
    #[arg(long, default_value = "auto", value_parser = parse_scale, conflicts_with = "resume")]
    pub scale: Scale,
    /// Epochs in total [default: 10; with --resume: the run's own].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Images per step.
    #[arg(long, default_value_t = 16, conflicts_with = "resume")]
    pub batch_size: usize,
    /// Stop after this many optimizer steps (a checkpoint is written).
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// Heads in the loss: any of classifier,autoencoder,vae.
    #[arg(
        long,
        default_value = "classifier,autoencoder,vae",
        conflicts_with = "resume"
    )]
    pub heads: String,
    /// Keep the encoder fixed (train the heads only).
    #[arg(long, conflicts_with = "resume")]
    pub freeze_encoder: bool,
    /// Start from the weights of an exported model (every initialiser whose name and shape
    /// match; the loaded and skipped ones are listed).
    #[arg(long, conflicts_with = "resume")]
    pub init_from: Option<PathBuf>,
    /// Progressive unfreezing: start with the encoder frozen and open one more stage, from the
    /// top down, every K epochs.
    #[arg(long, value_name = "K", conflicts_with = "resume")]
    pub unfreeze_every: Option<usize>,
    /// Validation split.
    #[arg(
        long,
        value_enum,
        default_value = "by-simulation",
        conflicts_with = "resume"
    )]
    pub split: SplitArg,
    /// Fraction held out (of the simulations, for by-simulation).
    #[arg(long, default_value_t = 0.2, conflicts_with = "resume")]
    pub val_fraction: f64,
    /// Simulations to hold out, by name (e.g. s_1_m_1,s_0.75_m_1.25), instead of drawing
    /// `--val-fraction` of them at random.
    #[arg(
        long,
        value_delimiter = ',',
        conflicts_with = "val_fraction",
        conflicts_with = "resume"
    )]
    pub val_simulations: Vec<String>,
    /// Test simulations by name: kept out of training and validation, scored only by
    /// `deepgalaxy evaluate` (their names go into the model card).
    #[arg(long, value_delimiter = ',', conflicts_with = "resume")]
    pub test_simulations: Vec<String>,
    /// Fraction of the simulations drawn (from --seed) as test simulations, when none are
    /// named; drawn before the validation split, so the same seed gives the same test mergers
    /// with either --split.
    #[arg(
        long,
        default_value_t = 0.0,
        conflicts_with = "test_simulations",
        conflicts_with = "resume"
    )]
    pub test_fraction: f64,
    /// What the classes stand for [default: t-peri where the catalog has `t_peri_myr`,
    /// snapshot otherwise].
    #[arg(long, value_enum, conflicts_with = "resume")]
    pub target: Option<TargetArg>,
    /// adam, adamw, sgd (momentum 0.9) or adadelta (the paper's, with --lr 8).
    #[arg(long, default_value = "adam", conflicts_with = "resume")]
    pub optimizer: String,
    /// Learning rate (default: 1e-3 for Adam/AdamW, 0.01 SGD, 1.0 AdaDelta).
    #[arg(long, conflicts_with = "resume")]
    pub lr: Option<f64>,
    /// Learning-rate schedule.
    #[arg(long, value_enum, default_value = "cosine", conflicts_with = "resume")]
    pub schedule: ScheduleArg,
    /// Linear warm-up steps.
    #[arg(long, default_value_t = 0, conflicts_with = "resume")]
    pub warmup: u64,
    /// KL weight of the VAE.
    #[arg(long, default_value_t = LossWeights::default().beta, conflicts_with = "resume")]
    pub beta: f64,
    /// Label smoothing of the cross-entropy.
    #[arg(long, default_value_t = 0.0, conflicts_with = "resume")]
    pub label_smoothing: f64,
    /// Ordinal targets: each label becomes a Gaussian of this width (in classes) over its
    /// neighbouring snapshots (0: one-hot).
    #[arg(long, default_value_t = 0.0, conflicts_with = "resume")]
    pub label_sigma: f64,
    /// VAE latent size (16 or 32 in the paper).
    #[arg(long, default_value_t = 16, conflicts_with = "resume")]
    pub latent_dim: usize,
    /// Dropout before the classifier.
    #[arg(long, default_value_t = 0.2, conflicts_with = "resume")]
    pub dropout: f32,
    /// Turn off flips and quarter turns.
    #[arg(long, conflicts_with = "resume")]
    pub no_augment: bool,
    /// Gaussian noise added to training images (pixel units, 0-1).
    #[arg(long, default_value_t = 0.0, conflicts_with = "resume")]
    pub noise: f32,
    /// Blur training images with a Gaussian point-spread function whose FWHM, in pixels of
    /// the network's input, is drawn for each image from 0 to this (0: none).
    #[arg(long, default_value_t = 0.0, conflicts_with = "resume")]
    pub blur_fwhm: f32,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 0, conflicts_with = "resume")]
    pub seed: u64,
    /// Continue the run in --out from its checkpoint, with its own settings: only --epochs,
    /// --max-steps and --data (the same data moved) may be given, and change only themselves.
    #[arg(long)]
    pub resume: bool,
    /// Replace the run already in --out (without it, a folder holding a run is refused).
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
    /// Data-parallel training over MPI: launch with `mpirun -np N` (or `srun`); the global
    /// batch is N x --batch-size. Needs a build with the `mpi` feature.
    #[arg(long)]
    pub distributed: bool,
    /// Learning-rate scaling with the number of ranks.
    #[arg(long, value_enum, default_value = "none", conflicts_with = "resume")]
    pub lr_scaling: LrScalingArg,
    /// Linear warm-up over this many epochs (the longer of this and --warmup applies).
    #[arg(long, default_value_t = 0.0, conflicts_with = "resume")]
    pub warmup_epochs: f64,
    /// Split each rank's batch into this many micro-batches with their own batch-norm
    /// statistics (1 process with --micro-batches N computes what N ranks do).
    #[arg(long, default_value_t = 1, conflicts_with = "resume")]
    pub micro_batches: usize,
    /// Gradient fusion bucket size for allreduce, in MiB.
    #[arg(long, default_value_t = 25.0, conflicts_with = "resume")]
    pub bucket_mib: f64,
}

struct Bars {
    bar: Mutex<Option<ProgressBar>>,
}

impl Bars {
    fn with<F: FnOnce(&ProgressBar)>(&self, f: F) {
        if let Ok(b) = self.bar.lock() {
            if let Some(b) = b.as_ref() {
                f(b)
            }
        }
    }
    fn replace(&self, new: ProgressBar) {
        if let Ok(mut b) = self.bar.lock() {
            if let Some(old) = b.take() {
                old.finish_and_clear();
            }
            *b = Some(new);
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

impl Observer for Bars {
    fn loading(&self, done: usize, total: usize) {
        if done == 1 {
            let b = ProgressBar::new(total as u64).with_style(style(
                "loading images {bar:40} {pos}/{len} [{elapsed_precise}]",
            ));
            self.replace(b);
        }
        self.with(|b| b.set_position(done as u64));
    }
    fn epoch_start(&self, epoch: usize, batches: usize) {
        let b = ProgressBar::new(batches as u64).with_style(style(
            "epoch {prefix} {bar:30} {pos}/{len} [{elapsed_precise}<{eta}] {msg}",
        ));
        b.set_prefix(epoch.to_string());
        self.replace(b);
    }
    fn step(&self, s: &StepInfo) {
        self.with(|b| {
            b.set_position(s.batch as u64);
            b.set_message(format!(
                "loss {:.4} acc {:.3} {:.1} img/s",
                s.loss, s.accuracy, s.images_per_sec
            ));
        });
    }
    fn initialised(&self, loaded: &[String], skipped: &[String]) {
        eprintln!("initial weights: loaded {} tensor(s)", loaded.len());
        for s in skipped {
            eprintln!("  skipped {s}");
        }
    }
    fn epoch_end(&self, r: &EpochRecord) {
        let val = match &r.val {
            Some(v) => format!(
                "val |dt| median {:.1} mean {:.1} Myr, within 10 Myr {:.3}, 1-sigma coverage {:.3}; top-1 {:.3} within-2 {:.3}; recon {:.4} KL {:.2}",
                v.median_abs_myr, v.mae_myr, v.within_10_myr, v.coverage_1sigma, v.top1, v.within2, v.recon_mse, v.kl
            ),
            None => "no validation set".into(),
        };
        let line = format!(
            "epoch {}: train loss {:.4} acc {:.3}, {:.1} img/s; {val}",
            r.epoch, r.train_loss, r.train_top1, r.images_per_sec
        );
        // without a terminal the bar is hidden and so would be its println
        let mut shown = false;
        self.with(|b| {
            if !b.is_hidden() {
                b.println(&line);
                shown = true;
            }
        });
        if !shown {
            eprintln!("{line}");
        }
    }
}

fn optimizer(name: &str) -> anyhow::Result<OptimizerKind> {
    OptimizerKind::by_name(name).ok_or_else(|| {
        anyhow::anyhow!("optimizer `{name}` is not one of adam, adamw, sgd, adadelta")
    })
}

/// `--scale`: `auto`, `minmax`, `percentile:LOW,HIGH` or `fixed:LOW,HIGH`.
fn parse_scale(text: &str) -> Result<Scale, String> {
    let pair = |rest: &str| -> Result<(f32, f32), String> {
        let (a, b) = rest
            .split_once(',')
            .ok_or_else(|| format!("`{rest}`: expected LOW,HIGH"))?;
        let num = |x: &str| x.trim().parse::<f32>().map_err(|e| format!("`{x}`: {e}"));
        Ok((num(a)?, num(b)?))
    };
    let scale = match text.split_once(':') {
        None if text == "auto" => Scale::Auto,
        None if text == "minmax" => Scale::MinMax,
        Some(("percentile", rest)) => {
            let (low, high) = pair(rest)?;
            Scale::Percentile { low, high }
        }
        Some(("fixed", rest)) => {
            let (low, high) = pair(rest)?;
            Scale::Fixed { low, high }
        }
        _ => {
            return Err(format!(
                "`{text}` is not auto, minmax, percentile:LOW,HIGH or fixed:LOW,HIGH"
            ))
        }
    };
    // the preprocessing contract's own checks (finite, ordered, percentiles within 0..100)
    Preprocess {
        scale,
        ..Preprocess::default()
    }
    .validate()
    .map_err(|e| e.to_string())?;
    Ok(scale)
}

/// Runs the `train` subcommand.
pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    // a second Ctrl-C while saving falls through to the default (the process ends)
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstopping after this step; writing a checkpoint (Ctrl-C again to quit now)");
    });
    let comm = deepgalaxy_collective::world(args.distributed)?;
    let bars = Bars {
        bar: Mutex::new(None),
    };
    let comm = comm.as_ref();
    let outcome = if args.resume {
        let extend = ResumeChanges {
            epochs: args.epochs,
            max_steps: args.max_steps.map(Some),
            data: args.data.clone(),
        };
        deepgalaxy_train::resume_with(&args.out, &extend, &bars, &stop, comm)?
    } else {
        let data = args
            .data
            .clone()
            .ok_or_else(|| anyhow::anyhow!("--data is required for a new run"))?;
        let (spec, cfg) = build(args, data)?;
        let initial = match &args.init_from {
            Some(path) => Some(deepgalaxy_export::import::initializers(path)?),
            None => None,
        };
        deepgalaxy_train::train_with(spec, cfg, initial.as_ref(), &bars, &stop, comm)?
    };
    bars.with(|b| b.finish_and_clear());
    if comm.rank() != 0 {
        return Ok(());
    }
    let ck = deepgalaxy_train::checkpoint::checkpoint_dir(&args.out);
    match outcome {
        Outcome::Finished => println!("finished; checkpoint in {}", ck.display()),
        Outcome::StepLimit => println!("stopped at the step limit; checkpoint in {}", ck.display()),
        Outcome::Interrupted => println!(
            "interrupted; checkpoint in {} (continue with --resume)",
            ck.display()
        ),
    }
    Ok(())
}

/// The model spec and training configuration a new run starts with, from its flags (the
/// defaults are the libraries': `TrainConfig::DEFAULT_EPOCHS`, `Normalization::standard`,
/// `Stretch::LOG`, `ScheduleKind::step_for`).
pub(crate) fn build(args: &TrainArgs, data: PathBuf) -> anyhow::Result<(ModelSpec, TrainConfig)> {
    let epochs = args.epochs.unwrap_or(TrainConfig::DEFAULT_EPOCHS);
    let channels = args.channels as usize;
    let preprocess = Preprocess {
        size: args.image_size,
        channels: args.channels,
        stretch: match args.stretch {
            PreprocessStretch::Linear => Stretch::Linear,
            PreprocessStretch::Log => Stretch::LOG,
            PreprocessStretch::Asinh => Stretch::ASINH,
        },
        scale: args.scale,
        normalization: deepgalaxy_core::preprocess::Normalization::standard(channels),
        ..Preprocess::default()
    };
    // the class count is set from the data when training starts
    let named = Backbone::by_name(&args.backbone)?;
    let backbone = match args.width {
        Some(w) => named.with_width(w),
        None => named,
    };
    let mut spec = ModelSpec::new(backbone, preprocess, 2);
    spec.latent_dim = args.latent_dim;
    spec.dropout = args.dropout;
    let opt = optimizer(&args.optimizer)?;
    let lr = args.lr.unwrap_or_else(|| opt.default_lr());
    let cfg = TrainConfig {
        data,
        out: args.out.clone(),
        epochs,
        batch_size: args.batch_size,
        max_steps: args.max_steps,
        heads: Heads::parse(&args.heads)?,
        freeze_encoder: args.freeze_encoder,
        unfreeze_every: args.unfreeze_every,
        init_from: args.init_from.clone(),
        split: match args.split {
            SplitArg::BySimulation => SplitKind::BySimulation,
            SplitArg::Random => SplitKind::Random,
        },
        val_fraction: args.val_fraction,
        val_simulations: args.val_simulations.clone(),
        test: TestSet {
            fraction: args.test_fraction,
            simulations: args.test_simulations.clone(),
        },
        target: args.target.map(|t| match t {
            TargetArg::TPeri => TimeTarget::TPeri,
            TargetArg::Snapshot => TimeTarget::Snapshot,
        }),
        optimizer: opt,
        schedule: Schedule {
            lr,
            warmup: args.warmup,
            kind: match args.schedule {
                ScheduleArg::Constant => ScheduleKind::Constant,
                ScheduleArg::Step => ScheduleKind::step_for(epochs),
                ScheduleArg::Cosine => ScheduleKind::Cosine { min_lr: 0.0 },
            },
        },
        loss: LossWeights {
            beta: args.beta,
            label_smoothing: args.label_smoothing,
            label_sigma: args.label_sigma,
            ..LossWeights::default()
        },
        augment: Augment {
            dihedral: !args.no_augment,
            noise: args.noise,
            blur_fwhm: args.blur_fwhm,
        },
        seed: args.seed,
        parallel: Parallel {
            ranks: 1,
            micro_batches: args.micro_batches,
            lr_scaling: match args.lr_scaling {
                LrScalingArg::None => LrScaling::None,
                LrScalingArg::Linear => LrScaling::Linear,
                LrScalingArg::Sqrt => LrScaling::Sqrt,
            },
            warmup_epochs: args.warmup_epochs,
            bucket_mib: args.bucket_mib,
        },
        overwrite: args.overwrite,
    };
    Ok((spec, cfg))
}
