//! Timescale predictions: per image the top-k classes with probabilities, the expected time
//! in Myr with its spread under the predicted distribution, optionally the latent, and — when
//! the input came from a catalog — the truth for scoring. Written as CSV or JSON.
//!
//! The time is what the model's card says its classes stand for: relative to the first
//! pericentre (`t_peri_myr`, `t_peri_sigma_myr`, `true_t_peri_myr`) or since the simulation
//! started (`t_myr`, `t_myr_spread`, `true_t_myr`, models of the paper's snapshot label).

use std::io::Write;
use std::path::Path;

use crate::Result;
use deepgalaxy_core::time::{expected_time, nearest_class, TimeAnswer, TimeScore, TimeTarget};
use deepgalaxy_core::{Error, ModelCard};
use serde::{Deserialize, Serialize};

use crate::inference::infer::SampleResult;
use crate::inference::inputs::InputItem;

/// The prediction for one image (or why there is none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Input identifier.
    pub id: String,
    /// The image file.
    pub file: String,
    /// Why the image has no prediction (unreadable, wrong shape...), naming the file.
    pub error: Option<String>,
    /// The k most probable classes with their probabilities, most probable first.
    pub top: Vec<(u32, f32)>,
    /// Snapshot models: expected time since the start in Myr (sum over classes of probability
    /// x class time).
    pub t_myr: Option<f64>,
    /// Snapshot models: standard deviation of that time under the predicted distribution
    /// (times the card's `time_sigma_scale`, when it has one).
    pub t_myr_spread: Option<f64>,
    /// True class under the model's target, when the input came from a catalog.
    pub label: Option<u32>,
    /// Snapshot models: true time since the start, from the catalog.
    pub true_t_myr: Option<f64>,
    /// t-peri models: expected time relative to the first pericentre, Myr.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t_peri_myr: Option<f64>,
    /// t-peri models: its standard deviation under the predicted distribution (times the
    /// card's `time_sigma_scale`, when it has one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t_peri_sigma_myr: Option<f64>,
    /// t-peri models: true time relative to the first pericentre, from the catalog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub true_t_peri_myr: Option<f64>,
    /// The VAE mean, when asked for.
    pub latent: Option<Vec<f32>>,
}

impl Prediction {
    /// Builds the prediction of `item` from its model outputs (`probabilities` and `latent`
    /// rows; `None` when the model has no such output).
    pub fn new(
        item: &InputItem,
        probabilities: std::result::Result<(&[f32], Option<&[f32]>), String>,
        card: &ModelCard,
        k: usize,
        with_latent: bool,
    ) -> Prediction {
        let t_peri = card.target == TimeTarget::TPeri;
        let truth = card.target.pick(item.t_myr, item.t_peri_myr);
        let mut p = Prediction {
            id: item.id.clone(),
            file: item.path.display().to_string(),
            error: None,
            top: vec![],
            t_myr: None,
            t_myr_spread: None,
            label: if t_peri {
                truth.and_then(|t| nearest_class(&card.class_t_myr, t))
            } else {
                item.label
            },
            true_t_myr: if t_peri { None } else { truth },
            t_peri_myr: None,
            t_peri_sigma_myr: None,
            true_t_peri_myr: if t_peri { truth } else { None },
            latent: None,
        };
        let (probs, latent) = match probabilities {
            Ok(v) => v,
            Err(e) => {
                p.error = Some(e);
                return p;
            }
        };
        let mut order: Vec<usize> = (0..probs.len()).collect();
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
        p.top = order
            .iter()
            .take(k.max(1))
            .map(|&c| (c as u32, probs[c]))
            .collect();
        if let Some((mean, spread)) = expected_time(probs, &card.class_t_myr) {
            let sigma = spread * card.time_sigma_scale.unwrap_or(1.0);
            if t_peri {
                (p.t_peri_myr, p.t_peri_sigma_myr) = (Some(mean), Some(sigma));
            } else {
                (p.t_myr, p.t_myr_spread) = (Some(mean), Some(sigma));
            }
        }
        if with_latent {
            p.latent = latent.map(<[f32]>::to_vec);
        }
        p
    }

