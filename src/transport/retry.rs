//! Retries for registry requests: which failures are worth another try, how long to wait, and
//! the loop that does it. Every registry operation in [`super::registry`] goes through
//! [`RetryPolicy::call`] (requests with a small body: one deadline for the whole exchange) or
//! [`RetryPolicy::stream`] (blob transfers: no deadline, a stalled transfer is caught by the
//! idle timeout instead).
//!
//! Transient: connection refused/reset/aborted, timeouts, a body cut short, HTTP 408, 429 and
//! 5xx (but 501 and 505, which say the server never will). Everything else — 4xx, digest
//! mismatches, our own I/O — fails at once. oci-client does not expose response headers in its
//! errors, so a 429's `Retry-After` cannot be read; a 429 waits at least [`MIN_429_WAIT`] and
//! otherwise backs off like any other transient failure.
//!
//! Waits grow exponentially (`base · 2^attempt`, capped at `max_delay`) with "equal jitter":
//! half fixed, half random, so concurrent clients spread out yet a test can bound the wait. The
//! jitter only moves time, never bytes: retried operations are idempotent (GET, HEAD, PUT of
//! content-addressed data, a manifest PUT of the same bytes), so a retried run produces the same
//! digests as an undisturbed one.
//!
//! Owns: the retry loop and its timing, over any error that can [`Classify`] itself. Must not:
//! know what is being transferred, or which client made the error (that mapping is
//! [`super::errors`]').

use std::fmt::Display;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The least a 429 (Too Many Requests) waits, since its `Retry-After` is not visible to us.
pub const MIN_429_WAIT: Duration = Duration::from_secs(2);

/// How often and how patiently a registry request is tried.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Tries after the first one (`--retries`).
    pub retries: u32,
    /// The first wait; each later one doubles.
    pub base: Duration,
    /// No single wait is longer.
    pub max_delay: Duration,
    /// `--timeout`: the deadline for one small request, and the longest a transfer may make no
    /// progress (nothing read, nothing sent) before it counts as failed.
    pub timeout: Duration,
    /// Where "retrying" lines go.
    pub progress: crate::progress::Progress,
}

pub const DEFAULT_RETRIES: u32 = 5;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: DEFAULT_RETRIES,
            base: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            timeout: DEFAULT_TIMEOUT,
            progress: crate::progress::Progress::default(),
        }
    }
}

/// What to do about a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Worth another try, after at least this long (if the failure says so).
    Retry(Option<Duration>),
    Fail,
}

/// Errors that can tell whether they are transient.
pub trait Classify: Display {
    fn verdict(&self) -> Verdict;
    /// The error for an attempt that hit [`RetryPolicy::timeout`].
    fn timed_out(after: Duration) -> Self;
}

