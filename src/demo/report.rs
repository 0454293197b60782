//! The demo's `report.md`: every number in it is read back from the files this run's stages
//! wrote (predictions, search results, clusters, training metrics), beside the pictures.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use deepgalaxy_core::Catalog;
use deepgalaxy_runtime::gallery::{write_galleries, Tile};
use deepgalaxy_runtime::predict::{score, Prediction, Score};

use super::Stage;

/// What the demo measured outside the stages' own files.
pub struct Measured {
    /// The demo folder.
    pub out: PathBuf,
    /// Simulations the training held out.
    pub held_out_simulations: Vec<String>,
    /// Seconds to predict the held-out images with the FP32 model (None: not run now).
    pub fp32_seconds: Option<f64>,
    /// The same with the INT8 model.
    pub int8_seconds: Option<f64>,
    /// Whether Hubble images were predicted and searched.
    pub hst: bool,
    /// Wall time of the whole demo.
    pub total_seconds: f64,
}

/// `n` held-out images spread over the merger (camera 0, evenly spaced snapshots).
pub fn sample_queries(held_out: &Path, n: usize) -> anyhow::Result<Vec<PathBuf>> {
    let c = Catalog::read(held_out)?;
    let cam0: Vec<_> = c.records.iter().filter(|r| r.camera == Some(0)).collect();
    anyhow::ensure!(
        !cam0.is_empty(),
        "{}: no camera-0 images",
        held_out.display()
    );
    Ok((0..n)
        .map(|i| c.resolve(cam0[(i * cam0.len() / n.max(1)).min(cam0.len() - 1)]))
        .collect())
}

/// An early and a late image of the first held-out simulation (camera 0), for interpolation.
pub fn interpolation_ends(held_out: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let q = sample_queries(held_out, 5)?;
    Ok((q[1].clone(), q[4].clone()))
}

/// The mean absolute error of answering every labelled prediction with their median true
/// time: what a model that learnt nothing from the images would score.
fn median_guess_mae(predictions: &[Prediction]) -> f64 {
    let mut t: Vec<f64> = predictions.iter().filter_map(|p| p.true_t_myr).collect();
    if t.is_empty() {
        return f64::NAN;
    }
    t.sort_by(f64::total_cmp);
    let median = t[t.len() / 2];
    t.iter().map(|x| (x - median).abs()).sum::<f64>() / t.len() as f64
}

fn read_predictions(path: &Path) -> anyhow::Result<Vec<Prediction>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a predictions file", path.display()))
}

