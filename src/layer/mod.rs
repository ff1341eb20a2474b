//! Layer bytes: compression codecs and the tar entry stream. The two stages that read
//! layers — [`crate::scan`] and [`crate::rewrite`] — are built on these, within [`Limits`].
//!
//! Owns: [`Limits`] and the layer submodules. Must not: decide policy (what to drop or change).
pub mod codec;
pub mod elf;
pub mod inflate;
pub mod path;
pub mod pgzip;
pub mod splice;
pub mod tar;
pub mod tarfmt;
pub mod tarlist;

/// Test data shared by the codec tests.
#[cfg(test)]
pub mod testdata {
    /// `n` bytes of pseudo-random words and noise (compressible, but not trivially).
    pub fn sample(n: usize, seed: u32) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|i| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                if i % 5 == 0 {
                    (x >> 24) as u8
                } else {
                    b"the layer's words repeat "[i % 25]
                }
            })
            .collect()
    }

    /// Every entry of a (compressed) layer blob with its data.
    pub fn entries(blob: &[u8]) -> Vec<(super::tar::RawEntry, Vec<u8>)> {
        let (_, r) = super::codec::decoder(blob).unwrap();
        let mut tr = super::tar::TarReader::new(r);
        let mut out = Vec::new();
        while let Some(e) = tr.next_entry().unwrap() {
            let mut data = Vec::new();
            tr.copy_data(&mut data).unwrap();
            out.push((e, data));
        }
        out
    }
}

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

pub const DEFAULT_MAX_LAYER_SIZE: u64 = 64 << 30;
/// Off (0) by default: a legitimate file of zeros or logs compresses beyond any ratio a bomb
/// needs, so the ratio cannot tell them apart; the absolute bound `--max-layer-size` is what
/// bounds the work. An operator may opt in for sources where such files are not expected.
pub const DEFAULT_MAX_RATIO: u64 = 0;
pub const DEFAULT_MAX_ENTRIES: u64 = 4_000_000;
/// When `--max-ratio` is set, it is judged only once a layer has produced this much: small
/// layers (a few files of zeros) legitimately compress beyond any sane ratio, and cost nothing.
pub const RATIO_FLOOR: u64 = 64 << 20;
/// Names and file prefixes the scan keeps in memory for a whole run, at most.
pub const MAX_KEPT_BYTES: u64 = 4 << 30;

/// What reading layers may cost: uncompressed bytes per layer (`--max-layer-size`, the bound on
/// a decompression bomb's work), optionally the uncompressed/compressed ratio (`--max-ratio`, 0 =
/// off, to stop a bomb earlier at the price of refusing very compressible legitimate files) and the
/// entries kept in memory across the run (`--max-entries`, with [`MAX_KEPT_BYTES`] of names and
/// prefixes). Clones share the entry count: one run, one budget.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_layer_size: u64,
    pub max_ratio: u64,
    pub max_entries: u64,
    entries: Arc<AtomicU64>,
    kept_bytes: Arc<AtomicU64>,
    /// Set when the run is interrupted: readers stop at their next read.
    cancel: Option<&'static AtomicBool>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::new(DEFAULT_MAX_LAYER_SIZE, DEFAULT_MAX_RATIO, DEFAULT_MAX_ENTRIES)
    }
}

impl Limits {
    pub fn new(max_layer_size: u64, max_ratio: u64, max_entries: u64) -> Limits {
        Limits {
            max_layer_size,
            max_ratio,
            max_entries,
            entries: Arc::new(AtomicU64::new(0)),
            kept_bytes: Arc::new(AtomicU64::new(0)),
            cancel: None,
        }
    }

    /// Readers under these limits fail once `flag` is set (Ctrl-C), so blocking work ends soon.
    pub fn with_cancel(mut self, flag: &'static AtomicBool) -> Limits {
        self.cancel = Some(flag);
        self
    }

    pub fn cancelled(&self) -> bool {
        self.cancel.is_some_and(|c| c.load(Ordering::Relaxed))
    }

    /// Account for one more entry kept in memory, with `bytes` of names and prefix.
    pub fn take_entry(&self, bytes: u64) -> io::Result<()> {
        let n = self.entries.fetch_add(1, Ordering::Relaxed) + 1;
        if n > self.max_entries {
            return Err(tar::bad(format!(
                "the image has more than {} entries (--max-entries; each is kept in memory)",
                self.max_entries
            )));
        }
        let b = self.kept_bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if b > MAX_KEPT_BYTES {
            return Err(tar::bad(format!(
                "the image's entry names and scanned prefixes exceed {} GiB in memory",
                MAX_KEPT_BYTES >> 30
            )));
        }
        Ok(())
    }

    /// Return what a reader that failed had taken with [`Limits::take_entry`]: a failed scan
    /// keeps nothing, and may be run again.
    pub fn give_back(&self, entries: u64, bytes: u64) {
        self.entries.fetch_sub(entries, Ordering::Relaxed);
        self.kept_bytes.fetch_sub(bytes, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod hostile_tests;
