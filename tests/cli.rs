//! The command line: `--help` lists the pipeline's subcommands, `inspect` describes images,
//! FITS files, catalogs and HDF5 datasets with the right numbers, and bad input fails with a
//! message naming the file.

mod common;

use std::ffi::OsStr;
use std::path::Path;

use common::{deepgalaxy, write_png16};

fn inspect_json(path: &Path) -> serde_json::Value {
    let (ok, out, err) = deepgalaxy(&[
        OsStr::new("inspect"),
        path.as_os_str(),
        OsStr::new("--json"),
    ]);
    assert!(ok, "inspect {} failed: {err}", path.display());
    serde_json::from_str(&out).unwrap()
}

/// The full build (default) has every command; the slim build (`--no-default-features`) has
/// the inference commands and none of those needing candle, the trainer, the simulator or the
/// export code.
#[test]
fn help_lists_the_commands_of_the_build() {
    let (ok, out, _) = deepgalaxy(&[OsStr::new("--help")]);
    assert!(ok);
    let commands: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let mut expected = vec![
        "predict",
        "embed",
        "index",
        "search",
        "cluster",
        "interpolate",
        "serve",
        "inspect",
        "help",
    ];
    if cfg!(feature = "full") {
        expected.extend([
            "simulate", "train", "tune", "export", "evaluate", "bench", "demo",
        ]);
    }
    let mut found = commands.clone();
    found.sort_unstable();
    expected.sort_unstable();
    assert_eq!(found, expected, "--help:\n{out}");
}

#[test]
fn inspect_an_image_gives_shape_type_and_range() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("ramp.png");
    write_png16(&p, 4, 3, |x, y| (x + 4 * y) as u16 * 1000);
    let s = inspect_json(&p);
    assert_eq!(s["kind"], "image");
    assert_eq!(
        (
            s["channels"].as_u64(),
            s["height"].as_u64(),
            s["width"].as_u64()
        ),
        (Some(1), Some(3), Some(4))
    );
    assert_eq!(s["dtype"], "u16");
    assert_eq!(s["min"], 0.0);
    assert_eq!(s["max"], 11000.0);
    assert_eq!(s["mean"], 5500.0);
    let (ok, text, _) = deepgalaxy(&[OsStr::new("inspect"), p.as_os_str()]);
    assert!(
        ok && text.contains("1 x 3 x 4") && text.contains("u16"),
        "{text}"
    );
}

#[test]
fn inspect_a_fits_file_lists_hdus_and_missing_pixels() {
    let s = inspect_json(&common::root().join("fixtures/fits/float32_nan.fits"));
    assert_eq!(s["dtype"], "fits bitpix -32");
    assert_eq!(s["missing"], 2);
    assert_eq!(
        (s["height"].as_u64(), s["width"].as_u64()),
        (Some(6), Some(4))
    );
    let s = inspect_json(&common::root().join("fixtures/fits/extension_i32.fits"));
    let hdus = s["hdus"].as_array().unwrap();
    assert_eq!(hdus.len(), 2);
    assert_eq!(hdus[1]["kind"], "image");
    assert_eq!(hdus[1]["naxis"], serde_json::json!([8, 3]));
}

#[test]
fn inspect_a_catalog_counts_classes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut csv = String::from("id_str,file_loc,simulation,camera,snapshot,label,t_myr\n");
    for i in 0..6u32 {
        let name = format!("img{i}.png");
        write_png16(&tmp.path().join(&name), 2, 2, |_, _| 0);
        csv += &format!(
            "g{i},{name},s_1_m_1,{},{},{},{}\n",
            i % 2,
            i / 2,
            i / 2,
            5.0 * (i / 2) as f64 + 2.5
        );
    }
    let p = tmp.path().join("catalog.csv");
    std::fs::write(&p, csv).unwrap();
    let s = inspect_json(&p);
    assert_eq!(s["kind"], "catalog");
    assert_eq!(s["records"], 6);
    assert_eq!(s["cameras"], 2);
    assert_eq!(s["classes"], serde_json::json!({"0": 2, "1": 2, "2": 2}));
    assert_eq!(s["t_myr_range"], serde_json::json!([2.5, 12.5]));
}

