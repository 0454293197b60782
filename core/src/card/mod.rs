//! The model card: what a trained DeepGalaxy model is, carried inside every exported ONNX file
//! (as `metadata_props`) so that whoever receives the file can run it correctly without us.
//!
//! Export writes it, the runtime reads it to preprocess inputs (through [`crate::preprocess()`])
//! and to turn class indices into times; `deepgalaxy inspect model.onnx` prints it. Each field
//! is its own `deepgalaxy.*` key so other tools (Netron, onnx's Python API) show them readably.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::preprocess::Preprocess;
use crate::time::{TimeScore, TimeTarget};
use crate::{Error, Result};

mod markdown;

/// Version of the card layout; bumped when a field changes meaning or is added (2: `target`
/// and `simulations`; 3: `test`).
pub const CARD_VERSION: u32 = 3;

/// The most input values per image (`size x size x channels`) a model card may ask for:
/// 2^24, e.g. 4096 x 4096 grey or 2048 x 2048 RGB (64 MiB as `f32`). A model file comes from
/// someone else; without this bound a 1.6 KB card asking for 8192 x 8192 RGB made every input
/// image cost gigabytes once preprocessed and batched.
pub const MAX_INPUT_VALUES: u64 = 1 << 24;

/// Prefix of every metadata key the card owns.
pub const KEY_PREFIX: &str = "deepgalaxy.";

/// Everything a client needs to know about a trained model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelCard {
    /// [`CARD_VERSION`] of the writer.
    pub card_version: u32,
    /// Version of the deepgalaxy tool that trained/exported the model.
    pub tool_version: String,
    /// The architecture (`ModelSpec` of `deepgalaxy-models`, kept as JSON so this crate does
    /// not depend on the model crate).
    pub model_spec: serde_json::Value,
    /// How images become model input.
    pub preprocess: Preprocess,
    /// Number of timescale classes.
    pub num_classes: usize,
    /// Time in Myr that each class stands for (class centre), `num_classes` entries, measured
    /// as `target` says.
    pub class_t_myr: Vec<f64>,
    /// What the time is measured from (cards of version 1: the snapshot label).
    #[serde(default)]
    pub target: TimeTarget,
    /// The factor `predict` multiplies the spread of the expected time by, fitted on the
    /// validation mergers so that 68% of their truths fall within one spread (absent: no
    /// validation mergers, the spread is the predicted distribution's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_sigma_scale: Option<f64>,
    /// The simulations the model was trained, validated and tested on, by name, so scores and
    /// calibration can keep to mergers it has never seen (absent: not recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simulations: Option<Simulations>,
    /// Size of the VAE latent, when the model has one.
    pub latent_dim: Option<usize>,
    /// SHA-256 of the training catalog (hex), to tell models trained on different data apart.
    pub training_digest: Option<String>,
    /// The split used for validation (`by-simulation` or `random`).
    pub split: Option<String>,
    /// Validation metrics by name (top1, within1, mae_myr, ...).
    pub metrics: BTreeMap<String, f64>,
    /// Numeric precision of the file (`fp32`, `fp16`, `int8`).
    pub precision: String,
    /// How an `int8` file was quantised (absent for float files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<Quantization>,
    /// This file's scores on mergers it never saw, recorded by `deepgalaxy evaluate --record`
    /// (absent: not evaluated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<TestRecord>,
}

/// How this very file scored on mergers it was neither trained nor validated on, so whoever
/// receives it knows how far to trust its answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestRecord {
    /// The scored mergers, by name.
    pub simulations: Vec<String>,
    /// SHA-256 of the catalog their images came from.
    pub data_digest: String,
    /// The errors of the expected time over every scored image.
    pub score: TimeScore,
    /// The score of the best constant answer (the median true time) on the same images.
    pub baseline: TimeScore,
}

/// Which simulations each part of a training run used.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Simulations {
    /// Trained on.
    pub train: Vec<String>,
    /// Validated on (early stopping, checkpoint and hyperparameter choices).
    pub validation: Vec<String>,
    /// Held out for the final score only: never used for any choice.
    pub test: Vec<String>,
}

impl Simulations {
    /// Whether the model saw `simulation` in training or validation.
    pub fn seen(&self, simulation: &str) -> bool {
        self.train
            .iter()
            .chain(&self.validation)
            .any(|s| s == simulation)
    }
}

/// The settings of a statically quantised (INT8) model, recorded in its card so that its
/// accuracy can be traced to how it was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quantization {
    /// Graph format: `qdq` (QuantizeLinear/DequantizeLinear pairs around float operators) or
    /// `qoperator` (QLinearConv, QLinearMatMul, ...).
    pub format: String,
    /// Weight quantisation, e.g. `int8 symmetric per-channel`.
    pub weights: String,
    /// Activation type: `u8` or `s8` (asymmetric, with a zero point).
    pub activations: String,
    /// Calibration method: `minmax`, `percentile` or `entropy`.
    pub method: String,
    /// The percentile kept by the `percentile` method (e.g. 99.99).
    pub percentile: Option<f64>,
    /// Number of calibration images.
    pub calibration_images: usize,
    /// SHA-256 of the calibration catalog.
    pub calibration_digest: String,
    /// Nodes left in float (Softmax, and layers kept in float because quantising them hurt).
    pub float_nodes: Vec<String>,
}

