//! `deepgalaxy bench precision`: for every exported variant of a model (FP32, FP16, INT8 ...)
//! x backend x batch size x thread count, inference throughput and latency on preprocessed
//! images, the speed-up over FP32 on the same backend, accuracy on a labelled catalog and its
//! change from FP32, file size and achieved GFLOP/s beside this CPU's peak; Python
//! onnxruntime on the same files is the peer row. Writes report.md, results.json and plots.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use deepgalaxy_runtime::drawing::charts::{write_bars, write_points};
use deepgalaxy_runtime::inference::backend::BackendKind;
use deepgalaxy_runtime::inference::infer::{run_prepared, PreparedRun, SampleResult};
use deepgalaxy_runtime::inference::inputs::expand;
use deepgalaxy_runtime::inference::model::{Model, RunOptions};
use deepgalaxy_runtime::inference::predict::{predictions, score, Score};
use serde::Serialize;

use crate::export::{checkpoint_folder, export, Int8Args};

use super::cpu::Cpu;
use super::peer;
use super::timing::{quantile, Throughput};

/// Arguments of `bench precision`.
#[derive(Debug, clap::Args)]
pub struct PrecisionArgs {
    /// A training output folder (or its checkpoint/): its variants are exported into
    /// OUT/models first (see --precision and the INT8 options).
    #[arg(long, required_unless_present = "models", conflicts_with = "models")]
    pub checkpoint: Option<PathBuf>,
    /// Instead of --checkpoint, a folder of exported files: model.onnx and its variants
    /// (model.*.onnx).
    #[arg(long)]
    pub models: Option<PathBuf>,
    /// With --checkpoint: the precisions to export, comma-separated.
    #[arg(long, default_value = "fp32,fp16,int8")]
    pub precision: String,
    /// With --checkpoint: how INT8 is calibrated (default: on the catalog the checkpoint was
    /// trained on) and laid out.
    #[command(flatten)]
    pub int8: Int8Args,
    /// Labelled images for accuracy (a catalog), also the benchmark input.
    #[arg(long)]
    pub data: String,
    /// Images used.
    #[arg(long, default_value_t = 256)]
    pub images: usize,
    /// Timed passes per configuration (the median is quoted).
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Batch sizes.
    #[arg(long, value_delimiter = ',', default_value = "1,32",
          value_parser = crate::run_args::in_range(1, crate::run_args::MAX_BATCH))]
    pub batches: Vec<usize>,
    /// Thread counts.
    #[arg(long, value_delimiter = ',', default_value = "1,2",
          value_parser = crate::run_args::in_range(1, crate::run_args::MAX_THREADS))]
    pub threads: Vec<usize>,
    /// Runner of the accuracy pass (every file once, batch 32, 2 threads): tract, or ort when
    /// tract would be too slow (tract runs FP16 in software f16, ~1,300x FP32).
    #[arg(long, default_value = "tract")]
    pub accuracy_backend: BackendKind,
    /// A configuration whose pass over the images would take longer than this, judged from
    /// one image before any batch is run, is skipped (and reported as skipped).
    #[arg(long, default_value_t = 60.0)]
    pub max_pass_seconds: f64,
    /// Output folder.
    #[arg(long, default_value = "bench-results/precision")]
    pub out: PathBuf,
}

/// One variant's accuracy and agreement with FP32.
#[derive(Debug, Clone, Serialize)]
struct Quality {
    file: String,
    precision: String,
    bytes: u64,
    score: Option<Score>,
    top1_agreement: f64,
    latent_cosine: Option<f64>,
}

/// One timed configuration.
#[derive(Debug, Clone, Serialize)]
struct Timed {
    file: String,
    runner: String,
    batch: usize,
    threads: usize,
    result: Result<Throughput, String>,
    speedup_vs_fp32: Option<f64>,
    gflops: Option<f64>,
}

