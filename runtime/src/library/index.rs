//! The latent index file: the embedded library a similarity search runs against.
//!
//! One file holds everything a search needs and everything needed to tell whether it belongs
//! to the model at hand: the latent dimension, the identity of the model that embedded it
//! (digest of the model file, training-set digest, preprocessing), the vectors, and per entry
//! its id, image file, class label, times in Myr and simulation.
//!
//! # Layout (format version 2, all integers and floats little-endian)
//!
//! | bytes | content |
//! | --- | --- |
//! | 8 | magic `DGLXIDX\0` |
//! | 4 | format version (`u32`) |
//! | 8 | total file length in bytes (`u64`), checksum included |
//! | 4 | latent dimension `D` (`u32`) |
//! | 8 | number of entries `N` (`u64`) |
//! | 4 + n | model identity: length (`u32`) then JSON ([`ModelIdentity`]) |
//! | 4·N·D | the vectors, `f32`, entry after entry |
//! | N × … | entries: `id_str` and `file` (each `u32` length + UTF-8), label (`u8` flag + `u32`), `t_myr` (`u8` flag + `f64`); from version 2 also `t_peri_myr` (`u8` flag + `f64`) and `simulation` (`u8` flag + `u32` length + UTF-8) |
//! | 32 | SHA-256 of every byte before it |
//!
//! Loading checks, in this order, that the file is long enough for a header, the magic, that
//! the version is one this build reads, that the length matches the header (truncation), the
//! checksum (damage), and then parses with bounds checks, so a crafted file is an error as
//! well. Every error names the file and the problem; nothing panics. Vectors must be finite.
//!
//! `file` is stored as given: relative paths are relative to the folder holding the index
//! (see [`LatentIndex::resolve_file`]), so a library folder can be moved as a whole. Before
//! reading the images of an index it did not just build, a caller checks with
//! [`LatentIndex::check_files_inside`] that they stay inside that folder.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::Result;
use deepgalaxy_core::time::TimeTarget;
use deepgalaxy_core::{Error, Preprocess};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// First bytes of every latent index file.
pub const MAGIC: [u8; 8] = *b"DGLXIDX\0";
/// The format version this build writes, and the newest it reads (version 1 files, without
/// `t_peri_myr` and `simulation`, are read too).
pub const FORMAT_VERSION: u32 = 2;
/// Magic, version and total length.
const PREFIX_LEN: usize = 8 + 4 + 8;
/// SHA-256 trailer.
const CHECKSUM_LEN: usize = 32;

/// Which model produced the latents: an index is only meaningful with the model (and the
/// preprocessing) that embedded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelIdentity {
    /// SHA-256 (hex) of the model file that embedded the library.
    pub model_digest: String,
    /// The model card's training-set digest, when it has one.
    pub training_digest: Option<String>,
    /// The preprocessing the images went through before embedding; search applies the same
    /// to query images and to neighbours before SSIM.
    pub preprocess: Preprocess,
}

/// How a model relates to the model that built an index, when their latents are comparable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compatibility {
    /// The very file that embedded the library.
    SameFile,
    /// Another file of the same model (e.g. another precision): same preprocessing, same
    /// training data.
    SameModel,
}

impl ModelIdentity {
    /// Whether latents of the model `now` (at `model_path`) can be searched in the index at
    /// `index_path` that this identity built: the same preprocessing and the same training
    /// data, else an error naming both files.
    pub fn compatibility(
        &self,
        now: &ModelIdentity,
        index_path: &Path,
        model_path: &Path,
    ) -> Result<Compatibility> {
        let rebuild = |what: &str| {
            Error::invalid(
                index_path,
                format!(
                    "was built with {what} than {} uses; rebuild the index with this model",
                    model_path.display()
                ),
            )
        };
        if self.preprocess != now.preprocess {
            return Err(rebuild("other preprocessing").into());
        }
        if self.training_digest != now.training_digest {
            return Err(rebuild("a model trained on other data").into());
        }
        Ok(if self.model_digest == now.model_digest {
            Compatibility::SameFile
        } else {
            Compatibility::SameModel
        })
    }
}

