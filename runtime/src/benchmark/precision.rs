//! The precision benchmark: for every exported variant of a model (FP32, FP16, INT8 ...) x
//! backend x batch size x thread count, inference throughput and latency on preprocessed
//! images, the speed-up over FP32 on the same backend, accuracy on a labelled catalog and
//! agreement with FP32, file size and achieved GFLOP/s beside this CPU's peak; Python
//! onnxruntime on the same files is the peer row. [`measure`] runs it and [`Results::write`]
//! writes `results.json`, `report.md` and the plots.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use deepgalaxy_core::Error;
use serde::Serialize;

use super::cpu::Cpu;
use super::peer;
use super::timing::{measure as time_passes, Throughput};
use crate::analysis::agreement::{agreement, Outputs};
use crate::drawing::charts::{write_bars, write_points};
use crate::inference::backend::BackendKind;
use crate::inference::infer::{run_prepared, PreparedRun, SampleResult};
use crate::inference::inputs::expand;
use crate::inference::model::{Model, RunOptions};
use crate::inference::predict::{predictions, score, Score};
use crate::Result;

/// What to measure and how.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The exported files, FP32 (`model.onnx`) first: see [`variants`].
    pub files: Vec<PathBuf>,
    /// Labelled images for accuracy (a catalog), also the benchmark input.
    pub data: String,
    /// Images used (the first of `data`).
    pub images: usize,
    /// Timed passes per configuration (the median is quoted).
    pub repeats: usize,
    /// Batch sizes.
    pub batches: Vec<usize>,
    /// Thread counts.
    pub threads: Vec<usize>,
    /// Runner of the accuracy pass (every file once, batch 32, 2 threads).
    pub accuracy_backend: BackendKind,
    /// A configuration whose pass over the images would take longer than this (seconds),
    /// judged from single images before any batch is run, is skipped and reported as skipped.
    pub max_pass_seconds: f64,
    /// The Python peer script (`benches/predict_peer.py` of the workspace).
    pub peer_script: PathBuf,
    /// Folder for the preprocessed input the peer reads (`input.f32`) and the results.
    pub out: PathBuf,
}

/// One variant's accuracy and agreement with FP32.
#[derive(Debug, Clone, Serialize)]
pub struct Quality {
    /// The file.
    pub file: String,
    /// Its precision, from its model card.
    pub precision: String,
    /// File size.
    pub bytes: u64,
    /// Accuracy on the labelled images (none without labels).
    pub score: Option<Score>,
    /// Fraction of images whose top class is FP32's.
    pub top1_agreement: f64,
    /// Mean cosine similarity of the latents with FP32's (none without a latent output).
    pub latent_cosine: Option<f64>,
}

/// One timed configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Timed {
    /// The file.
    pub file: String,
    /// `deepgalaxy (tract)`, `deepgalaxy (ort)` or `Python onnxruntime`.
    pub runner: String,
    /// Batch size.
    pub batch: usize,
    /// Threads.
    pub threads: usize,
    /// Its throughput, or why it did not run.
    pub result: std::result::Result<Throughput, String>,
    /// Throughput over FP32's with the same runner, batch and threads.
    pub speedup_vs_fp32: Option<f64>,
    /// Achieved GFLOP/s (tract's count of multiply-adds x 2).
    pub gflops: Option<f64>,
}

/// Everything measured: `results.json` as written.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    /// The folder of the files.
    pub model_folder: String,
    /// Images used.
    pub images: usize,
    /// One preprocessed image's shape.
    pub input_shape: Vec<usize>,
    /// Multiply-adds per image.
    pub fma_per_image: u64,
    /// This CPU, for the peak.
    pub cpu: Cpu,
    /// Per file, FP32 first.
    pub quality: Vec<Quality>,
    /// Per file x runner x batch x threads.
    pub throughput: Vec<Timed>,
}

/// The exported files in `dir`: `model.onnx` first, then `model.*.onnx` by name.
pub fn variants(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n == "model.onnx" || (n.starts_with("model.") && n.ends_with(".onnx"))
            })
        })
        .collect();
    files.sort_by_key(|p| (p.file_name().map(|n| n != "model.onnx"), p.clone()));
    if !files.first().is_some_and(|p| p.ends_with("model.onnx")) {
        return Err(Error::invalid(dir, "has no model.onnx (export the checkpoint first)").into());
    }
    Ok(files)
}

