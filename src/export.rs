//! `deepgalaxy export`: arguments; the work is deepgalaxy-export's.

use std::path::PathBuf;

use deepgalaxy_export::calibrate::Method;
use deepgalaxy_export::quantize::ActivationType;
use deepgalaxy_export::variants::{ExportOptions, Int8Format, Int8Options, Precision};

use crate::run_args::RunArgs;

/// Export a checkpoint to ONNX (model, autoencoder, decoder) with its model card.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// A training output folder (or its checkpoint/ folder).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Folder for model.onnx, autoencoder.onnx, decoder.onnx and the variants
    /// (model.fp16.onnx, ..., model.int8.onnx, model.int8.qop.onnx).
    #[arg(long)]
    pub out: PathBuf,
    /// Precisions to write, comma-separated: fp32 (always written: the reference), fp16, int8.
    #[arg(long, default_value = "fp32")]
    pub precision: String,
    /// INT8: catalog of calibration images (labels not needed).
    #[arg(long)]
    pub calibration: Option<PathBuf>,
    /// INT8: number of calibration images, spread evenly over the catalog.
    #[arg(long, default_value_t = 256)]
    pub calibration_size: usize,
    /// INT8: how ranges are taken from the calibration activations: minmax, percentile
    /// (99.99), percentile:P, or entropy.
    #[arg(long, default_value = "percentile")]
    pub calibration_method: String,
    /// INT8: activation type, u8 or s8 (weights are always int8, symmetric per channel).
    #[arg(long, default_value = "u8")]
    pub activations: String,
    /// INT8: graph layout, qdq, qoperator or both.
    #[arg(long, default_value = "qdq")]
    pub int8_format: String,
    /// INT8: a Conv or Gemm node to keep in float (repeatable), e.g. vae.mu.
    #[arg(long = "float-layer")]
    pub float_layers: Vec<String>,
    /// Agreement report: run every model variant on this catalog's images and compare it with
    /// FP32 (agreement.json and agreement.md in --out).
    #[arg(long)]
    pub validation: Option<PathBuf>,
    /// Agreement report: at most this many validation images, spread evenly.
    #[arg(long, default_value_t = 256)]
    pub validation_size: usize,
    /// How the agreement report runs the models.
    #[command(flatten)]
    pub run: RunArgs,
}

impl ExportArgs {
    /// The library's options, with every value checked.
    pub fn options(&self) -> anyhow::Result<ExportOptions> {
        let precisions = Precision::parse_list(&self.precision)?;
        let int8 = match &self.calibration {
            Some(calibration) => Some(Int8Options {
                calibration: calibration.clone(),
                size: self.calibration_size,
                method: Method::parse(&self.calibration_method)?,
                activations: ActivationType::parse(&self.activations)?,
                formats: Int8Format::parse(&self.int8_format)?,
                float_nodes: self.float_layers.clone(),
            }),
            None if precisions.contains(&Precision::Int8) => {
                anyhow::bail!("--precision int8 needs --calibration CATALOG (calibration images)")
            }
            None => None,
        };
        Ok(ExportOptions { precisions, int8 })
    }
}

/// Runs `deepgalaxy export`.
pub fn run(args: &ExportArgs) -> anyhow::Result<()> {
    let opts = args.options()?;
    let nested = args.checkpoint.join("checkpoint");
    let dir = if nested.is_dir() {
        nested
    } else {
        args.checkpoint.clone()
    };
    let written = deepgalaxy_export::export_checkpoint(&dir, &args.out, &opts)?;
    for w in &written {
        println!("wrote {} ({})", w.path.display(), w.precision.name());
    }
    if let Some(validation) = &args.validation {
        let report = crate::agreement::report(
            &written,
            validation,
            args.validation_size,
            &args.run,
            &args.out,
        )?;
        print!("{}", report.to_markdown());
        println!(
            "wrote {} and {}",
            args.out.join("agreement.json").display(),
            args.out.join("agreement.md").display()
        );
    }
    Ok(())
}
