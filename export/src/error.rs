//! The errors of the exporter: each keeps its source, so a caller can match on what failed
//! (the candle model, the ONNX encoding, a file or setting) and the message keeps
//! its chain.

use std::path::PathBuf;

/// What went wrong while translating, quantising, reading or writing a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file is not an ONNX model protobuf can read.
    #[error("{}: not a readable ONNX model", path.display())]
    NotOnnx {
        /// The file.
        path: PathBuf,
        /// protobuf's error.
        source: protobuf::Error,
    },
    /// protobuf could not encode the model.
    #[error("cannot serialise ONNX")]
    Encode(#[source] protobuf::Error),
    /// Building or running the candle model failed (calibration runs it; a tensor
    /// operation's failure is the model crate's `Tensor` error).
    #[error(transparent)]
    Model(#[from] deepgalaxy_models::Error),
    /// A bad file, catalog or setting (the core crate's error).
    #[error(transparent)]
    Core(#[from] deepgalaxy_core::Error),
}

/// Result with the exporter's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
