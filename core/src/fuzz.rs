//! A mutation-fuzzing harness for the parsers of untrusted bytes, on stable Rust and inside
//! `cargo test` (feature `fuzz`, enabled by the crates' dev-dependencies only).
//!
//! cargo-fuzz and libFuzzer need a nightly toolchain, which this project cannot install, so
//! each parser's test runs a fixed number of seeded cases instead: a valid input (an index
//! file, a catalog, a model card ...) mutated by bit flips, truncations, splices, deletions,
//! duplicated ranges and "interesting" numbers or tokens written over it, or for JSON formats
//! a value replaced, removed or repeated ([`mutate_json`]). [`run`] runs the
//! cases, turns a panic into a test failure that names the case's seed (so it can be replayed
//! and kept as a regression test), and, with [`PeakAlloc`] as the test binary's global
//! allocator, fails a case whose parse allocated more than a bound: a size read from a header
//! must be checked before it is allocated.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// A small seeded generator (SplitMix64): the same seed gives the same cases on every machine.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// One of `items` (which must not be empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Integers that break size arithmetic: zero, one, sign and width boundaries.
const INTERESTING: [u64; 12] = [
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    u64::MAX,
];

/// `input` with one to four random mutations; `tokens` are spliced in as whole words (for text
/// formats: numbers that overflow, `NaN`, quotes, separators ...).
pub fn mutate(rng: &mut Rng, input: &[u8], tokens: &[&[u8]]) -> Vec<u8> {
    let mut b = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = b.len();
        let at = rng.below(len + 1);
        match rng.below(8) {
            // flip one bit
            0 if len > 0 => {
                let i = rng.below(len);
                b[i] ^= 1 << rng.below(8);
            }
            // truncate
            1 => b.truncate(at),
            // delete a range
            2 => {
                let end = (at + 1 + rng.below(16)).min(len);
                b.drain(at.min(end)..end);
            }
            // duplicate a range somewhere else (a splice of the input with itself)
            3 if len > 0 => {
                let from = rng.below(len);
                let end = (from + 1 + rng.below(64)).min(len);
                let piece = b[from..end].to_vec();
                b.splice(at..at, piece);
            }
            // an interesting integer written over 1, 2, 4 or 8 bytes (little-endian)
            4 => {
                let width = 1 << rng.below(4);
                let v = rng.pick(&INTERESTING).to_le_bytes();
                let end = (at + width).min(len);
                b.splice(at..end, v[..width].iter().copied());
            }
            // a token, inserted or written over a word
            5 | 6 if !tokens.is_empty() => {
                let t = rng.pick(tokens).to_vec();
                let end = if rng.below(2) == 0 {
                    at
                } else {
                    (at + t.len()).min(len)
                };
                b.splice(at..end, t);
            }
            // random bytes
            _ => {
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                b.splice(at..at, bytes);
            }
        }
    }
    b
}

/// Replaces one value of the JSON tree `v` (an object field, an array element or `v` itself)
/// by a value that breaks numbers, lengths or types, or removes it, or repeats or empties an
/// array: the mutations of a text format that keep it JSON, so that the reader behind the JSON
/// parser is reached.
pub fn mutate_json(rng: &mut Rng, v: &mut serde_json::Value) {
    use serde_json::{json, Value};
    fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    let key = k.replace('~', "~0").replace('/', "~1");
                    pointers(x, format!("{at}/{key}"), out);
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    pointers(x, format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
        out.push(at);
    }
    let mut all = Vec::new();
    pointers(v, String::new(), &mut all);
    let at = rng.pick(&all).clone();
    let replacement = match rng.below(16) {
        0 => json!(0),
        1 => json!(-1),
        2 => json!(1),
        3 => json!(0x8000_0000u64),
        4 => json!(0x1_0000_0000u64),
        5 => json!(0x8000_0000_0000_0000u64),
        6 => json!(u64::MAX),
        7 => json!(i64::MIN),
        8 => json!(1e308),
        9 => json!(0.5),
        10 => Value::Null,
        11 => json!(""),
        12 => json!([]),
        13 => json!({}),
        // remove it from its object or array
        14 => {
            if let Some((parent, key)) = at.rsplit_once('/') {
                match v.pointer_mut(parent) {
                    Some(Value::Object(m)) => {
                        m.remove(&key.replace("~1", "/").replace("~0", "~"));
                    }
                    Some(Value::Array(a)) => {
                        if let Ok(i) = key.parse::<usize>() {
                            a.remove(i);
                        }
                    }
                    _ => {}
                }
            }
            return;
        }
        // an array repeated or emptied
        _ => {
            if let Some(Value::Array(a)) = v.pointer_mut(&at) {
                if rng.below(2) == 0 {
                    a.clear();
                } else {
                    let copy = a.clone();
                    a.extend(copy);
                }
            }
            return;
        }
    };
    if let Some(x) = v.pointer_mut(&at) {
        *x = replacement;
    }
}

