//! A streaming tar reader that yields whole logical entries (metadata blocks + header) and
//! keeps their raw bytes, so the rewrite can copy an untouched entry verbatim.
//!
//! Written here rather than using `tar::Archive` because the rewrite needs the exact bytes of
//! each PAX / GNU long-name block and GNU sparse extension block to copy them through, and
//! because its framing must be Go's, not the tar crate's. `tar::Header` is kept for the rewrite
//! to edit; fields are read by [`super::tarfmt`].
//!
//! What it reads is what Go's `archive/tar` reads (Go 1.19, Debian bookworm's `golang-go`):
//! containerd, moby and containers/storage unpack layers with it, so a layer framed otherwise
//! would let a file the runtime creates pass the plan, the guard and `check` unseen. For every
//! archive the entries (name, type, size, mode, uid/gid, link target, data offset) are Go's, or
//! the archive is an error (the layer is refused). Field decoding is [`super::tarfmt`]'s; the
//! framing here follows `Reader.Next`:
//! - **Metadata headers** (`x`, `L`, `K`) are framed by their own size; only the **last** `x`
//!   header before an entry applies to it (Go replaces, GNU tar merges: `x{size=1536} x{mtime=1}`
//!   must not frame the next file by 1536 bytes). A **`g` header** is an entry of its own
//!   ([`Kind::GlobalPax`]), framed by its own size, that drops what came before it and applies to
//!   nothing after it. A GNU long name or link wins over PAX `path`/`linkpath`; an empty PAX value
//!   keeps the header's field.
//! - **Entry size**: a PAX `size` record overrides the header's size field (Go and CPython write
//!   files over 8 GiB with `0` in the header; Go's `pax-pos-size-file.tar` is framed by PAX's
//!   999, not the header's 684). A rewritten header of a file over 8 GiB keeps the size in a PAX
//!   record. **Header-only entries** (links, devices, directories, FIFOs) carry no data whatever
//!   size they declare; a `\0` type flag on a name ending in `/` is a directory.
//! - **GNU sparse files** where Go recognises them (old-GNU `S` in a GNU header; PAX 0.0/0.1/1.0
//!   by `GNU.sparse.major/minor` or a map), passed through unchanged: old-GNU extension blocks and
//!   a PAX 1.0 map (read from the data as Go reads it) are kept verbatim in [`RawEntry::ext`];
//!   the name and size are Go's (`GNU.sparse.name`, `GNU.sparse.size`/`realsize`); the map must
//!   fit the stored data as Go requires.
//! - **The end**: two zero blocks or the end of the stream (padding cut short by it too); a zero
//!   block followed by a header is an error; what follows the end is not read as entries.
//! - Refused as Go refuses them: bad PAX records (a NUL in a path, link path, user or group name
//!   or in a key, an empty key, NULs within the declared size), unparsable numbers. Refused on
//!   purpose: negative numbers, names over PATH_MAX or holding a NUL, over-large metadata.
//!
//! Owns: block framing, PAX/GNU long names, sparse headers. Must not: decide policy (paths are
//! normalised by [`super::path`]).

use super::path::normalize;
use super::tarfmt;
use std::io::{self, Read, Write};

pub const BLOCK: u64 = 512;
/// Largest PAX or GNU long-name block accepted (a hostile archive could claim gigabytes).
pub const MAX_META: u64 = tarfmt::MAX_SPECIAL;
/// Largest total of the metadata blocks before one entry (a chain of PAX blocks), and of the
/// GNU sparse extension blocks after its header.
pub const MAX_META_TOTAL: u64 = 4 << 20;
/// The largest size a ustar header's 11 octal digits hold (8 GiB - 1); beyond it the size goes
/// in a PAX record.
pub const MAX_USTAR_SIZE: u64 = 0o777_7777_7777;
/// Longest path or link target accepted: Linux's PATH_MAX, so nothing a runtime could unpack
/// is refused, and the names the scan keeps stay small.
pub const MAX_NAME: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    HardLink,
    Symlink,
    CharDev,
    BlockDev,
    Dir,
    Fifo,
    /// A PAX global header: passed through, describes nothing itself.
    GlobalPax,
    Other(u8),
}

