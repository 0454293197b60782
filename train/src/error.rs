//! The errors of the trainer: each keeps its source, so a caller can match on what failed
//! (a tensor operation, the model, a file or setting) and the message keeps its chain.

/// What went wrong while training, resuming, tuning or checkpointing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed in candle (candle's error names the shapes involved).
    #[error("tensor computation failed")]
    Tensor(#[from] candle_core::Error),
    /// Building, initialising or running the model failed.
    #[error(transparent)]
    Model(#[from] deepgalaxy_models::Error),
    /// A bad file, catalog or setting (the core crate's error).
    #[error(transparent)]
    Core(#[from] deepgalaxy_core::Error),
}

/// Result with the trainer's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
