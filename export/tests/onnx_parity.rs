//! The exported ONNX files against the candle model they come from: structure and model card
//! always; tract's outputs within 1e-4 of candle's for every backbone and file; with the
//! `peers` feature, onnx's full checker and ONNX Runtime's outputs within 1e-4
//! of candle's for every backbone and every file (model, autoencoder, decoder); the same with
//! the stem rewritten as the integer stem of INT8 does (`deepgalaxy_export::stem`).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use deepgalaxy_core::card::{ModelCard, CARD_VERSION};
use deepgalaxy_core::preprocess::Preprocess;
use deepgalaxy_export::onnx::{export, to_bytes, write, Target};
use deepgalaxy_export::stem;
use deepgalaxy_models::exec::{forward, forward_from, Mode};
use deepgalaxy_models::{Backbone, Graph, ModelSpec, Weights};
use onnx_protobuf::{Message, ModelProto};
use rand::SeedableRng;

const SIZE: usize = 32;

/// The shared sine fill (`reference::sine_fill`) scaled by `scale` and moved by `offset`.
fn sine_fill(shape: &[usize], phase: f64, scale: f64, offset: f64) -> Tensor {
    deepgalaxy_models::reference::sine_fill(shape, phase)
        .and_then(|t| t.affine(scale, offset))
        .unwrap()
}

fn model(backbone: Backbone) -> (ModelSpec, Graph, Weights) {
    let mut spec = ModelSpec::new(
        backbone,
        Preprocess {
            size: SIZE as u32,
            ..Preprocess::default()
        },
        5,
    );
    spec.latent_dim = 8;
    let graph = Graph::build(&spec).unwrap();
    let weights = Weights::init(&graph, 11, &Device::Cpu).unwrap();
    // a few training-mode passes give the batch norms non-trivial running statistics
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    for k in 0..3 {
        let x = sine_fill(&[4, 1, SIZE, SIZE], k as f64, 0.5, 0.5);
        let o = graph.outputs;
        forward(
            &graph,
            &weights,
            &x,
            &[o.logits, o.reconstruction, o.vae_reconstruction],
            Mode::Train(&mut rng),
        )
        .unwrap();
    }
    (spec, graph, weights)
}

fn card(spec: &ModelSpec) -> ModelCard {
    ModelCard {
        card_version: CARD_VERSION,
        tool_version: "test".into(),
        model_spec: serde_json::to_value(spec).unwrap(),
        preprocess: spec.preprocess.clone(),
        num_classes: spec.num_classes,
        class_t_myr: (0..spec.num_classes)
            .map(|k| 5.0 * k as f64 + 2.5)
            .collect(),
        target: Default::default(),
        time_sigma_scale: None,
        simulations: None,
        latent_dim: Some(spec.latent_dim),
        training_digest: None,
        split: Some("by-simulation".into()),
        metrics: Default::default(),
        precision: "fp32".into(),
        quantization: None,
        test: None,
    }
}

fn backbones() -> Vec<Backbone> {
    vec![
        Backbone::Simple {
            widths: vec![8, 16],
            depth: 2,
        },
        Backbone::Resnet { width: 0.125 },
        Backbone::Efficientnet {
            width: 0.25,
            depth: 0.25,
        },
    ]
}

#[test]
fn exported_graphs_carry_every_parameter_and_the_card() {
    for b in backbones() {
        let (spec, graph, weights) = model(b);
        let c = card(&spec);
        let m = export(&graph, &weights, &c, Target::Model).unwrap();
        let back = ModelProto::parse_from_bytes(&to_bytes(&m).unwrap()).unwrap();
        assert_eq!((back.ir_version, back.opset_import[0].version), (8, 17));
        let g = back.graph.as_ref().unwrap();
        let outputs: Vec<&str> = g.output.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(outputs, ["probabilities", "logits", "latent"]);
        // every encoder, classifier and VAE-mean parameter is an initialiser with its name
        let names: Vec<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
        for p in graph.params() {
            let wanted = p.name.starts_with("encoder.")
                || p.name.starts_with("classifier.")
                || p.name.starts_with("vae.mu");
            assert_eq!(names.contains(&p.name.as_str()), wanted, "{}", p.name);
        }
        let node_names: std::collections::HashSet<&str> =
            g.node.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(node_names.len(), g.node.len(), "node names are unique");
        let props = back
            .metadata_props
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str()));
        assert_eq!(
            ModelCard::from_metadata(props, Path::new("m.onnx")).unwrap(),
            c
        );
    }
}

