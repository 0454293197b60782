//! The runtime commands end to end on models exported in the test (untrained weights with
//! non-trivial batch-norm statistics): `predict` equals the candle model on the same
//! preprocessed images, a bad image among many is reported alone, `index` + `search` find a
//! library image itself at distance 0 with SSIM 1, `cluster` labels every latent, `interpolate`
//! draws its grid, and mismatched or damaged indexes are refused. With the `ort` feature, ONNX
//! Runtime agrees with tract within 1e-4, and a missing library is a clear error.

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use common::{deepgalaxy, exported, tiny_catalog, write_png16, SIZE};
use deepgalaxy_models::exec::{forward, Mode};

fn run(args: &[&OsStr]) -> (bool, String, String) {
    deepgalaxy(args)
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

#[test]
fn predict_equals_the_candle_model_and_reports_a_bad_image_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let m = exported(&tmp.path().join("onnx"), 8, 3);
    let images = tmp.path().join("images");
    std::fs::create_dir(&images).unwrap();
    for i in 0..5u32 {
        write_png16(&images.join(format!("g{i}.png")), 20, 18, |x, y| {
            ((x * 37 + y * 11 + i * 101) % 257) as u16 * 200
        });
    }
    std::fs::write(images.join("broken.png"), b"\x89PNG not really").unwrap();
    let out = tmp.path().join("pred.json");
    let a = OsStr::new;
    let (ok, _, err) = run(&[
        a("predict"),
        a("--model"),
        m.model.as_os_str(),
        a("--latent"),
        a("-k"),
        a("3"),
        a("--batch-size"),
        a("2"),
        a("--threads"),
        a("2"),
        a("--output"),
        out.as_os_str(),
        images.as_os_str(),
    ]);
    assert!(!ok, "a broken image makes the exit code say so");
    assert!(
        err.contains("broken.png") && err.contains("1 of 6 images could not be processed"),
        "{err}"
    );
    let preds = json(&out);
    let preds = preds.as_array().unwrap();
    assert_eq!(preds.len(), 6, "every input has a row");
    let o = m.graph.outputs;
    for p in preds {
        let file = PathBuf::from(p["file"].as_str().unwrap());
        if file.ends_with("broken.png") {
            assert!(p["error"].as_str().unwrap().contains("broken.png"));
            continue;
        }
        assert!(p["error"].is_null(), "{p}");
        let img = deepgalaxy_core::image::load(&file).unwrap();
        let x = deepgalaxy_core::preprocess(&img, &m.preprocess, &file).unwrap();
        let t =
            Tensor::from_vec(x.data, (1, 1, SIZE as usize, SIZE as usize), &Device::Cpu).unwrap();
        let ours = forward(
            &m.graph,
            &m.weights,
            &t,
            &[o.probabilities, o.mu],
            Mode::Eval,
        )
        .unwrap();
        let probs = ours[0].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let mu = ours[1].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for (c, q) in p["top"].as_array().unwrap().iter().map(|e| {
            (
                e[0].as_u64().unwrap() as usize,
                e[1].as_f64().unwrap() as f32,
            )
        }) {
            assert!(
                (probs[c] - q).abs() < 1e-4,
                "class {c}: {} vs {q}",
                probs[c]
            );
        }
        let best = (0..3)
            .max_by(|&a, &b| probs[a].total_cmp(&probs[b]))
            .unwrap();
        assert_eq!(p["top"][0][0].as_u64().unwrap() as usize, best);
        let expected_t: f32 = probs.iter().zip([2.0, 7.0, 12.0]).map(|(q, t)| q * t).sum();
        assert!((p["t_myr"].as_f64().unwrap() as f32 - expected_t).abs() < 1e-3);
        for (a, b) in floats(&p["latent"]).iter().zip(&mu) {
            assert!((a - b).abs() < 1e-4, "latent {a} vs {b}");
        }
    }
}