impl Kind {
    /// The kind a header's type flag byte names.
    pub fn from_byte(b: u8) -> Kind {
        match b {
            // `S`: an old-GNU sparse file (its map in the header and extension blocks).
            b'0' | 0 | b'7' | b'S' => Kind::File,
            b'1' => Kind::HardLink,
            b'2' => Kind::Symlink,
            b'3' => Kind::CharDev,
            b'4' => Kind::BlockDev,
            b'5' => Kind::Dir,
            b'6' => Kind::Fifo,
            b'g' => Kind::GlobalPax,
            o => Kind::Other(o),
        }
    }
}

/// One logical entry: the metadata blocks before it and its header. Its data follows in the
/// stream and is consumed with [`TarReader::copy_data`], [`TarReader::read_prefix`] or skipped.
#[derive(Clone, Debug)]
pub struct RawEntry {
    /// PAX (`x`) and GNU long name/link (`L`/`K`) blocks, verbatim, header and padded data
    /// (those Go ignores included: copied verbatim, they are ignored again).
    pub meta: Vec<u8>,
    /// The PAX records that apply to the entry (the last `x` header's; for a `g` header, its
    /// own), in order (key, value).
    pub pax: Vec<(String, Vec<u8>)>,
    pub header: tar::Header,
    /// The type flag as Go reports it (a `\0` flag read as `0`, or `5` for a name ending in `/`).
    pub typeflag: u8,
    /// The name as Go's `Header.Name` holds it (prefix, PAX `path`, GNU long name, sparse name).
    pub name: Vec<u8>,
    /// The link target as Go's `Header.Linkname` holds it (any type).
    pub linkname: Vec<u8>,
    /// Normalised path: no leading `./` or `/`, no trailing `/`.
    pub path: String,
    /// Hardlink or symlink target as written (hardlink targets normalised like paths).
    pub link: Option<String>,
    pub kind: Kind,
    /// Data bytes stored in the archive after the header and [`RawEntry::ext`] (for a sparse
    /// file: the stored segments).
    pub size: u64,
    /// The size the archive declares for the entry (PAX `size`, else the header's), which
    /// frames it; differs from `size + data_ext` only for entries that carry no data but declare
    /// some.
    pub declared: u64,
    /// The file's size once extracted: `size`, or a sparse file's real size.
    pub real_size: u64,
    /// The size Go's `Header.Size` reports (the declared size, a sparse file's real size, 0 for
    /// a `g` header).
    pub listed_size: u64,
    /// A GNU sparse file (old-GNU `S` or PAX 0.x/1.0 as Go recognises them): its stored data is
    /// not the file's bytes from offset 0.
    pub sparse: bool,
    /// Blocks that follow the header, verbatim: old-GNU sparse extension blocks, a PAX 1.0
    /// sparse map (the first `data_ext` bytes of the declared data), a `g` header's records.
    pub ext: Vec<u8>,
    /// How much of `ext` the declared size counts (a PAX 1.0 sparse map).
    pub data_ext: u64,
    /// The entry's path or hardlink target leaves the root (`..` or absolute after
    /// normalisation would escape): reported, never followed.
    pub escapes: bool,
    /// Offset of the entry's first byte (its first metadata block, or its header) in the stream.
    pub offset: u64,
    /// Where Go's reader stands once it has returned the header: the data's start (for a `g`
    /// header, the end of its records).
    pub data_offset: u64,
    mode_bits: u32,
    uid_num: u64,
    gid_num: u64,
}

impl RawEntry {
    pub fn mode(&self) -> u32 {
        self.mode_bits
    }
    pub fn uid(&self) -> u64 {
        self.uid_num
    }
    pub fn gid(&self) -> u64 {
        self.gid_num
    }
    pub fn has_xattr(&self, name: &str) -> bool {
        let key = format!("SCHILY.xattr.{name}");
        self.pax.iter().any(|(k, _)| *k == key)
    }
}

