//! What `deepgalaxy serve` answers, without the HTTP: an uploaded image's predicted time with
//! its class probabilities, its nearest simulated mergers with SSIM, the library's 2-D latent
//! map (PCA, so a query can be placed on it: t-SNE has no transform for new points) and
//! library images as PNG. Kept apart from the server so that it is tested directly and the
//! server only moves bytes; every method takes `&self`, so requests run concurrently.

use std::path::{Path, PathBuf};

use deepgalaxy_core::time::TimeTarget;
use deepgalaxy_core::{preprocess, Error, Image};
use serde::Serialize;

use crate::analysis::projection::{pca_2d, Pca};
use crate::inference::inputs::InputItem;
use crate::inference::model::Model;
use crate::inference::predict::Prediction;
use crate::library::index::LatentIndex;
use crate::library::recommend::{preprocessed, Library, Recommendation};
use crate::library::search::Strategy;
use crate::Result;

/// One uploaded image's answer.
#[derive(Debug, Clone, Serialize)]
pub struct Predicted {
    /// The upload's name (as the client gave it).
    pub name: String,
    /// What the time is measured from (`t-peri`: first pericentre; `snapshot`: the start).
    pub target: TimeTarget,
    /// The expected time in Myr under the predicted class distribution.
    pub time_myr: f64,
    /// Its spread (one sigma) in Myr.
    pub sigma_myr: f64,
    /// The probability of every class, in class order.
    pub probabilities: Vec<f32>,
    /// The time each class stands for, in Myr (the card's).
    pub class_t_myr: Vec<f64>,
    /// The most probable classes with their probabilities, most probable first.
    pub top: Vec<(u32, f32)>,
    /// The image as the model saw it (after the card's preprocessing), as a PNG.
    #[serde(skip)]
    pub preview: Vec<u8>,
}

/// One uploaded image's nearest simulated mergers.
#[derive(Debug, Clone, Serialize)]
pub struct Searched {
    /// The upload's name.
    pub name: String,
    /// The query's place on the library's latent map ([`Explorer::map`]).
    pub map_xy: [f64; 2],
    /// The neighbours (nearest first, with SSIM) and the kNN time estimate.
    pub recommendation: Recommendation,
}

/// One library entry on the latent map.
#[derive(Debug, Clone, Serialize)]
pub struct MapPoint {
    /// Position in the index.
    pub index: usize,
    /// The entry's id.
    pub id: String,
    /// Its simulation, when known.
    pub simulation: Option<String>,
    /// Its class, when known.
    pub label: Option<u32>,
    /// Its time under the model's target, when known.
    pub time_myr: Option<f64>,
    /// First and second principal components of its latent.
    pub xy: [f64; 2],
}

/// The library's latent map.
#[derive(Debug, Clone, Serialize)]
pub struct LatentMap {
    /// How the map was made.
    pub projection: &'static str,
    /// Share of the latent variance along each of the two axes.
    pub explained_variance_ratio: [f64; 2],
    /// What the entries' times are measured from.
    pub target: TimeTarget,
    /// Every entry, in index order.
    pub points: Vec<MapPoint>,
}

/// A model and a latent library, ready to answer.
pub struct Explorer<'a> {
    model: Model,
    library: Library<'a>,
    index_path: &'a Path,
    pca: Pca,
    map: LatentMap,
}