#[test]
fn index_search_cluster_and_interpolate() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_catalog(tmp.path(), 30, 3);
    let m = exported(&tmp.path().join("onnx"), 8, 5);
    let idx = tmp.path().join("lib").join("library.idx");
    let a = OsStr::new;
    let err = common::index(&m.model, &data, &idx);
    assert!(err.contains("30 latents of size 8"), "{err}");
    // the images lie outside lib/: index says so, and search reads them only when allowed
    assert!(
        err.contains("names the image") && err.contains("--allow-paths-outside-index"),
        "{err}"
    );
    // without a library, search says how to build one
    let (ok, _, err) = run(&[a("search"), a("--model"), m.model.as_os_str(), a("x.png")]);
    assert!(
        !ok && err.contains("--index LIB") && err.contains("deepgalaxy index --model"),
        "{err}"
    );
    // queries from a catalog never find their own simulation
    let own = tmp.path().join("own.json");
    let (ok, _, err) = run(&[
        a("search"),
        a("--allow-paths-outside-index"),
        a("--model"),
        m.model.as_os_str(),
        a("--index"),
        idx.as_os_str(),
        a("-k"),
        a("5"),
        a("--output"),
        own.as_os_str(),
        data.as_os_str(),
    ]);
    assert!(ok, "search: {err}");
    let own = json(&own);
    let queries = own.as_array().unwrap();
    assert_eq!(queries.len(), 30);
    let mut skipped = 0;
    for q in queries {
        let i: usize = q["id"].as_str().unwrap()[1..].parse().unwrap();
        let mine = format!("sim{}", i % 3);
        let n = q["result"]["neighbours"].as_array().unwrap();
        assert_eq!(n.len(), 5, "{q}");
        assert!(n.iter().all(|x| x["simulation"] != mine.as_str()), "{q}");
        skipped += q["result"]["own_simulation_skipped"].as_u64().unwrap();
    }
    // each image is nearest to itself, so at least that entry was skipped for every query
    assert!(skipped >= 30, "{skipped}");
    let query = tmp.path().join("g4.png");
    let (ok, _, err) = run(&[
        a("search"),
        a("--model"),
        m.model.as_os_str(),
        a("--index"),
        idx.as_os_str(),
        query.as_os_str(),
    ]);
    assert!(!ok);
    assert!(
        err.contains("refusing to read library images outside the index's folder")
            && err.contains("entry 0 (`g0`) names the image")
            && err.contains("g0.png"),
        "{err}"
    );
    // a library image is its own nearest neighbour: distance ~0, SSIM 1
    let results = tmp.path().join("search.json");
    let gallery = tmp.path().join("gallery.png");
    let (ok, out, err) = run(&[
        a("search"),
        a("--allow-paths-outside-index"),
        a("--model"),
        m.model.as_os_str(),
        a("--index"),
        idx.as_os_str(),
        a("-k"),
        a("4"),
        a("--gallery"),
        gallery.as_os_str(),
        a("--output"),
        results.as_os_str(),
        query.as_os_str(),
    ]);
    assert!(ok, "search: {err}");
    assert!(out.contains("t = "), "{out}");
    let r = json(&results);
    let n = r[0]["result"]["neighbours"].as_array().unwrap();
    assert_eq!(n.len(), 4);
    assert_eq!(n[0]["id"], "g4");
    // batch 8 (index) and batch 1 (query) may round differently in the last bits
    assert!(n[0]["distance"].as_f64().unwrap() < 1e-5, "{}", n[0]);
    assert!((n[0]["ssim"].as_f64().unwrap() - 1.0).abs() < 1e-9);
    let mut last = 0.0;
    for x in n {
        let s = x["ssim"].as_f64().unwrap();
        assert!((-1.0..=1.0).contains(&s), "{s}");
        let d = x["distance"].as_f64().unwrap();
        assert!(d >= last, "nearest first");
        last = d;
    }
    let est = &r[0]["result"]["estimate"];
    let mean: f64 = n.iter().map(|x| x["t_myr"].as_f64().unwrap()).sum::<f64>() / 4.0;
    assert!((est["mean_myr"].as_f64().unwrap() - mean).abs() < 1e-9);
    let g = image::open(&gallery).unwrap();
    assert!(g.width() > 500 && g.height() > 200);

    let clusters = tmp.path().join("clusters");
    let (ok, out, err) = run(&[
        a("cluster"),
        a("--index"),
        idx.as_os_str(),
        a("--output"),
        clusters.as_os_str(),
        a("--clusters"),
        a("3"),
        a("--neighbours"),
        a("5"),
    ]);
    assert!(ok, "cluster: {err}");
    assert!(out.contains("30 latents in 3 clusters (given)"), "{out}");
    let labels = std::fs::read_to_string(clusters.join("clusters.csv")).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for line in labels.lines().skip(1) {
        seen.insert(line.rsplit(',').next().unwrap().to_string());
    }
    assert_eq!(labels.lines().count(), 31);
    assert_eq!(seen.len(), 3, "three clusters used");
    assert!(clusters.join("latent_map_pca_classes.png").is_file());

    let grid = tmp.path().join("interp.png");
    let (ok, _, err) = run(&[
        a("interpolate"),
        a("--model"),
        m.model.as_os_str(),
        a("--decoder"),
        m.decoder.as_os_str(),
        a("--steps"),
        a("4"),
        a("--output"),
        grid.as_os_str(),
        tmp.path().join("g0.png").as_os_str(),
        tmp.path().join("g2.png").as_os_str(),
    ]);
    assert!(ok, "interpolate: {err}");
    assert!(image::open(&grid).unwrap().width() > 500);
}

