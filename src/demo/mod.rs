//! `deepgalaxy demo`: the whole paper end to end on built-in defaults, in stages that each run
//! the same command a user would type (listed in the report, so every stage can be rerun by
//! hand) and are skipped when their output is already there:
//!
//! simulate a small merger grid -> train the three heads, the classes being time since first
//! pericentre, with test mergers kept out -> export FP32 and INT8 (calibrated on training
//! mergers only) -> predict the test mergers -> `evaluate` on them -> predict the Hubble images
//! -> latent index of the training mergers -> similarity search with a gallery -> spectral
//! clustering and latent maps -> latent interpolation -> `report.md`.
//!
//! No number in the report comes from a merger used for any choice: the test mergers are
//! named before training, the validation merger only calibrates the predicted spread (the
//! run's length is fixed), INT8 is calibrated on the training mergers, and the library
//! searched holds training mergers only, so a query never finds its own simulation.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::{Args, FromArgMatches};
use deepgalaxy_core::{Catalog, CatalogRecord};

use report::Measured;

mod report;

/// Run the whole pipeline end to end on built-in defaults.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Output folder (stages whose output is already there are skipped).
    #[arg(long, default_value = "deepgalaxy-demo")]
    pub out: PathBuf,
    /// Real images to predict and search with (skipped when the folder is missing)
    /// [default: the Hubble images in the repository's fixtures/observations/hst].
    #[arg(long)]
    pub observations: Option<PathBuf>,
    /// Particles per simulated merger.
    #[arg(long, default_value_t = 4000)]
    pub particles: usize,
    /// Side of the simulated images in pixels.
    #[arg(long, default_value_t = 64)]
    pub sim_size: u32,
    /// Side of the images the network sees.
    #[arg(long, default_value_t = 32)]
    pub image_size: u32,
    /// Training epochs.
    #[arg(long, default_value_t = 4)]
    pub epochs: usize,
    /// Mergers to simulate (the first N of the demo grid of nine).
    #[arg(long, default_value_t = 9)]
    pub mergers: usize,
}

/// Parses `args` as the arguments of a command whose clap arguments are `T`.
pub fn parse_args<T: Args + FromArgMatches>(args: &[OsString]) -> anyhow::Result<T> {
    let cmd = T::augment_args(clap::Command::new("deepgalaxy").no_binary_name(true));
    let matches = cmd.try_get_matches_from(args)?;
    Ok(T::from_arg_matches(&matches)?)
}

/// One stage: its name, the command line it runs, and how long it took.
pub struct Stage {
    /// Short name.
    pub name: &'static str,
    /// `deepgalaxy ...` as a user would type it.
    pub command: String,
    /// Seconds, or `None` when skipped because its output was there.
    pub seconds: Option<f64>,
}

/// Runs the stages in order, recording each.
struct Runner {
    stages: Vec<Stage>,
    total: usize,
}

impl Runner {
    /// Runs `run` unless `done` exists; `args` is the command line shown in the report.
    fn stage<T: Args + FromArgMatches>(
        &mut self,
        name: &'static str,
        done: &Path,
        args: Vec<OsString>,
        run: impl FnOnce(&T) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let command = std::iter::once("deepgalaxy".to_string())
            .chain(args.iter().map(|a| shell_word(&a.to_string_lossy())))
            .collect::<Vec<_>>()
            .join(" ");
        let n = self.stages.len() + 1;
        let seconds = if done.exists() {
            eprintln!(
                "\n[{n}/{}] {name}: already done ({})",
                self.total,
                done.display()
            );
            None
        } else {
            eprintln!("\n[{n}/{}] {name}: {command}", self.total);
            let parsed: T = parse_args(&args[1..])?;
            let start = Instant::now();
            run(&parsed).with_context(|| format!("demo stage `{name}`"))?;
            Some(start.elapsed().as_secs_f64())
        };
        self.stages.push(Stage {
            name,
            command,
            seconds,
        });
        Ok(())
    }
}

