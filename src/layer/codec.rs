//! Layer compression: recognising what a blob is compressed with, opening a decoder, and
//! the output encoder. The output is pinned (codec, level, no gzip time or name) because
//! another library, level or thread count gives another digest (moby #30852).
//!
//! Owns: byte-level codecs. Must not: look inside the tar stream.

use super::Limits;
use flate2::read::MultiGzDecoder;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What a layer blob is compressed with, judged by its magic bytes (media types lie).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Gzip,
    Zstd,
    None,
}

impl Codec {
    pub fn sniff(prefix: &[u8]) -> Codec {
        if prefix.starts_with(&[0x1f, 0x8b]) {
            Codec::Gzip
        } else if prefix.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Codec::Zstd
        } else {
            Codec::None
        }
    }
}

/// The output compression, recorded in reports and part of the rewrite's identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputCodec {
    Gzip(u32),
    Zstd(i32),
}

impl Default for OutputCodec {
    fn default() -> Self {
        OutputCodec::Gzip(6)
    }
}

impl fmt::Display for OutputCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutputCodec::Gzip(l) => write!(f, "gzip:{l}"),
            OutputCodec::Zstd(l) => write!(f, "zstd:{l}"),
        }
    }
}

impl std::str::FromStr for OutputCodec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, level) = match s.split_once(':') {
            Some((n, l)) => (n, Some(l)),
            None => (s, None),
        };
        let bad = || format!("compression `{s}`: expected gzip[:1-9] or zstd[:1-19]");
        match name {
            "gzip" => {
                let l = level.map(|l| l.parse::<u32>().map_err(|_| bad())).transpose()?.unwrap_or(6);
                if !(1..=9).contains(&l) {
                    return Err(bad());
                }
                Ok(OutputCodec::Gzip(l))
            }
            "zstd" => {
                let l = level.map(|l| l.parse::<i32>().map_err(|_| bad())).transpose()?.unwrap_or(3);
                if !(1..=19).contains(&l) {
                    return Err(bad());
                }
                Ok(OutputCodec::Zstd(l))
            }
            _ => Err(bad()),
        }
    }
}

impl OutputCodec {
    pub fn media_suffix(&self) -> &'static str {
        match self {
            OutputCodec::Gzip(_) => "gzip",
            OutputCodec::Zstd(_) => "zstd",
        }
    }
}

/// Open a decompressing reader over a layer blob, sniffing the codec.
pub fn decoder<'a, R: Read + 'a>(raw: R) -> io::Result<(Codec, Box<dyn Read + 'a>)> {
    let mut buf = BufReader::with_capacity(256 * 1024, raw);
    let codec = Codec::sniff(buf.fill_buf()?);
    let r: Box<dyn Read + 'a> = match codec {
        Codec::Gzip => Box::new(MultiGzDecoder::new(buf)),
        Codec::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buf)?),
        Codec::None => Box::new(buf),
    };
    Ok((codec, r))
}

/// [`decoder`] within `limits`: the uncompressed stream fails (`InvalidData`, naming the flag)
/// once it passes `max_layer_size`, or — when `max_ratio` is set (not 0), past
/// [`super::RATIO_FLOOR`] — `max_ratio` times the compressed bytes consumed so far; and once the
/// run is cancelled.
pub fn limited_decoder<'a, R: Read + 'a>(raw: R, limits: &Limits) -> io::Result<(Codec, Box<dyn Read + 'a>)> {
    let consumed = Arc::new(AtomicU64::new(0));
    let counted = Counted { inner: raw, n: Arc::clone(&consumed) };
    let (codec, plain) = decoder(counted)?;
    Ok((codec, bounded(plain, consumed, limits)))
}

/// `plain` (decompressed from `consumed` compressed bytes so far) within `limits`, as
/// [`limited_decoder`] does for its own decoder.
pub fn bounded<'a>(plain: impl Read + 'a, consumed: Arc<AtomicU64>, limits: &Limits) -> Box<dyn Read + 'a> {
    Box::new(Bounded { inner: Box::new(plain), out: 0, consumed, limits: limits.clone() })
}