/// Parse PAX records: `"<len> <key>=<value>\n"` repeated, checked as Go checks them.
pub fn parse_pax(data: &[u8]) -> io::Result<Vec<(String, Vec<u8>)>> {
    tarfmt::pax_records(data)
}

/// Encode PAX records in the canonical `"<len> <key>=<value>\n"` form.
pub fn encode_pax(records: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in records {
        let body = k.len() + v.len() + 3; // ' ', '=', '\n'
        let mut len = body + body.to_string().len();
        if len.to_string().len() + body != len {
            len = body + len.to_string().len();
        }
        out.extend_from_slice(format!("{len} {k}=").as_bytes());
        out.extend_from_slice(v);
        out.push(b'\n');
    }
    out
}

pub use super::tarfmt::bad;

pub fn padding(size: u64) -> u64 {
    (BLOCK - size % BLOCK) % BLOCK
}

/// Reads logical entries from an uncompressed tar stream.
pub struct TarReader<R> {
    r: Counted<R>,
    /// Data bytes (plus padding) of the current entry not yet consumed.
    pending_data: u64,
    pending_pad: u64,
    done: bool,
}

impl<R: Read> TarReader<R> {
    pub fn new(r: R) -> Self {
        TarReader { r: Counted { inner: r, n: 0 }, pending_data: 0, pending_pad: 0, done: false }
    }

