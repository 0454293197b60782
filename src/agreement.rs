//! The agreement report of `deepgalaxy export --validation CATALOG`: every exported
//! `model.*.onnx` is run with the chosen backend on the same validation images and compared
//! with `model.onnx` by deepgalaxy-export's metrics; written as `agreement.json` and
//! `agreement.md` next to the models.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use deepgalaxy_core::Catalog;
use deepgalaxy_export::bundle::Written;
use deepgalaxy_export::onnx::Target;
use deepgalaxy_export::variants::{spread, Precision};
use deepgalaxy_runtime::analysis::agreement::{agreement, Outputs, Report, VariantReport};
use deepgalaxy_runtime::inference::inputs::{from_catalog, InputItem};
use deepgalaxy_runtime::inference::model::Model;

use crate::run_args::{report_failures, run_with_progress, RunArgs};

/// Probabilities and latents of `model` on `items`.
fn outputs(model: &Model, items: &[InputItem], what: &str) -> anyhow::Result<Outputs> {
    let results = run_with_progress(model, items, what);
    report_failures(items, &results)?;
    let (p, z) = (
        model.output_index("probabilities")?,
        model.output_index("latent")?,
    );
    let mut out = Outputs {
        probabilities: vec![],
        latent: vec![],
        classes: model.card().num_classes,
        latent_dim: model.card().latent_dim.unwrap_or(0),
    };
    for r in results.into_iter().flatten() {
        out.probabilities.extend(&r.rows[p]);
        out.latent.extend(&r.rows[z]);
    }
    Ok(out)
}

/// Inference time per image in milliseconds: one batch of the first images, prepared once,
/// run until half a second has passed (at least 3 times, at most 50).
fn ms_per_image(model: &Model, items: &[InputItem]) -> anyhow::Result<f64> {
    let n = model.options().batch.min(items.len()).max(1);
    let mut data = Vec::new();
    for item in &items[..n] {
        let image = deepgalaxy_core::image::load(&item.path)?;
        data.extend(model.prepare(&image, &item.path)?);
    }
    model.run(data.clone(), n)?; // warm-up
    let start = Instant::now();
    let mut runs = 0;
    while runs < 3 || (runs < 50 && start.elapsed().as_secs_f64() < 0.5) {
        model.run(data.clone(), n)?;
        runs += 1;
    }
    Ok(1000.0 * start.elapsed().as_secs_f64() / (runs * n) as f64)
}

/// Runs every written `model*.onnx` on up to `size` images of `validation` (spread evenly) and
/// writes the report into `out`.
pub fn report(
    written: &[Written],
    validation: &Path,
    size: usize,
    run: &RunArgs,
    out: &Path,
) -> anyhow::Result<Report> {
    let catalog = Catalog::read(validation)?;
    let all = from_catalog(&catalog);
    let items: Vec<InputItem> = spread(all.len(), size)
        .into_iter()
        .map(|i| all[i].clone())
        .collect();
    let labels: Option<Vec<u32>> = items.iter().map(|i| i.label).collect();
    let models: Vec<&Written> = written
        .iter()
        .filter(|w| w.target == Target::Model)
        .collect();
    let reference = models
        .iter()
        .find(|w| w.precision == Precision::Fp32)
        .context("the export wrote no FP32 model.onnx to compare with")?;
    let reference_model = run.open(&reference.path)?;
    let reference_out = outputs(&reference_model, &items, "model.onnx")?;
    let mut variants = Vec::new();
    for w in &models {
        let file = w
            .path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let model = run.open(&w.path)?;
        let out = if w.precision == Precision::Fp32 {
            reference_out.clone()
        } else {
            outputs(&model, &items, &file)?
        };
        variants.push(VariantReport {
            file,
            precision: w.precision.name().into(),
            format: w.format.map(|f| f.name().into()),
            bytes: std::fs::metadata(&w.path)
                .with_context(|| w.path.display().to_string())?
                .len(),
            ms_per_image: ms_per_image(&model, &items)?,
            agreement: agreement(&reference_out, &out, labels.as_deref())?,
        });
    }
    let report = Report {
        validation: validation.display().to_string(),
        backend: run.backend.name().into(),
        variants,
    };
    report.write(out)?;
    Ok(report)
}
