//! From a trained model to the files other observatories receive: `model.onnx`,
//! `autoencoder.onnx` and `decoder.onnx` and their reduced-precision variants, each with the
//! model card, and the test scores recorded in an exported card. (Reading a file's card and
//! interface for `deepgalaxy inspect` is the runtime's `inference::summary`.)

use std::path::{Path, PathBuf};

use crate::Result;
use deepgalaxy_core::card::{ModelCard, TestRecord};
use deepgalaxy_core::Error;
use deepgalaxy_models::{Graph, Weights};

use crate::onnx::{export, read, set_card, write, Target};
use crate::variants::{
    calibration_batches, file_name, fp16_variant, int8_variants, ExportOptions, Int8Format,
    Precision,
};
use onnx_protobuf::ModelProto;

/// A file an export wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// Where.
    pub path: PathBuf,
    /// Which graph.
    pub target: Target,
    /// Its precision.
    pub precision: Precision,
    /// Its INT8 layout, for INT8 files.
    pub format: Option<Int8Format>,
}

/// Exports a trained model (its graph, weights and card) to `out`: the float32 `model.onnx`,
/// `autoencoder.onnx` and `decoder.onnx` always, and the variants `opts` asks for (file names
/// in [`crate::variants`]). Every file is built before the first is written, so a failure
/// (say, an unreadable calibration image) leaves `out` as it was; each write is atomic.
pub fn export_model(
    graph: &Graph,
    weights: &Weights,
    card: &ModelCard,
    out: &Path,
    opts: &ExportOptions,
) -> Result<Vec<Written>> {
    card.validate()?;
    let wants = |p: Precision| opts.precisions.contains(&p);
    let int8 = match (wants(Precision::Int8), &opts.int8) {
        (true, None) => {
            return Err(Error::setting(
                "int8 export",
                "INT8 needs calibration images (--calibration CATALOG)",
            )
            .into())
        }
        (true, Some(o)) => Some(o),
        (false, _) => None,
    };
    let mut files: Vec<(Written, ModelProto)> = Vec::new();
    let mut add =
        |target: Target, precision: Precision, format: Option<Int8Format>, model: ModelProto| {
            let path = out.join(file_name(
                target,
                precision,
                format.unwrap_or(Int8Format::Qdq),
            ));
            files.push((
                Written {
                    path,
                    target,
                    precision,
                    format,
                },
                model,
            ));
        };
    let mut fp32_model = None;
    for target in [Target::Model, Target::Autoencoder, Target::Decoder] {
        let fp32 = export(graph, weights, card, target)?;
        if wants(Precision::Fp16) {
            add(
                target,
                Precision::Fp16,
                None,
                fp16_variant(&fp32, graph, card)?,
            );
        }
        if target == Target::Model {
            fp32_model = Some(fp32.clone());
        }
        add(target, Precision::Fp32, None, fp32);
    }
    if let (Some(o), Some(fp32)) = (int8, fp32_model) {
        let batches = calibration_batches(o, &card.preprocess, card.simulations.as_ref())?;
        for (format, m) in int8_variants(&fp32, graph, weights, card, o, &batches)? {
            add(Target::Model, Precision::Int8, Some(format), m);
        }
    }
    files.sort_by_key(|(w, _)| (w.precision != Precision::Fp32, w.path.clone()));
    for (w, m) in &files {
        write(&w.path, m)?;
    }
    Ok(files.into_iter().map(|(w, _)| w).collect())
}

/// Records `test` (scores on mergers the model never saw) in the card of the exported file at
/// `path`, keeping everything else of the file, so the scores travel with it. The card is
/// validated first: the scores may not name a merger it was trained or validated on.
pub fn record_test(path: &Path, test: TestRecord) -> Result<ModelCard> {
    let mut model = read(path)?;
    let mut card = ModelCard::from_metadata(
        model
            .metadata_props
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str())),
        path,
    )?;
    card.test = Some(test);
    set_card(&mut model, &card).map_err(|e| Error::invalid(path, e.to_string()))?;
    write(path, &model)?;
    Ok(card)
}