impl<'a> Explorer<'a> {
    /// `model` with the library `index` stored at `index_path`. The index must have been
    /// embedded by this model (or another file of it) and hold at least two entries (for the
    /// map).
    pub fn new(model: Model, index: &'a LatentIndex, index_path: &'a Path) -> Result<Self> {
        index
            .model()
            .compatibility(&model.identity(), index_path, model.path())?;
        let target = model.card().target;
        let (pca, xy) = pca_2d(index.vectors(), index.dim())?;
        let ratio = &pca.explained_variance_ratio;
        let points = index
            .entries()
            .iter()
            .zip(xy)
            .enumerate()
            .map(|(i, (e, xy))| MapPoint {
                index: i,
                id: e.id_str.clone(),
                simulation: e.simulation.clone(),
                label: e.label,
                time_myr: e.time(target),
                xy,
            })
            .collect();
        let map = LatentMap {
            projection: "pca",
            explained_variance_ratio: [ratio[0], ratio[1]],
            target,
            points,
        };
        Ok(Explorer {
            library: Library::new(index, index_path, Strategy::Auto, target)?,
            model,
            index_path,
            pca,
            map,
        })
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The library's latent map.
    pub fn map(&self) -> &LatentMap {
        &self.map
    }

    /// Decodes an upload (PNG, JPEG, TIFF or FITS, told apart by their first bytes),
    /// preprocesses it once with the card's preprocessing (the index's too: `new` checked they
    /// are the same) and runs the model on it: the output called `output`, and the image as
    /// the model saw it (the preview, and the query of the SSIM).
    fn run(&self, name: &str, bytes: &[u8], output: &str) -> Result<(Vec<f32>, Image)> {
        let path = Path::new(name);
        let image = deepgalaxy_core::image::decode(path, bytes)?;
        let seen = preprocess(&image, &self.model.card().preprocess, path)?;
        let out = self.model.run(seen.data.clone(), 1)?;
        Ok((out.get(output)?.row(0).to_vec(), seen))
    }

    /// The predicted time of the image in `bytes` (`name` names it in messages), with every
    /// class probability and the image as the model saw it.
    pub fn predict(&self, name: &str, bytes: &[u8]) -> Result<Predicted> {
        let (probabilities, seen) = self.run(name, bytes, "probabilities")?;
        let card = self.model.card();
        let item = InputItem {
            id: name.to_string(),
            path: PathBuf::from(name),
            label: None,
            t_myr: None,
            t_peri_myr: None,
            simulation: None,
        };
        let p = Prediction::new(&item, Ok((&probabilities, None)), card, 5, false);
        let (time_myr, sigma_myr) = p.time().ok_or_else(|| {
            Error::setting(
                "model",
                format!(
                    "{}: the card's class times do not match its {} probabilities",
                    self.model.path().display(),
                    probabilities.len()
                ),
            )
        })?;
        Ok(Predicted {
            name: name.to_string(),
            target: card.target,
            time_myr,
            sigma_myr,
            class_t_myr: card.class_t_myr.clone(),
            top: p.top,
            probabilities,
            preview: png(&seen)?,
        })
    }

    /// The `k` library entries nearest to the image in `bytes`, with SSIM against it, and its
    /// place on the map. An upload is never a library simulation, so none is skipped.
    pub fn search(&self, name: &str, bytes: &[u8], k: usize) -> Result<Searched> {
        let (latent, query) = self.run(name, bytes, "latent")?;
        let recommendation = self.library.recommend(&query, &latent, k, None)?;
        let xy = self.pca.transform(&latent)?;
        Ok(Searched {
            name: name.to_string(),
            map_xy: [xy[0], xy[1]],
            recommendation,
        })
    }

    /// The file of library entry `i`, or an error when there is no such entry.
    pub fn entry_file(&self, i: usize) -> Result<PathBuf> {
        let n = self.library.index().len();
        if i >= n {
            return Err(Error::setting(
                "library entry",
                format!("{i} is not an entry of the library (it has {n})"),
            )
            .into());
        }
        Ok(self.library.index().resolve_file(self.index_path, i))
    }

    /// Library entry `i`'s image as the model saw it, as a PNG.
    pub fn entry_png(&self, i: usize) -> Result<Vec<u8>> {
        let file = self.entry_file(i)?;
        png(&preprocessed(self.library.index(), &file)?)
    }
}

/// A preprocessed image (values in [0, 1]; grey, or its first three planes as RGB) as an 8-bit
/// PNG.
pub fn png(image: &Image) -> Result<Vec<u8>> {
    let (w, h) = (image.width as u32, image.height as u32);
    let byte = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    let n = image.width * image.height;
    let buffer: image::DynamicImage = if image.channels >= 3 {
        let mut rgb = Vec::with_capacity(3 * n);
        for p in 0..n {
            rgb.extend((0..3).map(|c| byte(image.data[c * n + p])));
        }
        image::RgbImage::from_raw(w, h, rgb).map(Into::into)
    } else {
        image::GrayImage::from_raw(w, h, image.plane(0).iter().map(|&v| byte(v)).collect())
            .map(Into::into)
    }
    .ok_or_else(|| Error::setting("image shape", format!("{w}x{h} does not match its samples")))?;
    let mut out = std::io::Cursor::new(Vec::new());
    buffer
        .write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| Error::setting("PNG", e.to_string()))?;
    Ok(out.into_inner())
}