#[test]
fn inspect_bad_input_fails_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good.png");
    write_png16(&good, 16, 16, |x, y| (x * y) as u16);
    let bytes = std::fs::read(&good).unwrap();
    let cut = tmp.path().join("cut.png");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let (ok, _, err) = deepgalaxy(&[OsStr::new("inspect"), cut.as_os_str()]);
    assert!(!ok);
    assert!(
        err.contains("cut.png") && err.contains("cannot decode image"),
        "{err}"
    );

    let (ok, _, err) = deepgalaxy(&[OsStr::new("inspect"), OsStr::new("/no/such/file.png")]);
    assert!(!ok && err.contains("/no/such/file.png"), "{err}");

    // --markdown is the page of a model's card: an image has none
    let (ok, _, err) = deepgalaxy(&[
        OsStr::new("inspect"),
        good.as_os_str(),
        OsStr::new("--markdown"),
    ]);
    assert!(
        !ok && err.contains("good.png") && err.contains("--markdown is for models"),
        "{err}"
    );
}

#[cfg(feature = "full")]
#[test]
fn evaluate_record_needs_a_model_file_to_write_into() {
    let tmp = tempfile::tempdir().unwrap();
    let data = common::tiny_catalog(tmp.path(), 4, 2);
    let (ok, _, err) = deepgalaxy(&[
        OsStr::new("evaluate"),
        OsStr::new("--data"),
        data.as_os_str(),
        OsStr::new("--out"),
        tmp.path().join("eval").as_os_str(),
        OsStr::new("--record"),
    ]);
    assert!(
        !ok && err.contains("--record writes the scores into the model file"),
        "{err}"
    );
    assert!(!tmp.path().join("eval").exists(), "nothing is written");
}

#[cfg(feature = "hdf5")]
#[test]
fn inspect_an_hdf5_dataset_reports_records_and_classes() {
    use deepgalaxy_core::hdf5::{write_deepgalaxy, H5Camera, H5Simulation};
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("d.hdf5");
    let sim = |size: f64| H5Simulation {
        size_ratio: size,
        mass_ratio: 1.0,
        height: 2,
        width: 3,
        cameras: (0..3)
            .map(|_| H5Camera {
                images: vec![7.0; 4 * 6],
                t_myr: vec![0.0, 5.0, 10.0, 15.0],
            })
            .collect(),
    };
    write_deepgalaxy(&p, &[sim(0.5), sim(1.0)]).unwrap();
    let s = inspect_json(&p);
    assert_eq!(s["kind"], "hdf5");
    assert_eq!(s["records"], 2 * 3 * 4);
    assert_eq!(s["cameras"], 3);
    assert_eq!(
        s["simulations"],
        serde_json::json!(["s_0.5_m_1", "s_1_m_1"])
    );
    assert_eq!(
        s["classes"],
        serde_json::json!({"0": 6, "1": 6, "2": 6, "3": 6})
    );
    assert_eq!(s["dtype"], "u8");
}

#[cfg(feature = "full")]
#[test]
fn simulate_refuses_bad_settings_before_writing_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sim");
    for (flags, says) in [
        (&["--cameras", "0"][..], "0 cameras is outside 1..=14"),
        (&["--cameras", "15"], "15 cameras is outside 1..=14"),
        (
            &["--halo", "rigid", "--coulomb-log=-1"],
            "the Coulomb logarithm -1 is outside [0, 20]",
        ),
        (&["--halo", "wobbly"], "invalid value 'wobbly' for '--halo"),
    ] {
        let mut args = vec![OsStr::new("simulate"), OsStr::new("--out"), out.as_os_str()];
        args.extend(flags.iter().map(OsStr::new));
        let (ok, _, err) = deepgalaxy(&args);
        assert!(!ok && err.contains(says), "{flags:?}: {err}");
    }
    // export's choice of integer stem is checked the same way
    let (ok, _, err) = deepgalaxy(&[
        OsStr::new("export"),
        OsStr::new("--checkpoint"),
        tmp.path().as_os_str(),
        OsStr::new("--out"),
        out.as_os_str(),
        OsStr::new("--int8-stem"),
        OsStr::new("fuzzy"),
    ]);
    assert!(
        !ok && err.contains("invalid value 'fuzzy' for '--int8-stem"),
        "{err}"
    );
    assert!(
        !out.join("sims").exists()
            || std::fs::read_dir(out.join("sims"))
                .unwrap()
                .next()
                .is_none()
    );
}

