//! HDF5 compatibility with the original DeepGalaxy files, checked against h5py: our writer's
//! output reads the same in h5py, h5py's files in the original layout read with the original
//! code's labels, and a malformed group is a clear error.
#![cfg(all(feature = "hdf5", feature = "peers"))]

mod common;

use std::ffi::OsStr;

use deepgalaxy_core::hdf5::{write_deepgalaxy, H5Camera, H5Dataset, H5Simulation};

fn peer(cmd: &str, file: &std::path::Path) -> serde_json::Value {
    let out = common::run_python(
        &common::root().join("tests/peers/h5_peer.py"),
        &[OsStr::new(cmd), file.as_os_str()],
    );
    serde_json::from_str(&out).unwrap_or(serde_json::Value::Null)
}

#[test]
fn our_files_read_the_same_in_h5py() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("ours.hdf5");
    let cam = |k: usize, scale: f32| H5Camera {
        images: (0..2 * 3 * 4)
            .map(|i| ((i * 7 + k) % 256) as f32 * scale)
            .collect(),
        t_myr: vec![5.0 * k as f64, 5.0 * k as f64 + 100.0],
    };
    let sims = vec![
        H5Simulation {
            size_ratio: 1.0,
            mass_ratio: 0.25,
            height: 3,
            width: 4,
            cameras: vec![cam(0, 1.0), cam(1, 1.0)],
        },
        H5Simulation {
            size_ratio: 1.5,
            mass_ratio: 1.0,
            height: 3,
            width: 4,
            cameras: vec![cam(2, 1.0 / 255.0)],
        },
    ];
    write_deepgalaxy(&path, &sims).unwrap();
    let dump = peer("dump", &path);
    let obj = dump.as_object().unwrap();
    assert_eq!(obj.len(), 2 * 2 + 2, "{:?}", obj.keys().collect::<Vec<_>>());
    for sim in &sims {
        let group = format!("s_{}_m_{}", sim.size_ratio, sim.mass_ratio);
        for (k, c) in sim.cameras.iter().enumerate() {
            let imgs = &obj[&format!("{group}/images_camera_{k:02}")];
            assert_eq!(imgs["shape"], serde_json::json!([2, 3, 4]));
            let values = imgs["values"].as_array().unwrap();
            let f16 = imgs["dtype"] == "float16";
            assert!(f16 || imgs["dtype"] == "uint8", "{}", imgs["dtype"]);
            for (v, want) in values.iter().zip(&c.images) {
                let tol = if f16 { 1e-3 } else { 0.0 };
                assert!((v.as_f64().unwrap() as f32 - want).abs() <= tol);
            }
            let times = &obj[&format!("{group}/t_myr_camera_{k:02}")]["values"];
            assert_eq!(times, &serde_json::json!(c.t_myr));
        }
    }
}

#[test]
fn original_layout_from_h5py_reads_with_the_original_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("output_bw_6.hdf5");
    let expected = peer("write-original", &path);
    let expected = expected.as_array().unwrap();
    let ds = H5Dataset::open(&path).unwrap();
    assert_eq!((ds.height, ds.width, ds.dtype.as_str()), (6, 5, "f16"));
    assert_eq!(ds.records.len(), expected.len());
    for want in expected {
        let rec = ds
            .records
            .iter()
            .find(|r| {
                r.simulation == want["simulation"]
                    && r.camera as u64 == want["camera"]
                    && r.snapshot as u64 == want["snapshot"]
            })
            .unwrap_or_else(|| panic!("no record for {want}"));
        assert_eq!(rec.label as u64, want["label"].as_u64().unwrap(), "{want}");
        assert_eq!(rec.t_myr, want["t_myr"].as_f64().unwrap());
        let img = ds.read_image(rec).unwrap();
        assert_eq!(img.data[0] as f64, want["first_value"].as_f64().unwrap());
    }
    // the original's labels span 0..=max and ratios come from the group names
    assert!(ds.records.iter().any(|r| r.label == 0));
    assert!(ds
        .records
        .iter()
        .any(|r| r.size_ratio == 1.25 && r.mass_ratio == 0.75));
}

#[test]
fn mismatched_image_and_time_counts_are_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bad.hdf5");
    peer("write-mismatched", &path);
    let err = H5Dataset::open(&path).err().expect("must fail").to_string();
    assert!(err.contains("bad.hdf5") && err.contains("s_1_m_1"), "{err}");
    assert!(err.contains("4 images but 3 times"), "{err}");
}
