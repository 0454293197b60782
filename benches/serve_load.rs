//! Load on `deepgalaxy serve` over loopback: CLIENTS concurrent clients (default 8) send
//! REQUESTS `POST /api/predict` of a Hubble image between them (default 2,000), one connection
//! each. Prints the throughput, the p50 and p99 latency, the failed requests (there must be
//! none) and the server's resident memory after the first tenth of the requests and at the end,
//! with its peak (flat: at most `--threads` inferences run at once, the others wait).
//!
//! The server runs the shipped model over a library it builds first (one simulated merger,
//! 2 cameras, indexed by the same model) in a temporary folder.
//!
//! ```text
//! cargo bench --bench serve_load                     # 8 clients, 2,000 requests
//! cargo bench --bench serve_load -- 16 5000          # CLIENTS REQUESTS
//! ```
#![allow(missing_docs)]

#[path = "../tests/common/http.rs"]
#[allow(dead_code)] // the WebDriver helper is the browser test's
mod http;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_deepgalaxy");

fn run(args: &[&str]) {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .expect("deepgalaxy runs");
    assert!(
        out.status.success(),
        "deepgalaxy {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `VmRSS` and `VmHWM` of process `pid`, in MB.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb / 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    // `cargo bench` passes `--bench`; the numbers are CLIENTS and REQUESTS
    let numbers: Vec<usize> = std::env::args().filter_map(|a| a.parse().ok()).collect();
    let clients = numbers.first().copied().unwrap_or(8).max(1);
    let requests = numbers.get(1).copied().unwrap_or(2000).max(clients);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap();
    let sims = format!("{dir}/sims");
    run(&[
        "simulate",
        "--out",
        &sims,
        "--grid",
        "small",
        "--mergers",
        "1",
        "--particles",
        "2000",
        "--size",
        "64",
        "--cameras",
        "2",
    ]);
    let index = format!("{sims}/library.idx");
    run(&[
        "index",
        "--data",
        &format!("{sims}/catalog.csv"),
        "--output",
        &index,
    ]);
    let mut child = Command::new(BIN)
        .args(["serve", "--index", &index, "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("deepgalaxy serve runs");
    let address = http::served_address(&mut child);
    let pid = child.id();
    let image_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/observations/hst/hst_arp142.jpg");
    let image = std::fs::read(&image_path).unwrap();

    let next = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let early = std::sync::Mutex::new(None);
    let start = Instant::now();
    let mut latencies: Vec<f64> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..clients)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= requests {
                            break;
                        }
                        if n == requests / 10 {
                            *early.lock().unwrap() = Some(memory(pid).0);
                        }
                        let t = Instant::now();
                        let (status, _) =
                            http::request(&address, "POST", "/api/predict?name=arp142.jpg", &image);
                        mine.push(t.elapsed().as_secs_f64());
                        if status != 200 {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    mine
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let seconds = start.elapsed().as_secs_f64();
    let (end_rss, peak) = memory(pid);
    let _ = child.kill();
    let _ = child.wait();
    latencies.sort_by(f64::total_cmp);
    println!(
        "serve, {clients} clients, {} predict requests of {} ({} kB): {:.1} requests/s, \
         p50 {:.1} ms, p99 {:.1} ms, {} failed; server memory {} MB after the first tenth, \
         {end_rss} MB at the end, peak {peak} MB",
        latencies.len(),
        image_path.file_name().unwrap().to_string_lossy(),
        image.len() / 1000,
        latencies.len() as f64 / seconds,
        1000.0 * percentile(&latencies, 0.5),
        1000.0 * percentile(&latencies, 0.99),
        failed.load(Ordering::Relaxed),
        early.lock().unwrap().unwrap_or(0),
    );
    assert_eq!(failed.load(Ordering::Relaxed), 0, "failed requests");
}