/// One library image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The catalog's `id_str`.
    pub id_str: String,
    /// Image file, relative to the index's folder or absolute.
    pub file: String,
    /// Timescale class, when known (simulated data).
    pub label: Option<u32>,
    /// Time since the start of the merger simulation in Myr, when known.
    pub t_myr: Option<f64>,
    /// Time relative to the merger's first pericentre in Myr, when known.
    pub t_peri_myr: Option<f64>,
    /// The simulation the image came from, when known: a search for an image of that same
    /// simulation leaves it out.
    pub simulation: Option<String>,
}

impl Entry {
    /// The entry's time under `target`.
    pub fn time(&self, target: TimeTarget) -> Option<f64> {
        target.pick(self.t_myr, self.t_peri_myr)
    }
}

/// An embedded library in memory: `len()` vectors of `dim()` floats with their entries.
#[derive(Debug, Clone, PartialEq)]
pub struct LatentIndex {
    dim: usize,
    model: ModelIdentity,
    vectors: Vec<f32>,
    entries: Vec<Entry>,
}

impl LatentIndex {
    /// Builds an index from `entries.len()` vectors of `dim` floats stored one after another.
    /// Errors when the sizes disagree, `dim` is 0, or a value is NaN or infinite.
    pub fn new(
        dim: usize,
        model: ModelIdentity,
        vectors: Vec<f32>,
        entries: Vec<Entry>,
    ) -> Result<LatentIndex> {
        if dim == 0 || dim > u32::MAX as usize {
            return Err(
                Error::setting("latent dimension", format!("{dim} is not a usable size")).into(),
            );
        }
        if Some(vectors.len()) != entries.len().checked_mul(dim) {
            return Err(Error::setting(
                "latent index",
                format!(
                    "{} floats for {} entries of dimension {dim}",
                    vectors.len(),
                    entries.len()
                ),
            )
            .into());
        }
        if let Some(i) = vectors.iter().position(|v| !v.is_finite()) {
            return Err(Error::setting(
                "latent index",
                format!(
                    "entry {} ({}) has a NaN or infinite latent",
                    i / dim,
                    entries[i / dim].id_str
                ),
            )
            .into());
        }
        Ok(LatentIndex {
            dim,
            model,
            vectors,
            entries,
        })
    }

    /// Latent dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the index holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The model that embedded the library.
    pub fn model(&self) -> &ModelIdentity {
        &self.model
    }

    /// All vectors, entry after entry.
    pub fn vectors(&self) -> &[f32] {
        &self.vectors
    }

    /// The latent of entry `i` (panics if `i >= len()`, like slice indexing).
    pub fn vector(&self, i: usize) -> &[f32] {
        &self.vectors[i * self.dim..(i + 1) * self.dim]
    }

    /// All entries.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Where entry `i`'s image is: its `file` joined to the folder of `index_path` when
    /// relative, as is when absolute.
    pub fn resolve_file(&self, index_path: &Path, i: usize) -> PathBuf {
        let file = Path::new(&self.entries[i].file);
        if file.is_absolute() {
            file.to_path_buf()
        } else {
            index_path
                .parent()
                .unwrap_or_else(|| Path::new(""))
                .join(file)
        }
    }

    /// Checks that every entry's image lies inside the folder holding the index at
    /// `index_path`: its `file` is relative and does not climb out with `..`. An index may come
    /// from someone else, and `search` reads the images its entries name; unchecked, an entry
    /// could make it read any file on the machine (`/etc/shadow`, `/dev/zero`). The error
    /// names the first entry that does not. (The check is on the names: a symbolic link inside
    /// the folder is followed, as the user who placed it there intended.)
    pub fn check_files_inside(&self, index_path: &Path) -> Result<()> {
        use std::path::Component;
        let inside = |file: &Path| {
            let mut depth = 0usize;
            file.components().all(|c| match c {
                Component::Normal(_) => {
                    depth += 1;
                    true
                }
                Component::CurDir => true,
                Component::ParentDir => depth.checked_sub(1).map(|d| depth = d).is_some(),
                Component::RootDir | Component::Prefix(_) => false,
            })
        };
        match self
            .entries
            .iter()
            .enumerate()
            .find(|(_, e)| !inside(Path::new(&e.file)))
        {
            Some((i, e)) => Err(Error::invalid(
                index_path,
                format!(
                    "entry {i} (`{}`) names the image `{}`, outside the index's folder",
                    e.id_str, e.file
                ),
            )
            .into()),
            None => Ok(()),
        }
    }

