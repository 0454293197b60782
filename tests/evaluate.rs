//! Time since first pericentre end to end: `train` on a catalog with phase labels keeps its
//! test mergers out and records them, `export` carries them in the card, `predict` writes
//! `t_peri_myr`, and `evaluate` scores only the mergers the model never saw, with numbers that
//! agree with its own per-image predictions.
// the commands under test are the full build's (feature `full`, the default)
#![cfg(feature = "full")]

mod common;

use std::ffi::OsStr;
use std::path::Path;

use common::{deepgalaxy, write_png16};

/// 36 16x16 images over 3 simulations, 2 cameras x 6 snapshots each, with `t_peri_myr = 5 *
/// snapshot - 10 + offset` (offsets 0, 0.5 and 1 Myr per simulation) beside the snapshot label.
fn phase_catalog(dir: &Path) -> std::path::PathBuf {
    let mut csv =
        String::from("id_str,file_loc,simulation,camera,snapshot,label,t_myr,t_peri_myr\n");
    for sim in 0..3u32 {
        for cam in 0..2u32 {
            for snap in 0..6u32 {
                let name = format!("s{sim}_c{cam}_{snap}.png");
                write_png16(&dir.join(&name), 16, 16, |x, y| {
                    ((x + y + cam) * 400 * (snap + 1) + sim * 7) as u16
                });
                let t_peri = 5.0 * snap as f64 - 10.0 + 0.5 * sim as f64;
                csv += &format!(
                    "s{sim}_c{cam}_{snap},{name},sim{sim},{cam},{snap},{snap},{},{t_peri}\n",
                    5 * snap
                );
            }
        }
    }
    let path = dir.join("catalog.csv");
    std::fs::write(&path, csv).unwrap();
    path
}