    /// The most probable class.
    pub fn class(&self) -> Option<u32> {
        self.top.first().map(|&(c, _)| c)
    }

    /// Whether the time is relative to the first pericentre (a t-peri model's prediction).
    pub fn is_t_peri(&self) -> bool {
        self.t_peri_myr.is_some() || self.true_t_peri_myr.is_some()
    }

    /// The expected time and its spread, whichever the model's target.
    pub fn time(&self) -> Option<(f64, f64)> {
        match self.t_peri_myr {
            Some(t) => Some((t, self.t_peri_sigma_myr.unwrap_or(0.0))),
            None => self.t_myr.map(|t| (t, self.t_myr_spread.unwrap_or(0.0))),
        }
    }

    /// The true time under the model's target, when the input came from a catalog.
    pub fn true_time(&self) -> Option<f64> {
        self.true_t_peri_myr.or(self.true_t_myr)
    }

    /// Forgets the time (for `embed`, which reports latents only).
    pub fn clear_time(&mut self) {
        (self.t_myr, self.t_myr_spread) = (None, None);
        (self.t_peri_myr, self.t_peri_sigma_myr) = (None, None);
    }

    /// The expected time scored against the truth, when both are known.
    pub fn answer(&self) -> Option<TimeAnswer> {
        let ((predicted, sigma), truth) = self.time().zip(self.true_time())?;
        Some(TimeAnswer {
            predicted,
            sigma,
            truth,
        })
    }
}

/// Predictions from the raw per-sample results, in input order. `outputs` are the model's
/// output names (to find `probabilities` and `latent`).
pub fn predictions(
    items: &[InputItem],
    results: &[SampleResult],
    outputs: &[String],
    card: &ModelCard,
    k: usize,
    with_latent: bool,
) -> Result<Vec<Prediction>> {
    let predictor = Predictor::new(outputs, card, k, with_latent)?;
    Ok(items
        .iter()
        .zip(results)
        .map(|(item, r)| predictor.predict(item, r))
        .collect())
}

/// Turns one image's model outputs into its [`Prediction`]: where the probabilities and the
/// latent are among the model's outputs, and what to report.
pub struct Predictor<'a> {
    probabilities: usize,
    latent: Option<usize>,
    card: &'a ModelCard,
    k: usize,
    with_latent: bool,
}

impl<'a> Predictor<'a> {
    /// For a model with `outputs` (in its output order) and `card`; the top `k` classes, and
    /// the latent when `with_latent`. An error when the model has no `probabilities` output.
    pub fn new(
        outputs: &[String],
        card: &'a ModelCard,
        k: usize,
        with_latent: bool,
    ) -> Result<Predictor<'a>> {
        let find = |name: &str| outputs.iter().position(|o| o == name);
        let probabilities = find("probabilities").ok_or_else(|| {
            Error::setting(
                "model",
                format!(
                    "the model has no `probabilities` output (it has {outputs:?}): is it model.onnx?"
                ),
            )
        })?;
        Ok(Predictor {
            probabilities,
            latent: find("latent"),
            card,
            k,
            with_latent,
        })
    }

    /// The columns of the rows this predictor makes: its top classes (no more than the card's
    /// classes) and, when asked for and the model has one, the card's latent size.
    pub fn columns(&self) -> Columns {
        let classes = match self.card.num_classes {
            0 => self.k.max(1),
            n => self.k.max(1).min(n),
        };
        let latent = match (self.with_latent, self.latent) {
            (true, Some(_)) => self.card.latent_dim.unwrap_or(0),
            _ => 0,
        };
        Columns {
            classes,
            latent,
            t_peri: self.card.target == TimeTarget::TPeri,
        }
    }

    /// The prediction of `item` from its result.
    pub fn predict(&self, item: &InputItem, result: &SampleResult) -> Prediction {
        let rows = result
            .as_ref()
            .map(|s| {
                (
                    &s.rows[self.probabilities][..],
                    self.latent.map(|l| &s.rows[l][..]),
                )
            })
            .map_err(Clone::clone);
        Prediction::new(item, rows, self.card, self.k, self.with_latent)
    }
}

