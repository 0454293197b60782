//! `deepgalaxy predict` and `deepgalaxy embed`: run an exported model over images and write
//! the timescale predictions or the latent vectors.

use std::io::Write;
use std::path::PathBuf;

use deepgalaxy_runtime::inputs::expand;
use deepgalaxy_runtime::predict::{
    predictions, score, to_bytes, write_predictions, Format, Predictor,
};

use crate::run_args::{report_errors, report_failures, run_with_progress, ModelArgs};

/// Predict the merger timescale of images with an exported model.
#[derive(Debug, clap::Args)]
pub struct PredictArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Images: files, folders (searched recursively), glob patterns or catalogs (.csv).
    #[arg(required = true)]
    pub inputs: Vec<String>,
    /// Classes listed per image, most probable first (at least 1).
    #[arg(short, long, default_value_t = 3, value_parser = crate::run_args::in_range(1, u64::MAX))]
    pub k: usize,
    /// Also write each image's latent vector (the VAE mean).
    #[arg(long)]
    pub latent: bool,
    /// Output file (.csv or .json); CSV on standard output when absent.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Shard the inputs over MPI ranks (`mpirun -np N`; a build with the `mpi` feature); rank
    /// 0 writes the one output, in input order.
    #[arg(long)]
    pub distributed: bool,
}

/// Runs `predict`.
pub fn run(args: &PredictArgs) -> anyhow::Result<()> {
    let comm = crate::distributed::communicator(args.distributed)?;
    let comm = comm.as_ref();
    let opened = args
        .model
        .run
        .open(&args.model.model)
        .and_then(|m| Ok((m, expand(&args.inputs)?)));
    let (model, items) = crate::distributed::agreed(comm, "opening the model and inputs", opened)?;
    let predictor = Predictor::new(model.output_names(), model.card(), args.k, args.latent)?;
    let preds = if comm.size() == 1 {
        // each image's outputs become its prediction as soon as they are computed, so memory
        // holds a few numbers per image, not every output row
        crate::run_args::run_with_progress_map(&model, &items, "predict", &|i, r| {
            predictor.predict(&items[i], &r)
        })
    } else {
        let Some(results) = crate::distributed::run_sharded(comm, &model, &items, "predict")?
        else {
            return Ok(());
        };
        predictions(
            &items,
            &results,
            model.output_names(),
            model.card(),
            args.k,
            args.latent,
        )?
    };
    match &args.output {
        Some(path) => {
            write_predictions(path, &preds)?;
            eprintln!("wrote {} predictions to {}", preds.len(), path.display());
        }
        None => std::io::stdout().write_all(&to_bytes(&preds, Format::Csv)?)?,
    }
    if let Some(s) = score(&preds) {
        eprintln!(
            "{} labelled images: top-1 {:.3}, within-1 {:.3}, within-2 {:.3}, MAE {:.1} Myr",
            s.count, s.top1, s.within1, s.within2, s.mae_myr
        );
    }
    report_errors(items.len(), preds.iter().filter_map(|p| p.error.as_ref()))
}

/// Write the latent vectors (VAE means) of images.
#[derive(Debug, clap::Args)]
pub struct EmbedArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Images: files, folders, glob patterns or catalogs (.csv).
    #[arg(required = true)]
    pub inputs: Vec<String>,
    /// Output file (.csv or .json); CSV on standard output when absent.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// Runs `embed`: the predictions' writer with the latent and without classes.
pub fn embed(args: &EmbedArgs) -> anyhow::Result<()> {
    let model = args.model.run.open(&args.model.model)?;
    if !model.output_names().iter().any(|n| n == "latent") {
        anyhow::bail!(
            "{} has no `latent` output (is it model.onnx?)",
            model.path().display()
        );
    }
    let items = expand(&args.inputs)?;
    let results = run_with_progress(&model, &items, "embed");
    let mut preds = predictions(
        &items,
        &results,
        model.output_names(),
        model.card(),
        1,
        true,
    )?;
    for p in &mut preds {
        p.top.clear();
        p.t_myr = None;
        p.t_myr_spread = None;
    }
    match &args.output {
        Some(path) => {
            write_predictions(path, &preds)?;
            eprintln!("wrote {} latents to {}", preds.len(), path.display());
        }
        None => std::io::stdout().write_all(&to_bytes(&preds, Format::Csv)?)?,
    }
    report_failures(&items, &results)
}