    /// The file's bytes (see the module docs for the layout).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let identity = serde_json::to_vec(&self.model)
            .map_err(|e| Error::setting("model identity", e.to_string()))?;
        let mut out = Vec::with_capacity(64 + 4 * self.vectors.len() + 48 * self.entries.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes()); // total length, patched below
        out.extend_from_slice(&(self.dim as u32).to_le_bytes());
        out.extend_from_slice(&(self.entries.len() as u64).to_le_bytes());
        put_bytes(&mut out, &identity, "model identity")?;
        for v in &self.vectors {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for e in &self.entries {
            put_bytes(&mut out, e.id_str.as_bytes(), "id_str")?;
            put_bytes(&mut out, e.file.as_bytes(), "file")?;
            out.push(u8::from(e.label.is_some()));
            out.extend_from_slice(&e.label.unwrap_or(0).to_le_bytes());
            out.push(u8::from(e.t_myr.is_some()));
            out.extend_from_slice(&e.t_myr.unwrap_or(0.0).to_le_bytes());
            out.push(u8::from(e.t_peri_myr.is_some()));
            out.extend_from_slice(&e.t_peri_myr.unwrap_or(0.0).to_le_bytes());
            out.push(u8::from(e.simulation.is_some()));
            if let Some(s) = &e.simulation {
                put_bytes(&mut out, s.as_bytes(), "simulation")?;
            }
        }
        let total = (out.len() + CHECKSUM_LEN) as u64;
        out[12..20].copy_from_slice(&total.to_le_bytes());
        let digest = Sha256::digest(&out);
        out.extend_from_slice(&digest);
        Ok(out)
    }

    /// Writes the index to `path` atomically (temporary file, then rename): an existing index
    /// is replaced only by a complete new one.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = self
            .to_bytes()
            .map_err(|e| Error::invalid(path, e.to_string()))?;
        deepgalaxy_core::io::write_atomic(path, |f| f.write_all(&bytes)).map_err(Into::into)
    }

    /// Reads an index. With `expected_dim` (the model's latent size), an index of another
    /// dimension is an error: it was built with a different model.
    pub fn load(path: &Path, expected_dim: Option<usize>) -> Result<LatentIndex> {
        let bytes = deepgalaxy_core::io::read_bytes(path)?;
        LatentIndex::from_bytes(&bytes, path, expected_dim)
    }

    /// Parses the bytes of an index file; `source` names it in errors. See [`Self::load`].
    pub fn from_bytes(
        bytes: &[u8],
        source: &Path,
        expected_dim: Option<usize>,
    ) -> Result<LatentIndex> {
        let bad = |what: String| Error::invalid(source, what);
        if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
            return Err(bad("not a deepgalaxy latent index (wrong magic bytes)".into()).into());
        }
        if bytes.len() < PREFIX_LEN + CHECKSUM_LEN {
            return Err(bad(format!(
                "truncated latent index: {} bytes, shorter than a header",
                bytes.len()
            ))
            .into());
        }
        let mut header = Reader {
            bytes: &bytes[..PREFIX_LEN],
            pos: MAGIC.len(),
        };
        let version = header.u32()?;
        if version > FORMAT_VERSION {
            return Err(bad(format!(
                "latent index format version {version} is newer than this build reads \
                 ({FORMAT_VERSION}); upgrade deepgalaxy"
            ))
            .into());
        }
        if version == 0 {
            return Err(bad("latent index format version 0 is not valid".into()).into());
        }
        let total = header.u64()?;
        if total != bytes.len() as u64 {
            let how = if (bytes.len() as u64) < total {
                "truncated"
            } else {
                "damaged"
            };
            return Err(bad(format!(
                "{how} latent index: the file has {} bytes but its header says {total}",
                bytes.len()
            ))
            .into());
        }
        let (payload, stored) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
        if Sha256::digest(payload).as_slice() != stored {
            return Err(bad(
                "latent index is damaged: SHA-256 checksum mismatch (rebuild it with \
                 `deepgalaxy index`)"
                    .into(),
            )
            .into());
        }
        let mut r = Reader {
            bytes: payload,
            pos: PREFIX_LEN,
        };
        let parse = |e: Malformed| bad(format!("malformed latent index: {}", e.0));
        let dim = r.u32().map_err(parse)? as usize;
        let count = r.u64().map_err(parse)?;
        if let Some(expected) = expected_dim {
            if dim != expected {
                return Err(bad(format!(
                    "latent size {dim} does not match the model's latent size {expected}: \
                     the index was built with another model"
                ))
                .into());
            }
        }
        let identity = r.bytes_u32().map_err(parse)?;
        let model: ModelIdentity = serde_json::from_slice(identity)
            .map_err(|e| bad(format!("malformed model identity in latent index: {e}")))?;
        let floats = usize::try_from(count)
            .ok()
            .and_then(|n| n.checked_mul(dim))
            .filter(|&f| f.checked_mul(4).is_some_and(|b| b <= r.remaining()))
            .ok_or_else(|| {
                bad(format!(
                    "malformed latent index: {count} entries of dimension {dim} do not fit in \
                     the file"
                ))
            })?;
        let count = count as usize; // fits: checked above
        let raw = r.take(4 * floats).map_err(parse)?;
        let vectors: Vec<f32> = raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let mut entries = Vec::with_capacity(count.min(r.remaining() / 18));
        for i in 0..count {
            let entry = read_entry(&mut r, version)
                .map_err(|e| bad(format!("malformed latent index, entry {i}: {}", e.0)))?;
            entries.push(entry);
        }
        if r.remaining() != 0 {
            return Err(bad(format!(
                "malformed latent index: {} unexpected bytes after the entries",
                r.remaining()
            ))
            .into());
        }
        LatentIndex::new(dim, model, vectors, entries)
            .map_err(|e| bad(e.to_string()))
            .map_err(Into::into)
    }
}

