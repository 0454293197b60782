//! `deepgalaxy evaluate`: how well a model reads the time off images of mergers it has never
//! seen, per image and per merger.
//!
//! Which images count is decided here, from the model card: images of simulations the model
//! was trained or validated on are left out (and counted), so a score is never flattered by a
//! merger the model has seen or was tuned on. The expected time is scored as everywhere else
//! ([`deepgalaxy_core::time::TimeScore`]): median and mean absolute error, shares within ±10
//! and ±25 Myr, and how often the truth lies within the predicted 1 and 2 sigma (68% and 95%
//! for an honest spread); the most probable class's accuracy beside. The baseline is the
//! score of answering every image with the median true time of the scored images, which is
//! the best any constant answer can do on them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use deepgalaxy_core::time::{median, TimeAnswer, TimeScore};
use deepgalaxy_core::{Catalog, ModelCard};
use serde::{Deserialize, Serialize};

use crate::inference::inputs::{from_catalog, InputItem};
use crate::inference::predict::{score, Prediction, Score};
use crate::library::recommend::{preprocessed, Library};

/// The images to score, and those left out because the model saw their merger.
#[derive(Debug, Clone)]
pub struct Selection {
    /// Images to score, in catalog order.
    pub items: Vec<InputItem>,
    /// The simulation of each of `items`.
    pub simulations: Vec<Option<String>>,
    /// Images left out.
    pub excluded_images: usize,
    /// Simulations left out, sorted.
    pub excluded_simulations: Vec<String>,
    /// What the card says about the model's own simulations, when that limits the score.
    pub caveat: Option<String>,
}

/// Chooses the images of `catalog` that `card`'s model never trained or validated on (all of
/// them when `include_seen`, with a caveat saying so). A card that records no simulations
/// (models exported before they were recorded) cannot be checked: everything is scored, with
/// a caveat. An error when nothing is left to score.
pub fn select(
    catalog: &Catalog,
    card: &ModelCard,
    include_seen: bool,
) -> Result<Selection, String> {
    let all = from_catalog(catalog);
    let sims: Vec<Option<String>> = catalog
        .records
        .iter()
        .map(|r| r.simulation.clone())
        .collect();
    let recorded = card.simulations.as_ref().filter(|s| !s.train.is_empty());
    let (keep, caveat): (Vec<bool>, Option<String>) = match (recorded, include_seen) {
        (_, true) => (
            vec![true; all.len()],
            Some("--include-seen: images of mergers the model was trained or validated on are scored too, so these numbers flatter it".into()),
        ),
        (None, false) => (
            vec![true; all.len()],
            Some("the model card records no training simulations: these images may include mergers the model was trained on".into()),
        ),
        (Some(s), false) => {
            if sims.iter().any(Option::is_none) {
                return Err("the catalog has images without a `simulation`: the mergers the model has seen cannot be left out (score them anyway with --include-seen)".into());
            }
            (
                sims.iter()
                    .map(|n| n.as_deref().is_some_and(|n| !s.seen(n)))
                    .collect(),
                None,
            )
        }
    };
    let mut excluded: Vec<String> = sims
        .iter()
        .zip(&keep)
        .filter(|(_, k)| !**k)
        .filter_map(|(s, _)| s.clone())
        .collect();
    excluded.sort();
    excluded.dedup();
    let excluded_images = keep.iter().filter(|k| !**k).count();
    let (items, simulations): (Vec<InputItem>, Vec<Option<String>>) = all
        .into_iter()
        .zip(sims)
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(pair, _)| pair)
        .unzip();
    if items.is_empty() {
        return Err(format!(
            "no image to score: all {excluded_images} are of simulations the model was trained or validated on ({})",
            excluded.join(", ")
        ));
    }
    Ok(Selection {
        items,
        simulations,
        excluded_images,
        excluded_simulations: excluded,
        caveat,
    })
}

/// The errors of one merger's images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergerScore {
    /// Simulation name.
    pub simulation: String,
    /// Mean signed error (predicted - true), Myr: a merger read as consistently early or late.
    pub bias_myr: f64,
    /// Its time score.
    pub score: TimeScore,
}

