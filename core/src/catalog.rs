//! `catalog.csv`: the list of images a dataset holds, in the Zoobot convention.
//!
//! Required columns: `id_str` (unique name) and `file_loc` (image path, relative to the
//! catalog's folder, or absolute). Simulated data adds `simulation, camera, snapshot, label,
//! t_myr, mass_ratio, size_ratio` and the merger's phase, `t_peri_myr, separation_kpc,
//! t_coalescence_myr`; these are optional so that a catalog of observations (no labels) reads
//! too. Any other column is kept as text and written back unchanged.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The columns this crate understands, in the order they are written.
pub const KNOWN_COLUMNS: [&str; 12] = [
    "id_str",
    "file_loc",
    "simulation",
    "camera",
    "snapshot",
    "label",
    "t_myr",
    "mass_ratio",
    "size_ratio",
    "t_peri_myr",
    "separation_kpc",
    "t_coalescence_myr",
];

/// One image of a catalog.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CatalogRecord {
    /// Unique identifier.
    pub id_str: String,
    /// Image path relative to the catalog's folder (or absolute).
    pub file_loc: String,
    /// Simulation name (e.g. `s_1_m_0.5`), for splits that hold out whole simulations.
    pub simulation: Option<String>,
    /// Camera index (0..14 for simulated data).
    pub camera: Option<u32>,
    /// Snapshot index (0..71).
    pub snapshot: Option<u32>,
    /// Timescale class.
    pub label: Option<u32>,
    /// Time of the snapshot in Myr.
    pub t_myr: Option<f64>,
    /// Mass ratio of the two galaxies.
    pub mass_ratio: Option<f64>,
    /// Size ratio of the two galaxies.
    pub size_ratio: Option<f64>,
    /// Time relative to the galaxies' first pericentre in Myr (negative before it).
    pub t_peri_myr: Option<f64>,
    /// 3-D distance between the two galaxies' centres in kpc.
    pub separation_kpc: Option<f64>,
    /// Time relative to coalescence in Myr (negative before it); absent when the galaxies do
    /// not coalesce within the simulation.
    pub t_coalescence_myr: Option<f64>,
    /// Any other column, by name.
    pub extra: BTreeMap<String, String>,
}

/// A catalog: its records and where it lives (paths resolve against its folder).
#[derive(Debug, Clone, PartialEq)]
pub struct Catalog {
    /// The images, in file order.
    pub records: Vec<CatalogRecord>,
    root: PathBuf,
}

impl Catalog {
    /// A catalog of `records` whose relative paths resolve against the current folder until it
    /// is written or read.
    pub fn new(records: Vec<CatalogRecord>) -> Catalog {
        Catalog {
            records,
            root: PathBuf::from("."),
        }
    }

    /// The folder relative `file_loc`s resolve against.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The full path of a record's image.
    pub fn resolve(&self, record: &CatalogRecord) -> PathBuf {
        self.root.join(&record.file_loc)
    }

    /// Reads and checks a catalog: required columns present, every row well formed, ids unique,
    /// at least one row, and every `file_loc` pointing at an existing file.
    pub fn read(path: &Path) -> Result<Catalog> {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_path(path)
            .map_err(|e| csv_error(path, 0, e))?;
        let headers = reader.headers().map_err(|e| csv_error(path, 0, e))?.clone();
        for required in ["id_str", "file_loc"] {
            if !headers.iter().any(|h| h == required) {
                return Err(Error::Catalog {
                    path: path.into(),
                    row: 0,
                    what: format!(
                        "missing required column `{required}` (header has: {})",
                        headers.iter().collect::<Vec<_>>().join(",")
                    ),
                });
            }
        }
        let root = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let mut records = Vec::new();
        let mut seen = HashSet::new();
        for (i, row) in reader.records().enumerate() {
            let n = i + 1;
            let row = row.map_err(|e| csv_error(path, n, e))?;
            let rec = parse_row(&headers, &row).map_err(|what| Error::Catalog {
                path: path.into(),
                row: n,
                what,
            })?;
            let bad = |what: String| Error::Catalog {
                path: path.into(),
                row: n,
                what,
            };
            if rec.id_str.is_empty() || rec.file_loc.is_empty() {
                return Err(bad("empty id_str or file_loc".into()));
            }
            if !seen.insert(rec.id_str.clone()) {
                return Err(bad(format!("duplicate id_str `{}`", rec.id_str)));
            }
            let file = root.join(&rec.file_loc);
            if !file.is_file() {
                return Err(bad(format!(
                    "file_loc `{}` does not exist ({})",
                    rec.file_loc,
                    file.display()
                )));
            }
            records.push(rec);
        }
        if records.is_empty() {
            return Err(Error::Catalog {
                path: path.into(),
                row: 0,
                what: "the catalog has no rows".into(),
            });
        }
        Ok(Catalog { records, root })
    }

