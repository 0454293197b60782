//! Training data in memory: every image decoded and preprocessed once (through the core
//! preprocessing contract), then kept as 8- or 16-bit values, and turned into batches.

use std::path::{Path, PathBuf};

use crate::Result;
use candle_core::{Device, Tensor};
use deepgalaxy_core::pixels::{load_images, Pixels};
use deepgalaxy_core::preprocess::Preprocess;
use deepgalaxy_core::time::{t_peri_bins, TimeTarget, T_PERI_BIN_MYR};
use deepgalaxy_core::{Catalog, Error};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::augment::Augment;

/// One labeled image.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Catalog `id_str` (or HDF5 group/camera/snapshot).
    pub id: String,
    /// Simulation it came from (for the by-simulation split).
    pub simulation: Option<String>,
    /// Timescale class under the dataset's target.
    pub label: u32,
    /// True time under the dataset's target, Myr, when known.
    pub time_myr: Option<f64>,
    /// Preprocessed pixels.
    pub pixels: Pixels,
}

/// The largest class count a dataset may have: labels run from 0 to `MAX_CLASSES - 1`. The
/// paper has 71; a larger label is almost always a wrong column or a typo, and the largest
/// label sets the size of the classifier.
pub const MAX_CLASSES: usize = 1024;

/// A labeled dataset in memory.
pub struct Dataset {
    /// The images.
    pub samples: Vec<Sample>,
    /// How they were prepared.
    pub preprocess: Preprocess,
    /// The catalog or HDF5 file they came from.
    pub source: PathBuf,
    /// Number of classes (largest label + 1).
    pub num_classes: usize,
    /// Time in Myr of each class: the mean true time of its images, interpolated for classes
    /// with no image.
    pub class_t_myr: Vec<f64>,
    /// What the times are measured from.
    pub target: TimeTarget,
}

