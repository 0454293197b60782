//! Running an exported model: the backends, the model and its card, batched and sharded
//! inference over many inputs, predictions, and what an ONNX file holds (`summary`).

pub mod backend;
pub mod flops;
pub mod infer;
pub mod inputs;
pub mod model;
pub mod predict;
pub mod sharded;
pub mod summary;