#[test]
fn mismatched_damaged_and_missing_inputs_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_catalog(tmp.path(), 12, 3);
    let m8 = exported(&tmp.path().join("m8"), 8, 1);
    let m16 = exported(&tmp.path().join("m16"), 16, 1);
    let idx = tmp.path().join("library.idx");
    let a = OsStr::new;
    let (ok, _, err) = run(&[
        a("index"),
        a("--model"),
        m8.model.as_os_str(),
        a("--data"),
        data.as_os_str(),
        a("--output"),
        idx.as_os_str(),
    ]);
    assert!(ok, "{err}");
    let query = tmp.path().join("g1.png");
    let search = |model: &Path, index: &Path| {
        run(&[
            a("search"),
            a("--model"),
            model.as_os_str(),
            a("--index"),
            index.as_os_str(),
            query.as_os_str(),
        ])
    };
    let (ok, _, err) = search(&m16.model, &idx);
    assert!(!ok && err.contains("library.idx"), "{err}");
    assert!(
        err.contains('8') && err.contains("16"),
        "names both sizes: {err}"
    );
    let bytes = std::fs::read(&idx).unwrap();
    let cut = tmp.path().join("cut.idx");
    std::fs::write(&cut, &bytes[..bytes.len() - 10]).unwrap();
    let (ok, _, err) = search(&m8.model, &cut);
    assert!(
        !ok && err.contains("cut.idx") && err.contains("truncated"),
        "{err}"
    );
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    let bad = tmp.path().join("bad.idx");
    std::fs::write(&bad, &flipped).unwrap();
    let (ok, _, err) = search(&m8.model, &bad);
    assert!(
        !ok && err.contains("bad.idx") && err.contains("checksum"),
        "{err}"
    );
    let (ok, _, err) = search(&tmp.path().join("nope.onnx"), &idx);
    assert!(!ok && err.contains("nope.onnx"), "{err}");
}

#[cfg(not(feature = "ort"))]
#[test]
fn the_ort_backend_without_the_feature_says_how_to_get_it() {
    let tmp = tempfile::tempdir().unwrap();
    let m = exported(tmp.path(), 8, 2);
    let img = tmp.path().join("a.png");
    write_png16(&img, 16, 16, |x, y| (x * y) as u16);
    let a = OsStr::new;
    let (ok, _, err) = run(&[
        a("predict"),
        a("--model"),
        m.model.as_os_str(),
        a("--backend"),
        a("ort"),
        img.as_os_str(),
    ]);
    assert!(!ok && err.contains("--features ort"), "{err}");
}

