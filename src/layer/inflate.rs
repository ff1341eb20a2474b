//! Decompression on a thread of its own: one thread reads a layer blob, hashes it and
//! decompresses it within [`Limits`] (through [`super::codec::limited_decoder`]); the caller's
//! thread consumes the uncompressed stream through a bounded channel of large buffers, so
//! inflating and what is done with its output (hashing, tar parsing) run side by side. At most
//! [`DEPTH`] + 2 buffers of [`CHUNK`] bytes are alive at once, and they are reused.
//!
//! The consumer sees the stream exactly as it would see the decoder itself: the same bytes, and
//! an error at the same point of the stream, with the same message. An error once the whole
//! uncompressed stream is out (draining or hashing the compressed blob) comes where the stream
//! would end.
//!
//! Owns: the decompressing thread and the buffers between the two. Must not: look inside the
//! tar stream.

use super::codec::{self, Codec};
use super::Limits;
use crate::digest::{Digest, HashingReader};
use std::io::{self, Read};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};

/// Bytes of uncompressed stream per message.
pub const CHUNK: usize = 512 << 10;
/// Messages in flight between the two threads.
pub const DEPTH: usize = 4;

enum Msg {
    /// A full buffer (its first `len` bytes are stream), to be handed back once read.
    Data(Vec<u8>, usize),
    /// Decompression or reading failed here.
    Failed(io::Error),
    /// The end: the codec, and the digest of the compressed blob when asked for.
    Done(Codec, Option<Digest>),
}

/// What the decompressing side found out about the compressed blob.
pub struct Compressed {
    pub codec: Codec,
    /// When asked for.
    pub digest: Option<Digest>,
}

/// Run `consume` over the uncompressed stream of `raw` while another thread decompresses it
/// (and hashes `raw` when `hash`: a blob not verified yet).
/// Whatever `consume` leaves unread is drained, so the compressed blob is read (and hashed) to
/// its end. `consume`'s error comes first; an error reading or decompressing `raw` reaches it
/// as the failure of a read, at the point where it happened.
pub fn with_plain<R, T>(
    raw: R,
    hash: bool,
    limits: &Limits,
    consume: impl FnOnce(&mut dyn Read) -> io::Result<T>,
) -> io::Result<(T, Compressed)>
where
    R: Read + Send,
{
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::sync_channel(DEPTH);
        let (free_tx, free_rx) = mpsc::channel();
        let producer = std::thread::Builder::new()
            .name("harden-inflate".into())
            .spawn_scoped(s, move || produce(raw, hash, limits, &tx, &free_rx))
            .map_err(|e| io::Error::other(format!("cannot start a decompressing thread: {e}")))?;
        let mut plain = Plain { rx, free: free_tx, cur: Vec::new(), len: 0, pos: 0, done: None };
        let res = consume(&mut plain).and_then(|t| {
            io::copy(&mut plain, &mut io::sink())?;
            Ok(t)
        });
        let done = plain.done.take();
        // Hang up first: a producer blocked on a full channel then stops.
        drop(plain);
        let joined = producer.join();
        let t = res?;
        if joined.is_err() {
            return Err(io::Error::other("the decompressing thread failed"));
        }
        let (codec, digest) =
            done.ok_or_else(|| io::Error::other("the decompressing thread stopped before the end of the layer"))?;
        Ok((t, Compressed { codec, digest }))
    })
}

/// The decompressing side: reads `raw` to its end (hashing it when `hash`), sending the
/// uncompressed stream, then the end or the first error. Stops quietly when the consumer hangs
/// up.
fn produce<R: Read>(raw: R, hash: bool, limits: &Limits, tx: &SyncSender<Msg>, free: &Receiver<Vec<u8>>) {
    let end = if hash {
        let mut compressed = HashingReader::new(raw);
        let Some(codec) = decompress(&mut compressed, limits, tx, free) else { return };
        compressed.finish().map(|(digest, _)| Msg::Done(codec, Some(digest)))
    } else {
        let mut compressed = raw;
        let Some(codec) = decompress(&mut compressed, limits, tx, free) else { return };
        io::copy(&mut compressed, &mut io::sink()).map(|_| Msg::Done(codec, None))
    };
    let _ = tx.send(end.unwrap_or_else(Msg::Failed));
}

/// Send the uncompressed stream of `raw`: the codec once it is all sent, None when it failed
/// (the error is sent) or the consumer hung up.
fn decompress(raw: &mut dyn Read, limits: &Limits, tx: &SyncSender<Msg>, free: &Receiver<Vec<u8>>) -> Option<Codec> {
    let (codec, mut plain) = match codec::limited_decoder(raw, limits) {
        Ok(x) => x,
        Err(e) => {
            let _ = tx.send(Msg::Failed(e));
            return None;
        }
    };
    loop {
        let mut buf = free.try_recv().unwrap_or_else(|_| vec![0u8; CHUNK]);
        let (len, failed) = fill(&mut plain, &mut buf);
        if len > 0 && tx.send(Msg::Data(buf, len)).is_err() {
            return None;
        }
        match failed {
            Some(e) => {
                let _ = tx.send(Msg::Failed(e));
                return None;
            }
            None if len == 0 => return Some(codec),
            None => {}
        }
    }
}