/// Appends a `u32` length and the bytes.
fn put_bytes(out: &mut Vec<u8>, b: &[u8], what: &str) -> Result<()> {
    let n = u32::try_from(b.len())
        .map_err(|_| Error::setting(what, format!("{} bytes is too long", b.len())))?;
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(b);
    Ok(())
}

fn read_entry(r: &mut Reader<'_>, version: u32) -> Result<Entry, Malformed> {
    let id_str = r.string()?;
    let file = r.string()?;
    let has_label = r.flag()?;
    let label = r.u32()?;
    let mut time = |what: &str| -> Result<Option<f64>, Malformed> {
        let has = r.flag()?;
        let t = f64::from_le_bytes(r.array()?);
        if has && !t.is_finite() {
            return Err(Malformed(format!("{what} of `{id_str}` is {t}")));
        }
        Ok(has.then_some(t))
    };
    let t_myr = time("t_myr")?;
    let (t_peri_myr, simulation) = if version >= 2 {
        let t_peri = time("t_peri_myr")?;
        let simulation = if r.flag()? { Some(r.string()?) } else { None };
        (t_peri, simulation)
    } else {
        (None, None)
    };
    Ok(Entry {
        id_str,
        file,
        label: has_label.then_some(label),
        t_myr,
        t_peri_myr,
        simulation,
    })
}

/// What is wrong inside a checksummed payload (only a crafted or buggy file gets here).
struct Malformed(String);

impl From<Malformed> for crate::Error {
    fn from(m: Malformed) -> crate::Error {
        Error::setting("latent index", m.0).into()
    }
}