#[cfg(feature = "ort")]
#[test]
fn onnx_runtime_agrees_with_tract_and_a_missing_library_is_explained() {
    assert!(
        std::env::var_os("ORT_DYLIB_PATH").is_some(),
        "the `ort` feature's tests need ORT_DYLIB_PATH (.ci/run sets it)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_catalog(tmp.path(), 9, 3);
    let m = exported(&tmp.path().join("onnx"), 8, 4);
    let a = OsStr::new;
    let predict = |backend: &str, out: &Path| {
        run(&[
            a("predict"),
            a("--model"),
            m.model.as_os_str(),
            a("--backend"),
            a(backend),
            a("--latent"),
            a("-k"),
            a("3"),
            a("--output"),
            out.as_os_str(),
            data.as_os_str(),
        ])
    };
    let (t, o) = (tmp.path().join("tract.json"), tmp.path().join("ort.json"));
    let (ok, _, err) = predict("tract", &t);
    assert!(ok, "{err}");
    let (ok, _, err) = predict("ort", &o);
    assert!(ok, "{err}");
    let (t, o) = (json(&t), json(&o));
    for (a, b) in t.as_array().unwrap().iter().zip(o.as_array().unwrap()) {
        for k in 0..3 {
            assert_eq!(a["top"][k][0], b["top"][k][0]);
            let (x, y) = (
                a["top"][k][1].as_f64().unwrap(),
                b["top"][k][1].as_f64().unwrap(),
            );
            assert!((x - y).abs() < 1e-4, "{x} vs {y}");
        }
        for (x, y) in floats(&a["latent"]).iter().zip(floats(&b["latent"])) {
            assert!((x - y).abs() < 1e-4, "{x} vs {y}");
        }
    }
    // without the library: a clear error naming the variable and the fix
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_deepgalaxy"))
        .args([
            a("predict"),
            a("--model"),
            m.model.as_os_str(),
            a("--backend"),
            a("ort"),
        ])
        .arg(data.as_os_str())
        .env_remove("ORT_DYLIB_PATH")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("ORT_DYLIB_PATH is not set"),
        "{err}"
    );
    assert!(err.contains("pip install onnxruntime"), "{err}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_deepgalaxy"))
        .args([
            a("predict"),
            a("--model"),
            m.model.as_os_str(),
            a("--backend"),
            a("ort"),
        ])
        .arg(data.as_os_str())
        .env("ORT_DYLIB_PATH", tmp.path().join("libonnxruntime.so"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("is not a file"),
        "{err}"
    );
}

/// Counts of zero (and more interpolation steps than can be drawn) are refused when the
/// arguments are parsed, with the range, instead of being silently replaced or run out of
/// memory.
#[test]
fn zero_counts_and_huge_steps_are_refused_when_parsing() {
    let model = ["--model", "m.onnx"];
    let cases: [(&[&str], &str, &str); 9] = [
        (&["predict", "-k", "0", "x.png"], "0", "--k <K>"),
        (
            &["predict", "--batch-size", "0", "x.png"],
            "0",
            "--batch-size <BATCH_SIZE>",
        ),
        (
            &["predict", "--threads", "0", "x.png"],
            "0",
            "--threads <THREADS>",
        ),
        (
            &["predict", "--batch-size", "100000", "x.png"],
            "100000",
            "--batch-size <BATCH_SIZE>",
        ),
        (
            &["embed", "--threads", "0", "x.png"],
            "0",
            "--threads <THREADS>",
        ),
        (
            &[
                "index",
                "--batch-size",
                "0",
                "--data",
                "c.csv",
                "--output",
                "i.idx",
            ],
            "0",
            "--batch-size <BATCH_SIZE>",
        ),
        (
            &["search", "-k", "0", "--index", "i.idx", "x.png"],
            "0",
            "--k <K>",
        ),
        (
            &[
                "interpolate",
                "--steps",
                "100000",
                "--decoder",
                "d.onnx",
                "a.png",
                "b.png",
            ],
            "100000",
            "--steps <STEPS>",
        ),
        (
            &[
                "interpolate",
                "--steps",
                "1",
                "--decoder",
                "d.onnx",
                "a.png",
                "b.png",
            ],
            "1",
            "--steps <STEPS>",
        ),
    ];
    for (args, value, flag) in cases {
        let mut all: Vec<&OsStr> = vec![OsStr::new(args[0])];
        all.extend(model.iter().map(OsStr::new));
        all.extend(args[1..].iter().map(OsStr::new));
        let (ok, _, err) = run(&all);
        assert!(!ok, "{args:?}");
        assert!(
            err.contains(&format!("invalid value '{value}' for '{flag}'"))
                && err.contains("is not in"),
            "{args:?}: {err}"
        );
    }
    if !cfg!(feature = "full") {
        return; // `bench` is the full build's
    }
    let (ok, _, err) = run(&[
        OsStr::new("bench"),
        OsStr::new("predict"),
        OsStr::new("--model"),
        OsStr::new("m.onnx"),
        OsStr::new("--data"),
        OsStr::new("x"),
        OsStr::new("--images"),
        OsStr::new("0"),
    ]);
    assert!(
        !ok && err.contains("invalid value '0' for '--images <IMAGES>'"),
        "{err}"
    );
}
