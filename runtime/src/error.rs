//! The errors of the runtime: a backend's failure keeps the backend's own error as its source
//! (so a caller can match on it and the message keeps its chain); files, catalogs and
//! settings are the core crate's error, as it is.

use std::path::{Path, PathBuf};

/// A backend's error, whatever its type (tract's and ONNX Runtime's differ).
pub type BackendError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong while opening or running a model, or searching a library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// tract or ONNX Runtime could not load, plan or run a model.
    #[error("{}: {what}", path.display())]
    Backend {
        /// The model file.
        path: PathBuf,
        /// What was being done ("tract cannot load this ONNX model").
        what: String,
        /// The backend's error.
        source: BackendError,
    },
    /// A bad file, catalog or setting (the core crate's error).
    #[error(transparent)]
    Core(#[from] deepgalaxy_core::Error),
}

impl Error {
    /// An [`Error::Backend`] for the model at `path`.
    pub fn backend(path: &Path, what: impl Into<String>, source: impl Into<BackendError>) -> Self {
        Error::Backend {
            path: path.to_path_buf(),
            what: what.into(),
            source: source.into(),
        }
    }
}

/// Result with the runtime's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
