//! `deepgalaxy bench precision` on a tiny exported model: the results are self-consistent
//! (FP32 against itself: speed-up 1, agreement 100%, latent cosine 1; GFLOP/s equal to the
//! multiply-add count times the throughput) and the FLOP count is the hand count of the
//! graph's convolutions and dense layers plus under 1% of element-wise work.
// the commands under test are the full build's (feature `full`, the default)
#![cfg(feature = "full")]

mod common;

use std::ffi::OsStr;

use common::{deepgalaxy, exported, tiny_catalog, SIZE};
use deepgalaxy_models::graph::Op;

#[test]
fn bench_precision_is_self_consistent_and_counts_flops_by_hand() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_catalog(tmp.path(), 12, 3);
    let m = exported(&tmp.path().join("onnx"), 8, 7);
    let out = tmp.path().join("bench");
    let a = OsStr::new;
    let (ok, stdout, err) = deepgalaxy(&[
        a("bench"),
        a("precision"),
        a("--models"),
        tmp.path().join("onnx").as_os_str(),
        a("--data"),
        data.as_os_str(),
        a("--repeats"),
        a("1"),
        a("--batches"),
        a("4"),
        a("--threads"),
        a("1"),
        a("--out"),
        out.as_os_str(),
    ]);
    assert!(ok, "{err}");
    assert!(stdout.contains("# Precision benchmark"), "{stdout}");
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    let q = &r["quality"][0];
    assert_eq!(q["top1_agreement"].as_f64(), Some(1.0));
    assert!((q["latent_cosine"].as_f64().unwrap() - 1.0).abs() < 1e-6);
    assert_eq!(q["score"]["count"].as_u64(), Some(12));
    let fma = r["fma_per_image"].as_f64().unwrap();
    let tract = r["throughput"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["runner"] == "deepgalaxy (tract)")
        .unwrap();
    assert_eq!(tract["speedup_vs_fp32"].as_f64(), Some(1.0));
    let ips = tract["result"]["Ok"]["images_per_sec"].as_f64().unwrap();
    let gflops = tract["gflops"].as_f64().unwrap();
    assert!((gflops - 2.0 * fma * ips / 1e9).abs() < 1e-9 * gflops.max(1.0));
    assert!(out.join("throughput.png").is_file() && out.join("speedup_vs_accuracy.png").is_file());

    // multiply-adds by hand: every convolution and dense layer the model.onnx graph needs
    let g = &m.graph;
    let o = g.outputs;
    let need = g.needed(&[o.probabilities, o.logits, o.mu]);
    let mut hand = 0u64;
    for (i, node) in g.nodes.iter().enumerate() {
        if !need[i] {
            continue;
        }
        let out: u64 = node.shape.iter().map(|&d| d as u64).product();
        match &node.op {
            Op::Conv {
                c_in,
                kernel,
                groups,
                ..
            } => hand += out * (c_in / groups) as u64 * (*kernel as u64).pow(2),
            Op::Linear { inputs, .. } => hand += out * *inputs as u64,
            _ => {}
        }
    }
    // tract also counts the normalisation and the pooling reductions as multiply-adds: a few
    // hundred here, against ~94k in the convolutions and dense layers
    let fma = fma as u64;
    assert!(
        hand <= fma && fma <= hand + hand / 100,
        "tract's count {fma} vs the hand count {hand} ({SIZE}px)"
    );
}

