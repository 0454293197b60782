//! The arithmetic of a model: multiply-adds per image, counted by tract's cost model on the
//! decluttered graph (convolutions, matrix products, ...), for achieved GFLOP/s in benchmarks.

use std::path::Path;

use crate::Result;
use deepgalaxy_core::Error;
use tract_onnx::prelude::{Datum, Framework, InferenceFact, InferenceModelExt};
use tract_onnx::tract_core::ops::Cost;

/// Multiply-adds for one sample of shape `sample` (without the batch dimension) through the
/// ONNX model at `path` (one FMA is two floating-point operations).
pub fn fma_per_sample(path: &Path, sample: &[usize]) -> Result<u64> {
    let fail = |e: tract_onnx::prelude::TractError| {
        crate::Error::backend(path, "cannot count the model's operations", e)
    };
    let mut shape = vec![1];
    shape.extend_from_slice(sample);
    let model = tract_onnx::onnx()
        .with_ignore_value_info(true)
        .model_for_path(path)
        .and_then(|m| m.with_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), &shape)))
        .and_then(|m| m.into_typed())
        .and_then(|m| m.into_decluttered())
        .map_err(fail)?;
    let mut total: u64 = 0;
    for node in model.nodes() {
        let facts = model.node_input_facts(node.id).map_err(fail)?;
        for (cost, count) in node.op.cost(&facts).map_err(fail)? {
            if let Cost::FMA(_) = cost {
                let n = count.to_i64().map_err(|_| {
                    Error::invalid(path, format!("node `{}` has a symbolic cost", node.name))
                })?;
                total += n.max(0) as u64;
            }
        }
    }
    Ok(total)
}
