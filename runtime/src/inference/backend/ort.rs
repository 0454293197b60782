//! The ONNX Runtime backend (feature `ort`).
//!
//! The `ort` crate is built with `load-dynamic`: nothing is downloaded at build time, and the
//! shared library is loaded on first use from `ORT_DYLIB_PATH` (for example the
//! `libonnxruntime.so.*` inside the PyPI `onnxruntime` wheel). A missing or unloadable library
//! is an error that says how to fix it.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use crate::Result;
use deepgalaxy_core::Error;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::TensorRef;

use super::{Backend, BackendKind, Tensor};

/// The environment variable naming the ONNX Runtime shared library.
pub const DYLIB_VAR: &str = "ORT_DYLIB_PATH";

/// Loads the library named by [`DYLIB_VAR`] once per process and keeps its environment alive
/// (sessions are built from it).
fn environment() -> Result<&'static ort::environment::Environment> {
    static LOADED: OnceLock<std::result::Result<ort::environment::Environment, String>> =
        OnceLock::new();
    LOADED
        .get_or_init(|| {
            let hint = "install the PyPI wheel (`pip install onnxruntime`) and set \
                        ORT_DYLIB_PATH to its capi/libonnxruntime.so.*, or use `--backend tract`";
            let path = std::env::var_os(DYLIB_VAR)
                .ok_or_else(|| format!("{DYLIB_VAR} is not set: {hint}"))?;
            let path = PathBuf::from(path);
            if !path.is_file() {
                return Err(format!(
                    "{DYLIB_VAR}={} is not a file: {hint}",
                    path.display()
                ));
            }
            ort::init_from(&path)
                .map_err(|e| format!("cannot load {}: {e}; {hint}", path.display()))?
                .with_name("deepgalaxy")
                .build()
                .map_err(|e| format!("cannot start ONNX Runtime from {}: {e}", path.display()))
        })
        .as_ref()
        .map_err(|e| Error::setting("ONNX Runtime", e.clone()).into())
}

/// One ONNX Runtime session with `threads` intra-op threads.
pub struct OrtBackend {
    path: PathBuf,
    input: String,
    session: Mutex<Session>,
}

impl OrtBackend {
    /// Loads the library if needed and creates a session for the file at `path`.
    pub fn open(path: &Path, threads: usize) -> Result<OrtBackend> {
        OrtBackend::from_bytes(path, &deepgalaxy_core::io::read_bytes(path)?, threads)
    }

    /// Creates a session for the ONNX model `bytes` read from `path` (named in errors).
    pub fn from_bytes(path: &Path, bytes: &[u8], threads: usize) -> Result<OrtBackend> {
        let environment = environment()?;
        let fail =
            |e: ort::Error| crate::Error::backend(path, "ONNX Runtime cannot load this model", e);
        let session = Session::builder(environment)
            .map_err(fail)?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(|e| fail(e.into()))?
            .with_intra_threads(threads)
            .map_err(|e| fail(e.into()))?
            .commit_from_memory(bytes)
            .map_err(fail)?;
        if session.inputs().len() != 1 {
            return Err(Error::invalid(path, "the model must have exactly one input").into());
        }
        let input = session.inputs()[0].name().to_string();
        Ok(OrtBackend {
            path: path.to_path_buf(),
            input,
            session: Mutex::new(session),
        })
    }
}

impl Backend for OrtBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Ort
    }

    fn workers(&self) -> usize {
        1
    }

    fn run(&self, input: &Tensor) -> Result<Vec<Tensor>> {
        let fail = |e: ort::Error| crate::Error::backend(&self.path, "ONNX Runtime run failed", e);
        let shape: Vec<i64> = input.shape.iter().map(|&d| d as i64).collect();
        let value = TensorRef::from_array_view((shape, &input.data[..])).map_err(fail)?;
        let mut session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        let outputs = session
            .run(ort::inputs![self.input.as_str() => value])
            .map_err(fail)?;
        outputs
            .values()
            .map(|v| {
                let (shape, data) = v.try_extract_tensor::<f32>().map_err(fail)?;
                Tensor::new(shape.iter().map(|&d| d as usize).collect(), data.to_vec())
            })
            .collect()
    }
}
