//! Content digests: the `sha256:<hex>` strings that name every blob, and the hashing
//! readers and writers that compute them while bytes stream past.
//!
//! Owns: parsing and validating digests, incremental SHA-256 (in line, or on a thread of its own
//! for a stream whose writer is the critical path). Must not: do I/O of its own.

use sha2::{Digest as _, Sha256};
use std::fmt;
use std::io::{self, Read, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

/// A validated `sha256:<64 hex>` digest.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Parse and validate; only sha256 is accepted (the only algorithm registries require).
    pub fn parse(s: &str) -> Result<Self, String> {
        let hex = s.strip_prefix("sha256:").ok_or_else(|| format!("digest `{s}` is not sha256:<hex>"))?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(format!("digest `{s}` is not sha256 followed by 64 lower-case hex digits"));
        }
        Ok(Digest(s.to_string()))
    }
    pub fn of(bytes: &[u8]) -> Self {
        Digest(format!("sha256:{}", hex::encode(Sha256::digest(bytes))))
    }
    /// The digest of a sha256 already computed.
    pub fn from_sha256(bytes: &[u8; 32]) -> Self {
        Digest(format!("sha256:{}", hex::encode(bytes)))
    }
    pub fn from_hasher(h: Sha256) -> Self {
        Digest(format!("sha256:{}", hex::encode(h.finalize())))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The hex part, as used in blob paths and `.sig` tags.
    pub fn hex(&self) -> &str {
        &self.0[7..]
    }
    /// The first 12 hex digits, for progress lines.
    pub fn short(&self) -> &str {
        &self.0[7..19]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Hashes and counts everything written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter { inner, hasher: Sha256::new(), count: 0 }
    }
    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, Digest::from_hasher(self.hasher), self.count)
    }
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Bytes per buffer handed to an [`OffThreadHashingWriter`]'s thread.
const OFF_THREAD_BUF: usize = 256 << 10;
/// Buffers queued for that thread; with the one being filled and the one being hashed, at most
/// `OFF_THREAD_DEPTH + 2` buffers are alive, and they are reused.
const OFF_THREAD_DEPTH: usize = 4;

/// [`HashingWriter`]'s result, with SHA-256 computed on a thread of its own: what is written is
/// passed to `inner` and copied into reused buffers that the hashing thread takes, so the writing
/// thread pays a copy (memory speed) instead of the hash (about a sixth of that speed here). For
/// a stream whose writer is the slowest thread of its stage: a rewrite's tar stream.
pub struct OffThreadHashingWriter<W> {
    inner: W,
    buf: Vec<u8>,
    /// `None` once the hashing thread has gone (it only stops when told to).
    tx: Option<SyncSender<Vec<u8>>>,
    free: Receiver<Vec<u8>>,
    hasher: Option<JoinHandle<(Digest, u64)>>,
}

impl<W: Write> OffThreadHashingWriter<W> {
    pub fn new(inner: W) -> io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(OFF_THREAD_DEPTH);
        let (free_tx, free) = mpsc::channel();
        let hasher = std::thread::Builder::new()
            .name("harden-sha256".into())
            .spawn(move || {
                let (mut hasher, mut count) = (Sha256::new(), 0u64);
                for mut buf in rx {
                    hasher.update(&buf);
                    count += buf.len() as u64;
                    buf.clear();
                    // The writer may be gone already (finishing): the buffer is then dropped.
                    let _ = free_tx.send(buf);
                }
                (Digest::from_hasher(hasher), count)
            })
            .map_err(|e| io::Error::other(format!("cannot start a hashing thread: {e}")))?;
        Ok(OffThreadHashingWriter {
            inner,
            buf: Vec::with_capacity(OFF_THREAD_BUF),
            tx: Some(tx),
            free,
            hasher: Some(hasher),
        })
    }

    fn send(&mut self) -> io::Result<()> {
        let next = self.free.try_recv().unwrap_or_else(|_| Vec::with_capacity(OFF_THREAD_BUF));
        let full = std::mem::replace(&mut self.buf, next);
        match &self.tx {
            Some(tx) if tx.send(full).is_ok() => Ok(()),
            _ => {
                self.tx = None;
                Err(io::Error::other("the hashing thread stopped"))
            }
        }
    }

    /// The inner writer, and the digest and length of everything written.
    pub fn finish(mut self) -> io::Result<(W, Digest, u64)> {
        if !self.buf.is_empty() {
            self.send()?;
        }
        self.tx = None;
        let hasher = self.hasher.take().ok_or_else(|| io::Error::other("the hashing thread stopped"))?;
        let (digest, count) = hasher.join().map_err(|_| io::Error::other("the hashing thread stopped"))?;
        Ok((self.inner, digest, count))
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }
}

impl<W: Write> Write for OffThreadHashingWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(data)?;
        let mut rest = &data[..n];
        while !rest.is_empty() {
            let k = rest.len().min(OFF_THREAD_BUF - self.buf.len());
            self.buf.extend_from_slice(&rest[..k]);
            rest = &rest[k..];
            if self.buf.len() == OFF_THREAD_BUF {
                self.send()?;
            }
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Hashes and counts everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader { inner, hasher: Sha256::new(), count: 0 }
    }
    /// Drain what is left (so the digest covers the whole stream), then return it.
    pub fn finish(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((Digest::from_hasher(self.hasher), self.count))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_rejects_bad_digests() {
        assert!(Digest::parse("sha256:abc").is_err());
        assert!(Digest::parse("md5:00").is_err());
        assert!(Digest::parse(&format!("sha256:{}", "A".repeat(64))).is_err());
        let d = Digest::of(b"");
        assert_eq!(d.as_str(), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(Digest::parse(d.as_str()).unwrap(), d);
    }

    #[test]
    fn hashing_reader_and_writer_agree() {
        let data = b"hello world".repeat(1000);
        let r = HashingReader::new(&data[..]);
        let (d, n) = r.finish().unwrap();
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(&data).unwrap();
        let (_, d2, n2) = w.finish();
        assert_eq!((d.clone(), n), (d2, n2));
        assert_eq!(d, Digest::of(&data));
    }

    #[test]
    fn hashing_off_thread_gives_the_in_line_digest_for_any_write_sizes() {
        let data: Vec<u8> = (0..3 * OFF_THREAD_BUF as u32 + 12_345).map(|i| (i * 7 + i / 991) as u8).collect();
        for piece in [1, 511, 4096, OFF_THREAD_BUF, OFF_THREAD_BUF + 1, data.len()] {
            let mut w = OffThreadHashingWriter::new(Vec::new()).unwrap();
            for chunk in data.chunks(piece) {
                w.write_all(chunk).unwrap();
            }
            let (out, d, n) = w.finish().unwrap();
            assert_eq!((d, n), (Digest::of(&data), data.len() as u64), "writes of {piece}");
            assert_eq!(out, data);
        }
        let (_, d, n) = OffThreadHashingWriter::new(io::sink()).unwrap().finish().unwrap();
        assert_eq!((d, n), (Digest::of(b""), 0));
    }
}
