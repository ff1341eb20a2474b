//! Following a blob while it downloads. The download ([`Tap`]) publishes how far it has written
//! its spool file in the current attempt, bumps an attempt counter when an attempt fails (the
//! next one truncates the file and starts again from byte 0), and how it ended: verified, failed,
//! or abandoned — the last by [`Tap`]'s `Drop`, so a download whose future is dropped (Ctrl-C, an
//! error elsewhere) never leaves a follower waiting. Followers ([`Follow`]) read the file behind
//! it at their own offset: [`Follow::reader`] blocks (for a scanner thread), [`Follow::stream`]
//! is async (an upload body). A follower started in one attempt fails once that attempt is void;
//! it never mixes bytes of two attempts.
//!
//! Followers only learn whether the download verified what they read: the bytes a follower read
//! are the verified ones when the download ended verified after exactly one attempt (the file is
//! written once, and every byte read was published by that attempt).
//!
//! The same follows a file of unknown length while it is written ([`tap_growing`]: a rewrite's
//! output, uploaded as it is produced): it ends where the writer's last attempt ended, once
//! the writer says it is complete ([`Tap::complete`]) and what it wrote: the digest and length
//! it computed, which an upload needs only at its end ([`Follow::completed`]).
//!
//! Owns: the shared progress of one download and reading behind it. Must not: fetch, verify or
//! interpret the bytes.

use crate::digest::Digest;
use bytes::Bytes;
use futures_util::Stream;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// How a download ended, as far as its followers know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    Running,
    /// Every byte written and its digest checked.
    Verified,
    /// Failed for good; the download's own error says why (this is its first line).
    Failed(String),
    /// Dropped before it ended.
    Abandoned,
}

struct State {
    /// 1 for the first attempt that wrote a file; +1 each time such an attempt fails.
    attempt: u32,
    /// The current attempt's file, once it has one (a handle of its own for followers).
    file: Option<Arc<File>>,
    /// Where the download writes, once an attempt has begun.
    path: Option<PathBuf>,
    /// Bytes of the current attempt in the file.
    written: u64,
    end: End,
    /// A growing file's digest and length, as its writer computed them ([`Tap::complete`]).
    completed: Option<(Digest, u64)>,
}

struct Shared {
    /// What is downloaded, for errors ("registry/repo: blob sha256:…").
    what: String,
    /// The declared size; `u64::MAX` for a growing file (see [`tap_growing`]).
    size: u64,
    /// Of unknown length: it ends where the writer's verified attempt ended.
    growing: bool,
    state: Mutex<State>,
    /// Wakes blocking followers.
    cond: Condvar,
    /// Wakes async followers.
    notify: tokio::sync::Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain numbers behind: still meaningful.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn changed(&self) {
        self.cond.notify_all();
        self.notify.notify_waiters();
    }
}

/// The download's side: publishes progress. Dropped before [`Tap::verified`] or
/// [`Tap::failed`], it marks the download abandoned.
pub struct Tap {
    shared: Arc<Shared>,
}

/// The followers' side: cheap to clone.
#[derive(Clone)]
pub struct Follow {
    shared: Arc<Shared>,
}

/// A follower's body: the blob from byte 0 of one attempt (see [`Follow::stream`]).
pub type BodyStream = std::pin::Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send + 'static>>;

/// A new download of `size` bytes, named `what` in errors, and a handle to follow it.
pub fn tap(what: impl Into<String>, size: u64) -> (Tap, Follow) {
    new_tap(what.into(), size, false)
}

/// A file of unknown length being written (a rewrite's output), named `what` in errors: its
/// followers end where the writer's attempt ends once the writer calls [`Tap::complete`], which
/// it must do only after every byte of that attempt is published by [`Tap::wrote`].
pub fn tap_growing(what: impl Into<String>) -> (Tap, Follow) {
    new_tap(what.into(), u64::MAX, true)
}

