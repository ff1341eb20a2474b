//! Splice: rewrite a gzip layer by re-encoding only the deflate blocks a change reaches, and
//! copying every other block of the source's deflate stream bit for bit.
//!
//! A deflate block can be moved into another deflate stream when its decoded bytes appear there
//! unchanged and so do the 32 KiB before it (the farthest its back-references reach, never past
//! the start of its gzip member): the decoder's window then holds the same bytes, and every
//! reference resolves to the same data. So the source is decoded block by block (zlib's
//! `Z_BLOCK`, which stops at each block boundary and says where it is, to the bit), the rewrite
//! says which output bytes are the source's own (claims, [`Splicer::claim`]), and each source
//! block whose content and window survive is copied — shifted to a byte boundary, its BFINAL
//! bit cleared — while everything else goes through the parallel compressor ([`ParallelGz`]).
//! Stored blocks cannot be shifted (their padding is positional) and are re-emitted as stored.
//! Where a profile removes docs and a few binaries, most blocks survive: rewriting a layer costs
//! about one decompression instead of a recompression.
//!
//! Written here because no crate splices deflate streams (zlib's `examples/gzjoin.c` is the
//! technique's ancestor); libz-rs-sys is used for `Z_BLOCK` and the bit position of each
//! boundary, which neither flate2 nor zlib-rs's safe API expose.
//!
//! The output depends only on the source bytes, the plan and the level: the same digest on every
//! machine. [`crate::rewrite`] decodes every spliced blob again and compares it with the diff_id
//! before accepting it, and recompresses the layer in full should that ever fail.
//!
//! Owns: the block-level gzip decoder and the splicing writer. Must not: know about tar.

use super::pgzip::ParallelGz;
use super::tar::bad;
use libz_rs_sys as z;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Deflate's window: how far back a block's references can reach.
const WINDOW: u64 = 32 * 1024;
/// Compressed bytes of copied blocks per output segment (each segment ends with a 5-byte empty
/// stored block that restores byte alignment).
const MAX_RUN_BYTES: u64 = 1 << 20;
/// Plain bytes held back while waiting to learn whether their block can be copied; past this,
/// they are compressed instead (a huge block costs ratio, never memory).
const MAX_HOLD: usize = 4 << 20;
/// Input read per refill.
const INPUT_BUF: usize = 256 << 10;

/// A blob that can be read at any offset: the spooled layer file, or bytes in memory.
pub trait ReadAt: Send + Sync {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset)? {
                0 => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "layer blob ends early")),
                n => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
            }
        }
        Ok(())
    }
}

impl ReadAt for std::fs::File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(self, buf, offset)
    }
}

impl ReadAt for Vec<u8> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(self.len());
        let n = buf.len().min(self.len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
}

/// A [`ReadAt`] read front to back.
pub struct Cursor {
    blob: Arc<dyn ReadAt>,
    pos: u64,
}

impl Cursor {
    pub fn new(blob: Arc<dyn ReadAt>) -> Cursor {
        Cursor { blob, pos: 0 }
    }
}

impl Read for Cursor {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.blob.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// One deflate block of the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Block {
    /// Bit offsets in the blob, `[start, end)`.
    bits: (u64, u64),
    /// Offsets in the decompressed stream, `[start, end)`.
    plain: (u64, u64),
    /// Where the block's gzip member starts in the decompressed stream (its window's floor).
    member: u64,
}

/// Blocks decoded and not yet passed by the splicer, in order.
type Log = Arc<Mutex<VecDeque<Block>>>;

fn lock(log: &Log) -> std::sync::MutexGuard<'_, VecDeque<Block>> {
    log.lock().unwrap_or_else(|p| p.into_inner())
}

enum State {
    Header,
    Body,
    Done,
}

/// Decompresses a gzip blob (one or more members), logging every deflate block with its bit
/// range, and checking each member's CRC-32 and length.
pub struct BlockDecoder {
    blob: Arc<dyn ReadAt>,
    log: Log,
    /// Boxed: zlib's state points back at its stream, which must not move.
    strm: Box<z::z_stream>,
    initialised: bool,
    buf: Vec<u8>,
    /// Blob offset of `buf[0]`; `buf[pos..len]` is not consumed yet.
    buf_off: u64,
    pos: usize,
    len: usize,
    state: State,
    members: u64,
    plain: u64,
    member: u64,
    /// (bit, plain) where the block being decoded began.
    open: Option<(u64, u64)>,
    crc: flate2::Crc,
    member_len: u32,
    consumed: Arc<AtomicU64>,
}

