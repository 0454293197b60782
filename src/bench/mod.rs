//! `deepgalaxy bench`: measurements a user can reproduce on their own machine.
//!
//! * `predict`: end-to-end throughput from image files, tract vs ONNX Runtime vs Python
//!   onnxruntime (the peer row, `benches/predict_peer.py`), batch 1 and 32, 1 and 2 threads.
//! * `speedup`: seconds to simulate one merger against seconds to infer one image's timescale.

mod peer;
mod predict;
mod speedup;
mod timing;

/// Measure throughput, accuracy and the speed-up over simulation.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: BenchCommand,
}

#[derive(Debug, clap::Subcommand)]
enum BenchCommand {
    /// End-to-end predict throughput per backend, batch size and thread count.
    Predict(predict::PredictBenchArgs),
    /// Seconds per simulated merger against seconds per inferred image.
    Speedup(speedup::SpeedupArgs),
}

/// Runs `bench`.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    match &args.what {
        BenchCommand::Predict(a) => predict::run(a),
        BenchCommand::Speedup(a) => speedup::run(a),
    }
}
