//! Helpers shared by the end-to-end tests.
#![allow(dead_code)] // each test binary uses a different subset

pub mod http;

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{Device, Tensor};
use deepgalaxy_core::card::{ModelCard, CARD_VERSION};
use deepgalaxy_core::Preprocess;
use deepgalaxy_export::onnx::{export, write, Target};
use deepgalaxy_models::exec::{forward, Mode};
use deepgalaxy_models::{Backbone, Graph, ModelSpec, Weights};
use rand::SeedableRng;

/// The repository root.
pub fn root() -> PathBuf {
    deepgalaxy_core::source_dir(env!("CARGO_MANIFEST_DIR"))
}

/// The Python interpreter of the peer-check venv, from `DEEPGALAXY_PYTHON`. Under the `peers`
/// feature a missing interpreter is a failure, never a skip.
pub fn python() -> PathBuf {
    let py = std::env::var_os("DEEPGALAXY_PYTHON").unwrap_or_else(|| {
        panic!(
            "the `peers` feature needs DEEPGALAXY_PYTHON set to a Python with onnx, onnxruntime, \
             numpy, astropy, scikit-image and h5py (.ci/run creates one)"
        )
    });
    PathBuf::from(py)
}

/// Runs a Python peer script with arguments and returns its stdout; panics with its stderr
/// if it fails.
pub fn run_python(script: &Path, args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(python())
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", python().display()));
    assert!(
        out.status.success(),
        "{} failed:\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs the `deepgalaxy` binary; returns (success, stdout, stderr).
pub fn deepgalaxy(args: &[&std::ffi::OsStr]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_deepgalaxy"))
        .args(args)
        .output()
        .expect("the deepgalaxy binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `deepgalaxy simulate` of one small merger (1,000 particles, 16 px) into `out` as FITS
/// images, in a few seconds; returns its catalog.
pub fn simulate_fits(out: &Path) -> PathBuf {
    let a = std::ffi::OsStr::new;
    let (ok, _, err) = deepgalaxy(&[
        a("simulate"),
        a("--out"),
        out.as_os_str(),
        a("--grid"),
        a("small"),
        a("--mergers"),
        a("1"),
        a("--particles"),
        a("1000"),
        a("--size"),
        a("16"),
        a("--format"),
        a("fits"),
    ]);
    assert!(ok, "simulate: {err}");
    out.join("catalog.csv")
}

/// `deepgalaxy index --model MODEL --data DATA --output OUTPUT`, asserting that it succeeds;
/// returns its stderr.
pub fn index(model: &Path, data: &Path, output: &Path) -> String {
    let a = std::ffi::OsStr::new;
    let (ok, _, err) = deepgalaxy(&[
        a("index"),
        a("--model"),
        model.as_os_str(),
        a("--data"),
        data.as_os_str(),
        a("--output"),
        output.as_os_str(),
    ]);
    assert!(ok, "index: {err}");
    err
}

/// Writes a 16-bit grey PNG whose pixel (x, y) is `f(x, y)`.
pub fn write_png16(path: &Path, w: u32, h: u32, f: impl Fn(u32, u32) -> u16) {
    let buf =
        image::ImageBuffer::<image::Luma<u16>, _>::from_fn(w, h, |x, y| image::Luma([f(x, y)]));
    buf.save(path).unwrap();
}

/// A catalog of `n` 16x16 images of `classes` classes (brightness ramps scaled by the class),
/// spread over 3 simulations, with `t_myr = 5 * label + 2`.
pub fn tiny_catalog(dir: &Path, n: u32, classes: u32) -> PathBuf {
    let mut csv = String::from("id_str,file_loc,simulation,label,t_myr\n");
    for i in 0..n {
        let label = i % classes;
        let name = format!("g{i}.png");
        write_png16(&dir.join(&name), 16, 16, |x, y| {
            ((x + y) * 500 * (label + 1) + i) as u16
        });
        csv += &format!("g{i},{name},sim{},{label},{}\n", i % 3, 5 * label + 2);
    }
    let data = dir.join("catalog.csv");
    std::fs::write(&data, csv).unwrap();
    data
}

/// Side of the images of [`exported`] models.
pub const SIZE: u32 = 16;

/// A simple model with `latent` latents, exported as model.onnx and decoder.onnx in `dir`.
pub struct Exported {
    /// model.onnx.
    pub model: PathBuf,
    /// decoder.onnx.
    pub decoder: PathBuf,
    /// The graph the files came from.
    pub graph: Graph,
    /// Its weights (batch-norm statistics from one training-mode pass).
    pub weights: Weights,
    /// The preprocessing in the card.
    pub preprocess: Preprocess,
}

/// Builds, initialises (seeded) and exports the model of [`Exported`].
pub fn exported(dir: &Path, latent: usize, seed: u64) -> Exported {
    let preprocess = Preprocess {
        size: SIZE,
        ..Preprocess::default()
    };
    let mut spec = ModelSpec::new(
        Backbone::Simple {
            widths: vec![8, 16],
            depth: 1,
        },
        preprocess.clone(),
        3,
    );
    spec.latent_dim = latent;
    let graph = Graph::build(&spec).unwrap();
    let weights = Weights::init(&graph, seed, &Device::Cpu).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let x = Tensor::rand(
        0f32,
        1f32,
        (8, 1, SIZE as usize, SIZE as usize),
        &Device::Cpu,
    )
    .unwrap();
    let o = graph.outputs;
    forward(
        &graph,
        &weights,
        &x,
        &[o.logits, o.vae_reconstruction],
        Mode::Train(&mut rng),
    )
    .unwrap();
    let card = ModelCard {
        card_version: CARD_VERSION,
        tool_version: "test".into(),
        model_spec: serde_json::to_value(&spec).unwrap(),
        preprocess: preprocess.clone(),
        num_classes: 3,
        class_t_myr: vec![2.0, 7.0, 12.0],
        target: Default::default(),
        time_sigma_scale: None,
        simulations: None,
        latent_dim: Some(latent),
        training_digest: Some(format!("digest{seed}")),
        split: Some("by-simulation".into()),
        metrics: Default::default(),
        precision: "fp32".into(),
        quantization: None,
        test: None,
    };
    std::fs::create_dir_all(dir).unwrap();
    let model = dir.join("model.onnx");
    let decoder = dir.join("decoder.onnx");
    write(
        &model,
        &export(&graph, &weights, &card, Target::Model).unwrap(),
    )
    .unwrap();
    write(
        &decoder,
        &export(&graph, &weights, &card, Target::Decoder).unwrap(),
    )
    .unwrap();
    Exported {
        model,
        decoder,
        graph,
        weights,
        preprocess,
    }
}
