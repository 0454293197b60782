//! `deepgalaxy bench precision`: exports a checkpoint's variants (or takes a folder of them)
//! and runs `deepgalaxy_runtime::benchmark::precision` on them: throughput, speed-up over
//! FP32, accuracy and agreement per precision x backend x batch x threads, beside Python
//! onnxruntime. Writes report.md, results.json and plots.

use std::path::PathBuf;

use anyhow::Context;
use deepgalaxy_runtime::benchmark::precision::{measure, variants, Plan};
use deepgalaxy_runtime::inference::backend::BackendKind;

use crate::export::{checkpoint_folder, export, Int8Args};

/// Arguments of `bench precision`.
#[derive(Debug, clap::Args)]
pub struct PrecisionArgs {
    /// A training output folder (or its checkpoint/): its variants are exported into
    /// OUT/models first (see --precision and the INT8 options).
    #[arg(long, required_unless_present = "models", conflicts_with = "models")]
    pub checkpoint: Option<PathBuf>,
    /// Instead of --checkpoint, a folder of exported files: model.onnx and its variants
    /// (model.*.onnx).
    #[arg(long)]
    pub models: Option<PathBuf>,
    /// With --checkpoint: the precisions to export, comma-separated.
    #[arg(long, default_value = "fp32,fp16,int8")]
    pub precision: String,
    /// With --checkpoint: how INT8 is calibrated (default: on the catalog the checkpoint was
    /// trained on) and laid out.
    #[command(flatten)]
    pub int8: Int8Args,
    /// Labelled images for accuracy (a catalog), also the benchmark input.
    #[arg(long)]
    pub data: String,
    /// Images used.
    #[arg(long, default_value_t = 256)]
    pub images: usize,
    /// Timed passes per configuration (the median is quoted).
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Batch sizes.
    #[arg(long, value_delimiter = ',', default_value = "1,32",
          value_parser = crate::run_args::in_range(1, crate::run_args::MAX_BATCH))]
    pub batches: Vec<usize>,
    /// Thread counts.
    #[arg(long, value_delimiter = ',', default_value = "1,2",
          value_parser = crate::run_args::in_range(1, crate::run_args::MAX_THREADS))]
    pub threads: Vec<usize>,
    /// Runner of the accuracy pass (every file once, batch 32, 2 threads): tract, or ort when
    /// tract would be too slow (tract runs FP16 in software f16, ~1,300x FP32).
    #[arg(long, default_value = "tract")]
    pub accuracy_backend: BackendKind,
    /// A configuration whose pass over the images would take longer than this, judged from
    /// one image before any batch is run, is skipped (and reported as skipped).
    #[arg(long, default_value_t = 60.0)]
    pub max_pass_seconds: f64,
    /// Output folder.
    #[arg(long, default_value = "bench-results/precision")]
    pub out: PathBuf,
}

/// The folder of exported files to measure: `--models`, or `--checkpoint` exported into
/// OUT/models (INT8 calibrated on `--calibration`, else on the checkpoint's training catalog).
fn model_folder(args: &PrecisionArgs) -> anyhow::Result<PathBuf> {
    let Some(checkpoint) = &args.checkpoint else {
        return args
            .models
            .clone()
            .context("give --checkpoint (a training run) or --models (exported files)");
    };
    let trained_on = deepgalaxy_train::checkpoint::load_state(&checkpoint_folder(checkpoint))?
        .config
        .data;
    let fallback = (args.int8.calibration.is_none() && trained_on.is_file()).then_some(trained_on);
    let dir = args.out.join("models");
    export(
        checkpoint,
        &dir,
        &args.int8.options(&args.precision, fallback.as_deref())?,
    )
    .with_context(|| format!("exporting {}", checkpoint.display()))?;
    Ok(dir)
}

/// Runs `bench precision`.
pub fn run(args: &PrecisionArgs) -> anyhow::Result<()> {
    let plan = Plan {
        files: variants(&model_folder(args)?)?,
        data: args.data.clone(),
        images: args.images,
        repeats: args.repeats,
        batches: args.batches.clone(),
        threads: args.threads.clone(),
        accuracy_backend: args.accuracy_backend,
        max_pass_seconds: args.max_pass_seconds,
        peer_script: super::peer_script(),
        out: args.out.clone(),
    };
    let results = measure(&plan)?;
    let command = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    print!("{}", results.write(&args.out, &command, &plan)?);
    Ok(())
}
