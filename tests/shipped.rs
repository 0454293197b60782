//! The model that ships with deepgalaxy: built into the binary, it answers on the Hubble images
//! of the repository without `--model`, and its card carries its scores on mergers it never saw.

mod common;

use std::ffi::OsStr;
use std::path::Path;

use common::deepgalaxy;

const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/shipped/model.onnx");
const HST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/observations/hst");

#[test]
fn the_shipped_cards_record_test_scores_on_unseen_mergers_only() {
    let int8 = SHIPPED.replace("model.onnx", "model.int8.onnx");
    for file in [SHIPPED, int8.as_str()] {
        check_card(Path::new(file));
    }
}

fn check_card(file: &Path) {
    let card = deepgalaxy_runtime::inference::summary::inspect_onnx(file)
        .unwrap()
        .card
        .unwrap();
    assert_eq!(card.target, deepgalaxy_core::time::TimeTarget::TPeri);
    let sims = card.simulations.as_ref().expect("the mergers of each part");
    let test = card.test.as_ref().expect("scores on the test mergers");
    assert!(!test.simulations.is_empty());
    for s in &test.simulations {
        assert!(sims.test.contains(s) && !sims.seen(s), "{s}");
    }
    // the model beats the best constant answer by a wide margin on mergers it never saw
    assert!(test.score.count >= 1000, "{:?}", test.score);
    assert!(
        test.score.median_abs_myr < 0.25 * test.baseline.median_abs_myr,
        "{:?} against {:?}",
        test.score,
        test.baseline
    );
    assert!(card.latent_dim.is_some(), "search needs the latent");
    if let Some(q) = &card.quantization {
        // an INT8 card says how it was quantised
        assert!(q.calibration_images > 0, "{q:?}");
        assert_eq!(card.precision, "int8");
    }
}

#[test]
fn predict_without_a_model_uses_the_shipped_one_on_hubble_images() {
    let a = OsStr::new;
    let (ok, csv, err) = deepgalaxy(&[a("predict"), a(HST)]);
    assert!(ok, "predict: {err}");
    let mut rows = csv::Reader::from_reader(csv.as_bytes());
    let header = rows.headers().unwrap().clone();
    assert_eq!(&header[3], "t_peri_myr");
    assert_eq!(&header[4], "t_peri_sigma_myr");
    let mut n = 0;
    for r in rows.records() {
        let r = r.unwrap();
        assert!(r[2].is_empty(), "{r:?}");
        let (t, s): (f64, f64) = (r[3].parse().unwrap(), r[4].parse().unwrap());
        assert!(t.is_finite() && (-150.0..300.0).contains(&t), "{r:?}");
        assert!(s.is_finite() && s > 0.0, "{r:?}");
        n += 1;
    }
    assert_eq!(n, 12, "{csv}");
    // the file in the repository and the one built into the binary are the same model
    let (ok, from_file, err) = deepgalaxy(&[a("predict"), a("--model"), a(SHIPPED), a(HST)]);
    assert!(ok, "{err}");
    assert_eq!(from_file, csv);
}
