//! What the unit tests share beyond their modules: a watchdog for the tests that guard against a
//! hang or a blow-up (minutes, not milliseconds). Tests assert counts of work done, never a
//! duration; where only the clock can tell a hang, it is this one generous limit, far from any
//! honest run on a loaded machine.
//!
//! Owns: test helpers. Must not: be compiled outside `cargo test`.

use std::time::Duration;

/// How long a guarded test may run before it counts as hung.
pub const HUNG: Duration = Duration::from_secs(120);

/// Runs `f` on its own thread and returns its value; panics naming `what` if it has not returned
/// within [`HUNG`] (the thread is left behind: the test fails either way).
pub fn unless_hung<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(HUNG) {
        Ok(v) => v,
        // The closure panicked: let the test report that panic.
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(p) => std::panic::resume_unwind(p),
            Ok(()) => panic!("{what}: returned nothing"),
        },
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("{what}: still running after {HUNG:?}: hung"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn returns_the_value_and_passes_a_panic_on() {
        assert_eq!(super::unless_hung("sum", || 2 + 2), 4);
        let caught = std::panic::catch_unwind(|| super::unless_hung("boom", || panic!("inner failure")));
        let p = caught.expect_err("the closure's panic reaches the test");
        assert_eq!(p.downcast_ref::<&str>(), Some(&"inner failure"));
    }
}