    fn read_block(&mut self, buf: &mut [u8; 512]) -> io::Result<bool> {
        let mut n = 0;
        while n < 512 {
            match self.r.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        match n {
            0 => Ok(false),
            512 => Ok(true),
            _ => Err(bad("tar stream ends inside a header block (truncated layer)")),
        }
    }

    /// Skip the rest of the current entry: its data must be there; padding cut short by the
    /// end of the stream ends the archive, as in Go (`tryReadFull` of the padding).
    fn skip_pending(&mut self) -> io::Result<()> {
        let n = self.pending_data;
        if n > 0 {
            let copied = io::copy(&mut (&mut self.r).take(n), &mut io::sink())?;
            if copied != n {
                return Err(bad("tar stream ends inside an entry's data (truncated layer)"));
            }
        }
        let p = self.pending_pad;
        if p > 0 && io::copy(&mut (&mut self.r).take(p), &mut io::sink())? != p {
            self.done = true;
        }
        self.pending_data = 0;
        self.pending_pad = 0;
        Ok(())
    }

    fn read_meta_data(&mut self, size: u64) -> io::Result<Vec<u8>> {
        if size > MAX_META {
            return Err(bad(format!("metadata block of {size} bytes exceeds the {MAX_META}-byte limit")));
        }
        let padded = size + padding(size);
        let mut data = Vec::with_capacity(padded as usize);
        (&mut self.r).take(padded).read_to_end(&mut data)?;
        if data.len() as u64 != padded {
            return Err(bad("tar stream ends inside a metadata block (truncated layer)"));
        }
        Ok(data)
    }

    /// The next header block, or None at the end of the archive: the end of the stream, or a
    /// zero block followed by the end or another zero block. A zero block followed by anything
    /// else is an error, as in Go (GNU tar would read on; bsdtar stops).
    fn next_header(&mut self) -> io::Result<Option<[u8; 512]>> {
        let mut block = [0u8; 512];
        if !self.read_block(&mut block)? {
            return Ok(None);
        }
        if block.iter().all(|&b| b == 0) {
            if self.read_block(&mut block)? && block.iter().any(|&b| b != 0) {
                return Err(bad("a header after a single zero block (Go reads the archive as corrupt)"));
            }
            return Ok(None);
        }
        Ok(Some(block))
    }

    /// The next logical entry, or None at the end of the archive. Framed as Go's
    /// `Reader.Next`: metadata headers (`x`, `L`, `K`) are framed by their own size; only the
    /// last `x` header before an entry applies to it; a `g` header is an entry of its own,
    /// framed by its own size, and drops what came before it; a GNU long name or link wins over
    /// PAX `path`/`linkpath`.
    pub fn next_entry(&mut self) -> io::Result<Option<RawEntry>> {
        if self.done {
            return Ok(None);
        }
        self.skip_pending()?;
        if self.done {
            return Ok(None);
        }
        let mut pre = Preamble { offset: self.r.n, ..Preamble::default() };
        loop {
            // Metadata blocks with no entry after them describe nothing: Go ends the archive
            // there too (Go's pax-path-hdr.tar); a rewrite drops them.
            let Some(block) = self.next_header()? else {
                self.done = true;
                return Ok(None);
            };
            let f = tarfmt::header(&block)?;
            let header = tar::Header::from_byte_slice(&block).clone();
            if f.size < 0 || f.mode < 0 || f.uid < 0 || f.gid < 0 || f.mode > i64::from(u32::MAX) {
                return Err(bad("bad tar header: a negative size, mode, uid or gid, or a mode past 32 bits"));
            }
            let t = f.typeflag;
            if !matches!(t, b'x' | b'g' | b'L' | b'K') {
                return self.finish_entry(pre, Head { header, f }, &block);
            }
            let size = f.size as u64;
            let data = self.read_meta_data(size)?;
            let body = &data[..size as usize];
            match t {
                b'x' | b'g' => {
                    let records = tarfmt::pax_records(body)?;
                    tarfmt::check_merge(&records)?;
                    pre.pax = records;
                    if t == b'g' {
                        return self.global(pre, Head { header, f }, data, size);
                    }
                }
                b'L' => pre.long_name = tarfmt::c_str(body).to_vec(),
                _ => pre.long_link = tarfmt::c_str(body).to_vec(),
            }
            pre.meta.extend_from_slice(&block);
            pre.meta.extend_from_slice(&data);
            if pre.meta.len() as u64 > MAX_META_TOTAL {
                return Err(bad(format!(
                    "metadata blocks before one entry exceed {MAX_META_TOTAL} bytes (a hostile archive?)"
                )));
            }
        }
    }

    /// A `g` header: an entry of its own that Go reports (name from its own `path` record or
    /// its header, size 0) and that describes nothing; what came before it is dropped.
    /// `pre.pax` holds its records; `data` is what followed its header, `size` of it its own.
    fn global(&mut self, pre: Preamble, head: Head, data: Vec<u8>, size: u64) -> io::Result<Option<RawEntry>> {
        let Preamble { offset, meta, pax: records, .. } = pre;
        let Head { header, f } = head;
        let name = tarfmt::pax_set(&records, "path").map(|v| v.into_owned()).unwrap_or(f.name);
        let (path, escapes) = normalize(&String::from_utf8_lossy(&name));
        let data_offset = self.r.n - data.len() as u64 + size;
        Ok(Some(RawEntry {
            meta,
            pax: records,
            header,
            typeflag: b'g',
            name,
            linkname: Vec::new(),
            path,
            link: None,
            kind: Kind::GlobalPax,
            size: 0,
            declared: 0,
            real_size: 0,
            listed_size: 0,
            sparse: false,
            ext: data,
            data_ext: 0,
            escapes,
            offset,
            data_offset,
            mode_bits: 0,
            uid_num: 0,
            gid_num: 0,
        }))
    }

    /// The entry whose header is `block`, with the PAX records and GNU long names before it.
    fn finish_entry(&mut self, pre: Preamble, head: Head, block: &[u8; 512]) -> io::Result<Option<RawEntry>> {
        let Preamble { offset, mut meta, pax, long_name, long_link } = pre;
        let Head { header, f } = head;
        // Go's mergePAX, then the GNU long names, then the `\0` type flag.
        let num = |key: &str, dflt: i64| tarfmt::pax_set(&pax, key).and_then(|v| tarfmt::parse_int(&v)).unwrap_or(dflt);
        let (uid, gid, size) = (num("uid", f.uid), num("gid", f.gid), num("size", f.size));
        if uid < 0 || gid < 0 || size < 0 {
            return Err(bad("PAX uid, gid or size record is negative"));
        }
        let mut name = tarfmt::pax_set(&pax, "path").map(|v| v.into_owned()).unwrap_or(f.name);
        let mut linkname = tarfmt::pax_set(&pax, "linkpath").map(|v| v.into_owned()).unwrap_or(f.linkname);
        if !long_name.is_empty() {
            name = long_name;
        }
        if !long_link.is_empty() {
            linkname = long_link;
        }
        let mut t = f.typeflag;
        if t == 0 {
            t = if name.ends_with(b"/") { b'5' } else { b'0' };
        }
        let kind = Kind::from_byte(t);
        // Only regular files (and unknown types) carry data. POSIX says no data follows links,
        // devices, directories and FIFOs, whatever size they declare, and Go (as GNU tar and
        // CPython) frames them so. Skipping the declared bytes would hide the entries after it.
        let header_only = matches!(t, b'1'..=b'6');
        let size = size as u64;
        let data_size = if header_only { 0 } else { size };
        // Old-GNU sparse: `isextended` (byte 482) says more map blocks follow the header,
        // each with its own flag at byte 504. They are the entry's metadata, kept verbatim.
        let mut ext = Vec::new();
        let mut map = Vec::new();
        let mut data_ext = 0u64;
        let mut listed_size = size as i64;
        let mut sparse = false;
        if t == b'S' {
            if f.format != tarfmt::Format::Gnu {
                return Err(bad("an old-GNU sparse header (`S`) in a non-GNU header"));
            }
            listed_size = tarfmt::numeric(&block[483..495]).ok_or_else(|| bad("bad old-GNU sparse real size"))?;
            tarfmt::old_gnu_entries(block, 386, 4, &mut map)?;
            let mut more = block[482] != 0;
            while more {
                let mut b = [0u8; 512];
                if !self.read_block(&mut b)? {
                    return Err(bad("tar stream ends inside a GNU sparse map (truncated layer)"));
                }
                ext.extend_from_slice(&b);
                if (meta.len() + ext.len()) as u64 > MAX_META_TOTAL {
                    return Err(bad(format!(
                        "GNU sparse map blocks of one entry exceed {MAX_META_TOTAL} bytes (a hostile archive?)"
                    )));
                }
                tarfmt::old_gnu_entries(&b, 0, 21, &mut map)?;
                more = b[504] != 0;
            }
            sparse = true;
        } else if let Some(v1) = tarfmt::pax_sparse_version(&pax) {
            if header_only {
                return Err(bad("a GNU sparse map on a header-only entry"));
            }
            if let Some(n) = tarfmt::pax_set(&pax, "GNU.sparse.name") {
                name = n.into_owned();
            }
            let real =
                tarfmt::pax_set(&pax, "GNU.sparse.size").or_else(|| tarfmt::pax_set(&pax, "GNU.sparse.realsize"));
            if let Some(r) = real {
                listed_size = tarfmt::parse_int(&r).ok_or_else(|| bad("bad GNU sparse real size"))?;
            }
            map = if v1 {
                loop {
                    if data_ext + BLOCK > data_size {
                        return Err(bad("tar stream ends inside a GNU sparse 1.0 map (truncated entry)"));
                    }
                    let mut b = [0u8; 512];
                    if !self.read_block(&mut b)? {
                        return Err(bad("tar stream ends inside a GNU sparse map (truncated layer)"));
                    }
                    ext.extend_from_slice(&b);
                    data_ext += BLOCK;
                    if (meta.len() + ext.len()) as u64 > MAX_META_TOTAL {
                        return Err(bad(format!("a GNU sparse 1.0 map exceeds {MAX_META_TOTAL} bytes")));
                    }
                    if let Some(m) = tarfmt::sparse_map_1x0(&ext) {
                        break m?;
                    }
                }
            } else {
                tarfmt::sparse_map_0x1(&pax)?
            };
            sparse = true;
        }
        if sparse {
            tarfmt::check_sparse(&map, listed_size, data_size - data_ext)?;
        }
        for (what, n) in [("name", &name), ("link target", &linkname)] {
            if n.len() > MAX_NAME {
                return Err(bad(format!(
                    "entry {what} of {} bytes exceeds the {MAX_NAME}-byte limit (PATH_MAX): {}…",
                    n.len(),
                    String::from_utf8_lossy(&n[..60])
                )));
            }
            if n.contains(&0) {
                return Err(bad(format!("entry {what} contains a NUL byte (no file system can hold it)")));
            }
        }
        let (path, mut escapes) = normalize(&String::from_utf8_lossy(&name));
        let link = match kind {
            Kind::HardLink => {
                let (l, esc) = normalize(&String::from_utf8_lossy(&linkname));
                escapes |= esc;
                Some(l)
            }
            Kind::Symlink => Some(String::from_utf8_lossy(&linkname).into_owned()),
            _ => None,
        };
        let real_size = if sparse { listed_size as u64 } else { data_size };
        self.pending_data = data_size - data_ext;
        self.pending_pad = padding(data_size);
        meta.shrink_to_fit();
        Ok(Some(RawEntry {
            meta,
            pax,
            header,
            typeflag: t,
            name,
            linkname,
            path,
            link,
            kind,
            size: data_size - data_ext,
            declared: size,
            real_size,
            listed_size: listed_size as u64,
            sparse,
            ext,
            data_ext,
            escapes,
            offset,
            data_offset: self.r.n,
            mode_bits: f.mode as u32,
            uid_num: uid as u64,
            gid_num: gid as u64,
        }))
    }

    /// Copy the current entry's data (without padding) to `w`.
    pub fn copy_data(&mut self, w: &mut impl Write) -> io::Result<u64> {
        let n = self.pending_data;
        let copied = io::copy(&mut (&mut self.r).take(n), w)?;
        if copied != n {
            return Err(bad("tar stream ends inside an entry's data (truncated layer)"));
        }
        self.pending_data = 0;
        Ok(copied)
    }

    /// Read up to `n` bytes of the current entry's data; the rest is skipped later.
    pub fn read_prefix(&mut self, n: u64) -> io::Result<Vec<u8>> {
        let want = n.min(self.pending_data);
        let mut buf = Vec::with_capacity(want as usize);
        (&mut self.r).take(want).read_to_end(&mut buf)?;
        if buf.len() as u64 != want {
            return Err(bad("tar stream ends inside an entry's data (truncated layer)"));
        }
        self.pending_data -= want;
        Ok(buf)
    }

    /// Consume the rest of the stream (trailing zero blocks, GNU record padding).
    pub fn finish(mut self) -> io::Result<R> {
        self.skip_pending()?;
        io::copy(&mut self.r, &mut io::sink())?;
        Ok(self.r.inner)
    }
}

/// What came before an entry's own header block: where the entry starts in the stream, the
/// metadata blocks (kept verbatim), the last PAX records and the GNU long name and link.
#[derive(Default)]
struct Preamble {
    offset: u64,
    meta: Vec<u8>,
    pax: Vec<(String, Vec<u8>)>,
    long_name: Vec<u8>,
    long_link: Vec<u8>,
}

/// A header block, parsed: as the `tar` crate holds it, and its fields as Go reads them.
struct Head {
    header: tar::Header,
    f: tarfmt::Fields,
}

/// Counts the bytes read through it (the stream offset of each entry).
struct Counted<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n += k as u64;
        Ok(k)
    }
}

