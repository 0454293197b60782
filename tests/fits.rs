//! FITS reading checked against astropy: the committed fixtures (made by
//! `fixtures/make_fits.py`) hold astropy's own reading of each file in `expected.json`; under
//! the `peers` feature the script runs again in CI so the fixtures cannot drift from astropy.

mod common;

use std::path::Path;

use deepgalaxy_core::image::{load, SampleType};

/// Every readable file in `dir` gives astropy's shape and values (NaN where astropy has NaN).
fn check_against_astropy(dir: &Path) {
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let files = expected.as_object().unwrap();
    assert_eq!(files.len(), 7);
    for (name, exp) in files {
        let img = load(&dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let shape: Vec<usize> = exp["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let ours = match shape.len() {
            2 => vec![img.height, img.width],
            _ => vec![img.channels, img.height, img.width],
        };
        assert_eq!(ours, shape, "{name}");
        assert_eq!(
            img.sample,
            SampleType::Fits {
                bitpix: exp["bitpix"].as_i64().unwrap() as i8
            },
            "{name}"
        );
        let values = exp["values"].as_array().unwrap();
        assert_eq!(values.len(), img.data.len(), "{name}");
        for (i, (v, &got)) in values.iter().zip(&img.data).enumerate() {
            match v.as_f64() {
                None => assert!(got.is_nan(), "{name}[{i}]: expected NaN, got {got}"),
                Some(want) => assert_eq!(got, want as f32, "{name}[{i}]"),
            }
        }
    }
}

#[test]
fn committed_fixtures_match_astropy() {
    check_against_astropy(&common::root().join("fixtures/fits"));
}

#[test]
fn bad_fits_files_are_clear_errors() {
    let dir = common::root().join("fixtures/fits");
    let cases = [
        ("no_image.fits", "no image found"),
        ("bad_bitpix.fits", "unsupported BITPIX"),
        ("truncated.fits", "data unit truncated"),
    ];
    for (name, want) in cases {
        let err = load(&dir.join(name)).unwrap_err().to_string();
        assert!(err.contains(name), "{name}: {err}");
        assert!(err.contains(want), "{name}: {err}");
    }
    let missing = load(&dir.join("nope.fits")).unwrap_err().to_string();
    assert!(missing.contains("nope.fits"), "{missing}");
}

#[cfg(feature = "peers")]
#[test]
fn astropy_written_now_reads_back_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    common::run_python(
        &common::root().join("fixtures/make_fits.py"),
        &[tmp.path().as_os_str()],
    );
    check_against_astropy(tmp.path());
}

/// What `simulate --format fits` writes is standard FITS to astropy: it verifies without a
/// fix, gives the same values as our reader, and its WCS puts the frame's centre at 0 kpc with
/// the catalog's pixel scale.
#[cfg(all(feature = "peers", feature = "full"))]
#[test]
fn astropy_reads_the_fits_images_simulate_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let catalog =
        deepgalaxy_core::Catalog::read(&common::simulate_fits(&tmp.path().join("sims"))).unwrap();
    let rows: Vec<_> = catalog.records.iter().step_by(97).collect();
    let paths: Vec<std::path::PathBuf> = rows.iter().map(|r| catalog.resolve(r)).collect();
    let args: Vec<&std::ffi::OsStr> = paths.iter().map(|p| p.as_os_str()).collect();
    let json = common::run_python(
        &common::root().join("tests/peers/fits_written_peer.py"),
        &args,
    );
    let astropy: serde_json::Value = serde_json::from_str(&json).unwrap();
    for (r, path) in rows.iter().zip(&paths) {
        let got = &astropy[path.to_str().unwrap()];
        let img = load(path).unwrap();
        assert_eq!(got["shape"], serde_json::json!([16, 16]), "{}", r.id_str);
        let values: Vec<f32> = got["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(values, img.data, "{}", r.id_str);
        assert_eq!(got["BITPIX"], -32);
        assert_eq!(got["BUNIT"], "Lsun/pc2");
        assert_eq!(got["OBJECT"], r.simulation.clone().unwrap());
        assert_eq!(got["CAMERA"], r.camera.unwrap());
        let kpc: f64 = r.extra["kpc_per_pixel"].parse().unwrap();
        assert_eq!(got["CDELT1"].as_f64().unwrap(), kpc);
        assert_eq!(got["CUNIT1"], "kpc");
        // pixel 0 and pixel 15 sit 7.5 pixels either side of the centre
        let corners = got["corners_kpc"].as_array().unwrap();
        let x0 = corners[0][0].as_f64().unwrap();
        let x1 = corners[1][0].as_f64().unwrap();
        assert!(
            (x0 + 7.5 * kpc).abs() < 1e-9 && (x1 - 7.5 * kpc).abs() < 1e-9,
            "{corners:?}"
        );
    }
}
