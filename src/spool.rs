//! The run's temporary files, and interruption. Downloads and rewritten layers go to one
//! `harden-*` directory per run (under `TMPDIR`), which is removed on every exit path:
//! - normally, when the pipeline drops its [`Spool`];
//! - on an error, the same way (the `?` drops it);
//! - on Ctrl-C (SIGINT), SIGTERM (`timeout`, `docker stop`, a pod's termination) and SIGHUP (a
//!   closed terminal), the command's `select!` drops the pipeline (and so the [`Spool`]) and
//!   [`stop_signal`] sets [`INTERRUPTED`] — from a thread of its own, so at once even while
//!   every worker is busy — which makes every layer reader under
//!   [`crate::layer::Limits`] fail at its next read, so the blocking work still running stops
//!   soon; a directory whose removal raced with that work is removed by
//!   [`cleanup_at_exit`], which `main` calls once the runtime, and every thread that could
//!   write there, is gone.
//!
//! The command then exits 128 + the signal's number (130, 143, 129), as a shell reports it.
//!
//! SIGKILL cannot be caught: its directory stays behind, and the next run removes it. Each
//! directory is named `harden-<pid>-…` and holds a `.lock` file its process keeps locked
//! (`flock`) while it lives; the first [`create`] of a run removes every `harden-*` directory
//! of this user under `TMPDIR` whose lock it can take (its process is gone), or, without a
//! lock file (killed between making the directory and locking it), whose PID is not running.
//! Another live run's directory is never touched: its lock is held.
//!
//! Owns: temporary directories, the interrupted flag, the stop signals. Must not: decide what
//! goes in them.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Set by [`stop_signal`]: the run is being abandoned.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// The number of the signal that stopped the run (0: none).
static SIGNAL: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// The signal that stopped the run, if one did: whatever error the work ended with then is a
/// consequence of it.
pub fn stopped_by() -> Option<i32> {
    Some(SIGNAL.load(Ordering::SeqCst)).filter(|&n| n != 0)
}

/// The lock file in each spool directory, held by its process while it lives.
const LOCK: &str = ".lock";

/// Directories not yet removed.
static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// A run's temporary directory, removed when dropped (and at exit if that failed).
pub struct Spool {
    dir: Option<tempfile::TempDir>,
    /// Holds the directory's lock while this spool lives.
    _lock: std::fs::File,
}

/// A new `harden-<pid>-*` directory under `TMPDIR`, locked; the first of a run removes what
/// dead runs left ([`sweep`]).
pub fn create() -> std::io::Result<Spool> {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(|| sweep(&std::env::temp_dir()));
    let dir = tempfile::Builder::new().prefix(&format!("harden-{}-", std::process::id())).tempdir()?;
    let lock = std::fs::File::create(dir.path().join(LOCK))?;
    lock.lock()?;
    if let Ok(mut live) = LIVE.lock() {
        live.push(dir.path().to_path_buf());
    }
    Ok(Spool { dir: Some(dir), _lock: lock })
}