/// The errors of the images whose true time falls in one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimeWindow {
    /// Start of the window, Myr (inclusive).
    pub from_myr: f64,
    /// End, Myr (exclusive).
    pub to_myr: f64,
    /// Its time score.
    pub score: TimeScore,
}

/// Width of the true-time windows of [`Evaluation::by_time`], Myr.
pub const WINDOW_MYR: f64 = 50.0;

/// Everything `evaluate` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The model file.
    pub model: String,
    /// What its time is measured from (`t-peri` or `snapshot`).
    pub target: String,
    /// The catalog scored.
    pub data: String,
    /// Images that could not be read or run.
    pub failed: usize,
    /// Images left out because the model saw their merger.
    pub excluded_images: usize,
    /// Those mergers.
    pub excluded_simulations: Vec<String>,
    /// Why the score may not be on unseen mergers only.
    pub caveat: Option<String>,
    /// Scored mergers.
    pub simulations: Vec<String>,
    /// Class accuracy and the expected time's errors over every scored image.
    pub overall: Score,
    /// The constant answer: the median true time of the scored images.
    pub baseline_answer_myr: f64,
    /// The score of always giving that answer.
    pub baseline: Option<TimeScore>,
    /// Per merger, in name order.
    pub per_merger: Vec<MergerScore>,
    /// Per window of true time, [`WINDOW_MYR`] wide.
    pub by_time: Vec<TimeWindow>,
    /// The similarity search's estimate, leave-one-simulation-out (with `--index`).
    #[serde(default)]
    pub knn: Option<KnnScore>,
}

/// The similarity search scored like the model: each image's k nearest library entries,
/// never of its own simulation, give a time (their mean, their spread as sigma) and an SSIM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnnScore {
    /// The library searched.
    pub library: String,
    /// Its entries.
    pub library_images: usize,
    /// Neighbours per query.
    pub k: usize,
    /// Queries searched.
    pub queries: usize,
    /// Library entries of a query's own simulation that were nearer than its last neighbour,
    /// skipped (over all queries).
    pub own_simulation_skipped: usize,
    /// The estimate's errors (sigma: the neighbours' spread).
    pub score: Option<TimeScore>,
    /// Mean SSIM between a query and its neighbours.
    pub mean_ssim: f64,
    /// Neighbours whose SSIM was measured.
    pub neighbours: usize,
}

/// Searches `library` for the `k` nearest entries of every scored image that has a latent
/// (from [`crate::inference::predict::Predictor`] with latents), skipping the image's own simulation.
pub fn knn(
    library: &Library<'_>,
    library_name: &str,
    predictions: &[Prediction],
    selection: &Selection,
    k: usize,
) -> crate::Result<KnnScore> {
    let mut answers = Vec::new();
    let (mut skipped, mut queries, mut ssim_sum, mut ssims) = (0, 0, 0.0, 0usize);
    for ((p, item), sim) in predictions
        .iter()
        .zip(&selection.items)
        .zip(&selection.simulations)
    {
        let Some(latent) = &p.latent else { continue };
        let query = preprocessed(library.index(), &item.path)?;
        let rec = library.recommend(&query, latent, k, sim.as_deref())?;
        queries += 1;
        skipped += rec.own_simulation_skipped;
        for n in &rec.neighbours {
            if let Some(s) = n.ssim {
                ssim_sum += s;
                ssims += 1;
            }
        }
        if let (Some(e), Some(truth)) = (rec.estimate, p.true_time()) {
            answers.push(TimeAnswer {
                predicted: e.mean_myr,
                sigma: e.std_myr,
                truth,
            });
        }
    }
    Ok(KnnScore {
        library: library_name.into(),
        library_images: library.index().len(),
        k,
        queries,
        own_simulation_skipped: skipped,
        score: TimeScore::of(&answers),
        mean_ssim: ssim_sum / ssims.max(1) as f64,
        neighbours: ssims,
    })
}