    /// Writes the catalog atomically: the known columns that any record uses, in
    /// [`KNOWN_COLUMNS`] order, then the extra columns sorted by name. `file_loc`s are written
    /// as they are, so relative ones should be relative to `path`'s folder.
    pub fn write(&self, path: &Path) -> Result<()> {
        let present = |f: &dyn Fn(&CatalogRecord) -> bool| self.records.iter().any(f);
        let mut columns: Vec<&str> = vec!["id_str", "file_loc"];
        type Column<'a> = (&'a str, &'a dyn Fn(&CatalogRecord) -> bool);
        let optional: [Column; 10] = [
            ("simulation", &|r| r.simulation.is_some()),
            ("camera", &|r| r.camera.is_some()),
            ("snapshot", &|r| r.snapshot.is_some()),
            ("label", &|r| r.label.is_some()),
            ("t_myr", &|r| r.t_myr.is_some()),
            ("mass_ratio", &|r| r.mass_ratio.is_some()),
            ("size_ratio", &|r| r.size_ratio.is_some()),
            ("t_peri_myr", &|r| r.t_peri_myr.is_some()),
            ("separation_kpc", &|r| r.separation_kpc.is_some()),
            ("t_coalescence_myr", &|r| r.t_coalescence_myr.is_some()),
        ];
        columns.extend(
            optional
                .iter()
                .filter(|(_, f)| present(*f))
                .map(|(c, _)| *c),
        );
        let extra: BTreeSet<&str> = self
            .records
            .iter()
            .flat_map(|r| r.extra.keys().map(String::as_str))
            .collect();
        columns.extend(extra.iter().copied());
        crate::io::write_atomic(path, |file| {
            let mut w = csv::Writer::from_writer(std::io::BufWriter::new(file));
            w.write_record(&columns)?;
            for r in &self.records {
                w.write_record(columns.iter().map(|c| field(r, c)))?;
            }
            w.flush()
        })
    }

    /// Distinct labels present, sorted.
    pub fn labels(&self) -> Vec<u32> {
        let set: BTreeSet<u32> = self.records.iter().filter_map(|r| r.label).collect();
        set.into_iter().collect()
    }

    /// Distinct simulations present, sorted.
    pub fn simulations(&self) -> Vec<String> {
        let set: BTreeSet<&str> = self
            .records
            .iter()
            .filter_map(|r| r.simulation.as_deref())
            .collect();
        set.into_iter().map(str::to_owned).collect()
    }
}

fn csv_error(path: &Path, row: usize, e: csv::Error) -> Error {
    match e.kind() {
        csv::ErrorKind::Io(_) => match e.into_kind() {
            csv::ErrorKind::Io(io) => Error::io(path, io),
            _ => unreachable!("matched Io above"),
        },
        _ => Error::Catalog {
            path: path.into(),
            row,
            what: e.to_string(),
        },
    }
}

fn field(r: &CatalogRecord, column: &str) -> String {
    fn opt<T: ToString>(v: &Option<T>) -> String {
        v.as_ref().map(T::to_string).unwrap_or_default()
    }
    match column {
        "id_str" => r.id_str.clone(),
        "file_loc" => r.file_loc.clone(),
        "simulation" => opt(&r.simulation),
        "camera" => opt(&r.camera),
        "snapshot" => opt(&r.snapshot),
        "label" => opt(&r.label),
        "t_myr" => opt(&r.t_myr),
        "mass_ratio" => opt(&r.mass_ratio),
        "size_ratio" => opt(&r.size_ratio),
        "t_peri_myr" => opt(&r.t_peri_myr),
        "separation_kpc" => opt(&r.separation_kpc),
        "t_coalescence_myr" => opt(&r.t_coalescence_myr),
        other => r.extra.get(other).cloned().unwrap_or_default(),
    }
}

