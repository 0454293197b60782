//! `deepgalaxy predict` and `deepgalaxy embed`: run an exported model over images and write
//! the timescale predictions or the latent vectors.

use std::io::Write;
use std::path::{Path, PathBuf};

use deepgalaxy_runtime::inference::inputs::{expand, InputItem};
use deepgalaxy_runtime::inference::model::Model;
use deepgalaxy_runtime::inference::predict::{
    predictions, to_bytes, write_predictions, write_stream, Columns, Format, Prediction, Predictor,
    Tally,
};

use crate::run_args::{
    report_errors, run_in_order_with_progress, run_sharded_with_progress, ModelArgs,
};

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
    let comm = deepgalaxy_collective::world(args.distributed)?;
    let comm = comm.as_ref();
    let opened = args
        .model
        .open()
        .and_then(|m| Ok((m, expand(&args.inputs)?)));
    let (model, items) = crate::distributed::agreed(comm, "opening the model and inputs", opened)?;
    let predictor = Predictor::new(model.output_names(), model.card(), args.k, args.latent)?;
    let (tally, errors) = if comm.size() == 1 {
        let columns = predictor.columns();
        let output = args.output.as_deref();
        let (tally, errors, written) = stream(
            &model,
            &items,
            "predict",
            &predictor,
            columns,
            &|_| {},
            output,
        )?;
        wrote(written, "predictions", output);
        (tally, errors)
    } else {
        let Some(results) = run_sharded_with_progress(comm, &model, &items)? else {
            return Ok(());
        };
        let preds = predictions(
            &items,
            &results,
            model.output_names(),
            model.card(),
            args.k,
            args.latent,
        )?;
        match &args.output {
            Some(path) => write_predictions(path, &preds)?,
            None => std::io::stdout().write_all(&to_bytes(&preds, Format::Csv)?)?,
        }
        wrote(preds.len(), "predictions", args.output.as_deref());
        let mut tally = Tally::default();
        preds.iter().for_each(|p| tally.add(p));
        (tally, preds.into_iter().filter_map(|p| p.error).collect())
    };
    if let Some(s) = tally.score() {
        let time = s.time.map_or(String::new(), |t| {
            format!(
                "time error median {:.1} Myr, mean {:.1} Myr, within 10 Myr {:.3}, within 25 Myr {:.3}, 1-sigma coverage {:.3}; ",
                t.median_abs_myr, t.mean_abs_myr, t.within_10_myr, t.within_25_myr, t.coverage_1sigma
            )
        });
        eprintln!(
            "{} labelled images: {time}top-1 {:.3}, within-1 {:.3}, within-2 {:.3}",
            s.count, s.top1, s.within1, s.within2
        );
    }
    report_errors(items.len(), errors.iter())
}

/// Runs `model` on `items` and writes each image's prediction (`predictor`'s, then `finish`ed)
/// to `output` (CSV on standard output when `None`) in input order as soon as it is computed,
/// so memory holds the images in flight and not a row per image. Returns the score's running
/// sums, the failures' messages and the number of rows written.
fn stream(
    model: &Model,
    items: &[InputItem],
    what: &str,
    predictor: &Predictor,
    columns: Columns,
    finish: &(dyn Fn(&mut Prediction) + Sync),
    output: Option<&Path>,
) -> anyhow::Result<(Tally, Vec<String>, usize)> {
    let mut tally = Tally::default();
    let mut errors = Vec::new();
    let mut written = 0;
    let format = output.map_or(Format::Csv, Format::for_path);
    let mut write = |out: &mut dyn Write| {
        let mut out = std::io::BufWriter::new(out);
        write_stream(&mut out, format, columns, |push| {
            run_in_order_with_progress(
                model,
                items,
                what,
                &|i, r| {
                    let mut p = predictor.predict(&items[i], &r);
                    finish(&mut p);
                    p
                },
                &mut |_, p| {
                    tally.add(&p);
                    errors.extend(p.error.clone());
                    written += 1;
                    push(&p)
                },
            )
        })?;
        out.flush()
    };
    match output {
        Some(path) => deepgalaxy_core::io::write_atomic(path, |f| write(f))?,
        None => write(&mut std::io::stdout().lock())?,
    }
    Ok((tally, errors, written))
}

/// Tells on stderr how many rows went to the output file, if there is one.
fn wrote(rows: usize, what: &str, output: Option<&Path>) {
    if let Some(path) = output {
        eprintln!("wrote {rows} {what} to {}", path.display());
    }
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
    let model = args.model.open()?;
    if !model.output_names().iter().any(|n| n == "latent") {
        anyhow::bail!(
            "{} has no `latent` output (is it model.onnx?)",
            model.path().display()
        );
    }
    let items = expand(&args.inputs)?;
    let predictor = Predictor::new(model.output_names(), model.card(), 1, true)?;
    let columns = Columns {
        classes: 0,
        ..predictor.columns()
    };
    let finish = |p: &mut Prediction| {
        p.top.clear();
        p.clear_time();
    };
    let output = args.output.as_deref();
    let (_, errors, written) = stream(
        &model, &items, "embed", &predictor, columns, &finish, output,
    )?;
    wrote(written, "latents", output);
    report_errors(items.len(), errors.iter())
}