/// `word` quoted for a POSIX shell when it needs to be.
fn shell_word(word: &str) -> String {
    if word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./,:=".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Command-line words from a mix of strings and paths.
fn command_words(parts: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<OsString> {
    parts.iter().map(|p| p.as_ref().to_os_string()).collect()
}

/// The Hubble images shipped in the repository (public domain; see their README).
fn shipped_observations() -> PathBuf {
    deepgalaxy_core::source_dir(env!("CARGO_MANIFEST_DIR")).join("fixtures/observations/hst")
}

/// The test, validation and training simulations of the training run (from its checkpoint
/// state).
fn split_simulations(run: &Path) -> anyhow::Result<[Vec<String>; 3]> {
    let state = deepgalaxy_train::checkpoint::load_state(&run.join("checkpoint"))?;
    anyhow::ensure!(
        !state.split.test_simulations.is_empty(),
        "the checkpoint in {} names no test simulations",
        run.display()
    );
    Ok([
        state.split.test_simulations,
        state.split.val_simulations,
        state.split.train_simulations,
    ])
}

/// Writes the catalog of the simulations `sims` beside the full one (same relative paths).
fn write_subset(catalog: &Path, sims: &[String], out: &Path) -> anyhow::Result<usize> {
    let all = Catalog::read(catalog)?;
    let records: Vec<CatalogRecord> = all
        .records
        .into_iter()
        .filter(|r| r.simulation.as_ref().is_some_and(|s| sims.contains(s)))
        .collect();
    let n = records.len();
    Catalog::new(records).write(out)?;
    Ok(n)
}

/// Runs `demo`.
pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    let out = &args.out;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let sim = out.join("sim");
    let catalog = sim.join("catalog.csv");
    let train_dir = out.join("run");
    let onnx = out.join("onnx");
    let model = onnx.join("model.onnx");
    let model_int8 = onnx.join("model.int8.onnx");
    let held_out = sim.join("test.csv");
    let training = sim.join("train.csv");
    let observations = args
        .observations
        .clone()
        .unwrap_or_else(shipped_observations);
    let hst = observations.is_dir().then_some(observations);
    let mut r = Runner {
        stages: vec![],
        // the Hubble stage runs only when the folder exists
        total: 10 + usize::from(hst.is_some()),
    };

    r.stage(
        "simulate",
        &catalog,
        command_words(&[
            &"simulate",
            &"--out",
            &sim,
            &"--grid",
            &"demo",
            &"--mergers",
            &args.mergers.to_string(),
            &"--particles",
            &args.particles.to_string(),
            &"--size",
            &args.sim_size.to_string(),
        ]),
        crate::simulate::run,
    )?;
    // the classes are 5 Myr bins of time since first pericentre (the catalog has the phase
    // labels); ordinal targets: a bin's neighbours look alike, so the classifier learns the
    // order of the bins rather than 71 unrelated classes. The run's length is fixed: the
    // validation merger serves only to calibrate the predicted spread.
    let mut train_args = command_words(&[
        &"train",
        &"--data",
        &catalog,
        &"--out",
        &train_dir,
        &"--image-size",
        &args.image_size.to_string(),
        &"--epochs",
        &args.epochs.to_string(),
        &"--batch-size",
        &"32",
        &"--lr",
        &"0.002",
        &"--label-sigma",
        &"2",
    ]);
    let (test_mergers, validation_mergers) = deepgalaxy_sim::merger::demo_held_out(args.mergers);
    if test_mergers.is_empty() {
        train_args.extend(command_words(&[&"--test-fraction", &"0.2"]));
    } else {
        train_args.extend(command_words(&[
            &"--test-simulations",
            &test_mergers.join(","),
        ]));
    }
    if validation_mergers.is_empty() {
        train_args.extend(command_words(&[&"--val-fraction", &"0"]));
    } else {
        train_args.extend(command_words(&[
            &"--val-simulations",
            &validation_mergers.join(","),
        ]));
    }
    r.stage(
        "train",
        &train_dir.join("checkpoint"),
        train_args,
        crate::train::run,
    )?;
    let [held, validated_on, trained_on] = split_simulations(&train_dir)?;
    if !held_out.exists() {
        write_subset(&catalog, &held, &held_out)?;
    }
    if !training.exists() {
        write_subset(&catalog, &trained_on, &training)?;
    }
    r.stage(
        "export FP32 and INT8",
        &model_int8,
        command_words(&[
            &"export",
            &"--checkpoint",
            &train_dir,
            &"--out",
            &onnx,
            &"--precision",
            &"fp32,int8",
            &"--calibration",
            &catalog,
            &"--validation",
            &held_out,
        ]),
        crate::export::run,
    )?;
    let mut timing = Vec::new();
    for (name, file, csv) in [
        (
            "predict held-out (FP32)",
            &model,
            out.join("predictions_heldout.json"),
        ),
        (
            "predict held-out (INT8)",
            &model_int8,
            out.join("predictions_heldout_int8.json"),
        ),
    ] {
        let before = r.stages.len();
        r.stage(
            name,
            &csv,
            command_words(&[
                &"predict",
                &"--model",
                file,
                &"--output",
                &csv,
                &"-k",
                &"3",
                &held_out,
            ]),
            crate::predict::run,
        )?;
        timing.push(r.stages[before].seconds);
    }
    let hst_json = out.join("predictions_hst.json");
    if let Some(dir) = &hst {
        r.stage(
            "predict Hubble images",
            &hst_json,
            command_words(&[&"predict", &"--model", &model, &"--output", &hst_json, dir]),
            crate::predict::run,
        )?;
    }
    let index = out.join("library.idx");
    r.stage(
        "index",
        &index,
        command_words(&[
            &"index",
            &"--model",
            &model,
            &"--data",
            &training,
            &"--output",
            &index,
        ]),
        crate::similarity::index,
    )?;
    let evaluation = out.join("evaluation");
    r.stage(
        "evaluate on the test mergers",
        &evaluation.join("evaluation.json"),
        command_words(&[
            &"evaluate",
            &"--model",
            &model,
            &"--data",
            &catalog,
            &"--out",
            &evaluation,
            &"--index",
            &index,
        ]),
        crate::evaluate::run,
    )?;
    let queries: Vec<PathBuf> = match &hst {
        Some(dir) => deepgalaxy_runtime::inference::inputs::expand(&[dir.display().to_string()])?
            .into_iter()
            .map(|i| i.path)
            .take(4)
            .collect(),
        None => report::sample_queries(&held_out, 4)?,
    };
    let gallery = out.join("gallery.png");
    let search_json = out.join("search.json");
    let mut search_args = command_words(&[
        &"search",
        &"--model",
        &model,
        &"--index",
        &index,
        &"-k",
        &"5",
        &"--gallery",
        &gallery,
        &"--output",
        &search_json,
    ]);
    search_args.extend(queries.iter().map(|q| q.as_os_str().to_os_string()));
    r.stage(
        "search",
        &search_json,
        search_args,
        crate::similarity::search,
    )?;
    let clusters = out.join("clusters");
    r.stage(
        "cluster",
        &clusters.join("clusters.csv"),
        command_words(&[
            &"cluster",
            &"--index",
            &index,
            &"--output",
            &clusters,
            &"--tsne",
        ]),
        crate::cluster::run,
    )?;
    let (a, b) = report::interpolation_ends(&held_out)?;
    let interpolation = out.join("interpolation.png");
    r.stage(
        "interpolate",
        &interpolation,
        command_words(&[
            &"interpolate",
            &"--model",
            &model,
            &"--decoder",
            &onnx.join("decoder.onnx"),
            &"--output",
            &interpolation,
            &a,
            &b,
        ]),
        crate::interpolate::run,
    )?;
    let measured = Measured {
        out: out.clone(),
        held_out_simulations: held,
        validation_simulations: validated_on,
        fp32_seconds: timing[0],
        int8_seconds: timing[1],
        hst: hst.is_some(),
        total_seconds: start.elapsed().as_secs_f64(),
    };
    let report = report::write(&measured, &r.stages)?;
    eprintln!(
        "\nwrote {} ({:.0} s in all)",
        report.display(),
        measured.total_seconds
    );
    Ok(())
}