/// A bounds-checked little-endian cursor.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if n > self.remaining() {
            return Err(Malformed(format!(
                "needs {n} more bytes at offset {}, only {} left",
                self.pos,
                self.remaining()
            )));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Malformed> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u32(&mut self) -> Result<u32, Malformed> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, Malformed> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn flag(&mut self) -> Result<bool, Malformed> {
        match self.array::<1>()?[0] {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(Malformed(format!(
                "flag byte {b} at offset {}",
                self.pos - 1
            ))),
        }
    }

    fn bytes_u32(&mut self) -> Result<&'a [u8], Malformed> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn string(&mut self) -> Result<String, Malformed> {
        let b = self.bytes_u32()?;
        String::from_utf8(b.to_vec())
            .map_err(|_| Malformed(format!("invalid UTF-8 before offset {}", self.pos)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn sample(n: usize, dim: usize) -> LatentIndex {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let vectors = (0..n * dim).map(|_| rng.random::<f32>() - 0.5).collect();
        let entries = (0..n)
            .map(|i| Entry {
                id_str: format!("s_1_m_0.5_cam{i:02}"),
                file: if i % 2 == 0 {
                    format!("images/{i}.png")
                } else {
                    format!("/data/ü/{i}.png")
                },
                label: (i % 3 != 0).then_some(i as u32 % 71),
                t_myr: (i % 4 != 0).then_some(5.0 * i as f64 + 0.25),
                t_peri_myr: (i % 5 != 0).then_some(5.0 * i as f64 - 100.0),
                simulation: (i % 3 != 1).then(|| format!("s_{}", i / 4)),
            })
            .collect();
        let model = ModelIdentity {
            model_digest: "ab".repeat(32),
            training_digest: Some("cd".repeat(32)),
            preprocess: Preprocess::default(),
        };
        LatentIndex::new(dim, model, vectors, entries).unwrap()
    }

    #[test]
    fn version_1_files_read_without_phase_times_and_simulations() {
        let identity = serde_json::to_vec(&sample(1, 2).model).unwrap();
        let mut b = Vec::new();
        b.extend_from_slice(&MAGIC);
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&1u64.to_le_bytes());
        put_bytes(&mut b, &identity, "identity").unwrap();
        for v in [0.5f32, -1.0] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        put_bytes(&mut b, b"a", "id").unwrap();
        put_bytes(&mut b, b"a.png", "file").unwrap();
        b.push(1);
        b.extend_from_slice(&7u32.to_le_bytes());
        b.push(1);
        b.extend_from_slice(&35.0f64.to_le_bytes());
        let total = (b.len() + CHECKSUM_LEN) as u64;
        b[12..20].copy_from_slice(&total.to_le_bytes());
        let digest = Sha256::digest(&b);
        b.extend_from_slice(&digest);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.idx");
        std::fs::write(&path, &b).unwrap();
        let index = LatentIndex::load(&path, Some(2)).unwrap();
        let e = &index.entries()[0];
        assert_eq!((e.label, e.t_myr), (Some(7), Some(35.0)));
        assert_eq!((e.t_peri_myr, e.simulation.as_deref()), (None, None));
        assert_eq!(e.time(TimeTarget::Snapshot), Some(35.0));
        assert_eq!(e.time(TimeTarget::TPeri), None);
        assert_eq!(index.vector(0), [0.5, -1.0]);
    }

    #[test]
    fn round_trip_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lib.idx");
        let index = sample(25, 16);
        index.save(&path).unwrap();
        let back = LatentIndex::load(&path, Some(16)).unwrap();
        assert_eq!(back, index);
        assert_eq!(back.vector(3), index.vector(3));
        assert_eq!(back.resolve_file(&path, 0), dir.path().join("images/0.png"));
        assert_eq!(back.resolve_file(&path, 1), PathBuf::from("/data/ü/1.png"));
        // only the index itself in the folder: the temporary file was renamed
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn entries_outside_the_index_folder_are_named() {
        let s = sample(3, 4);
        let with = |file: &str| {
            let mut entries = s.entries().to_vec();
            entries[1].file = file.into();
            LatentIndex::new(4, s.model().clone(), s.vectors().to_vec(), entries).unwrap()
        };
        let idx = Path::new("lib/library.idx");
        for ok in ["images/1.png", "./a/../b.png", "a/b/../../c.png"] {
            assert!(with(ok).check_files_inside(idx).is_ok(), "{ok}");
        }
        for bad in ["/etc/shadow", "/dev/zero", "../secret.png", "a/../../b.png"] {
            let e = with(bad).check_files_inside(idx).unwrap_err().to_string();
            assert_eq!(
                e,
                format!(
                    "lib/library.idx: entry 1 (`s_1_m_0.5_cam01`) names the image `{bad}`, \
                     outside the index's folder"
                )
            );
        }
    }

    #[test]
    fn empty_index_round_trips() {
        let index = sample(0, 8);
        let bytes = index.to_bytes().unwrap();
        let back = LatentIndex::from_bytes(&bytes, Path::new("e.idx"), None).unwrap();
        assert!(back.is_empty());
        assert_eq!(back.dim(), 8);
    }

    fn load_err(bytes: &[u8], expected: Option<usize>) -> String {
        LatentIndex::from_bytes(bytes, Path::new("lib.idx"), expected)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn each_problem_has_its_own_message() {
        let bytes = sample(10, 16).to_bytes().unwrap();
        let e = load_err(&bytes, Some(32));
        assert!(
            e.starts_with("lib.idx: ") && e.contains("latent size 16"),
            "{e}"
        );
        assert!(e.contains("model's latent size 32"), "{e}");

        let e = load_err(&bytes[..bytes.len() - 100], None);
        assert!(e.contains("truncated"), "{e}");

        let mut flipped = bytes.clone();
        flipped[200] ^= 0x10;
        let e = load_err(&flipped, None);
        assert!(e.contains("checksum mismatch"), "{e}");

        let mut magic = bytes.clone();
        magic[0] = b'X';
        assert!(load_err(&magic, None).contains("wrong magic"));
        assert!(load_err(b"hello", None).contains("wrong magic"));

        let mut newer = bytes.clone();
        newer[8..12].copy_from_slice(&3u32.to_le_bytes());
        let e = load_err(&newer, None);
        assert!(e.contains("version 3 is newer"), "{e}");

        let mut longer = bytes.clone();
        longer.push(0);
        assert!(load_err(&longer, None).contains("damaged"));
    }

    /// A file with a valid checksum but inconsistent content (a buggy or crafted writer) is an
    /// error too, not a panic or a huge allocation.
    #[test]
    fn crafted_payloads_are_errors() {
        let reseal = |mut b: Vec<u8>| {
            let n = b.len() - CHECKSUM_LEN;
            b.truncate(n);
            let digest = Sha256::digest(&b);
            b.extend_from_slice(&digest);
            b
        };
        let bytes = sample(3, 8).to_bytes().unwrap();
        let mut huge = bytes.clone();
        huge[24..32].copy_from_slice(&u64::MAX.to_le_bytes());
        let e = load_err(&reseal(huge), None);
        assert!(e.contains("do not fit"), "{e}");

        let mut nan = bytes.clone();
        // the first vector starts right after the identity JSON
        let id_len = u32::from_le_bytes(bytes[32..36].try_into().unwrap()) as usize;
        let v0 = 36 + id_len;
        nan[v0..v0 + 4].copy_from_slice(&f32::NAN.to_le_bytes());
        let e = load_err(&reseal(nan), None);
        assert!(e.contains("NaN or infinite latent"), "{e}");
    }

    #[test]
    fn random_truncations_and_bit_flips_are_errors() {
        let bytes = sample(40, 32).to_bytes().unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(99);
        for _ in 0..200 {
            let cut = rng.random_range(0..bytes.len());
            let e = load_err(&bytes[..cut], None);
            assert!(e.starts_with("lib.idx: "), "{e}");
        }
        for _ in 0..200 {
            let mut b = bytes.clone();
            let at = rng.random_range(0..b.len());
            b[at] ^= 1 << rng.random_range(0..8);
            let e = load_err(&b, None);
            assert!(e.starts_with("lib.idx: "), "{e}");
        }
    }

    #[test]
    fn new_rejects_inconsistent_input() {
        let s = sample(2, 4);
        let m = s.model().clone();
        let e = s.entries().to_vec();
        assert!(LatentIndex::new(4, m.clone(), vec![0.0; 7], e.clone()).is_err());
        assert!(LatentIndex::new(0, m.clone(), vec![], vec![]).is_err());
        let mut v = vec![0.0; 8];
        v[5] = f32::INFINITY;
        let err = LatentIndex::new(4, m, v, e).unwrap_err().to_string();
        assert!(err.contains("entry 1"), "{err}");
    }
}
