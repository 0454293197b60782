//! The error type of DeepGalaxy's libraries. Every variant names the file it is about, and where
//! it helps the row (catalogs), HDU (FITS) or group/dataset (HDF5), so a user can find and fix
//! the bad input without a debugger.

use std::path::PathBuf;

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, and in which file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed at the operating-system level.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file was read but its content is not what it should be.
    #[error("{}: {what}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, in words a user can act on.
        what: String,
    },
    /// An image file could not be decoded (truncated, corrupt, unsupported).
    #[error("{}: cannot decode image: {source}", path.display())]
    Decode {
        /// The image file.
        path: PathBuf,
        /// The decoder's error.
        source: ::image::ImageError,
    },
    /// A FITS file is malformed or holds nothing we can use.
    #[error("{}, HDU {hdu}: {what}", path.display())]
    Fits {
        /// The FITS file.
        path: PathBuf,
        /// Index of the header-data unit (0 = primary).
        hdu: usize,
        /// What is wrong.
        what: String,
    },
    /// A catalog row is malformed or points at something that is not there.
    #[error("{}, row {row}: {what}", path.display())]
    Catalog {
        /// The catalog file.
        path: PathBuf,
        /// 1-based data row (the header is row 0), as a spreadsheet would show it minus one.
        row: usize,
        /// What is wrong.
        what: String,
    },
    /// An HDF5 file does not follow the DeepGalaxy layout, or the library failed.
    #[error("{}, {object}: {what}", path.display())]
    Hdf5 {
        /// The HDF5 file.
        path: PathBuf,
        /// The group or dataset (`/` for the file itself).
        object: String,
        /// What is wrong.
        what: String,
    },
    /// A setting (preprocessing, model card, command-line value) is out of range.
    #[error("invalid {setting}: {what}")]
    Setting {
        /// The setting's name.
        setting: String,
        /// What is wrong with it.
        what: String,
    },
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// An [`Error::Invalid`] for `path`.
    pub fn invalid(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        Error::Invalid {
            path: path.into(),
            what: what.into(),
        }
    }

    /// An [`Error::Setting`].
    pub fn setting(setting: impl Into<String>, what: impl Into<String>) -> Self {
        Error::Setting {
            setting: setting.into(),
            what: what.into(),
        }
    }
}

/// `e` and each of its sources, joined by ": " (as anyhow's `{:#}` prints them): the whole
/// message, for places that must carry an error as text (between MPI ranks, in a trial log).
pub fn with_sources(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