impl ModelCard {
    /// Checks the card is self-consistent.
    pub fn validate(&self) -> Result<()> {
        if self.card_version > CARD_VERSION {
            return Err(Error::setting(
                "model card",
                format!(
                    "card version {} is newer than this tool understands ({CARD_VERSION}); upgrade deepgalaxy",
                    self.card_version
                ),
            ));
        }
        if let Some(s) = self
            .time_sigma_scale
            .filter(|s| !(s.is_finite() && *s > 0.0))
        {
            return Err(Error::setting(
                "model card",
                format!("time_sigma_scale {s} is not a positive number"),
            ));
        }
        if self.class_t_myr.len() != self.num_classes {
            return Err(Error::setting(
                "model card",
                format!(
                    "{} class times for {} classes",
                    self.class_t_myr.len(),
                    self.num_classes
                ),
            ));
        }
        if let (Some(test), Some(sims)) = (&self.test, &self.simulations) {
            if let Some(seen) = test.simulations.iter().find(|s| sims.seen(s)) {
                return Err(Error::setting(
                    "model card",
                    format!("the test scores include {seen}, a merger the model was trained or validated on"),
                ));
            }
        }
        self.preprocess.validate()?;
        let (size, channels) = (
            u64::from(self.preprocess.size),
            u64::from(self.preprocess.channels),
        );
        if size * size * channels > MAX_INPUT_VALUES {
            return Err(Error::setting(
                "model card",
                format!(
                    "input of {size} x {size} x {channels} values is more than the \
                     {MAX_INPUT_VALUES} per image a model may ask for"
                ),
            ));
        }
        Ok(())
    }

    /// The card as ONNX `metadata_props` key/value pairs (values are JSON).
    pub fn to_metadata(&self) -> Result<Vec<(String, String)>> {
        let value =
            serde_json::to_value(self).map_err(|e| Error::setting("model card", e.to_string()))?;
        let serde_json::Value::Object(map) = value else {
            return Err(Error::setting(
                "model card",
                "did not serialise to an object",
            ));
        };
        Ok(map
            .into_iter()
            .map(|(k, v)| (format!("{KEY_PREFIX}{k}"), v.to_string()))
            .collect())
    }

    /// Rebuilds the card from `metadata_props`; keys without the `deepgalaxy.` prefix are
    /// ignored. `source` names the model file in errors.
    pub fn from_metadata<'a>(
        props: impl IntoIterator<Item = (&'a str, &'a str)>,
        source: &std::path::Path,
    ) -> Result<ModelCard> {
        let mut map = serde_json::Map::new();
        for (k, v) in props {
            if let Some(field) = k.strip_prefix(KEY_PREFIX) {
                let value = serde_json::from_str(v).map_err(|e| {
                    Error::invalid(source, format!("metadata `{k}` is not valid JSON: {e}"))
                })?;
                map.insert(field.to_owned(), value);
            }
        }
        if map.is_empty() {
            return Err(Error::invalid(
                source,
                "no deepgalaxy model card in the metadata (not exported by deepgalaxy?)",
            ));
        }
        let card: ModelCard = serde_json::from_value(serde_json::Value::Object(map))
            .map_err(|e| Error::invalid(source, format!("model card: {e}")))?;
        card.validate()
            .map_err(|e| Error::invalid(source, e.to_string()))?;
        Ok(card)
    }
}

