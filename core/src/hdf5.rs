//! The original DeepGalaxy HDF5 layout (`output_bw_512.hdf5` and friends), read and written.
//!
//! Layout: one group per simulation named `s_{size_ratio}_m_{mass_ratio}`; in it, for each
//! camera `NN` (00..13), a dataset `images_camera_NN` of shape (snapshots, H, W) (float16 or
//! uint8; a trailing axis of length 1 is accepted) and `t_myr_camera_NN` of shape (snapshots).
//! The class of an image is `int(t_myr / 5) - min`, the minimum taken over the whole file, as
//! the original code computes it.
//!
//! Reading is lazy: [`H5Dataset::open`] lists the records (one per image) with their labels;
//! [`H5Dataset::read_image`] reads one image, so the 18 GB files of the paper need not fit in
//! memory.

use std::path::{Path, PathBuf};

use crate::image::{Image, SampleType};
use crate::{Error, Result};

/// Width of one timescale class in Myr, as in the original code.
pub const CLASS_MYR: f64 = 5.0;

/// One image of an HDF5 dataset.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct H5Record {
    /// Group name, e.g. `s_1_m_0.5`.
    pub simulation: String,
    /// Size ratio parsed from the group name.
    pub size_ratio: f64,
    /// Mass ratio parsed from the group name.
    pub mass_ratio: f64,
    /// Camera index (the `NN` of `images_camera_NN`).
    pub camera: u32,
    /// Index along the snapshot axis.
    pub snapshot: u32,
    /// Time in Myr.
    pub t_myr: f64,
    /// `int(t_myr / 5) - min`.
    pub label: u32,
}

/// An opened HDF5 file in the DeepGalaxy layout.
pub struct H5Dataset {
    path: PathBuf,
    file: hdf5::File,
    /// Every image, group by group, camera by camera, snapshot by snapshot.
    pub records: Vec<H5Record>,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// Stored type of the images (`u8`, `f16`, `f32`, ...).
    pub dtype: String,
}

fn h5_err(path: &Path, object: &str, what: impl std::fmt::Display) -> Error {
    Error::Hdf5 {
        path: path.into(),
        object: object.into(),
        what: what.to_string(),
    }
}

/// Parses `s_{size}_m_{mass}`.
pub fn parse_group_name(name: &str) -> Option<(f64, f64)> {
    let rest = name.strip_prefix("s_")?;
    let (size, mass) = rest.split_once("_m_")?;
    Some((size.parse().ok()?, mass.parse().ok()?))
}

/// The group name for a pair of ratios; whole numbers are written without a decimal point
/// (`s_1_m_0.25`), as in the original files.
pub fn group_name(size_ratio: f64, mass_ratio: f64) -> String {
    format!("s_{size_ratio}_m_{mass_ratio}")
}

