//! File-system helpers shared by every reader and writer: atomic replacement, so nothing
//! already written is lost when a later step fails, and bounded reads of regular files only, so
//! an input that is a device, a FIFO or a huge file is an error rather than a hang or an
//! exhausted memory.

use std::io::{Read, Write};
use std::path::Path;

use crate::limits::{Limits, ENV_MAX_FILE_BYTES};
use crate::{Error, Result};

/// Writes `path` atomically: `write` fills a temporary file in the same folder, which is
/// flushed, synced and renamed over `path` only if `write` succeeded. On failure the old file
/// (if any) is untouched and the temporary file is removed.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    // temporary files are created private (0600); the output is an ordinary file
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(|e| Error::io(path, e))?;
    }
    write(tmp.as_file_mut()).map_err(|e| Error::io(path, e))?;
    tmp.as_file_mut()
        .flush()
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    sync_dir(dir)
}

/// Flushes a folder's entries (names created, renamed or removed in it) to disk, so that a
/// rename is durable: without it a crash can bring back the old name after the new file's
/// data was synced. A no-op where folders cannot be opened (not Unix).
pub fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Creates the folder `dir` and its parents for an output. When a part of the path exists
/// as a file, the error says so (the operating system's "File exists" names neither).
pub fn create_dir_all(dir: &Path) -> Result<()> {
    if let Some(file) = dir
        .ancestors()
        .find(|a| !a.as_os_str().is_empty() && a.exists())
        .filter(|a| !a.is_dir())
    {
        return Err(Error::invalid(
            dir,
            format!(
                "cannot create this folder: {} is a file, not a folder",
                file.display()
            ),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}

/// Reads a whole regular file of at most [`Limits::max_file_bytes`] (from the environment, see
/// [`crate::limits`]), with an error naming it.
pub fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    read_bytes_capped(path, Limits::from_env()?.max_file_bytes)
}

/// Reads a whole file of at most `max_bytes`. Devices, FIFOs, sockets and folders are refused
/// before they are opened (`/dev/zero` never ends; opening a FIFO waits for a writer), and a
/// file is never read past the cap, whatever size it reports.
pub fn read_bytes_capped(path: &Path, max_bytes: u64) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        let what = if meta.is_dir() {
            "a folder"
        } else {
            "a device, FIFO or socket"
        };
        return Err(Error::invalid(
            path,
            format!("is {what}, not a regular file: refusing to read it"),
        ));
    }
    let too_big = |size: String| {
        Error::invalid(
            path,
            format!(
                "the file is {size} bytes, more than the limit of {max_bytes} \
                 (raise it with {ENV_MAX_FILE_BYTES})"
            ),
        )
    };
    if meta.len() > max_bytes {
        return Err(too_big(meta.len().to_string()));
    }
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_big(format!("over {max_bytes}")));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.txt");
        write_atomic(&p, |f| f.write_all(b"good")).unwrap();
        let err = write_atomic(&p, |f| {
            f.write_all(b"half")?;
            Err(std::io::Error::other("disk full"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("out.txt"), "{err}");
        assert_eq!(std::fs::read(&p).unwrap(), b"good");
        // no temporary file left behind
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn an_output_under_a_file_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("somefile.txt");
        std::fs::write(&file, b"x").unwrap();
        let out = file.join("sub").join("out.csv");
        let err = write_atomic(&out, |f| f.write_all(b"y"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "{}: cannot create this folder: {} is a file, not a folder",
                file.join("sub").display(),
                file.display()
            )
        );
        assert_eq!(std::fs::read(&file).unwrap(), b"x");
    }

    #[test]
    fn reads_are_capped_and_only_of_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.png");
        std::fs::write(&p, vec![7u8; 100]).unwrap();
        assert_eq!(read_bytes_capped(&p, 100).unwrap().len(), 100);
        let e = read_bytes_capped(&p, 99).unwrap_err().to_string();
        assert!(
            e.contains("big.png") && e.contains("100 bytes, more than the limit of 99"),
            "{e}"
        );
        let e = read_bytes_capped(dir.path(), 99).unwrap_err().to_string();
        assert!(e.contains("is a folder, not a regular file"), "{e}");
        #[cfg(unix)]
        {
            // /dev/zero never ends: it must be refused, not read until memory runs out
            let e = read_bytes_capped(Path::new("/dev/zero"), 1 << 20)
                .unwrap_err()
                .to_string();
            assert_eq!(
                e,
                "/dev/zero: is a device, FIFO or socket, not a regular file: refusing to read it"
            );
            // and a link to it named like an image is no different
            let link = dir.path().join("zero.png");
            std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
            assert!(read_bytes_capped(&link, 1 << 20).is_err());
        }
    }
}
