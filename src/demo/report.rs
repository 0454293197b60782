//! The demo's `report.md`: every number in it is read back from the files this run's stages
//! wrote (predictions, search results, clusters, training metrics), beside the pictures.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use deepgalaxy_core::Catalog;
use deepgalaxy_runtime::analysis::evaluate::Evaluation;
use deepgalaxy_runtime::drawing::gallery::{write_galleries, Tile};
use deepgalaxy_runtime::inference::predict::{score, Prediction, Score};

use super::Stage;

/// What the demo measured outside the stages' own files.
pub struct Measured {
    /// The demo folder.
    pub out: PathBuf,
    /// The test simulations.
    pub held_out_simulations: Vec<String>,
    /// The validation simulations.
    pub validation_simulations: Vec<String>,
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

/// `x` as a percentage; a dash for a figure that does not apply (NaN).
fn pct(x: f64) -> String {
    if x.is_nan() {
        "-".into()
    } else {
        format!("{:.1}%", 100.0 * x)
    }
}

/// A table row: the expected time's errors, then the most probable class's accuracy.
fn score_row(name: &str, s: &Score) -> String {
    let time = s.time.map_or("| | | | |".into(), |t| {
        format!(
            "{:.1} | {:.1} | {} | {} | {}",
            t.median_abs_myr,
            t.mean_abs_myr,
            pct(t.within_10_myr),
            pct(t.within_25_myr),
            pct(t.coverage_1sigma)
        )
    });
    format!(
        "| {name} | {} | {time} | {} | {} |\n",
        s.count,
        pct(s.top1),
        pct(s.within2)
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
        "Test simulations (named before training, never trained on, never used for a choice): {}. The demo holds out mergers inside the grid's range of size and mass ratios, as a real galaxy pair's would be. The classes are 5 Myr bins of time since first pericentre, and the classifier's targets are Gaussians two bins wide (`--label-sigma 2`), since images 5 Myr apart look alike. The run's length is fixed; its validation merger ({}) serves only to calibrate the spread of the predicted time (`time_sigma_scale` in the model card: the factor that puts 68% of the validation images' truths within one spread).\n\n![curves](run/curves.png)\n",
        m.held_out_simulations.join(", "),
        m.validation_simulations.join(", ")
    );

    let fp32 = read_predictions(&out.join("predictions_heldout.json"))?;
    let evaluation: Evaluation = serde_json::from_slice(
        &std::fs::read(out.join("evaluation").join("evaluation.json"))
            .context("reading evaluation/evaluation.json")?,
    )
    .context("evaluation/evaluation.json is not an evaluation")?;
    let s32 = evaluation.overall;
    let _ = writeln!(md, "## Accuracy on the held-out simulations\n");
    let _ = writeln!(
        md,
        "Scored by `deepgalaxy evaluate` on the test mergers ({}), which no training choice saw: the time read off each image is the expected time since first pericentre under the predicted distribution, its spread the distribution's standard deviation. Full report: [evaluation/evaluation.md](evaluation/evaluation.md).\n",
        evaluation.simulations.join(", ")
    );
    let _ = writeln!(
        md,
        "| answer | images | median abs. error (Myr) | mean abs. error (Myr) | within ±10 Myr | within ±25 Myr | truth within 1 sigma | top-1 class | within 2 classes |"
    );
    let _ = writeln!(
        md,
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    md += &score_row("model, FP32", &s32);
    let int8_path = out.join("predictions_heldout_int8.json");
    let int8 = if int8_path.exists() {
        Some(read_predictions(&int8_path)?)
    } else {
        None
    };
    if let Some(p) = &int8 {
        if let Some(s) = score(p) {
            md += &score_row("model, INT8", &s);
        }
    }
    let baseline = evaluation.baseline.map(|b| Score {
        count: b.count,
        top1: f64::NAN,
        within1: f64::NAN,
        within2: f64::NAN,
        time: Some(b),
    });
    if let Some(k) = &evaluation.knn {
        md += &score_row(
            &format!("similarity search: mean of {} nearest training images", k.k),
            &Score {
                count: k.queries,
                top1: f64::NAN,
                within1: f64::NAN,
                within2: f64::NAN,
                time: k.score,
            },
        );
    }
    if let Some(b) = &baseline {
        md += &score_row(
            &format!(
                "always {:.0} Myr (the median truth)",
                evaluation.baseline_answer_myr
            ),
            b,
        );
    }
    let _ = writeln!(
        md,
        "\nChance for the classes: top-1 {}, within 2 classes {} (71 classes).{}\n\n![evaluation](evaluation/evaluate.png)\n",
        pct(1.0 / 71.0),
        pct(5.0 / 71.0),
        evaluation.knn.as_ref().map_or(String::new(), |k| format!(
            " The similarity search's library holds the training mergers only; the mean SSIM between a test image and its {} neighbours is {:.3} (the paper's 0.9 was measured with each query's own simulation in the library).",
            k.k, k.mean_ssim
        ))
    );
    if let Some(t) = s32.time {
        eprintln!(
            "test mergers: median |error| {:.1} Myr (constant answer {:.1}), mean {:.1} Myr, within 10 Myr {}, within 25 Myr {}, truth within 1 sigma {}; within-2 classes {} (chance {})",
            t.median_abs_myr,
            evaluation.baseline.map_or(f64::NAN, |b| b.median_abs_myr),
            t.mean_abs_myr,
            pct(t.within_10_myr),
            pct(t.within_25_myr),
            pct(t.coverage_1sigma),
            pct(s32.within2),
            pct(5.0 / 71.0)
        );
    }

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
             extrapolations. Negative times are before the first pericentre.\n\n| image | most probable class | p | {} (Myr) |\n| --- | --- | --- | --- |",
            if evaluation.target == "t-peri" {
                "time since first pericentre"
            } else {
                "time since the start"
            }
        );
        for p in &hst {
            let name = Path::new(&p.file)
                .file_name()
                .map_or(p.file.clone(), |f| f.to_string_lossy().into_owned());
            match (&p.error, p.top.first(), p.time()) {
                (None, Some((c, q)), Some((t, s))) => {
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