/// Accuracy of predictions that have a truth: the errors of the expected time (the same
/// [`TimeScore`] training's validation and `evaluate` report) and, beside them, the share of
/// most probable classes within 0, 1 and 2 classes of the true one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// Labelled predictions scored.
    pub count: usize,
    /// Fraction with the right class.
    pub top1: f64,
    /// Fraction within one class.
    pub within1: f64,
    /// Fraction within two classes.
    pub within2: f64,
    /// The expected time's errors, when the truth has a time.
    pub time: Option<TimeScore>,
}

/// Scores the labelled predictions; `None` when there are none.
pub fn score(predictions: &[Prediction]) -> Option<Score> {
    let mut tally = Tally::default();
    predictions.iter().for_each(|p| tally.add(p));
    tally.score()
}

/// What [`Score`] needs, added to one prediction at a time, so a run that writes its
/// predictions as they come can score them without keeping them: class counts, and each
/// labelled image's time answer (three numbers; the median needs them all).
#[derive(Debug, Clone, Default)]
pub struct Tally {
    count: usize,
    /// Labelled predictions whose class is within 0, 1 and 2 classes of the label.
    within: [usize; 3],
    answers: Vec<TimeAnswer>,
}

impl Tally {
    /// Adds `p` when it has a class and a true label.
    pub fn add(&mut self, p: &Prediction) {
        let (Some(c), Some(l)) = (p.class(), p.label) else {
            return;
        };
        self.count += 1;
        for (k, n) in self.within.iter_mut().enumerate() {
            *n += usize::from(c.abs_diff(l) as usize <= k);
        }
        self.answers.extend(p.answer());
    }

    /// The score of what was added; `None` when nothing labelled was.
    pub fn score(&self) -> Option<Score> {
        if self.count == 0 {
            return None;
        }
        let n = self.count as f64;
        Some(Score {
            count: self.count,
            top1: self.within[0] as f64 / n,
            within1: self.within[1] as f64 / n,
            within2: self.within[2] as f64 / n,
            time: TimeScore::of(&self.answers),
        })
    }
}

/// Output format of [`write_predictions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One row per image; top-k as `class_i`/`prob_i` columns, the latent as `latent_i`.
    Csv,
    /// An array of [`Prediction`] objects.
    Json,
}

impl Format {
    /// JSON for a `.json` path, CSV otherwise.
    pub fn for_path(path: &Path) -> Format {
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        {
            Format::Json
        } else {
            Format::Csv
        }
    }
}

/// The columns of a predictions table: how many classes and latent values each row has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Columns {
    /// Top classes per row (`class_i`, `prob_i`).
    pub classes: usize,
    /// Latent values per row (`latent_i`).
    pub latent: usize,
    /// Whether the times are relative to the first pericentre (named `t_peri_*`).
    pub t_peri: bool,
}

impl Columns {
    /// The widest rows among `predictions`.
    pub fn of(predictions: &[Prediction]) -> Columns {
        Columns {
            classes: predictions.iter().map(|p| p.top.len()).max().unwrap_or(0),
            latent: predictions
                .iter()
                .filter_map(|p| p.latent.as_ref().map(Vec::len))
                .max()
                .unwrap_or(0),
            t_peri: predictions.iter().any(Prediction::is_t_peri),
        }
    }
}

/// Serialises predictions in `format`.
pub fn to_bytes(predictions: &[Prediction], format: Format) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    write_stream(&mut bytes, format, Columns::of(predictions), |push| {
        predictions.iter().try_for_each(push)
    })
    .map_err(|e| Error::setting("predictions", e.to_string()))?;
    Ok(bytes)
}