/// Writes tar output: verbatim blocks, modified headers, and the end-of-archive marker.
pub struct TarWriter<W: Write> {
    pub w: W,
}

impl<W: Write> TarWriter<W> {
    pub fn new(w: W) -> Self {
        TarWriter { w }
    }

    /// Write a PAX `x` block carrying `records` (nothing when empty).
    pub fn write_pax(&mut self, records: &[(String, Vec<u8>)]) -> io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let data = encode_pax(records);
        let mut h = tar::Header::new_ustar();
        // A fixed name like GNU tar's `./PaxHeaders/NAME` is not needed for correctness.
        h.set_path("PaxHeader").map_err(|e| bad(e.to_string()))?;
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        self.w.write_all(h.as_bytes())?;
        self.w.write_all(&data)?;
        self.pad(data.len() as u64)
    }

    pub fn write_header(&mut self, h: &tar::Header) -> io::Result<()> {
        self.w.write_all(h.as_bytes())
    }

    pub fn pad(&mut self, size: u64) -> io::Result<()> {
        let p = padding(size) as usize;
        self.w.write_all(&[0u8; 512][..p])
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.w.write_all(&[0u8; 1024])?;
        Ok(self.w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_roundtrip() {
        let recs = vec![
            ("path".to_string(), b"a/very/long/path".to_vec()),
            ("SCHILY.xattr.security.capability".to_string(), vec![1, 0, 0, 2, 0, b'\n', 0]),
        ];
        let enc = encode_pax(&recs);
        assert_eq!(parse_pax(&enc).unwrap(), recs);
        // The length prefix counts itself: "9 a=bcd\n" would be wrong at the 9/10 boundary.
        let r = vec![("k".to_string(), vec![b'x'; 5])];
        let e = encode_pax(&r);
        assert_eq!(
            e.len(),
            std::str::from_utf8(&e[..e.iter().position(|&b| b == b' ').unwrap()]).unwrap().parse::<usize>().unwrap()
        );
    }

    #[test]
    fn rejects_garbage() {
        let mut r = TarReader::new(&[1u8; 512][..]);
        assert!(r.next_entry().is_err());
        let mut r = TarReader::new(&[1u8; 100][..]);
        assert!(r.next_entry().is_err());
        assert!(parse_pax(b"99 path=x\n").is_err());
    }

    #[test]
    fn accepts_signed_header_checksums() {
        // Old Unix tars summed the header as signed bytes; GNU tar and Go accept either sum.
        let mut h = tar::Header::new_ustar();
        h.set_path("caf\u{e9}").unwrap();
        h.set_size(0);
        h.set_cksum();
        let mut block = *h.as_bytes();
        let signed: i64 = block[..148].iter().chain(&block[156..]).map(|&b| b as i8 as i64).sum::<i64>() + 8 * 32;
        block[148..156].copy_from_slice(format!("{signed:06o}\0 ").as_bytes());
        let mut t = block.to_vec();
        t.extend_from_slice(&[0; 1024]);
        let mut r = TarReader::new(&t[..]);
        assert_eq!(r.next_entry().unwrap().unwrap().path, "caf\u{e9}");
        // A PAX path with a NUL: GNU tar and bsdtar cut it there, Go refuses the archive; so
        // does harden (Go's pax-nul-path.tar).
        let mut t = Vec::new();
        TarWriter::new(&mut t).write_pax(&[("path".into(), b"etc/shadow\0.txt".to_vec())]).unwrap();
        t.extend_from_slice(&block);
        t.extend_from_slice(&[0; 1024]);
        assert!(TarReader::new(&t[..]).next_entry().unwrap_err().to_string().contains("NUL"));
        let mut t = block.to_vec();
        t.extend_from_slice(&[0; 1024]);
        // Neither sum: refused.
        t[148] = b'7';
        assert!(TarReader::new(&t[..]).next_entry().unwrap_err().to_string().contains("checksum"));
    }

    #[test]
    fn base256_sizes_past_u64_are_errors_not_zero() {
        let archive = |size: [u8; 12]| {
            let mut h = tar::Header::new_gnu();
            h.set_path("f").unwrap();
            h.as_old_mut().size = size;
            h.set_cksum();
            let mut t = h.as_bytes().to_vec();
            t.extend_from_slice(&[b'd'; 512]);
            t.extend_from_slice(&[0; 1024]);
            t
        };
        let mut five = [0u8; 12];
        five[0] = 0x80;
        five[11] = 5;
        let t = archive(five);
        assert_eq!(TarReader::new(&t[..]).next_entry().unwrap().unwrap().size, 5);
        let mut huge = five;
        huge[0] = 0x97; // Go's issue12435.tar: the tar crate would read 0
        let t = archive(huge);
        assert!(TarReader::new(&t[..]).next_entry().unwrap_err().to_string().contains("size field"));
        let t = archive([0xff; 12]);
        assert!(TarReader::new(&t[..]).next_entry().is_err());
    }
}
