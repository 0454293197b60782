//! `deepgalaxy bench predict`: images/s end to end from files (decode, preprocess, infer), for
//! each backend x batch size x thread count, beside Python onnxruntime on the same file.

use std::fmt::Write as _;
use std::path::PathBuf;

use deepgalaxy_runtime::inference::backend::BackendKind;
use deepgalaxy_runtime::inference::infer::run_items;
use deepgalaxy_runtime::inference::inputs::expand;
use deepgalaxy_runtime::inference::model::{Model, RunOptions};
use serde::Serialize;

use deepgalaxy_runtime::benchmark::peer;
use deepgalaxy_runtime::benchmark::timing::{measure, Throughput};

/// Arguments of `bench predict`.
#[derive(Debug, clap::Args)]
pub struct PredictBenchArgs {
    /// The exported model.
    #[arg(long)]
    pub model: PathBuf,
    /// Images: a catalog, folder or glob (the first `--images` are used).
    #[arg(long)]
    pub data: String,
    /// Images per pass (at least 1).
    #[arg(long, default_value_t = 256, value_parser = crate::run_args::in_range(1, u64::MAX))]
    pub images: usize,
    /// Timed passes per configuration (the median is quoted; at least 1).
    #[arg(long, default_value_t = 3, value_parser = crate::run_args::in_range(1, u64::MAX))]
    pub repeats: usize,
    /// Folder for predict.md and predict.json.
    #[arg(long, default_value = "bench-results")]
    pub out: PathBuf,
}

/// One row of the results.
#[derive(Debug, Serialize)]
struct Row {
    runner: String,
    batch: usize,
    threads: usize,
    result: Result<Throughput, String>,
}

/// Runs `bench predict`.
pub fn run(args: &PredictBenchArgs) -> anyhow::Result<()> {
    let mut items = expand(std::slice::from_ref(&args.data))?;
    items.truncate(args.images);
    anyhow::ensure!(!items.is_empty(), "{}: no images", args.data);
    let n = items.len();
    let list = args.out.join("files.txt");
    let names: String = items
        .iter()
        .map(|i| format!("{}\n", i.path.display()))
        .collect();
    deepgalaxy_core::io::write_atomic(&list, |f| std::io::Write::write_all(f, names.as_bytes()))?;
    let mut rows = Vec::new();
    for batch in [1usize, 32] {
        for threads in [1usize, 2] {
            for &backend in BackendKind::available() {
                let result = Model::open(
                    &args.model,
                    RunOptions {
                        backend,
                        threads,
                        batch,
                    },
                )
                .map_err(|e| e.to_string())
                .and_then(|model| {
                    let pass = || {
                        let results = run_items(&model, &items, &|_| {});
                        match results.iter().find_map(|r| r.as_ref().err()) {
                            Some(e) => anyhow::bail!("{e}"),
                            None => Ok(vec![]),
                        }
                    };
                    let warm = || run_items(&model, &items[..batch.min(n)], &|_| {});
                    measure(
                        n,
                        args.repeats,
                        || {
                            let _: () = drop(warm());
                            Ok(())
                        },
                        pass,
                    )
                    .map_err(|e| e.to_string())
                });
                eprintln!(
                    "{} batch {batch} threads {threads}: {}",
                    backend.name(),
                    show(&result)
                );
                rows.push(Row {
                    runner: format!("deepgalaxy ({})", backend.name()),
                    batch,
                    threads,
                    result,
                });
            }
            let size = Model::open(&args.model, RunOptions::default())?.input_shape()[1];
            let result = peer::run(
                &super::peer_script("predict_peer.py"),
                &[
                    "files".into(),
                    args.model.display().to_string(),
                    list.display().to_string(),
                    size.to_string(),
                    batch.to_string(),
                    threads.to_string(),
                    args.repeats.to_string(),
                ],
            );
            eprintln!(
                "python onnxruntime batch {batch} threads {threads}: {}",
                show(&result)
            );
            rows.push(Row {
                runner: "Python onnxruntime".into(),
                batch,
                threads,
                result,
            });
        }
    }
    let mut md = format!(
        "End-to-end predict throughput on {n} images of `{}` (decode + preprocess + inference), \
         median of {} passes after a warm-up, `deepgalaxy bench predict`.\n\n\
         | runner | batch | threads | images/s |\n| --- | ---: | ---: | ---: |\n",
        args.model.display(),
        args.repeats
    );
    for r in &rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            r.runner,
            r.batch,
            r.threads,
            show(&r.result)
        );
    }
    print!("{md}");
    let json = serde_json::to_vec_pretty(&rows)?;
    deepgalaxy_core::io::write_atomic(&args.out.join("predict.json"), |f| {
        std::io::Write::write_all(f, &json)
    })?;
    deepgalaxy_core::io::write_atomic(&args.out.join("predict.md"), |f| {
        std::io::Write::write_all(f, md.as_bytes())
    })?;
    Ok(())
}

/// A result cell: the images/s, or why the configuration did not run.
fn show(r: &Result<Throughput, String>) -> String {
    match r {
        Ok(t) => format!("{:.1}", t.images_per_sec),
        Err(e) => format!("n/a ({})", e.lines().next().unwrap_or_default()),
    }
}