/// Writes predictions to `out` in `format` as `produce` hands them to its sink one at a time,
/// so a run over any number of images never holds them all. CSV rows have `columns`; a
/// prediction with more top classes or latent values than that is an error.
pub fn write_stream<W: Write>(
    out: W,
    format: Format,
    columns: Columns,
    produce: impl FnOnce(&mut dyn FnMut(&Prediction) -> std::io::Result<()>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    match format {
        Format::Json => {
            use serde::ser::{SerializeSeq, Serializer};
            let mut json = serde_json::Serializer::pretty(out);
            let mut seq = json.serialize_seq(None)?;
            produce(&mut |p| Ok(seq.serialize_element(p)?))?;
            seq.end()?;
            Ok(())
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(csv_header(columns))?;
            produce(&mut |p| Ok(w.write_record(csv_row(p, columns)?)?))?;
            w.flush()
        }
    }
}

fn csv_header(columns: Columns) -> Vec<String> {
    let (time, spread, truth) = if columns.t_peri {
        ("t_peri_myr", "t_peri_sigma_myr", "true_t_peri_myr")
    } else {
        ("t_myr", "t_myr_spread", "true_t_myr")
    };
    let mut header: Vec<String> = ["id", "file", "error", time, spread, "label", truth]
        .map(String::from)
        .to_vec();
    for i in 1..=columns.classes {
        header.push(format!("class_{i}"));
        header.push(format!("prob_{i}"));
    }
    header.extend((0..columns.latent).map(|i| format!("latent_{i}")));
    header
}

fn csv_row(p: &Prediction, columns: Columns) -> std::io::Result<Vec<String>> {
    let latent = p.latent.as_deref().unwrap_or_default();
    if p.top.len() > columns.classes || latent.len() > columns.latent {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{}: {} classes and {} latent values do not fit a table of {} and {}",
                p.file,
                p.top.len(),
                latent.len(),
                columns.classes,
                columns.latent
            ),
        ));
    }
    // a row with no time at all (a failed image, or `embed`) fits either table
    let has_time = p.time().is_some() || p.true_time().is_some();
    if has_time && p.is_t_peri() != columns.t_peri {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{}: a time of another target than the table's other rows",
                p.file
            ),
        ));
    }
    let opt = |v: Option<String>| v.unwrap_or_default();
    let time = p.time();
    let mut row = vec![
        p.id.clone(),
        p.file.clone(),
        opt(p.error.clone()),
        opt(time.map(|(t, _)| format!("{t:.3}"))),
        opt(time.map(|(_, s)| format!("{s:.3}"))),
        opt(p.label.map(|l| l.to_string())),
        opt(p.true_time().map(|t| t.to_string())),
    ];
    for i in 0..columns.classes {
        match p.top.get(i) {
            Some((c, q)) => {
                row.push(c.to_string());
                row.push(format!("{q:.6}"));
            }
            None => row.extend([String::new(), String::new()]),
        }
    }
    row.extend((0..columns.latent).map(|i| opt(latent.get(i).map(|v| v.to_string()))));
    Ok(row)
}