#[test]
fn missing_or_misshaped_tensors_are_named() {
    let (_, graph, weights) = model(Backbone::Simple {
        widths: vec![8, 16],
        depth: 1,
    });
    let mut tensors: HashMap<String, Tensor> = weights.tensors().into_iter().collect();
    tensors.remove("encoder.stage1.conv0.bn.running_var");
    let e = Weights::from_tensors(
        &graph,
        tensors.clone(),
        Path::new("ck/model.safetensors"),
        &Device::Cpu,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("ck/model.safetensors")
            && e.contains("`encoder.stage1.conv0.bn.running_var` is missing"),
        "{e}"
    );
    tensors.insert(
        "encoder.stage1.conv0.bn.running_var".into(),
        Tensor::zeros(3, candle_core::DType::F32, &Device::Cpu).unwrap(),
    );
    let e = Weights::from_tensors(
        &graph,
        tensors,
        Path::new("ck/model.safetensors"),
        &Device::Cpu,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("has shape [3], the model needs [16]"), "{e}");
}

/// One exported file to check: its target, input name and value, and candle's outputs.
#[derive(Clone)]
struct Case {
    target: Target,
    input: &'static str,
    value: Tensor,
    expected: Vec<(&'static str, Tensor)>,
}

/// Every file of one backbone's model with candle's outputs for a deterministic input.
fn cases(spec: &ModelSpec, graph: &Graph, weights: &Weights) -> Vec<Case> {
    let o = graph.outputs;
    let x = sine_fill(&[2, 1, SIZE, SIZE], 5.0, 0.5, 0.5);
    let z = sine_fill(&[2, spec.latent_dim], 7.0, 1.0, 0.0);
    let ours = forward(
        graph,
        weights,
        &x,
        &[o.probabilities, o.logits, o.mu, o.reconstruction],
        Mode::Eval,
    )
    .unwrap();
    let decoded = forward_from(
        graph,
        weights,
        &[(o.z, z.clone())],
        &[o.vae_reconstruction],
        &mut Mode::Eval,
    )
    .unwrap();
    vec![
        Case {
            target: Target::Model,
            input: "image",
            value: x.clone(),
            expected: vec![
                ("probabilities", ours[0].clone()),
                ("logits", ours[1].clone()),
                ("latent", ours[2].clone()),
            ],
        },
        Case {
            target: Target::Autoencoder,
            input: "image",
            value: x,
            expected: vec![("reconstruction", ours[3].clone())],
        },
        Case {
            target: Target::Decoder,
            input: "latent",
            value: z,
            expected: vec![("reconstruction", decoded[0].clone())],
        },
    ]
}

/// Largest |candle - other| over one output, after checking the sizes agree.
fn worst_difference(ours: &Tensor, theirs: &[f64], what: &str) -> f64 {
    let ours = ours.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(theirs.len(), ours.len(), "{what}");
    ours.iter()
        .zip(theirs)
        .map(|(a, b)| (*a as f64 - b).abs())
        .fold(0.0, f64::max)
}

/// Every backbone's every file written to `dir`, with its case: (backbone name, case, path).
/// Each file that reads the image comes twice: as exported, and with its stem rewritten
/// (`stem::fold_normalization`, then `stem::space_to_depth_stem`), which must change nothing.
fn exported_cases(dir: &Path) -> Vec<(String, Case, std::path::PathBuf)> {
    let mut all = Vec::new();
    for b in backbones() {
        let name = b.name();
        let (spec, graph, weights) = model(b);
        let c = card(&spec);
        for case in cases(&spec, &graph, &weights) {
            let path = dir.join(format!("{name}_{:?}.onnx", case.target));
            let mut m = export(&graph, &weights, &c, case.target).unwrap();
            write(&path, &m).unwrap();
            all.push((name.to_string(), case.clone(), path));
            if case.input == "image" {
                let folded = stem::fold_normalization(&mut m).unwrap().unwrap();
                assert_eq!(folded.pad_value, 0.5, "{name}");
                let s2d = stem::space_to_depth_stem(&mut m).unwrap();
                // the strided stems are rewritten, the simple encoder's stride-1 one is not
                assert_eq!(s2d.len(), usize::from(name != "simple"), "{name}: {s2d:?}");
                let path = dir.join(format!("{name}_{:?}_stem.onnx", case.target));
                write(&path, &m).unwrap();
                all.push((format!("{name} (stem rewritten)"), case, path));
            }
        }
    }
    all
}

#[test]
fn tract_agrees_with_candle_for_every_backbone_and_file() {
    use deepgalaxy_runtime::inference::backend::{Backend, TractBackend};
    let tmp = tempfile::tempdir().unwrap();
    for (name, case, path) in exported_cases(tmp.path()) {
        let target = case.target;
        // the file's input is the one the case feeds
        let inputs = deepgalaxy_runtime::inference::summary::inspect_onnx(&path)
            .unwrap()
            .inputs;
        assert_eq!(
            inputs.first().map(String::as_str),
            Some(case.input),
            "{name} {target:?}"
        );
        let tract = TractBackend::open(&path, 1).unwrap();
        let input = deepgalaxy_runtime::inference::backend::Tensor::new(
            case.value.dims().to_vec(),
            case.value.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        )
        .unwrap();
        let outputs = tract.run(&input).unwrap();
        assert_eq!(outputs.len(), case.expected.len(), "{name} {target:?}");
        for ((output, ours), theirs) in case.expected.iter().zip(&outputs) {
            let theirs: Vec<f64> = theirs.data.iter().map(|&v| f64::from(v)).collect();
            let worst = worst_difference(ours, &theirs, output);
            assert!(
                worst <= 1e-4,
                "{name} {target:?} {output}: max |candle - tract| = {worst}"
            );
        }
    }
}

#[cfg(feature = "peers")]
#[test]
fn onnx_runtime_agrees_with_candle_for_every_backbone_and_file() {
    let python = std::env::var_os("DEEPGALAXY_PYTHON")
        .expect("the `peers` feature needs DEEPGALAXY_PYTHON (a Python with onnx and onnxruntime)");
    let script =
        deepgalaxy_core::source_dir(env!("CARGO_MANIFEST_DIR")).join("../tests/peers/onnx_peer.py");
    let tmp = tempfile::tempdir().unwrap();
    for (name, case, path) in exported_cases(tmp.path()) {
        let target = case.target;
        let raw = tmp.path().join("input.f32");
        let data: Vec<u8> = case
            .value
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        std::fs::write(&raw, data).unwrap();
        let mut cmd = std::process::Command::new(&python);
        cmd.arg(&script).arg(&path).arg(case.input).arg(&raw);
        for d in case.value.dims() {
            cmd.arg(d.to_string());
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{name} {target:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let theirs: HashMap<String, Vec<f64>> = serde_json::from_slice(&out.stdout).unwrap();
        for (output, ours) in &case.expected {
            let worst = worst_difference(ours, &theirs[*output], output);
            assert!(
                worst <= 1e-4,
                "{name} {target:?} {output}: max |candle - onnxruntime| = {worst}"
            );
        }
    }
}

#[test]
fn initialisers_read_back_as_the_weights_they_came_from() {
    let (spec, graph, weights) = model(Backbone::Resnet { width: 0.125 });
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("model.onnx");
    write(
        &path,
        &export(&graph, &weights, &card(&spec), Target::Model).unwrap(),
    )
    .unwrap();
    let back = deepgalaxy_export::import::initializers(&path).unwrap();
    let ours = weights.tensors();
    let mut compared = 0;
    for (name, t) in &back {
        if let Some(w) = ours.get(name) {
            assert_eq!(t.dims(), w.dims(), "{name}");
            let a = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let b = w.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(a == b, "{name} differs");
            compared += 1;
        }
    }
    assert!(compared > 50, "{compared} tensors compared");
    let bad = tmp.path().join("bad.onnx");
    std::fs::write(&bad, b"not a model").unwrap();
    let e = deepgalaxy_export::import::initializers(&bad)
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad.onnx"), "{e}");
}
