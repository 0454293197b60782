//! The model card as a Markdown page (`deepgalaxy inspect model.onnx --markdown`), for the
//! people who receive a model rather than the programs that run it.

use std::fmt::Write;

use super::ModelCard;
use crate::time::{TimeScore, TimeTarget};

impl ModelCard {
    /// The card as Markdown under the heading `title`: what the model answers, what it expects
    /// as input, what it was trained, validated and tested on, and how it scored.
    pub fn to_markdown(&self, title: &str) -> String {
        let mut md = format!("# {title}\n\n");
        let (first, last) = (
            self.class_t_myr.first().copied().unwrap_or(f64::NAN),
            self.class_t_myr.last().copied().unwrap_or(f64::NAN),
        );
        let question = match self.target {
            TimeTarget::TPeri => {
                "the time since the two galaxies' first pericentre passage (negative before it)"
            }
            TimeTarget::Snapshot => {
                "the time since the start of the simulation (the snapshot label)"
            }
        };
        let _ = writeln!(
            md,
            "From one image of a galaxy merger, {question}, in Myr: {} classes from {first:.1} to {last:.1} Myr, read out as the expected time and its spread{}.\n",
            self.num_classes,
            self.time_sigma_scale.map_or(String::new(), |s| format!(
                " (the spread is multiplied by {s:.3}, fitted on the validation mergers so that 68% of their truths fall within it)"
            ))
        );
        md += "| | |\n| --- | --- |\n";
        let rows = [
            ("precision", self.precision.clone()),
            (
                "input",
                format!(
                    "{0} x {0} x {1} channel(s)",
                    self.preprocess.size, self.preprocess.channels
                ),
            ),
            ("preprocessing", format!("`{}`", compact(&self.preprocess))),
            ("architecture", format!("`{}`", compact(&self.model_spec))),
            (
                "latent size",
                self.latent_dim.map_or("-".into(), |d| d.to_string()),
            ),
            ("split", self.split.clone().unwrap_or("-".into())),
            (
                "training data (SHA-256)",
                self.training_digest.clone().unwrap_or("-".into()),
            ),
            ("tool version", self.tool_version.clone()),
        ];
        for (k, v) in rows {
            let _ = writeln!(md, "| {k} | {v} |");
        }
        if let Some(q) = &self.quantization {
            let _ = writeln!(
                md,
                "| quantization | {} {}, activations {}, {} calibration over {} images of the training mergers |",
                q.format, q.weights, q.activations, q.method, q.calibration_images
            );
        }
        md.push('\n');
        if let Some(s) = &self.simulations {
            md += "## Mergers\n\n";
            for (part, list) in [
                ("Trained on", &s.train),
                (
                    "Validated on (early stopping, spread calibration)",
                    &s.validation,
                ),
                ("Held out for testing", &s.test),
            ] {
                let _ = writeln!(md, "- {part} ({}): {}", list.len(), list.join(", "));
            }
            md.push('\n');
        }
        match &self.test {
            Some(t) => {
                let _ = writeln!(
                    md,
                    "## Scores on mergers it never saw\n\n{} images of {} mergers ({}), from the catalog with SHA-256 {}.\n",
                    t.score.count,
                    t.simulations.len(),
                    t.simulations.join(", "),
                    t.data_digest
                );
                md += &score_table(&t.score, &t.baseline);
            }
            None => md += "## Scores on mergers it never saw\n\nNot recorded (`deepgalaxy evaluate --record` adds them).\n",
        }
        if !self.metrics.is_empty() {
            md += "\n## Validation, last epoch\n\n| metric | value |\n| --- | --- |\n";
            for (k, v) in &self.metrics {
                let _ = writeln!(md, "| {k} | {v:.4} |");
            }
        }
        md
    }
}

/// The model's time errors beside the constant answer's.
fn score_table(model: &TimeScore, constant: &TimeScore) -> String {
    let pct = |x: f64| format!("{:.1}%", 100.0 * x);
    let myr = |x: f64| format!("{x:.1}");
    let mut md = String::from("| | model | constant answer |\n| --- | --- | --- |\n");
    for (name, ours, theirs) in [
        (
            "median absolute error (Myr)",
            myr(model.median_abs_myr),
            myr(constant.median_abs_myr),
        ),
        (
            "mean absolute error (Myr)",
            myr(model.mean_abs_myr),
            myr(constant.mean_abs_myr),
        ),
        (
            "within ±10 Myr",
            pct(model.within_10_myr),
            pct(constant.within_10_myr),
        ),
        (
            "within ±25 Myr",
            pct(model.within_25_myr),
            pct(constant.within_25_myr),
        ),
        // a constant answer has no spread to cover the truth with
        (
            "truth within 1 sigma (68% if honest)",
            pct(model.coverage_1sigma),
            "-".into(),
        ),
        (
            "truth within 2 sigma (95% if honest)",
            pct(model.coverage_2sigma),
            "-".into(),
        ),
    ] {
        let _ = writeln!(md, "| {name} | {ours} | {theirs} |");
    }
    md
}

/// One line of JSON (the card's parts always serialise; an empty string otherwise).
fn compact<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}