/// The exported files in `dir`: model.onnx first, then model.*.onnx by name.
fn variants(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n == "model.onnx" || (n.starts_with("model.") && n.ends_with(".onnx"))
            })
        })
        .collect();
    files.sort_by_key(|p| (p.file_name().map(|n| n != "model.onnx"), p.clone()));
    anyhow::ensure!(
        files.first().is_some_and(|p| p.ends_with("model.onnx")),
        "{} has no model.onnx (export the checkpoint first)",
        dir.display()
    );
    Ok(files)
}

fn outputs(model: &Model, run: &PreparedRun, name: &str) -> Option<Vec<Vec<f32>>> {
    let i = model.output_index(name).ok()?;
    Some(run.samples.iter().map(|s| s.rows[i].clone()).collect())
}

fn argmax(v: &[f32]) -> usize {
    (0..v.len())
        .max_by(|&a, &b| v[a].total_cmp(&v[b]))
        .unwrap_or(0)
}

/// The folder of exported files to measure: `--models`, or `--checkpoint` exported into
/// OUT/models (INT8 calibrated on `--calibration`, else on the checkpoint's training catalog).
fn model_folder(args: &PrecisionArgs) -> anyhow::Result<PathBuf> {
    let Some(checkpoint) = &args.checkpoint else {
        return args
            .models
            .clone()
            .context("give --checkpoint (a training run) or --models (exported files)");
    };
    let trained_on = deepgalaxy_train::checkpoint::load_state(&checkpoint_folder(checkpoint))?
        .config
        .data;
    let fallback = (args.int8.calibration.is_none() && trained_on.is_file()).then_some(trained_on);
    let dir = args.out.join("models");
    export(
        checkpoint,
        &dir,
        &args.int8.options(&args.precision, fallback.as_deref())?,
    )
    .with_context(|| format!("exporting {}", checkpoint.display()))?;
    Ok(dir)
}

