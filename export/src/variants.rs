//! The precision variants of an export and their file names.
//!
//! | file | precision |
//! | --- | --- |
//! | `model.onnx`, `autoencoder.onnx`, `decoder.onnx` | float32 (always written: the reference) |
//! | `model.fp16.onnx`, `autoencoder.fp16.onnx`, `decoder.fp16.onnx` | float16 weights and compute, float32 input/output |
//! | `model.int8.onnx` | INT8 static quantisation, QDQ format |
//! | `model.int8.qop.onnx` | INT8 static quantisation, QOperator format (QLinearConv, QLinearMatMul) |
//!
//! INT8 is made for `model.onnx` only (the classifier and the latent used for search); the
//! decoders produce images, where 8-bit activations would be visible and speed matters less.
//! Each file's model card records its precision and, for INT8, the quantisation settings.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use crate::Result;
use candle_core::{Device, Tensor};
use deepgalaxy_core::card::{digest_file, ModelCard, Quantization, Simulations};
use deepgalaxy_core::preprocess::Preprocess;
use deepgalaxy_core::{Catalog, Error};
use deepgalaxy_models::{Graph, Op, Weights};
use onnx_protobuf::ModelProto;

use crate::calibrate::{calibrate, Method};
use crate::onnx::{normalization_nodes, set_card, Target};
use crate::quantize::ActivationType;
use crate::{fp16, qdq, qoperator, stem};

/// Numeric precision of an exported file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Precision {
    /// float32.
    Fp32,
    /// float16 inside, float32 at the interface.
    Fp16,
    /// INT8 static quantisation.
    Int8,
}

impl Precision {
    /// A comma-separated list from the command line (`fp32,fp16,int8`).
    pub fn parse_list(s: &str) -> Result<Vec<Precision>> {
        let mut out = Vec::new();
        for p in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let v = match p {
                "fp32" => Precision::Fp32,
                "fp16" => Precision::Fp16,
                "int8" => Precision::Int8,
                other => {
                    return Err(Error::setting(
                        "precision",
                        format!("`{other}` is not fp32, fp16 or int8"),
                    )
                    .into())
                }
            };
            if !out.contains(&v) {
                out.push(v);
            }
        }
        if out.is_empty() {
            return Err(Error::setting("precision", "no precision given").into());
        }
        Ok(out)
    }

    /// `fp32`, `fp16` or `int8`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
            Precision::Int8 => "int8",
        }
    }
}

/// Layout of an INT8 graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Int8Format {
    /// QuantizeLinear/DequantizeLinear around float operators.
    Qdq,
    /// Integer operators (QLinearConv, QLinearMatMul).
    QOperator,
}

impl Int8Format {
    /// `qdq`, `qoperator` or `both`.
    pub fn parse(s: &str) -> Result<Vec<Int8Format>> {
        match s {
            "qdq" => Ok(vec![Int8Format::Qdq]),
            "qoperator" => Ok(vec![Int8Format::QOperator]),
            "both" => Ok(vec![Int8Format::Qdq, Int8Format::QOperator]),
            other => Err(Error::setting(
                "int8 format",
                format!("`{other}` is not qdq, qoperator or both"),
            )
            .into()),
        }
    }

    /// `qdq` or `qoperator`.
    pub fn name(self) -> &'static str {
        match self {
            Int8Format::Qdq => "qdq",
            Int8Format::QOperator => "qoperator",
        }
    }
}

/// The file name of a variant (see the module docs).
pub fn file_name(target: Target, precision: Precision, format: Int8Format) -> String {
    let stem = match target {
        Target::Model => "model",
        Target::Autoencoder => "autoencoder",
        Target::Decoder => "decoder",
    };
    match (precision, format) {
        (Precision::Fp32, _) => format!("{stem}.onnx"),
        (Precision::Fp16, _) => format!("{stem}.fp16.onnx"),
        (Precision::Int8, Int8Format::Qdq) => format!("{stem}.int8.onnx"),
        (Precision::Int8, Int8Format::QOperator) => format!("{stem}.int8.qop.onnx"),
    }
}