/// Scores `predictions` (one per selected image, in order) of `selection`.
pub fn evaluate(
    predictions: &[Prediction],
    selection: &Selection,
    model: &str,
    card: &ModelCard,
    data: &str,
) -> Option<Evaluation> {
    let overall = score(predictions)?;
    let answers: Vec<(Option<&String>, TimeAnswer)> = predictions
        .iter()
        .zip(&selection.simulations)
        .filter_map(|(p, s)| Some((s.as_ref(), p.answer()?)))
        .collect();
    let truths: Vec<f64> = answers.iter().map(|(_, a)| a.truth).collect();
    let constant = median(&truths);
    let baseline = TimeScore::of(
        &truths
            .iter()
            .map(|&truth| TimeAnswer {
                predicted: constant,
                sigma: 0.0,
                truth,
            })
            .collect::<Vec<_>>(),
    );
    let mut groups: BTreeMap<String, Vec<TimeAnswer>> = BTreeMap::new();
    for (s, a) in &answers {
        let name = s.cloned().unwrap_or_else(|| "(no simulation)".into());
        groups.entry(name).or_default().push(*a);
    }
    let per_merger = groups
        .iter()
        .filter_map(|(name, a)| {
            Some(MergerScore {
                simulation: name.clone(),
                bias_myr: a.iter().map(|a| a.predicted - a.truth).sum::<f64>() / a.len() as f64,
                score: TimeScore::of(a)?,
            })
        })
        .collect();
    let mut windows: BTreeMap<i64, Vec<TimeAnswer>> = BTreeMap::new();
    for (_, a) in &answers {
        windows
            .entry((a.truth / WINDOW_MYR).floor() as i64)
            .or_default()
            .push(*a);
    }
    let by_time = windows
        .iter()
        .filter_map(|(&w, a)| {
            Some(TimeWindow {
                from_myr: w as f64 * WINDOW_MYR,
                to_myr: (w + 1) as f64 * WINDOW_MYR,
                score: TimeScore::of(a)?,
            })
        })
        .collect();
    Some(Evaluation {
        model: model.into(),
        target: card.target.name().into(),
        data: data.into(),
        failed: predictions.iter().filter(|p| p.error.is_some()).count(),
        excluded_images: selection.excluded_images,
        excluded_simulations: selection.excluded_simulations.clone(),
        caveat: selection.caveat.clone(),
        simulations: groups.keys().cloned().collect(),
        overall,
        baseline_answer_myr: constant,
        baseline,
        per_merger,
        by_time,
        knn: None,
    })
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

/// One table row of a time score: images, median, mean, ±10, ±25, 1 and 2 sigma coverage.
fn score_cells(s: &TimeScore) -> String {
    format!(
        "{} | {:.1} | {:.1} | {} | {} | {} | {}",
        s.count,
        s.median_abs_myr,
        s.mean_abs_myr,
        pct(s.within_10_myr),
        pct(s.within_25_myr),
        pct(s.coverage_1sigma),
        pct(s.coverage_2sigma)
    )
}

/// The header and separator lines of a table whose rows start with the cells `first`, then a
/// time score's [`score_cells`].
fn score_table(md: &mut String, first: &[&str]) {
    const SCORE: [&str; 7] = [
        "images",
        "median abs. error (Myr)",
        "mean abs. error (Myr)",
        "within ±10 Myr",
        "within ±25 Myr",
        "truth within 1 sigma",
        "within 2 sigma",
    ];
    let names: Vec<&str> = first.iter().chain(&SCORE).copied().collect();
    let _ = writeln!(md, "| {} |", names.join(" | "));
    let _ = writeln!(md, "|{}", " --- |".repeat(names.len()));
}

impl Evaluation {
    /// The report as Markdown.
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let time = if self.target == "t-peri" {
            "time relative to the first pericentre"
        } else {
            "time since the start of the simulation (snapshot label)"
        };
        let _ = writeln!(md, "# Evaluation of {}\n", self.model);
        let _ = writeln!(
            md,
            "Target: {time}. Data: {}. {} mergers scored ({}); {} images of {} mergers the model was trained or validated on were left out{}.\n",
            self.data,
            self.simulations.len(),
            self.simulations.join(", "),
            self.excluded_images,
            self.excluded_simulations.len(),
            if self.failed > 0 {
                format!("; {} images could not be read", self.failed)
            } else {
                String::new()
            }
        );
        if let Some(c) = &self.caveat {
            let _ = writeln!(md, "**Caveat:** {c}.\n");
        }
        let _ = writeln!(md, "## Expected time\n");
        score_table(&mut md, &["answer"]);
        if let Some(t) = &self.overall.time {
            let _ = writeln!(md, "| model | {} |", score_cells(t));
        }
        if let Some(b) = &self.baseline {
            let _ = writeln!(
                md,
                "| always {:.0} Myr (the median truth) | {} |",
                self.baseline_answer_myr,
                score_cells(b)
            );
        }
        let o = &self.overall;
        let _ = writeln!(
            md,
            "\nMost probable class: top-1 {}, within 1 class {}, within 2 classes {} ({} images).\n",
            pct(o.top1),
            pct(o.within1),
            pct(o.within2),
            o.count
        );
        let _ = writeln!(md, "## Per merger\n");
        score_table(&mut md, &["merger", "bias (Myr)"]);
        for m in &self.per_merger {
            let _ = writeln!(
                md,
                "| {} | {:+.1} | {} |",
                m.simulation,
                m.bias_myr,
                score_cells(&m.score)
            );
        }
        let _ = writeln!(md, "\n## By true time\n");
        score_table(&mut md, &["true time (Myr)"]);
        for w in &self.by_time {
            let _ = writeln!(
                md,
                "| {:.0} to {:.0} | {} |",
                w.from_myr,
                w.to_myr,
                score_cells(&w.score)
            );
        }
        if let Some(k) = &self.knn {
            let _ = writeln!(md, "\n## Similarity search, leave one simulation out\n");
            let _ = writeln!(
                md,
                "Each image's {} nearest entries in {} ({} images), never of the image's own simulation ({} nearer entries of their own simulation were skipped over {} queries), give a time (their mean, sigma their spread) and an SSIM. Mean SSIM between a query and its neighbours: {:.3} over {} neighbours (the paper reports about 0.9, with each query's own simulation in its library).\n",
                k.k,
                k.library,
                k.library_images,
                k.own_simulation_skipped,
                k.queries,
                k.mean_ssim,
                k.neighbours
            );
            if let Some(t) = &k.score {
                score_table(&mut md, &["answer"]);
                let _ = writeln!(md, "| kNN mean time | {} |", score_cells(t));
            }
        }
        let _ = writeln!(md, "\n![evaluation](evaluate.png)");
        md
    }

    /// The one-line summary printed on stderr.
    pub fn summary(&self) -> String {
        let knn = self.knn.as_ref().map_or(String::new(), |k| {
            format!(
                "; similarity search (own simulation left out): median |error| {:.1} Myr, mean SSIM {:.3}",
                k.score.map_or(f64::NAN, |t| t.median_abs_myr),
                k.mean_ssim
            )
        });
        let model = match (&self.overall.time, &self.baseline) {
            (Some(t), Some(b)) => format!(
                "{} images of {} unseen mergers: median |error| {:.1} Myr (constant answer: {:.1}), mean {:.1} Myr, within 10 Myr {}, within 25 Myr {}, truth within 1 sigma {}",
                t.count,
                self.simulations.len(),
                t.median_abs_myr,
                b.median_abs_myr,
                t.mean_abs_myr,
                pct(t.within_10_myr),
                pct(t.within_25_myr),
                pct(t.coverage_1sigma)
            ),
            _ => format!(
                "{} images of {} unseen mergers: top-1 {} (the catalog gives no times)",
                self.overall.count,
                self.simulations.len(),
                pct(self.overall.top1)
            ),
        };
        model + &knn
    }
}

