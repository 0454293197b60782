//! # deepgalaxy-core
//!
//! The parts of DeepGalaxy that every other crate shares, and that must never depend on a
//! deep-learning framework:
//!
//! * [`image`]: an `f32` image with its shape, read from PNG/JPEG/TIFF (through the `image`
//!   crate) or FITS (through `fitsrs`, see [`fits`] for the BLANK/NaN policy).
//! * [`preprocess`]: the preprocessing contract, one serialisable [`Preprocess`] and the one
//!   function, [`preprocess()`], that applies it. Training and inference both call it; nothing
//!   else resizes or stretches an image.
//! * [`pixels`]: preprocessed images stored in 8 or 16 bits, and [`pixels::load_images`], the
//!   loader training and INT8 calibration share.
//! * [`catalog`]: `catalog.csv` in the Zoobot convention plus DeepGalaxy's simulation columns.
//! * [`hdf5`] (feature `hdf5`): the original DeepGalaxy HDF5 layout, read and written.
//! * [`card`]: the model card that export writes into ONNX `metadata_props` and runtime reads.
//! * [`inspect`]: what a file holds, for `deepgalaxy inspect`.
//! * [`limits`]: how much one input file may make the program read and allocate (overridable
//!   through `DEEPGALAXY_MAX_*` environment variables); [`io::read_bytes`] reads regular files
//!   only, up to the limit.
//! * `fuzz` (feature `fuzz`, for tests): the mutation-fuzzing harness of the parser tests.
//! * [`Error`]: every error names the file (and row or HDU) and what is wrong.
//!
//! Outputs are written through [`io::write_atomic`] (temporary file, then rename), so a crash
//! or a bad input never leaves a half-written file in place of a good one.

pub mod card;
pub mod catalog;
pub mod error;
pub mod fits;
#[cfg(any(test, feature = "fuzz"))]
#[allow(unsafe_code)] // the peak-measuring global allocator
pub mod fuzz;
#[cfg(feature = "hdf5")]
pub mod hdf5;
pub mod image;
pub mod inspect;
pub mod io;
pub mod limits;
pub mod pixels;
pub mod preprocess;
pub mod time;

/// DejaVu Sans (free license in `core/assets/DejaVuSans-LICENSE.txt`), embedded so that every
/// PNG the project draws (curves, confusion matrices, latent maps, galleries) has text without
/// a system font library.
pub const FONT_TTF: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// The source directory of the package being built or tested: `CARGO_MANIFEST_DIR` at run time
/// (set by `cargo test`, `cargo bench` and `cargo run`), else `compiled_in`, the caller's
/// `env!("CARGO_MANIFEST_DIR")`. Run time first because cargo reuses an unchanged test binary
/// for a clone of the workspace at another path (CI's fresh clone with a shared target
/// directory), and the path compiled into that binary may no longer exist. Used to find the
/// peer scripts and bench outputs in the source tree.
pub fn source_dir(compiled_in: &str) -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(compiled_in))
}

/// The number of elements of a tensor of shape `dims` (ONNX stores dimensions as `i64`), or
/// what is wrong with the shape: a negative dimension, or a product that overflows
/// (`[2^32, 2^32]` wraps to 0 in `i64`). The ONNX readers of `export` and `runtime` take
/// shapes from files and check them with this before anything is sized by them.
pub fn element_count(dims: &[i64]) -> std::result::Result<usize, String> {
    dims.iter().try_fold(1usize, |n, &d| {
        let d =
            usize::try_from(d).map_err(|_| format!("negative dimension {d} in shape {dims:?}"))?;
        n.checked_mul(d)
            .ok_or_else(|| format!("shape {dims:?} has more elements than can be counted"))
    })
}

pub use card::ModelCard;
pub use catalog::{Catalog, CatalogRecord};
pub use error::{Error, Result};
pub use image::{Image, SampleType};
pub use preprocess::{preprocess, Preprocess};
