//! File-system helpers shared by every writer: atomic replacement, so nothing already written is
//! lost when a later step fails.

use std::io::Write;
use std::path::Path;

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
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
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

/// Reads a whole file, with an error naming it.
pub fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
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
}