/// Each merger's (true, predicted) times, for the chart.
pub fn merger_points(
    predictions: &[Prediction],
    selection: &Selection,
) -> Vec<(String, Vec<(f64, f64)>)> {
    let mut groups: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for (p, s) in predictions.iter().zip(&selection.simulations) {
        if let Some(a) = p.answer() {
            groups
                .entry(s.clone().unwrap_or_default())
                .or_default()
                .push((a.truth, a.predicted));
        }
    }
    groups.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use deepgalaxy_core::card::{Simulations, CARD_VERSION};
    use deepgalaxy_core::time::TimeTarget;
    use deepgalaxy_core::{CatalogRecord, Preprocess};

    fn card(simulations: Option<Simulations>) -> ModelCard {
        ModelCard {
            card_version: CARD_VERSION,
            tool_version: "test".into(),
            model_spec: serde_json::json!({}),
            preprocess: Preprocess::default(),
            num_classes: 3,
            class_t_myr: vec![-5.0, 0.0, 5.0],
            target: TimeTarget::TPeri,
            time_sigma_scale: None,
            simulations,
            latent_dim: None,
            training_digest: None,
            split: None,
            metrics: Default::default(),
            precision: "fp32".into(),
            quantization: None,
            test: None,
        }
    }

    fn catalog() -> Catalog {
        let records = (0..6)
            .map(|i| CatalogRecord {
                id_str: format!("i{i}"),
                file_loc: format!("i{i}.png"),
                simulation: Some(format!("s{}", i / 2)),
                t_peri_myr: Some(-5.0 + 5.0 * (i % 3) as f64),
                ..Default::default()
            })
            .collect();
        Catalog::new(records)
    }

    #[test]
    fn seen_mergers_are_left_out_and_counted() {
        let sims = Simulations {
            train: vec!["s0".into()],
            validation: vec!["s1".into()],
            test: vec!["s2".into()],
        };
        let s = select(&catalog(), &card(Some(sims)), false).unwrap();
        assert_eq!(
            s.items.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
            ["i4", "i5"]
        );
        assert_eq!((s.excluded_images, s.excluded_simulations.len()), (4, 2));
        assert!(s.caveat.is_none());
        let all = select(&catalog(), &card(None), false).unwrap();
        assert_eq!(all.items.len(), 6);
        assert!(all
            .caveat
            .unwrap()
            .contains("records no training simulations"));
        let everything = Simulations {
            train: vec!["s0".into(), "s1".into(), "s2".into()],
            ..Default::default()
        };
        let err = select(&catalog(), &card(Some(everything.clone())), false).unwrap_err();
        assert!(err.contains("no image to score: all 6"), "{err}");
        // without a simulation column the seen mergers cannot be told apart
        let mut nameless = catalog();
        nameless.records[2].simulation = None;
        let err = select(&nameless, &card(Some(everything)), false).unwrap_err();
        assert!(
            err.contains("without a `simulation`") && err.contains("--include-seen"),
            "{err}"
        );
    }

    #[test]
    fn scores_per_merger_and_against_the_constant_answer() {
        let c = card(None);
        let s = select(&catalog(), &c, true).unwrap();
        // s0 and s2 answered exactly; s1 two classes late (clamped at the last class)
        let preds: Vec<Prediction> = s
            .items
            .iter()
            .zip(&s.simulations)
            .map(|(item, sim)| {
                let truth = item.t_peri_myr.unwrap();
                let shift = if sim.as_deref() == Some("s1") { 2 } else { 0 };
                let k = ((truth + 5.0) / 5.0) as usize;
                let mut q = [0.0f32; 3];
                q[(k + shift).min(2)] = 1.0;
                Prediction::new(item, Ok((&q, None)), &c, 1, false)
            })
            .collect();
        let e = evaluate(&preds, &s, "m.onnx", &c, "c.csv").unwrap();
        assert_eq!(e.simulations, ["s0", "s1", "s2"]);
        assert_eq!(e.per_merger[0].score.mean_abs_myr, 0.0);
        // s1 holds truths 5 and -5 (i2, i3): answers 5 (clamped) and 5
        assert_eq!(e.per_merger[1].bias_myr, 5.0);
        let t = e.overall.time.unwrap();
        assert_eq!(t.count, 6);
        assert!(e.baseline.is_some());
        assert!(e.to_markdown().contains("| s1 | +5.0 |"));
    }
}