/// How to make the INT8 variant.
#[derive(Debug, Clone, PartialEq)]
pub struct Int8Options {
    /// Catalog of calibration images (labels not needed).
    pub calibration: PathBuf,
    /// Number of calibration images, spread evenly over the catalog.
    pub size: usize,
    /// How observed values become ranges.
    pub method: Method,
    /// Activation integer type.
    pub activations: ActivationType,
    /// Which layouts to write.
    pub formats: Vec<Int8Format>,
    /// Conv, Gemm or residual Add nodes to keep in float, besides the defaults of
    /// [`default_float_nodes`].
    pub float_nodes: Vec<String>,
    /// Whether the first convolution runs in integers: the normalisation folded into it and,
    /// when strided, rewritten as space-to-depth ([`crate::stem`]); otherwise it stays in float
    /// (see [`default_float_nodes`]).
    pub integer_stem: bool,
}

/// What to export.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportOptions {
    /// Variants besides the float32 files, which are always written.
    pub precisions: Vec<Precision>,
    /// Required when `precisions` has [`Precision::Int8`].
    pub int8: Option<Int8Options>,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            precisions: vec![Precision::Fp32],
            int8: None,
        }
    }
}

/// The FP16 variant of an FP32 export, with its card saying so. The input normalisation stays
/// in float32 (16-bit pixels keep their precision through it), and so do the Gemm heads
/// (classifier, VAE mean and expansion: a few thousand weights): tract 0.23 cannot translate a
/// float16 Gemm ("Output mismatch after rewiring expansion ... expected F16 got F32",
/// measured), and the default backend must run every file. Everything else is float16.
pub fn fp16_variant(fp32: &ModelProto, graph: &Graph, card: &ModelCard) -> Result<ModelProto> {
    let keep: HashSet<String> = normalization_nodes(graph).into_iter().collect();
    let mut m = fp16::to_fp16(fp32, &|n| keep.contains(&n.name) || n.op_type == "Gemm")?;
    let mut card = card.clone();
    card.precision = Precision::Fp16.name().into();
    set_card(&mut m, &card)?;
    Ok(m)
}

/// Weighted layers kept in float by default, whatever the calibration: the convolutions that
/// read the normalised image. Their input is the 8- or 16-bit image, whose values an 8-bit
/// grid forced to hold 0 cannot represent (normalised pixels fall between its points), and
/// they hold a few hundred weights. Keeping them in float raised agreement with FP32 and
/// keeping the classifier in float too added almost nothing (the measurement is on the results
/// page, `benches/README.md`, "Reduced precision on the default model").
pub fn default_float_nodes(graph: &Graph) -> Vec<String> {
    graph
        .nodes
        .iter()
        .filter(|n| {
            matches!(n.op, Op::Conv { .. })
                && n.inputs
                    .iter()
                    .any(|&i| matches!(graph.nodes[i].op, Op::Normalize { .. }))
        })
        .map(|n| n.name.clone())
        .collect()
}

/// Evenly spread indices of `n` of `len` items.
pub fn spread(len: usize, n: usize) -> Vec<usize> {
    let n = n.min(len);
    (0..n).map(|k| k * len / n).collect()
}

/// The calibration images of `opts` as model-input batches, preprocessed exactly as training
/// prepares its images.
///
/// When `simulations` names the model's training simulations, images of any other simulation
/// in the catalog (the validation and test mergers, or mergers never used) are left out: the
/// INT8 ranges are a choice made on data, and a choice made on test mergers would leak into
/// their score. Images without a simulation (real observations) are kept.
pub fn calibration_batches(
    opts: &Int8Options,
    p: &Preprocess,
    simulations: Option<&Simulations>,
) -> Result<Vec<Tensor>> {
    if opts.size == 0 {
        return Err(Error::setting("calibration size", "must be at least 1").into());
    }
    let catalog = Catalog::read(&opts.calibration)?;
    let allowed: Vec<usize> = (0..catalog.records.len())
        .filter(|&i| {
            let r = &catalog.records[i];
            match (simulations.filter(|s| !s.train.is_empty()), &r.simulation) {
                (Some(s), Some(name)) => s.train.contains(name),
                _ => true,
            }
        })
        .collect();
    if allowed.is_empty() {
        return Err(Error::invalid(
            &opts.calibration,
            "no calibration image: none is of a simulation the model was trained on (images of its validation and test mergers are left out)",
        ).into());
    }
    let indices: Vec<usize> = spread(allowed.len(), opts.size)
        .into_iter()
        .map(|k| allowed[k])
        .collect();
    let pixels = deepgalaxy_core::pixels::load_images(&catalog, &indices, p, &|_, _| {})?;
    let (c, s) = (p.channels as usize, p.size as usize);
    pixels
        .chunks(16)
        .map(|chunk| {
            let mut data = Vec::with_capacity(chunk.len() * c * s * s);
            for px in chunk {
                px.extend_f32(&mut data);
            }
            Tensor::from_vec(data, (chunk.len(), c, s, s), &Device::Cpu)
                .map_err(|e| deepgalaxy_models::Error::from(e).into())
        })
        .collect()
}

