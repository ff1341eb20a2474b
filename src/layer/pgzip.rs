//! Parallel gzip: the layer's tar stream is cut into fixed 1 MiB chunks, each deflated on a worker
//! thread by a fresh compressor and ended with a sync flush, and the pieces are written in order as
//! one gzip member (one deflate stream, one CRC-32). The decompressing and filtering thread never
//! waits for deflate, and deflate uses every core.
//!
//! Written here because flate2 (and zlib-rs under it) compress on one thread, and the known
//! parallel gzip crates either pick chunking from the thread count or prime each chunk with the
//! previous chunk's window; both are fine for speed but the first makes the output — and so the
//! layer digest — depend on the machine. Here the bytes depend only on the input, the level and
//! CHUNK: the same digest on a laptop and a 64-core runner. The cost is ~1% ratio (no dictionary
//! carried across chunks).
//!
//! Owns: gzip framing and the worker pool for one layer. Must not: know about tar.

use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Input per chunk: part of the output's identity (never derive it from the machine).
pub const CHUNK: usize = 1 << 20;

type Job = (Vec<u8>, bool, Sender<io::Result<Vec<u8>>>);

pub struct ParallelGz<W: Write> {
    out: Option<W>,
    buf: Vec<u8>,
    crc: Crc,
    jobs: Option<Sender<Job>>,
    /// Results in input order; bounded so memory stays at a few chunks per worker.
    pending: VecDeque<Receiver<io::Result<Vec<u8>>>>,
    max_pending: usize,
    workers: Vec<JoinHandle<()>>,
}

fn deflate_chunk(level: u32, input: &[u8], last: bool) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(Compression::new(level), false);
    let mut out = Vec::with_capacity(input.len() / 2 + 1024);
    let flush = if last { FlushCompress::Finish } else { FlushCompress::Sync };
    loop {
        let consumed = c.total_in() as usize;
        if out.capacity() - out.len() < 64 * 1024 {
            out.reserve(256 * 1024);
        }
        let status = c.compress_vec(&input[consumed..], &mut out, flush).map_err(io::Error::other)?;
        let done_input = c.total_in() as usize == input.len();
        match status {
            Status::StreamEnd => return Ok(out),
            // A sync flush is complete once all input is in and the compressor left spare room.
            _ if !last && done_input && out.capacity() > out.len() => return Ok(out),
            _ => {}
        }
    }
}

impl<W: Write> ParallelGz<W> {
    /// `workers` only changes speed, never the bytes written.
    pub fn new(mut out: W, level: u32, workers: usize) -> io::Result<Self> {
        // gzip header: deflate, no flags, mtime 0, XFL 0, OS 255 (unknown): the same everywhere.
        out.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255])?;
        let workers = workers.max(1);
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let handles = (0..workers)
            .map(|_| {
                let rx = Arc::clone(&rx);
                std::thread::spawn(move || loop {
                    let job = match rx.lock() {
                        Ok(r) => r.recv(),
                        Err(_) => return,
                    };
                    let Ok((input, last, reply)) = job else { return };
                    let _ = reply.send(deflate_chunk(level, &input, last));
                })
            })
            .collect();
        Ok(ParallelGz {
            out: Some(out),
            buf: Vec::with_capacity(CHUNK),
            crc: Crc::new(),
            jobs: Some(tx),
            pending: VecDeque::new(),
            max_pending: workers * 2,
            workers: handles,
        })
    }

    fn out(&mut self) -> io::Result<&mut W> {
        self.out.as_mut().ok_or_else(|| io::Error::other("gzip writer already finished"))
    }

    fn write_one(&mut self) -> io::Result<()> {
        if let Some(rx) = self.pending.pop_front() {
            let piece = rx.recv().map_err(|_| io::Error::other("a compression worker stopped"))??;
            self.out()?.write_all(&piece)?;
        }
        Ok(())
    }

    fn submit(&mut self, last: bool) -> io::Result<()> {
        let input = std::mem::replace(&mut self.buf, Vec::with_capacity(if last { 0 } else { CHUNK }));
        let (reply_tx, reply_rx) = channel();
        self.jobs
            .as_ref()
            .ok_or_else(|| io::Error::other("gzip writer already finished"))?
            .send((input, last, reply_tx))
            .map_err(|_| io::Error::other("compression workers stopped"))?;
        self.pending.push_back(reply_rx);
        while self.pending.len() > self.max_pending {
            self.write_one()?;
        }
        Ok(())
    }

    /// Bytes the caller deflated itself follow (see [`ParallelGz::push_ready`]): end the chunk
    /// being filled (so it ends byte-aligned, before them) and count `plain` into the CRC.
    pub fn copied(&mut self, plain: &[u8]) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.submit(false)?;
        }
        self.crc.update(plain);
        Ok(())
    }

    /// Queue deflate data the caller made (starting and ending on a byte boundary, no final
    /// block), in order after everything written so far; its plain bytes must have gone to
    /// [`ParallelGz::copied`].
    pub fn push_ready(&mut self, deflated: Vec<u8>) -> io::Result<()> {
        let (tx, rx) = channel();
        let _ = tx.send(Ok(deflated));
        self.pending.push_back(rx);
        while self.pending.len() > self.max_pending {
            self.write_one()?;
        }
        Ok(())
    }

    /// Flush every chunk, then the trailer (CRC-32 and size mod 2^32); returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.submit(true)?;
        while !self.pending.is_empty() {
            self.write_one()?;
        }
        let (crc, len) = (self.crc.sum(), self.crc.amount());
        let mut out = self.out.take().ok_or_else(|| io::Error::other("gzip writer already finished"))?;
        out.write_all(&crc.to_le_bytes())?;
        out.write_all(&len.to_le_bytes())?;
        Ok(out)
    }
}

impl<W: Write> Write for ParallelGz<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        self.crc.update(&data[..n]);
        if self.buf.len() == CHUNK {
            self.submit(false)?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for ParallelGz<W> {
    fn drop(&mut self) {
        // Closing the job channel ends the workers; their results, if any, are dropped.
        self.jobs.take();
        self.pending.clear();
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn compress(data: &[u8], workers: usize) -> Vec<u8> {
        let mut w = ParallelGz::new(Vec::new(), 6, workers).unwrap();
        // Odd write sizes, across chunk boundaries.
        for piece in data.chunks(77_777) {
            w.write_all(piece).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn output_is_valid_gzip_and_independent_of_workers() {
        for n in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 12345] {
            let data = crate::layer::testdata::sample(n, 1);
            let one = compress(&data, 1);
            let four = compress(&data, 4);
            assert_eq!(one, four, "n={n}: bytes must not depend on the worker count");
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&one[..]).read_to_end(&mut back).unwrap();
            assert_eq!(back, data, "n={n}");
            // GNU-gzip-compatible framing: a single member with a correct trailer.
            let mut multi = Vec::new();
            flate2::read::MultiGzDecoder::new(&one[..]).read_to_end(&mut multi).unwrap();
            assert_eq!(multi, data);
        }
    }
}
