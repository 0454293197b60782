//! `deepgalaxy evaluate`: score a model on the mergers of a catalog it has never seen; the
//! selection and the scores are deepgalaxy-runtime's (`evaluate`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use deepgalaxy_core::card::TestRecord;
use deepgalaxy_core::Catalog;
use deepgalaxy_runtime::analysis::evaluate::{evaluate, knn, merger_points, select};
use deepgalaxy_runtime::drawing::charts::write_evaluation;
use deepgalaxy_runtime::inference::predict::{predictions, write_predictions};
use deepgalaxy_runtime::library::index::LatentIndex;
use deepgalaxy_runtime::library::recommend::Library;
use deepgalaxy_runtime::library::search::Strategy;

use crate::run_args::{run_with_progress, ModelArgs};

/// Score a model on mergers it was neither trained nor validated on.
#[derive(Debug, clap::Args)]
pub struct EvaluateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The catalog of labelled images (e.g. `simulate`'s catalog.csv); images of mergers the
    /// model card names as trained or validated on are left out.
    #[arg(long)]
    pub data: PathBuf,
    /// Output folder: evaluation.md, evaluation.json, evaluate.png, predictions.csv.
    #[arg(long, default_value = "evaluation")]
    pub out: PathBuf,
    /// Score the images of every merger, seen ones included (the report says so).
    #[arg(long)]
    pub include_seen: bool,
    /// Also score the similarity search: a latent index (from `deepgalaxy index`) searched
    /// for each image's nearest entries, leaving out the image's own simulation.
    #[arg(long)]
    pub index: Option<PathBuf>,
    /// Neighbours per image for --index.
    #[arg(short, long, default_value_t = 6, value_parser = crate::run_args::in_range(1, u64::MAX))]
    pub k: usize,
    /// Replace an evaluation already in --out.
    #[arg(long)]
    pub overwrite: bool,
    /// Also record the scores in the model file's card, so they travel with the file
    /// (`inspect --markdown` shows them): only scores of unseen mergers with every image read.
    #[arg(long, conflicts_with = "include_seen")]
    pub record: bool,
}

/// The files `evaluate` writes in its folder.
const FILES: [&str; 4] = [
    "evaluation.json",
    "evaluation.md",
    "evaluate.png",
    "predictions.csv",
];

/// Runs `evaluate`.
pub fn run(args: &EvaluateArgs) -> anyhow::Result<()> {
    if !args.overwrite {
        if let Some(f) = FILES.iter().map(|f| args.out.join(f)).find(|f| f.exists()) {
            anyhow::bail!(
                "{} exists: choose another --out, or replace it with --overwrite",
                f.display()
            );
        }
    }
    if args.record && args.model.model.is_none() {
        anyhow::bail!("--record writes the scores into the model file: name it with --model");
    }
    let model = args.model.open()?;
    let catalog = Catalog::read(&args.data)?;
    let selection = select(&catalog, model.card(), args.include_seen)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.data.display()))?;
    eprintln!(
        "scoring {} images; {} images of {} mergers the model has seen are left out",
        selection.items.len(),
        selection.excluded_images,
        selection.excluded_simulations.len()
    );
    let index = match &args.index {
        Some(path) => {
            let dim = model.latent_dim()?;
            let index = LatentIndex::load(path, Some(dim))?;
            crate::similarity::check_compatible(&index, path, &model)?;
            Some((index, path))
        }
        None => None,
    };
    let results = run_with_progress(&model, &selection.items, "evaluate");
    let mut preds = predictions(
        &selection.items,
        &results,
        model.output_names(),
        model.card(),
        3,
        index.is_some(),
    )?;
    let name = |p: &Path| p.display().to_string();
    let e = evaluate(
        &preds,
        &selection,
        &name(&args.model.path()),
        model.card(),
        &name(&args.data),
    )
    .with_context(|| format!("{}: no image could be scored", args.data.display()))?;
    let mut e = e;
    if let Some((index, path)) = &index {
        index.check_files_inside(path).context(
            "refusing to read library images outside the index's folder (write the index beside its catalog)",
        )?;
        let library = Library::new(index, path, Strategy::Auto, model.card().target)?;
        e.knn = Some(knn(&library, &name(path), &preds, &selection, args.k)?);
    }
    deepgalaxy_core::io::create_dir_all(&args.out)?;
    // the latents were for the search; the table keeps the times
    preds.iter_mut().for_each(|p| p.latent = None);
    write_predictions(&args.out.join("predictions.csv"), &preds)?;
    let title = format!(
        "{} on {} unseen mergers",
        name(&args.model.path()),
        e.simulations.len()
    );
    write_evaluation(
        &args.out.join("evaluate.png"),
        &title,
        &merger_points(&preds, &selection),
    )?;
    let json = serde_json::to_vec_pretty(&e)?;
    deepgalaxy_core::io::write_atomic(&args.out.join("evaluation.json"), |f| {
        std::io::Write::write_all(f, &json)
    })?;
    let md = e.to_markdown();
    deepgalaxy_core::io::write_atomic(&args.out.join("evaluation.md"), |f| {
        std::io::Write::write_all(f, md.as_bytes())
    })?;
    eprintln!("{}", e.summary());
    eprintln!("wrote {}", args.out.join("evaluation.md").display());
    if e.failed > 0 {
        anyhow::bail!(
            "{} of {} images could not be read (listed in predictions.csv; the others were scored)",
            e.failed,
            preds.len()
        );
    }
    if let (true, Some(path)) = (args.record, &args.model.model) {
        let (Some(score), Some(baseline)) = (e.overall.time, e.baseline) else {
            anyhow::bail!(
                "{}: the catalog gives no times to score, so there is nothing to record",
                args.data.display()
            );
        };
        let test = TestRecord {
            simulations: e.simulations.clone(),
            data_digest: deepgalaxy_core::card::digest_file(&args.data)?,
            score,
            baseline,
        };
        deepgalaxy_export::record_test(path, test)?;
        eprintln!("recorded the scores in the card of {}", path.display());
    }
    Ok(())
}
