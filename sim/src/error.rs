//! The simulator's error type; it wraps the core error so callers see one family of errors.

use std::path::PathBuf;

/// Everything that can go wrong while building initial conditions or writing a dataset.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is out of range (image size, particle count, ...).
    #[error("invalid simulation setting: {0}")]
    Config(String),
    /// Reading or writing a catalog, image or marker file failed.
    #[error(transparent)]
    Core(#[from] deepgalaxy_core::Error),
    /// Encoding or decoding an image failed.
    #[error("image {path}: {what}")]
    Image {
        /// The file concerned.
        path: PathBuf,
        /// What went wrong.
        what: String,
    },
    /// The requested output format needs a cargo feature this build lacks.
    #[error("{0}")]
    Unsupported(String),
}

/// Result alias of the simulator.
pub type Result<T> = std::result::Result<T, Error>;

impl From<Error> for deepgalaxy_core::Error {
    /// Converges into the project-wide error (for callers that hold a core `Result`).
    fn from(e: Error) -> Self {
        match e {
            Error::Config(what) => deepgalaxy_core::Error::setting("simulation", what),
            Error::Core(e) => e,
            Error::Image { path, what } => deepgalaxy_core::Error::invalid(path, what),
            Error::Unsupported(what) => deepgalaxy_core::Error::setting("format", what),
        }
    }
}