struct Counted<R> {
    inner: R,
    n: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n.fetch_add(k as u64, Ordering::Relaxed);
        Ok(k)
    }
}

struct Bounded<'a> {
    inner: Box<dyn Read + 'a>,
    out: u64,
    consumed: Arc<AtomicU64>,
    limits: Limits,
}

impl Read for Bounded<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.limits.cancelled() {
            // Not ErrorKind::Interrupted: readers retry on that.
            return Err(io::Error::other("interrupted"));
        }
        // Never hand out more than one byte past the limit, so a bomb is stopped promptly.
        let room = self.limits.max_layer_size.saturating_sub(self.out).saturating_add(1);
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let k = self.inner.read(&mut buf[..want])?;
        self.out += k as u64;
        if self.out > self.limits.max_layer_size {
            return Err(super::tar::bad(format!(
                "more than {} bytes uncompressed (--max-layer-size; a decompression bomb?)",
                self.limits.max_layer_size
            )));
        }
        let consumed = self.consumed.load(Ordering::Relaxed).max(1);
        let ratio = self.limits.max_ratio;
        if ratio > 0 && self.out > super::RATIO_FLOOR && self.out > consumed.saturating_mul(ratio) {
            return Err(super::tar::bad(format!(
                "{} bytes uncompressed from {consumed} compressed, a ratio over {} (--max-ratio; a decompression bomb?)",
                self.out, self.limits.max_ratio
            )));
        }
        Ok(k)
    }
}

/// A compressing writer; `finish` must be called to write the trailer.
pub enum Encoder<W: Write> {
    Gzip(super::pgzip::ParallelGz<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    /// An encoder using up to [`crate::cpu::MAX_LAYER_WORKERS`] of the machine's cores.
    pub fn new(codec: OutputCodec, w: W) -> io::Result<Self> {
        Encoder::with_workers(codec, w, crate::cpu::Budget::machine().layer_workers(1))
    }

    /// An encoder with `workers` compression threads (gzip; the bytes do not depend on it).
    pub fn with_workers(codec: OutputCodec, w: W, workers: usize) -> io::Result<Self> {
        Ok(match codec {
            // mtime 0, no file name, fixed OS byte and fixed chunking: the same bytes on every machine.
            OutputCodec::Gzip(level) => Encoder::Gzip(super::pgzip::ParallelGz::new(w, level, workers.max(1))?),
            OutputCodec::Zstd(level) => {
                let mut e = zstd::stream::write::Encoder::new(w, level)?;
                e.include_checksum(true)?;
                Encoder::Zstd(e)
            }
        })
    }
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Gzip(e) => Write::flush(e),
            Encoder::Zstd(e) => e.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(codec: OutputCodec) -> Vec<u8> {
        let mut e = Encoder::new(codec, Vec::new()).unwrap();
        e.write_all(b"layer bytes").unwrap();
        let out = e.finish().unwrap();
        let mut back = Vec::new();
        {
            let (_, mut d) = decoder(&out[..]).unwrap();
            d.read_to_end(&mut back).unwrap();
        }
        assert_eq!(back, b"layer bytes");
        out
    }

    #[test]
    fn codecs_roundtrip_and_are_deterministic() {
        assert_eq!(roundtrip(OutputCodec::Gzip(6)), roundtrip(OutputCodec::Gzip(6)));
        assert_eq!(roundtrip(OutputCodec::Zstd(3)), roundtrip(OutputCodec::Zstd(3)));
        // gzip header carries no time (bytes 4..8 zero) and no name flag.
        let g = roundtrip(OutputCodec::Gzip(6));
        assert_eq!(&g[3..8], &[0, 0, 0, 0, 0]);
    }

    #[test]
    fn parses_compression_flags() {
        assert_eq!("gzip".parse::<OutputCodec>().unwrap(), OutputCodec::Gzip(6));
        assert_eq!("zstd:9".parse::<OutputCodec>().unwrap(), OutputCodec::Zstd(9));
        assert!("gzip:0".parse::<OutputCodec>().is_err());
        assert!("lz4".parse::<OutputCodec>().is_err());
    }
}