#[test]
fn test_mergers_stay_out_of_training_and_are_all_evaluate_scores() {
    let tmp = tempfile::tempdir().unwrap();
    let data = phase_catalog(tmp.path());
    let (run, onnx, eval) = (
        tmp.path().join("run"),
        tmp.path().join("onnx"),
        tmp.path().join("eval"),
    );
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
        a("--test-simulations"),
        a("sim2"),
        a("--val-simulations"),
        a("sim1"),
    ]);
    assert!(ok, "train: {err}");
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("checkpoint/state.json")).unwrap()).unwrap();
    // the catalog has phase labels, so the target is t-peri: 5 Myr bins from -10 to 15 Myr
    assert_eq!(state["target"], "t-peri");
    let times: Vec<f64> = state["class_t_myr"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_f64().unwrap())
        .collect();
    assert_eq!(times.len(), 6);
    for (k, t) in times.iter().enumerate() {
        assert!((t - (-10.0 + 5.0 * k as f64)).abs() <= 2.5, "{times:?}");
    }
    let split = &state["split"];
    assert_eq!(split["test_simulations"], serde_json::json!(["sim2"]));
    assert_eq!(split["val_simulations"], serde_json::json!(["sim1"]));
    assert_eq!(split["train_simulations"], serde_json::json!(["sim0"]));
    let ids = |key: &str| -> Vec<u64> {
        split[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect()
    };
    // catalog rows 24..36 are sim2: all in test, none in training or validation
    assert_eq!(ids("test"), (24..36).collect::<Vec<u64>>());
    assert!(ids("train").iter().chain(&ids("val")).all(|&i| i < 24));

    let (ok, _, err) = deepgalaxy(&[
        a("export"),
        a("--checkpoint"),
        run.as_os_str(),
        a("--out"),
        onnx.as_os_str(),
    ]);
    assert!(ok, "export: {err}");
    let model = onnx.join("model.onnx");
    let (ok, out, _) = deepgalaxy(&[a("inspect"), a("--json"), model.as_os_str()]);
    assert!(ok);
    let card = &serde_json::from_str::<serde_json::Value>(&out).unwrap()["card"];
    assert_eq!(card["target"], "t-peri");
    assert_eq!(
        card["simulations"],
        serde_json::json!({"train": ["sim0"], "validation": ["sim1"], "test": ["sim2"]})
    );

    // predict names the columns after the target and fills the truth from t_peri_myr
    let (ok, csv, err) = deepgalaxy(&[
        a("predict"),
        a("--model"),
        model.as_os_str(),
        data.as_os_str(),
    ]);
    assert!(ok, "predict: {err}");
    let header = csv.lines().next().unwrap();
    assert!(
        header.starts_with("id,file,error,t_peri_myr,t_peri_sigma_myr,label,true_t_peri_myr,"),
        "{header}"
    );
    assert!(err.contains("time error median"), "{err}");

    let evaluate_into = |out: &Path, extra: &[&OsStr]| {
        let mut args = vec![
            a("evaluate"),
            a("--model"),
            model.as_os_str(),
            a("--data"),
            data.as_os_str(),
            a("--out"),
            out.as_os_str(),
        ];
        args.extend_from_slice(extra);
        deepgalaxy(&args)
    };
    let evaluate = || evaluate_into(&eval, &[]);
    let (ok, _, err) = evaluate();
    assert!(ok, "evaluate: {err}");
    let e: serde_json::Value =
        serde_json::from_slice(&std::fs::read(eval.join("evaluation.json")).unwrap()).unwrap();
    assert_eq!(e["simulations"], serde_json::json!(["sim2"]));
    assert_eq!(e["excluded_images"], 24);
    assert!(e["caveat"].is_null());
    // the scores agree with the per-image predictions written beside them
    let mut rows = csv::Reader::from_path(eval.join("predictions.csv")).unwrap();
    let mut errors: Vec<f64> = Vec::new();
    let mut inside = 0;
    for r in rows.records() {
        let r = r.unwrap();
        assert!(r[1].contains("s2_"), "{:?}", r);
        let (t, s, truth): (f64, f64, f64) = (
            r[3].parse().unwrap(),
            r[4].parse().unwrap(),
            r[6].parse().unwrap(),
        );
        errors.push((t - truth).abs());
        inside += usize::from((t - truth).abs() <= s);
    }
    assert_eq!(errors.len(), 12);
    errors.sort_by(f64::total_cmp);
    let median = 0.5 * (errors[5] + errors[6]);
    let t = &e["overall"]["time"];
    // predictions.csv rounds times to 1e-3 Myr
    assert!(
        (t["median_abs_myr"].as_f64().unwrap() - median).abs() < 2e-3,
        "{t} {median}"
    );
    assert!(
        (t["coverage_1sigma"].as_f64().unwrap() - inside as f64 / 12.0).abs() < 1e-9,
        "{t}"
    );
    let md = std::fs::read_to_string(eval.join("evaluation.md")).unwrap();
    assert!(md.contains("| sim2 |") && !md.contains("| sim0 |"), "{md}");
    assert!(eval.join("evaluate.png").is_file());
    // an evaluation is not replaced without being asked
    let (ok, _, err) = evaluate();
    assert!(
        !ok && err.contains("evaluation.json exists") && err.contains("--overwrite"),
        "{err}"
    );
    // --record writes exactly these scores into the file's card and changes no prediction
    let before = std::fs::read(eval.join("predictions.csv")).unwrap();
    let (ok, _, err) = evaluate_into(&eval, &[a("--overwrite"), a("--record")]);
    assert!(
        ok && err.contains("recorded the scores"),
        "evaluate --record: {err}"
    );
    let card = deepgalaxy_runtime::inference::summary::inspect_onnx(&model)
        .unwrap()
        .card
        .unwrap();
    let test = card.test.expect("recorded scores");
    assert_eq!(test.simulations, ["sim2"]);
    assert_eq!(
        serde_json::to_value(test.score).unwrap(),
        e["overall"]["time"]
    );
    assert_eq!(serde_json::to_value(test.baseline).unwrap(), e["baseline"]);
    assert_eq!(
        test.data_digest,
        deepgalaxy_core::card::digest_file(&data).unwrap()
    );
    let again = tmp.path().join("again");
    let (ok, _, err) = evaluate_into(&again, &[]);
    assert!(ok, "evaluate after --record: {err}");
    assert_eq!(
        before,
        std::fs::read(again.join("predictions.csv")).unwrap()
    );
    let (ok, md, err) = deepgalaxy(&[a("inspect"), model.as_os_str(), a("--markdown")]);
    assert!(ok, "{err}");
    assert!(
        md.contains("## Scores on mergers it never saw\n\n12 images of 1 mergers (sim2)"),
        "{md}"
    );
    // scores of seen mergers are never recorded
    let (ok, _, err) = evaluate_into(&again, &[a("--include-seen"), a("--record")]);
    assert!(!ok && err.contains("--include-seen"), "{err}");
    // INT8 calibration keeps to the training merger: a catalog of test mergers only is refused
    let only_test = tmp.path().join("test_only.csv");
    let text = std::fs::read_to_string(&data).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .enumerate()
        .filter(|(i, l)| *i == 0 || l.contains(",sim2,"))
        .map(|(_, l)| l)
        .collect();
    std::fs::write(&only_test, kept.join("\n") + "\n").unwrap();
    let (ok, _, err) = deepgalaxy(&[
        a("export"),
        a("--checkpoint"),
        run.as_os_str(),
        a("--out"),
        tmp.path().join("int8").as_os_str(),
        a("--precision"),
        a("int8"),
        a("--calibration"),
        only_test.as_os_str(),
    ]);
    assert!(
        !ok && err.contains("test_only.csv")
            && err.contains("none is of a simulation the model was trained on"),
        "{err}"
    );
}
