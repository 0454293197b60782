//! `deepgalaxy interpolate` (the paper's Fig. 5): embed two images, decode evenly spaced points
//! on the line between their latents, and draw the sequence as a PNG.

use std::path::{Path, PathBuf};

use anyhow::Context;
use deepgalaxy_core::{Image, SampleType};
use deepgalaxy_runtime::drawing::gallery::{write_galleries, Tile};
use deepgalaxy_runtime::inference::model::Model;

use crate::run_args::ModelArgs;

/// Most points `--steps` accepts: a row of 64 tiles is already wider than a screen, and the
/// decoder's output for them is held at once (100000 steps made tract ask for 8 GB).
pub const MAX_STEPS: u64 = 64;

/// Decode images along the line between two latents.
#[derive(Debug, clap::Args)]
pub struct InterpolateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The decoder (decoder.onnx: latent -> image) exported with the model.
    #[arg(long)]
    pub decoder: PathBuf,
    /// The first image.
    pub a: PathBuf,
    /// The second image.
    pub b: PathBuf,
    /// Decoded points from A's latent to B's, both ends included: 2 to 64 (all are decoded
    /// in one run and drawn side by side).
    #[arg(long, default_value_t = 8, value_parser = crate::run_args::in_range(2, MAX_STEPS))]
    pub steps: usize,
    /// The PNG to write.
    #[arg(long, default_value = "interpolation.png")]
    pub output: PathBuf,
}

/// The preprocessed image and latent of `path` under `model`.
fn embed(model: &Model, path: &Path) -> anyhow::Result<(Image, Vec<f32>)> {
    let image = deepgalaxy_core::image::load(path)?;
    let x = model.prepare(&image, path)?;
    let out = model.run(x.clone(), 1)?;
    let latent = out.get("latent")?.row(0).to_vec();
    let shape = model.input_shape();
    let input = Image::new(shape[0], shape[1], shape[2], x, SampleType::F32)?;
    Ok((input, latent))
}

/// Runs `interpolate`.
pub fn run(args: &InterpolateArgs) -> anyhow::Result<()> {
    let model = args.model.open()?;
    let decoder = args.model.run.open(&args.decoder)?;
    if decoder.card().training_digest != model.card().training_digest
        || decoder.card().model_spec != model.card().model_spec
    {
        anyhow::bail!(
            "{} and {} come from different trainings; export both from one checkpoint",
            args.decoder.display(),
            args.model.path().display()
        );
    }
    let (img_a, za) = embed(&model, &args.a)?;
    let (img_b, zb) = embed(&model, &args.b)?;
    if decoder.input_shape() != [za.len()] {
        anyhow::bail!(
            "{} takes latents of shape {:?}, the model gives {}",
            args.decoder.display(),
            decoder.input_shape(),
            za.len()
        );
    }
    let n = args.steps;
    let alphas: Vec<f32> = (0..n).map(|i| i as f32 / (n - 1) as f32).collect();
    let z: Vec<f32> = alphas
        .iter()
        .flat_map(|&a| za.iter().zip(&zb).map(move |(x, y)| (1.0 - a) * x + a * y))
        .collect();
    let out = decoder.run(z, n)?;
    let rec = out.get("reconstruction")?;
    let (c, h, w) = (rec.shape[1], rec.shape[2], rec.shape[3]);
    let decoded: Vec<Image> = (0..n)
        .map(|i| Image::new(c, h, w, rec.row(i).to_vec(), SampleType::F32))
        .collect::<Result<_, _>>()
        .context("decoder output")?;
    let names: Vec<String> = alphas
        .iter()
        .map(|a| format!("decoded, α = {a:.2}"))
        .collect();
    let (name_a, name_b) = (
        format!("A: {}", args.a.display()),
        format!("B: {}", args.b.display()),
    );
    let tile = |image, name| Tile {
        image,
        name,
        label: None,
        t_myr: None,
        t_spread: None,
        distance: None,
        ssim: None,
    };
    let tiles: Vec<Tile<'_>> = decoded
        .iter()
        .zip(&names)
        .map(|(image, name)| tile(image, name.as_str()))
        .chain([tile(&img_b, name_b.as_str())])
        .collect();
    let title = format!("Latent interpolation from A to B in {n} steps");
    write_galleries(
        &args.output,
        &[(title, tile(&img_a, name_a.as_str()), tiles)],
    )?;
    println!("wrote {}", args.output.display());
    Ok(())
}