/// A run's probabilities and latents, as the agreement metrics take them.
fn outputs(model: &Model, run: &PreparedRun) -> Result<Outputs> {
    let p = model.output_index("probabilities")?;
    let z = model.output_index("latent").ok();
    let rows = |i: Option<usize>| -> Vec<f32> {
        i.map_or_else(Vec::new, |i| {
            run.samples
                .iter()
                .flat_map(|s| s.rows[i].iter().copied())
                .collect()
        })
    };
    let latent = rows(z);
    Ok(Outputs {
        probabilities: rows(Some(p)),
        latent_dim: latent.len() / run.samples.len().max(1),
        latent,
        classes: model.card().num_classes,
    })
}

/// Measures every file of `plan`: accuracy and agreement once each, then throughput per
/// runner, batch and thread count.
pub fn measure(plan: &Plan) -> Result<Results> {
    let files = &plan.files;
    let Some(first) = files.first() else {
        return Err(Error::setting("precision benchmark", "no files to measure").into());
    };
    let reference = Model::open(
        first,
        RunOptions {
            threads: 2,
            batch: 32,
            ..RunOptions::default()
        },
    )?;
    let mut items = expand(std::slice::from_ref(&plan.data))?;
    items.truncate(plan.images);
    let n = items.len();
    if n == 0 {
        return Err(Error::invalid(&plan.data, "no images").into());
    }
    let mut data = Vec::new();
    for item in &items {
        let image = deepgalaxy_core::image::load(&item.path)?;
        data.extend(reference.prepare(&image, &item.path)?);
    }
    deepgalaxy_core::io::create_dir_all(&plan.out)?;
    let raw = plan.out.join("input.f32");
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    deepgalaxy_core::io::write_atomic(&raw, |f| std::io::Write::write_all(f, &bytes))?;
    let shape = reference.input_shape().to_vec();
    let fma = crate::inference::flops::fma_per_sample(first, &shape)?;

    // accuracy and agreement, each file once on the accuracy backend (the first is FP32)
    let accuracy_run = RunOptions {
        backend: plan.accuracy_backend,
        threads: 2,
        batch: 32,
    };
    let mut quality = Vec::new();
    let mut fp32 = None;
    for file in files {
        let model = Model::open(file, accuracy_run)?;
        eprintln!("accuracy of {} ...", file.display());
        let run = run_prepared(&model, &data, n)?;
        let results: Vec<SampleResult> = run.samples.iter().cloned().map(Ok).collect();
        let preds = predictions(
            &items,
            &results,
            model.output_names(),
            model.card(),
            1,
            false,
        )?;
        let out = outputs(&model, &run)?;
        let against = agreement(fp32.get_or_insert_with(|| out.clone()), &out, None)?;
        quality.push(Quality {
            file: file.display().to_string(),
            precision: model.card().precision.clone(),
            bytes: std::fs::metadata(file).map(|m| m.len()).unwrap_or(0),
            score: score(&preds),
            top1_agreement: against.top1_agreement,
            latent_cosine: (out.latent_dim > 0).then_some(against.latent_cosine_mean),
        });
    }

    // throughput
    let mut timed: Vec<Timed> = Vec::new();
    let mut record = |file: &Path, runner: String, batch, threads, result| {
        eprintln!(
            "{} {runner} batch {batch} threads {threads}: {}",
            file.display(),
            cell(&result)
        );
        timed.push(Timed {
            file: file.display().to_string(),
            runner,
            batch,
            threads,
            result,
            speedup_vs_fp32: None,
            gflops: None,
        });
    };
    for file in files {
        for &batch in &plan.batches {
            for &threads in &plan.threads {
                for &backend in BackendKind::available() {
                    let result = time_backend(file, backend, batch, threads, &data, n, plan);
                    let runner = format!("deepgalaxy ({})", backend.name());
                    record(file, runner, batch, threads, result);
                }
                let result = peer::run(
                    &plan.peer_script,
                    &[
                        "tensor".into(),
                        file.display().to_string(),
                        raw.display().to_string(),
                        n.to_string(),
                        shape[0].to_string(),
                        shape[1].to_string(),
                        shape[2].to_string(),
                        batch.to_string(),
                        threads.to_string(),
                        plan.repeats.to_string(),
                    ],
                );
                record(file, "Python onnxruntime".into(), batch, threads, result);
            }
        }
    }
    let fp32_file = first.display().to_string();
    let base: Vec<Option<f64>> = timed
        .iter()
        .map(|t| {
            timed
                .iter()
                .find(|r| {
                    r.file == fp32_file
                        && r.runner == t.runner
                        && r.batch == t.batch
                        && r.threads == t.threads
                })
                .and_then(|r| r.result.as_ref().ok().map(|x| x.images_per_sec))
        })
        .collect();
    for (t, b) in timed.iter_mut().zip(base) {
        if let Ok(x) = &t.result {
            t.speedup_vs_fp32 = b.map(|b| x.images_per_sec / b);
            t.gflops = Some(2.0 * fma as f64 * x.images_per_sec / 1e9);
        }
    }
    Ok(Results {
        model_folder: first
            .parent()
            .map_or_else(String::new, |p| p.display().to_string()),
        images: n,
        input_shape: shape,
        fma_per_image: fma,
        cpu: Cpu::detect(),
        quality,
        throughput: timed,
    })
}

