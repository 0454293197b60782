//! `deepgalaxy`: the command line. Wiring only: each subcommand parses its arguments and calls
//! the library crate that owns the work. The feature `full` (default) adds the commands that
//! need candle, the trainer, the simulator or the export code; without it the binary is the
//! slim runtime build (inference, similarity search, clustering, inspection, the web page).

#[cfg(feature = "full")]
mod agreement;
#[allow(unsafe_code)] // mimalloc's option calls
mod allocator;
#[cfg(feature = "full")]
mod bench;
mod cluster;
#[cfg(feature = "full")]
mod demo;
mod distributed;
#[cfg(feature = "full")]
mod evaluate;
#[cfg(feature = "full")]
mod export;
mod interpolate;
mod predict;
mod run_args;
mod serve;
mod shipped;
mod similarity;
#[cfg(feature = "full")]
mod simulate;
#[cfg(feature = "full")]
mod train;
#[cfg(feature = "full")]
mod tune;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc instead of the system allocator, keeping the memory it frees
/// (`allocator` says why): faster training steps.
#[global_allocator]
static ALLOCATOR: allocator::MiMalloc = allocator::MiMalloc;

/// Read the physics of galaxy mergers off images: simulate mergers, train a timescale
/// classifier, autoencoder and VAE, export to ONNX, and run it anywhere.
#[derive(Parser)]
#[command(name = "deepgalaxy", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Simulate galaxy mergers with N-body gravity and render a labeled image dataset.
    #[cfg(feature = "full")]
    Simulate(simulate::SimulateArgs),
    /// Train the encoder with its classifier, autoencoder and VAE heads.
    #[cfg(feature = "full")]
    Train(train::TrainArgs),
    /// Search learning rate, label width and backbone width on the validation mergers.
    #[cfg(feature = "full")]
    Tune(tune::TuneArgs),
    /// Export a checkpoint to ONNX (model, autoencoder, decoder) with its model card.
    #[cfg(feature = "full")]
    Export(export::ExportArgs),
    /// Predict the merger timescale of images with an exported model.
    Predict(predict::PredictArgs),
    /// Score a model on mergers it was neither trained nor validated on.
    #[cfg(feature = "full")]
    Evaluate(evaluate::EvaluateArgs),
    /// Write the VAE latent vectors of images.
    Embed(predict::EmbedArgs),
    /// Build a latent similarity index over a catalog.
    Index(similarity::IndexArgs),
    /// Find the simulated mergers most similar to query images.
    Search(similarity::SearchArgs),
    /// Cluster a latent index without labels (spectral clustering).
    Cluster(cluster::ClusterArgs),
    /// Decode images along the line between two latents.
    Interpolate(interpolate::InterpolateArgs),
    /// Measure throughput and accuracy across precisions and backends.
    #[cfg(feature = "full")]
    Bench(bench::BenchArgs),
    /// Run the whole pipeline end to end on built-in defaults.
    #[cfg(feature = "full")]
    Demo(demo::DemoArgs),
    /// Serve a local web page: drop an image, see its predicted time and nearest mergers.
    Serve(serve::ServeArgs),
    /// Say what an image, FITS file, catalog or HDF5 dataset holds.
    Inspect(InspectArgs),
}

#[derive(clap::Args)]
struct InspectArgs {
    /// The file: an image (PNG/JPEG/TIFF/FITS), a catalog (.csv), an HDF5 dataset (.h5/.hdf5)
    /// or an exported model (.onnx).
    file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// For a model: print its card as a Markdown page (what it answers, its input, the mergers
    /// it was trained, validated and tested on, its scores).
    #[arg(long, conflicts_with = "json")]
    markdown: bool,
}

fn inspect(args: &InspectArgs) -> anyhow::Result<()> {
    // the library's errors already name the file and the problem
    if args
        .file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
    {
        let summary = deepgalaxy_runtime::inference::summary::inspect_onnx(&args.file)?;
        if args.markdown {
            let card = summary.card.as_ref().ok_or_else(|| {
                anyhow::anyhow!("{}: no deepgalaxy model card", args.file.display())
            })?;
            print!("{}", card.to_markdown(&args.file.display().to_string()));
        } else if args.json {
            println!("{}", serde_json::to_string_pretty(&summary)?);
        } else {
            print!("{}: {}", args.file.display(), summary.to_text());
        }
        return Ok(());
    }
    if args.markdown {
        anyhow::bail!("{}: --markdown is for models (.onnx)", args.file.display());
    }
    let summary = deepgalaxy_core::inspect::inspect(&args.file)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}: {}", args.file.display(), summary.to_text());
    }
    Ok(())
}

fn main() -> ExitCode {
    allocator::keep_freed_memory();
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Inspect(args) => inspect(args),
        #[cfg(feature = "full")]
        Command::Simulate(args) => simulate::run(args),
        #[cfg(feature = "full")]
        Command::Train(args) => train::run(args),
        #[cfg(feature = "full")]
        Command::Tune(args) => tune::run(args),
        #[cfg(feature = "full")]
        Command::Export(args) => export::run(args),
        Command::Predict(args) => predict::run(args),
        #[cfg(feature = "full")]
        Command::Evaluate(args) => evaluate::run(args),
        Command::Embed(args) => predict::embed(args),
        Command::Index(args) => similarity::index(args),
        Command::Search(args) => similarity::search(args),
        Command::Cluster(args) => cluster::run(args),
        Command::Interpolate(args) => interpolate::run(args),
        Command::Serve(args) => serve::run(args),
        #[cfg(feature = "full")]
        Command::Bench(args) => bench::run(args),
        #[cfg(feature = "full")]
        Command::Demo(args) => demo::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    /// clap's own consistency checks over every subcommand (two arguments with one id, a
    /// conflict naming no argument...), which otherwise fail only when that command is run.
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
