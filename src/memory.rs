//! The process's memory, as the allocator sees it: a fixed mmap threshold for the large
//! buffers a rewrite cycles through, and giving freed heap back when a big structure goes.
//!
//! Why at all: glibc's allocator (the one a Debian build links) keeps freed memory in its
//! arenas, and by default raises its mmap threshold to the size of the first large buffer
//! freed. A layer rewrite takes and frees megabyte buffers on several threads; a scan builds an
//! index of small allocations that is dropped before the rewrite. Without these two calls the
//! 1 GiB strict rebuild peaked at 81 MiB RSS for a heap of 26 MiB.
//!
//! Owns: the two allocator calls, and in unit tests a counting allocator ([`counting`]) that
//! proves what a structure costs per entry. Must not: decide when a structure is dropped (the
//! pipeline does, then calls [`give_back`]). Other platforms and allocators: both are no-ops.

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

/// Unit tests' allocator: the system's, counting per thread the bytes asked for and not yet
/// freed, and their peak. Per thread, so tests running side by side do not see each other's.
/// What a thread frees that another allocated counts against it (the scan's decompressing
/// thread hands it a few buffers): a measure is then low by at most those.
#[cfg(test)]
pub mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static LIVE: Cell<i64> = const { Cell::new(0) };
        static PEAK: Cell<i64> = const { Cell::new(0) };
    }

    fn add(n: i64) {
        let _ = LIVE.try_with(|l| {
            l.set(l.get() + n);
            let _ = PEAK.try_with(|p| p.set(p.get().max(l.get())));
        });
    }

    struct Counting;

    // SAFETY: every call is passed to System unchanged; the counting touches only
    // thread-locals with const initialisers (no allocation, no destructor).
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            // SAFETY: as the caller promised for `l`.
            let p = unsafe { System.alloc(l) };
            if !p.is_null() {
                add(l.size() as i64);
            }
            p
        }
        unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
            // SAFETY: as the caller promised for `l`.
            let p = unsafe { System.alloc_zeroed(l) };
            if !p.is_null() {
                add(l.size() as i64);
            }
            p
        }
        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            // SAFETY: `p` was allocated by System with `l` (every allocation goes through here).
            unsafe { System.dealloc(p, l) };
            add(-(l.size() as i64));
        }
        unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
            // SAFETY: as the caller promised for `p`, `l` and `new`.
            let q = unsafe { System.realloc(p, l, new) };
            if !q.is_null() {
                add(new as i64 - l.size() as i64);
            }
            q
        }
    }

    #[global_allocator]
    static ALLOCATOR: Counting = Counting;

    /// Start a measure on this thread: the bytes live now (the peak is reset to them).
    pub fn start() -> i64 {
        let live = LIVE.with(Cell::get);
        PEAK.with(|p| p.set(live));
        live
    }

    /// Since `start`: (bytes live now, the peak), both above what was live at the start.
    pub fn since(start: i64) -> (i64, i64) {
        (LIVE.with(Cell::get) - start, PEAK.with(Cell::get) - start)
    }
}
