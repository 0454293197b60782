//! Train/validation splits. The default holds out whole simulations, so no other camera or
//! neighbouring snapshot of a validation image is seen in training; `random` is the paper's
//! per-image 80/20, offered for comparison (its accuracy is optimistic for that reason).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::{permutation, Dataset};
use crate::Result;
use deepgalaxy_core::Error;

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
    /// Simulations held out for validation (by-simulation only).
    pub val_simulations: Vec<String>,
    /// Simulations trained on (empty when the data names none; with the random split they
    /// are validated on as well).
    #[serde(default)]
    pub train_simulations: Vec<String>,
    /// Test samples: never trained on, never validated on.
    #[serde(default)]
    pub test: Vec<usize>,
    /// Simulations held out for the final test (always whole simulations, whatever `kind`).
    #[serde(default)]
    pub test_simulations: Vec<String>,
}

/// Which simulations to keep for the final test: named, or a fraction drawn from the seed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TestSet {
    /// Fraction of the simulations to draw (0: none), when none are named.
    pub fraction: f64,
    /// Simulations by name.
    pub simulations: Vec<String>,
}

/// Splits `ds` into training, validation and test samples, deterministically for `seed`.
///
/// The test simulations (`test`) come out first, always as whole simulations and drawn from
/// their own stream of the seed, so the same seed keeps the same test mergers whatever the
/// validation split: a random split and a by-simulation split of one catalog are scored on
/// the same mergers. The rest is split into training and validation with about
/// `val_fraction` of it (of its simulations, for by-simulation) in validation. `held_out`,
/// when not empty, names the simulations to validate on instead of drawing them
/// (by-simulation only), e.g. mergers inside the grid's parameter range rather than at its
/// edge.
pub fn split(
    ds: &Dataset,
    kind: SplitKind,
    val_fraction: f64,
    seed: u64,
    held_out: &[String],
    test: &TestSet,
) -> Result<Split> {
    for (what, f) in [("validation", val_fraction), ("test", test.fraction)] {
        if !(0.0..1.0).contains(&f) {
            return Err(Error::setting(
                format!("{what} fraction"),
                format!("{f} is not in [0, 1)"),
            )
            .into());
        }
    }
    if kind == SplitKind::Random && !held_out.is_empty() {
        return Err(Error::setting(
            "validation simulations",
            "naming the simulations to hold out needs the by-simulation split",
        )
        .into());
    }
    let wants_test = test.fraction > 0.0 || !test.simulations.is_empty();
    let all_sims = match simulations(ds) {
        Ok(sims) => sims,
        Err(e) if kind == SplitKind::BySimulation || wants_test => return Err(e),
        Err(_) => vec![],
    };
    let test_simulations = if !test.simulations.is_empty() {
        named_simulations(ds, &all_sims, &test.simulations, "test")?
    } else if test.fraction > 0.0 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7e57_0000_5eed);
        draw(&all_sims, test.fraction, &mut rng, &ds.source)?
    } else {
        vec![]
    };
    if let Some(both) = held_out.iter().find(|s| test_simulations.contains(s)) {
        return Err(Error::setting(
            "validation simulations",
            format!("`{both}` is also a test simulation"),
        )
        .into());
    }
    let in_test = |i: &usize| {
        ds.samples[*i]
            .simulation
            .as_ref()
            .is_some_and(|n| test_simulations.contains(n))
    };
    let (test_idx, rest): (Vec<usize>, Vec<usize>) = (0..ds.samples.len()).partition(in_test);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5151_7e57);
    let (train, val, val_simulations) = match kind {
        SplitKind::Random => {
            let order = permutation(rest.len(), &mut rng);
            let n_val = (rest.len() as f64 * val_fraction).round() as usize;
            let mut val: Vec<usize> = order[..n_val].iter().map(|&k| rest[k]).collect();
            let mut train: Vec<usize> = order[n_val..].iter().map(|&k| rest[k]).collect();
            val.sort_unstable();
            train.sort_unstable();
            (train, val, vec![])
        }
        SplitKind::BySimulation => {
            let sims: Vec<String> = all_sims
                .iter()
                .filter(|s| !test_simulations.contains(s))
                .cloned()
                .collect();
            let held: Vec<String> = if !held_out.is_empty() {
                named_simulations(ds, &sims, held_out, "validate on")?
            } else if val_fraction > 0.0 {
                draw(&sims, val_fraction, &mut rng, &ds.source)?
            } else {
                vec![]
            };
            let (val, train): (Vec<usize>, Vec<usize>) = rest.iter().partition(|&&i| {
                ds.samples[i]
                    .simulation
                    .as_ref()
                    .is_some_and(|n| held.contains(n))
            });
            (train, val, held)
        }
    };
    let train_simulations = all_sims
        .into_iter()
        .filter(|s| !test_simulations.contains(s) && !val_simulations.contains(s))
        .collect();
    Ok(Split {
        kind,
        train,
        val,
        val_simulations,
        train_simulations,
        test: test_idx,
        test_simulations,
    })
}