/// Simulated images of one camera through the merger, every seventh class.
fn write_samples(catalog: &Path, path: &Path) -> anyhow::Result<()> {
    let c = Catalog::read(catalog)?;
    let first = c.records.first().and_then(|r| r.simulation.clone());
    let chosen: Vec<_> = c
        .records
        .iter()
        .filter(|r| r.simulation == first && r.camera == Some(0))
        .filter(|r| r.label.is_some_and(|l| l % 7 == 0))
        .collect();
    anyhow::ensure!(
        !chosen.is_empty(),
        "{}: no images to show",
        catalog.display()
    );
    let images = chosen
        .iter()
        .map(|r| deepgalaxy_core::image::load(&c.resolve(r)).map_err(anyhow::Error::from))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let names: Vec<String> = chosen.iter().map(|r| r.id_str.clone()).collect();
    let tiles: Vec<Tile<'_>> = images
        .iter()
        .zip(&chosen)
        .zip(&names)
        .map(|((image, r), name)| Tile {
            image,
            name,
            label: r.label,
            t_myr: r.t_myr,
            t_spread: None,
            distance: None,
            ssim: None,
        })
        .collect();
    let title = format!(
        "Simulation {} seen by camera 0, every 7th class",
        first.unwrap_or_default()
    );
    write_galleries(path, &[(title, tiles[0], tiles[1..].to_vec())])?;
    Ok(())
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

fn score_row(name: &str, s: &Score) -> String {
    format!(
        "| {name} | {} | {} | {} | {} | {:.1} |\n",
        s.count,
        pct(s.top1),
        pct(s.within1),
        pct(s.within2),
        s.mae_myr
    )
}

/// Writes `report.md` (and `samples.png`) in the demo folder; returns its path.
pub fn write(m: &Measured, stages: &[Stage]) -> anyhow::Result<PathBuf> {
    let out = &m.out;
    let mut md = String::new();
    let _ = writeln!(md, "# DeepGalaxy demo report\n");
    let _ = writeln!(
        md,
        "Produced by `deepgalaxy demo` in {:.0} s on a machine with {} CPU threads. Every number \
         below was read back from the files this run wrote; stages whose output already existed \
         were skipped (their times are marked).\n",
        m.total_seconds,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    let catalog = out.join("sim").join("catalog.csv");
    let c = Catalog::read(&catalog)?;
    write_samples(&catalog, &out.join("samples.png"))?;
    let _ = writeln!(md, "## Simulated mergers\n");
    let _ = writeln!(
        md,
        "{} images of {} N-body mergers (71 snapshots 5 Myr apart x 14 cameras each).\n\n![samples](samples.png)\n",
        c.records.len(),
        c.simulations().len()
    );

    let _ = writeln!(md, "## Training (split: by simulation)\n");
    let _ = writeln!(
        md,
        "Held-out simulations (never seen in training): {}. The demo holds out mergers inside the grid's range of size and mass ratios, as a real galaxy pair's would be; the classifier's targets are Gaussians two classes wide over neighbouring snapshots (`--label-sigma 2`), since images 5 Myr apart look alike.\n\n![curves](run/curves.png)\n\n![confusion](run/confusion.png)\n",
        m.held_out_simulations.join(", ")
    );

    let fp32 = read_predictions(&out.join("predictions_heldout.json"))?;
    let s32 = score(&fp32).context("the held-out predictions have no labels")?;
    let _ = writeln!(md, "## Accuracy on the held-out simulations\n");
    let _ = writeln!(
        md,
        "| model | images | top-1 | within 1 class | within 2 classes | MAE (Myr) |"
    );
    let _ = writeln!(md, "| --- | --- | --- | --- | --- | --- |");
    md += &score_row("FP32", &s32);
    let int8_path = out.join("predictions_heldout_int8.json");
    let int8 = if int8_path.exists() {
        Some(read_predictions(&int8_path)?)
    } else {
        None
    };
    if let Some(p) = &int8 {
        if let Some(s) = score(p) {
            md += &score_row("INT8", &s);
        }
    }
    let baseline_mae = median_guess_mae(&fp32);
    let _ = writeln!(
        md,
        "\nChance: top-1 {}, within 1 class {}, within 2 classes {} (71 classes). Answering every image with the median time of these images would give an MAE of {:.0} Myr.\n",
        pct(1.0 / 71.0),
        pct(3.0 / 71.0),
        pct(5.0 / 71.0),
        baseline_mae
    );
    eprintln!(
        "held-out simulations: top-1 {}, within-2 classes {} (chance {}), MAE {:.0} Myr (median guess {:.0} Myr)",
        pct(s32.top1),
        pct(s32.within2),
        pct(5.0 / 71.0),
        s32.mae_myr,
        baseline_mae
    );

    let _ = writeln!(md, "## FP32 and INT8\n");
    let size = |f: &str| std::fs::metadata(out.join("onnx").join(f)).map(|m| m.len());
    match (&int8, size("model.onnx"), size("model.int8.onnx")) {
        (Some(p), Ok(a), Ok(b)) => {
            let agree = fp32
                .iter()
                .zip(p)
                .filter(|(x, y)| x.class().is_some() && x.class() == y.class())
                .count() as f64
                / fp32.len().max(1) as f64;
            let time = |t: Option<f64>| t.map_or("(skipped)".into(), |t| format!("{t:.2} s"));
            let _ = writeln!(
                md,
                "| | FP32 | INT8 |\n| --- | --- | --- |\n| file size | {:.0} kB | {:.0} kB |\n| predict {} held-out images (tract, end to end) | {} | {} |\n\nTop-1 agreement of INT8 with FP32: {}. The export's own agreement report: [onnx/agreement.md](onnx/agreement.md).\n",
                a as f64 / 1e3,
                b as f64 / 1e3,
                fp32.len(),
                time(m.fp32_seconds),
                time(m.int8_seconds),
                pct(agree)
            );
        }
        _ => {
            let _ = writeln!(md, "No INT8 model was exported in this run.\n");
        }
    }

    let search: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.join("search.json")).context("reading search.json")?,
    )?;
    let ssims: Vec<f64> = search
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|q| {
            q["result"]["neighbours"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|n| n["ssim"].as_f64())
        .collect();
    let _ = writeln!(md, "## Similarity search\n");
    let _ = writeln!(
        md,
        "Each query beside its nearest simulated mergers in the VAE latent space, with the SSIM \
         between query and neighbour (mean over {} neighbours: {:.3}).\n\n![gallery](gallery.png)\n",
        ssims.len(),
        ssims.iter().sum::<f64>() / ssims.len().max(1) as f64
    );

    let clusters = std::fs::read_to_string(out.join("clusters").join("clusters.csv"))
        .context("reading clusters.csv")?;
    let n_clusters = clusters
        .lines()
        .skip(1)
        .filter_map(|l| l.rsplit(',').next())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let _ = writeln!(md, "## Unsupervised: spectral clustering of the latents\n");
    let _ = writeln!(
        md,
        "{n_clusters} clusters (number from the eigengap).\n\n![clusters](clusters/latent_map_pca_clusters.png)\n\n![classes](clusters/latent_map_pca_classes.png)\n\n![t-SNE](clusters/latent_map_tsne_classes.png)\n"
    );
    let _ = writeln!(
        md,
        "## Latent interpolation\n\n![interpolation](interpolation.png)\n"
    );

    if m.hst {
        let hst = read_predictions(&out.join("predictions_hst.json"))?;
        let _ = writeln!(md, "## Hubble images\n");
        let _ = writeln!(
            md,
            "Real interacting galaxies; the model was trained on simulations only, so these are \
             extrapolations.\n\n| image | most probable class | p | expected time (Myr) |\n| --- | --- | --- | --- |"
        );
        for p in &hst {
            let name = Path::new(&p.file)
                .file_name()
                .map_or(p.file.clone(), |f| f.to_string_lossy().into_owned());
            match (&p.error, p.top.first(), p.t_myr, p.t_myr_spread) {
                (None, Some((c, q)), Some(t), Some(s)) => {
                    let _ = writeln!(md, "| {name} | {c} | {q:.2} | {t:.0} ± {s:.0} |");
                }
                _ => {
                    let _ = writeln!(
                        md,
                        "| {name} | failed: {} | | |",
                        p.error.clone().unwrap_or_default()
                    );
                }
            }
        }
        md.push('\n');
    }

    let _ = writeln!(md, "## Stages and the commands that ran them\n");
    let _ = writeln!(md, "| stage | seconds | command |\n| --- | --- | --- |");
    for s in stages {
        let t = s.seconds.map_or("skipped".into(), |t| format!("{t:.1}"));
        let _ = writeln!(md, "| {} | {t} | `{}` |", s.name, s.command);
    }
    let path = out.join("report.md");
    deepgalaxy_core::io::write_atomic(&path, |f| std::io::Write::write_all(f, md.as_bytes()))?;
    Ok(path)
}
