//! The time a model is trained to read off an image, and how its answers are scored.
//!
//! A model's classes are bins of time. What the time is measured from is the model's
//! [`TimeTarget`]: the first pericentre of the merger (`t_peri_myr`, the physical question:
//! how long since, or until, the galaxies' first passage) or the start of the simulation
//! (`t_myr`, the paper's snapshot label). A prediction is the expected time under the
//! predicted class distribution, with its standard deviation as the spread; every score
//! (training's validation, `predict`'s summary, `evaluate`) is computed here from those, so
//! the three agree by construction.

use serde::{Deserialize, Serialize};

use crate::CatalogRecord;

/// Width of a time bin of the `t-peri` target, Myr: the simulator's snapshot spacing.
pub const T_PERI_BIN_MYR: f64 = 5.0;

/// What a model's time is measured from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimeTarget {
    /// Time relative to the first pericentre (negative before it), in bins of
    /// [`T_PERI_BIN_MYR`]: catalog column `t_peri_myr`.
    TPeri,
    /// The snapshot class of the paper, time since the start of the simulation: catalog
    /// columns `label` and `t_myr`. Models written before targets existed are of this kind.
    #[default]
    Snapshot,
}

impl TimeTarget {
    /// The name on the command line, in model cards and reports.
    pub fn name(self) -> &'static str {
        match self {
            TimeTarget::TPeri => "t-peri",
            TimeTarget::Snapshot => "snapshot",
        }
    }

    /// The catalog column holding the true time.
    pub fn column(self) -> &'static str {
        match self {
            TimeTarget::TPeri => "t_peri_myr",
            TimeTarget::Snapshot => "t_myr",
        }
    }

    /// Of a thing's two times (since the start, relative to first pericentre), the one this
    /// target measures.
    pub fn pick(self, t_myr: Option<f64>, t_peri_myr: Option<f64>) -> Option<f64> {
        match self {
            TimeTarget::TPeri => t_peri_myr,
            TimeTarget::Snapshot => t_myr,
        }
    }

    /// The true time of a catalog record under this target, when the catalog gives it.
    pub fn truth(self, r: &CatalogRecord) -> Option<f64> {
        self.pick(r.t_myr, r.t_peri_myr)
    }

    /// `t-peri` when every record has `t_peri_myr` (a catalog of the phase-labelled
    /// simulator), `snapshot` otherwise.
    pub fn default_for(records: &[CatalogRecord]) -> TimeTarget {
        if !records.is_empty() && records.iter().all(|r| r.t_peri_myr.is_some()) {
            TimeTarget::TPeri
        } else {
            TimeTarget::Snapshot
        }
    }
}

/// The bins of the `t-peri` target covering `times`: (time of bin 0's centre, number of
/// bins), bins [`T_PERI_BIN_MYR`] wide centred on multiples of it. An error when `times` is
/// empty, holds a value that is not finite, or spans more than `max_bins` bins.
pub fn t_peri_bins(times: &[f64], max_bins: usize) -> std::result::Result<(f64, usize), String> {
    if times.is_empty() {
        return Err("no t_peri_myr values".into());
    }
    if let Some(t) = times.iter().find(|t| !t.is_finite()) {
        return Err(format!("t_peri_myr {t} is not a finite number"));
    }
    let bin = |t: f64| (t / T_PERI_BIN_MYR).round();
    let lo = times.iter().map(|&t| bin(t)).fold(f64::INFINITY, f64::min);
    let hi = times
        .iter()
        .map(|&t| bin(t))
        .fold(f64::NEG_INFINITY, f64::max);
    let n = hi - lo + 1.0;
    if n > max_bins as f64 {
        return Err(format!(
            "t_peri_myr spans {:.0} to {:.0} Myr: {n:.0} bins of {T_PERI_BIN_MYR} Myr, more than {max_bins}",
            lo * T_PERI_BIN_MYR,
            hi * T_PERI_BIN_MYR
        ));
    }
    Ok((lo * T_PERI_BIN_MYR, n as usize))
}

/// The class whose time is nearest to `t` (the first of two equally near), or `None` when
/// there are no classes.
pub fn nearest_class(class_t_myr: &[f64], t: f64) -> Option<u32> {
    let mut best: Option<(usize, f64)> = None;
    for (k, &c) in class_t_myr.iter().enumerate() {
        let d = (c - t).abs();
        if best.is_none_or(|(_, b)| d < b) {
            best = Some((k, d));
        }
    }
    best.map(|(k, _)| k as u32)
}

/// Expected time and its standard deviation under the class distribution `probs` (normalised
/// here, so logits' softmax or probabilities that do not quite sum to 1 both work). `None`
/// when the lengths differ or the probabilities sum to zero or are not finite.
pub fn expected_time(probs: &[f32], class_t_myr: &[f64]) -> Option<(f64, f64)> {
    if probs.len() != class_t_myr.len() {
        return None;
    }
    let total: f64 = probs.iter().map(|&q| f64::from(q)).sum();
    if !(total > 0.0 && total.is_finite()) {
        return None;
    }
    let mean = probs
        .iter()
        .zip(class_t_myr)
        .map(|(&q, &t)| f64::from(q) * t)
        .sum::<f64>()
        / total;
    let var = probs
        .iter()
        .zip(class_t_myr)
        .map(|(&q, &t)| f64::from(q) * (t - mean).powi(2))
        .sum::<f64>()
        / total;
    Some((mean, var.max(0.0).sqrt()))
}

/// One scored answer: the expected time, its spread and the truth, Myr.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TimeAnswer {
    /// Expected time.
    pub predicted: f64,
    /// Standard deviation under the predicted distribution.
    pub sigma: f64,
    /// True time.
    pub truth: f64,
}