/// The simulations of the data, sorted; an error naming the first image without one.
fn simulations(ds: &Dataset) -> Result<Vec<String>> {
    let mut sims: Vec<String> = Vec::new();
    for (i, s) in ds.samples.iter().enumerate() {
        match &s.simulation {
            Some(name) => sims.push(name.clone()),
            None => {
                return Err(Error::invalid(
                    &ds.source,
                    format!(
                        "image `{}` (#{i}) has no simulation: splitting by simulation (validation or test) needs a `simulation` column (or use --split random without a test set)",
                        s.id
                    ),
                ).into())
            }
        }
    }
    sims.sort();
    sims.dedup();
    Ok(sims)
}

/// About `fraction` of `sims` (at least one, and never all), drawn with `rng`, sorted.
fn draw(
    sims: &[String],
    fraction: f64,
    rng: &mut ChaCha8Rng,
    source: &std::path::Path,
) -> Result<Vec<String>> {
    if sims.len() < 2 {
        return Err(Error::invalid(
            source,
            format!(
                "{} simulation(s) left: holding some out needs at least two (or use --split random)",
                sims.len()
            ),
        ).into());
    }
    let n = ((sims.len() as f64 * fraction).round() as usize).clamp(1, sims.len() - 1);
    let order = permutation(sims.len(), rng);
    let mut drawn: Vec<String> = order[..n].iter().map(|&k| sims[k].clone()).collect();
    drawn.sort();
    Ok(drawn)
}

