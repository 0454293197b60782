//! Batched inference over many image files: decoding and preprocessing (parallel, on the rayon
//! pool) overlap with inference (the backend's workers), and a file that cannot be read is
//! reported on its own while the others still get results.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, sync_channel, Sender};
use std::sync::{Condvar, Mutex};

use rayon::prelude::*;

use crate::inference::inputs::InputItem;
use crate::inference::model::Model;

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
pub fn run_items(
    model: &Model,
    items: &[InputItem],
    progress: &(dyn Fn(usize) + Sync),
) -> Vec<SampleResult> {
    let mut results = Vec::with_capacity(items.len());
    let pushed: Result<(), std::convert::Infallible> =
        run_items_in_order(model, items, progress, &|_, r| r, &mut |_, r| {
            results.push(r);
            Ok(())
        });
    let Ok(()) = pushed;
    results
}

/// [`run_items`], handing each image's result over instead of keeping it: `keep(index,
/// result)` turns it into what the caller needs (on a worker, as soon as it is computed, e.g.
/// a prediction's few numbers instead of every output row), and `emit(index, kept)` receives
/// that on the calling thread, in input order, as soon as every image before it is done (e.g.
/// to write its row).
///
/// Memory does not grow with the number of items: images are decoded one batch at a time (one
/// image per rayon thread, each within [`deepgalaxy_core::limits`]) and kept only as model
/// input; at most `2 x workers` prepared batches wait in a bounded channel for a worker; and
/// the decoder never starts a batch more than [`window`] batches past the first image not yet
/// emitted, so results wait for their turn only that far behind a slow batch. The first error
/// `emit` returns stops the run (no new batch starts) and is returned.
pub fn run_items_in_order<T: Send, E>(
    model: &Model,
    items: &[InputItem],
    progress: &(dyn Fn(usize) + Sync),
    keep: &(dyn Fn(usize, SampleResult) -> T + Sync),
    emit: &mut dyn FnMut(usize, T) -> Result<(), E>,
) -> Result<(), E> {
    let batch = model.options().batch.max(1);
    let workers = model.backend().workers().max(1);
    let ahead = window(workers);
    let done = AtomicUsize::new(0);
    let gate = Gate::default();
    let record = |out: &Sender<(usize, T)>, i: usize, r: SampleResult| {
        // the receiver is gone only once the run has stopped
        let _ = out.send((i, keep(i, r)));
        progress(done.fetch_add(1, Ordering::Relaxed) + 1);
    };
    let (tx, rx) = sync_channel::<Prepared>(2 * workers);
    let rx = Mutex::new(rx);
    // every thread holds its own sender, so the results end when the last thread ends (also
    // when one panics: the scope then passes the panic on)
    let (out_tx, out_rx) = channel::<(usize, T)>();
    let mut outcome = Ok(());
    std::thread::scope(|s| {
        let out = out_tx.clone();
        let (gate, record) = (&gate, &record);
        s.spawn(move || {
            let _stop = StopOnPanic(gate);
            let tx = tx;
            for (c, chunk) in items.chunks(batch).enumerate() {
                if !gate.wait_for(c.saturating_sub(ahead) * batch) {
                    break;
                }
                let prepared: Vec<(usize, Result<Vec<f32>, String>)> = chunk
                    .par_iter()
                    .enumerate()
                    .map(|(j, item)| {
                        let x = deepgalaxy_core::image::load(&item.path)
                            .map_err(crate::Error::from)
                            .and_then(|img| model.prepare(&img, &item.path))
                            .map_err(|e| deepgalaxy_core::error::with_sources(&e));
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
                        Err(e) => record(&out, i, Err(e)),
                    }
                }
                if !good.indices.is_empty() && tx.send(good).is_err() {
                    break;
                }
            }
        });
        for _ in 0..workers {
            let (out, rx) = (out_tx.clone(), &rx);
            s.spawn(move || {
                let _stop = StopOnPanic(gate);
                loop {
                    let next = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok(job) = next else { break };
                    if gate.stopped() {
                        continue;
                    }
                    let n = job.indices.len();
                    match model.run(job.data, n) {
                        Ok(outputs) => {
                            for (k, &i) in job.indices.iter().enumerate() {
                                let rows = model
                                    .output_names()
                                    .iter()
                                    .map(|name| outputs.get(name).map(|t| t.row(k).to_vec()))
                                    .collect::<crate::Result<Vec<_>>>()
                                    .map_err(|e| deepgalaxy_core::error::with_sources(&e));
                                record(&out, i, rows.map(|rows| SampleOutputs { rows }));
                            }
                        }
                        Err(e) => {
                            for &i in &job.indices {
                                let e = format!("{}: {e}", items[i].path.display());
                                record(&out, i, Err(e));
                            }
                        }
                    }
                }
            });
        }
        drop(out_tx);
        let mut waiting = BTreeMap::new();
        let mut next = 0;
        for (i, t) in out_rx {
            if outcome.is_err() {
                continue;
            }
            waiting.insert(i, t);
            while let Some(t) = waiting.remove(&next) {
                if let Err(e) = emit(next, t) {
                    outcome = Err(e);
                    gate.stop();
                    break;
                }
                next += 1;
            }
            gate.advance(next);
        }
        // only a thread's panic leaves images without a result; the scope then panics too
        while outcome.is_ok() && next < items.len() {
            let t = waiting
                .remove(&next)
                .unwrap_or_else(|| keep(next, Err("not run".to_string())));
            outcome = emit(next, t);
            next += 1;
        }
    });
    outcome
}

