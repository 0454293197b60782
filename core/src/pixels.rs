//! Preprocessed images kept compactly in memory, and the one loader that produces them from a
//! catalog: training keeps its whole dataset this way, and export's INT8 calibration reads its
//! images through the same path so the calibration ranges see exactly what training saw.

use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;

use crate::preprocess::{preprocess, Preprocess};
use crate::{Catalog, Error, Result};

/// Preprocessed pixels, quantised: 8-bit when every value is a multiple of 1/255 (8-bit
/// sources at their native size), otherwise 16-bit (error at most 7.7e-6).
#[derive(Debug, Clone, PartialEq)]
pub enum Pixels {
    /// Values k/255.
    U8(Vec<u8>),
    /// Values k/65535.
    U16(Vec<u16>),
}

impl Pixels {
    /// Stores `values` (in [0, 1]) in 8 bits when that is exact, else in 16.
    pub fn quantise(values: &[f32]) -> Pixels {
        let exact8 = values
            .iter()
            .all(|v| ((v * 255.0).round() - v * 255.0).abs() < 1e-4);
        if exact8 {
            Pixels::U8(values.iter().map(|v| (v * 255.0).round() as u8).collect())
        } else {
            Pixels::U16(
                values
                    .iter()
                    .map(|v| (v * 65535.0).round() as u16)
                    .collect(),
            )
        }
    }

    /// The values as `f32` in [0, 1], appended to `out`.
    pub fn extend_f32(&self, out: &mut Vec<f32>) {
        match self {
            Pixels::U8(v) => out.extend(v.iter().map(|&x| x as f32 / 255.0)),
            Pixels::U16(v) => out.extend(v.iter().map(|&x| x as f32 / 65535.0)),
        }
    }
}

/// Decodes and preprocesses the images of the catalog records at `indices` exactly as
/// training does (core's `preprocess()`, then 8- or 16-bit storage), in parallel; labels are
/// not needed. For calibration and evaluation sets.
pub fn load_images(
    catalog: &Catalog,
    indices: &[usize],
    p: &Preprocess,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Vec<Pixels>> {
    let total = indices.len();
    let done = AtomicUsize::new(0);
    indices
        .par_iter()
        .map(|&i| {
            let r = catalog
                .records
                .get(i)
                .ok_or_else(|| Error::setting("images", format!("no catalog record {i}")))?;
            let file = catalog.resolve(r);
            let image = crate::image::load(&file)?;
            let x = preprocess(&image, p, &file)?;
            progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
            Ok(Pixels::quantise(&x.data))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantisation_keeps_8_bit_values_exact() {
        let v: Vec<f32> = (0..=255).map(|k| k as f32 / 255.0).collect();
        assert_eq!(Pixels::quantise(&v), Pixels::U8((0..=255).collect()));
        let mut out = vec![];
        Pixels::quantise(&[0.5]).extend_f32(&mut out);
        assert!((out[0] - 0.5).abs() < 8e-6);
    }
}