// SAFETY: the z_stream's raw pointers only ever point into this struct's own buffers (or the
// caller's buffer during a call); the decoder is used by one thread at a time.
unsafe impl Send for BlockDecoder {}

impl BlockDecoder {
    fn new(blob: Arc<dyn ReadAt>, log: Log) -> BlockDecoder {
        BlockDecoder {
            blob,
            log,
            strm: Box::default(),
            initialised: false,
            buf: vec![0; INPUT_BUF],
            buf_off: 0,
            pos: 0,
            len: 0,
            state: State::Header,
            members: 0,
            plain: 0,
            member: 0,
            open: None,
            crc: flate2::Crc::new(),
            member_len: 0,
            consumed: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Compressed bytes read so far (for the ratio limit).
    pub fn consumed(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.consumed)
    }

    fn refill(&mut self) -> io::Result<()> {
        self.buf_off += self.len as u64;
        self.pos = 0;
        self.len = self.blob.read_at(&mut self.buf, self.buf_off)?;
        self.consumed.fetch_add(self.len as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Move the read position to blob offset `at` (after the deflate data of a member).
    fn seek(&mut self, at: u64) {
        self.buf_off = at;
        self.pos = 0;
        self.len = 0;
    }

    fn byte(&mut self) -> io::Result<Option<u8>> {
        if self.pos == self.len {
            self.refill()?;
            if self.len == 0 {
                return Ok(None);
            }
        }
        self.pos += 1;
        Ok(Some(self.buf[self.pos - 1]))
    }

    fn need(&mut self) -> io::Result<u8> {
        self.byte()?.ok_or_else(|| bad("gzip stream ends early (truncated layer)"))
    }

    /// Parse a member header (RFC 1952); false at the clean end of the blob after a member.
    fn header(&mut self) -> io::Result<bool> {
        let Some(b0) = self.byte()? else {
            return if self.members == 0 { Err(bad("empty gzip stream")) } else { Ok(false) };
        };
        if b0 != 0x1f || self.need()? != 0x8b || self.need()? != 8 {
            return Err(bad("data after a gzip member is not another gzip member"));
        }
        let flags = self.need()?;
        if flags & 0xe0 != 0 {
            return Err(bad("gzip header has reserved flags set"));
        }
        for _ in 0..6 {
            self.need()?;
        }
        if flags & 4 != 0 {
            let n = u16::from_le_bytes([self.need()?, self.need()?]);
            for _ in 0..n {
                self.need()?;
            }
        }
        for flag in [8, 16] {
            if flags & flag != 0 {
                while self.need()? != 0 {}
            }
        }
        if flags & 2 != 0 {
            self.need()?;
            self.need()?;
        }
        Ok(true)
    }

    fn start_member(&mut self) -> io::Result<()> {
        // SAFETY: strm is a valid, boxed z_stream (zeroed, or initialised by the first call).
        let ret = unsafe {
            if self.initialised {
                z::inflateReset(&mut *self.strm)
            } else {
                z::inflateInit2_(
                    &mut *self.strm,
                    -15,
                    z::zlibVersion(),
                    std::mem::size_of::<z::z_stream>() as std::ffi::c_int,
                )
            }
        };
        if ret != z::Z_OK {
            return Err(io::Error::other(format!("cannot start inflate (zlib code {ret})")));
        }
        self.initialised = true;
        self.members += 1;
        self.member = self.plain;
        self.open = Some(((self.buf_off + self.pos as u64) * 8, self.plain));
        self.crc = flate2::Crc::new();
        self.member_len = 0;
        Ok(())
    }

    /// End the open block at bit `bit` (dropping empty ones: they decode to nothing).
    fn close_block(&mut self, bit: u64) {
        if let Some((b0, p0)) = self.open.take() {
            if p0 < self.plain {
                lock(&self.log).push_back(Block { bits: (b0, bit), plain: (p0, self.plain), member: self.member });
            }
        }
    }

    fn trailer(&mut self, end_bit: u64) -> io::Result<()> {
        self.seek(end_bit.div_ceil(8));
        let mut t = [0u8; 8];
        for b in &mut t {
            *b = self.need()?;
        }
        let crc = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
        let len = u32::from_le_bytes([t[4], t[5], t[6], t[7]]);
        if crc != self.crc.sum() || len != self.member_len {
            return Err(bad("gzip member's CRC-32 or length does not match its data (corrupt layer)"));
        }
        Ok(())
    }
}

impl Read for BlockDecoder {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            match self.state {
                State::Done => return Ok(0),
                State::Header => {
                    if !self.header()? {
                        self.state = State::Done;
                        continue;
                    }
                    self.start_member()?;
                    self.state = State::Body;
                }
                State::Body => {
                    if self.pos == self.len {
                        self.refill()?;
                        if self.len == 0 {
                            return Err(bad("gzip stream ends early (truncated layer)"));
                        }
                    }
                    let avail_in = self.len - self.pos;
                    let avail_out = out.len().min(u32::MAX as usize);
                    self.strm.next_in = self.buf[self.pos..].as_ptr();
                    self.strm.avail_in = avail_in as u32;
                    self.strm.next_out = out.as_mut_ptr();
                    self.strm.avail_out = avail_out as u32;
                    // SAFETY: next_in/next_out point at live buffers of the lengths given; the
                    // stream was initialised by start_member.
                    let ret = unsafe { z::inflate(&mut *self.strm, z::Z_BLOCK) };
                    let used = avail_in - self.strm.avail_in as usize;
                    let n = avail_out - self.strm.avail_out as usize;
                    self.strm.next_in = std::ptr::null();
                    self.strm.next_out = std::ptr::null_mut();
                    self.pos += used;
                    self.crc.update(&out[..n]);
                    self.member_len = self.member_len.wrapping_add(n as u32);
                    self.plain += n as u64;
                    // Bits taken from the input but not yet used by the decoder.
                    let held = (self.strm.data_type & 63) as u64;
                    let bit = ((self.buf_off + self.pos as u64) * 8).saturating_sub(held);
                    match ret {
                        z::Z_STREAM_END => {
                            self.close_block(bit);
                            self.trailer(bit)?;
                            self.state = State::Header;
                        }
                        z::Z_OK | z::Z_BUF_ERROR => {
                            if self.strm.data_type & 128 != 0 {
                                self.close_block(bit);
                                self.open = Some((bit, self.plain));
                            } else if n == 0 && used == 0 && self.pos < self.len {
                                return Err(bad("inflate made no progress (corrupt layer)"));
                            }
                        }
                        code => return Err(bad(format!("corrupt deflate data (zlib code {code})"))),
                    }
                    if n > 0 {
                        return Ok(n);
                    }
                }
            }
        }
    }
}

impl Drop for BlockDecoder {
    fn drop(&mut self) {
        if self.initialised {
            // SAFETY: initialised by inflateInit2_ and not ended yet.
            unsafe {
                z::inflateEnd(&mut *self.strm);
            }
        }
    }
}

/// Copied source blocks waiting to be written as one segment: a contiguous bit range.
struct CopyRun {
    bits: (u64, u64),
    /// Bits (absolute) to clear: BFINAL of a member's last block, now followed by more.
    clear: Vec<u64>,
}

/// What splicing achieved, for the report.
#[derive(Clone, Copy, Debug, Default)]
pub struct SpliceStats {
    /// Plain bytes whose compressed blocks were copied from the source.
    pub copied: u64,
    /// Plain bytes compressed anew.
    pub compressed: u64,
}

/// The output side: a gzip writer that copies source blocks where it can. Bytes written after
/// `claim(Some(offset))` are promised to be the source's own bytes from `offset` on.
pub struct Splicer<W: Write> {
    gz: ParallelGz<W>,
    blob: Arc<dyn ReadAt>,
    log: Log,
    claim: Option<u64>,
    /// Source offset where the current unbroken run of claimed bytes began.
    run_start: Option<u64>,
    /// Claimed bytes not decided yet, from source offset `held_src`.
    held: Held,
    held_src: u64,
    copy: Option<CopyRun>,
    /// The source bytes of the run being written (kept for the next run).
    scratch: Vec<u8>,
    pub stats: SpliceStats,
}

/// The claimed bytes not decided yet: taken from the front, added at the back. Taking moves an
/// offset instead of the bytes behind it (blocks are decided one by one, and moving the rest
/// down copied everything held behind each block again); the space is reclaimed once the taken
/// part is at least as large as what is left, so a byte is moved at most once on average.
#[derive(Default)]
struct Held {
    buf: Vec<u8>,
    start: usize,
}

impl Held {
    fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.buf.len());
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
    }

    fn extend_from_slice(&mut self, data: &[u8]) {
        if self.start > 0 && self.start >= self.buf.len() - self.start {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }
}

