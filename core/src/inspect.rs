//! What a file holds, for `deepgalaxy inspect`: images (PNG/JPEG/TIFF/FITS), catalogs and
//! HDF5 datasets, as a serialisable [`Summary`] the command prints as text or JSON.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::catalog::Catalog;
use crate::image::Image;
use crate::Result;

/// Statistics of an image's finite values.
#[derive(Debug, Clone, Serialize)]
pub struct ImageSummary {
    /// Planes (1 grey, 3 RGB, or a FITS cube's depth).
    pub channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// Stored type (`u8`, `u16`, `fits bitpix -32`, ...).
    pub dtype: String,
    /// Smallest finite value (`None` if every pixel is missing).
    pub min: Option<f32>,
    /// Largest finite value.
    pub max: Option<f32>,
    /// Mean of the finite values.
    pub mean: Option<f64>,
    /// NaN or BLANK pixels.
    pub missing: usize,
    /// For FITS: every HDU with its kind and axes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hdus: Option<Vec<crate::fits::HduInfo>>,
}

/// A catalog's content.
#[derive(Debug, Clone, Serialize)]
pub struct CatalogSummary {
    /// Rows.
    pub records: usize,
    /// Columns other than the known ones.
    pub extra_columns: Vec<String>,
    /// Distinct simulations.
    pub simulations: Vec<String>,
    /// Images per class (label -> count).
    pub classes: BTreeMap<u32, usize>,
    /// Smallest and largest `t_myr`.
    pub t_myr_range: Option<(f64, f64)>,
    /// Distinct cameras.
    pub cameras: usize,
}

/// An HDF5 dataset's content.
#[derive(Debug, Clone, Serialize)]
pub struct Hdf5Summary {
    /// Records (images).
    pub records: usize,
    /// Groups (simulations).
    pub simulations: Vec<String>,
    /// Images per class.
    pub classes: BTreeMap<u32, usize>,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// Stored type of the images.
    pub dtype: String,
    /// Smallest and largest `t_myr`.
    pub t_myr_range: Option<(f64, f64)>,
    /// Distinct cameras.
    pub cameras: usize,
}

/// What [`inspect`] found.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Summary {
    /// An image or FITS file.
    Image(ImageSummary),
    /// A catalog.
    Catalog(CatalogSummary),
    /// An HDF5 dataset in the DeepGalaxy layout.
    Hdf5(Hdf5Summary),
}

/// The kind of file, decided by its extension.
fn kind_of(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "csv" => "catalog",
        "h5" | "hdf5" | "he5" => "hdf5",
        _ => "image",
    }
}

/// Summarises a file: catalog (`.csv`), HDF5 (`.h5`, `.hdf5`) or image (anything else).
pub fn inspect(path: &Path) -> Result<Summary> {
    match kind_of(path) {
        "catalog" => Ok(Summary::Catalog(summarise_catalog(&Catalog::read(path)?))),
        "hdf5" => summarise_hdf5(path),
        _ => {
            let image = crate::image::load(path)?;
            let hdus = if matches!(image.sample, crate::SampleType::Fits { .. }) {
                Some(crate::fits::list_hdus(path)?)
            } else {
                None
            };
            Ok(Summary::Image(summarise_image(&image, hdus)))
        }
    }
}

fn summarise_image(image: &Image, hdus: Option<Vec<crate::fits::HduInfo>>) -> ImageSummary {
    // one pass without copying the samples: an image may be as large as the limits allow
    let (sum, finite) = image
        .data
        .iter()
        .filter(|v| v.is_finite())
        .fold((0f64, 0usize), |(s, n), &v| (s + v as f64, n + 1));
    let range = image.finite_range();
    ImageSummary {
        channels: image.channels,
        height: image.height,
        width: image.width,
        dtype: image.sample.name(),
        min: range.map(|r| r.0),
        max: range.map(|r| r.1),
        mean: (finite > 0).then(|| sum / finite as f64),
        missing: image.data.len() - finite,
        hdus,
    }
}

fn count_classes(labels: impl Iterator<Item = u32>) -> BTreeMap<u32, usize> {
    let mut m = BTreeMap::new();
    for l in labels {
        *m.entry(l).or_insert(0) += 1;
    }
    m
}

