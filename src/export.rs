//! `deepgalaxy export`: arguments; the work is deepgalaxy-export's.

use std::path::{Path, PathBuf};

use candle_core::Device;
use deepgalaxy_export::bundle::Written;
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
    /// INT8 is not written by default: on the small default encoder it runs slower than FP32
    /// on ONNX Runtime (its layers are too small for integer kernels to pay) and only makes
    /// the file smaller, about a quarter; it pays on heavy encoders (`benches/README.md`,
    /// "Reduced precision").
    #[arg(long, default_value = "fp32")]
    pub precision: String,
    /// How INT8 variants are calibrated and laid out.
    #[command(flatten)]
    pub int8: Int8Args,
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

/// INT8 settings, shared by `export` and `bench precision --checkpoint`.
#[derive(Debug, Clone, clap::Args)]
pub struct Int8Args {
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
    /// INT8: a Conv, Gemm or residual Add node to keep in float (repeatable), e.g. vae.mu.
    #[arg(long = "float-layer")]
    pub float_layers: Vec<String>,
    /// INT8: the first convolution in `integer` (the input normalisation folded into it,
    /// strided stems as space-to-depth, so the whole encoder runs in integers) or in `float`.
    #[arg(long, default_value = "integer", value_parser = ["integer", "float"])]
    pub int8_stem: String,
}

impl Int8Args {
    /// The library's options for the comma-separated `precision` list, with every value
    /// checked; INT8 calibrates on `--calibration`, else on `fallback` when given.
    pub fn options(
        &self,
        precision: &str,
        fallback: Option<&Path>,
    ) -> anyhow::Result<ExportOptions> {
        let precisions = Precision::parse_list(precision)?;
        let calibration = self.calibration.as_deref().or(fallback);
        let int8 = match calibration {
            Some(calibration) if precisions.contains(&Precision::Int8) => Some(Int8Options {
                calibration: calibration.to_path_buf(),
                size: self.calibration_size,
                method: Method::parse(&self.calibration_method)?,
                activations: ActivationType::parse(&self.activations)?,
                formats: Int8Format::parse(&self.int8_format)?,
                float_nodes: self.float_layers.clone(),
                integer_stem: self.int8_stem == "integer",
            }),
            Some(_) => None,
            None if precisions.contains(&Precision::Int8) => {
                anyhow::bail!("--precision int8 needs --calibration CATALOG (calibration images)")
            }
            None => None,
        };
        Ok(ExportOptions { precisions, int8 })
    }
}

/// The checkpoint folder of a training output folder, or `path` itself when it is one.
pub fn checkpoint_folder(path: &Path) -> PathBuf {
    let nested = path.join("checkpoint");
    if nested.is_dir() {
        nested
    } else {
        path.to_path_buf()
    }
}

/// Exports the checkpoint at `checkpoint` (a run folder or its checkpoint/) into `out` and
/// prints what was written.
pub fn export(checkpoint: &Path, out: &Path, opts: &ExportOptions) -> anyhow::Result<Vec<Written>> {
    let ck = deepgalaxy_train::checkpoint::load(&checkpoint_folder(checkpoint), &Device::Cpu)?;
    let written = deepgalaxy_export::export_model(&ck.graph, &ck.weights, &ck.card()?, out, opts)?;
    for w in &written {
        println!("wrote {} ({})", w.path.display(), w.precision.name());
    }
    Ok(written)
}

/// Runs `deepgalaxy export`.
pub fn run(args: &ExportArgs) -> anyhow::Result<()> {
    let opts = args.int8.options(&args.precision, None)?;
    let written = export(&args.checkpoint, &args.out, &opts)?;
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