impl std::ops::Deref for Held {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

/// Open `blob` (a gzip layer) for splicing: the decoder to read the source tar from, and the
/// writer for the output tar (compressed at `level` on `workers` threads into `out`).
pub fn open<W: Write>(
    blob: Arc<dyn ReadAt>,
    out: W,
    level: u32,
    workers: usize,
) -> io::Result<(BlockDecoder, Splicer<W>)> {
    let log: Log = Arc::default();
    let dec = BlockDecoder::new(Arc::clone(&blob), Arc::clone(&log));
    let gz = ParallelGz::new(out, level, workers)?;
    let sp = Splicer {
        gz,
        blob,
        log,
        claim: None,
        run_start: None,
        held: Held::default(),
        held_src: 0,
        copy: None,
        scratch: Vec::new(),
        stats: SpliceStats::default(),
    };
    Ok((dec, sp))
}

impl<W: Write> Splicer<W> {
    /// The source offset of the bytes written next, or `None` for bytes of the rewrite's own.
    pub fn claim(&mut self, src_offset: Option<u64>) {
        self.claim = src_offset;
    }

    /// Decide every held block whose fate is known. Must see the decoder's log: call after the
    /// decoder has produced the held bytes.
    fn advance(&mut self) -> io::Result<()> {
        loop {
            if self.held.is_empty() {
                return Ok(());
            }
            let held_end = self.held_src + self.held.len() as u64;
            let front = {
                let mut log = lock(&self.log);
                while log.front().is_some_and(|b| b.plain.1 <= self.held_src) {
                    log.pop_front();
                }
                log.front().copied()
            };
            let Some(b) = front else { return Ok(()) };
            if b.plain.0 > self.held_src {
                // Bytes in no logged block (cannot happen with a contiguous log): compress them.
                self.compress_held((b.plain.0.min(held_end) - self.held_src) as usize)?;
                continue;
            }
            let reach = b.member.max(b.plain.0.saturating_sub(WINDOW));
            // A block larger than MAX_HOLD is never copied: so whether it is copied never depends
            // on how far the decoder had got when the hold ran over (the output stays a function
            // of the input alone).
            let copyable = b.plain.0 == self.held_src
                && self.run_start.is_some_and(|r| r <= reach)
                && b.plain.1 - b.plain.0 <= MAX_HOLD as u64;
            if !copyable {
                self.compress_held((b.plain.1.min(held_end) - self.held_src) as usize)?;
                continue;
            }
            if held_end < b.plain.1 {
                return Ok(()); // the rest of the block is still to come
            }
            let k = (b.plain.1 - b.plain.0) as usize;
            self.copy_block(&b, k)?;
            self.held.consume(k);
            self.held_src = b.plain.1;
        }
    }