/// Writes predictions to `path` atomically, in the format its extension names.
pub fn write_predictions(path: &Path, predictions: &[Prediction]) -> Result<()> {
    let bytes = to_bytes(predictions, Format::for_path(path))?;
    deepgalaxy_core::io::write_atomic(path, |f| f.write_all(&bytes)).map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;
    use deepgalaxy_core::card::CARD_VERSION;
    use deepgalaxy_core::Preprocess;

    fn card(times: Vec<f64>) -> ModelCard {
        ModelCard {
            card_version: CARD_VERSION,
            tool_version: "test".into(),
            model_spec: serde_json::json!({}),
            preprocess: Preprocess::default(),
            num_classes: times.len(),
            class_t_myr: times,
            target: Default::default(),
            time_sigma_scale: None,
            simulations: None,
            latent_dim: Some(2),
            training_digest: None,
            split: None,
            metrics: Default::default(),
            precision: "fp32".into(),
            quantization: None,
            test: None,
        }
    }

    fn item(label: Option<u32>, t: Option<f64>) -> InputItem {
        InputItem {
            id: "x".into(),
            path: "x.png".into(),
            label,
            t_myr: t,
            t_peri_myr: t.map(|t| t - 100.0),
            simulation: None,
        }
    }

    #[test]
    fn expected_time_and_spread_follow_the_distribution() {
        let card = card(vec![0.0, 10.0, 20.0, 30.0]);
        let probs = [0.1, 0.2, 0.6, 0.1];
        let p = Prediction::new(
            &item(Some(1), Some(10.0)),
            Ok((&probs, Some(&[1.0, 2.0]))),
            &card,
            2,
            true,
        );
        assert_eq!(p.top, vec![(2, 0.6), (1, 0.2)]);
        // mean 0*0.1 + 10*0.2 + 20*0.6 + 30*0.1 = 17; var = 0.1*289 + 0.2*49 + 0.6*9 + 0.1*169 = 61
        assert!((p.t_myr.unwrap() - 17.0).abs() < 1e-5);
        assert!((p.t_myr_spread.unwrap() - 61f64.sqrt()).abs() < 1e-5);
        assert_eq!(p.latent, Some(vec![1.0, 2.0]));
        let s = score(std::slice::from_ref(&p)).unwrap();
        assert_eq!((s.count, s.top1, s.within1, s.within2), (1, 0.0, 1.0, 1.0));
        assert!((s.time.unwrap().mean_abs_myr - 7.0).abs() < 1e-5);
    }

    #[test]
    fn t_peri_models_name_their_time_and_label_the_truth_by_its_bin() {
        let mut card = card(vec![-10.0, -5.0, 0.0, 5.0]);
        card.target = TimeTarget::TPeri;
        // snapshot label 40 and t_myr 105 are ignored: the truth is t_peri = 5 (bin 3)
        let p = Prediction::new(
            &item(Some(40), Some(105.0)),
            Ok((&[0.0, 0.0, 0.5, 0.5], None)),
            &card,
            1,
            false,
        );
        assert_eq!((p.t_myr, p.true_t_myr), (None, None));
        assert_eq!((p.t_peri_myr, p.t_peri_sigma_myr), (Some(2.5), Some(2.5)));
        assert_eq!((p.true_t_peri_myr, p.label), (Some(5.0), Some(3)));
        let s = score(std::slice::from_ref(&p)).unwrap();
        assert_eq!((s.top1, s.within1), (0.0, 1.0));
        let t = s.time.unwrap();
        assert_eq!(
            (t.median_abs_myr, t.coverage_1sigma, t.coverage_2sigma),
            (2.5, 1.0, 1.0)
        );
        let text =
            String::from_utf8(to_bytes(std::slice::from_ref(&p), Format::Csv).unwrap()).unwrap();
        assert_eq!(
            text.lines().collect::<Vec<_>>(),
            [
                "id,file,error,t_peri_myr,t_peri_sigma_myr,label,true_t_peri_myr,class_1,prob_1",
                "x,x.png,,2.500,2.500,3,5,2,0.500000"
            ]
        );
        let json: serde_json::Value =
            serde_json::from_slice(&to_bytes(&[p], Format::Json).unwrap()).unwrap();
        assert_eq!(json[0]["t_peri_myr"], 2.5);
        assert_eq!(json[0]["true_t_peri_myr"], 5.0);
        // an image that failed has no time, and still fits the t-peri table
        let failed = Prediction::new(&item(None, None), Err("bad".into()), &card, 1, false);
        let mut out = Vec::new();
        write_stream(
            &mut out,
            Format::Csv,
            Predictor::new(&["probabilities".into()], &card, 1, false)
                .unwrap()
                .columns(),
            |push| push(&failed),
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("id,file,error,t_peri_myr,"), "{text}");
        assert!(text.lines().nth(1).unwrap().contains(",bad,"), "{text}");
    }

    #[test]
    fn failures_are_kept_and_written() {
        let card = card(vec![0.0, 5.0]);
        let bad = Prediction::new(
            &item(None, None),
            Err("x.png: truncated".into()),
            &card,
            3,
            false,
        );
        let good = Prediction::new(
            &item(None, None),
            Ok((&[0.25, 0.75], None)),
            &card,
            3,
            false,
        );
        assert_eq!(bad.error.as_deref(), Some("x.png: truncated"));
        assert!(score(&[bad.clone(), good.clone()]).is_none());
        let text = String::from_utf8(to_bytes(&[bad, good], Format::Csv).unwrap()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "id,file,error,t_myr,t_myr_spread,label,true_t_myr,class_1,prob_1,class_2,prob_2"
        );
        assert_eq!(lines[1], "x,x.png,x.png: truncated,,,,,,,,");
        assert_eq!(lines[2], "x,x.png,,3.750,2.165,,,1,0.750000,0,0.250000");
    }
}
