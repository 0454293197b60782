//! What a training run does: everything `deepgalaxy train` takes, serialisable so that a
//! checkpoint records it and `--resume` continues the same run.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::augment::Augment;
use crate::distributed::Parallel;
use crate::optim::OptimizerKind;
use crate::schedule::Schedule;
use crate::split::{SplitKind, TestSet};
use crate::Result;
use deepgalaxy_core::time::TimeTarget;
use deepgalaxy_core::Error;

/// Which heads contribute to the loss (all three are always in the network).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heads {
    /// The timescale classifier (cross-entropy).
    pub classifier: bool,
    /// The fully convolutional autoencoder (reconstruction MSE).
    pub autoencoder: bool,
    /// The variational autoencoder (reconstruction MSE + beta * KL).
    pub vae: bool,
}

impl Heads {
    /// Parses `classifier,autoencoder,vae` (any non-empty subset).
    pub fn parse(list: &str) -> Result<Heads> {
        let mut h = Heads {
            classifier: false,
            autoencoder: false,
            vae: false,
        };
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match name {
                "classifier" => h.classifier = true,
                "autoencoder" | "fcae" => h.autoencoder = true,
                "vae" => h.vae = true,
                other => {
                    return Err(Error::setting(
                        "heads",
                        format!("`{other}` is not one of classifier, autoencoder, vae"),
                    )
                    .into())
                }
            }
        }
        if !(h.classifier || h.autoencoder || h.vae) {
            return Err(Error::setting("heads", "name at least one head").into());
        }
        Ok(h)
    }
}

/// Weights of the loss terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossWeights {
    /// Cross-entropy weight.
    pub classifier: f64,
    /// FCAE reconstruction weight.
    pub autoencoder: f64,
    /// VAE term weight.
    pub vae: f64,
    /// KL weight inside the VAE term. The reconstruction is a per-pixel mean while the KL is
    /// summed over the latent, so the ELBO's balance is beta ~ 1 / pixels.
    pub beta: f64,
    /// Label smoothing of the cross-entropy.
    pub label_smoothing: f64,
    /// Width in classes of the Gaussian ordinal targets (0: one-hot targets); see
    /// [`crate::loss::gaussian_targets`].
    #[serde(default)]
    pub label_sigma: f64,
}

impl Default for LossWeights {
    fn default() -> Self {
        LossWeights {
            classifier: 1.0,
            autoencoder: 1.0,
            vae: 1.0,
            beta: 1e-3,
            label_smoothing: 0.0,
            label_sigma: 0.0,
        }
    }
}

/// A training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Catalog or HDF5 file.
    pub data: PathBuf,
    /// Output folder (checkpoint, metrics, plots).
    pub out: PathBuf,
    /// Epochs to train in total.
    pub epochs: usize,
    /// Images per optimizer step.
    pub batch_size: usize,
    /// Stop after this many optimizer steps in total (and checkpoint), if set.
    pub max_steps: Option<u64>,
    /// Heads in the loss.
    pub heads: Heads,
    /// Keep the encoder's weights fixed.
    pub freeze_encoder: bool,
    /// Progressive unfreezing: the encoder starts frozen and one more of its stages, from the
    /// top down, joins training every this many epochs.
    #[serde(default)]
    pub unfreeze_every: Option<usize>,
    /// The ONNX file the initial weights came from (for the record; loading is the caller's).
    #[serde(default)]
    pub init_from: Option<PathBuf>,
    /// Validation split.
    pub split: SplitKind,
    /// Fraction held out for validation.
    pub val_fraction: f64,
    /// Simulations to hold out by name (by-simulation split), instead of drawing them.
    #[serde(default)]
    pub val_simulations: Vec<String>,
    /// Test simulations (named, or a fraction drawn from the seed): kept out of training and
    /// validation, for `deepgalaxy evaluate` only.
    #[serde(default)]
    pub test: TestSet,
    /// What time the classes stand for; `None`: `t-peri` where the catalog has `t_peri_myr`
    /// for every image, `snapshot` otherwise (the resolved target is in the run's state).
    #[serde(default)]
    pub target: Option<TimeTarget>,
    /// Optimizer.
    pub optimizer: OptimizerKind,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Loss weights.
    pub loss: LossWeights,
    /// Augmentation.
    pub augment: Augment,
    /// Seed of every random choice (initialisation, split, order, dropout, noise).
    pub seed: u64,
    /// Data parallelism: ranks, micro-batches, learning-rate scaling, fusion buckets (absent
    /// from checkpoints written before it existed: one process).
    #[serde(default)]
    pub parallel: Parallel,
    /// Replace a run already in `out` instead of refusing to start. An instruction for this
    /// start only: never saved, so a resumed run does not inherit it.
    #[serde(skip)]
    pub overwrite: bool,
}

impl TrainConfig {
    /// Epochs of a run when none are asked for.
    pub const DEFAULT_EPOCHS: usize = 10;

    /// Checks the numbers are usable.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(crate::Error::from(Error::setting("training", what)));
        if self.unfreeze_every == Some(0) {
            return bad("--unfreeze-every must be at least 1 epoch".into());
        }
        if self.epochs == 0 {
            return bad("epochs must be at least 1".into());
        }
        if self.batch_size < 2 {
            return bad(
                "batch size must be at least 2 (batch normalisation needs two images)".into(),
            );
        }
        if !(self.schedule.lr > 0.0 && self.schedule.lr.is_finite()) {
            return bad(format!(
                "learning rate {} must be positive",
                self.schedule.lr
            ));
        }
        if !(0.0..1.0).contains(&self.loss.label_smoothing) {
            return bad(format!(
                "label smoothing {} is not in [0, 1)",
                self.loss.label_smoothing
            ));
        }
        for (what, v) in [
            ("noise", self.augment.noise),
            ("blur FWHM", self.augment.blur_fwhm),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return bad(format!("augmentation {what} {v} must be zero or positive"));
            }
        }
        if !(self.loss.label_sigma >= 0.0 && self.loss.label_sigma.is_finite()) {
            return bad(format!(
                "label sigma {} must be zero or positive",
                self.loss.label_sigma
            ));
        }
        self.parallel.validate(self.batch_size)
    }
}
