//! Train/validation splits. The default holds out whole simulations, so no other camera or
//! neighbouring snapshot of a validation image is seen in training; `random` is the paper's
//! per-image 80/20, offered for comparison (its accuracy is optimistic for that reason).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::{permutation, Dataset};
use deepgalaxy_core::{Error, Result};

/// How to split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SplitKind {
    /// Whole simulations go to validation.
    BySimulation,
    /// Images go to validation at random (the paper's protocol).
    Random,
}

impl SplitKind {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            SplitKind::BySimulation => "by-simulation",
            SplitKind::Random => "random",
        }
    }
}

/// Indices into a dataset's samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Split {
    /// How it was made.
    pub kind: SplitKind,
    /// Training samples.
    pub train: Vec<usize>,
    /// Validation samples.
    pub val: Vec<usize>,
    /// Simulations held out (by-simulation only).
    pub val_simulations: Vec<String>,
}

/// Splits `ds` with about `val_fraction` of it (of its simulations, for by-simulation) in
/// validation, deterministically for `seed`. `held_out`, when not empty, names the simulations
/// to validate on instead of drawing them (by-simulation only), e.g. mergers inside the grid's
/// parameter range rather than at its edge.
pub fn split(
    ds: &Dataset,
    kind: SplitKind,
    val_fraction: f64,
    seed: u64,
    held_out: &[String],
) -> Result<Split> {
    if !(0.0..1.0).contains(&val_fraction) {
        return Err(Error::setting(
            "validation fraction",
            format!("{val_fraction} is not in [0, 1)"),
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5151_7e57);
    match kind {
        SplitKind::Random if !held_out.is_empty() => Err(Error::setting(
            "validation simulations",
            "naming the simulations to hold out needs the by-simulation split",
        )),
        SplitKind::Random => {
            let order = permutation(ds.samples.len(), &mut rng);
            let n_val = (ds.samples.len() as f64 * val_fraction).round() as usize;
            let mut val = order[..n_val].to_vec();
            let mut train = order[n_val..].to_vec();
            val.sort_unstable();
            train.sort_unstable();
            Ok(Split {
                kind,
                train,
                val,
                val_simulations: vec![],
            })
        }
        SplitKind::BySimulation => {
            let mut sims: Vec<String> = Vec::new();
            for (i, s) in ds.samples.iter().enumerate() {
                match &s.simulation {
                    Some(name) => {
                        if !sims.contains(name) {
                            sims.push(name.clone());
                        }
                    }
                    None => {
                        return Err(Error::invalid(
                            &ds.source,
                            format!(
                                "image `{}` (#{i}) has no simulation: the by-simulation split needs a `simulation` column (or use --split random)",
                                s.id
                            ),
                        ))
                    }
                }
            }
            sims.sort();
            let n_val = if val_fraction == 0.0 || !held_out.is_empty() {
                0
            } else {
                ((sims.len() as f64 * val_fraction).round() as usize)
                    .clamp(1, sims.len().saturating_sub(1))
            };
            if val_fraction > 0.0 && sims.len() < 2 {
                return Err(Error::invalid(
                    &ds.source,
                    "one simulation only: the by-simulation split needs at least two (or use --split random)",
                ));
            }
            let held: Vec<String> = if held_out.is_empty() {
                let order = permutation(sims.len(), &mut rng);
                let mut drawn: Vec<String> =
                    order[..n_val].iter().map(|&k| sims[k].clone()).collect();
                drawn.sort();
                drawn
            } else {
                named_simulations(ds, &sims, held_out)?
            };
            let (mut train, mut val) = (vec![], vec![]);
            for (i, s) in ds.samples.iter().enumerate() {
                let is_val = s.simulation.as_ref().is_some_and(|n| held.contains(n));
                if is_val {
                    val.push(i)
                } else {
                    train.push(i)
                }
            }
            Ok(Split {
                kind,
                train,
                val,
                val_simulations: held,
            })
        }
    }
}

/// `held_out` checked against the simulations of the data (each must exist, and at least one
/// simulation must be left for training), sorted and without repeats.
fn named_simulations(ds: &Dataset, sims: &[String], held_out: &[String]) -> Result<Vec<String>> {
    for name in held_out {
        if !sims.contains(name) {
            return Err(Error::invalid(
                &ds.source,
                format!(
                    "no simulation `{name}` to hold out; the data has {}",
                    sims.join(", ")
                ),
            ));
        }
    }
    let mut held = held_out.to_vec();
    held.sort();
    held.dedup();
    if sims.iter().all(|s| held.contains(s)) {
        return Err(Error::invalid(
            &ds.source,
            "every simulation is held out: none is left to train on",
        ));
    }
    Ok(held)
}
