//! `deepgalaxy bench`: measurements a user can reproduce on their own machine.
//!
//! * `predict`: end-to-end throughput from image files, tract vs ONNX Runtime vs Python
//!   onnxruntime (the peer row, `benches/predict_peer.py`), batch 1 and 32, 1 and 2 threads.
//! * `precision`: every exported variant (FP32, FP16, INT8) x backend x batch x threads:
//!   throughput, latency, speed-up over FP32, accuracy and its change, size, GFLOP/s vs peak.
//! * `speedup`: seconds to simulate one merger against seconds to infer one image's timescale.

mod precision;
mod predict;
mod speedup;

/// A Python onnxruntime peer script (`predict_peer.py`, `quantize_peer.py`) in `benches/` of
/// the source tree this binary is run (under cargo) or was built from.
fn peer_script(name: &str) -> std::path::PathBuf {
    deepgalaxy_core::source_dir(env!("CARGO_MANIFEST_DIR"))
        .join("benches")
        .join(name)
}

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
    /// Throughput and accuracy of every precision on every backend.
    Precision(Box<precision::PrecisionArgs>),
    /// Seconds per simulated merger against seconds per inferred image.
    Speedup(speedup::SpeedupArgs),
}

/// Runs `bench`.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    match &args.what {
        BenchCommand::Predict(a) => predict::run(a),
        BenchCommand::Precision(a) => precision::run(a),
        BenchCommand::Speedup(a) => speedup::run(a),
    }
}
