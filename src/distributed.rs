//! `--distributed`: the MPI world (feature `mpi`) or this process alone, and batch inference
//! sharded over it (each rank runs a contiguous run of whole batches of the inputs, rank 0 gets
//! every result in input order).

use deepgalaxy_runtime::infer::{run_items, SampleOutputs, SampleResult};
use deepgalaxy_runtime::inputs::InputItem;
use deepgalaxy_runtime::model::Model;
use deepgalaxy_train::distributed::{agree, all_gather_bytes, part, Collective, Single};

use crate::run_args::run_with_progress;

/// The ranks to work on: the MPI world with `--distributed`, else this process alone.
pub fn communicator(distributed: bool) -> anyhow::Result<Box<dyn Collective>> {
    if !distributed {
        return Ok(Box::new(Single));
    }
    #[cfg(feature = "mpi")]
    {
        Ok(Box::new(deepgalaxy_train::distributed::Mpi::init()?))
    }
    #[cfg(not(feature = "mpi"))]
    anyhow::bail!(
        "--distributed needs a deepgalaxy built with MPI: `cargo build --release --features mpi` (Debian packages libopenmpi-dev openmpi-bin libclang-dev clang)"
    )
}

/// Every rank's `outcome`, agreed on: all ranks continue only if all succeeded, else all
/// return the same error naming the failed rank.
pub fn agreed<T>(
    comm: &dyn Collective,
    during: &str,
    outcome: anyhow::Result<T>,
) -> anyhow::Result<T> {
    let outcome = outcome.map_err(|e| deepgalaxy_core::Error::setting("input", format!("{e:#}")));
    Ok(agree(comm, during, outcome)?)
}

/// Runs `model` on this rank's part of `items` (rank 0 with a progress bar) and returns, on
/// rank 0, every item's result in input order (on other ranks, `None`).
pub fn run_sharded(
    comm: &dyn Collective,
    model: &Model,
    items: &[InputItem],
    what: &str,
) -> anyhow::Result<Option<Vec<SampleResult>>> {
    if comm.size() == 1 {
        return Ok(Some(run_with_progress(model, items, what)));
    }
    // whole batches, so that every image runs in the batch it has on one process: the
    // backends' results differ in the last bits between batch sizes
    let batch = model.options().batch.max(1);
    let batches = part(items.len().div_ceil(batch), comm.rank(), comm.size());
    let mine =
        &items[(batches.start * batch).min(items.len())..(batches.end * batch).min(items.len())];
    let results = if comm.rank() == 0 {
        run_with_progress(model, mine, what)
    } else {
        run_items(model, mine, &|_| {})
    };
    // f32 values travel as JSON numbers, which serde_json writes exactly (shortest round trip)
    let rows: Vec<Result<&Vec<Vec<f32>>, &String>> = results
        .iter()
        .map(|r| r.as_ref().map(|o| &o.rows))
        .collect();
    let parts = all_gather_bytes(comm, serde_json::to_vec(&rows)?);
    if comm.rank() != 0 {
        return Ok(None);
    }
    let mut all = Vec::with_capacity(items.len());
    for bytes in parts {
        let rows: Vec<Result<Vec<Vec<f32>>, String>> = serde_json::from_slice(&bytes)?;
        all.extend(
            rows.into_iter()
                .map(|r| r.map(|rows| SampleOutputs { rows })),
        );
    }
    Ok(Some(all))
}