/// A cheap pseudo-random number: SplitMix64 over the clock and a counter. Jitter only needs
/// different clients (and attempts) to differ, not unpredictability.
fn jitter_seed() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let mut z = (nanos as u64) ^ COUNTER.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl RetryPolicy {
    /// The upper bound of the wait before retry number `attempt` (0 for the first retry).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max_delay)
    }

    /// The wait before retry number `attempt`: in `[ceiling/2, ceiling]`, and at least `floor`
    /// (a failure's own hint, e.g. for 429) without exceeding `max_delay` by it.
    pub fn delay(&self, attempt: u32, floor: Option<Duration>, random: u64) -> Duration {
        let c = self.ceiling(attempt);
        let half = c / 2;
        let span = (c - half).as_nanos() as u64;
        let d = half + Duration::from_nanos(if span == 0 { 0 } else { random % (span + 1) });
        match floor {
            Some(f) => d.max(f.min(self.max_delay)),
            None => d,
        }
    }

    /// Run `op` until it succeeds, fails for good, or the retries are spent. Each attempt must
    /// finish within [`RetryPolicy::timeout`]. For small requests (manifests, HEAD, small PUTs).
    pub async fn call<T, E, F, Fut>(&self, what: &dyn Display, op: F) -> Result<T, E>
    where
        E: Classify,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.run(what, true, op).await
    }

    /// As [`RetryPolicy::call`] but without a deadline per attempt: for transfers, whose length
    /// depends on their size; they guard against stalls themselves (a deadline per chunk downloaded, a watchdog on uploads).
    pub async fn stream<T, E, F, Fut>(&self, what: &dyn Display, op: F) -> Result<T, E>
    where
        E: Classify,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.run(what, false, op).await
    }

    async fn run<T, E, F, Fut>(&self, what: &dyn Display, deadline: bool, mut op: F) -> Result<T, E>
    where
        E: Classify,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut attempt = 0u32;
        loop {
            let r = if deadline && !self.timeout.is_zero() {
                match tokio::time::timeout(self.timeout, op()).await {
                    Ok(r) => r,
                    Err(_) => Err(E::timed_out(self.timeout)),
                }
            } else {
                op().await
            };
            let e = match r {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let floor = match e.verdict() {
                Verdict::Retry(floor) if attempt < self.retries => floor,
                _ => return Err(e),
            };
            let wait = self.delay(attempt, floor, jitter_seed());
            attempt += 1;
            self.progress.line(&format!(
                "{what}: {}; retry {attempt} of {} in {:.1} s",
                e.to_string().lines().next().unwrap_or(""),
                self.retries,
                wait.as_secs_f64()
            ));
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_client::errors::OciDistributionError;
    use std::sync::atomic::AtomicU32;

    fn server(code: u16) -> OciDistributionError {
        OciDistributionError::ServerError { code, url: "http://r/v2/".into(), message: String::new() }
    }

    fn policy(retries: u32) -> RetryPolicy {
        RetryPolicy {
            retries,
            base: Duration::from_millis(1),
            max_delay: Duration::from_millis(4),
            timeout: Duration::from_millis(200),
            progress: crate::progress::Progress::Quiet,
        }
    }

    #[test]
    fn backoff_doubles_stays_in_bounds_and_caps() {
        let p = RetryPolicy::default();
        assert_eq!(p.ceiling(0), Duration::from_millis(500));
        assert_eq!(p.ceiling(1), Duration::from_secs(1));
        assert_eq!(p.ceiling(3), Duration::from_secs(4));
        assert_eq!(p.ceiling(6), Duration::from_secs(30), "capped at max_delay");
        assert_eq!(p.ceiling(200), Duration::from_secs(30), "no overflow for absurd attempt numbers");
        for attempt in 0..12 {
            for r in [0, 1, 12345, u64::MAX / 3, u64::MAX] {
                let d = p.delay(attempt, None, r);
                let c = p.ceiling(attempt);
                assert!(d >= c / 2 && d <= c, "attempt {attempt}: {d:?} outside [{:?}, {c:?}]", c / 2);
            }
        }
        // Different random inputs spread the waits.
        assert_ne!(p.delay(4, None, 1), p.delay(4, None, 987_654_321));
        // A 429's floor raises the wait, but never past max_delay.
        assert_eq!(p.delay(0, Some(MIN_429_WAIT), 0), MIN_429_WAIT);
        assert_eq!(p.delay(0, Some(Duration::from_secs(3600)), 0), p.max_delay);
        assert_ne!(jitter_seed(), jitter_seed());
    }

    #[tokio::test]
    async fn retries_transient_failures_then_succeeds() {
        let calls = AtomicU32::new(0);
        let r: Result<u32, OciDistributionError> = policy(3)
            .call(&"op", || async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 => Err(server(503)),
                    1 => Err(OciDistributionError::IoError(std::io::ErrorKind::ConnectionReset.into())),
                    n => Ok(n),
                }
            })
            .await;
        assert_eq!(r.unwrap(), 2);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn gives_up_after_the_retries_and_at_once_on_permanent_errors() {
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = policy(2)
            .call(&"op", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(server(502))
            })
            .await;
        assert!(matches!(r, Err(OciDistributionError::ServerError { code: 502, .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 3, "the first try and 2 retries");

        calls.store(0, Ordering::SeqCst);
        let r: Result<(), _> = policy(5)
            .call(&"op", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(server(404))
            })
            .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1, "a 404 is not retried");
    }

    /// On tokio's paused clock: the time asserted is the policy's own (two timeouts and one
    /// wait of 1–4 ms), exactly, not the machine's.
    #[tokio::test(start_paused = true)]
    async fn a_hung_request_times_out_and_is_retried() {
        let calls = AtomicU32::new(0);
        let t = tokio::time::Instant::now();
        let r: Result<(), OciDistributionError> = policy(1)
            .call(&"op", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                std::future::pending::<()>().await;
                Ok(())
            })
            .await;
        let msg = r.unwrap_err().to_string();
        assert!(msg.contains("--timeout"), "{msg}");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        let spent = t.elapsed();
        assert!(spent >= Duration::from_millis(401) && spent <= Duration::from_millis(404), "{spent:?}");
    }
}