/// Read until `buf` is full or the stream ends: the bytes read, and the error that stopped it
/// (after those bytes, which the consumer still gets first).
fn fill(r: &mut dyn Read, buf: &mut [u8]) -> (usize, Option<io::Error>) {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (n, Some(e)),
        }
    }
    (n, None)
}

/// The consuming side: the uncompressed stream, buffer by buffer.
struct Plain {
    rx: Receiver<Msg>,
    free: Sender<Vec<u8>>,
    cur: Vec<u8>,
    len: usize,
    pos: usize,
    done: Option<(Codec, Option<Digest>)>,
}

impl Read for Plain {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos < self.len {
                let k = out.len().min(self.len - self.pos);
                out[..k].copy_from_slice(&self.cur[self.pos..self.pos + k]);
                self.pos += k;
                return Ok(k);
            }
            if self.done.is_some() || out.is_empty() {
                return Ok(0);
            }
            if !self.cur.is_empty() {
                // The producer may have stopped: then the buffer is simply dropped.
                let _ = self.free.send(std::mem::take(&mut self.cur));
            }
            (self.len, self.pos) = (0, 0);
            match self.rx.recv() {
                Ok(Msg::Data(buf, len)) => (self.cur, self.len) = (buf, len),
                Ok(Msg::Done(codec, digest)) => {
                    self.done = Some((codec, digest));
                    return Ok(0);
                }
                Ok(Msg::Failed(e)) => return Err(e),
                Err(_) => return Err(io::Error::other("the decompressing thread stopped")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::codec::{Encoder, OutputCodec};
    use std::io::Write;

    fn compress(codec: OutputCodec, data: &[u8]) -> Vec<u8> {
        let mut e = Encoder::new(codec, Vec::new()).unwrap();
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 / 7) as u8).collect()
    }

    #[test]
    fn passes_the_stream_and_hashes_the_blob() {
        for codec in [OutputCodec::Gzip(1), OutputCodec::Zstd(1)] {
            let plain = data(3 * CHUNK + 123);
            let blob = compress(codec, &plain);
            let (got, c) = with_plain(&blob[..], true, &Limits::default(), |r| {
                let mut v = Vec::new();
                // Odd-sized reads cross buffer boundaries.
                let mut b = [0u8; 1000];
                loop {
                    match r.read(&mut b)? {
                        0 => return Ok(v),
                        k => v.extend_from_slice(&b[..k]),
                    }
                }
            })
            .unwrap();
            assert_eq!(got, plain);
            assert_eq!(c.digest, Some(Digest::of(&blob)));
            assert_ne!(c.codec, Codec::None);
        }
    }

    #[test]
    fn a_consumer_that_stops_early_still_gets_the_blob_digest_and_does_not_hang() {
        let blob = compress(OutputCodec::Gzip(1), &data(20 * CHUNK));
        let (first, c) = with_plain(&blob[..], true, &Limits::default(), |r| {
            let mut b = [0u8; 10];
            r.read_exact(&mut b)?;
            Ok(b)
        })
        .unwrap();
        assert_eq!(first[..], data(10)[..]);
        assert_eq!(c.digest, Some(Digest::of(&blob)));
    }

    #[test]
    fn a_consumer_error_comes_first_and_the_producer_stops() {
        let blob = compress(OutputCodec::Gzip(1), &data(50 * CHUNK));
        let e = with_plain(&blob[..], true, &Limits::default(), |_| Err::<(), _>(io::Error::other("consumer says no")))
            .err()
            .unwrap();
        assert_eq!(e.to_string(), "consumer says no");
    }

    #[test]
    fn a_corrupt_blob_fails_where_it_breaks_with_the_decoders_message() {
        let plain = data(4 * CHUNK);
        let mut blob = compress(OutputCodec::Gzip(1), &plain);
        let n = blob.len();
        blob.truncate(n - 100);
        let direct = {
            let (_, mut r) = codec::limited_decoder(&blob[..], &Limits::default()).unwrap();
            let mut v = Vec::new();
            let e = r.read_to_end(&mut v).unwrap_err();
            (v.len(), e.to_string(), e.kind())
        };
        let mut seen = 0;
        let e = with_plain(&blob[..], true, &Limits::default(), |r| {
            let mut b = vec![0u8; 4096];
            loop {
                match r.read(&mut b)? {
                    0 => return Ok(()),
                    k => seen += k,
                }
            }
        })
        .err()
        .unwrap();
        assert_eq!((seen, e.to_string(), e.kind()), direct);
    }
}
