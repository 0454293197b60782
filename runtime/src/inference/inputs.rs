//! What the user points the runtime at, turned into a list of images: files, directories
//! (searched recursively for images), glob patterns, or catalogs (`.csv`, whose labels and
//! times are kept so predictions can be scored).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::Result;
use deepgalaxy_core::{Catalog, Error};

/// File extensions read as images (case-insensitive).
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "tif", "tiff", "fits", "fit", "fts"];

/// One image to run the model on.
#[derive(Debug, Clone, PartialEq)]
pub struct InputItem {
    /// Identifier: the catalog's `id_str`, or the path as given.
    pub id: String,
    /// The image file.
    pub path: PathBuf,
    /// Timescale class, when a catalog gives it.
    pub label: Option<u32>,
    /// Time since the simulation started in Myr, when a catalog gives it.
    pub t_myr: Option<f64>,
    /// Time relative to the first pericentre in Myr, when a catalog gives it.
    pub t_peri_myr: Option<f64>,
    /// The simulation the image came from, when a catalog gives it.
    pub simulation: Option<String>,
}

impl InputItem {
    fn file(path: PathBuf) -> InputItem {
        InputItem {
            id: path.display().to_string(),
            path,
            label: None,
            t_myr: None,
            t_peri_myr: None,
            simulation: None,
        }
    }
}

/// Whether `path` has one of [`IMAGE_EXTENSIONS`].
pub fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// The images of a catalog, with their labels and times.
pub fn from_catalog(catalog: &Catalog) -> Vec<InputItem> {
    catalog
        .records
        .iter()
        .map(|r| InputItem {
            id: r.id_str.clone(),
            path: catalog.resolve(r),
            label: r.label,
            t_myr: r.t_myr,
            t_peri_myr: r.t_peri_myr,
            simulation: r.simulation.clone(),
        })
        .collect()
}

/// Expands the arguments in order. A plain path is kept even if it does not exist (running it
/// reports the problem for that image alone); a directory without images, a glob matching
/// nothing or an unreadable catalog is an error.
pub fn expand(args: &[String]) -> Result<Vec<InputItem>> {
    let mut items = Vec::new();
    for arg in args {
        let path = PathBuf::from(arg);
        if path.is_dir() {
            let before = items.len();
            walk(&path, &mut items, &mut HashSet::new())?;
            if items.len() == before {
                return Err(Error::invalid(&path, "the folder holds no images").into());
            }
        } else if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
        {
            items.extend(from_catalog(&Catalog::read(&path)?));
        } else if arg.contains(['*', '?', '[']) && !path.exists() {
            let paths = glob::glob(arg)
                .map_err(|e| Error::setting("input pattern", format!("`{arg}`: {e}")))?;
            let mut matched: Vec<PathBuf> = paths
                .filter_map(|p| p.ok())
                .filter(|p| p.is_file() && is_image_path(p))
                .collect();
            if matched.is_empty() {
                return Err(
                    Error::setting("input pattern", format!("`{arg}` matches no image")).into(),
                );
            }
            matched.sort();
            items.extend(matched.into_iter().map(InputItem::file));
        } else {
            items.push(InputItem::file(path));
        }
    }
    Ok(items)
}

/// Appends the images under `dir`, sorted by path. Each folder is walked once, however many
/// links lead to it (`visited` holds the canonical paths seen), so a symbolic link to a parent
/// folder cannot make the walk endless.
fn walk(dir: &Path, items: &mut Vec<InputItem>, visited: &mut HashSet<PathBuf>) -> Result<()> {
    let canonical = std::fs::canonicalize(dir).map_err(|e| Error::io(dir, e))?;
    if !visited.insert(canonical) {
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .map(|e| e.map(|e| e.path()).map_err(|e| Error::io(dir, e)))
        .collect::<deepgalaxy_core::Result<_>>()?;
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, items, visited)?;
        } else if is_image_path(&p) {
            items.push(InputItem::file(p));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_globs_and_files_expand_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        for name in ["b.png", "a.fits", "notes.txt"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        std::fs::write(sub.join("c.JPG"), b"x").unwrap();
        let root = dir.path().display().to_string();
        let items = expand(std::slice::from_ref(&root)).unwrap();
        let names = relative_names(&items, dir.path());
        assert_eq!(names, ["a.fits", "b.png", "sub/c.JPG"]);
        let globbed = expand(&[format!("{root}/*.png"), format!("{root}/missing.png")]).unwrap();
        assert_eq!(globbed.len(), 2);
        assert!(globbed[0].path.ends_with("b.png"));
        assert!(globbed[1].path.ends_with("missing.png"));
        let err = expand(&[format!("{root}/*.tiff")]).unwrap_err().to_string();
        assert!(err.contains("matches no image"), "{err}");
        std::fs::remove_file(sub.join("c.JPG")).unwrap();
        let err = expand(&[sub.display().to_string()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("holds no images"), "{err}");
    }

    /// The items' paths relative to `dir`, as text.
    fn relative_names(items: &[InputItem], dir: &Path) -> Vec<String> {
        items
            .iter()
            .map(|i| i.path.strip_prefix(dir).unwrap().display().to_string())
            .collect()
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_loop_is_walked_once() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(dir.path().join("a.png"), b"x").unwrap();
        std::fs::write(sub.join("b.png"), b"x").unwrap();
        // a link back to the top and a second way into `sub`
        std::os::unix::fs::symlink(dir.path(), sub.join("up")).unwrap();
        std::os::unix::fs::symlink(&sub, dir.path().join("also_sub")).unwrap();
        let items = expand(&[dir.path().display().to_string()]).unwrap();
        let names = relative_names(&items, dir.path());
        assert_eq!(names, ["a.png", "also_sub/b.png"]);
    }
}