    /// Compress the first `n` held bytes.
    fn compress_held(&mut self, n: usize) -> io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.flush_copy()?;
        self.gz.write_all(&self.held[..n])?;
        self.stats.compressed += n as u64;
        self.held.consume(n);
        self.held_src += n as u64;
        Ok(())
    }

    /// Decide what can be decided, compress the rest of the held bytes, and end the run.
    fn end_run(&mut self) -> io::Result<()> {
        self.advance()?;
        self.compress_held(self.held.len())?;
        self.run_start = None;
        Ok(())
    }

    fn copy_block(&mut self, b: &Block, k: usize) -> io::Result<()> {
        let mut two = [0u8; 2];
        let first = b.bits.0 / 8;
        let n = self.blob.read_at(&mut two, first)?;
        if n == 0 {
            return Err(bad("layer blob ends inside a deflate block"));
        }
        let header = (u16::from_le_bytes(two) >> (b.bits.0 % 8)) as u8 & 7;
        self.stats.copied += k as u64;
        if header >> 1 == 0 {
            // Stored: its padding is positional, so emit it anew at our alignment.
            self.flush_copy()?;
            let plain = &self.held[..k];
            self.gz.copied(plain)?;
            let mut seg = Vec::with_capacity(k + k / 65535 * 5 + 5);
            for chunk in plain.chunks(65535) {
                let len = chunk.len() as u16;
                seg.push(0);
                seg.extend_from_slice(&len.to_le_bytes());
                seg.extend_from_slice(&(!len).to_le_bytes());
                seg.extend_from_slice(chunk);
            }
            return self.gz.push_ready(seg);
        }
        let extend = matches!(&self.copy, Some(r) if r.bits.1 == b.bits.0 && (r.bits.1 - r.bits.0) / 8 < MAX_RUN_BYTES);
        if !extend {
            self.flush_copy()?;
            self.copy = Some(CopyRun { bits: b.bits, clear: Vec::new() });
        }
        if let Some(r) = &mut self.copy {
            r.bits.1 = b.bits.1;
            if header & 1 == 1 {
                r.clear.push(b.bits.0);
            }
        }
        self.gz.copied(&self.held[..k])
    }