impl Dataset {
    /// Loads a catalog (`.csv`) or an original-layout HDF5 file (`.h5`, `.hdf5`; feature
    /// `hdf5`), decoding and preprocessing in parallel, with classes for `target` (`None`: the
    /// catalog's default, see [`TimeTarget::default_for`]). `progress(done, total)` is called
    /// as images finish.
    pub fn load(
        path: &Path,
        preprocess_spec: &Preprocess,
        target: Option<TimeTarget>,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Dataset> {
        preprocess_spec.validate()?;
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        let (samples, target) = match ext.as_str() {
            "h5" | "hdf5" => match target {
                Some(TimeTarget::TPeri) => {
                    return Err(Error::invalid(
                        path,
                        "the original HDF5 layout has no t_peri_myr: train on it with --target snapshot",
                    ).into())
                }
                _ => (
                    load_hdf5(path, preprocess_spec, progress)?,
                    TimeTarget::Snapshot,
                ),
            },
            _ => load_catalog(path, preprocess_spec, target, progress)?,
        };
        Dataset::from_samples(samples, preprocess_spec.clone(), path, target)
    }

    /// A dataset from samples already in memory, whose labels and times are for `target`
    /// (checks there are at least two classes).
    pub fn from_samples(
        samples: Vec<Sample>,
        preprocess: Preprocess,
        source: &Path,
        target: TimeTarget,
    ) -> Result<Dataset> {
        let mut labels: Vec<u32> = samples.iter().map(|s| s.label).collect();
        labels.sort_unstable();
        labels.dedup();
        if labels.len() < 2 {
            return Err(Error::invalid(
                source,
                format!(
                    "{} distinct label(s): a classifier needs at least two classes",
                    labels.len()
                ),
            )
            .into());
        }
        if let Some(s) = samples.iter().find(|s| s.label as usize >= MAX_CLASSES) {
            return Err(Error::invalid(
                source,
                format!(
                    "`{}` has label {}: labels run from 0 to {} (at most {MAX_CLASSES} classes)",
                    s.id,
                    s.label,
                    MAX_CLASSES - 1
                ),
            )
            .into());
        }
        let num_classes = *labels.last().unwrap_or(&0) as usize + 1;
        let class_t_myr = class_times(&samples, num_classes);
        Ok(Dataset {
            samples,
            preprocess,
            source: source.to_path_buf(),
            num_classes,
            class_t_myr,
            target,
        })
    }

    /// Values per image (channels x size x size).
    pub fn image_len(&self) -> usize {
        (self.preprocess.channels * self.preprocess.size * self.preprocess.size) as usize
    }

    /// The batch of `indices` as (images N x C x S x S, labels N), augmented when asked.
    pub fn batch(
        &self,
        indices: &[usize],
        augment: Option<(&Augment, &mut ChaCha8Rng)>,
        device: &Device,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let (c, s) = (
            self.preprocess.channels as usize,
            self.preprocess.size as usize,
        );
        let mut data = Vec::with_capacity(indices.len() * self.image_len());
        match augment {
            None => {
                for &i in indices {
                    self.samples[i].pixels.extend_f32(&mut data);
                }
            }
            Some((aug, rng)) => {
                let mut one = Vec::with_capacity(self.image_len());
                for &i in indices {
                    one.clear();
                    self.samples[i].pixels.extend_f32(&mut one);
                    aug.apply(&mut one, c, s, rng);
                    data.extend_from_slice(&one);
                }
            }
        }
        let labels: Vec<u32> = indices.iter().map(|&i| self.samples[i].label).collect();
        Ok((
            Tensor::from_vec(data, (indices.len(), c, s, s), device)?,
            Tensor::from_vec(labels, indices.len(), device)?,
        ))
    }
}

/// Mean time per class; classes without images are interpolated linearly between the nearest
/// known classes (or extrapolated from the mean spacing).
fn class_times(samples: &[Sample], n: usize) -> Vec<f64> {
    let mut sum = vec![0.0; n];
    let mut count = vec![0usize; n];
    for s in samples {
        if let Some(t) = s.time_myr {
            sum[s.label as usize] += t;
            count[s.label as usize] += 1;
        }
    }
    let known: Vec<(usize, f64)> = (0..n)
        .filter(|&k| count[k] > 0)
        .map(|k| (k, sum[k] / count[k] as f64))
        .collect();
    (0..n)
        .map(|k| match known.as_slice() {
            [] => k as f64,
            [(k0, t0)] => t0 + (k as f64 - *k0 as f64),
            _ => {
                let after = known
                    .iter()
                    .position(|(kk, _)| *kk >= k)
                    .unwrap_or(known.len() - 1)
                    .max(1);
                let (k0, t0) = known[after - 1];
                let (k1, t1) = known[after];
                t0 + (t1 - t0) * (k as f64 - k0 as f64) / (k1 - k0) as f64
            }
        })
        .collect()
}

fn load_catalog(
    path: &Path,
    p: &Preprocess,
    target: Option<TimeTarget>,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<(Vec<Sample>, TimeTarget)> {
    let catalog = Catalog::read(path)?;
    let target = target.unwrap_or_else(|| TimeTarget::default_for(&catalog.records));
    let labels = labels(path, &catalog, target)?;
    let all: Vec<usize> = (0..catalog.records.len()).collect();
    let pixels = load_images(&catalog, &all, p, progress)?;
    let samples = catalog
        .records
        .iter()
        .zip(labels)
        .zip(pixels)
        .map(|((r, label), pixels)| Sample {
            id: r.id_str.clone(),
            simulation: r.simulation.clone(),
            label,
            time_myr: target.truth(r),
            pixels,
        })
        .collect();
    Ok((samples, target))
}

/// Every record's class under `target`, checked before any image is decoded: the catalog's
/// `label` for `snapshot`; for `t-peri`, the bin of `t_peri_myr` (bins of
/// [`T_PERI_BIN_MYR`] from the earliest time in the catalog). An error names the first row
/// without the column or with a class past [`MAX_CLASSES`].
fn labels(path: &Path, catalog: &Catalog, target: TimeTarget) -> deepgalaxy_core::Result<Vec<u32>> {
    let row_error = |i: usize, what: String| Error::Catalog {
        path: path.into(),
        row: i + 1,
        what,
    };
    match target {
        TimeTarget::Snapshot => catalog
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| match r.label {
                None => Err(row_error(
                    i,
                    format!("`{}` has no label: training needs a `label` column", r.id_str),
                )),
                Some(l) if l as usize >= MAX_CLASSES => Err(row_error(
                    i,
                    format!(
                        "`{}` has label {l}: labels run from 0 to {} (at most {MAX_CLASSES} classes)",
                        r.id_str,
                        MAX_CLASSES - 1
                    ),
                )),
                Some(l) => Ok(l),
            })
            .collect(),
        TimeTarget::TPeri => {
            let times = catalog
                .records
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    r.t_peri_myr.ok_or_else(|| {
                        row_error(
                            i,
                            format!(
                                "`{}` has no t_peri_myr: the t-peri target needs the phase labels of `deepgalaxy simulate` (or use --target snapshot)",
                                r.id_str
                            ),
                        )
                    })
                })
                .collect::<deepgalaxy_core::Result<Vec<f64>>>()?;
            let (origin, _) = t_peri_bins(&times, MAX_CLASSES)
                .map_err(|what| Error::invalid(path, what))?;
            Ok(times
                .iter()
                .map(|t| ((t - origin) / T_PERI_BIN_MYR).round() as u32)
                .collect())
        }
    }
}