/// Runs `bench precision`.
pub fn run(args: &PrecisionArgs) -> anyhow::Result<()> {
    let models = model_folder(args)?;
    let files = variants(&models)?;
    let reference = Model::open(
        &files[0],
        RunOptions {
            threads: 2,
            batch: 32,
            ..RunOptions::default()
        },
    )?;
    let mut items = expand(std::slice::from_ref(&args.data))?;
    items.truncate(args.images);
    let mut data = Vec::new();
    for item in &items {
        let image = deepgalaxy_core::image::load(&item.path)?;
        data.extend(reference.prepare(&image, &item.path)?);
    }
    let n = items.len();
    anyhow::ensure!(n > 0, "{}: no images", args.data);
    let raw = args.out.join("input.f32");
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    deepgalaxy_core::io::write_atomic(&raw, |f| std::io::Write::write_all(f, &bytes))?;
    let shape = reference.input_shape().to_vec();
    let fma = deepgalaxy_runtime::inference::flops::fma_per_sample(&files[0], &shape)?;
    let cpu = Cpu::detect();

    // accuracy and agreement, each file once on --accuracy-backend (the first is FP32)
    let accuracy_run = RunOptions {
        backend: args.accuracy_backend,
        threads: 2,
        batch: 32,
    };
    let mut quality = Vec::new();
    let mut reference_outputs = None;
    for file in &files {
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
        let probs = outputs(&model, &run, "probabilities").context("no probabilities output")?;
        let latent = outputs(&model, &run, "latent");
        let (ref_probs, ref_latent) =
            reference_outputs.get_or_insert_with(|| (probs.clone(), latent.clone()));
        let agree = probs
            .iter()
            .zip(ref_probs.iter())
            .filter(|(a, b)| argmax(a) == argmax(b))
            .count();
        let latent_cosine = latent.zip(ref_latent.as_ref()).map(|(l, r)| {
            l.iter()
                .zip(r)
                .map(|(a, b)| deepgalaxy_export::agreement::cosine(a, b))
                .sum::<f64>()
                / n as f64
        });
        quality.push(Quality {
            file: file.display().to_string(),
            precision: model.card().precision.clone(),
            bytes: std::fs::metadata(file).map(|m| m.len()).unwrap_or(0),
            score: score(&preds),
            top1_agreement: agree as f64 / n as f64,
            latent_cosine,
        });
    }

    // throughput
    let mut timed: Vec<Timed> = Vec::new();
    for file in &files {
        for &batch in &args.batches {
            for &threads in &args.threads {
                for &backend in BackendKind::available() {
                    let result = time_backend(file, backend, batch, threads, &data, n, args);
                    eprintln!(
                        "{} {} batch {batch} threads {threads}: {}",
                        file.display(),
                        backend.name(),
                        cell(&result)
                    );
                    timed.push(Timed {
                        file: file.display().to_string(),
                        runner: format!("deepgalaxy ({})", backend.name()),
                        batch,
                        threads,
                        result,
                        speedup_vs_fp32: None,
                        gflops: None,
                    });
                }
                let result = peer::run(&[
                    "tensor".into(),
                    file.display().to_string(),
                    raw.display().to_string(),
                    n.to_string(),
                    shape[0].to_string(),
                    shape[1].to_string(),
                    shape[2].to_string(),
                    batch.to_string(),
                    threads.to_string(),
                    args.repeats.to_string(),
                ]);
                eprintln!(
                    "{} python onnxruntime batch {batch} threads {threads}: {}",
                    file.display(),
                    cell(&result)
                );
                timed.push(Timed {
                    file: file.display().to_string(),
                    runner: "Python onnxruntime".into(),
                    batch,
                    threads,
                    result,
                    speedup_vs_fp32: None,
                    gflops: None,
                });
            }
        }
    }
    let fp32 = files[0].display().to_string();
    let base: Vec<Option<f64>> = timed
        .iter()
        .map(|t| {
            timed
                .iter()
                .find(|r| {
                    r.file == fp32
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
    std::fs::create_dir_all(&args.out)?;
    let json = serde_json::json!({
        "model_folder": models.display().to_string(),
        "images": n,
        "input_shape": shape,
        "fma_per_image": fma,
        "cpu": cpu,
        "quality": quality,
        "throughput": timed,
    });
    let bytes = serde_json::to_vec_pretty(&json)?;
    deepgalaxy_core::io::write_atomic(&args.out.join("results.json"), |f| {
        std::io::Write::write_all(f, &bytes)
    })?;
    let md = report(args, n, &shape, fma, &cpu, &quality, &timed);
    deepgalaxy_core::io::write_atomic(&args.out.join("report.md"), |f| {
        std::io::Write::write_all(f, md.as_bytes())
    })?;
    plots(args, &quality, &timed)?;
    print!("{md}");
    Ok(())
}

/// Times one file on one backend, or says why it did not run.
fn time_backend(
    file: &Path,
    backend: BackendKind,
    batch: usize,
    threads: usize,
    data: &[f32],
    n: usize,
    args: &PrecisionArgs,
) -> Result<Throughput, String> {
    let per = data.len() / n;
    // Three single images, one after another on one thread, predict the pass before a whole
    // batch is risked; the slowest counts. tract's FP16 plan runs the first inference on a
    // thread ~15x faster than every later one (measured 2026-11-25), so a lone run misleads,
    // and one batch of a slow configuration can take many minutes by itself.
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
    if estimate > args.max_pass_seconds {
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
    run_prepared(&model, &data[..warm * per], warm).map_err(|e| e.to_string())?;
    let mut runs = Vec::new();
    let mut latencies = Vec::new();
    for _ in 0..args.repeats.max(1) {
        let start = std::time::Instant::now();
        let r = run_prepared(&model, data, n).map_err(|e| e.to_string())?;
        runs.push(n as f64 / start.elapsed().as_secs_f64());
        latencies.extend(r.latencies.iter().map(|s| s * 1e3));
    }
    Ok(Throughput {
        images_per_sec: quantile(&runs, 0.5),
        p50_ms: quantile(&latencies, 0.5),
        p99_ms: quantile(&latencies, 0.99),
        runs,
    })
}

fn cell(r: &Result<Throughput, String>) -> String {
    match r {
        Ok(t) => format!(
            "{:.1} images/s (p50 {:.2} ms, p99 {:.2} ms)",
            t.images_per_sec, t.p50_ms, t.p99_ms
        ),
        Err(e) => format!("n/a: {}", e.lines().next().unwrap_or_default()),
    }
}

fn name_of(file: &str) -> String {
    Path::new(file)
        .file_name()
        .map_or(file.to_string(), |f| f.to_string_lossy().into_owned())
}

fn report(
    args: &PrecisionArgs,
    n: usize,
    shape: &[usize],
    fma: u64,
    cpu: &Cpu,
    quality: &[Quality],
    timed: &[Timed],
) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Precision benchmark\n\n`deepgalaxy {}` on {n} images of shape {shape:?}; \
         {:.3} GFLOP per image (tract's count of multiply-adds x 2); median of {} passes after a warm-up.\n",
        std::env::args().skip(1).collect::<Vec<_>>().join(" "),
        2.0 * fma as f64 / 1e9,
        args.repeats
    );
    let _ = writeln!(md, "CPU: {}\n", cpu.describe());
    let _ = writeln!(md, "## Accuracy and agreement with FP32\n");
    let _ = writeln!(md, "| file | precision | size (kB) | top-1 | within-1 | MAE (Myr) | top-1 agreement | latent cosine |");
    let _ = writeln!(
        md,
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let base = quality.first().and_then(|q| q.score);
    for q in quality {
        let (t1, w1, mae) = q.score.map_or(("-".into(), "-".into(), "-".into()), |s| {
            let d = |x: f64, b: Option<f64>| match b {
                Some(b) if q.file != quality[0].file => {
                    format!("{:.1}% ({:+.1})", 100.0 * x, 100.0 * (x - b))
                }
                _ => format!("{:.1}%", 100.0 * x),
            };
            (
                d(s.top1, base.map(|b| b.top1)),
                d(s.within1, base.map(|b| b.within1)),
                format!("{:.1}", s.time.map_or(f64::NAN, |t| t.mean_abs_myr)),
            )
        });
        let _ = writeln!(
            md,
            "| {} | {} | {:.0} | {t1} | {w1} | {mae} | {:.1}% | {} |",
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
        match &t.result {
            Ok(x) => {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {:.1} | {} | {:.2} | {:.2} | {} |",
                    name_of(&t.file),
                    t.runner,
                    t.batch,
                    t.threads,
                    x.images_per_sec,
                    t.speedup_vs_fp32.map_or("-".into(), |s| format!("{s:.2}")),
                    x.p50_ms,
                    x.p99_ms,
                    t.gflops.map_or("-".into(), |g| format!(
                        "{g:.1} ({:.1}%)",
                        100.0 * g / cpu.peak_gflops(t.threads)
                    )),
                );
            }
            Err(e) => {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | | | | |",
                    name_of(&t.file),
                    t.runner,
                    t.batch,
                    t.threads,
                    e.lines().next().unwrap_or_default()
                );
            }
        }
    }
    let _ = writeln!(
        md,
        "\n![speed-up vs accuracy](speedup_vs_accuracy.png)\n\n![throughput](throughput.png)"
    );
    md
}

fn plots(args: &PrecisionArgs, quality: &[Quality], timed: &[Timed]) -> anyhow::Result<()> {
    let base = quality.first().and_then(|q| q.score).map(|s| s.top1);
    let (batch, threads) = (
        args.batches.iter().copied().max().unwrap_or(1),
        args.threads.iter().copied().max().unwrap_or(1),
    );
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
        &args.out.join("speedup_vs_accuracy.png"),
        &format!("Speed-up over FP32 vs top-1 change (batch {batch}, {threads} threads)"),
        ("speed-up over FP32 (same backend)", "top-1 change (points)"),
        &points,
    )?;
    let files: Vec<String> = quality.iter().map(|q| name_of(&q.file)).collect();
    let mut runners: Vec<String> = timed.iter().map(|t| t.runner.clone()).collect();
    runners.dedup();
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
        &args.out.join("throughput.png"),
        &format!("Throughput per file and runner (batch {batch}, {threads} threads)"),
        "images/s",
        &files,
        &series,
    )?;
    Ok(())
}