impl H5Dataset {
    /// Opens a file and lists its records, checking the layout.
    pub fn open(path: &Path) -> Result<H5Dataset> {
        if !path.is_file() {
            return Err(Error::io(
                path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            ));
        }
        // read-only readers need no lock; HDF5's flock-based locking fails on many cluster
        // file systems and when a writer has just closed the file
        let file = hdf5::File::with_options()
            .with_fapl(|p| p.file_locking(false))
            .open(path)
            .map_err(|e| h5_err(path, "/", e))?;
        let mut groups: Vec<(String, f64, f64)> = file
            .member_names()
            .map_err(|e| h5_err(path, "/", e))?
            .into_iter()
            .filter_map(|n| parse_group_name(&n).map(|(s, m)| (n, s, m)))
            .collect();
        if groups.is_empty() {
            return Err(h5_err(
                path,
                "/",
                "no group named s_{size}_m_{mass}: not a DeepGalaxy dataset",
            ));
        }
        groups.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.2.total_cmp(&b.2)));
        let mut raw = Vec::new();
        let mut shape: Option<(usize, usize)> = None;
        let mut dtype = String::new();
        for (name, size_ratio, mass_ratio) in &groups {
            let group = file.group(name).map_err(|e| h5_err(path, name, e))?;
            let mut cameras: Vec<u32> = group
                .member_names()
                .map_err(|e| h5_err(path, name, e))?
                .iter()
                .filter_map(|n| n.strip_prefix("images_camera_")?.parse().ok())
                .collect();
            cameras.sort_unstable();
            if cameras.is_empty() {
                return Err(h5_err(path, name, "no images_camera_NN dataset"));
            }
            for cam in cameras {
                let img_name = format!("{name}/images_camera_{cam:02}");
                let t_name = format!("{name}/t_myr_camera_{cam:02}");
                let images = file
                    .dataset(&img_name)
                    .map_err(|e| h5_err(path, &img_name, e))?;
                let s = images.shape();
                let ok = s.len() == 3 || (s.len() == 4 && s[3] == 1);
                if !ok {
                    return Err(h5_err(
                        path,
                        &img_name,
                        format!("shape {s:?} is not (snapshots, height, width)"),
                    ));
                }
                match shape {
                    None => shape = Some((s[1], s[2])),
                    Some(hw) if hw != (s[1], s[2]) => {
                        return Err(h5_err(
                            path,
                            &img_name,
                            format!(
                                "images are {}x{}, earlier ones {}x{}",
                                s[1], s[2], hw.0, hw.1
                            ),
                        ))
                    }
                    _ => {}
                }
                if dtype.is_empty() {
                    dtype = describe_dtype(&images);
                }
                let times: Vec<f64> = file
                    .dataset(&t_name)
                    .and_then(|d| d.read_raw::<f64>())
                    .map_err(|e| h5_err(path, &t_name, e))?;
                if times.len() != s[0] {
                    return Err(h5_err(
                        path,
                        name,
                        format!(
                            "camera {cam:02}: {} images but {} times in t_myr_camera_{cam:02}",
                            s[0],
                            times.len()
                        ),
                    ));
                }
                for (snap, &t) in times.iter().enumerate() {
                    if !t.is_finite() || t < 0.0 {
                        return Err(h5_err(path, &t_name, format!("time {t} at index {snap}")));
                    }
                    raw.push((name.clone(), *size_ratio, *mass_ratio, cam, snap as u32, t));
                }
            }
        }
        let class = |t: f64| (t / CLASS_MYR).floor() as i64;
        let min = raw.iter().map(|r| class(r.5)).min().unwrap_or(0);
        let records = raw
            .into_iter()
            .map(
                |(simulation, size_ratio, mass_ratio, camera, snapshot, t_myr)| H5Record {
                    simulation,
                    size_ratio,
                    mass_ratio,
                    camera,
                    snapshot,
                    t_myr,
                    label: (class(t_myr) - min) as u32,
                },
            )
            .collect();
        let (height, width) = shape.unwrap_or((0, 0));
        Ok(H5Dataset {
            path: path.into(),
            file,
            records,
            height,
            width,
            dtype,
        })
    }

    /// Reads the image of one record as a 1-channel `f32` image.
    pub fn read_image(&self, record: &H5Record) -> Result<Image> {
        let name = format!("{}/images_camera_{:02}", record.simulation, record.camera);
        let ds = self
            .file
            .dataset(&name)
            .map_err(|e| h5_err(&self.path, &name, e))?;
        let i = record.snapshot as usize;
        let slice = if ds.ndim() == 4 {
            ds.read_slice_2d::<f32, _>((i, .., .., 0))
        } else {
            ds.read_slice_2d::<f32, _>((i, .., ..))
        };
        let data: Vec<f32> = slice
            .map_err(|e| h5_err(&self.path, &name, e))?
            .iter()
            .copied()
            .collect();
        let sample = if self.dtype == "u8" {
            SampleType::U8
        } else {
            SampleType::F32
        };
        Image::new(1, self.height, self.width, data, sample)
            .map_err(|e| h5_err(&self.path, &name, e))
    }

    /// The file this dataset was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn describe_dtype(ds: &hdf5::Dataset) -> String {
    use hdf5::types::{FloatSize, IntSize, TypeDescriptor as T};
    match ds.dtype().and_then(|d| d.to_descriptor()) {
        Ok(T::Unsigned(IntSize::U1)) => "u8".into(),
        Ok(T::Unsigned(IntSize::U2)) => "u16".into(),
        Ok(T::Float(FloatSize::U2)) => "f16".into(),
        Ok(T::Float(FloatSize::U4)) => "f32".into(),
        Ok(T::Float(FloatSize::U8)) => "f64".into(),
        Ok(other) => format!("{other:?}"),
        Err(e) => format!("unknown ({e})"),
    }
}

/// One camera of a simulation to write.
#[derive(Debug, Clone, PartialEq)]
pub struct H5Camera {
    /// `snapshots * height * width` values, row-major. Stored as uint8 when every value is an
    /// integer in 0..=255, otherwise as float16 (so values must lie within +-65504; pass 16-bit
    /// pictures scaled to [0, 1]).
    pub images: Vec<f32>,
    /// Time of each snapshot in Myr.
    pub t_myr: Vec<f64>,
}

/// One simulation (group) to write.
#[derive(Debug, Clone, PartialEq)]
pub struct H5Simulation {
    /// Size ratio (group name).
    pub size_ratio: f64,
    /// Mass ratio (group name).
    pub mass_ratio: f64,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// Cameras 00, 01, ... in order.
    pub cameras: Vec<H5Camera>,
}

