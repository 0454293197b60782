//! This CPU's theoretical single-precision peak, for "achieved GFLOP/s" beside it:
//! cores x FMA units x SIMD lanes x 2 FLOP per FMA x clock. Read from /proc/cpuinfo (Linux);
//! two FMA units per core is assumed (Intel since Haswell, AMD since Zen 2), and the clock is
//! the one /proc/cpuinfo reports (turbo may run faster), both stated in the report.

use serde::Serialize;

/// What the peak is computed from.
#[derive(Debug, Clone, Serialize)]
pub struct Cpu {
    /// `model name` from /proc/cpuinfo.
    pub model: String,
    /// Threads this process may use.
    pub cores: usize,
    /// f32 lanes per SIMD register: 16 with AVX-512, 8 with AVX2, 4 otherwise.
    pub lanes: usize,
    /// Whether the CPU has FMA instructions.
    pub fma: bool,
    /// Clock in GHz reported by /proc/cpuinfo (0 when unknown).
    pub ghz: f64,
    /// Assumed FMA units per core.
    pub fma_units: usize,
}

impl Cpu {
    /// Reads /proc/cpuinfo (a CPU of unknown clock when it is missing).
    pub fn detect() -> Cpu {
        let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |name: &str| {
            info.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        let flags = field("flags");
        let has = |f: &str| flags.split_whitespace().any(|x| x == f);
        Cpu {
            model: field("model name"),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            lanes: if has("avx512f") {
                16
            } else if has("avx2") {
                8
            } else {
                4
            },
            fma: has("fma"),
            ghz: field("cpu MHz").parse::<f64>().map_or(0.0, |m| m / 1e3),
            fma_units: 2,
        }
    }

    /// Peak GFLOP/s on `threads` cores.
    pub fn peak_gflops(&self, threads: usize) -> f64 {
        let per_fma = if self.fma { 2.0 } else { 1.0 };
        threads.min(self.cores) as f64
            * self.fma_units as f64
            * self.lanes as f64
            * per_fma
            * self.ghz
    }

    /// One line saying what the peak is and how it was derived.
    pub fn describe(&self) -> String {
        format!(
            "{} ({} threads, {} f32 lanes, FMA {}, {:.2} GHz as /proc/cpuinfo reports); peak = cores x {} FMA units (assumed) x {} lanes x {} FLOP x clock = {:.1} GFLOP/s per core, {:.1} on {} cores",
            self.model,
            self.cores,
            self.lanes,
            if self.fma { "yes" } else { "no" },
            self.ghz,
            self.fma_units,
            self.lanes,
            if self.fma { 2 } else { 1 },
            self.peak_gflops(1),
            self.peak_gflops(self.cores),
            self.cores
        )
    }
}
