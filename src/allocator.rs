//! The binary's memory allocator: mimalloc, told to keep the memory it frees (a program's
//! choice, so it lives here and not in a library; `benches/train_throughput.rs` includes this
//! file to measure with the same allocator).
//!
//! A training step allocates and frees tensors of tens of MB. glibc's malloc handed each back
//! to the kernel (mmap/munmap), and the page faults and TLB shootdowns were a fifth of a step
//! (`benches/README.md`, Training); mimalloc reuses them, but by default it still returns
//! ("purges") memory that stays free for a second, and the kernel then zeroes fresh pages on
//! the next step. With purging off, page faults and step times fall (figures:
//! `benches/README.md`, Training). The peak is reached on every step anyway, so keeping it
//! costs no memory that a step does not use.

pub use mimalloc::MiMalloc;

/// `mi_option_purge_delay` in the mimalloc v3 that libmimalloc-sys 0.1.49 builds (its
/// `mi_option_e` in `mimalloc.h`); the crate exports no constant for it, by design. A test
/// checks the index against the option's distinctive default.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Makes mimalloc keep freed memory for reuse instead of returning it to the operating system
/// (purge delay -1), unless the environment chose (`MIMALLOC_PURGE_DELAY`, or its old name
/// `MIMALLOC_RESET_DELAY`). Call it at the start of `main` in a program whose global
/// allocator is [`MiMalloc`].
pub fn keep_freed_memory() {
    if ["MIMALLOC_PURGE_DELAY", "MIMALLOC_RESET_DELAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
    {
        return;
    }
    // SAFETY: sets one mimalloc option (mimalloc read its environment when the process
    // loaded, so this overrides the default); documented as not thread safe, it is called
    // before any other thread exists (the start of main).
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

#[cfg(test)]
mod tests {
    /// The index names the purge delay: its default is 1,000 ms in mimalloc v3, a value no
    /// neighbouring option has (they are 0, 1 or 100).
    #[test]
    fn the_option_index_is_the_purge_delay() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return; // the environment set it; the default is not observable
        }
        // SAFETY: reads one option; no other test touches mimalloc's options
        let value = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert_eq!(value, 1000);
    }
}