fn new_tap(what: String, size: u64, growing: bool) -> (Tap, Follow) {
    let shared = Arc::new(Shared {
        what,
        size,
        growing,
        state: Mutex::new(State { attempt: 1, file: None, path: None, written: 0, end: End::Running, completed: None }),
        cond: Condvar::new(),
        notify: tokio::sync::Notify::new(),
    });
    (Tap { shared: Arc::clone(&shared) }, Follow { shared })
}

impl Tap {
    /// An attempt has created (truncated) the file at `path` and is about to write it from
    /// byte 0; followers read it through a handle of their own.
    pub fn begin(&self, path: &Path) -> io::Result<()> {
        let handle = Arc::new(File::open(path)?);
        let mut st = self.shared.lock();
        st.file = Some(handle);
        st.path = Some(path.to_path_buf());
        st.written = 0;
        drop(st);
        self.shared.changed();
        Ok(())
    }

    /// `n` more bytes of the current attempt are in the file.
    pub fn wrote(&self, n: u64) {
        self.shared.lock().written += n;
        self.shared.changed();
    }

    /// The current attempt failed: what it wrote is void. (An attempt that failed before it
    /// created the file voids nothing: its followers simply wait for the next one.)
    pub fn void(&self) {
        let mut st = self.shared.lock();
        if st.file.take().is_some() {
            st.attempt += 1;
            st.written = 0;
        }
        drop(st);
        self.shared.changed();
    }

    pub fn verified(self) {
        self.end(End::Verified);
    }

    /// A growing file is complete: every byte of this attempt is published, and `digest` and
    /// `size` are what the writer computed of them. Its followers end there.
    pub fn complete(self, digest: Digest, size: u64) {
        self.shared.lock().completed = Some((digest, size));
        self.end(End::Verified);
    }

    pub fn failed(self, error: &anyhow::Error) {
        self.end(End::Failed(error.to_string().lines().next().unwrap_or("").to_string()));
    }

    fn end(&self, end: End) {
        let mut st = self.shared.lock();
        if st.end == End::Running {
            st.end = end;
        }
        drop(st);
        self.shared.changed();
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.end(End::Abandoned);
    }
}

/// What a follower at `pos` in `attempt` can do now.
enum Step {
    /// Read up to this many bytes from this file at `pos`.
    Read(Arc<File>, u64),
    Eof,
    Wait,
}

impl Shared {
    fn step(&self, st: &State, attempt: u32, pos: u64) -> io::Result<Step> {
        if st.attempt != attempt {
            return Err(io::Error::other(format!(
                "{}: the download was restarted after {pos} bytes were read",
                self.what
            )));
        }
        match &st.end {
            // What a failed download wrote is its last attempt's, and stays readable: a follower
            // gets the failure where those bytes end, so it has seen all the registry sent
            // whether or not it had caught up when the download failed.
            End::Failed(e) if pos >= st.written.min(self.size) => {
                return Err(io::Error::other(format!("{}: download failed: {e}", self.what)))
            }
            End::Abandoned => return Err(io::Error::other(format!("{}: download abandoned", self.what))),
            End::Running | End::Verified | End::Failed(_) => {}
        }
        if pos >= self.size || (self.growing && st.end == End::Verified && st.file.is_some() && pos >= st.written) {
            return Ok(Step::Eof);
        }
        match &st.file {
            Some(f) if st.written > pos => Ok(Step::Read(Arc::clone(f), st.written.min(self.size) - pos)),
            _ if st.end == End::Verified => Err(io::Error::other(format!(
                "{}: the download ended after {} of {} bytes",
                self.what, st.written, self.size
            ))),
            _ => Ok(Step::Wait),
        }
    }

    /// After reading: the bytes belong to `attempt` only if it is still current.
    fn check(&self, attempt: u32, pos: u64) -> io::Result<()> {
        if self.lock().attempt != attempt {
            return Err(io::Error::other(format!(
                "{}: the download was restarted after {pos} bytes were read",
                self.what
            )));
        }
        Ok(())
    }
}

fn read_at(file: &File, buf: &mut [u8], pos: u64, what: &str) -> io::Result<usize> {
    let k =
        file.read_at(buf, pos).map_err(|e| io::Error::new(e.kind(), format!("{what}: reading the spool file: {e}")))?;
    Ok(k)
}

