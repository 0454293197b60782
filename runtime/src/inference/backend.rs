//! Inference engines behind one trait: tract (pure Rust, always built) and ONNX Runtime
//! (feature `ort`, loaded at run time from `ORT_DYLIB_PATH`).
//!
//! A [`Backend`] runs one ONNX file on a batch of `f32` inputs and returns every graph output,
//! in the file's output order. It knows nothing of galaxies; [`crate::inference::model::Model`] adds the
//! model card, preprocessing and output names on top.
//!
//! Threads: tract runs each plan single-threaded, and [`Backend::workers`] tells the caller
//! how many batches to run at once (one per thread, each on its own state of the shared plan;
//! measured faster than one multi-threaded plan, docs/architecture.md). ONNX Runtime parallelises
//! inside a run (intra-op threads) and takes one batch at a time.

use std::path::Path;

use crate::Result;
use deepgalaxy_core::Error;

#[cfg(feature = "ort")]
mod ort;
mod tract;

#[cfg(feature = "ort")]
pub use self::ort::OrtBackend;
pub use self::tract::TractBackend;

/// A dense `f32` array with its shape (row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values.
    pub data: Vec<f32>,
}

impl Tensor {
    /// A tensor of `data` with `shape`; errors when the sizes disagree.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Tensor> {
        if shape.iter().product::<usize>() != data.len() {
            return Err(Error::setting(
                "tensor",
                format!("shape {shape:?} does not hold {} values", data.len()),
            )
            .into());
        }
        Ok(Tensor { shape, data })
    }

    /// Row `i` of the outermost dimension (one image's values in a batch).
    pub fn row(&self, i: usize) -> &[f32] {
        let per = self.shape.iter().skip(1).product::<usize>();
        &self.data[i * per..(i + 1) * per]
    }
}

/// Which engine runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendKind {
    /// tract: pure Rust, no system library, the default.
    #[default]
    Tract,
    /// ONNX Runtime through the `ort` crate (build feature `ort`, library from
    /// `ORT_DYLIB_PATH`).
    Ort,
}

impl BackendKind {
    /// The engines this build can run: tract always, ONNX Runtime with the `ort` feature.
    /// Benchmarks loop over these, so a build without ONNX Runtime measures what it has.
    pub fn available() -> &'static [BackendKind] {
        if cfg!(feature = "ort") {
            &[BackendKind::Tract, BackendKind::Ort]
        } else {
            &[BackendKind::Tract]
        }
    }

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Tract => "tract",
            BackendKind::Ort => "ort",
        }
    }
}

impl std::str::FromStr for BackendKind {
    type Err = Error;
    fn from_str(s: &str) -> deepgalaxy_core::Result<BackendKind> {
        match s {
            "tract" => Ok(BackendKind::Tract),
            "ort" | "onnxruntime" => Ok(BackendKind::Ort),
            other => Err(Error::setting(
                "backend",
                format!("`{other}` is not a backend (tract, ort)"),
            )),
        }
    }
}

/// An ONNX model ready to run.
pub trait Backend: Send + Sync {
    /// Which engine this is.
    fn kind(&self) -> BackendKind;
    /// How many batches the caller should run concurrently (from different threads).
    fn workers(&self) -> usize;
    /// Runs the model on `input` (its one input) and returns all outputs in the file's order.
    fn run(&self, input: &Tensor) -> Result<Vec<Tensor>>;
}

/// Loads the ONNX model `bytes` (read from `path`, named in errors) in the engine `kind`
/// using `threads` threads (at least 1).
pub fn from_bytes(
    path: &Path,
    bytes: &[u8],
    kind: BackendKind,
    threads: usize,
) -> Result<Box<dyn Backend>> {
    let threads = threads.max(1);
    match kind {
        BackendKind::Tract => Ok(Box::new(TractBackend::from_bytes(path, bytes, threads)?)),
        #[cfg(feature = "ort")]
        BackendKind::Ort => Ok(Box::new(OrtBackend::from_bytes(path, bytes, threads)?)),
        #[cfg(not(feature = "ort"))]
        BackendKind::Ort => Err(Error::setting(
            "backend",
            "this build has no ONNX Runtime backend: rebuild with `--features ort` \
             (and set ORT_DYLIB_PATH to libonnxruntime.so), or use `--backend tract`",
        )
        .into()),
    }
}