#[cfg(feature = "hdf5")]
fn load_hdf5(
    path: &Path,
    p: &Preprocess,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Vec<Sample>> {
    let ds = deepgalaxy_core::hdf5::H5Dataset::open(path)?;
    let total = ds.records.len();
    // the HDF5 library is not safe to call from several threads at once: read serially,
    // preprocess in parallel
    let mut samples = Vec::with_capacity(total);
    for (i, r) in ds.records.iter().enumerate() {
        let image = ds.read_image(r)?;
        let x = deepgalaxy_core::preprocess::preprocess(&image, p, path)?;
        samples.push(Sample {
            id: format!("{}/camera_{:02}/{}", r.simulation, r.camera, r.snapshot),
            simulation: Some(r.simulation.clone()),
            label: r.label,
            time_myr: Some(r.t_myr),
            pixels: Pixels::quantise(&x.data),
        });
        progress(i + 1, total);
    }
    Ok(samples)
}

#[cfg(not(feature = "hdf5"))]
fn load_hdf5(
    path: &Path,
    _: &Preprocess,
    _: &(dyn Fn(usize, usize) + Sync),
) -> Result<Vec<Sample>> {
    Err(Error::invalid(
        path,
        "HDF5 support is not built in: rebuild with `--features hdf5` (needs Debian libhdf5-dev)",
    )
    .into())
}

/// A random permutation of `0..n` (Fisher-Yates) from `rng`.
pub fn permutation(n: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        v.swap(i, rng.random_range(0..=i));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(label: u32, t: Option<f64>) -> Sample {
        Sample {
            id: String::new(),
            simulation: None,
            label,
            time_myr: t,
            pixels: Pixels::U8(vec![]),
        }
    }

    #[test]
    fn class_times_average_and_interpolate() {
        let s = [
            sample(0, Some(1.0)),
            sample(0, Some(3.0)),
            sample(3, Some(8.0)),
        ];
        assert_eq!(class_times(&s, 5), vec![2.0, 4.0, 6.0, 8.0, 10.0]);
    }

    #[test]
    fn labels_past_the_class_limit_are_refused_naming_the_row() {
        let tmp = tempfile::tempdir().unwrap();
        let p = Preprocess::default();
        // empty files: the labels are refused before any image is decoded
        for f in ["a.png", "b.png"] {
            std::fs::write(tmp.path().join(f), b"").unwrap();
        }
        for label in ["1024", "9999", "500000000", "4294967295"] {
            let path = tmp.path().join("catalog.csv");
            let text = format!("id_str,file_loc,label\na,a.png,0\nb,b.png,{label}\n");
            std::fs::write(&path, text).unwrap();
            let err = match Dataset::load(&path, &p, None, &|_, _| {}) {
                Err(e) => e.to_string(),
                Ok(_) => panic!("label {label} accepted"),
            };
            assert!(
                err.contains("catalog.csv, row 2")
                    && err.contains(&format!("label {label}: labels run from 0 to 1023")),
                "{err}"
            );
        }
        let mut s = vec![sample(0, None), sample(1024, None)];
        s[1].id = "far".into();
        let err = match Dataset::from_samples(s, p, Path::new("x.h5"), TimeTarget::Snapshot) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted"),
        };
        assert!(err.contains("x.h5: `far` has label 1024"), "{err}");
    }

    #[test]
    fn t_peri_labels_are_5_myr_bins_from_the_earliest_time() {
        let record = |t: Option<f64>| deepgalaxy_core::CatalogRecord {
            id_str: "x".into(),
            label: Some(0),
            t_peri_myr: t,
            ..Default::default()
        };
        let c = Catalog::new(
            [-98.7, -93.7, -1.2, 0.4, 3.0, 251.3]
                .map(|t| record(Some(t)))
                .to_vec(),
        );
        let p = Path::new("c.csv");
        assert_eq!(
            labels(p, &c, TimeTarget::TPeri).unwrap(),
            [0, 1, 20, 20, 21, 70]
        );
        assert_eq!(labels(p, &c, TimeTarget::Snapshot).unwrap(), [0; 6]);
        assert_eq!(TimeTarget::default_for(&c.records), TimeTarget::TPeri);
        let mut gap = c.clone();
        gap.records[3].t_peri_myr = None;
        assert_eq!(TimeTarget::default_for(&gap.records), TimeTarget::Snapshot);
        let err = labels(p, &gap, TimeTarget::TPeri).unwrap_err().to_string();
        assert!(
            err.contains("c.csv, row 4") && err.contains("no t_peri_myr"),
            "{err}"
        );
    }
}
