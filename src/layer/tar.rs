//! A streaming tar reader that yields whole logical entries (metadata blocks + header) and
//! keeps their raw bytes, so the rewrite can copy an untouched entry verbatim.
//!
//! Written here rather than using `tar::Archive` because the rewrite needs the exact bytes of
//! each PAX / GNU long-name block and GNU sparse extension block to copy them through. Field
//! parsing still uses `tar::Header`.
//!
//! What it reads is what GNU tar, libarchive (bsdtar) and Go's archive/tar read:
//! - **Entry size**: a PAX `size` record overrides the header's size field, as POSIX says and
//!   every one of those readers does. Go and CPython write files over 8 GiB with the real size in
//!   PAX and `0` in the header; Go's `pax-pos-size-file.tar` (header 684, PAX 999) is framed by
//!   999 bytes in all three. harden does the same, deliberately: following PAX like every reader
//!   is what makes the framing unambiguous (refusing it would only break real archives; a
//!   parser that ignores PAX is the odd one out, and nothing harden writes relies on it). A PAX
//!   `size` that is not a number is an error. A rewritten header of a file over 8 GiB keeps the
//!   size in a PAX record (header field 0), as Go writes it.
//! - **GNU sparse files**, passed through unchanged: old-GNU `S` headers with their `isextended`
//!   continuation blocks (kept verbatim in [`RawEntry::ext`], data = the header's size = stored
//!   bytes); PAX 0.0/0.1 (`GNU.sparse.*` records, header size = stored size) and 1.0 (the map
//!   at the start of the data, `GNU.sparse.realsize`, the real name in `GNU.sparse.name` while the
//!   header says `./GNUSparseFile.NNN/name`). [`RawEntry::path`] is the real name and
//!   [`RawEntry::real_size`] the file's size once expanded.
//! - **Header checksums** computed over unsigned or signed bytes (old Unix tars; GNU tar takes both).
//! - **Header-only entries** (links, devices, directories, FIFOs) carry no data whatever size they
//!   declare, as POSIX says and GNU tar, Go and CPython read them.
//! - **PAX names** end at their first NUL, as GNU tar and bsdtar read them.
//!
//! Owns: block framing, PAX/GNU long names, sparse headers. Must not: decide policy (paths are
//! normalised by [`super::path`]).

use super::path::normalize;
use std::io::{self, Read, Write};

pub const BLOCK: u64 = 512;
/// Largest PAX or GNU long-name block accepted (a hostile archive could claim gigabytes).
pub const MAX_META: u64 = 1 << 20;
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
    /// PAX (`x`) and GNU long name/link (`L`/`K`) blocks, verbatim, header and padded data.
    pub meta: Vec<u8>,
    /// Local PAX records in order (key, value).
    pub pax: Vec<(String, Vec<u8>)>,
    pub header: tar::Header,
    /// Normalised path: no leading `./` or `/`, no trailing `/`.
    pub path: String,
    /// Hardlink or symlink target as written (hardlink targets normalised like paths).
    pub link: Option<String>,
    pub kind: Kind,
    /// Data bytes stored in the archive after the header (for a sparse file: the stored
    /// segments, plus the map for PAX 1.0).
    pub size: u64,
    /// The size the archive declares for the entry (PAX `size`, else the header's), which
    /// frames it; differs from `size` only for entries that carry no data but declare some.
    pub declared: u64,
    /// The file's size once extracted: `size`, or a sparse file's real size.
    pub real_size: u64,
    /// A GNU sparse file (old-GNU `S` or PAX 0.x/1.0): its stored data is not the file's bytes
    /// from offset 0.
    pub sparse: bool,
    /// Old-GNU sparse extension blocks that follow the header, verbatim (empty otherwise).
    pub ext: Vec<u8>,
    /// The entry's path or hardlink target leaves the root (`..` or absolute after
    /// normalisation would escape): reported, never followed.
    pub escapes: bool,
    /// Offset of the entry's first byte (its first metadata block, or its header) in the stream.
    pub offset: u64,
}

impl RawEntry {
    pub fn mode(&self) -> u32 {
        self.header.mode().unwrap_or(0)
    }
    pub fn uid(&self) -> u64 {
        pax_num(&self.pax, "uid").unwrap_or_else(|| self.header.uid().unwrap_or(0))
    }
    pub fn gid(&self) -> u64 {
        pax_num(&self.pax, "gid").unwrap_or_else(|| self.header.gid().unwrap_or(0))
    }
    pub fn has_xattr(&self, name: &str) -> bool {
        let key = format!("SCHILY.xattr.{name}");
        self.pax.iter().any(|(k, _)| *k == key)
    }
}

fn pax_num(pax: &[(String, Vec<u8>)], key: &str) -> Option<u64> {
    pax.iter().rev().find(|(k, _)| k == key).and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse().ok())
}

