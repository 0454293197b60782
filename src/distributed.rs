//! `--distributed`: the command line's side of a distributed job (the ranks themselves are
//! `deepgalaxy-collective`'s, sharded inference is `deepgalaxy-runtime`'s).

use deepgalaxy_collective::{agree, Collective};

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