    /// Write the pending copied run as one segment: its bits shifted to a byte boundary, then
    /// an empty stored block so the next segment starts on one too.
    fn flush_copy(&mut self) -> io::Result<()> {
        let Some(run) = self.copy.take() else { return Ok(()) };
        let (s, e) = run.bits;
        let first = s / 8;
        let last = e.div_ceil(8);
        // Reused: a fresh megabyte per run cost page faults. Not zeroed first: all but its last
        // byte (the shift's zero, set here) are read over.
        let mut raw = std::mem::take(&mut self.scratch);
        let n = (last - first) as usize;
        raw.resize(n + 1, 0);
        self.blob.read_exact_at(&mut raw[..n], first)?;
        raw[n] = 0;
        let sh = (s % 8) as u32;
        let nbits = e - s;
        let nbytes = nbits.div_ceil(8) as usize;
        let mut seg: Vec<u8> = Vec::with_capacity(nbytes + 6);
        if sh == 0 {
            seg.extend_from_slice(&raw[..nbytes]);
        } else {
            shift_down(&raw, sh, nbytes, &mut seg);
        }
        for p in run.clear {
            let rel = p - s;
            seg[(rel / 8) as usize] &= !(1u8 << (rel % 8));
        }
        let used = (nbits % 8) as u32;
        if used != 0 {
            if let Some(l) = seg.last_mut() {
                *l &= (1u8 << used) - 1;
            }
        }
        // Empty stored block: 3 header bits (not final, type 00), padding, LEN 0, NLEN 0xffff.
        if used == 0 || used > 5 {
            seg.push(0);
        }
        seg.extend_from_slice(&[0, 0, 0xff, 0xff]);
        self.scratch = raw;
        self.gz.push_ready(seg)
    }

    /// Finish the stream: every block of the source must have been decoded by now.
    pub fn finish(mut self) -> io::Result<(W, SpliceStats)> {
        self.end_run()?;
        self.flush_copy()?;
        let stats = self.stats;
        Ok((self.gz.finish()?, stats))
    }
}

/// Append `nbytes` bytes of `raw` shifted down by `sh` bits (1..=7): byte `i` of the result is
/// `raw[i] >> sh | raw[i + 1] << (8 - sh)`, so `raw` holds `nbytes + 1` bytes. Eight bytes at a
/// time (a copied run is most of a layer's compressed bytes; byte by byte it was a tenth of the
/// splicing thread's time).
fn shift_down(raw: &[u8], sh: u32, nbytes: usize, seg: &mut Vec<u8>) {
    debug_assert!((1..8).contains(&sh) && raw.len() > nbytes);
    let mut i = 0;
    while i + 8 < raw.len() && i + 8 <= nbytes {
        let mut w = [0u8; 8];
        w.copy_from_slice(&raw[i..i + 8]);
        let word = u64::from_le_bytes(w) >> sh | u64::from(raw[i + 8]) << (64 - sh);
        seg.extend_from_slice(&word.to_le_bytes());
        i += 8;
    }
    seg.extend((i..nbytes).map(|j| raw[j] >> sh | raw[j + 1] << (8 - sh)));
}

