//! Calibration: the value ranges of the tensors an INT8 graph quantises, measured by running the
//! candle model (the very graph that was trained, in inference mode) on calibration images.
//!
//! Three ways to turn the observed values into a range:
//! * `minmax`: the smallest and largest value seen;
//! * `percentile`: the `p`-th and `(100 - p)`-th percentiles of all values (one tail each), so
//!   that a few outliers do not stretch the grid for everyone;
//! * `entropy`: the clipping threshold on `|x|` whose 128-level quantised histogram is
//!   closest in Kullback-Leibler divergence to the observed one (the TensorRT method).
//!
//! Percentile and entropy need a histogram over a known span, so they make two passes: the first
//! finds each tensor's min and max, the second fills a [`BINS`]-bin histogram.

use std::collections::BTreeMap;

use crate::Result;
use candle_core::Tensor;
use deepgalaxy_core::Error;
use deepgalaxy_models::exec::{forward, Mode};
use deepgalaxy_models::{Graph, Weights};
use serde::{Deserialize, Serialize};

/// Bins of the calibration histograms.
pub const BINS: usize = 2048;

/// Levels of the quantised histogram the entropy method compares against (the positive half
/// of int8).
pub const ENTROPY_LEVELS: usize = 128;

/// How observed values become a quantisation range.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Method {
    /// Smallest and largest value.
    MinMax,
    /// Keep this percentile of values at each end (e.g. 99.99).
    Percentile(f64),
    /// Minimum KL divergence clipping of `|x|`.
    Entropy,
}

impl Method {
    /// From the command line: `minmax`, `percentile` (99.99), `percentile:P` or `entropy`.
    pub fn parse(s: &str) -> Result<Method> {
        let bad = || {
            Error::setting(
                "calibration method",
                format!("`{s}` is not minmax, percentile, percentile:P (50 < P < 100) or entropy"),
            )
        };
        match s {
            "minmax" => Ok(Method::MinMax),
            "percentile" => Ok(Method::Percentile(99.99)),
            "entropy" => Ok(Method::Entropy),
            _ => {
                let p: f64 = s
                    .strip_prefix("percentile:")
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(bad)?;
                if p > 50.0 && p < 100.0 {
                    Ok(Method::Percentile(p))
                } else {
                    Err(bad().into())
                }
            }
        }
    }

    /// The name recorded in the model card.
    pub fn name(&self) -> &'static str {
        match self {
            Method::MinMax => "minmax",
            Method::Percentile(_) => "percentile",
            Method::Entropy => "entropy",
        }
    }
}

/// What calibration saw of one tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// Smallest value.
    pub min: f32,
    /// Largest value.
    pub max: f32,
    /// Counts over [`BINS`] equal bins of `[min, max]` (percentile) or `[0, max |x|]`
    /// (entropy); empty for min-max.
    pub hist: Vec<u64>,
}

impl Observed {
    fn new() -> Observed {
        Observed {
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            hist: vec![],
        }
    }

    fn span(&self, method: Method) -> (f32, f32) {
        match method {
            Method::Entropy => (0.0, self.min.abs().max(self.max.abs())),
            _ => (self.min, self.max),
        }
    }