/// A PAX string value, up to its first NUL: GNU tar and bsdtar take a name so (Go's
/// `pax-nul-path.tar`), and a plan matching the whole value would miss the file they create.
fn pax_str(pax: &[(String, Vec<u8>)], key: &str) -> Option<String> {
    pax.iter().rev().find(|(k, _)| k == key).map(|(_, v)| String::from_utf8_lossy(trim_nul(v)).into_owned())
}

/// Parse PAX records: `"<len> <key>=<value>\n"` repeated.
pub fn parse_pax(data: &[u8]) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        if rest.iter().all(|&b| b == 0) {
            break;
        }
        let sp = rest.iter().position(|&b| b == b' ').ok_or_else(|| bad("PAX record without length"))?;
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("PAX record length is not a number"))?;
        if len <= sp + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err(bad("PAX record length does not fit the record"));
        }
        let rec = &rest[sp + 1..len - 1];
        let eq = rec.iter().position(|&b| b == b'=').ok_or_else(|| bad("PAX record without `=`"))?;
        if rec[..eq].contains(&0) {
            // bsdtar and GNU tar refuse it too (Go's pax-nul-xattrs.tar).
            return Err(bad("PAX record key contains a NUL byte"));
        }
        let key = String::from_utf8_lossy(&rec[..eq]).into_owned();
        out.push((key, rec[eq + 1..].to_vec()));
        rest = &rest[len..];
    }
    Ok(out)
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

