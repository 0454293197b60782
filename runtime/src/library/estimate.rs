//! The kNN estimate of a query's merger time: the mean of its library neighbours' times,
//! with their spread as the uncertainty (the paper's use of the latent space as a
//! "recommendation" of similar simulation frames).

use deepgalaxy_core::time::TimeTarget;

use crate::library::index::LatentIndex;
use crate::library::search::Neighbour;

/// How neighbours count in the mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Weighting {
    /// Every neighbour counts once (the default: with k around 6 the neighbours are about
    /// equally near, and a plain mean is what a reader of "kNN estimate" expects).
    #[default]
    Uniform,
    /// Weight `1 / distance`; exact matches (distance 0), when there are any, share all the
    /// weight.
    InverseDistance,
}

/// A time estimate from neighbours.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct TimeEstimate {
    /// (Weighted) mean of the neighbours' times, Myr.
    pub mean_myr: f64,
    /// (Weighted) population standard deviation of the neighbours' times, Myr: the spread
    /// of the neighbours, not the standard error of the mean.
    pub std_myr: f64,
    /// How many neighbours had a time and entered the estimate.
    pub count: usize,
}

/// Estimates the query's time under `target` from its `neighbours` in `index`. Neighbours
/// without such a time (observations in the library) are left out; `None` when none has one.
pub fn estimate_time(
    neighbours: &[Neighbour],
    index: &LatentIndex,
    weighting: Weighting,
    target: TimeTarget,
) -> Option<TimeEstimate> {
    let samples: Vec<(f64, f64)> = neighbours
        .iter()
        .filter_map(|n| {
            let t = index.entries().get(n.index)?.time(target)?;
            Some((f64::from(n.distance), t))
        })
        .collect();
    weighted_mean_std(&samples, weighting)
}

/// Mean and spread of `(distance, t_myr)` samples; see [`estimate_time`].
pub fn weighted_mean_std(samples: &[(f64, f64)], weighting: Weighting) -> Option<TimeEstimate> {
    if samples.is_empty() {
        return None;
    }
    let exact = samples.iter().any(|&(d, _)| d == 0.0);
    let weight = |d: f64| match weighting {
        Weighting::Uniform => 1.0,
        Weighting::InverseDistance if exact => f64::from(u8::from(d == 0.0)),
        Weighting::InverseDistance => 1.0 / d,
    };
    let total: f64 = samples.iter().map(|&(d, _)| weight(d)).sum();
    let mean = samples.iter().map(|&(d, t)| weight(d) * t).sum::<f64>() / total;
    let var = samples
        .iter()
        .map(|&(d, t)| weight(d) * (t - mean).powi(2))
        .sum::<f64>()
        / total;
    let count = samples.iter().filter(|&&(d, _)| weight(d) > 0.0).count();
    Some(TimeEstimate {
        mean_myr: mean,
        std_myr: var.sqrt(),
        count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::index::{Entry, ModelIdentity};

    #[test]
    fn uniform_mean_and_population_std() {
        let e = weighted_mean_std(
            &[(1.0, 100.0), (2.0, 110.0), (3.0, 120.0)],
            Weighting::Uniform,
        )
        .unwrap();
        assert_eq!(e.mean_myr, 110.0);
        assert!((e.std_myr - (200.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(e.count, 3);
    }

    #[test]
    fn inverse_distance_weights() {
        // weights 1 and 1/3: mean (100 + 120/3) / (4/3) = 105
        let e =
            weighted_mean_std(&[(1.0, 100.0), (3.0, 120.0)], Weighting::InverseDistance).unwrap();
        assert!((e.mean_myr - 105.0).abs() < 1e-12);
        // variance (1*25 + 1/3*225) / (4/3) = 75
        assert!((e.std_myr - 75f64.sqrt()).abs() < 1e-12);
        // an exact match takes all the weight
        let e =
            weighted_mean_std(&[(0.0, 100.0), (3.0, 120.0)], Weighting::InverseDistance).unwrap();
        assert_eq!((e.mean_myr, e.std_myr, e.count), (100.0, 0.0, 1));
        assert!(weighted_mean_std(&[], Weighting::Uniform).is_none());
    }

    #[test]
    fn entries_without_time_are_skipped() {
        let entries = [Some(50.0), None, Some(70.0)]
            .into_iter()
            .enumerate()
            .map(|(i, t)| Entry {
                id_str: i.to_string(),
                file: format!("{i}.png"),
                label: None,
                t_myr: t,
                t_peri_myr: None,
                simulation: None,
            })
            .collect();
        let model = ModelIdentity {
            model_digest: String::new(),
            training_digest: None,
            preprocess: Default::default(),
        };
        let index = LatentIndex::new(1, model, vec![0.0, 1.0, 2.0], entries).unwrap();
        let n = |index, distance| Neighbour { index, distance };
        let e = estimate_time(
            &[n(0, 0.5), n(1, 0.6), n(2, 0.7)],
            &index,
            Weighting::Uniform,
            TimeTarget::Snapshot,
        )
        .unwrap();
        assert_eq!((e.mean_myr, e.std_myr, e.count), (60.0, 10.0, 2));
        assert!(estimate_time(
            &[n(1, 0.1)],
            &index,
            Weighting::Uniform,
            TimeTarget::Snapshot
        )
        .is_none());
        assert!(
            estimate_time(&[n(0, 0.1)], &index, Weighting::Uniform, TimeTarget::TPeri).is_none()
        );
    }
}