#[cfg(feature = "full")]
#[test]
fn train_refuses_bad_input_with_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let missing = tmp.path().join("nope.csv");
    let (ok, _, err) = deepgalaxy(&[
        OsStr::new("train"),
        OsStr::new("--data"),
        missing.as_os_str(),
        OsStr::new("--out"),
        out.as_os_str(),
    ]);
    assert!(!ok && err.contains("nope.csv"), "{err}");

    let (ok, _, err) = deepgalaxy(&[
        OsStr::new("train"),
        OsStr::new("--resume"),
        OsStr::new("--out"),
        out.as_os_str(),
    ]);
    assert!(!ok && err.contains("no checkpoint here"), "{err}");

    let (ok, _, err) = deepgalaxy(&[
        OsStr::new("train"),
        OsStr::new("--data"),
        missing.as_os_str(),
        OsStr::new("--out"),
        out.as_os_str(),
        OsStr::new("--backbone"),
        OsStr::new("vgg"),
    ]);
    assert!(
        !ok && err.contains("`vgg` is not one of simple, resnet, efficientnet"),
        "{err}"
    );

    let data = common::tiny_catalog(tmp.path(), 16, 2);
    for (flag, says) in [
        (
            "--blur-fwhm=-1",
            "augmentation blur FWHM -1 must be zero or positive",
        ),
        ("--width=0", "0 is not a positive number"),
    ] {
        let (ok, _, err) = deepgalaxy(&[
            OsStr::new("train"),
            OsStr::new("--data"),
            data.as_os_str(),
            OsStr::new("--out"),
            out.as_os_str(),
            OsStr::new(flag),
        ]);
        assert!(!ok && err.contains(says), "{flag}: {err}");
        assert!(!out.exists(), "{flag}: a refused run leaves nothing");
    }
}

#[cfg(feature = "full")]
#[test]
fn train_resume_changes_only_the_flags_given_and_never_replaces_a_run_silently() {
    let tmp = tempfile::tempdir().unwrap();
    let data = common::tiny_catalog(tmp.path(), 16, 2);
    let run = tmp.path().join("run");
    let a = OsStr::new;
    let new_run = |extra: &[&OsStr]| {
        let mut args = vec![
            a("train"),
            a("--data"),
            data.as_os_str(),
            a("--out"),
            run.as_os_str(),
            a("--image-size"),
            a("16"),
            a("--batch-size"),
            a("4"),
        ];
        args.extend_from_slice(extra);
        deepgalaxy(&args)
    };
    let (ok, _, err) = new_run(&[a("--epochs"), a("3"), a("--max-steps"), a("1")]);
    assert!(ok, "{err}");
    let state = || {
        let text = std::fs::read_to_string(run.join("checkpoint/state.json")).unwrap();
        serde_json::from_str::<serde_json::Value>(&text).unwrap()
    };
    let model = || std::fs::read(run.join("checkpoint/model.safetensors")).unwrap();
    let before = model();

    // a second new run into the same folder is refused, naming it; nothing changes
    let (ok, _, err) = new_run(&[a("--epochs"), a("1")]);
    assert!(
        !ok && err.contains("already holds a training run") && err.contains("run"),
        "{err}"
    );
    assert_eq!(model(), before);

    // a flag that defines the run cannot be changed on resume
    let (ok, _, err) = deepgalaxy(&[
        a("train"),
        a("--resume"),
        a("--out"),
        run.as_os_str(),
        a("--lr"),
        a("0.5"),
    ]);
    assert!(
        !ok && err.contains("--lr") && err.contains("--resume"),
        "{err}"
    );
    assert_eq!(model(), before);

    // without --epochs the run keeps its own 3 (the flag's default for new runs is 10)
    let (ok, _, err) = deepgalaxy(&[
        a("train"),
        a("--resume"),
        a("--out"),
        run.as_os_str(),
        a("--max-steps"),
        a("2"),
    ]);
    assert!(ok, "{err}");
    let s = state();
    assert_eq!(
        (s["config"]["epochs"].as_u64(), s["step"].as_u64()),
        (Some(3), Some(2))
    );

    // --overwrite starts afresh
    let (ok, _, err) = new_run(&[
        a("--epochs"),
        a("1"),
        a("--max-steps"),
        a("1"),
        a("--overwrite"),
    ]);
    assert!(ok, "{err}");
    let s = state();
    assert_eq!(
        (s["config"]["epochs"].as_u64(), s["step"].as_u64()),
        (Some(1), Some(1))
    );
}

