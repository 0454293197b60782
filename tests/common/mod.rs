//! Helpers shared by the end-to-end tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python interpreter of the peer-check venv, from `DEEPGALAXY_PYTHON`. Under the `peers`
/// feature a missing interpreter is a failure, never a skip.
pub fn python() -> PathBuf {
    let py = std::env::var_os("DEEPGALAXY_PYTHON").unwrap_or_else(|| {
        panic!(
            "the `peers` feature needs DEEPGALAXY_PYTHON set to a Python with onnx, onnxruntime, \
             numpy, astropy, scikit-image and h5py (.ci/run creates one)"
        )
    });
    PathBuf::from(py)
}

/// Runs a Python peer script with arguments and returns its stdout; panics with its stderr
/// if it fails.
pub fn run_python(script: &Path, args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(python())
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", python().display()));
    assert!(
        out.status.success(),
        "{} failed:\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs the `deepgalaxy` binary; returns (success, stdout, stderr).
pub fn deepgalaxy(args: &[&std::ffi::OsStr]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_deepgalaxy"))
        .args(args)
        .output()
        .expect("the deepgalaxy binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