thread_local! {
    // bytes this thread holds now, and the most it held since the last reset
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

/// A global allocator for fuzz-test binaries (`#[global_allocator] static A: PeakAlloc =
/// PeakAlloc;`): the system allocator, counting per thread the bytes held, so that [`run`] can
/// bound what one parse allocates. Counting is per thread so that tests running in parallel do
/// not see each other's allocations.
pub struct PeakAlloc;

fn account(delta: isize) {
    // try_with: the thread-locals may be gone while a thread shuts down
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call is forwarded to the system allocator unchanged; the counting touches only
// `const`-initialised thread-locals, which never allocate.
unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        account(layout.size() as isize);
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        account(layout.size() as isize);
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        account(-(layout.size() as isize));
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        account(new_size as isize - layout.size() as isize);
        System.realloc(ptr, layout, new_size)
    }
}

/// Runs `f` and returns its result with the most bytes this thread held during it, above what
/// it held before. Zero when [`PeakAlloc`] is not the global allocator.
pub fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let out = f();
    let peak = PEAK.with(Cell::get);
    (out, (peak - base).max(0) as usize)
}

/// Runs `cases` fuzz cases of the parser called `name`: case `i` calls `case` with a generator
/// seeded from (`seed`, `i`). A panic, or a case allocating more than `max_bytes` at its peak,
/// fails with the case's seed (replay it with `case(&mut Rng::new(seed))`). Prints
/// `<name> fuzz: <n> cases` and returns `n`. Panics if [`PeakAlloc`] is not the global
/// allocator, since the memory bound would then check nothing.
pub fn run(
    name: &str,
    cases: usize,
    seed: u64,
    max_bytes: usize,
    mut case: impl FnMut(&mut Rng),
) -> usize {
    let (_, probe) = peak_during(|| std::hint::black_box(vec![0u8; 4096]));
    assert!(
        probe >= 4096,
        "{name} fuzz: declare `#[global_allocator] static A: PeakAlloc = PeakAlloc;` in the test binary"
    );
    for i in 0..cases {
        let case_seed = Rng::new(seed ^ (i as u64).wrapping_mul(0x2545_f491_4f6c_dd1d)).next_u64();
        let mut rng = Rng::new(case_seed);
        let (outcome, peak) = peak_during(|| catch_unwind(AssertUnwindSafe(|| case(&mut rng))));
        if let Err(panic) = outcome {
            let what = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            panic!("{name} fuzz: case {i} (seed {case_seed:#x}) panicked: {what}");
        }
        assert!(
            peak <= max_bytes,
            "{name} fuzz: case {i} (seed {case_seed:#x}) allocated {peak} bytes at its peak, over the bound of {max_bytes}"
        );
    }
    eprintln!("{name} fuzz: {cases} cases");
    cases
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_deterministic_and_mutations_change_the_input() {
        let (mut a, mut b) = (Rng::new(5), Rng::new(5));
        assert_eq!(
            (0..4).map(|_| a.next_u64()).collect::<Vec<_>>(),
            (0..4).map(|_| b.next_u64()).collect::<Vec<_>>()
        );
        let input = b"id_str,file_loc\na,a.png\n";
        let mut rng = Rng::new(1);
        let changed = (0..100)
            .filter(|_| mutate(&mut rng, input, &[b"NaN"]) != input)
            .count();
        assert!(
            changed >= 90,
            "{changed} of 100 mutations changed the input"
        );
    }

    #[test]
    fn json_mutations_reach_nested_values_and_keep_json() {
        let valid = serde_json::json!({"a": {"b": [1, 2, 3]}, "c/d": "x"});
        let mut rng = Rng::new(3);
        let mut nested = 0;
        for _ in 0..200 {
            let mut v = valid.clone();
            mutate_json(&mut rng, &mut v);
            if v["a"]["b"] != valid["a"]["b"] {
                nested += 1;
            }
        }
        assert!((40..200).contains(&nested), "{nested} of 200 changed a/b");
    }
}
