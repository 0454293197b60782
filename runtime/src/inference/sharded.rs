//! Batch inference sharded over the ranks of a distributed job (`predict --distributed`):
//! each rank runs a contiguous run of whole batches of the inputs, and rank 0 gets every
//! result in input order.

use crate::Result;
use deepgalaxy_collective::{all_gather_bytes, part, Collective};
use deepgalaxy_core::Error;

use crate::inference::infer::{run_items, SampleOutputs, SampleResult};
use crate::inference::inputs::InputItem;
use crate::inference::model::Model;

/// Runs `model` on this rank's part of `items` and returns, on rank 0, every item's result in
/// input order (on other ranks, `None`). Rank 0 reports `progress(done, total)` over its own
/// part (all of `items` when it is alone).
pub fn run_sharded(
    comm: &dyn Collective,
    model: &Model,
    items: &[InputItem],
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Option<Vec<SampleResult>>> {
    if comm.size() == 1 {
        return Ok(Some(run_items(model, items, &|done| {
            progress(done, items.len())
        })));
    }
    // whole batches, so that every image runs in the batch it has on one process: the
    // backends' results differ in the last bits between batch sizes
    let batch = model.options().batch.max(1);
    let batches = part(items.len().div_ceil(batch), comm.rank(), comm.size());
    let mine =
        &items[(batches.start * batch).min(items.len())..(batches.end * batch).min(items.len())];
    let results = if comm.rank() == 0 {
        run_items(model, mine, &|done| progress(done, mine.len()))
    } else {
        run_items(model, mine, &|_| {})
    };
    // f32 values travel as JSON numbers, which serde_json writes exactly (shortest round trip)
    let rows: Vec<std::result::Result<&Vec<Vec<f32>>, &String>> = results
        .iter()
        .map(|r| r.as_ref().map(|o| &o.rows))
        .collect();
    let gathered = all_gather_bytes(comm, serde_json::to_vec(&rows).map_err(json_error)?);
    if comm.rank() != 0 {
        return Ok(None);
    }
    let mut all = Vec::with_capacity(items.len());
    for bytes in gathered {
        let rows: Vec<std::result::Result<Vec<Vec<f32>>, String>> =
            serde_json::from_slice(&bytes).map_err(json_error)?;
        all.extend(
            rows.into_iter()
                .map(|r| r.map(|rows| SampleOutputs { rows })),
        );
    }
    Ok(Some(all))
}

fn json_error(e: serde_json::Error) -> Error {
    Error::setting("sharded inference", format!("results between ranks: {e}"))
}