/// `held_out` checked against the simulations `sims` (each must be one, and at least one must
/// be left for training), sorted and without repeats; `what` says what they are held out for.
fn named_simulations(
    ds: &Dataset,
    sims: &[String],
    held_out: &[String],
    what: &str,
) -> Result<Vec<String>> {
    for name in held_out {
        if !sims.contains(name) {
            return Err(Error::invalid(
                &ds.source,
                format!(
                    "no simulation `{name}` to {what}; the data has {}",
                    sims.join(", ")
                ),
            )
            .into());
        }
    }
    let mut held = held_out.to_vec();
    held.sort();
    held.dedup();
    if sims.iter().all(|s| held.contains(s)) {
        return Err(Error::invalid(
            &ds.source,
            "every simulation is held out: none is left to train on",
        )
        .into());
    }
    Ok(held)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Sample;
    use deepgalaxy_core::pixels::Pixels;
    use deepgalaxy_core::time::TimeTarget;
    use deepgalaxy_core::Preprocess;

    /// 10 simulations of 6 images, labels 0-2.
    fn data() -> Dataset {
        let samples = (0..60)
            .map(|i| Sample {
                id: format!("i{i}"),
                simulation: Some(format!("s{}", i / 6)),
                label: i as u32 % 3,
                time_myr: None,
                pixels: Pixels::U8(vec![]),
            })
            .collect();
        Dataset::from_samples(
            samples,
            Preprocess::default(),
            std::path::Path::new("c.csv"),
            TimeTarget::Snapshot,
        )
        .unwrap()
    }

    fn sim_of(ds: &Dataset, i: usize) -> &str {
        ds.samples[i].simulation.as_deref().unwrap()
    }

    #[test]
    fn test_mergers_are_whole_the_same_for_either_split_and_never_trained_on() {
        let ds = data();
        let test = TestSet {
            fraction: 0.2,
            simulations: vec![],
        };
        let a = split(&ds, SplitKind::BySimulation, 0.25, 3, &[], &test).unwrap();
        let b = split(&ds, SplitKind::Random, 0.2, 3, &[], &test).unwrap();
        assert_eq!(a.test_simulations.len(), 2);
        assert_eq!(a.test_simulations, b.test_simulations);
        assert_eq!(a.test, b.test);
        for s in [&a, &b] {
            assert_eq!(s.test.len(), 12);
            let mut all: Vec<usize> = s
                .train
                .iter()
                .chain(&s.val)
                .chain(&s.test)
                .copied()
                .collect();
            all.sort_unstable();
            assert_eq!(all, (0..60).collect::<Vec<_>>());
            for &i in s.train.iter().chain(&s.val) {
                assert!(!s.test_simulations.iter().any(|t| t == sim_of(&ds, i)));
            }
            for &i in &s.test {
                assert!(s.test_simulations.iter().any(|t| t == sim_of(&ds, i)));
            }
        }
        // by simulation: 2 of the 8 left validate, the other 6 train
        assert_eq!(a.val_simulations.len(), 2);
        assert_eq!(a.train_simulations.len(), 6);
        assert!(a
            .val
            .iter()
            .all(|&i| a.val_simulations.iter().any(|v| v == sim_of(&ds, i))));
        // random: a fifth of the 48 images left validate, from the training simulations
        assert_eq!((b.val.len(), b.train_simulations.len()), (10, 8));
        // the same seed with another validation fraction keeps the test mergers
        let c = split(&ds, SplitKind::BySimulation, 0.5, 3, &[], &test).unwrap();
        assert_eq!(c.test_simulations, a.test_simulations);
        // without a test set nothing is held for it
        let none = split(
            &ds,
            SplitKind::BySimulation,
            0.2,
            3,
            &[],
            &TestSet::default(),
        )
        .unwrap();
        assert!(none.test.is_empty() && none.test_simulations.is_empty());
        assert_eq!(none.train.len() + none.val.len(), 60);
    }

    #[test]
    fn named_test_mergers_are_checked() {
        let ds = data();
        let named = |names: &[&str]| TestSet {
            fraction: 0.0,
            simulations: names.iter().map(|s| s.to_string()).collect(),
        };
        let s = split(
            &ds,
            SplitKind::BySimulation,
            0.0,
            1,
            &[],
            &named(&["s3", "s3"]),
        )
        .unwrap();
        assert_eq!(s.test_simulations, ["s3"]);
        assert_eq!(s.test, (18..24).collect::<Vec<_>>());
        assert!(s.val.is_empty() && s.train.len() == 54);
        let err = split(&ds, SplitKind::BySimulation, 0.0, 1, &[], &named(&["s99"]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no simulation `s99` to test"), "{err}");
        let err = split(
            &ds,
            SplitKind::BySimulation,
            0.0,
            1,
            &["s3".into()],
            &named(&["s3"]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`s3` is also a test simulation"), "{err}");
        let bad = TestSet {
            fraction: 1.0,
            simulations: vec![],
        };
        let err = split(&ds, SplitKind::BySimulation, 0.0, 1, &[], &bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("test fraction"), "{err}");
    }
}
