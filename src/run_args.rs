//! Arguments shared by the commands that run an exported model (`predict`, `embed`, `index`,
//! `search`, `interpolate`), and the progress bar they show.

use std::path::{Path, PathBuf};

use anyhow::Context;
use deepgalaxy_collective::Collective;
use deepgalaxy_runtime::inference::backend::BackendKind;
use deepgalaxy_runtime::inference::infer::{run_items, run_items_in_order, SampleResult};
use deepgalaxy_runtime::inference::inputs::InputItem;
use deepgalaxy_runtime::inference::model::{Model, RunOptions};
use deepgalaxy_runtime::inference::sharded::run_sharded;
use indicatif::{ProgressBar, ProgressStyle};

/// Which model file and how to run it.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelArgs {
    /// The exported model (model.onnx, or a reduced-precision variant); default: the model
    /// that ships with deepgalaxy (shipped/MODEL.md), built into this program.
    #[arg(long)]
    pub model: Option<PathBuf>,
    #[command(flatten)]
    pub run: RunArgs,
}

impl ModelArgs {
    /// The model file's path, or the shipped model's place in the repository.
    pub fn path(&self) -> PathBuf {
        self.model
            .clone()
            .unwrap_or_else(|| PathBuf::from(crate::shipped::PATH))
    }

    /// Opens the chosen model, or the shipped one.
    pub fn open(&self) -> anyhow::Result<Model> {
        match &self.model {
            Some(path) => self.run.open(path),
            None => Model::from_bytes(
                Path::new(crate::shipped::PATH),
                crate::shipped::MODEL,
                self.run.options(),
            )
            .context("cannot open the shipped model"),
        }
    }
}

/// How to run a model.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct RunArgs {
    /// Inference engine: tract (pure Rust) or ort (ONNX Runtime; build with `--features ort`
    /// and set ORT_DYLIB_PATH).
    #[arg(long, default_value = "tract")]
    pub backend: BackendKind,
    /// Threads (tract: one single-threaded run per thread; ort: intra-op threads), 1 to 256.
    #[arg(long, default_value_t = default_threads(), value_parser = in_range(1, MAX_THREADS))]
    pub threads: usize,
    /// Images per inference run, 1 to 1024 (the images of a few runs are held in memory at
    /// once).
    #[arg(long, default_value_t = 8, value_parser = in_range(1, MAX_BATCH))]
    pub batch_size: usize,
}

/// Most threads `--threads` accepts.
pub const MAX_THREADS: u64 = 256;
/// Most images per run `--batch-size` accepts: inference holds a few batches of preprocessed
/// images at once, so this bounds its memory whatever the number of inputs.
pub const MAX_BATCH: u64 = 1024;

/// A parser for a whole number in `lo..=hi`; clap refuses anything else with a message giving
/// the range.
pub fn in_range(lo: u64, hi: u64) -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(lo..=hi)
}

/// A finite number above zero (a width multiplier, a scale).
#[cfg(feature = "full")]
pub fn positive_f32(text: &str) -> Result<f32, String> {
    match text.parse::<f32>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        Ok(x) => Err(format!("{x} is not a positive number")),
        Err(e) => Err(e.to_string()),
    }
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_THREADS as usize))
}

impl RunArgs {
    /// Opens `path` with these settings.
    pub fn open(&self, path: &Path) -> anyhow::Result<Model> {
        Model::open(path, self.options())
            .with_context(|| format!("cannot open the model {}", path.display()))
    }

    /// The runtime's settings.
    pub fn options(&self) -> RunOptions {
        RunOptions {
            backend: self.backend,
            threads: self.threads,
            batch: self.batch_size,
        }
    }
}

/// Runs `model` on `items` behind a progress bar on stderr.
pub fn run_with_progress(model: &Model, items: &[InputItem], what: &str) -> Vec<SampleResult> {
    let bar = progress_bar(items.len(), what);
    let results = run_items(model, items, &|done| bar.set_position(done as u64));
    bar.finish_and_clear();
    results
}

/// [`run_sharded`] behind a progress bar on stderr (on rank 0, over its own part).
pub fn run_sharded_with_progress(
    comm: &dyn Collective,
    model: &Model,
    items: &[InputItem],
) -> anyhow::Result<Option<Vec<SampleResult>>> {
    let bar = progress_bar(0, "predict");
    let results = run_sharded(comm, model, items, &|done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64)
    })?;
    bar.finish_and_clear();
    Ok(results)
}

/// [`run_items_in_order`] behind a progress bar on stderr: `keep` on the workers, `emit` here
/// in input order.
pub fn run_in_order_with_progress<T: Send, E>(
    model: &Model,
    items: &[InputItem],
    what: &str,
    keep: &(dyn Fn(usize, SampleResult) -> T + Sync),
    emit: &mut dyn FnMut(usize, T) -> Result<(), E>,
) -> Result<(), E> {
    let bar = progress_bar(items.len(), what);
    let outcome = run_items_in_order(
        model,
        items,
        &|done| bar.set_position(done as u64),
        keep,
        emit,
    );
    bar.finish_and_clear();
    outcome
}

fn progress_bar(len: usize, what: &str) -> ProgressBar {
    ProgressBar::new(len as u64).with_style(
        ProgressStyle::with_template(&format!(
            "{what} {{bar:40}} {{pos}}/{{len}} images, {{per_sec}}, eta {{eta}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    )
}

/// Reports the inputs that failed on stderr; an error (so the exit code says so) when any did.
pub fn report_failures(items: &[InputItem], results: &[SampleResult]) -> anyhow::Result<()> {
    report_errors(items.len(), results.iter().filter_map(|r| r.as_ref().err()))
}

/// [`report_failures`] from the errors of `total` inputs.
pub fn report_errors<'a>(
    total: usize,
    errors: impl Iterator<Item = &'a String>,
) -> anyhow::Result<()> {
    let failed: Vec<&String> = errors.collect();
    for e in &failed {
        eprintln!("failed: {e}");
    }
    if failed.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "{} of {} images could not be processed (listed above; the others' results were written)",
            failed.len(),
            total
        )
    }
}