/// How many batches past the first image not yet emitted the decoder may start: enough to
/// fill the channel (`2 x workers`), one running on each worker, one being sent and one
/// being decoded, so that the gate holds the decoder back only behind a slow batch.
pub fn window(workers: usize) -> usize {
    3 * workers + 2
}

/// Where the in-order output has got (images emitted) and whether the run has stopped, for
/// the decoder to wait on.
#[derive(Default)]
struct Gate {
    state: Mutex<(usize, bool)>,
    moved: Condvar,
}

impl Gate {
    fn lock(&self) -> std::sync::MutexGuard<'_, (usize, bool)> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `emitted` images are out; false when the run stopped instead.
    fn wait_for(&self, emitted: usize) -> bool {
        let mut state = self.lock();
        while state.0 < emitted && !state.1 {
            state = self.moved.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        !state.1
    }

    fn advance(&self, emitted: usize) {
        self.lock().0 = emitted;
        self.moved.notify_all();
    }

    fn stop(&self) {
        self.lock().1 = true;
        self.moved.notify_all();
    }

    fn stopped(&self) -> bool {
        self.lock().1
    }
}

/// Stops the run when the thread holding it panics, so no other thread waits for the images
/// it will never finish.
struct StopOnPanic<'a>(&'a Gate);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.stop();
        }
    }
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
pub fn run_prepared(model: &Model, data: &[f32], n: usize) -> crate::Result<PreparedRun> {
    use std::time::Instant;
    let per = data.len().checked_div(n).unwrap_or(0);
    if n == 0 || per * n != data.len() {
        return Err(deepgalaxy_core::Error::setting(
            "prepared input",
            format!("{} values are not {n} whole samples", data.len()),
        )
        .into());
    }
    let batch = model.options().batch.max(1);
    let batches = n.div_ceil(batch);
    let next = AtomicUsize::new(0);
    type Done = (usize, f64, Vec<SampleOutputs>);
    let done: Mutex<Vec<Done>> = Mutex::new(Vec::new());
    let failure: Mutex<Option<crate::Error>> = Mutex::new(None);
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
                                    .collect::<crate::Result<Vec<_>>>()
                                    .map(|rows| SampleOutputs { rows })
                            })
                            .collect::<crate::Result<Vec<_>>>()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inference::backend::BackendKind;
    use crate::inference::model::tests::{card, write_model, SIDE};
    use crate::inference::model::RunOptions;

    /// A model run two at a time on two workers, and `n` images of which the fourth cannot be
    /// read.
    fn setup(dir: &std::path::Path, n: usize) -> (Model, Vec<InputItem>) {
        let path = write_model(dir, "m.onnx", 3, 2, None, &card(3, 2));
        let options = RunOptions {
            backend: BackendKind::Tract,
            threads: 2,
            batch: 2,
        };
        let model = Model::open(&path, options).unwrap();
        let items = (0..n)
            .map(|i| {
                let path = dir.join(format!("{i}.png"));
                if i == 3 {
                    std::fs::write(&path, b"not an image").unwrap();
                } else {
                    let pixels = (0..SIDE * SIDE).map(|p| ((p * 7 + i * 13) % 256) as u8);
                    image::GrayImage::from_raw(SIDE as u32, SIDE as u32, pixels.collect())
                        .unwrap()
                        .save(&path)
                        .unwrap();
                }
                InputItem {
                    id: i.to_string(),
                    path,
                    label: None,
                    t_myr: None,
                    t_peri_myr: None,
                    simulation: None,
                }
            })
            .collect();
        (model, items)
    }

    #[test]
    fn results_are_emitted_in_input_order_and_equal_each_image_run_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (model, items) = setup(dir.path(), 23);
        let mut order = vec![];
        let mut emitted = vec![];
        let outcome: Result<(), ()> =
            run_items_in_order(&model, &items, &|_| {}, &|i, r| (i, r), &mut |i, kept| {
                order.push(i);
                emitted.push(kept);
                Ok(())
            });
        outcome.unwrap();
        assert_eq!(order, (0..items.len()).collect::<Vec<_>>());
        for (i, (kept_index, result)) in emitted.into_iter().enumerate() {
            assert_eq!(kept_index, i);
            let alone = run_items(&model, &items[i..=i], &|_| {}).remove(0);
            match (result, alone) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(a.rows.len(), 3);
                    for (x, y) in a.rows.iter().flatten().zip(b.rows.iter().flatten()) {
                        assert!((x - y).abs() < 1e-6, "image {i}: {x} against {y}");
                    }
                }
                (Err(a), Err(b)) => {
                    assert_eq!(i, 3);
                    assert_eq!(a, b);
                    assert!(a.contains("3.png"), "{a}");
                }
                (a, b) => panic!("image {i}: {a:?} against {b:?}"),
            }
        }
    }

    #[test]
    fn an_emit_error_stops_the_run_and_is_returned() {
        let dir = tempfile::tempdir().unwrap();
        let (model, items) = setup(dir.path(), 200);
        let kept = AtomicUsize::new(0);
        let mut emitted = vec![];
        let outcome = run_items_in_order(
            &model,
            &items,
            &|_| {},
            &|i, _| {
                kept.fetch_add(1, Ordering::Relaxed);
                i
            },
            &mut |i, _| {
                emitted.push(i);
                if i == 5 {
                    Err("disk full")
                } else {
                    Ok(())
                }
            },
        );
        assert_eq!(outcome, Err("disk full"));
        assert_eq!(emitted, (0..=5).collect::<Vec<_>>());
        // the decoder started no batch more than `window` batches past image 5's
        let bound = (5 / 2 + window(2) + 1) * 2;
        assert!(kept.load(Ordering::Relaxed) <= bound, "{kept:?} of 200 run");
    }
}