/// Times one file on one backend, or says why it did not run.
fn time_backend(
    file: &Path,
    backend: BackendKind,
    batch: usize,
    threads: usize,
    data: &[f32],
    n: usize,
    plan: &Plan,
) -> std::result::Result<Throughput, String> {
    let per = data.len() / n;
    // Three single images, one after another on one thread, predict the pass before a whole
    // batch is risked; the slowest counts. tract's FP16 plan runs the first inference on a
    // thread much faster than every later one, so a lone run misleads, and one batch of a slow
    // configuration can take many minutes by itself.
    let probe = Model::open(
        file,
        RunOptions {
            backend,
            threads: 1,
            batch: 1,
        },
    )
    .map_err(|e| e.to_string())?;
    let k = n.min(3);
    let slowest = run_prepared(&probe, &data[..k * per], k)
        .map_err(|e| e.to_string())?
        .latencies
        .into_iter()
        .fold(0.0, f64::max);
    let estimate = slowest * n as f64 / threads.max(1) as f64;
    if estimate > plan.max_pass_seconds {
        return Err(format!("skipped: a pass would take about {estimate:.0} s"));
    }
    let model = Model::open(
        file,
        RunOptions {
            backend,
            threads,
            batch,
        },
    )
    .map_err(|e| e.to_string())?;
    let warm = batch.min(n);
    time_passes(
        n,
        plan.repeats,
        || run_prepared(&model, &data[..warm * per], warm).map(drop),
        || run_prepared(&model, data, n).map(|r| r.latencies),
    )
    .map_err(|e| e.to_string())
}

/// One configuration's result in a line.
fn cell(r: &std::result::Result<Throughput, String>) -> String {
    match r {
        Ok(t) => format!(
            "{:.1} images/s (p50 {:.2} ms, p99 {:.2} ms)",
            t.images_per_sec, t.p50_ms, t.p99_ms
        ),
        Err(e) => format!("n/a: {}", e.lines().next().unwrap_or_default()),
    }
}

/// A file's name without its folder.
fn name_of(file: &str) -> String {
    Path::new(file)
        .file_name()
        .map_or(file.to_string(), |f| f.to_string_lossy().into_owned())
}