pub fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

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

    fn skip_pending(&mut self) -> io::Result<()> {
        let n = self.pending_data + self.pending_pad;
        if n > 0 {
            let copied = io::copy(&mut (&mut self.r).take(n), &mut io::sink())?;
            if copied != n {
                return Err(bad("tar stream ends inside an entry's data (truncated layer)"));
            }
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

    /// The next logical entry, or None at the end of the archive.
    pub fn next_entry(&mut self) -> io::Result<Option<RawEntry>> {
        if self.done {
            return Ok(None);
        }
        self.skip_pending()?;
        let offset = self.r.n;
        let mut meta = Vec::new();
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        loop {
            let mut block = [0u8; 512];
            // The end (end of stream or a zero block). Metadata blocks with no entry after them
            // describe nothing: GNU tar and Go end the archive there too (Go's
            // pax-path-hdr.tar); a rewrite drops them.
            if !self.read_block(&mut block)? || block.iter().all(|&b| b == 0) {
                self.done = true;
                return Ok(None);
            }
            let header = tar::Header::from_byte_slice(&block).clone();
            verify_checksum(&block)?;
            let t = header.entry_type().as_byte();
            let header_size = entry_size(&header);
            if !matches!(t, b'x' | b'L' | b'K') {
                // POSIX: a PAX `size` record overrides the header (Go writes 0 there past 8 GiB).
                let size = match pax.iter().rev().find(|(k, _)| k == "size") {
                    Some((_, v)) => {
                        std::str::from_utf8(v).ok().and_then(|s| s.parse::<u64>().ok()).ok_or_else(|| {
                            bad(format!("PAX size record `{}` is not a number", String::from_utf8_lossy(v)))
                        })?
                    }
                    None => header_size?,
                };
                return self.finish_entry(offset, meta, pax, header, t, size, long_name, long_link, &block);
            }
            let size = header_size?;
            let data = self.read_meta_data(size)?;
            meta.extend_from_slice(&block);
            meta.extend_from_slice(&data);
            if meta.len() as u64 > MAX_META_TOTAL {
                return Err(bad(format!(
                    "metadata blocks before one entry exceed {MAX_META_TOTAL} bytes (a hostile archive?)"
                )));
            }
            let body = &data[..size as usize];
            match t {
                b'x' => pax.extend(parse_pax(body)?),
                b'L' => long_name = Some(trim_nul(body).to_vec()),
                _ => long_link = Some(trim_nul(body).to_vec()),
            }
        }
    }

    /// The entry whose header is `block` (type `t`, declaring `size` data bytes).
    #[allow(clippy::too_many_arguments)]
    fn finish_entry(
        &mut self,
        offset: u64,
        mut meta: Vec<u8>,
        pax: Vec<(String, Vec<u8>)>,
        header: tar::Header,
        t: u8,
        size: u64,
        long_name: Option<Vec<u8>>,
        long_link: Option<Vec<u8>>,
        block: &[u8; 512],
    ) -> io::Result<Option<RawEntry>> {
        // Old-GNU sparse: `isextended` (byte 482) says more map blocks follow the header,
        // each with its own flag at byte 504. They are the entry's metadata, kept verbatim.
        let mut ext = Vec::new();
        let mut more = t == b'S' && block[482] != 0;
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
            more = b[504] != 0;
        }
        let pax_sparse = pax.iter().any(|(k, _)| k.starts_with("GNU.sparse."));
        let sparse = t == b'S' || pax_sparse;
        let kind = Kind::from_byte(t);
        let raw_path = pax_str(&pax, "GNU.sparse.name")
            .or_else(|| pax_str(&pax, "path"))
            .or_else(|| long_name.map(|b| String::from_utf8_lossy(&b).into_owned()))
            .unwrap_or_else(|| String::from_utf8_lossy(&header.path_bytes()).into_owned());
        let raw_link = pax_str(&pax, "linkpath")
            .or_else(|| long_link.map(|b| String::from_utf8_lossy(&b).into_owned()))
            .or_else(|| header.link_name_bytes().map(|b| String::from_utf8_lossy(&b).into_owned()));
        for (what, name) in [("name", Some(&raw_path)), ("link target", raw_link.as_ref())] {
            if let Some(n) = name.filter(|n| n.len() > MAX_NAME) {
                return Err(bad(format!(
                    "entry {what} of {} bytes exceeds the {MAX_NAME}-byte limit (PATH_MAX): {}…",
                    n.len(),
                    n.chars().take(60).collect::<String>()
                )));
            }
        }
        let (path, mut escapes) = normalize(&raw_path);
        let link = match (kind, raw_link) {
            (Kind::HardLink, Some(l)) => {
                let (l, esc) = normalize(&l);
                escapes |= esc;
                Some(l)
            }
            (Kind::Symlink, Some(l)) => Some(l),
            _ => None,
        };
        // Only regular files (and unknown types, conservatively) carry data. POSIX says no data
        // follows links, devices, directories and FIFOs, whatever size they declare, and GNU tar,
        // Go and CPython frame them so (CPython's testtar.tar has a directory declaring 255
        // bytes, followed at once by the next header). Skipping the declared bytes would hide
        // the entries after it from the scan while every unpacker sees them.
        let carries_data = matches!(kind, Kind::File | Kind::GlobalPax | Kind::Other(_));
        let data_size = if carries_data { size } else { 0 };
        let real_size = if t == b'S' {
            header.as_gnu().and_then(|g| g.real_size().ok()).unwrap_or(data_size)
        } else if pax_sparse {
            pax_num(&pax, "GNU.sparse.realsize").or_else(|| pax_num(&pax, "GNU.sparse.size")).unwrap_or(data_size)
        } else {
            data_size
        };
        self.pending_data = data_size;
        self.pending_pad = if carries_data { padding(size) } else { 0 };
        meta.shrink_to_fit();
        Ok(Some(RawEntry {
            meta,
            pax,
            header,
            path,
            link,
            kind,
            size: data_size,
            declared: size,
            real_size,
            sparse,
            ext,
            escapes,
            offset,
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

fn trim_nul(b: &[u8]) -> &[u8] {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    &b[..end]
}

/// The header's size field: octal, or GNU base-256 (top bit of the first byte set). The tar
/// crate reads only the last 8 bytes of a base-256 field; a value past 2^64 or negative is an
/// error here, as in GNU tar and Go (Go's issue12435.tar), not a silent 0.
fn entry_size(header: &tar::Header) -> io::Result<u64> {
    let field = &header.as_old().size;
    if field[0] & 0x80 != 0 && (field[0] & 0x7f != 0 || field[1..4].iter().any(|&b| b != 0)) {
        return Err(bad("bad header size field: base-256 value negative or over 2^64"));
    }
    header.entry_size().map_err(|e| bad(format!("bad header size field: {e}")))
}

/// The header checksum, over unsigned bytes (POSIX) or signed ones (some old Unix tars; GNU
/// tar and Go accept both).
fn verify_checksum(block: &[u8; 512]) -> io::Result<()> {
    let rest = || block[..148].iter().chain(&block[156..]);
    let unsigned: i64 = rest().map(|&b| b as i64).sum::<i64>() + 8 * 32;
    let signed: i64 = rest().map(|&b| b as i8 as i64).sum::<i64>() + 8 * 32;
    let field = std::str::from_utf8(&block[148..156]).unwrap_or("");
    let field = field.trim_matches(|c: char| c == '\0' || c == ' ');
    match i64::from_str_radix(field, 8) {
        Ok(v) if v == unsigned || v == signed => Ok(()),
        _ => Err(bad("tar header checksum mismatch (corrupt layer)")),
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
        // A PAX path is a C string to GNU tar and bsdtar: what follows a NUL is not the name.
        let mut t = Vec::new();
        TarWriter::new(&mut t).write_pax(&[("path".into(), b"etc/shadow\0.txt".to_vec())]).unwrap();
        t.extend_from_slice(&block);
        t.extend_from_slice(&[0; 1024]);
        assert_eq!(TarReader::new(&t[..]).next_entry().unwrap().unwrap().path, "etc/shadow");
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
        assert!(TarReader::new(&t[..]).next_entry().unwrap_err().to_string().contains("base-256"));
        let t = archive([0xff; 12]);
        assert!(TarReader::new(&t[..]).next_entry().is_err());
    }
}
