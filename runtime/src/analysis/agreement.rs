//! How closely a reduced-precision variant follows the FP32 model, from the outputs both gave
//! on the same validation images (this module runs no model: the caller does, with whichever
//! backend it likes, and hands the arrays over).
//!
//! Reported per variant: top-1 agreement with FP32, the change in accuracy and in within-1
//! accuracy (prediction at most one class from the label), the cosine similarity of the
//! latents (mean and worst), the largest probability difference, and the file size.

use std::path::Path;

use crate::Result;
use deepgalaxy_core::Error;
use serde::{Deserialize, Serialize};

/// One model's outputs on `n` images.
#[derive(Debug, Clone, PartialEq)]
pub struct Outputs {
    /// Class probabilities, `n x classes`, row-major.
    pub probabilities: Vec<f32>,
    /// Latents, `n x latent_dim`, row-major.
    pub latent: Vec<f32>,
    /// Number of classes.
    pub classes: usize,
    /// Latent size.
    pub latent_dim: usize,
}

impl Outputs {
    fn images(&self) -> usize {
        self.probabilities.len() / self.classes.max(1)
    }

    fn check(&self, what: &str) -> Result<usize> {
        let n = self.images();
        if self.classes == 0
            || self.probabilities.len() != n * self.classes
            || self.latent.len() != n * self.latent_dim
        {
            return Err(Error::setting(
                "agreement",
                format!(
                    "{what}: {} probabilities and {} latent values do not make whole rows of {} classes and {} latent dimensions",
                    self.probabilities.len(),
                    self.latent.len(),
                    self.classes,
                    self.latent_dim
                ),
            ).into());
        }
        Ok(n)
    }

    /// Predicted class of each image (the first of equal maxima).
    pub fn top1(&self) -> Vec<usize> {
        self.probabilities
            .chunks(self.classes.max(1))
            .map(|row| {
                row.iter()
                    .enumerate()
                    .fold((0, f32::NEG_INFINITY), |best, (k, &p)| {
                        if p > best.1 {
                            (k, p)
                        } else {
                            best
                        }
                    })
                    .0
            })
            .collect()
    }
}

/// Cosine similarity of two vectors; 1 when both are zero, 0 when only one is.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    match (na > 0.0, nb > 0.0) {
        (true, true) => dot / (na * nb),
        (false, false) => 1.0,
        _ => 0.0,
    }
}

/// A variant against the reference on the same images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    /// Images compared.
    pub images: usize,
    /// Fraction of images where both predict the same class.
    pub top1_agreement: f64,
    /// Reference accuracy (when labels are known).
    pub accuracy_reference: Option<f64>,
    /// Variant accuracy minus reference accuracy.
    pub accuracy_delta: Option<f64>,
    /// Reference within-1 accuracy.
    pub within1_reference: Option<f64>,
    /// Variant within-1 accuracy minus the reference's.
    pub within1_delta: Option<f64>,
    /// Mean cosine similarity of the latents.
    pub latent_cosine_mean: f64,
    /// Smallest cosine similarity of the latents.
    pub latent_cosine_min: f64,
    /// Largest absolute difference of any probability.
    pub max_probability_diff: f64,
}

