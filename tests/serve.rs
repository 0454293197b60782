//! `deepgalaxy serve` through its HTTP API, on a free port, with a model and library built in
//! the test: the page and its assets are served; `/api/predict` gives what `predict` gives for
//! the same file; `/api/search` finds the uploaded library image itself first (distance 0,
//! SSIM 1) and places it where the library map has it; library images come back as PNG;
//! bad uploads and parameters are JSON errors with the right status while the server keeps
//! serving; and a concurrent burst gets identical answers.

mod common;

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use base64::Engine;
use common::{deepgalaxy, exported, http, tiny_catalog};

/// A running server, stopped when dropped.
struct Server {
    child: Child,
    address: String,
}

impl Server {
    fn start(model: &Path, index: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_deepgalaxy"))
            .args([
                OsStr::new("serve"),
                OsStr::new("--model"),
                model.as_os_str(),
            ])
            .args([OsStr::new("--index"), index.as_os_str()])
            .args(["--port", "0", "--max-upload-mb", "1", "--threads", "2"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the deepgalaxy binary runs");
        Server {
            address: http::served_address(&mut child),
            child,
        }
    }

    fn request(&self, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        http::request(&self.address, method, path, body)
    }

    fn json(&self, method: &str, path: &str, body: &[u8]) -> (u16, serde_json::Value) {
        let (status, bytes) = self.request(method, path, body);
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{path}: {e}: {}", String::from_utf8_lossy(&bytes)));
        (status, value)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn the_api_predicts_searches_refuses_bad_uploads_and_serves_a_burst() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_catalog(tmp.path(), 30, 3);
    let m = exported(&tmp.path().join("onnx"), 8, 5);
    let index = tmp.path().join("library.idx");
    let a = OsStr::new;
    common::index(&m.model, &data, &index);
    let server = Server::start(&m.model, &index);

    // the page and its assets
    let (status, page) = server.request("GET", "/", b"");
    let page = String::from_utf8(page).unwrap();
    assert!(
        status == 200 && page.contains("<canvas id=\"map\""),
        "{status} {page}"
    );
    for asset in ["/app.js", "/style.css"] {
        let (status, body) = server.request("GET", asset, b"");
        assert!(status == 200 && body.len() > 500, "{asset}: {status}");
    }
    let (status, model) = server.json("GET", "/api/model", b"");
    assert_eq!(status, 200);
    assert_eq!(floats(&model["class_t_myr"]).len(), 3);
    assert_eq!(model["library_size"], 30);

    // predict: what `predict` says for the same file
    let file = tmp.path().join("g4.png");
    let bytes = std::fs::read(&file).unwrap();
    let (status, p) = server.json("POST", "/api/predict?name=g4.png", &bytes);
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["name"], "g4.png");
    let probabilities = floats(&p["probabilities"]);
    assert_eq!(probabilities.len(), 3);
    assert!((probabilities.iter().sum::<f64>() - 1.0).abs() < 1e-5);
    let cli = tmp.path().join("cli.json");
    let (ok, _, err) = deepgalaxy(&[
        a("predict"),
        a("--model"),
        m.model.as_os_str(),
        a("--output"),
        cli.as_os_str(),
        file.as_os_str(),
    ]);
    assert!(ok, "predict: {err}");
    let cli: serde_json::Value = serde_json::from_slice(&std::fs::read(&cli).unwrap()).unwrap();
    let cli = &cli[0];
    let (t, sigma) = match cli["t_peri_myr"].as_f64() {
        Some(t) => (t, cli["t_peri_sigma_myr"].as_f64().unwrap()),
        None => (
            cli["t_myr"].as_f64().unwrap(),
            cli["t_myr_spread"].as_f64().unwrap(),
        ),
    };
    assert!(
        (p["time_myr"].as_f64().unwrap() - t).abs() < 1e-9,
        "{p} {cli}"
    );
    assert!(
        (p["sigma_myr"].as_f64().unwrap() - sigma).abs() < 1e-9,
        "{p} {cli}"
    );
    assert_eq!(p["top"][0][0], cli["top"][0][0]);
    // the preview is the image as the model saw it: 16x16
    let preview = p["preview_png"].as_str().unwrap();
    let preview = base64::engine::general_purpose::STANDARD
        .decode(preview.strip_prefix("data:image/png;base64,").unwrap())
        .unwrap();
    let decoded = image::load_from_memory(&preview).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (16, 16));

    // search: the library image itself first, at distance 0 with SSIM 1, placed on the map
    // where the library has it
    let (status, s) = server.json("POST", "/api/search?name=g4.png&k=5", &bytes);
    assert_eq!(status, 200, "{s}");
    let neighbours = s["recommendation"]["neighbours"].as_array().unwrap();
    assert_eq!(neighbours.len(), 5);
    assert_eq!(neighbours[0]["id"], "g4");
    assert!(neighbours[0]["distance"].as_f64().unwrap() < 1e-5, "{s}");
    assert!(
        (neighbours[0]["ssim"].as_f64().unwrap() - 1.0).abs() < 1e-9,
        "{s}"
    );
    let distances: Vec<f64> = neighbours
        .iter()
        .map(|n| n["distance"].as_f64().unwrap())
        .collect();
    assert!(distances.windows(2).all(|w| w[0] <= w[1]), "{distances:?}");
    let (status, map) = server.json("GET", "/api/library", b"");
    assert_eq!(status, 200);
    let points = map["points"].as_array().unwrap();
    assert_eq!(points.len(), 30);
    let g4 = points.iter().find(|p| p["id"] == "g4").unwrap();
    for (q, l) in floats(&s["map_xy"]).iter().zip(floats(&g4["xy"])) {
        assert!((q - l).abs() < 1e-4, "{s} {g4}");
    }
    // library images: the same preprocessing, so the same PNG as the upload's preview
    let image_url = neighbours[0]["image"].as_str().unwrap();
    let (status, png) = server.request("GET", image_url, b"");
    assert_eq!(status, 200);
    assert_eq!(png, preview);
    let (status, entry) = server.json("GET", &format!("/api/library/{}", g4["index"]), b"");
    assert_eq!(status, 200);
    assert_eq!(entry["id"], "g4");
    assert!(
        entry["file"].as_str().unwrap().ends_with("g4.png"),
        "{entry}"
    );

    // bad requests: JSON errors with their status
    let big = vec![0u8; 3 << 19];
    let cases: [(&str, &str, &[u8], u16, &str); 8] = [
        (
            "POST",
            "/api/predict?name=notes.txt",
            b"hello",
            400,
            "notes.txt",
        ),
        ("POST", "/api/predict?name=empty.png", b"", 400, "empty"),
        (
            "POST",
            "/api/predict?name=big.fits",
            &big,
            413,
            "larger than the server accepts",
        ),
        ("POST", "/api/search?name=g4.png&k=0", &bytes, 400, "k = 0"),
        (
            "POST",
            "/api/search?name=g4.png&k=x",
            &bytes,
            400,
            "bad parameters",
        ),
        ("GET", "/api/library/30/image", b"", 404, "not an entry"),
        ("GET", "/api/library/x", b"", 400, "bad library entry"),
        ("GET", "/nowhere", b"", 404, "no such page"),
    ];
    for (method, path, body, want, says) in cases {
        let (status, e) = server.json(method, path, body);
        let message = e["error"].as_str().unwrap_or_default();
        assert!(
            status == want && message.contains(says),
            "{path}: {status} {e}"
        );
    }

    // a concurrent burst: every answer the same as alone
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    (0..4)
                        .map(|_| server.json("POST", "/api/predict?name=g4.png", &bytes))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            for (status, q) in h.join().unwrap() {
                assert_eq!(status, 200);
                assert_eq!(q["probabilities"], p["probabilities"]);
            }
        }
    });
    let (status, _) = server.json("GET", "/api/model", b"");
    assert_eq!(status, 200, "the server keeps serving");
}