impl Results {
    /// Writes `results.json`, `report.md` (headed by `command`, the command line that ran the
    /// benchmark) and the plots of the largest batch and thread count of `plan` into `out`,
    /// each atomically; returns the report.
    pub fn write(&self, out: &Path, command: &str, plan: &Plan) -> Result<String> {
        deepgalaxy_core::io::create_dir_all(out)?;
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::setting("precision results", e.to_string()))?;
        deepgalaxy_core::io::write_atomic(&out.join("results.json"), |f| {
            std::io::Write::write_all(f, &json)
        })?;
        let md = self.markdown(command, plan.repeats);
        deepgalaxy_core::io::write_atomic(&out.join("report.md"), |f| {
            std::io::Write::write_all(f, md.as_bytes())
        })?;
        let batch = plan.batches.iter().copied().max().unwrap_or(1);
        let threads = plan.threads.iter().copied().max().unwrap_or(1);
        self.plots(out, batch, threads)?;
        Ok(md)
    }

    /// The Markdown report: accuracy and agreement per file, then throughput per configuration.
    pub fn markdown(&self, command: &str, repeats: usize) -> String {
        let (quality, timed, cpu) = (&self.quality, &self.throughput, &self.cpu);
        let mut md = String::new();
        let _ = writeln!(
            md,
            "# Precision benchmark\n\n`deepgalaxy {command}` on {} images of shape {:?}; \
             {:.3} GFLOP per image (tract's count of multiply-adds x 2); median of {repeats} passes after a warm-up.\n",
            self.images,
            self.input_shape,
            2.0 * self.fma_per_image as f64 / 1e9,
        );
        let _ = writeln!(md, "CPU: {}\n", cpu.describe());
        let _ = writeln!(md, "## Accuracy and agreement with FP32\n");
        let _ = writeln!(md, "| file | precision | size (kB) | top-1 | within-1 | median error (Myr) | MAE (Myr) | top-1 agreement | latent cosine |");
        let _ = writeln!(
            md,
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        let base = quality.first().and_then(|q| q.score);
        for q in quality {
            let none = || ("-".into(), "-".into(), "-".into(), "-".into());
            let (t1, w1, median, mae) = q.score.map_or_else(none, |s| {
                let d = |x: f64, b: Option<f64>| match b {
                    Some(b) if q.file != quality[0].file => {
                        format!("{:.1}% ({:+.1})", 100.0 * x, 100.0 * (x - b))
                    }
                    _ => format!("{:.1}%", 100.0 * x),
                };
                (
                    d(s.top1, base.map(|b| b.top1)),
                    d(s.within1, base.map(|b| b.within1)),
                    format!("{:.1}", s.time.map_or(f64::NAN, |t| t.median_abs_myr)),
                    format!("{:.1}", s.time.map_or(f64::NAN, |t| t.mean_abs_myr)),
                )
            });
            let _ = writeln!(
                md,
                "| {} | {} | {:.0} | {t1} | {w1} | {median} | {mae} | {:.1}% | {} |",
                name_of(&q.file),
                q.precision,
                q.bytes as f64 / 1e3,
                100.0 * q.top1_agreement,
                q.latent_cosine.map_or("-".into(), |c| format!("{c:.4}"))
            );
        }
        let _ = writeln!(md, "\n## Throughput\n");
        let _ = writeln!(md, "| file | runner | batch | threads | images/s | speed-up vs FP32 | p50 ms | p99 ms | GFLOP/s (% of peak) |");
        let _ = writeln!(
            md,
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for t in timed {
            let cells = match &t.result {
                Ok(x) => format!(
                    "{:.1} | {} | {:.2} | {:.2} | {}",
                    x.images_per_sec,
                    t.speedup_vs_fp32.map_or("-".into(), |s| format!("{s:.2}")),
                    x.p50_ms,
                    x.p99_ms,
                    t.gflops.map_or("-".into(), |g| format!(
                        "{g:.1} ({:.1}%)",
                        100.0 * g / cpu.peak_gflops(t.threads)
                    )),
                ),
                Err(e) => format!("{} | | | |", e.lines().next().unwrap_or_default()),
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {cells} |",
                name_of(&t.file),
                t.runner,
                t.batch,
                t.threads,
            );
        }
        let headline = self.headline();
        if !headline.is_empty() {
            let _ = writeln!(md, "\n{}", headline.join("\n\n"));
        }
        let _ = writeln!(
            md,
            "\n![speed-up vs accuracy](speedup_vs_accuracy.png)\n\n![throughput](throughput.png)"
        );
        md
    }

    /// The INT8 speed-ups over FP32 on ONNX Runtime (our runner) at the largest batch and
    /// thread count measured: ours (`model.int8.onnx`), ONNX Runtime's own quantizer's
    /// (`model.int8.ort.onnx`) and their ratio, each where measured.
    pub fn headline(&self) -> Vec<String> {
        let on_ort = |t: &&Timed| t.runner == "deepgalaxy (ort)" && t.result.is_ok();
        let Some(batch) = self.throughput.iter().filter(on_ort).map(|t| t.batch).max() else {
            return vec![];
        };
        let threads = self
            .throughput
            .iter()
            .filter(on_ort)
            .map(|t| t.threads)
            .max()
            .unwrap_or(1);
        let speedup = |file: &str| {
            self.throughput
                .iter()
                .filter(on_ort)
                .find(|t| name_of(&t.file) == file && t.batch == batch && t.threads == threads)
                .and_then(|t| t.speedup_vs_fp32)
        };
        let (ours, peer) = (speedup("model.int8.onnx"), speedup("model.int8.ort.onnx"));
        let mut lines = Vec::new();
        if let Some(x) = ours {
            lines.push(format!("INT8 speed-up on ONNX Runtime: {x:.2}"));
        }
        if let Some(y) = peer {
            lines.push(format!("ONNX Runtime quantize_static speed-up: {y:.2}"));
        }
        if let (Some(x), Some(y)) = (ours, peer) {
            lines.push(format!(
                "(batch {batch}, {threads} threads; ours / ONNX Runtime's: {:.2})",
                x / y
            ));
        }
        lines
    }

    /// `speedup_vs_accuracy.png` (our runners) and `throughput.png` (every runner) at one
    /// batch size and thread count.
    fn plots(&self, out: &Path, batch: usize, threads: usize) -> Result<()> {
        let (quality, timed) = (&self.quality, &self.throughput);
        let base = quality.first().and_then(|q| q.score).map(|s| s.top1);
        let mut points = Vec::new();
        for q in quality {
            for t in timed
                .iter()
                .filter(|t| t.file == q.file && t.batch == batch && t.threads == threads)
            {
                if let (Some(s), Some(b), Some(up)) = (q.score, base, t.speedup_vs_fp32) {
                    if t.runner.starts_with("deepgalaxy") {
                        points.push((
                            format!(
                                "{} {}",
                                q.precision,
                                t.runner.trim_start_matches("deepgalaxy ")
                            ),
                            up,
                            100.0 * (s.top1 - b),
                        ));
                    }
                }
            }
        }
        write_points(
            &out.join("speedup_vs_accuracy.png"),
            &format!("Speed-up over FP32 vs top-1 change (batch {batch}, {threads} threads)"),
            ("speed-up over FP32 (same backend)", "top-1 change (points)"),
            &points,
        )?;
        let files: Vec<String> = quality.iter().map(|q| name_of(&q.file)).collect();
        let mut runners: Vec<String> = timed.iter().map(|t| t.runner.clone()).collect();
        runners.sort();
        runners.dedup();
        let series: Vec<(String, Vec<f64>)> = runners
            .iter()
            .map(|r| {
                let values = quality
                    .iter()
                    .map(|q| {
                        timed
                            .iter()
                            .find(|t| {
                                t.file == q.file
                                    && &t.runner == r
                                    && t.batch == batch
                                    && t.threads == threads
                            })
                            .and_then(|t| t.result.as_ref().ok().map(|x| x.images_per_sec))
                            .unwrap_or(f64::NAN)
                    })
                    .collect();
                (r.clone(), values)
            })
            .collect();
        write_bars(
            &out.join("throughput.png"),
            &format!("Throughput per file and runner (batch {batch}, {threads} threads)"),
            "images/s",
            &files,
            &series,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headline_quotes_both_quantizers_at_the_largest_configuration() {
        let timed = |file: &str, runner: &str, batch, threads, speedup: Option<f64>| Timed {
            file: format!("out/models/{file}"),
            runner: runner.into(),
            batch,
            threads,
            result: Ok(Throughput {
                images_per_sec: 10.0,
                runs: vec![10.0],
                p50_ms: 1.0,
                p99_ms: 1.0,
            }),
            speedup_vs_fp32: speedup,
            gflops: None,
        };
        let mut results = Results {
            model_folder: "out/models".into(),
            images: 8,
            input_shape: vec![1, 8, 8],
            fma_per_image: 1,
            cpu: Cpu::detect(),
            quality: vec![],
            throughput: vec![
                timed("model.onnx", "deepgalaxy (ort)", 32, 2, Some(1.0)),
                timed("model.int8.onnx", "deepgalaxy (ort)", 1, 1, Some(9.0)),
                timed("model.int8.onnx", "deepgalaxy (ort)", 32, 2, Some(2.6)),
                timed("model.int8.onnx", "deepgalaxy (tract)", 32, 2, Some(0.5)),
                timed("model.int8.ort.onnx", "deepgalaxy (ort)", 32, 2, Some(2.0)),
            ],
        };
        assert_eq!(
            results.headline(),
            [
                "INT8 speed-up on ONNX Runtime: 2.60",
                "ONNX Runtime quantize_static speed-up: 2.00",
                "(batch 32, 2 threads; ours / ONNX Runtime's: 1.30)",
            ]
        );
        // without the peer's file, only ours; without ONNX Runtime rows, nothing
        results.throughput.pop();
        assert_eq!(results.headline(), ["INT8 speed-up on ONNX Runtime: 2.60"]);
        results
            .throughput
            .retain(|t| t.runner != "deepgalaxy (ort)");
        assert!(results.headline().is_empty());
    }

    #[test]
    fn variants_put_fp32_first_and_need_it() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "model.int8.onnx",
            "model.onnx",
            "model.fp16.onnx",
            "decoder.onnx",
        ] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let names: Vec<String> = variants(dir.path())
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["model.onnx", "model.fp16.onnx", "model.int8.onnx"]);
        std::fs::remove_file(dir.path().join("model.onnx")).unwrap();
        let e = variants(dir.path()).unwrap_err().to_string();
        assert!(e.contains("has no model.onnx"), "{e}");
    }
}