/// Compares `variant` with `reference`; `labels` (one per image) add the accuracy deltas.
pub fn agreement(
    reference: &Outputs,
    variant: &Outputs,
    labels: Option<&[u32]>,
) -> Result<Agreement> {
    let n = reference.check("reference")?;
    let m = variant.check("variant")?;
    if n != m || reference.classes != variant.classes || reference.latent_dim != variant.latent_dim
    {
        return Err(Error::setting(
            "agreement",
            format!(
                "reference has {n} images x {} classes x {} latent, variant {m} x {} x {}",
                reference.classes, reference.latent_dim, variant.classes, variant.latent_dim
            ),
        )
        .into());
    }
    if n == 0 {
        return Err(Error::setting("agreement", "no images to compare").into());
    }
    if let Some(l) = labels {
        if l.len() != n {
            return Err(
                Error::setting("agreement", format!("{} labels for {n} images", l.len())).into(),
            );
        }
    }
    let (a, b) = (reference.top1(), variant.top1());
    let frac = |count: usize| count as f64 / n as f64;
    let same = frac(a.iter().zip(&b).filter(|(x, y)| x == y).count());
    let scored = |pred: &[usize], tol: usize| {
        labels.map(|l| {
            frac(
                pred.iter()
                    .zip(l)
                    .filter(|(p, &y)| p.abs_diff(y as usize) <= tol)
                    .count(),
            )
        })
    };
    let delta = |r: Option<f64>, v: Option<f64>| r.zip(v).map(|(r, v)| v - r);
    let d = reference.latent_dim.max(1);
    let cos: Vec<f64> = if reference.latent_dim == 0 {
        vec![1.0]
    } else {
        reference
            .latent
            .chunks(d)
            .zip(variant.latent.chunks(d))
            .map(|(x, y)| cosine(x, y))
            .collect()
    };
    Ok(Agreement {
        images: n,
        top1_agreement: same,
        accuracy_reference: scored(&a, 0),
        accuracy_delta: delta(scored(&a, 0), scored(&b, 0)),
        within1_reference: scored(&a, 1),
        within1_delta: delta(scored(&a, 1), scored(&b, 1)),
        latent_cosine_mean: cos.iter().sum::<f64>() / cos.len() as f64,
        latent_cosine_min: cos.iter().copied().fold(f64::INFINITY, f64::min),
        max_probability_diff: reference
            .probabilities
            .iter()
            .zip(&variant.probabilities)
            .map(|(x, y)| (*x as f64 - *y as f64).abs())
            .fold(0.0, f64::max),
    })
}

/// One file in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantReport {
    /// File name.
    pub file: String,
    /// `fp32`, `fp16` or `int8`.
    pub precision: String,
    /// INT8 layout (`qdq`, `qoperator`), if any.
    pub format: Option<String>,
    /// File size in bytes.
    pub bytes: u64,
    /// Mean inference time per image on the report's backend (batch as run), in milliseconds.
    pub ms_per_image: f64,
    /// Against FP32 (for the FP32 file itself: with itself, as a check of the harness).
    pub agreement: Agreement,
}

/// The agreement report of an export: `agreement.json` and `agreement.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Validation catalog.
    pub validation: String,
    /// Backend that ran the files.
    pub backend: String,
    /// One entry per file.
    pub variants: Vec<VariantReport>,
}

fn opt_pct(v: Option<f64>) -> String {
    v.map(|x| format!("{:+.2}", 100.0 * x))
        .unwrap_or_else(|| "-".into())
}

impl Report {
    /// A Markdown table of the report.
    pub fn to_markdown(&self) -> String {
        let mut s = format!(
            "# Agreement with FP32\n\nValidation catalog: `{}`; backend: {}; {} images.\n\n\
             | file | precision | size (KiB) | ms/image | top-1 agreement (%) | accuracy delta (pp) | within-1 delta (pp) | latent cosine mean | latent cosine min | max prob. diff |\n\
             | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
            self.validation,
            self.backend,
            self.variants.first().map(|v| v.agreement.images).unwrap_or(0)
        );
        for v in &self.variants {
            let a = &v.agreement;
            s += &format!(
                "| {} | {}{} | {:.1} | {:.3} | {:.2} | {} | {} | {:.5} | {:.5} | {:.2e} |\n",
                v.file,
                v.precision,
                v.format
                    .as_deref()
                    .map(|f| format!(" ({f})"))
                    .unwrap_or_default(),
                v.bytes as f64 / 1024.0,
                v.ms_per_image,
                100.0 * a.top1_agreement,
                opt_pct(a.accuracy_delta),
                opt_pct(a.within1_delta),
                a.latent_cosine_mean,
                a.latent_cosine_min,
                a.max_probability_diff
            );
        }
        if let Some(r) = self.variants.first() {
            s += &format!(
                "\nFP32 accuracy {}%, within-1 {}%.\n",
                r.agreement
                    .accuracy_reference
                    .map(|x| format!("{:.2}", 100.0 * x))
                    .unwrap_or("-".into()),
                r.agreement
                    .within1_reference
                    .map(|x| format!("{:.2}", 100.0 * x))
                    .unwrap_or("-".into())
            );
        }
        s
    }

