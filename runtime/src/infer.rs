//! Batched inference over many image files: decoding and preprocessing (parallel, on the rayon
//! pool) overlap with inference (the backend's workers), and a file that cannot be read is
//! reported on its own while the others still get results.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::Mutex;

use rayon::prelude::*;

use crate::inputs::InputItem;
use crate::model::Model;

/// One image's outputs: a row of every model output, in the model's output order.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleOutputs {
    /// `rows[i]` belongs to `Model::output_names()[i]`.
    pub rows: Vec<Vec<f32>>,
}

/// The outcome for one input: its outputs, or why it has none (the message names the file).
pub type SampleResult = std::result::Result<SampleOutputs, String>;

/// A batch on its way from the decoder to the workers.
struct Prepared {
    indices: Vec<usize>,
    data: Vec<f32>,
}

/// Runs `model` on every item, `model.options().batch` at a time. Results come back in input
/// order; `progress(done)` is called as images finish (from any thread).
///
/// Memory does not grow with the number of items beyond the results kept: one batch is decoded at a time (one image
/// per rayon thread, each within [`deepgalaxy_core::limits`]) and kept only as model input, and
/// at most `2 x workers` prepared batches wait in the bounded channel for a worker.
pub fn run_items(
    model: &Model,
    items: &[InputItem],
    progress: &(dyn Fn(usize) + Sync),
) -> Vec<SampleResult> {
    run_items_map(model, items, progress, &|_, r| r)
}

/// [`run_items`], turning each image's result into what the caller keeps (`keep(index,
/// result)`) as soon as it is computed, so that only that is held for every image: e.g. a
/// prediction's few numbers instead of every output row of the model.
pub fn run_items_map<T: Send>(
    model: &Model,
    items: &[InputItem],
    progress: &(dyn Fn(usize) + Sync),
    keep: &(dyn Fn(usize, SampleResult) -> T + Sync),
) -> Vec<T> {
    let batch = model.options().batch.max(1);
    let workers = model.backend().workers().max(1);
    let results: Mutex<Vec<Option<T>>> =
        Mutex::new(std::iter::repeat_with(|| None).take(items.len()).collect());
    let done = AtomicUsize::new(0);
    let record = |i: usize, r: SampleResult| {
        let kept = keep(i, r);
        results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(kept);
        progress(done.fetch_add(1, Ordering::Relaxed) + 1);
    };
    let (tx, rx) = sync_channel::<Prepared>(2 * workers);
    let rx = Mutex::new(rx);
    std::thread::scope(|s| {
        s.spawn(|| {
            let tx = tx;
            for (c, chunk) in items.chunks(batch).enumerate() {
                let prepared: Vec<(usize, Result<Vec<f32>, String>)> = chunk
                    .par_iter()
                    .enumerate()
                    .map(|(j, item)| {
                        let x = deepgalaxy_core::image::load(&item.path)
                            .and_then(|img| model.prepare(&img, &item.path))
                            .map_err(|e| e.to_string());
                        (c * batch + j, x)
                    })
                    .collect();
                let mut good = Prepared {
                    indices: vec![],
                    data: vec![],
                };
                for (i, x) in prepared {
                    match x {
                        Ok(v) => {
                            good.indices.push(i);
                            good.data.extend(v);
                        }
                        Err(e) => record(i, Err(e)),
                    }
                }
                if !good.indices.is_empty() && tx.send(good).is_err() {
                    break;
                }
            }
        });
        for _ in 0..workers {
            s.spawn(|| loop {
                let next = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                let Ok(job) = next else { break };
                let n = job.indices.len();
                match model.run(job.data, n) {
                    Ok(out) => {
                        for (k, &i) in job.indices.iter().enumerate() {
                            let rows = model
                                .output_names()
                                .iter()
                                .map(|name| out.get(name).map(|t| t.row(k).to_vec()))
                                .collect::<deepgalaxy_core::Result<Vec<_>>>()
                                .map_err(|e| e.to_string());
                            record(i, rows.map(|rows| SampleOutputs { rows }));
                        }
                    }
                    Err(e) => {
                        for &i in &job.indices {
                            record(i, Err(format!("{}: {e}", items[i].path.display())));
                        }
                    }
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.unwrap_or_else(|| keep(i, Err("not run".to_string()))))
        .collect()
}

/// What [`run_prepared`] returns: every sample's outputs in order, and the latency in seconds
/// of each batch run.
#[derive(Debug, Clone)]
pub struct PreparedRun {
    /// One entry per sample.
    pub samples: Vec<SampleOutputs>,
    /// Seconds per backend run, in completion order.
    pub latencies: Vec<f64>,
}

/// Runs `n` already preprocessed samples stored one after another in `data`,
/// `model.options().batch` at a time on the backend's workers: inference alone, for
/// benchmarks and agreement checks.
pub fn run_prepared(model: &Model, data: &[f32], n: usize) -> deepgalaxy_core::Result<PreparedRun> {
    use std::time::Instant;
    let per = if n == 0 { 0 } else { data.len() / n };
    if n == 0 || per * n != data.len() {
        return Err(deepgalaxy_core::Error::setting(
            "prepared input",
            format!("{} values are not {n} whole samples", data.len()),
        ));
    }
    let batch = model.options().batch.max(1);
    let batches = n.div_ceil(batch);
    let next = AtomicUsize::new(0);
    type Done = (usize, f64, Vec<SampleOutputs>);
    let done: Mutex<Vec<Done>> = Mutex::new(Vec::new());
    let failure: Mutex<Option<deepgalaxy_core::Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..model.backend().workers().max(1) {
            s.spawn(|| loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= batches || failure.lock().map(|f| f.is_some()).unwrap_or(true) {
                    break;
                }
                let (lo, hi) = (b * batch, ((b + 1) * batch).min(n));
                let start = Instant::now();
                let run = model
                    .run(data[lo * per..hi * per].to_vec(), hi - lo)
                    .and_then(|out| {
                        (0..hi - lo)
                            .map(|k| {
                                model
                                    .output_names()
                                    .iter()
                                    .map(|name| out.get(name).map(|t| t.row(k).to_vec()))
                                    .collect::<deepgalaxy_core::Result<Vec<_>>>()
                                    .map(|rows| SampleOutputs { rows })
                            })
                            .collect::<deepgalaxy_core::Result<Vec<_>>>()
                    });
                let seconds = start.elapsed().as_secs_f64();
                match run {
                    Ok(rows) => done
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((b, seconds, rows)),
                    Err(e) => {
                        *failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                        break;
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    let mut done = done.into_inner().unwrap_or_else(|e| e.into_inner());
    let latencies = done.iter().map(|d| d.1).collect();
    done.sort_by_key(|d| d.0);
    Ok(PreparedRun {
        samples: done.into_iter().flat_map(|d| d.2).collect(),
        latencies,
    })
}
