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

/// Writes a 16-bit grey PNG whose pixel (x, y) is `f(x, y)`.
pub fn write_png16(path: &Path, w: u32, h: u32, f: impl Fn(u32, u32) -> u16) {
    let buf =
        image::ImageBuffer::<image::Luma<u16>, _>::from_fn(w, h, |x, y| image::Luma([f(x, y)]));
    buf.save(path).unwrap();
}

/// A catalog of `n` 16x16 images of `classes` classes (brightness ramps scaled by the class),
/// spread over 3 simulations, with `t_myr = 5 * label + 2`.
pub fn tiny_catalog(dir: &Path, n: u32, classes: u32) -> PathBuf {
    let mut csv = String::from("id_str,file_loc,simulation,label,t_myr\n");
    for i in 0..n {
        let label = i % classes;
        let name = format!("g{i}.png");
        write_png16(&dir.join(&name), 16, 16, |x, y| {
            ((x + y) * 500 * (label + 1) + i) as u16
        });
        csv += &format!("g{i},{name},sim{},{label},{}\n", i % 3, 5 * label + 2);
    }
    let data = dir.join("catalog.csv");
    std::fs::write(&data, csv).unwrap();
    data
}