/// SHA-256 of a file's bytes as lowercase hex, for [`ModelCard::training_digest`].
pub fn digest_file(path: &std::path::Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let bytes = crate::io::read_bytes(path)?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn card() -> ModelCard {
        ModelCard {
            card_version: CARD_VERSION,
            tool_version: "0.1.0".into(),
            model_spec: serde_json::json!({"backbone": {"kind": "simple", "widths": [8, 16]}}),
            preprocess: Preprocess::default(),
            num_classes: 3,
            class_t_myr: vec![2.5, 7.5, 12.5],
            target: TimeTarget::Snapshot,
            time_sigma_scale: None,
            simulations: None,
            latent_dim: Some(16),
            training_digest: Some("ab".repeat(32)),
            split: Some("by-simulation".into()),
            metrics: [("top1".to_string(), 0.75)].into_iter().collect(),
            precision: "fp32".into(),
            quantization: None,
            test: None,
        }
    }

    #[test]
    fn a_spread_scale_that_is_not_positive_is_refused() {
        for bad in [0.0, -1.5, f64::NAN, f64::INFINITY] {
            let mut c = card();
            c.time_sigma_scale = Some(bad);
            let e = c.validate().unwrap_err().to_string();
            assert!(
                e.contains("time_sigma_scale") && e.contains("not a positive number"),
                "{e}"
            );
        }
        let mut c = card();
        c.time_sigma_scale = Some(0.7);
        c.validate().unwrap();
    }

    fn score(median: f64) -> TimeScore {
        TimeScore {
            count: 140,
            median_abs_myr: median,
            mean_abs_myr: median * 1.3,
            within_10_myr: 0.5,
            within_25_myr: 0.85,
            coverage_1sigma: 0.7,
            coverage_2sigma: 0.94,
        }
    }

    fn tested_card() -> ModelCard {
        let mut c = card();
        c.target = TimeTarget::TPeri;
        c.simulations = Some(Simulations {
            train: vec!["a".into(), "b".into()],
            validation: vec!["c".into()],
            test: vec!["d".into()],
        });
        c.test = Some(TestRecord {
            simulations: vec!["d".into()],
            data_digest: "ef".repeat(32),
            score: score(10.5),
            baseline: score(89.0),
        });
        c
    }

    #[test]
    fn test_scores_round_trip_and_may_not_include_a_seen_merger() {
        let c = tested_card();
        let props = c.to_metadata().unwrap();
        let back = ModelCard::from_metadata(
            props.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            Path::new("m.onnx"),
        )
        .unwrap();
        assert_eq!(back, c);
        let mut bad = c;
        bad.test.as_mut().unwrap().simulations.push("c".into());
        let e = bad.validate().unwrap_err().to_string();
        assert!(
            e.contains("include c, a merger the model was trained or validated on"),
            "{e}"
        );
    }

    #[test]
    fn markdown_names_the_mergers_and_the_scores() {
        let md = tested_card().to_markdown("The model");
        assert!(md.starts_with("# The model\n"), "{md}");
        assert!(md.contains("first pericentre"), "{md}");
        assert!(md.contains("- Trained on (2): a, b"), "{md}");
        assert!(md.contains("- Held out for testing (1): d"), "{md}");
        assert!(
            md.contains("| median absolute error (Myr) | 10.5 | 89.0 |"),
            "{md}"
        );
        assert!(md.contains("| within ±25 Myr | 85.0% | 85.0% |"), "{md}");
        assert!(
            md.contains("| truth within 1 sigma (68% if honest) | 70.0% | - |"),
            "{md}"
        );
        let untested = card().to_markdown("Untested");
        assert!(untested.contains("Not recorded"), "{untested}");
    }

    #[test]
    fn metadata_round_trip_is_exact() {
        let c = card();
        let props = c.to_metadata().unwrap();
        assert!(props.iter().all(|(k, _)| k.starts_with("deepgalaxy.")));
        let mut with_foreign = props.clone();
        with_foreign.push(("producer_note".into(), "not ours".into()));
        let back = ModelCard::from_metadata(
            with_foreign.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            Path::new("m.onnx"),
        )
        .unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn quantization_settings_round_trip_and_float_cards_do_not_carry_them() {
        let mut c = card();
        assert!(!c
            .to_metadata()
            .unwrap()
            .iter()
            .any(|(k, _)| k == "deepgalaxy.quantization"));
        c.precision = "int8".into();
        c.quantization = Some(Quantization {
            format: "qdq".into(),
            weights: "int8 symmetric per-channel".into(),
            activations: "u8".into(),
            method: "percentile".into(),
            percentile: Some(99.99),
            calibration_images: 64,
            calibration_digest: "cd".repeat(32),
            float_nodes: vec!["probabilities".into()],
        });
        let props = c.to_metadata().unwrap();
        let back = ModelCard::from_metadata(
            props.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            Path::new("m.int8.onnx"),
        )
        .unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn inconsistent_or_missing_cards_are_errors() {
        let mut c = card();
        c.class_t_myr.pop();
        let props = c.to_metadata().unwrap();
        let e = ModelCard::from_metadata(
            props.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            Path::new("m.onnx"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("m.onnx") && e.contains("2 class times for 3 classes"),
            "{e}"
        );
        let e = ModelCard::from_metadata([("other", "1")], Path::new("x.onnx")).unwrap_err();
        assert!(e.to_string().contains("no deepgalaxy model card"));
    }

    #[test]
    fn cards_asking_for_huge_inputs_are_refused() {
        let mut c = card();
        c.preprocess.size = 8192;
        c.preprocess.channels = 3;
        c.preprocess.normalization.mean = vec![0.5; 3];
        c.preprocess.normalization.std = vec![0.25; 3];
        let props = c.to_metadata().unwrap();
        let e = ModelCard::from_metadata(
            props.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            Path::new("big.onnx"),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "big.onnx: invalid model card: input of 8192 x 8192 x 3 values is more than the \
             16777216 per image a model may ask for"
        );
        c.preprocess.size = 2048;
        assert!(c.validate().is_ok());
    }

    #[test]
    fn digest_is_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(
            digest_file(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