/// Writes simulations in the original layout, atomically (temporary file, then rename).
pub fn write_deepgalaxy(path: &Path, sims: &[H5Simulation]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .suffix(".hdf5")
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    {
        let file = hdf5::File::create(tmp.path()).map_err(|e| h5_err(path, "/", e))?;
        for sim in sims {
            write_group(&file, path, sim)?;
        }
        file.flush().map_err(|e| h5_err(path, "/", e))?;
    }
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

fn write_group(file: &hdf5::File, path: &Path, sim: &H5Simulation) -> Result<()> {
    let name = group_name(sim.size_ratio, sim.mass_ratio);
    let group = file
        .create_group(&name)
        .map_err(|e| h5_err(path, &name, e))?;
    for (cam, c) in sim.cameras.iter().enumerate() {
        let n = c.t_myr.len();
        let img_name = format!("images_camera_{cam:02}");
        let obj = format!("{name}/{img_name}");
        if c.images.len() != n * sim.height * sim.width {
            return Err(h5_err(
                path,
                &obj,
                format!(
                    "{} values for {n} images of {}x{}",
                    c.images.len(),
                    sim.height,
                    sim.width
                ),
            ));
        }
        let shape = (n, sim.height, sim.width);
        let as_u8 = c
            .images
            .iter()
            .all(|&v| v.fract() == 0.0 && (0.0..=255.0).contains(&v));
        let written = if as_u8 {
            let data: Vec<u8> = c.images.iter().map(|&v| v as u8).collect();
            group
                .new_dataset::<u8>()
                .shape(shape)
                .create(img_name.as_str())
                .and_then(|d| d.write_raw(&data))
        } else {
            if let Some(v) = c.images.iter().find(|v| v.is_nan() || v.abs() > 65504.0) {
                return Err(h5_err(
                    path,
                    &obj,
                    format!("value {v} does not fit float16"),
                ));
            }
            let data: Vec<half::f16> = c.images.iter().map(|&v| half::f16::from_f32(v)).collect();
            group
                .new_dataset::<half::f16>()
                .shape(shape)
                .create(img_name.as_str())
                .and_then(|d| d.write_raw(&data))
        };
        written.map_err(|e| h5_err(path, &obj, e))?;
        let t_name = format!("t_myr_camera_{cam:02}");
        group
            .new_dataset::<f64>()
            .shape(n)
            .create(t_name.as_str())
            .and_then(|d| d.write_raw(&c.t_myr))
            .map_err(|e| h5_err(path, &format!("{name}/{t_name}"), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sim(size: f64, mass: f64, t0: f64) -> H5Simulation {
        let (n, h, w) = (3, 4, 5);
        H5Simulation {
            size_ratio: size,
            mass_ratio: mass,
            height: h,
            width: w,
            cameras: (0..2)
                .map(|c| H5Camera {
                    images: (0..n * h * w).map(|i| ((i + c) % 256) as f32).collect(),
                    t_myr: (0..n).map(|i| t0 + 5.0 * i as f64).collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn round_trip_with_labels_from_time() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.hdf5");
        let sims = [sim(1.0, 0.5, 12.0), sim(0.25, 1.5, 2.0)];
        write_deepgalaxy(&p, &sims).unwrap();
        let ds = H5Dataset::open(&p).unwrap();
        assert_eq!((ds.height, ds.width, ds.dtype.as_str()), (4, 5, "u8"));
        assert_eq!(ds.records.len(), 2 * 2 * 3);
        // sorted by size ratio: s_0.25_m_1.5 first, times 2, 7, 12 -> classes 0, 1, 2
        let r = &ds.records[0];
        assert_eq!(r.simulation, "s_0.25_m_1.5");
        assert_eq!((r.size_ratio, r.mass_ratio), (0.25, 1.5));
        let labels: Vec<u32> = ds.records.iter().map(|r| r.label).collect();
        assert_eq!(labels, vec![0, 1, 2, 0, 1, 2, 2, 3, 4, 2, 3, 4]);
        let img = ds.read_image(&ds.records[4]).unwrap(); // camera 1, snapshot 1
        let expect: Vec<f32> = (20..40).map(|i| ((i + 1) % 256) as f32).collect();
        assert_eq!(img.data, expect);
    }

    #[test]
    fn float_images_are_stored_as_f16() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.hdf5");
        let mut s = sim(1.0, 1.0, 0.0);
        for c in &mut s.cameras {
            c.images.iter_mut().for_each(|v| *v /= 256.0);
        }
        write_deepgalaxy(&p, &[s.clone()]).unwrap();
        let ds = H5Dataset::open(&p).unwrap();
        assert_eq!(ds.dtype, "f16");
        let img = ds.read_image(&ds.records[0]).unwrap();
        for (a, b) in img.data.iter().zip(&s.cameras[0].images) {
            assert!((a - b).abs() < 1e-3);
        }
        s.cameras[0].images[0] = 1e6;
        let e = write_deepgalaxy(&p, &[s]).unwrap_err().to_string();
        assert!(e.contains("does not fit float16"), "{e}");
        // the failed write left the earlier file intact
        assert_eq!(H5Dataset::open(&p).unwrap().records.len(), 6);
    }

    #[test]
    fn group_names_follow_python_formatting() {
        assert_eq!(group_name(1.0, 0.25), "s_1_m_0.25");
        assert_eq!(parse_group_name("s_1.5_m_0.75"), Some((1.5, 0.75)));
        assert_eq!(parse_group_name("images"), None);
    }
}
