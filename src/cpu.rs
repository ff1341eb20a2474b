//! One CPU budget for a run: a batch's images at once × each image's layers at once × each
//! layer's compression workers must not multiply into dozens of threads on a small machine.
//! The budget starts at the machine's cores and is divided among whatever runs side by side;
//! every share keeps at least one thread, so work always progresses.
//!
//! Compression output never depends on the budget (the parallel gzip cuts fixed-size chunks
//! whatever the worker count), so dividing it changes speed, never digests.
//!
//! Owns: how many threads a piece of work may use. Must not: spawn anything itself.

/// Most compression workers one layer gets, whatever the machine.
pub const MAX_LAYER_WORKERS: usize = 8;

/// Threads a piece of work may keep busy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    threads: usize,
}

impl Default for Budget {
    /// The whole machine.
    fn default() -> Self {
        Budget::machine()
    }
}

impl Budget {
    /// The machine's cores (1 where they cannot be counted).
    pub fn machine() -> Budget {
        Budget::of(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
    }

    pub fn of(threads: usize) -> Budget {
        Budget { threads: threads.max(1) }
    }

    pub fn threads(self) -> usize {
        self.threads
    }

    /// Each of `n` tasks running side by side gets this share (at least one thread).
    pub fn share(self, n: usize) -> Budget {
        Budget::of(self.threads / n.max(1))
    }

    /// Compression workers for one layer when `layers_at_once` layers are rewritten together.
    pub fn layer_workers(self, layers_at_once: usize) -> usize {
        self.share(layers_at_once).threads.min(MAX_LAYER_WORKERS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_never_multiply_and_never_reach_zero() {
        let machine = Budget::of(8);
        // A batch of 4 images, each rewriting 4 layers at once: 8 threads in all, not 4 × 4 × 8.
        let per_image = machine.share(4);
        assert_eq!(per_image.threads(), 2);
        assert_eq!(per_image.layer_workers(4), 1);
        assert!(4 * 4 * per_image.layer_workers(4) <= 16, "at most one thread per layer in flight");
        assert_eq!(Budget::of(2).share(90).threads(), 1);
        assert_eq!(Budget::of(0).threads(), 1);
        assert_eq!(Budget::of(64).layer_workers(1), MAX_LAYER_WORKERS);
    }
}
