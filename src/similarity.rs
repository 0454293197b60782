//! `deepgalaxy index` and `deepgalaxy search`: embed a simulated library into a latent index,
//! then find the library images most similar to query images (kNN in latent space, validated
//! by SSIM, with a kNN estimate of the query's time and a gallery PNG).

use std::path::{Path, PathBuf};

use anyhow::Context;
use deepgalaxy_core::time::TimeTarget;
use deepgalaxy_core::{Catalog, Image};
use deepgalaxy_runtime::drawing::gallery::{write_galleries, Tile};
use deepgalaxy_runtime::inference::inputs::{expand, from_catalog, InputItem};
use deepgalaxy_runtime::inference::model::Model;
use deepgalaxy_runtime::library::index::{Compatibility, Entry, LatentIndex};
use deepgalaxy_runtime::library::recommend::{preprocessed, Library, Recommendation};
use deepgalaxy_runtime::library::search::Strategy;
use serde::Serialize;

use crate::run_args::{report_failures, run_with_progress, ModelArgs};

/// Build a latent similarity index over a catalog.
#[derive(Debug, clap::Args)]
pub struct IndexArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The library: a catalog (.csv) of images with their labels and times.
    #[arg(long)]
    pub data: PathBuf,
    /// The index file to write.
    #[arg(long)]
    pub output: PathBuf,
}

/// `file` as stored in an index at `index_path`: relative to the index's folder when it lies
/// under it, so a library folder can move as a whole.
fn stored_path(file: &Path, index_path: &Path) -> String {
    let folder = index_path.parent().unwrap_or(Path::new(""));
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let (file_abs, folder_abs) = (abs(file), abs(folder));
    file_abs
        .strip_prefix(&folder_abs)
        .map(Path::to_path_buf)
        .unwrap_or(file_abs)
        .display()
        .to_string()
}

/// Runs `index`.
pub fn index(args: &IndexArgs) -> anyhow::Result<()> {
    let model = args.model.open()?;
    let dim = model.latent_dim()?;
    let catalog = Catalog::read(&args.data)?;
    let items = from_catalog(&catalog);
    let results = run_with_progress(&model, &items, "index");
    let latent = model.output_index("latent")?;
    let mut vectors = Vec::with_capacity(items.len() * dim);
    let mut entries = Vec::with_capacity(items.len());
    for (item, r) in items.iter().zip(&results) {
        if let Ok(s) = r {
            vectors.extend_from_slice(&s.rows[latent]);
            entries.push(Entry {
                id_str: item.id.clone(),
                file: stored_path(&item.path, &args.output),
                label: item.label,
                t_myr: item.t_myr,
                t_peri_myr: item.t_peri_myr,
                simulation: item.simulation.clone(),
            });
        }
    }
    if entries.is_empty() {
        report_failures(&items, &results)?;
        anyhow::bail!("{}: the catalog has no images", args.data.display());
    }
    let index = LatentIndex::new(dim, model.identity(), vectors, entries)?;
    index.save(&args.output)?;
    if let Err(e) = index.check_files_inside(&args.output) {
        eprintln!(
            "note: {e}; `search` will read such images only with --allow-paths-outside-index \
             (write the index beside the catalog to avoid this)"
        );
    }
    eprintln!(
        "wrote {} ({} latents of size {dim})",
        args.output.display(),
        index.len()
    );
    report_failures(&items, &results)
}

/// Search strategy on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum StrategyArg {
    /// kd-tree or brute force, by the measured rule.
    Auto,
    /// kiddo kd-tree (latent sizes 8, 16, 32, 64).
    KdTree,
    /// Scan every vector.
    Brute,
}

/// Find the simulated mergers most similar to query images.
#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The latent index (from `deepgalaxy index`); without it, `search` says how to build one.
    #[arg(long)]
    pub index: Option<PathBuf>,
    /// Query images: files, folders, glob patterns or catalogs.
    #[arg(required = true)]
    pub queries: Vec<String>,
    /// Neighbours per query (at least 1).
    #[arg(short, long, default_value_t = 6, value_parser = crate::run_args::in_range(1, u64::MAX))]
    pub k: usize,
    /// Write a gallery PNG: each query beside its neighbours with class, time, distance, SSIM.
    #[arg(long)]
    pub gallery: Option<PathBuf>,
    /// Write the results as JSON.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Search structure.
    #[arg(long, value_enum, default_value = "auto")]
    pub strategy: StrategyArg,
    /// Read library images wherever the index's entries say, even outside the index's folder
    /// (absolute paths, `..`). Off by default: an index from someone else could otherwise make
    /// `search` read any file.
    #[arg(long)]
    pub allow_paths_outside_index: bool,
}