impl Follow {
    /// Attempts that wrote a file so far (1 until the first of them fails).
    pub fn attempts(&self) -> u32 {
        self.shared.lock().attempt
    }

    pub fn end(&self) -> End {
        self.shared.lock().end.clone()
    }

    /// A growing file's digest and length, once its writer is done ([`Tap::complete`]): known
    /// to a follower whose stream has ended.
    pub fn completed(&self) -> Option<(Digest, u64)> {
        self.shared.lock().completed.clone()
    }

    /// The file the download writes, once it has begun writing one.
    pub fn path(&self) -> Option<PathBuf> {
        self.shared.lock().path.clone()
    }

    /// Resolves once the download has ended, with how.
    pub async fn finished(&self) -> End {
        loop {
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let end = self.end();
            if end != End::Running {
                return end;
            }
            notified.await;
        }
    }

    /// Resolves once the current attempt has written something, or the download has ended.
    pub async fn ready(&self) {
        loop {
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let st = self.shared.lock();
                if st.written > 0 || st.end != End::Running {
                    return;
                }
            }
            notified.await;
        }
    }

    /// A blocking reader from byte 0 of the current attempt.
    pub fn reader(&self) -> Reader {
        let attempt = self.attempts();
        Reader { shared: Arc::clone(&self.shared), attempt, pos: 0 }
    }

    /// The blob from byte 0 of the current attempt as chunks of at most `chunk` bytes, without
    /// busy waiting; an error once that attempt is void or the download failed.
    pub fn stream(&self, chunk: usize) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
        let start = (Arc::clone(&self.shared), self.attempts(), 0u64, false);
        futures_util::stream::unfold(start, move |(shared, attempt, pos, failed)| async move {
            if failed {
                return None;
            }
            match next_chunk(&shared, attempt, pos, chunk.max(1)).await {
                Ok(None) => None,
                Ok(Some(b)) => {
                    let next = pos + b.len() as u64;
                    Some((Ok(b), (shared, attempt, next, false)))
                }
                Err(e) => Some((Err(e), (shared, attempt, pos, true))),
            }
        })
    }
}

async fn next_chunk(shared: &Arc<Shared>, attempt: u32, pos: u64, chunk: usize) -> io::Result<Option<Bytes>> {
    loop {
        let notified = shared.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let step = {
            let st = shared.lock();
            shared.step(&st, attempt, pos)?
        };
        match step {
            Step::Eof => return Ok(None),
            Step::Wait => notified.await,
            Step::Read(file, avail) => {
                let n = usize::try_from(avail).unwrap_or(usize::MAX).min(chunk);
                let what = shared.what.clone();
                let read = tokio::task::spawn_blocking(move || {
                    let mut buf = vec![0u8; n];
                    let k = read_at(&file, &mut buf, pos, &what)?;
                    buf.truncate(k);
                    Ok::<_, io::Error>(buf)
                })
                .await
                .map_err(|e| io::Error::other(format!("{}: reading the spool file: {e}", shared.what)))??;
                shared.check(attempt, pos)?;
                if read.is_empty() {
                    return Err(io::Error::other(format!(
                        "{}: the spool file is shorter than the download says ({pos} bytes)",
                        shared.what
                    )));
                }
                return Ok(Some(Bytes::from(read)));
            }
        }
    }
}

/// A blocking follower (see [`Follow::reader`]): waits at the written length, ends at the
/// declared size, fails once its attempt is void or the download failed or was abandoned.
pub struct Reader {
    shared: Arc<Shared>,
    attempt: u32,
    pos: u64,
}

