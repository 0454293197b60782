//! Fuzz tests of core's parsers of untrusted text: `catalog.csv` and the model card read from
//! ONNX `metadata_props`. Seeded mutations of a valid input (see `deepgalaxy_core::fuzz`); every
//! case must give a value that passes the parser's own checks or an error naming the file, with
//! no panic and a bounded allocation. The harness itself is checked here too: a panicking or
//! over-allocating case fails with its seed.

use std::collections::HashSet;
use std::path::Path;

use deepgalaxy_core::card::{ModelCard, CARD_VERSION};
use deepgalaxy_core::fuzz::{mutate, mutate_json, peak_during, run, PeakAlloc};
use deepgalaxy_core::{Catalog, Preprocess};

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

/// Words that break numeric and CSV parsing.
const TOKENS: &[&[u8]] = &[
    b"NaN",
    b"inf",
    b"-inf",
    b"-1",
    b"1e309",
    b"4294967296",
    b"18446744073709551616",
    b"0x10",
    b"\"",
    b",",
    b"\n",
    b"\r\n",
    b"\0",
    b"\xff\xfe",
    "\u{e9}".as_bytes(),
    b"id_str",
    b"file_loc",
    b"label",
    b"../",
    b"/",
    b"a.png",
    b"",
];

fn panic_text(f: impl FnOnce() + std::panic::UnwindSafe) -> String {
    let e = std::panic::catch_unwind(f).unwrap_err();
    e.downcast_ref::<String>().cloned().unwrap_or_default()
}

#[test]
fn the_harness_reports_a_panicking_case_with_its_seed() {
    let msg = panic_text(|| {
        run("demo", 10, 1, usize::MAX, |rng| {
            assert!(rng.below(4) != 3, "the parser fell over");
        });
    });
    assert!(
        msg.starts_with("demo fuzz: case ")
            && msg.contains("(seed 0x")
            && msg.contains("the parser fell over"),
        "{msg}"
    );
}

#[test]
fn the_harness_bounds_what_a_case_allocates() {
    let (_, peak) = peak_during(|| std::hint::black_box(vec![1u8; 1 << 20]));
    assert!((1 << 20..1 << 21).contains(&peak), "{peak}");
    let msg = panic_text(|| {
        run("greedy", 3, 1, 1 << 20, |_| {
            std::hint::black_box(vec![1u8; 2 << 20]);
        });
    });
    assert!(
        msg.contains("greedy fuzz: case 0") && msg.contains("over the bound of 1048576"),
        "{msg}"
    );
}

#[test]
fn catalog_csv_fuzz() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["a.png", "b.png", "img/c.png"] {
        let p = dir.path().join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"x").unwrap();
    }
    let valid =
        "id_str,file_loc,simulation,camera,snapshot,label,t_myr,mass_ratio,size_ratio,observer\n\
                 a,a.png,s_1_m_1,0,3,3,17.5,1,1,\"HST, ACS\"\n\
                 b,b.png,s_1_m_0.5,13,70,70,352.5,0.5,1.25,\n\
                 c,img/c.png,,,,,,,,note\n";
    let path = dir.path().join("catalog.csv");
    let mut parsed = 0;
    let n = run("catalog csv", 3000, 0xca7a, 16 << 20, |rng| {
        let bytes = mutate(rng, valid.as_bytes(), TOKENS);
        std::fs::write(&path, &bytes).unwrap();
        match Catalog::read(&path) {
            Ok(cat) => {
                parsed += 1;
                assert!(!cat.records.is_empty());
                let ids: HashSet<&str> = cat.records.iter().map(|r| r.id_str.as_str()).collect();
                assert_eq!(ids.len(), cat.records.len(), "ids are unique");
                for r in &cat.records {
                    assert!(cat.resolve(r).is_file(), "{r:?}");
                    assert!(r.t_myr.is_none_or(f64::is_finite), "{r:?}");
                }
            }
            Err(e) => {
                let e = e.to_string();
                assert!(
                    e.contains("catalog.csv"),
                    "error does not name the file: {e}"
                );
            }
        }
    });
    assert_eq!(n, 3000);
    // the mutations are not all fatal: the accepting paths are exercised too
    assert!(parsed > 100, "only {parsed} mutated catalogs parsed");
}

fn card() -> ModelCard {
    ModelCard {
        card_version: CARD_VERSION,
        tool_version: "0.1.0".into(),
        model_spec: serde_json::json!({"backbone": {"kind": "simple", "widths": [8, 16]}}),
        preprocess: Preprocess::default(),
        num_classes: 3,
        class_t_myr: vec![2.5, 7.5, 12.5],
        target: Default::default(),
        time_sigma_scale: None,
        simulations: None,
        latent_dim: Some(16),
        training_digest: Some("ab".repeat(32)),
        split: Some("by-simulation".into()),
        metrics: [("top1".to_string(), 0.75)].into_iter().collect(),
        precision: "fp32".into(),
        quantization: None,
        test: None,
    }
}

#[test]
fn model_card_fuzz() {
    let props = card().to_metadata().unwrap();
    let mut parsed = 0;
    let n = run("model card", 5000, 0xcad, 16 << 20, |rng| {
        let mut p = props.clone();
        for _ in 0..1 + rng.below(3) {
            let i = rng.below(p.len());
            match rng.below(6) {
                0 => {
                    p.remove(i);
                }
                1 => p.push(p[i].clone()),
                2 => {
                    let k = mutate(rng, p[i].0.as_bytes(), &[b"deepgalaxy."]);
                    p[i].0 = String::from_utf8_lossy(&k).into_owned();
                }
                3 => {
                    let v = mutate(rng, p[i].1.as_bytes(), TOKENS);
                    p[i].1 = String::from_utf8_lossy(&v).into_owned();
                }
                _ => {
                    // (an earlier mutation of this case may have left it not JSON)
                    if let Ok(mut v) = serde_json::from_str::<serde_json::Value>(&p[i].1) {
                        mutate_json(rng, &mut v);
                        p[i].1 = v.to_string();
                    }
                }
            }
            if p.is_empty() {
                break;
            }
        }
        match ModelCard::from_metadata(
            p.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            Path::new("m.onnx"),
        ) {
            Ok(c) => {
                parsed += 1;
                assert_eq!(c.class_t_myr.len(), c.num_classes);
                c.validate().unwrap();
            }
            Err(e) => {
                let e = e.to_string();
                assert!(
                    e.starts_with("m.onnx: "),
                    "error does not name the file: {e}"
                );
            }
        }
    });
    assert_eq!(n, 5000);
    assert!(parsed > 100, "only {parsed} mutated cards parsed");
}