/// One query's results, as written to `--output`.
#[derive(Debug, Serialize)]
pub struct QueryResult {
    /// The query's id.
    pub id: String,
    /// The query file.
    pub file: String,
    /// Why the query has no results.
    pub error: Option<String>,
    /// Neighbours and time estimate.
    pub result: Option<Recommendation>,
}

/// Checks that `index` was embedded by a model compatible with `model`, with a note when it
/// was another file of the same model.
pub fn check_compatible(
    index: &LatentIndex,
    index_path: &Path,
    model: &Model,
) -> anyhow::Result<()> {
    let c = index
        .model()
        .compatibility(&model.identity(), index_path, model.path())?;
    if c == Compatibility::SameModel {
        eprintln!(
            "note: {} was embedded by another file of the same model (e.g. another precision)",
            index_path.display()
        );
    }
    Ok(())
}

/// Runs `search`.
pub fn search(args: &SearchArgs) -> anyhow::Result<()> {
    let Some(index_path) = &args.index else {
        let model = args
            .model
            .model
            .as_ref()
            .map_or(String::new(), |m| format!("--model {} ", m.display()));
        anyhow::bail!(
            "search needs a library of simulated mergers to search (--index LIB). Build one with \
             the same model: `deepgalaxy simulate --out sims --grid demo` (or your own grid), then \
             `deepgalaxy index {model}--data sims/catalog.csv --output sims/library.idx`"
        );
    };
    let model = args.model.open()?;
    let index = LatentIndex::load(index_path, Some(model.latent_dim()?))?;
    check_compatible(&index, index_path, &model)?;
    if !args.allow_paths_outside_index {
        index.check_files_inside(index_path).context(
            "refusing to read library images outside the index's folder \
             (if you trust this index, pass --allow-paths-outside-index)",
        )?;
    }
    let strategy = match args.strategy {
        StrategyArg::Auto => Strategy::Auto,
        StrategyArg::KdTree => Strategy::KdTree,
        StrategyArg::Brute => Strategy::Brute,
    };
    let target = model.card().target;
    let library = Library::new(&index, index_path, strategy, target)?;
    let items = expand(&args.queries)?;
    let results = run_with_progress(&model, &items, "search");
    let latent = model.output_index("latent")?;
    let mut out = Vec::new();
    let mut pictures: Vec<(Image, Vec<Image>)> = Vec::new();
    for (item, r) in items.iter().zip(&results) {
        let found = r.as_ref().map_err(Clone::clone).and_then(|s| {
            let query = preprocessed(&index, &item.path).map_err(|e| e.to_string())?;
            let rec = library
                .recommend(&query, &s.rows[latent], args.k, item.simulation.as_deref())
                .map_err(|e| e.to_string())?;
            Ok((query, rec))
        });
        match found {
            Ok((query, rec)) => {
                print_result(item, &rec, target);
                if args.gallery.is_some() {
                    let images = rec
                        .neighbours
                        .iter()
                        .map(|n| preprocessed(&index, &n.file).unwrap_or_else(|_| blank(&query)))
                        .collect();
                    pictures.push((query, images));
                }
                out.push(QueryResult {
                    id: item.id.clone(),
                    file: item.path.display().to_string(),
                    error: None,
                    result: Some(rec),
                });
            }
            Err(e) => out.push(QueryResult {
                id: item.id.clone(),
                file: item.path.display().to_string(),
                error: Some(e),
                result: None,
            }),
        }
    }
    if let Some(path) = &args.gallery {
        write_gallery(path, &items, &out, &pictures, target)?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &args.output {
        let json = serde_json::to_vec_pretty(&out)?;
        deepgalaxy_core::io::write_atomic(path, |f| std::io::Write::write_all(f, &json))?;
        eprintln!("wrote {}", path.display());
    }
    let failed: Vec<&QueryResult> = out.iter().filter(|q| q.error.is_some()).collect();
    for q in &failed {
        eprintln!("failed: {}", q.error.as_deref().unwrap_or_default());
    }
    if !failed.is_empty() {
        anyhow::bail!(
            "{} of {} queries failed (listed above)",
            failed.len(),
            out.len()
        );
    }
    // a library image that cannot be read is a damaged index: the neighbours are still
    // reported, but the run is not a success
    let unreadable = out
        .iter()
        .filter_map(|q| q.result.as_ref())
        .flat_map(|r| &r.neighbours)
        .filter(|n| n.ssim_error.is_some())
        .count();
    if unreadable > 0 {
        anyhow::bail!(
            "{unreadable} neighbour image(s) of the index {} could not be read (listed above), so their SSIM is missing",
            index_path.display()
        );
    }
    Ok(())
}

/// A grey stand-in for a neighbour image that cannot be read (its SSIM error says why).
fn blank(like: &Image) -> Image {
    let mut b = like.clone();
    b.data.fill(0.5);
    b
}

fn print_result(item: &InputItem, rec: &Recommendation, target: TimeTarget) {
    let skipped = match rec.own_simulation_skipped {
        0 => String::new(),
        n => format!(" ({n} nearer entries of its own simulation skipped)"),
    };
    let what = match target {
        TimeTarget::TPeri => "t - t_peri",
        TimeTarget::Snapshot => "t",
    };
    match &rec.estimate {
        Some(e) => println!(
            "{}: {what} = {:.0} ± {:.0} Myr from {} neighbours{skipped}",
            item.id, e.mean_myr, e.std_myr, e.count
        ),
        None => println!("{}: no neighbour has a time{skipped}", item.id),
    }
    for (rank, n) in rec.neighbours.iter().enumerate() {
        let class = n.label.map_or("-".into(), |l| l.to_string());
        let t = n.time(target).map_or("-".into(), |t| format!("{t:.0}"));
        let ssim = n.ssim.map_or("-".into(), |s| format!("{s:.3}"));
        println!(
            "  {:>2}. {:<28} class {class:>3}  t {t:>5} Myr  d {:.4}  SSIM {ssim}",
            rank + 1,
            n.id,
            n.distance
        );
        if let Some(e) = &n.ssim_error {
            eprintln!("note: no SSIM for neighbour {}: {e}", n.id);
        }
    }
}

fn write_gallery(
    path: &Path,
    items: &[InputItem],
    out: &[QueryResult],
    pictures: &[(Image, Vec<Image>)],
    target: TimeTarget,
) -> anyhow::Result<()> {
    let done: Vec<(&InputItem, &Recommendation)> = items
        .iter()
        .zip(out)
        .filter_map(|(i, q)| q.result.as_ref().map(|r| (i, r)))
        .collect();
    let rows: Vec<_> = done
        .iter()
        .zip(pictures)
        .map(|((item, rec), (query, images))| {
            let q = Tile {
                image: query,
                name: &item.id,
                label: item.label,
                t_myr: rec.estimate.map(|e| e.mean_myr),
                t_spread: rec.estimate.map(|e| e.std_myr),
                distance: None,
                ssim: None,
            };
            let neighbours = rec
                .neighbours
                .iter()
                .zip(images)
                .map(|(n, image)| Tile {
                    image,
                    name: &n.id,
                    label: n.label,
                    t_myr: n.time(target),
                    t_spread: None,
                    distance: Some(n.distance),
                    ssim: n.ssim,
                })
                .collect();
            (
                format!(
                    "query {} and its {} nearest simulated mergers",
                    item.id,
                    rec.neighbours.len()
                ),
                q,
                neighbours,
            )
        })
        .collect();
    if rows.is_empty() {
        anyhow::bail!("no query succeeded, so there is no gallery to write");
    }
    write_galleries(path, &rows)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_paths_are_relative_to_the_index_folder_when_inside_it() {
        let lib = Path::new("/data/lib/library.idx");
        assert_eq!(
            stored_path(Path::new("/data/lib/img/a.png"), lib),
            "img/a.png"
        );
        assert_eq!(stored_path(Path::new("/other/a.png"), lib), "/other/a.png");
    }
}
