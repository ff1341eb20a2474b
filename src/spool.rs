//! The run's temporary files, and interruption. Downloads and rewritten layers go to one
//! `harden-*` directory per run (under `TMPDIR`), which is removed on every exit path:
//! - normally, when the pipeline drops its [`Spool`];
//! - on an error, the same way (the `?` drops it);
//! - on Ctrl-C, the command's `select!` drops the pipeline (and so the [`Spool`]) and
//!   [`ctrl_c`] sets [`INTERRUPTED`], which makes every layer reader under
//!   [`crate::layer::Limits`] fail at its next read, so the blocking work still running stops
//!   soon; a directory whose removal raced with that work is removed by
//!   [`cleanup_at_exit`], which `main` calls once the runtime, and every thread that could
//!   write there, is gone.
//!
//! SIGKILL cannot be caught: its directory stays behind (nothing is ever pushed from it on a
//! later run, which uses a fresh one).
//!
//! Owns: temporary directories, the interrupted flag. Must not: decide what goes in them.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Set by [`ctrl_c`]: the run is being abandoned.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Directories not yet removed.
static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// A run's temporary directory, removed when dropped (and at exit if that failed).
pub struct Spool {
    dir: Option<tempfile::TempDir>,
}

/// A new `harden-*` directory under `TMPDIR`.
pub fn create() -> std::io::Result<Spool> {
    let dir = tempfile::Builder::new().prefix("harden-").tempdir()?;
    if let Ok(mut live) = LIVE.lock() {
        live.push(dir.path().to_path_buf());
    }
    Ok(Spool { dir: Some(dir) })
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

/// Resolves on Ctrl-C (SIGINT) or SIGTERM, after setting [`INTERRUPTED`]; never, if neither
/// handler can be installed (the command then runs to its end, as without one).
pub async fn ctrl_c() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    let int = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        _ = int => {}
        _ = term => {}
    }
    INTERRUPTED.store(true, Ordering::SeqCst);
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
}