impl Read for Reader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut st = self.shared.lock();
        loop {
            match self.shared.step(&st, self.attempt, self.pos)? {
                Step::Eof => return Ok(0),
                Step::Wait => st = self.shared.cond.wait(st).unwrap_or_else(|e| e.into_inner()),
                Step::Read(file, avail) => {
                    drop(st);
                    let n = usize::try_from(avail).unwrap_or(usize::MAX).min(buf.len());
                    let k = read_at(&file, &mut buf[..n], self.pos, &self.shared.what)?;
                    self.shared.check(self.attempt, self.pos)?;
                    if k == 0 {
                        return Err(io::Error::other(format!(
                            "{}: the spool file is shorter than the download says ({} bytes)",
                            self.shared.what, self.pos
                        )));
                    }
                    self.pos += k as u64;
                    return Ok(k);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use std::io::Write;
    use std::time::Duration;

    /// A new attempt's file, announced to `tap`.
    fn begin(tap: &Tap, dir: &tempfile::TempDir) -> File {
        let path = dir.path().join("blob");
        let f = File::create(&path).unwrap();
        tap.begin(&path).unwrap();
        f
    }

    /// Write `data` through `tap` in small steps, pausing between them.
    fn feed(tap: &Tap, f: &mut File, data: &[u8]) {
        for c in data.chunks(7) {
            f.write_all(c).unwrap();
            tap.wrote(c.len() as u64);
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_reader_follows_the_growing_file_to_the_declared_size() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..500u32).map(|i| i as u8).collect();
        let (tap, follow) = tap("blob x", data.len() as u64);
        let mut r = follow.reader();
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            r.read_to_end(&mut out).map(|_| out)
        });
        assert_eq!(follow.path(), None, "no file before an attempt begins");
        let mut f = begin(&tap, &dir);
        assert_eq!(follow.path(), Some(dir.path().join("blob")));
        feed(&tap, &mut f, &data);
        // EOF comes at the declared size, before the download says how it ended.
        assert_eq!(reader.join().unwrap().unwrap(), data);
        tap.verified();
        assert_eq!(follow.attempts(), 1);
        assert_eq!(follow.end(), End::Verified);
    }

    #[test]
    fn a_restart_fails_the_reader_of_the_void_attempt_and_a_new_one_reads_the_retry() {
        let dir = tempfile::tempdir().unwrap();
        let (tap, follow) = tap("blob x", 100);
        let mut r = follow.reader();
        let mut f = begin(&tap, &dir);
        feed(&tap, &mut f, &[1u8; 40]);
        let mut buf = [0u8; 100];
        assert_eq!(r.read(&mut buf).unwrap(), 40);
        tap.void();
        let e = r.read(&mut buf).unwrap_err().to_string();
        assert!(e.contains("blob x") && e.contains("restarted"), "{e}");
        // The retry truncates and writes other bytes: a new reader sees only those.
        let mut r2 = follow.reader();
        let mut f = begin(&tap, &dir);
        feed(&tap, &mut f, &[2u8; 100]);
        tap.verified();
        let mut out = Vec::new();
        r2.read_to_end(&mut out).unwrap();
        assert_eq!(out, vec![2u8; 100]);
        assert_eq!(follow.attempts(), 2);
    }

    #[test]
    fn an_attempt_that_wrote_nothing_voids_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (tap, follow) = tap("blob x", 3);
        let mut r = follow.reader();
        tap.void();
        let mut f = begin(&tap, &dir);
        feed(&tap, &mut f, b"abc");
        tap.verified();
        assert_eq!(follow.attempts(), 1);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abc");
    }

    #[test]
    fn a_failed_or_abandoned_download_wakes_a_waiting_reader() {
        for abandon in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let (tap, follow) = tap("blob x", 100);
            let mut r = follow.reader();
            let reader = std::thread::spawn(move || {
                let mut out = Vec::new();
                r.read_to_end(&mut out)
            });
            let mut f = begin(&tap, &dir);
            feed(&tap, &mut f, &[1u8; 10]);
            std::thread::sleep(Duration::from_millis(50));
            if abandon {
                drop(tap);
            } else {
                tap.failed(&anyhow::anyhow!("r/x: blob x: content has digest y\nmore"));
            }
            let e = reader.join().unwrap().unwrap_err().to_string();
            let want =
                if abandon { "download abandoned" } else { "download failed: r/x: blob x: content has digest y" };
            assert!(e.contains(want), "{e}");
            assert!(!e.contains("more"), "{e}");
        }
    }

    #[test]
    fn a_verified_download_shorter_than_declared_is_an_error_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let (tap, follow) = tap("blob x", 10);
        let mut f = begin(&tap, &dir);
        feed(&tap, &mut f, b"abc");
        tap.verified();
        let e = follow.reader().read_to_end(&mut Vec::new()).unwrap_err().to_string();
        assert!(e.contains("3 of 10"), "{e}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stream_follows_growth_and_ends_at_the_size() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let (tap, follow) = tap("blob x", data.len() as u64);
        let s = follow.stream(64);
        let collect = tokio::spawn(async move {
            let chunks: Vec<io::Result<Bytes>> = s.collect().await;
            chunks.into_iter().collect::<io::Result<Vec<Bytes>>>()
        });
        let d2 = data.clone();
        let writer = std::thread::spawn(move || {
            let mut f = begin(&tap, &dir);
            feed(&tap, &mut f, &d2);
            tap
        });
        let chunks = collect.await.unwrap().unwrap();
        assert!(chunks.iter().all(|c| !c.is_empty() && c.len() <= 64));
        assert_eq!(chunks.concat(), data);
        writer.join().unwrap().verified();
        assert_eq!(follow.finished().await, End::Verified);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_growing_file_is_followed_to_where_its_writer_ends_and_a_restart_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let (tap, follow) = tap_growing("rewrite x");
        let mut f = begin(&tap, &dir);
        feed(&tap, &mut f, &[1u8; 30]);
        let mut first = Box::pin(follow.stream(1000));
        assert_eq!(first.next().await.unwrap().unwrap().len(), 30);
        // The writer starts over (a splice redone as a recompression): the first follower fails.
        tap.void();
        assert!(first.next().await.unwrap().is_err());
        let data: Vec<u8> = (0..500u32).map(|i| (i * 3) as u8).collect();
        let second = follow.stream(64);
        let collect = tokio::spawn(async move { second.collect::<Vec<io::Result<Bytes>>>().await });
        let d2 = data.clone();
        let writer = std::thread::spawn(move || {
            let mut f = begin(&tap, &dir);
            feed(&tap, &mut f, &d2);
            tap
        });
        let tap = writer.join().unwrap();
        // Not ended before the writer says so: the follower waits at the written length.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!collect.is_finished());
        assert_eq!(follow.completed(), None);
        let d = Digest::of(&data);
        tap.complete(d.clone(), data.len() as u64);
        let got: Vec<Bytes> = collect.await.unwrap().into_iter().collect::<io::Result<_>>().unwrap();
        assert_eq!(got.concat(), data);
        assert_eq!(follow.attempts(), 2);
        // What the writer computed is there for the follower whose stream ended.
        assert_eq!(follow.completed(), Some((d, 500)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stream_fails_on_restart_and_on_abandonment_without_hanging() {
        let dir = tempfile::tempdir().unwrap();
        let (tap, follow) = tap("blob x", 100);
        let mut f = begin(&tap, &dir);
        feed(&tap, &mut f, &[1u8; 30]);
        let mut s = Box::pin(follow.stream(1000));
        assert_eq!(s.next().await.unwrap().unwrap().len(), 30);
        tap.void();
        let e = s.next().await.unwrap().unwrap_err().to_string();
        assert!(e.contains("restarted"), "{e}");
        assert!(s.next().await.is_none(), "nothing after the error");

        // A stream waiting for data of the next attempt ends when the download is dropped.
        let mut s = Box::pin(follow.stream(1000));
        let waiting = tokio::spawn(async move { s.next().await.map(|r| r.map(|b| b.len())) });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        drop(tap);
        let got = tokio::time::timeout(Duration::from_secs(5), waiting).await.expect("no hang").unwrap();
        let e = got.unwrap().unwrap_err().to_string();
        assert!(e.contains("abandoned"), "{e}");
        assert_eq!(follow.finished().await, End::Abandoned);
    }
}
