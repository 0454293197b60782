//! Fuzz test of the latent index file parser: seeded mutations of a valid index (see
//! `deepgalaxy_core::fuzz`), half of them resealed (length and SHA-256 recomputed) so that the
//! parser behind the checksum sees them as a crafted file would reach it. Every case is an
//! index that passes [`LatentIndex::new`]'s checks or an error naming the file; no panic, and
//! no allocation sized by a header beyond the file's own size.

use std::path::Path;

use deepgalaxy_core::fuzz::{mutate, run, PeakAlloc, Rng};
use deepgalaxy_core::Preprocess;
use deepgalaxy_runtime::library::index::{Entry, LatentIndex, ModelIdentity};
use sha2::{Digest, Sha256};

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

fn sample() -> LatentIndex {
    let (n, dim) = (6, 8);
    let vectors = (0..n * dim).map(|i| (i as f32 * 0.37).sin()).collect();
    let entries = (0..n)
        .map(|i| Entry {
            id_str: format!("s_1_m_0.5_cam{i:02}"),
            file: format!("images/{i}.png"),
            label: (i % 3 != 0).then_some(i as u32),
            t_myr: (i % 2 == 0).then_some(5.0 * i as f64 + 0.25),
            t_peri_myr: None,
            simulation: None,
        })
        .collect();
    let model = ModelIdentity {
        model_digest: "ab".repeat(32),
        training_digest: Some("cd".repeat(32)),
        preprocess: Preprocess::default(),
    };
    LatentIndex::new(dim, model, vectors, entries).unwrap()
}

/// `bytes` with the header's total length and the SHA-256 trailer made to match again.
fn reseal(mut b: Vec<u8>) -> Vec<u8> {
    if b.len() < 20 + 32 {
        return b;
    }
    b.truncate(b.len() - 32);
    let total = (b.len() + 32) as u64;
    b[12..20].copy_from_slice(&total.to_le_bytes());
    let digest = Sha256::digest(&b);
    b.extend_from_slice(&digest);
    b
}

#[test]
fn latent_index_fuzz() {
    let valid = sample().to_bytes().unwrap();
    let mut parsed = 0;
    // an index is read whole, so a parse may hold a few times the file's size, never more
    let n = run(
        "latent index",
        100_000,
        0x1d8,
        64 * valid.len(),
        |rng: &mut Rng| {
            let mut b = mutate(rng, &valid, &[b"DGLXIDX\0", &[0xff; 8]]);
            if rng.below(2) == 0 {
                b = reseal(b);
            }
            match LatentIndex::from_bytes(&b, Path::new("lib.idx"), None) {
                Ok(index) => {
                    parsed += 1;
                    assert_eq!(index.vectors().len(), index.len() * index.dim());
                    assert!(index.vectors().iter().all(|v| v.is_finite()));
                    // what loads saves and loads back the same
                    let again = index.to_bytes().unwrap();
                    let back = LatentIndex::from_bytes(&again, Path::new("lib.idx"), None).unwrap();
                    assert_eq!(back, index);
                }
                Err(e) => {
                    let e = e.to_string();
                    assert!(
                        e.starts_with("lib.idx: "),
                        "error does not name the file: {e}"
                    );
                }
            }
        },
    );
    assert_eq!(n, 100_000);
    assert!(parsed > 100, "only {parsed} mutated indexes parsed");
}