#[test]
fn bench_precision_exports_a_checkpoint_calibrated_on_its_training_catalog() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_catalog(tmp.path(), 16, 2);
    let run = tmp.path().join("run");
    let a = OsStr::new;
    let (ok, _, err) = deepgalaxy(&[
        a("train"),
        a("--data"),
        data.as_os_str(),
        a("--out"),
        run.as_os_str(),
        a("--image-size"),
        a("16"),
        a("--epochs"),
        a("1"),
        a("--batch-size"),
        a("4"),
    ]);
    assert!(ok, "train: {err}");
    let out = tmp.path().join("bench");
    let (ok, _, err) = deepgalaxy(&[
        a("bench"),
        a("precision"),
        a("--checkpoint"),
        run.as_os_str(),
        a("--precision"),
        a("fp32,int8"),
        a("--data"),
        data.as_os_str(),
        a("--repeats"),
        a("1"),
        a("--batches"),
        a("4"),
        a("--threads"),
        a("1"),
        a("--out"),
        out.as_os_str(),
    ]);
    assert!(ok, "{err}");
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    let files: Vec<(&str, &str)> = r["quality"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| {
            let file = q["file"].as_str().unwrap();
            let name = file.rsplit('/').next().unwrap();
            (name, q["precision"].as_str().unwrap())
        })
        .collect();
    // ONNX Runtime's own quantizer on the same file and calibration images, where its Python
    // peer runs (required with `peers`)
    let peer = deepgalaxy_runtime::benchmark::peer::python().is_ok();
    assert!(
        peer || !cfg!(feature = "peers"),
        "the peers feature needs a Python peer"
    );
    let mut expected = vec![("model.onnx", "fp32"), ("model.int8.onnx", "int8")];
    if peer {
        expected.push(("model.int8.ort.onnx", "int8"));
        let quantization = |f: &str| {
            let summary =
                deepgalaxy_runtime::inference::summary::inspect_onnx(&out.join("models").join(f))
                    .unwrap();
            summary.card.unwrap().quantization.unwrap()
        };
        let (ours, theirs) = (
            quantization("model.int8.onnx"),
            quantization("model.int8.ort.onnx"),
        );
        assert_eq!(theirs.format, "qdq (onnxruntime quantize_static)");
        assert_eq!(
            (theirs.calibration_images, &theirs.calibration_digest),
            (ours.calibration_images, &ours.calibration_digest)
        );
        let report = std::fs::read_to_string(out.join("report.md")).unwrap();
        assert!(
            !cfg!(feature = "ort") || report.contains("ONNX Runtime quantize_static speed-up: "),
            "{report}"
        );
    }
    assert_eq!(files, expected);

    // the same export by hand, calibrated on the training catalog, gives the same bytes
    let by_hand = tmp.path().join("by-hand");
    let (ok, _, err) = deepgalaxy(&[
        a("export"),
        a("--checkpoint"),
        run.as_os_str(),
        a("--out"),
        by_hand.as_os_str(),
        a("--precision"),
        a("fp32,int8"),
        a("--calibration"),
        data.as_os_str(),
    ]);
    assert!(ok, "{err}");
    for file in ["model.onnx", "model.int8.onnx"] {
        assert_eq!(
            std::fs::read(out.join("models").join(file)).unwrap(),
            std::fs::read(by_hand.join(file)).unwrap(),
            "{file}"
        );
    }

    // a configuration too slow for --max-pass-seconds is skipped, and says so
    let slow = tmp.path().join("slow");
    let (ok, _, err) = deepgalaxy(&[
        a("bench"),
        a("precision"),
        a("--models"),
        by_hand.as_os_str(),
        a("--data"),
        data.as_os_str(),
        a("--batches"),
        a("4"),
        a("--threads"),
        a("1"),
        a("--max-pass-seconds"),
        a("0"),
        a("--out"),
        slow.as_os_str(),
    ]);
    assert!(ok, "{err}");
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(slow.join("results.json")).unwrap()).unwrap();
    let ours: Vec<&serde_json::Value> = r["throughput"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["runner"].as_str().unwrap().starts_with("deepgalaxy"))
        .collect();
    assert!(!ours.is_empty());
    for t in ours {
        let e = t["result"]["Err"].as_str().unwrap_or_default();
        assert!(e.starts_with("skipped: a pass would take about"), "{t}");
    }

    // exactly one of --checkpoint and --models
    let (ok, _, err) = deepgalaxy(&[a("bench"), a("precision"), a("--data"), data.as_os_str()]);
    assert!(!ok && err.contains("--checkpoint"), "{err}");
    let (ok, _, err) = deepgalaxy(&[
        a("bench"),
        a("precision"),
        a("--checkpoint"),
        run.as_os_str(),
        a("--models"),
        by_hand.as_os_str(),
        a("--data"),
        data.as_os_str(),
    ]);
    assert!(!ok && err.contains("cannot be used with"), "{err}");

    // broken input: not a checkpoint, an unknown accuracy backend, a training catalog gone
    // with no --calibration for INT8
    let bench = |extra: &[&OsStr]| {
        let mut args = vec![a("bench"), a("precision"), a("--data"), data.as_os_str()];
        args.extend_from_slice(extra);
        args.extend([a("--out"), slow.as_os_str()]);
        deepgalaxy(&args)
    };
    let (ok, _, err) = bench(&[a("--checkpoint"), by_hand.as_os_str()]);
    assert!(
        !ok && err.contains("no checkpoint here") && err.contains("by-hand"),
        "{err}"
    );
    let (ok, _, err) = bench(&[
        a("--models"),
        by_hand.as_os_str(),
        a("--accuracy-backend"),
        a("gpu"),
    ]);
    assert!(!ok && err.contains("`gpu` is not a backend"), "{err}");
    let moved = tmp.path().join("moved.csv");
    std::fs::rename(&data, &moved).unwrap();
    let (ok, _, err) = deepgalaxy(&[
        a("bench"),
        a("precision"),
        a("--checkpoint"),
        run.as_os_str(),
        a("--precision"),
        a("fp32,int8"),
        a("--data"),
        moved.as_os_str(),
        a("--out"),
        slow.as_os_str(),
    ]);
    assert!(
        !ok && err.contains("--precision int8 needs --calibration"),
        "{err}"
    );
}