fn parse_row(
    headers: &csv::StringRecord,
    row: &csv::StringRecord,
) -> std::result::Result<CatalogRecord, String> {
    fn num<T: std::str::FromStr>(col: &str, v: &str) -> std::result::Result<Option<T>, String> {
        if v.is_empty() {
            return Ok(None);
        }
        v.parse()
            .map(Some)
            .map_err(|_| format!("column `{col}`: `{v}` is not a valid number"))
    }
    let mut r = CatalogRecord::default();
    for (col, v) in headers.iter().zip(row.iter()) {
        match col {
            "id_str" => r.id_str = v.to_owned(),
            "file_loc" => r.file_loc = v.to_owned(),
            "simulation" => r.simulation = (!v.is_empty()).then(|| v.to_owned()),
            "camera" => r.camera = num(col, v)?,
            "snapshot" => r.snapshot = num(col, v)?,
            "label" => r.label = num(col, v)?,
            "t_myr" => r.t_myr = num(col, v)?,
            "mass_ratio" => r.mass_ratio = num(col, v)?,
            "size_ratio" => r.size_ratio = num(col, v)?,
            "t_peri_myr" => r.t_peri_myr = num(col, v)?,
            "separation_kpc" => r.separation_kpc = num(col, v)?,
            "t_coalescence_myr" => r.t_coalescence_myr = num(col, v)?,
            // an empty cell is an absent value, as for the optional known columns
            other if !v.is_empty() => {
                r.extra.insert(other.to_owned(), v.to_owned());
            }
            _ => {}
        }
    }
    for (col, v) in [
        ("t_myr", r.t_myr),
        ("t_peri_myr", r.t_peri_myr),
        ("separation_kpc", r.separation_kpc),
        ("t_coalescence_myr", r.t_coalescence_myr),
    ] {
        if let Some(v) = v.filter(|v| !v.is_finite()) {
            return Err(format!("column `{col}`: {v} is not finite"));
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, name: &str) {
        std::fs::create_dir_all(dir.join(name).parent().unwrap()).unwrap();
        std::fs::write(dir.join(name), b"x").unwrap();
    }

    #[test]
    fn round_trip_keeps_every_column() {
        let dir = tempfile::tempdir().unwrap();
        touch(dir.path(), "img/a.png");
        touch(dir.path(), "img/b.png");
        let mut extra = BTreeMap::new();
        extra.insert("observer".to_string(), "HST, \"ACS\"".to_string());
        let cat = Catalog::new(vec![
            CatalogRecord {
                id_str: "a".into(),
                file_loc: "img/a.png".into(),
                simulation: Some("s_1_m_0.5".into()),
                camera: Some(3),
                snapshot: Some(70),
                label: Some(70),
                t_myr: Some(1234.5),
                mass_ratio: Some(0.5),
                size_ratio: Some(1.0),
                t_peri_myr: Some(-12.5),
                separation_kpc: Some(31.25),
                t_coalescence_myr: None,
                extra: extra.clone(),
            },
            CatalogRecord {
                id_str: "b".into(),
                file_loc: "img/b.png".into(),
                ..Default::default()
            },
        ]);
        let path = dir.path().join("catalog.csv");
        cat.write(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(
            "id_str,file_loc,simulation,camera,snapshot,label,t_myr,mass_ratio,size_ratio,\
             t_peri_myr,separation_kpc,observer\n"
        ));
        let back = Catalog::read(&path).unwrap();
        assert_eq!(back.records, cat.records);
        assert_eq!(back.resolve(&back.records[0]), dir.path().join("img/a.png"));
        assert_eq!(back.labels(), vec![70]);
        assert_eq!(back.simulations(), vec!["s_1_m_0.5".to_string()]);
    }

    fn read_err(csv: &str, files: &[&str]) -> String {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            touch(dir.path(), f);
        }
        let path = dir.path().join("catalog.csv");
        std::fs::write(&path, csv).unwrap();
        let e = Catalog::read(&path).unwrap_err().to_string();
        assert!(e.contains("catalog.csv"), "{e}");
        e
    }

    #[test]
    fn bad_catalogs_name_the_problem() {
        let e = read_err("id_str,path\na,a.png\n", &["a.png"]);
        assert!(e.contains("missing required column `file_loc`"), "{e}");
        let e = read_err("id_str,file_loc\na,a.png\nb,gone.png\n", &["a.png"]);
        assert!(
            e.contains("row 2") && e.contains("gone.png") && e.contains("does not exist"),
            "{e}"
        );
        let e = read_err("id_str,file_loc\n", &[]);
        assert!(e.contains("no rows"), "{e}");
        let e = read_err("id_str,file_loc,label\na,a.png,seven\n", &["a.png"]);
        assert!(e.contains("row 1") && e.contains("`label`"), "{e}");
        let e = read_err("id_str,file_loc\na,a.png\na,a.png\n", &["a.png"]);
        assert!(e.contains("duplicate id_str"), "{e}");
        let e = read_err("id_str,file_loc\na,a.png,extra\n", &["a.png"]);
        assert!(e.contains("row 1"), "{e}");
    }

    #[test]
    fn missing_catalog_is_an_io_error_naming_it() {
        let e = Catalog::read(Path::new("/nonexistent/catalog.csv")).unwrap_err();
        assert!(matches!(e, Error::Io { .. }));
        assert!(e.to_string().contains("/nonexistent/catalog.csv"));
    }
}