    /// Writes `agreement.json` and `agreement.md` into `dir`, atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::setting("agreement report", e.to_string()))?;
        deepgalaxy_core::io::write_atomic(&dir.join("agreement.json"), |f| {
            std::io::Write::write_all(f, &json)
        })?;
        let md = self.to_markdown();
        deepgalaxy_core::io::write_atomic(&dir.join("agreement.md"), |f| {
            std::io::Write::write_all(f, md.as_bytes())
        })
        .map_err(Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outputs(probs: &[[f32; 3]], latent: &[[f32; 2]]) -> Outputs {
        Outputs {
            probabilities: probs.iter().flatten().copied().collect(),
            latent: latent.iter().flatten().copied().collect(),
            classes: 3,
            latent_dim: 2,
        }
    }

    #[test]
    fn metrics_count_what_they_say() {
        let r = outputs(
            &[
                [0.7, 0.2, 0.1],
                [0.1, 0.8, 0.1],
                [0.2, 0.3, 0.5],
                [0.6, 0.3, 0.1],
            ],
            &[[1.0, 0.0], [0.0, 2.0], [3.0, 4.0], [1.0, 1.0]],
        );
        let v = outputs(
            &[
                [0.6, 0.3, 0.1],
                [0.1, 0.8, 0.1],
                [0.5, 0.3, 0.2],
                [0.3, 0.6, 0.1],
            ],
            &[[1.0, 0.0], [0.0, 1.0], [4.0, 3.0], [-1.0, -1.0]],
        );
        // labels 0, 1, 2, 1: reference right on 3 (wrong on the last, by one class);
        // variant predicts 0, 1, 0, 1: right on 3, and its miss is two classes off
        let a = agreement(&r, &v, Some(&[0, 1, 2, 1])).unwrap();
        assert_eq!(a.images, 4);
        assert_eq!(a.top1_agreement, 0.5);
        assert_eq!(a.accuracy_reference, Some(0.75));
        assert_eq!(a.accuracy_delta, Some(0.0));
        assert_eq!(a.within1_reference, Some(1.0));
        assert_eq!(a.within1_delta, Some(-0.25));
        // cosines 1, 1, 24/25, -1
        assert!((a.latent_cosine_mean - (1.0 + 1.0 + 0.96 - 1.0) / 4.0).abs() < 1e-12);
        assert!((a.latent_cosine_min + 1.0).abs() < 1e-12);
        assert!((a.max_probability_diff - 0.3).abs() < 1e-6);
        let same = agreement(&r, &r, None).unwrap();
        assert_eq!((same.top1_agreement, same.accuracy_delta), (1.0, None));
        assert!((same.latent_cosine_min - 1.0).abs() < 1e-12);
        assert_eq!(same.max_probability_diff, 0.0);
    }

    #[test]
    fn mismatched_outputs_are_errors() {
        let r = outputs(&[[0.7, 0.2, 0.1]], &[[1.0, 0.0]]);
        let mut v = r.clone();
        v.latent.push(0.0);
        assert!(agreement(&r, &v, None)
            .unwrap_err()
            .to_string()
            .contains("whole rows"));
        assert!(agreement(&r, &r, Some(&[0, 1]))
            .unwrap_err()
            .to_string()
            .contains("2 labels for 1 images"));
        assert_eq!(cosine(&[0.0, 0.0], &[0.0, 0.0]), 1.0);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
    }

    #[test]
    fn the_report_is_written_as_json_and_markdown() {
        let r = outputs(&[[0.7, 0.2, 0.1]], &[[1.0, 0.0]]);
        let report = Report {
            validation: "val.csv".into(),
            backend: "tract".into(),
            variants: vec![VariantReport {
                file: "model.int8.onnx".into(),
                precision: "int8".into(),
                format: Some("qdq".into()),
                bytes: 2048,
                ms_per_image: 0.5,
                agreement: agreement(&r, &r, Some(&[0])).unwrap(),
            }],
        };
        let dir = tempfile::tempdir().unwrap();
        report.write(dir.path()).unwrap();
        let back: Report =
            serde_json::from_slice(&std::fs::read(dir.path().join("agreement.json")).unwrap())
                .unwrap();
        assert_eq!(back, report);
        let md = std::fs::read_to_string(dir.path().join("agreement.md")).unwrap();
        assert!(
            md.contains("| model.int8.onnx | int8 (qdq) | 2.0 | 0.500 | 100.00 | +0.00 |"),
            "{md}"
        );
    }
}
