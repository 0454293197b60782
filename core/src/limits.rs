//! How much one input file may make DeepGalaxy read and allocate.
//!
//! Every size a file claims (a PNG's width and height, a FITS header's `NAXISn`) is checked
//! against these limits before anything is allocated, so a small crafted or damaged file cannot
//! exhaust memory: a 389 KB PNG may declare 20000 x 20000 pixels, and decoding it to `f32`
//! planes would take gigabytes. The defaults fit any telescope cutout or simulated image this
//! tool trains on, with room to spare; a user with bigger files raises them through environment
//! variables, which reach every command (`inspect`, `predict`, `search`, `train`, ...) alike:
//!
//! | variable | default | what it bounds |
//! | --- | --- | --- |
//! | `DEEPGALAXY_MAX_FILE_BYTES` | 1 GiB | a file read whole into memory (image, FITS, model, index) |
//! | `DEEPGALAXY_MAX_IMAGE_PIXELS` | 67,108,864 (8192 x 8192) | pixels per plane of a decoded image |
//! | `DEEPGALAXY_MAX_IMAGE_BYTES` | 1 GiB | memory of one decoded image, by the decoder and as `f32` planes |

use crate::{Error, Result};

/// Environment variable overriding [`Limits::max_file_bytes`].
pub const ENV_MAX_FILE_BYTES: &str = "DEEPGALAXY_MAX_FILE_BYTES";
/// Environment variable overriding [`Limits::max_image_pixels`].
pub const ENV_MAX_IMAGE_PIXELS: &str = "DEEPGALAXY_MAX_IMAGE_PIXELS";
/// Environment variable overriding [`Limits::max_image_bytes`].
pub const ENV_MAX_IMAGE_BYTES: &str = "DEEPGALAXY_MAX_IMAGE_BYTES";

/// The limits in force (see the module docs for the defaults and how to change them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest file read whole into memory, in bytes.
    pub max_file_bytes: u64,
    /// Largest image, in pixels per plane (width x height).
    pub max_image_pixels: u64,
    /// Largest decoded image in bytes: the decoder's allocations, and the `f32` planes
    /// (`channels x pixels x 4`) the image becomes.
    pub max_image_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: 1 << 30,
            max_image_pixels: 8192 * 8192,
            max_image_bytes: 1 << 30,
        }
    }
}

impl Limits {
    /// The defaults, each replaced by its environment variable when that is set. A variable
    /// that is not a positive whole number is an error naming it.
    pub fn from_env() -> Result<Limits> {
        let d = Limits::default();
        Ok(Limits {
            max_file_bytes: env_or(ENV_MAX_FILE_BYTES, d.max_file_bytes)?,
            max_image_pixels: env_or(ENV_MAX_IMAGE_PIXELS, d.max_image_pixels)?,
            max_image_bytes: env_or(ENV_MAX_IMAGE_BYTES, d.max_image_bytes)?,
        })
    }

    /// Checks an image of `channels` planes of `width x height` pixels against the pixel and
    /// byte limits, before it is decoded. `path` names the file in the error.
    pub fn check_image(
        &self,
        path: &std::path::Path,
        channels: u64,
        width: u64,
        height: u64,
    ) -> Result<()> {
        let pixels = width.checked_mul(height);
        if pixels.is_none_or(|p| p > self.max_image_pixels) {
            return Err(Error::invalid(
                path,
                format!(
                    "the image is {width} x {height} pixels, more than the limit of {} pixels \
                     (raise it with {ENV_MAX_IMAGE_PIXELS})",
                    self.max_image_pixels
                ),
            ));
        }
        let bytes = pixels.and_then(|p| p.checked_mul(channels)?.checked_mul(4));
        if bytes.is_none_or(|b| b > self.max_image_bytes) {
            return Err(Error::invalid(
                path,
                format!(
                    "the image is {channels} x {width} x {height} samples, more than the limit \
                     of {} bytes as f32 (raise it with {ENV_MAX_IMAGE_BYTES})",
                    self.max_image_bytes
                ),
            ));
        }
        Ok(())
    }
}

fn env_or(name: &str, default: u64) -> Result<u64> {
    match std::env::var(name) {
        Err(std::env::VarError::NotPresent) => Ok(default),
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(Error::setting(
                name,
                format!("`{v}` is not a positive whole number"),
            )),
        },
        Err(e) => Err(Error::setting(name, e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn images_over_either_limit_are_refused_with_the_variable_to_raise() {
        let l = Limits {
            max_file_bytes: 1,
            max_image_pixels: 100,
            max_image_bytes: 800,
        };
        assert!(l.check_image(Path::new("a.png"), 2, 10, 10).is_ok());
        let e = l
            .check_image(Path::new("a.png"), 1, 20000, 20000)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "a.png: the image is 20000 x 20000 pixels, more than the limit of 100 pixels \
             (raise it with DEEPGALAXY_MAX_IMAGE_PIXELS)"
        );
        let e = l
            .check_image(Path::new("a.png"), 3, 10, 10)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("3 x 10 x 10 samples") && e.contains(ENV_MAX_IMAGE_BYTES),
            "{e}"
        );
        // sizes whose product overflows are refused, not wrapped
        assert!(l.check_image(Path::new("a"), 1, u64::MAX, 2).is_err());
    }

    #[test]
    fn environment_overrides_must_be_positive_numbers() {
        // a variable no other test reads, so setting it cannot race
        let name = "DEEPGALAXY_TEST_ONLY_LIMIT";
        assert_eq!(env_or(name, 7).unwrap(), 7);
        std::env::set_var(name, " 4096 ");
        assert_eq!(env_or(name, 7).unwrap(), 4096);
        for bad in ["0", "-1", "1e9", "lots"] {
            std::env::set_var(name, bad);
            let e = env_or(name, 7).unwrap_err().to_string();
            assert_eq!(
                e,
                format!("invalid {name}: `{bad}` is not a positive whole number")
            );
        }
        std::env::remove_var(name);
    }
}