    fn add_range(&mut self, values: &[f32]) {
        for &v in values {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
    }

    fn add_hist(&mut self, values: &[f32], method: Method) {
        let (lo, hi) = self.span(method);
        if self.hist.is_empty() {
            self.hist = vec![0; BINS];
        }
        let width = (hi - lo) / BINS as f32;
        for &v in values {
            let v = if method == Method::Entropy {
                v.abs()
            } else {
                v
            };
            let bin = if width > 0.0 {
                (((v - lo) / width) as usize).min(BINS - 1)
            } else {
                0
            };
            self.hist[bin] += 1;
        }
    }

    /// The quantisation range this method picks, inside `[min, max]`.
    pub fn range(&self, method: Method) -> (f32, f32) {
        let (lo, hi) = self.span(method);
        let width = (hi - lo) / BINS as f32;
        match method {
            Method::MinMax => (self.min, self.max),
            _ if self.hist.is_empty() || width <= 0.0 => (self.min, self.max),
            Method::Percentile(p) => {
                let (a, b) = percentile_bins(&self.hist, p);
                (lo + a as f32 * width, lo + b as f32 * width)
            }
            Method::Entropy => {
                let t = entropy_bins(&self.hist, ENTROPY_LEVELS) as f32 * width;
                (self.min.max(-t), self.max.min(t))
            }
        }
    }
}

/// Bin edges `(a, b)` such that at most `(100 - p)%` of the counts lie below edge `a` and at
/// most as many above edge `b`.
pub fn percentile_bins(hist: &[u64], p: f64) -> (usize, usize) {
    let total: u64 = hist.iter().sum();
    let tail = ((1.0 - p / 100.0) * total as f64).floor() as u64;
    let mut below = 0;
    let mut a = 0;
    while a < hist.len() && below + hist[a] <= tail {
        below += hist[a];
        a += 1;
    }
    let mut above = 0;
    let mut b = hist.len();
    while b > a && above + hist[b - 1] <= tail {
        above += hist[b - 1];
        b -= 1;
    }
    (a, b)
}

/// The number of leading bins of a histogram of `|x|` to keep (the clipping threshold, in bins)
/// that minimises the KL divergence between the clipped histogram and its `levels`-level
/// quantisation. Values beyond the threshold are counted in its last bin, as clipping does.
///
/// The first bin (zeros: ReLU's floor, padding) is left out: every grid holds 0 exactly, and its
/// spike would otherwise be smeared over its group and push the threshold down to `levels`
/// bins whatever the data (measured: a 30x too narrow range and 0% top-1 agreement).
pub fn entropy_bins(hist: &[u64], levels: usize) -> usize {
    let mut hist = hist.to_vec();
    if let Some(zero) = hist.first_mut() {
        *zero = 0;
    }
    let n = hist.len();
    if n <= levels {
        return n;
    }
    let mut best = (f64::INFINITY, n);
    for i in levels..=n {
        let mut p: Vec<f64> = hist[..i].iter().map(|&c| c as f64).collect();
        p[i - 1] += hist[i..].iter().sum::<u64>() as f64;
        // quantise the unclipped bins into `levels` groups, spreading each group's mass over
        // its non-empty bins
        let mut q = vec![0.0; i];
        for g in 0..levels {
            let (s, e) = (
                g * i / levels,
                ((g + 1) * i / levels).max(g * i / levels + 1),
            );
            let mass: f64 = hist[s..e].iter().map(|&c| c as f64).sum();
            let nonzero = hist[s..e].iter().filter(|&&c| c > 0).count();
            if nonzero > 0 {
                for k in s..e {
                    if hist[k] > 0 {
                        q[k] = mass / nonzero as f64;
                    }
                }
            }
        }
        let (sp, sq): (f64, f64) = (p.iter().sum(), q.iter().sum());
        if sp == 0.0 || sq == 0.0 {
            continue;
        }
        let kl: f64 = p
            .iter()
            .zip(&q)
            .filter(|(&a, _)| a > 0.0)
            .map(|(&a, &b)| {
                let (a, b) = (a / sp, (b / sq).max(1e-12));
                a * (a / b).ln()
            })
            .sum();
        if kl < best.0 {
            best = (kl, i);
        }
    }
    best.1
}

/// Runs the model on `batches` (each `N x C x H x W` model input) and returns each named
/// tensor's calibrated range. Names are graph node names (which the ONNX export keeps).
pub fn calibrate(
    graph: &Graph,
    weights: &Weights,
    batches: &[Tensor],
    names: &[String],
    method: Method,
) -> Result<BTreeMap<String, (f32, f32)>> {
    if batches.is_empty() {
        return Err(Error::setting("calibration", "no calibration images").into());
    }
    let ids: Vec<usize> = names
        .iter()
        .map(|name| {
            graph
                .nodes
                .iter()
                .position(|n| &n.name == name)
                .ok_or_else(|| {
                    Error::setting(
                        "calibration",
                        format!("tensor `{name}` is not a node of the model graph"),
                    )
                })
        })
        .collect::<deepgalaxy_core::Result<_>>()?;
    let mut seen: Vec<Observed> = names.iter().map(|_| Observed::new()).collect();
    let passes = if method == Method::MinMax { 1 } else { 2 };
    for pass in 0..passes {
        for batch in batches {
            let values = forward(graph, weights, batch, &ids, Mode::Eval)?;
            for (obs, v) in seen.iter_mut().zip(values) {
                let v: Vec<f32> = v
                    .flatten_all()
                    .and_then(|t| t.to_vec1())
                    .map_err(deepgalaxy_models::Error::from)?;
                if pass == 0 {
                    obs.add_range(&v);
                } else {
                    obs.add_hist(&v, method);
                }
            }
        }
    }
    names
        .iter()
        .zip(&seen)
        .map(|(name, obs)| {
            if !(obs.min.is_finite() && obs.max.is_finite()) {
                return Err(Error::setting(
                    "calibration",
                    format!("tensor `{name}` took non-finite values on the calibration images"),
                )
                .into());
            }
            Ok((name.clone(), obs.range(method)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(values: &[f32], method: Method) -> Observed {
        let mut o = Observed::new();
        o.add_range(values);
        if method != Method::MinMax {
            o.add_hist(values, method);
        }
        o
    }

    #[test]
    fn minmax_is_the_extremes_and_percentile_drops_outliers() {
        let mut v: Vec<f32> = (0..10_000).map(|i| i as f32 / 10_000.0).collect();
        v.push(50.0);
        v.push(-3.0);
        assert_eq!(
            observed(&v, Method::MinMax).range(Method::MinMax),
            (-3.0, 50.0)
        );
        let (lo, hi) = observed(&v, Method::Percentile(99.9)).range(Method::Percentile(99.9));
        // the two outliers are cut; the bulk [0, 1) is kept to within a bin (53 / 2048)
        let bin = 53.0 / BINS as f32;
        assert!(lo >= -bin && lo <= 0.0 + bin, "{lo}");
        assert!((0.99 - bin..=1.0 + bin).contains(&hi), "{hi}");
    }

    #[test]
    fn percentile_bins_count_the_tails() {
        // 1000 counts: 5 in bin 0, 990 in bin 1, 5 in bin 3
        let h = [5, 990, 0, 5];
        assert_eq!(percentile_bins(&h, 99.5), (1, 2)); // 5 = 0.5% may go at each end
        assert_eq!(percentile_bins(&h, 99.6), (0, 4)); // 4 may go: nothing is cut
    }

    #[test]
    fn entropy_clips_a_long_thin_tail() {
        // a dense bulk in the first 200 bins and a few far outliers
        let mut h = vec![0u64; 1024];
        for (i, c) in h.iter_mut().enumerate().take(200) {
            *c = 1000 - 4 * i as u64;
        }
        h[1000] = 1;
        h[1023] = 1;
        let t = entropy_bins(&h, 128);
        assert!((128..=260).contains(&t), "threshold {t} bins");
        // no outliers: nothing is clipped beyond the data
        let flat = vec![10u64; 256];
        assert_eq!(entropy_bins(&flat, 128), 256);
        // a spike of zeros (a ReLU output) does not drag the threshold down
        let mut relu = flat.clone();
        relu[0] = 1_000_000;
        assert_eq!(entropy_bins(&relu, 128), 256);
    }

    #[test]
    fn methods_parse() {
        assert_eq!(Method::parse("minmax").unwrap(), Method::MinMax);
        assert_eq!(
            Method::parse("percentile:99.9").unwrap(),
            Method::Percentile(99.9)
        );
        assert!(Method::parse("percentile:100").is_err());
        assert!(Method::parse("kl").unwrap_err().to_string().contains("kl"));
    }
}