impl TimeAnswer {
    /// |predicted - truth|.
    pub fn abs_error(&self) -> f64 {
        (self.predicted - self.truth).abs()
    }
}

/// Scores of expected times against the truth.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TimeScore {
    /// Answers scored.
    pub count: usize,
    /// Median absolute error, Myr.
    pub median_abs_myr: f64,
    /// Mean absolute error, Myr.
    pub mean_abs_myr: f64,
    /// Fraction within ±10 Myr.
    pub within_10_myr: f64,
    /// Fraction within ±25 Myr.
    pub within_25_myr: f64,
    /// Fraction whose truth lies within one predicted sigma (68% if the spread is honest).
    pub coverage_1sigma: f64,
    /// Fraction whose truth lies within two predicted sigma (95% if honest).
    pub coverage_2sigma: f64,
}

impl TimeScore {
    /// The score of `answers`; `None` when there are none.
    pub fn of(answers: &[TimeAnswer]) -> Option<TimeScore> {
        if answers.is_empty() {
            return None;
        }
        let n = answers.len() as f64;
        let mut errors: Vec<f64> = answers.iter().map(TimeAnswer::abs_error).collect();
        errors.sort_by(f64::total_cmp);
        let share =
            |f: &dyn Fn(&TimeAnswer) -> bool| answers.iter().filter(|a| f(a)).count() as f64 / n;
        Some(TimeScore {
            count: answers.len(),
            median_abs_myr: median_sorted(&errors),
            mean_abs_myr: errors.iter().sum::<f64>() / n,
            within_10_myr: share(&|a| a.abs_error() <= 10.0),
            within_25_myr: share(&|a| a.abs_error() <= 25.0),
            coverage_1sigma: share(&|a| a.abs_error() <= a.sigma),
            coverage_2sigma: share(&|a| a.abs_error() <= 2.0 * a.sigma),
        })
    }
}

/// The factor the predicted spreads of `answers` must be multiplied by for 68.27% of their
/// truths (the share within one standard deviation of a Gaussian) to lie within one spread:
/// that quantile of |error| / sigma. Fitted on validation mergers, it calibrates the spread
/// a model reports without touching its expected time. `None` without an answer whose
/// spread is positive.
pub fn sigma_scale(answers: &[TimeAnswer]) -> Option<f64> {
    let mut ratios: Vec<f64> = answers
        .iter()
        .filter(|a| a.sigma > 0.0 && a.abs_error().is_finite())
        .map(|a| a.abs_error() / a.sigma)
        .collect();
    if ratios.is_empty() {
        return None;
    }
    ratios.sort_by(f64::total_cmp);
    let at = (ONE_SIGMA * ratios.len() as f64).ceil() as usize;
    Some(ratios[at.clamp(1, ratios.len()) - 1])
}

/// The share of a Gaussian within one standard deviation of its mean.
pub const ONE_SIGMA: f64 = 0.682_689_492;

/// The median of sorted values (the mean of the middle two for an even count); NaN when empty.
pub fn median_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]),
    }
}

/// The median of `values` (NaN when empty).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    median_sorted(&v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_cover_the_times_on_multiples_of_five() {
        let (origin, n) = t_peri_bins(&[-98.7, -93.7, 0.4, 251.3], 1024).unwrap();
        assert_eq!((origin, n), (-100.0, 71));
        assert!(t_peri_bins(&[0.0, 6000.0], 1024)
            .unwrap_err()
            .contains("more than 1024"));
        assert!(t_peri_bins(&[], 10).is_err());
        assert!(t_peri_bins(&[f64::NAN], 10).is_err());
    }

    #[test]
    fn expected_time_and_nearest_class() {
        let t = [-5.0, 0.0, 5.0];
        let (m, s) = expected_time(&[0.25, 0.5, 0.25], &t).unwrap();
        assert_eq!(m, 0.0);
        assert!((s - 12.5f64.sqrt()).abs() < 1e-12);
        assert_eq!(expected_time(&[0.0, 0.0, 0.0], &t), None);
        assert_eq!(expected_time(&[1.0], &t), None);
        assert_eq!(nearest_class(&t, 3.0), Some(2));
        assert_eq!(nearest_class(&t, 2.5), Some(1));
        assert_eq!(nearest_class(&[], 2.5), None);
    }

    #[test]
    fn scores_count_errors_and_coverage() {
        let a = |p: f64, s: f64, t: f64| TimeAnswer {
            predicted: p,
            sigma: s,
            truth: t,
        };
        let answers = [
            a(0.0, 5.0, 4.0),
            a(0.0, 5.0, 8.0),
            a(0.0, 5.0, 20.0),
            a(0.0, 5.0, -30.0),
        ];
        let s = TimeScore::of(&answers).unwrap();
        assert_eq!(s.count, 4);
        assert_eq!(s.median_abs_myr, 14.0);
        assert_eq!(s.mean_abs_myr, 15.5);
        assert_eq!((s.within_10_myr, s.within_25_myr), (0.5, 0.75));
        assert_eq!((s.coverage_1sigma, s.coverage_2sigma), (0.25, 0.5));
        assert_eq!(TimeScore::of(&[]), None);
        // |error| / sigma = 0.8, 1.6, 4, 6: 68.27% of 4 is 2.73, so the third ratio
        assert_eq!(sigma_scale(&answers), Some(4.0));
        let scaled: Vec<TimeAnswer> = answers
            .iter()
            .map(|x| TimeAnswer {
                sigma: x.sigma * 4.0,
                ..*x
            })
            .collect();
        assert_eq!(TimeScore::of(&scaled).unwrap().coverage_1sigma, 0.75);
        assert_eq!(sigma_scale(&[a(0.0, 0.0, 1.0)]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
    }
}