fn range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

fn summarise_catalog(cat: &Catalog) -> CatalogSummary {
    let mut extra: Vec<String> = cat
        .records
        .iter()
        .flat_map(|r| r.extra.keys().cloned())
        .collect();
    extra.sort();
    extra.dedup();
    let mut cams: Vec<u32> = cat.records.iter().filter_map(|r| r.camera).collect();
    cams.sort_unstable();
    cams.dedup();
    CatalogSummary {
        records: cat.records.len(),
        extra_columns: extra,
        simulations: cat.simulations(),
        classes: count_classes(cat.records.iter().filter_map(|r| r.label)),
        t_myr_range: range(cat.records.iter().filter_map(|r| r.t_myr)),
        cameras: cams.len(),
    }
}

#[cfg(feature = "hdf5")]
fn summarise_hdf5(path: &Path) -> Result<Summary> {
    let ds = crate::hdf5::H5Dataset::open(path)?;
    let mut sims: Vec<String> = ds.records.iter().map(|r| r.simulation.clone()).collect();
    sims.dedup();
    let mut cams: Vec<u32> = ds.records.iter().map(|r| r.camera).collect();
    cams.sort_unstable();
    cams.dedup();
    Ok(Summary::Hdf5(Hdf5Summary {
        records: ds.records.len(),
        simulations: sims,
        classes: count_classes(ds.records.iter().map(|r| r.label)),
        height: ds.height,
        width: ds.width,
        dtype: ds.dtype.clone(),
        t_myr_range: range(ds.records.iter().map(|r| r.t_myr)),
        cameras: cams.len(),
    }))
}

#[cfg(not(feature = "hdf5"))]
fn summarise_hdf5(path: &Path) -> Result<Summary> {
    Err(crate::Error::invalid(
        path,
        "HDF5 support is not built in: rebuild with `--features hdf5` (needs Debian libhdf5-dev)",
    ))
}

impl Summary {
    /// A short human-readable description, a line per fact.
    pub fn to_text(&self) -> String {
        let classes = |c: &BTreeMap<u32, usize>| match (c.keys().next(), c.keys().last()) {
            (Some(lo), Some(hi)) => format!(
                "{} classes ({lo}..={hi}), {}..={} images per class",
                c.len(),
                c.values().min().unwrap_or(&0),
                c.values().max().unwrap_or(&0)
            ),
            _ => "no labels".into(),
        };
        let t = |r: &Option<(f64, f64)>| match r {
            Some((a, b)) => format!("{a:.1}..{b:.1} Myr"),
            None => "none".into(),
        };
        match self {
            Summary::Image(s) => {
                let mut out = format!(
                    "image: {} x {} x {} ({} channel(s) x height x width), {}\nvalues: min {} max {} mean {}\nmissing (NaN/BLANK): {}\n",
                    s.channels, s.height, s.width, s.channels, s.dtype,
                    opt(s.min), opt(s.max), opt(s.mean), s.missing
                );
                for h in s.hdus.iter().flatten() {
                    out += &format!("HDU {}: {} naxis {:?} bitpix {}\n", h.index, h.kind, h.naxis, h.bitpix);
                }
                out
            }
            Summary::Catalog(s) => format!(
                "catalog: {} records, {} simulation(s), {} camera(s)\nlabels: {}\ntime: {}\nextra columns: {}\n",
                s.records, s.simulations.len(), s.cameras, classes(&s.classes), t(&s.t_myr_range),
                if s.extra_columns.is_empty() { "none".into() } else { s.extra_columns.join(", ") }
            ),
            Summary::Hdf5(s) => format!(
                "hdf5 (DeepGalaxy layout): {} images of {} x {} ({}), {} simulation(s), {} camera(s)\nlabels: {}\ntime: {}\n",
                s.records, s.height, s.width, s.dtype, s.simulations.len(), s.cameras,
                classes(&s.classes), t(&s.t_myr_range)
            ),
        }
    }
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|v| format!("{v:.6}"))
        .unwrap_or_else(|| "none".into())
}