/// The calibrated range of every activation `plan` quantises. The tensors the stem rewrite made
/// (the padded, space-to-depth image) are no node of the candle graph: theirs is the image's
/// range widened to [0, 1], the preprocessed pixel range, so 8-bit pixels fall on the grid
/// exactly, and to the border value.
fn activation_ranges(
    graph: &Graph,
    weights: &Weights,
    batches: &[Tensor],
    plan: &qdq::Plan,
    stem: Option<&stem::Folded>,
    method: Method,
) -> Result<BTreeMap<String, (f32, f32)>> {
    let image = graph.nodes[graph.outputs.image].name.clone();
    let (mut names, derived): (Vec<String>, Vec<String>) = qdq::calibration_tensors(plan)
        .into_iter()
        .partition(|t| graph.nodes.iter().any(|n| &n.name == t));
    let pad = match (derived.is_empty(), stem) {
        (true, _) => 0.0,
        (false, Some(f)) => f.pad_value,
        (false, None) => {
            return Err(Error::setting(
                "quantisation",
                format!("`{}` is not a node of the model graph", derived[0]),
            )
            .into())
        }
    };
    if !derived.is_empty() && !names.contains(&image) {
        names.push(image.clone());
    }
    let mut ranges = calibrate(graph, weights, batches, &names, method)?;
    if let Some(&(lo, hi)) = ranges.get(&image) {
        for t in derived {
            ranges.insert(t, (lo.min(0.0).min(pad), hi.max(1.0).max(pad)));
        }
    }
    Ok(ranges)
}

/// The INT8 variants of `model.onnx` (one per requested format), calibrated on `batches` by
/// running the candle model, each with its card.
pub fn int8_variants(
    fp32: &ModelProto,
    graph: &Graph,
    weights: &Weights,
    card: &ModelCard,
    opts: &Int8Options,
    batches: &[Tensor],
) -> Result<Vec<(Int8Format, ModelProto)>> {
    let mut folded = fp32.clone();
    let stem = match opts.integer_stem {
        true => stem::fold_normalization(&mut folded)?,
        false => None,
    };
    let mut float_nodes: HashSet<String> = opts.float_nodes.iter().cloned().collect();
    if stem.is_some() {
        stem::space_to_depth_stem(&mut folded)?;
    } else {
        float_nodes.extend(default_float_nodes(graph));
    }
    qdq::fold_batch_norms(&mut folded)?;
    let plan = qdq::plan(&mut folded, &float_nodes)?;
    let ranges = activation_ranges(graph, weights, batches, &plan, stem.as_ref(), opts.method)?;
    let images: usize = batches.iter().map(|b| b.dims()[0]).sum();
    let g = folded
        .graph
        .as_ref()
        .map(|g| g.node.clone())
        .unwrap_or_default();
    let mut kept: Vec<String> = g
        .iter()
        .filter(|n| {
            n.op_type == "Softmax"
                || (matches!(n.op_type.as_str(), "Conv" | "Gemm")
                    && !plan.quantized.contains(&n.name))
        })
        .map(|n| n.name.clone())
        .collect();
    kept.sort();
    let mut out = Vec::new();
    for &format in &opts.formats {
        let mut m = match format {
            Int8Format::Qdq => qdq::quantize_qdq(&folded, &plan, &ranges, opts.activations)?,
            Int8Format::QOperator => {
                qoperator::quantize_qoperator(&folded, &plan, &ranges, opts.activations)?
            }
        };
        let mut c = card.clone();
        c.precision = Precision::Int8.name().into();
        c.quantization = Some(Quantization {
            format: format.name().into(),
            weights: "int8 symmetric per output channel; int32 biases".into(),
            activations: opts.activations.name().into(),
            method: opts.method.name().into(),
            percentile: match opts.method {
                Method::Percentile(p) => Some(p),
                _ => None,
            },
            calibration_images: images,
            calibration_digest: digest_file(&opts.calibration)?,
            float_nodes: kept.clone(),
        });
        set_card(&mut m, &c)?;
        out.push((format, m));
    }
    Ok(out)
}
