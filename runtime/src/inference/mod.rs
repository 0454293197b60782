//! Running an exported model: the backends, the model and its card, batched and sharded
//! inference over many inputs, and predictions.

pub mod backend;
pub mod flops;
pub mod infer;
pub mod inputs;
pub mod model;
pub mod predict;
pub mod sharded;
