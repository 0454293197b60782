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