/// A server is refused a library it cannot serve, before it listens: images outside the
/// index's folder unless allowed, and an index of another model.
#[test]
fn serve_refuses_libraries_it_cannot_serve() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_catalog(tmp.path(), 12, 3);
    let m = exported(&tmp.path().join("onnx"), 8, 5);
    let other = exported(&tmp.path().join("other"), 8, 6);
    let index = tmp.path().join("lib").join("library.idx");
    let a = OsStr::new;
    common::index(&m.model, &data, &index);
    let serve = |model: &Path, extra: &[&str]| {
        let mut args = vec![a("serve"), a("--model"), model.as_os_str()];
        args.extend([a("--index"), index.as_os_str(), a("--port"), a("0")]);
        args.extend(extra.iter().map(OsStr::new));
        deepgalaxy(&args)
    };
    let (ok, _, err) = serve(&m.model, &[]);
    assert!(
        !ok && err.contains("outside the index's folder")
            && err.contains("--allow-paths-outside-index"),
        "{err}"
    );
    let (ok, _, err) = serve(&other.model, &["--allow-paths-outside-index"]);
    assert!(!ok && err.contains("library.idx"), "{err}");
}

/// Bad flags are refused when parsing, naming the flag and its range, before anything is
/// opened; a missing library is an error naming the file.
#[test]
fn serve_refuses_bad_flags_and_a_missing_library() {
    let cases: [(&[&str], &str); 4] = [
        (
            &["--max-upload-mb", "0"],
            "invalid value '0' for '--max-upload-mb <MAX_UPLOAD_MB>'",
        ),
        (
            &["--max-upload-mb", "2000"],
            "invalid value '2000' for '--max-upload-mb <MAX_UPLOAD_MB>'",
        ),
        (
            &["--port", "70000"],
            "invalid value '70000' for '--port <PORT>'",
        ),
        (
            &["--host", "localhost:1"],
            "invalid value 'localhost:1' for '--host <HOST>'",
        ),
    ];
    for (flags, says) in cases {
        let mut args = vec!["serve", "--index", "library.idx"];
        args.extend(flags);
        let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        let (ok, _, err) = deepgalaxy(&args);
        assert!(!ok && err.contains(says), "{flags:?}: {err}");
    }
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nowhere.idx");
    let (ok, _, err) = deepgalaxy(&[
        OsStr::new("serve"),
        OsStr::new("--index"),
        missing.as_os_str(),
    ]);
    assert!(!ok && err.contains("nowhere.idx"), "{err}");
}