impl<W: Write> Write for Splicer<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self.claim {
            Some(off) => {
                if self.run_start.is_none() || off != self.held_src + self.held.len() as u64 {
                    self.end_run()?;
                    self.run_start = Some(off);
                    self.held_src = off;
                }
                self.held.extend_from_slice(data);
                self.claim = Some(off + data.len() as u64);
                self.advance()?;
                if self.held.len() > MAX_HOLD {
                    self.compress_held(self.held.len())?;
                }
            }
            None => {
                self.end_run()?;
                self.flush_copy()?;
                self.gz.write_all(data)?;
                self.stats.compressed += data.len() as u64;
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::testdata::sample;

    #[test]
    fn shifting_eight_bytes_at_a_time_is_shifting_bytes() {
        let raw: Vec<u8> = (0..200u32).map(|i| (i * 151 + 7) as u8).collect();
        for sh in 1..8 {
            for nbytes in [0, 1, 7, 8, 9, 15, 16, 17, 100, 199] {
                let mut fast = vec![0xaa];
                shift_down(&raw[..nbytes + 1], sh, nbytes, &mut fast);
                let slow: Vec<u8> = std::iter::once(0xaa)
                    .chain((0..nbytes).map(|j| (raw[j] >> sh) | (raw[j + 1] << (8 - sh))))
                    .collect();
                assert_eq!(fast, slow, "shift {sh}, {nbytes} bytes");
            }
        }
    }

    fn gzip(data: &[u8], level: u32) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn gunzip(blob: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(blob).read_to_end(&mut out).unwrap();
        out
    }

    /// Splice `blob` keeping source ranges `keep` (in order) with `insert` bytes after each.
    fn splice(blob: Vec<u8>, edits: &[(std::ops::Range<u64>, &[u8])]) -> (Vec<u8>, Vec<u8>, SpliceStats) {
        let blob: Arc<dyn ReadAt> = Arc::new(blob);
        let (mut dec, mut sp) = open(Arc::clone(&blob), Vec::new(), 6, 2).unwrap();
        let mut plain = Vec::new();
        dec.read_to_end(&mut plain).unwrap();
        let mut expect = Vec::new();
        for (r, ins) in edits {
            sp.claim(Some(r.start));
            // Odd write sizes, as the tar writer's are.
            for piece in plain[r.start as usize..r.end as usize].chunks(7_777) {
                sp.write_all(piece).unwrap();
            }
            sp.claim(None);
            sp.write_all(ins).unwrap();
            expect.extend_from_slice(&plain[r.start as usize..r.end as usize]);
            expect.extend_from_slice(ins);
        }
        let (out, stats) = sp.finish().unwrap();
        (out, expect, stats)
    }

    #[test]
    fn decoder_matches_flate2_and_logs_contiguous_blocks() {
        let data = sample(3 << 20, 7);
        let mut blob = gzip(&data, 6);
        blob.extend(gzip(&data[..100_000], 1)); // a second member
        let log: Log = Arc::default();
        let mut dec = BlockDecoder::new(Arc::new(blob.clone()), Arc::clone(&log));
        let mut out = Vec::new();
        dec.read_to_end(&mut out).unwrap();
        assert_eq!(out, gunzip(&blob));
        let blocks: Vec<Block> = lock(&log).iter().copied().collect();
        assert!(blocks.len() > 10);
        assert_eq!(blocks[0].plain.0, 0);
        assert_eq!(blocks.last().unwrap().plain.1, out.len() as u64);
        for w in blocks.windows(2) {
            assert_eq!(w[0].plain.1, w[1].plain.0);
        }
        assert!(blocks.iter().any(|b| b.member == data.len() as u64));
    }

    #[test]
    fn unchanged_stream_is_copied_almost_whole() {
        let data = sample(2 << 20, 3);
        let n = data.len() as u64;
        let (out, expect, stats) = splice(gzip(&data, 6), &[(0..n, b"")]);
        assert_eq!(gunzip(&out), expect);
        assert_eq!(stats.copied, n);
        assert!(out.len() < gzip(&data, 6).len() + 64);
    }

    #[test]
    fn edits_recompress_only_nearby_blocks() {
        let data = sample(4 << 20, 11);
        let n = data.len() as u64;
        // Remove two ranges, replace a "header", append a tail.
        let edits: Vec<(std::ops::Range<u64>, &[u8])> =
            vec![(0..700_000, b"NEW HEADER BYTES"), (700_512..1_500_000, b""), (2_000_000..n - 10, &[0u8; 1024])];
        let (out, expect, stats) = splice(gzip(&data, 6), &edits);
        assert_eq!(gunzip(&out), expect);
        assert!(stats.copied > stats.compressed * 4, "{stats:?}");
        // Deterministic.
        let (again, _, _) = splice(gzip(&data, 6), &edits);
        assert_eq!(again, out);
    }

    #[test]
    fn stored_blocks_multi_members_and_level_zero_sources_splice() {
        // Level 0 writes only stored blocks; a sync-flushed stream has empty stored blocks.
        let data = sample(1 << 20, 5);
        let n = data.len() as u64;
        let mut blob = gzip(&data, 0);
        blob.extend(gzip(&data, 9));
        let (out, expect, stats) = splice(blob, &[(0..n / 2, b"x"), (n / 2 + 1..2 * n, b"")]);
        assert_eq!(gunzip(&out), expect);
        assert!(stats.copied > 0);
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        for piece in data.chunks(100_000) {
            e.write_all(piece).unwrap();
            e.flush().unwrap(); // sync flush: empty stored blocks between
        }
        let (out, expect, _) = splice(e.finish().unwrap(), &[(0..n - 5, b"tail")]);
        assert_eq!(gunzip(&out), expect);
    }

    /// Random sources (levels 0-9, several members, sync flushes; text, noise and zero runs)
    /// and random edit scripts: the spliced stream always decodes to the edited bytes.
    #[test]
    fn random_sources_and_edits_always_decode_right() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n.max(1)
        };
        for case in 0..60 {
            let mut data = Vec::new();
            while data.len() < 200_000 + rnd(600_000) as usize {
                let len = 1 + rnd(50_000) as usize;
                match rnd(3) {
                    0 => data.extend(sample(len, case)),
                    1 => data.extend((0..len).map(|_| rnd(256) as u8)),
                    _ => data.extend(std::iter::repeat_n(0u8, len)),
                }
            }
            let mut blob = Vec::new();
            let mut at = 0;
            while at < data.len() {
                let end = (at + 1 + rnd(data.len() as u64) as usize).min(data.len());
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(rnd(10) as u32));
                for piece in data[at..end].chunks(1 + rnd(200_000) as usize) {
                    e.write_all(piece).unwrap();
                    if rnd(2) == 0 {
                        e.flush().unwrap();
                    }
                }
                blob.extend(e.finish().unwrap());
                at = end;
            }
            let n = data.len() as u64;
            let mut edits: Vec<(std::ops::Range<u64>, &[u8])> = Vec::new();
            let mut pos = 0;
            while pos < n {
                let keep = 1 + rnd(n / 3);
                let end = (pos + keep).min(n);
                let ins: &[u8] = [&b""[..], b"x", &[0u8; 512], b"PAX header bytes"][rnd(4) as usize];
                edits.push((pos..end, ins));
                pos = end + rnd(3) * rnd(100_000);
            }
            let (out, expect, _) = splice(blob, &edits);
            assert_eq!(gunzip(&out), expect, "case {case}");
        }
    }

    #[test]
    fn corrupt_and_truncated_sources_are_errors() {
        let data = sample(1 << 20, 9);
        let blob = gzip(&data, 6);
        for bad_blob in [blob[..blob.len() / 2].to_vec(), {
            let mut b = blob.clone();
            let k = b.len() - 5;
            b[k] ^= 0xff; // the length in the trailer
            b
        }] {
            let (mut dec, _) = open(Arc::new(bad_blob), Vec::new(), 6, 1).unwrap();
            assert!(dec.read_to_end(&mut Vec::new()).is_err());
        }
    }
}
