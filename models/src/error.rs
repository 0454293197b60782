//! The errors of the model crate: a failed tensor operation keeps candle's error as its source
//! (so a caller can match on it and the message keeps its chain); everything about files and
//! settings is the core crate's error, as it is.

/// What went wrong in building, initialising or running a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed in candle (candle's error names the shapes involved).
    #[error("tensor computation failed")]
    Tensor(#[from] candle_core::Error),
    /// A layer of the forward pass failed (candle's error names the shapes involved).
    #[error("layer `{layer}` failed")]
    Layer {
        /// The layer's name in the graph.
        layer: String,
        /// candle's error.
        source: candle_core::Error,
    },
    /// A bad file, spec or setting (the core crate's error).
    #[error(transparent)]
    Core(#[from] deepgalaxy_core::Error),
}

/// Result with the model crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
