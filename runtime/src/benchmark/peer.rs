//! The Python onnxruntime peers of the benchmarks (the workspace's `benches/predict_peer.py`
//! for inference, `benches/quantize_peer.py` for ONNX Runtime's own INT8 quantizer), run when a Python with onnxruntime is found: `DEEPGALAXY_PYTHON`, else the venv `.ci/run`
//! creates. A missing peer is reported in its row, not an error of the benchmark.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::timing::{quantile, Throughput};

/// A Python interpreter with onnxruntime, or why there is none.
pub fn python() -> Result<PathBuf, String> {
    let candidates: Vec<PathBuf> = std::env::var_os("DEEPGALAXY_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain(
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache/deepgalaxy/venv/bin/python")),
        )
        .collect();
    for py in candidates {
        let ok = Command::new(&py)
            .args(["-c", "import onnxruntime, numpy, PIL"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Ok(py);
        }
    }
    Err(
        "no Python with onnxruntime, numpy and Pillow (set DEEPGALAXY_PYTHON or run .ci/run)"
            .into(),
    )
}

/// Runs the peer `script` with `args` and reads its throughput, or says why it did not run.
pub fn run(script: &Path, args: &[String]) -> Result<Throughput, String> {
    let v = run_json(script, args)?;
    let floats = |k: &str| -> Vec<f64> {
        v[k].as_array()
            .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
            .unwrap_or_default()
    };
    let lat = floats("latencies_ms");
    Ok(Throughput {
        images_per_sec: v["images_per_sec"].as_f64().unwrap_or(f64::NAN),
        runs: floats("runs"),
        p50_ms: quantile(&lat, 0.5),
        p99_ms: quantile(&lat, 0.99),
    })
}

/// Runs the Python `script` with `args` and reads the JSON it prints, or says why it did not
/// run (no Python peer, a missing script, a failure with its stderr).
pub fn run_json(script: &Path, args: &[String]) -> Result<serde_json::Value, String> {
    let py = python()?;
    if !script.is_file() {
        return Err(format!(
            "{} is missing (run from a source checkout)",
            script.display()
        ));
    }
    let out = Command::new(&py)
        .arg(script)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", py.display()))?;
    if !out.status.success() {
        return Err(format!(
            "peer failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("peer output: {e}"))
}
