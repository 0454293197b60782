//! `deepgalaxy demo` at toy size: every stage runs and writes what the report promises, the
//! report's numbers are in range, and a second run skips every stage.
// the commands under test are the full build's (feature `full`, the default)
#![cfg(feature = "full")]

mod common;

use std::ffi::OsStr;

use common::{deepgalaxy, write_png16};
use deepgalaxy_runtime::library::index::LatentIndex;
use deepgalaxy_runtime::library::recommend::{preprocessed, SSIM_DATA_RANGE};
use deepgalaxy_runtime::library::ssim::ssim;

#[test]
fn the_demo_runs_end_to_end_at_toy_size() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    // "observations": a PNG and a copy of a FITS fixture
    let obs = tmp.path().join("obs");
    std::fs::create_dir(&obs).unwrap();
    write_png16(&obs.join("pair.png"), 40, 30, |x, y| {
        let d = |cx: i32, cy: i32| ((x as i32 - cx).pow(2) + (y as i32 - cy).pow(2)) as f32;
        (60000.0 * ((-d(12, 15) / 30.0).exp() + 0.7 * (-d(28, 14) / 20.0).exp())) as u16
    });
    std::fs::copy(
        common::root().join("fixtures/fits/float32_nan.fits"),
        obs.join("galaxy.fits"),
    )
    .unwrap();
    let a = OsStr::new;
    let args = [
        a("demo"),
        a("--out"),
        out.as_os_str(),
        a("--observations"),
        obs.as_os_str(),
        a("--mergers"),
        a("2"),
        a("--particles"),
        a("1000"),
        a("--sim-size"),
        a("32"),
        a("--image-size"),
        a("16"),
        a("--epochs"),
        a("1"),
    ];
    let (ok, _, err) = deepgalaxy(&args);
    assert!(ok, "demo: {err}");
    for f in [
        "report.md",
        "samples.png",
        "run/curves.png",
        "onnx/model.onnx",
        "evaluation/evaluation.md",
        "evaluation/evaluate.png",
        "library.idx",
        "gallery.png",
        "clusters/clusters.csv",
        "clusters/latent_map_pca_clusters.png",
        "interpolation.png",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains("## Accuracy on the held-out simulations"),
        "{report}"
    );
    assert!(
        report.contains("pair.png") && report.contains("galaxy.fits"),
        "{report}"
    );
    // the held-out predictions: one held-out simulation of 994 images, all predicted
    let preds: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("predictions_heldout.json")).unwrap())
            .unwrap();
    let preds = preds.as_array().unwrap();
    assert_eq!(preds.len(), 71 * 14);
    for p in preds {
        assert!(p["error"].is_null(), "{p}");
        let total: f64 = p["top"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t[1].as_f64().unwrap())
            .sum();
        assert!(total > 0.0 && total <= 1.0 + 1e-5, "{p}");
    }
    // the printed test-merger figures: even at toy size the model reads the time off a merger
    // it never saw better than the best constant answer, and its classes far better than
    // chance; and the printed within-10 share is the one evaluate wrote
    let line = err
        .lines()
        .find(|l| l.starts_with("test mergers:"))
        .unwrap();
    let after = |what: &str, until: char| -> f64 {
        let tail = line
            .split(what)
            .nth(1)
            .unwrap_or_else(|| panic!("{what}: {line}"));
        tail.split(until).next().unwrap().trim().parse().unwrap()
    };
    let (median, constant) = (
        after("median |error| ", 'M'),
        after("(constant answer ", ')'),
    );
    assert!(median < constant, "{line}");
    let (within2, chance) = (after("within-2 classes ", '%'), after("(chance ", '%'));
    assert!(within2 > 2.0 * chance, "{line}");
    // no leak: evaluate scored the test merger only, and the library holds training mergers
    // only
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run/checkpoint/state.json")).unwrap())
            .unwrap();
    let test = state["split"]["test_simulations"].clone();
    assert_eq!(test.as_array().unwrap().len(), 1, "{test}");
    let evaluation: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("evaluation/evaluation.json")).unwrap())
            .unwrap();
    assert_eq!(evaluation["simulations"], test);
    assert_eq!(evaluation["target"], "t-peri");
    let written = evaluation["overall"]["time"]["within_10_myr"]
        .as_f64()
        .unwrap();
    assert!(
        (after("within 10 Myr ", '%') - 100.0 * written).abs() < 0.051,
        "{line} against {written}"
    );
    assert_eq!(evaluation["knn"]["own_simulation_skipped"], 0);
    let library = LatentIndex::load(&out.join("library.idx"), None).unwrap();
    assert_eq!(library.len(), 71 * 14);
    assert!(library
        .entries()
        .iter()
        .all(|e| e.simulation.is_some() && Some(&serde_json::json!(e.simulation)) != test.get(0)));
    // both observations searched, 5 neighbours each, and each reported SSIM is the SSIM of
    // the query and that neighbour as the index's model preprocesses them
    let search: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("search.json")).unwrap()).unwrap();
    let search = search.as_array().unwrap();
    assert_eq!(search.len(), 2);
    let index = LatentIndex::load(&out.join("library.idx"), None).unwrap();
    for q in search {
        let query =
            preprocessed(&index, std::path::Path::new(q["file"].as_str().unwrap())).unwrap();
        let n = q["result"]["neighbours"].as_array().unwrap();
        assert_eq!(n.len(), 5, "{q}");
        for x in n {
            let file = std::path::Path::new(x["file"].as_str().unwrap());
            let want = ssim(
                &query,
                &preprocessed(&index, file).unwrap(),
                SSIM_DATA_RANGE,
            )
            .unwrap();
            let got = x["ssim"].as_f64().unwrap();
            assert!(
                (got - want).abs() < 1e-9,
                "{}: {got} against {want}",
                file.display()
            );
        }
    }
    // INT8: predicted alongside FP32 and mostly agreeing with it
    let int8: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("predictions_heldout_int8.json")).unwrap())
            .unwrap();
    let int8 = int8.as_array().unwrap();
    assert_eq!(int8.len(), preds.len());
    let agree = preds
        .iter()
        .zip(int8)
        .filter(|(a, b)| a["top"][0][0] == b["top"][0][0])
        .count() as f64
        / preds.len() as f64;
    eprintln!("INT8 top-1 agreement with FP32: {agree}");
    assert!(agree >= 0.9, "INT8 top-1 agreement {agree}");
    assert!(
        report.contains("Top-1 agreement of INT8 with FP32"),
        "{report}"
    );
    assert!(out.join("onnx/agreement.md").is_file());
    // a second run finds every output and skips every stage
    let (ok, _, err) = deepgalaxy(&args);
    assert!(ok, "{err}");
    assert!(
        !err.contains("deepgalaxy train --data"),
        "train ran again: {err}"
    );
    assert!(err.matches("already done").count() >= 8, "{err}");
}

#[test]
fn zero_mergers_and_a_one_step_interpolation_are_refused_with_a_message() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    let a = OsStr::new;
    let (ok, _, err) = deepgalaxy(&[
        a("demo"),
        a("--out"),
        out.as_os_str(),
        a("--mergers"),
        a("0"),
    ]);
    assert!(!ok && err.contains("--mergers must be at least 1"), "{err}");
    assert!(!out.join("sim").join("catalog.csv").exists());
    assert!(!err.contains("panicked"), "{err}");

    let missing = tmp.path().join("missing.onnx");
    let (ok, _, err) = deepgalaxy(&[
        a("interpolate"),
        a("--model"),
        missing.as_os_str(),
        a("--decoder"),
        missing.as_os_str(),
        a("--output"),
        tmp.path().join("i.png").as_os_str(),
        a("--steps"),
        a("1"),
        a("a.png"),
        a("b.png"),
    ]);
    assert!(
        !ok && err.contains("invalid value '1' for '--steps <STEPS>': 1 is not in 2..=64"),
        "{err}"
    );
}