#[cfg(feature = "full")]
#[test]
fn train_export_and_inspect_a_model_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let data = common::tiny_catalog(tmp.path(), 24, 3);
    let run = tmp.path().join("run");
    let onnx = tmp.path().join("onnx");
    let arg = OsStr::new;
    let (ok, _, err) = deepgalaxy(&[
        arg("train"),
        arg("--data"),
        data.as_os_str(),
        arg("--out"),
        run.as_os_str(),
        arg("--image-size"),
        arg("16"),
        arg("--epochs"),
        arg("1"),
        arg("--batch-size"),
        arg("4"),
    ]);
    assert!(ok, "train: {err}");
    assert!(
        err.contains("epoch 1:") && err.contains("val |dt| median") && err.contains("top-1"),
        "epoch line: {err}"
    );
    let (ok, out, err) = deepgalaxy(&[
        arg("export"),
        arg("--checkpoint"),
        run.as_os_str(),
        arg("--out"),
        onnx.as_os_str(),
    ]);
    assert!(ok, "export: {err}");
    assert_eq!(out.lines().count(), 3, "{out}");
    let s = inspect_json(&onnx.join("model.onnx"));
    assert_eq!(s["inputs"], serde_json::json!(["image"]));
    assert_eq!(
        s["outputs"],
        serde_json::json!(["probabilities", "logits", "latent"])
    );
    assert_eq!(
        (s["ir_version"].as_i64(), s["opset"].as_i64()),
        (Some(8), Some(17))
    );
    let card = &s["card"];
    assert_eq!(card["num_classes"], 3);
    assert_eq!(card["class_t_myr"], serde_json::json!([2.0, 7.0, 12.0]));
    assert_eq!(card["split"], "by-simulation");
    assert_eq!(card["preprocess"]["size"], 16);
    let s = inspect_json(&onnx.join("decoder.onnx"));
    assert_eq!(s["inputs"], serde_json::json!(["latent"]));
    // a damaged model file is an error naming it
    let bytes = std::fs::read(onnx.join("model.onnx")).unwrap();
    let cut = tmp.path().join("cut.onnx");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let (ok, _, err) = deepgalaxy(&[arg("inspect"), cut.as_os_str()]);
    assert!(
        !ok && err.contains("cut.onnx") && err.contains("not a readable ONNX model"),
        "{err}"
    );
}

#[cfg(feature = "full")]
#[test]
fn train_can_start_from_an_exported_model() {
    let tmp = tempfile::tempdir().unwrap();
    let data = common::tiny_catalog(tmp.path(), 16, 2);
    let arg = OsStr::new;
    let common = |out: &Path| -> Vec<std::ffi::OsString> {
        [
            "train",
            "--image-size",
            "16",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--data",
        ]
        .iter()
        .map(|s| s.into())
        .chain([
            data.as_os_str().to_owned(),
            "--out".into(),
            out.as_os_str().to_owned(),
        ])
        .collect()
    };
    let first = tmp.path().join("first");
    let args = common(&first);
    let (ok, _, err) = deepgalaxy(&args.iter().map(|a| a.as_os_str()).collect::<Vec<_>>());
    assert!(ok, "{err}");
    let onnx = tmp.path().join("onnx");
    let (ok, _, err) = deepgalaxy(&[
        arg("export"),
        arg("--checkpoint"),
        first.as_os_str(),
        arg("--out"),
        onnx.as_os_str(),
    ]);
    assert!(ok, "{err}");
    let second = tmp.path().join("second");
    let mut args = common(&second);
    args.extend([
        "--init-from".into(),
        onnx.join("model.onnx").into_os_string(),
        "--unfreeze-every".into(),
        "1".into(),
    ]);
    let (ok, _, err) = deepgalaxy(&args.iter().map(|a| a.as_os_str()).collect::<Vec<_>>());
    assert!(ok, "{err}");
    assert!(err.contains("initial weights: loaded"), "{err}");
}

#[cfg(feature = "full")]
#[test]
fn fits_simulations_train_on_one_physical_scale() {
    let tmp = tempfile::tempdir().unwrap();
    let (sims, run) = (tmp.path().join("sims"), tmp.path().join("run"));
    let a = OsStr::new;
    let catalog = common::simulate_fits(&sims);
    let text = std::fs::read_to_string(&catalog).unwrap();
    assert!(
        text.lines().nth(1).unwrap().contains(".fits"),
        "{text:.300}"
    );
    let train = |scale: &str| {
        deepgalaxy(&[
            a("train"),
            a("--data"),
            catalog.as_os_str(),
            a("--out"),
            run.as_os_str(),
            a("--image-size"),
            a("16"),
            a("--epochs"),
            a("1"),
            a("--max-steps"),
            a("2"),
            a("--scale"),
            a(scale),
            a("--stretch"),
            a("log"),
            a("--split"),
            a("random"),
        ])
    };
    let (ok, _, err) = train("fixed:5,1");
    assert!(
        !ok && err.contains("fixed range 5..1 is empty or not finite"),
        "{err}"
    );
    let (ok, _, err) = train("fixed:0,2000");
    assert!(ok, "train: {err}");
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("checkpoint/spec.json")).unwrap()).unwrap();
    assert_eq!(
        spec["preprocess"]["scale"],
        serde_json::json!({"kind": "fixed", "low": 0.0, "high": 2000.0})
    );
}
