//! `deepgalaxy bench precision`: exports a checkpoint's variants (or takes a folder of them)
//! and runs `deepgalaxy_runtime::benchmark::precision` on them: throughput, speed-up over
//! FP32, accuracy and agreement per precision x backend x batch x threads, beside Python
//! onnxruntime; with INT8, ONNX Runtime's own quantizer on the same file is measured beside
//! ours (`model.int8.ort.onnx`). Writes report.md, results.json and plots.

use std::path::{Path, PathBuf};

use anyhow::Context;
use deepgalaxy_runtime::benchmark::precision::{measure, variants, Plan};
use deepgalaxy_runtime::inference::backend::BackendKind;

use deepgalaxy_core::card::{digest_file, ModelCard, Quantization};
use deepgalaxy_export::onnx::set_card;
use deepgalaxy_export::variants::{calibration_batches, Int8Options, Precision};
use deepgalaxy_runtime::benchmark::peer;

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
    let options = args.int8.options(&args.precision, fallback.as_deref())?;
    export(checkpoint, &dir, &options)
        .with_context(|| format!("exporting {}", checkpoint.display()))?;
    if let Some(int8) = &options.int8 {
        if let Err(why) = peer_quantized(&dir, int8)? {
            eprintln!("ONNX Runtime's quantizer not measured: {why}");
        }
    }
    Ok(dir)
}

/// ONNX Runtime's own static quantizer (`benches/quantize_peer.py`: QDQ, per-channel int8
/// weights, u8 activations, min-max) on the same `model.onnx` with the same calibration images
/// as ours, written as `model.int8.ort.onnx` with a card that says so, so that both INT8 files
/// are measured side by side. `Ok(Err(why))` when the Python peer cannot run.
fn peer_quantized(
    dir: &Path,
    int8: &Int8Options,
) -> anyhow::Result<std::result::Result<(), String>> {
    let fp32 = dir.join("model.onnx");
    let model = deepgalaxy_export::onnx::read(&fp32)?;
    let card = ModelCard::from_metadata(
        model
            .metadata_props
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str())),
        &fp32,
    )?;
    let batches = calibration_batches(int8, &card.preprocess, card.simulations.as_ref())?;
    let mut bytes = Vec::new();
    let mut n = 0;
    for b in &batches {
        n += b.dims()[0];
        for v in b.flatten_all()?.to_vec1::<f32>()? {
            bytes.extend(v.to_le_bytes());
        }
    }
    let raw = dir.join("calibration.f32");
    deepgalaxy_core::io::write_atomic(&raw, |f| std::io::Write::write_all(f, &bytes))?;
    let out = dir.join("model.int8.ort.onnx");
    let (c, s) = (card.preprocess.channels, card.preprocess.size);
    let ran = peer::run_json(
        &super::peer_script("quantize_peer.py"),
        &[&fp32, &raw]
            .map(|p| p.display().to_string())
            .into_iter()
            .chain([n as u32, c, s, s].map(|d| d.to_string()))
            .chain([out.display().to_string()])
            .collect::<Vec<_>>(),
    );
    std::fs::remove_file(&raw).ok();
    if let Err(why) = ran {
        return Ok(Err(why));
    }
    let mut q = deepgalaxy_export::onnx::read(&out)?;
    let mut peer_card = card;
    peer_card.precision = Precision::Int8.name().into();
    peer_card.quantization = Some(Quantization {
        format: "qdq (onnxruntime quantize_static)".into(),
        weights: "int8 symmetric per output channel".into(),
        activations: "u8".into(),
        method: "minmax".into(),
        percentile: None,
        calibration_images: n,
        calibration_digest: digest_file(&int8.calibration)?,
        float_nodes: vec![],
    });
    set_card(&mut q, &peer_card)?;
    deepgalaxy_export::onnx::write(&out, &q)?;
    Ok(Ok(()))
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
        peer_script: super::peer_script("predict_peer.py"),
        out: args.out.clone(),
    };
    let results = measure(&plan)?;
    let command = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    print!("{}", results.write(&args.out, &command, &plan)?);
    Ok(())
}
