//! The process's memory, as the allocator sees it: a fixed mmap threshold for the large
//! buffers a rewrite cycles through, and giving freed heap back when a big structure goes.
//!
//! Why at all: glibc's allocator (the one a Debian build links) keeps freed memory in its
//! arenas, and by default raises its mmap threshold to the size of the first large buffer
//! freed. A layer rewrite takes and frees megabyte buffers on several threads; a scan builds an
//! index of small allocations that is dropped before the rewrite. Without these two calls the
//! 1 GiB strict rebuild peaked at 81 MiB RSS for a heap of 26 MiB.
//!
//! Owns: the two allocator calls. Must not: decide when a structure is dropped (the pipeline
//! does, then calls [`give_back`]). Other platforms and allocators: both are no-ops.

/// Every allocation of 256 KiB or more gets its own mapping, returned to the system on free
/// (gzip chunks, inflate windows, spool buffers). Call once, before any thread starts.
pub fn fix_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a parameter of the allocator, with a constant argument, before
    // any other thread exists. Its failure (0) just keeps glibc's default.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 10);
    }
}

/// Return the freed pages of the heap to the system (after the scan's index is dropped: its
/// many small allocations leave holes the rewrite's mapped buffers never reuse).
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim walks the allocator's own free lists under its locks; it is safe to
    // call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