/// Remove the `harden-*` directories under `tmp` that no live run holds: its lock can be taken
/// (the process that held it is gone), or it has no lock and the PID in its name is not running.
/// Only directories of this user; anything else (another user's, a live run's, a name that
/// says no PID) is left alone.
pub fn sweep(tmp: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(tmp) else { return };
    let euid = rustix::process::geteuid().as_raw();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("harden-") else { continue };
        let path = e.path();
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() && m.uid() == euid => {}
            _ => continue,
        }
        let dead = match std::fs::OpenOptions::new().read(true).write(true).open(path.join(LOCK)) {
            // Taken: no process holds it. Kept (as it is dropped only after the removal).
            Ok(f) => f.try_lock().is_ok(),
            Err(_) => rest
                .split_once('-')
                .and_then(|(p, _)| p.parse::<i32>().ok())
                .and_then(rustix::process::Pid::from_raw)
                .is_some_and(|pid| rustix::process::test_kill_process(pid) == Err(rustix::io::Errno::SRCH)),
        };
        if dead {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

impl Spool {
    pub fn path(&self) -> &Path {
        self.dir.as_ref().expect("spool directory present until drop").path()
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let Some(dir) = self.dir.take() else { return };
        let path = dir.path().to_path_buf();
        // On failure (a blocking task wrote a file while it was being removed) the path stays
        // listed for cleanup_at_exit.
        if dir.close().is_ok() || !path.exists() {
            if let Ok(mut live) = LIVE.lock() {
                live.retain(|p| *p != path);
            }
        }
    }
}

/// Remove every directory a [`Spool`] left behind. Called by `main` after the command, when no
/// thread of the runtime is left to write into them.
pub fn cleanup_at_exit() {
    let left = LIVE.lock().map(|mut l| std::mem::take(&mut *l)).unwrap_or_default();
    for p in left {
        let _ = std::fs::remove_dir_all(&p);
    }
}

/// Listen for SIGINT, SIGTERM and SIGHUP from now on, on a thread of its own: the first one
/// sets [`INTERRUPTED`] at once and the returned future resolves to its number. Never resolves
/// if the handlers cannot be installed (the command then runs to its end, as without them).
pub fn stop_signal() -> impl std::future::Future<Output = i32> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let listener = std::thread::Builder::new().name("signals".into()).spawn(move || {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        rt.block_on(async move {
            let streams =
                (signal(SignalKind::interrupt()), signal(SignalKind::terminate()), signal(SignalKind::hangup()));
            let (Ok(mut int), Ok(mut term), Ok(mut hup)) = streams else {
                let _ = ready_tx.send(());
                return std::future::pending::<()>().await;
            };
            let _ = ready_tx.send(());
            let n = tokio::select! {
                _ = int.recv() => libc::SIGINT,
                _ = term.recv() => libc::SIGTERM,
                _ = hup.recv() => libc::SIGHUP,
            };
            SIGNAL.store(n, Ordering::SeqCst);
            INTERRUPTED.store(true, Ordering::SeqCst);
            let _ = tx.send(n);
            // Later signals are taken too (the handlers stay), so the cleanup can finish.
            std::future::pending::<()>().await
        });
    });
    if listener.is_ok() {
        // Installed before the work starts: a signal from now on is never the default action.
        let _ = ready_rx.recv();
    }
    async move {
        match rx.await {
            Ok(n) => n,
            Err(_) => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spool_is_removed_on_drop_and_at_exit() {
        let s = create().unwrap();
        let p = s.path().to_path_buf();
        std::fs::write(p.join("x"), b"1").unwrap();
        assert!(p.file_name().unwrap().to_string_lossy().starts_with("harden-"));
        drop(s);
        assert!(!p.exists());
        assert!(!LIVE.lock().unwrap().contains(&p));

        // A directory left behind (as when a removal races a writer) goes at exit.
        let s = create().unwrap();
        let p = s.path().to_path_buf();
        std::mem::forget(s);
        assert!(p.exists());
        cleanup_at_exit();
        assert!(!p.exists());
    }

    #[test]
    fn sweep_removes_dead_runs_directories_only() {
        let tmp = tempfile::tempdir().unwrap();
        let mk = |name: &str, lock: bool| {
            let p = tmp.path().join(name);
            std::fs::create_dir(&p).unwrap();
            std::fs::write(p.join("layer"), b"x").unwrap();
            if lock {
                std::fs::write(p.join(LOCK), b"").unwrap();
            }
            p
        };
        // A run killed after locking: its lock is free.
        let dead_locked = mk("harden-4194304-aaaaaa", true);
        // Killed before locking: no lock, a PID that is not running (above any pid_max).
        let dead_unlocked = mk("harden-99999999-bbbbbb", false);
        // A live run: its lock is held (here, by this process through another open file).
        let live = mk("harden-1-cccccc", true);
        let held = std::fs::File::open(live.join(LOCK)).unwrap();
        held.lock().unwrap();
        // No lock and a live PID (this process), an old-style name, another program's.
        let live_pid = mk(&format!("harden-{}-dddddd", std::process::id()), false);
        let old_style = mk("harden-Ab12Cd", false);
        let other = mk("other-1-eeeeee", false);
        sweep(tmp.path());
        assert!(!dead_locked.exists() && !dead_unlocked.exists());
        for p in [&live, &live_pid, &old_style, &other] {
            assert!(p.exists(), "{} must stay", p.display());
        }
        drop(held);
        sweep(tmp.path());
        assert!(!live.exists(), "once its process lets go of the lock");
    }
}
