//! Rewrite: execute a [`LayerPlan`] on one layer as a stream — decompress, filter entry by
//! entry, re-tar, recompress — hashing the tar (diff_id) and the blob (digest) on the way.
//! Untouched entries are copied byte for byte, PAX records and long names included.
//!
//! A gzip layer rewritten to gzip is spliced ([`crate::layer::splice`]): the deflate blocks the
//! changes do not reach are copied from the source instead of compressed again, so the cost is
//! about one decompression. Every spliced blob is decoded again on a second thread and must give
//! the diff_id computed on the way; if it ever does not (or the splicer cannot read the source),
//! the layer is recompressed in full.
//!
//! The thread that decodes and filters the source is the stage's slowest, so the spliced blob's
//! SHA-256 is taken on the check's thread, which reads every byte of it anyway. (Hashing the tar
//! stream on a thread of its own as well was tried: on two cores, busy with the check and the
//! compressor, the copy it needs cost more than it saved.)
//!
//! Owns: turning plan decisions into bytes. Must not: decide what to drop.

use crate::digest::{Digest, HashingReader, HashingWriter};
use crate::layer::codec::{self, Codec, Encoder, OutputCodec};
use crate::layer::splice::{self, Cursor, ReadAt, Splicer};
use crate::layer::tar::{bad, Kind, RawEntry, TarReader, TarWriter, MAX_USTAR_SIZE};
use crate::layer::Limits;
use crate::plan::{EntryChange, LayerPlan};
use std::io::{self, Read, Write};
use std::sync::Arc;

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RewriteStats {
    pub removed: u64,
    pub changed: u64,
    /// Uncompressed bytes whose deflate blocks were copied from the source (splicing).
    pub copied: u64,
}

/// The result of rewriting one layer.
#[derive(Clone, Debug)]
pub struct LayerRewrite {
    pub digest: Digest,
    pub size: u64,
    pub diff_id: Digest,
    pub stats: RewriteStats,
}

/// How a changed layer is written.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub codec: OutputCodec,
    /// Splice gzip into gzip (copy the source's deflate blocks the plan does not reach).
    pub splice: bool,
    /// Compression threads (from the run's [`crate::cpu::Budget`]; never changes the bytes).
    pub workers: usize,
}

impl Settings {
    /// `codec`, spliced, with this machine's workers.
    pub fn new(codec: OutputCodec) -> Settings {
        Settings { codec, splice: true, workers: crate::cpu::Budget::machine().layer_workers(1) }
    }
}

/// Rewrite the layer blob `input` (any supported codec) per `plan` — spliced when
/// `settings.splice` and both it and the codec are gzip, else recompressed in full — into a writer from
/// `open_out` (called again, to start over, if a splice has to be redone as a recompression),
/// reading within `limits` (size and ratio; the input was scanned under the same ones).
pub fn rewrite_layer<W: Write>(
    input: Arc<dyn ReadAt>,
    mut open_out: impl FnMut() -> io::Result<W>,
    plan: &LayerPlan,
    settings: Settings,
    limits: &Limits,
) -> io::Result<(W, LayerRewrite)> {
    let Settings { codec, splice, workers } = settings;
    if let (OutputCodec::Gzip(level), true) = (codec, splice) {
        let mut magic = [0u8; 4];
        let n = input.read_at(&mut magic, 0)?;
        if Codec::sniff(&magic[..n]) == Codec::Gzip {
            match spliced(Arc::clone(&input), open_out()?, plan, GzipOut { level, workers }, limits) {
                Ok(r) => return Ok(r),
                Err(e) if limits.cancelled() => return Err(e),
                // Recompressing fails with the input's own error, if it has one.
                Err(_) => {}
            }
        }
    }
    let (_, plain) = codec::limited_decoder(Cursor::new(input), limits)?;
    let blob = HashingWriter::new(open_out()?);
    let mut tw = TarWriter::new(HashingWriter::new(Encoder::with_workers(codec, blob, workers)?));
    let stats = filter(TarReader::new(plain), &mut tw, plan)?;
    let (enc, diff_id, _) = tw.finish()?.finish();
    let (out, digest, size) = enc.finish()?.finish();
    Ok((out, LayerRewrite { digest, size, diff_id, stats }))
}

/// What a splice writes: gzip at `level`, compressed by `workers` threads.
struct GzipOut {
    level: u32,
    workers: usize,
}

/// The splice: decode the source block by block, filter, copy what survives, and check the
/// result by decoding it again.
fn spliced<W: Write>(
    input: Arc<dyn ReadAt>,
    out: W,
    plan: &LayerPlan,
    GzipOut { level, workers }: GzipOut,
    limits: &Limits,
) -> io::Result<(W, LayerRewrite)> {
    let (dec, splicer) = splice::open(input, Verified::new(out)?, level, workers)?;
    let consumed = dec.consumed();
    let plain = io::BufReader::with_capacity(256 << 10, codec::bounded(dec, consumed, limits));
    let mut tw = TarWriter::new(HashingWriter::new(splicer));
    let mut stats = filter(TarReader::new(plain), &mut tw, plan)?;
    let (splicer, diff_id, plain_len) = tw.finish()?.finish();
    let (verified, spliced) = splicer.finish()?;
    let Checked { out, blob: (digest, size), decoded: (decoded, decoded_len) } = verified.finish()?;
    if decoded != diff_id || decoded_len != plain_len {
        return Err(io::Error::other(format!(
            "spliced layer decodes to {decoded}, not the {diff_id} written (recompressing instead)"
        )));
    }
    stats.copied = spliced.copied;
    Ok((out, LayerRewrite { digest, size, diff_id, stats }))
}

/// Where the rewritten tar goes: told which output bytes are the source tar's own.
trait TarSink: Write {
    /// The next bytes are the source tar's, from `offset` (with `None`: bytes of our own).
    fn claim(&mut self, _offset: Option<u64>) {}
}

impl<W: Write> TarSink for Encoder<W> {}

impl<W: Write> TarSink for Splicer<W> {
    fn claim(&mut self, offset: Option<u64>) {
        Splicer::claim(self, offset);
    }
}

/// Apply `plan` entry by entry, telling the sink which output is the source's own bytes.
fn filter<R: Read, S: TarSink>(
    mut tr: TarReader<R>,
    tw: &mut TarWriter<HashingWriter<S>>,
    plan: &LayerPlan,
) -> io::Result<RewriteStats> {
    let mut stats = RewriteStats::default();
    while let Some(e) = tr.next_entry()? {
        let change = plan.changes.get(&e.path);
        match change {
            // A `g` header describes nothing and is never changed (a file of the same path is).
            _ if e.kind == Kind::GlobalPax => verbatim(tw, &mut tr, &e)?,
            None if header_consistent(&e) => verbatim(tw, &mut tr, &e)?,
            None => {
                write_changed(tw, &mut tr, &e, &EntryChange::default(), None)?;
            }
            Some(c) if c.remove && c.promote_to.is_none() => {
                stats.removed += 1;
            }
            Some(c) => {
                let promoted = c.promote_to.as_ref().map(|p| (p.as_str(), plan.changes.get(p)));
                write_changed(tw, &mut tr, &e, c, promoted)?;
                stats.changed += 1;
            }
        }
    }
    tr.finish()?;
    Ok(stats)
}

/// Copy an entry verbatim, padding included (a source whose padding is not zeros makes a
/// splice fail its check and the layer is recompressed).
fn verbatim<R: Read, S: TarSink>(
    tw: &mut TarWriter<HashingWriter<S>>,
    tr: &mut TarReader<R>,
    e: &RawEntry,
) -> io::Result<()> {
    tw.w.get_mut().claim(Some(e.offset));
    tw.w.write_all(&e.meta)?;
    tw.write_header(&e.header)?;
    tw.w.write_all(&e.ext)?;
    tr.copy_data(&mut tw.w)?;
    tw.pad(e.size)?;
    tw.w.get_mut().claim(None);
    Ok(())
}

/// A blob writer that also hashes and decodes what it writes on another thread, for
/// [`spliced`]'s check.
struct Verified<W> {
    inner: W,
    buf: Vec<u8>,
    tx: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    check: Option<std::thread::JoinHandle<io::Result<Hashed>>>,
}

/// (digest, length) of the blob written, and of what it decodes to.
type Hashed = ((Digest, u64), (Digest, u64));

/// What [`Verified`] wrote and found.
struct Checked<W> {
    out: W,
    /// The blob's digest and size.
    blob: (Digest, u64),
    /// What the blob decodes to: its digest and length.
    decoded: (Digest, u64),
}

impl<W: Write> Verified<W> {
    fn new(inner: W) -> io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(8);
        let check = std::thread::Builder::new()
            .name("harden-check".into())
            .spawn(move || {
                let mut raw = HashingReader::new(ChannelReader { rx, cur: Vec::new(), pos: 0 });
                let mut d = flate2::read::MultiGzDecoder::new(io::BufReader::with_capacity(256 << 10, &mut raw));
                let mut h = HashingWriter::new(io::sink());
                io::copy(&mut d, &mut h)?;
                drop(d);
                let (_, digest, n) = h.finish();
                // Bytes after the last member would be hashed here too: the digest is the blob's.
                Ok((raw.finish()?, (digest, n)))
            })
            .map_err(|e| io::Error::other(format!("cannot start the splice check's thread: {e}")))?;
        Ok(Verified { inner, buf: Vec::with_capacity(256 << 10), tx: Some(tx), check: Some(check) })
    }

    fn send(&mut self) {
        if let Some(tx) = &self.tx {
            // A failed send means the checker stopped on an error, which finish reports.
            if tx.send(std::mem::replace(&mut self.buf, Vec::with_capacity(256 << 10))).is_err() {
                self.tx = None;
            }
        }
    }

    /// The inner writer, the blob written and what it decodes to.
    fn finish(mut self) -> io::Result<Checked<W>> {
        self.send();
        self.tx = None;
        let check = self.check.take().ok_or_else(|| io::Error::other("check already finished"))?;
        let (blob, decoded) = check.join().map_err(|_| io::Error::other("the splice check stopped"))??;
        Ok(Checked { out: self.inner, blob, decoded })
    }
}

impl<W: Write> Write for Verified<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.inner.write_all(data)?;
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 256 << 10 {
            self.send();
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct ChannelReader {
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(next) => {
                    self.cur = next;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Entries without data must say size 0; anything else is rewritten so framing stays sane. The
/// declared size is the PAX `size` when there is one (it frames the entry for every reader).
fn header_consistent(e: &RawEntry) -> bool {
    e.declared == e.size + e.data_ext
}

/// Emit an entry with a changed header: mode, capabilities, a promotion (a removed
/// hardlink target re-emitted as a regular file at its first kept link's path), a relink, or
/// new contents.
fn write_changed<W: Write, R: Read>(
    tw: &mut TarWriter<W>,
    tr: &mut TarReader<R>,
    e: &RawEntry,
    c: &EntryChange,
    promoted: Option<(&str, Option<&EntryChange>)>,
) -> io::Result<()> {
    let mut h = e.header.clone();
    // A PAX 1.0 sparse file keeps its `GNUSparseFile.NNN` header name; its real name is the
    // `GNU.sparse.name` record, renamed below.
    let sparse_name = e.sparse && e.pax.iter().any(|(k, _)| k == "GNU.sparse.name");
    let mut records: Vec<(String, Vec<u8>)> = e
        .pax
        .iter()
        .filter(|(k, _)| k != "path" && k != "linkpath" && k != "size" && k != "GNU.sparse.name")
        .cloned()
        .collect();
    let mut path = e.path.clone();
    let mut link = e.link.clone();
    let mut mode = c.mode;
    let mut strip_caps = c.strip_caps;
    if let Some((to, link_change)) = promoted {
        path = to.to_string();
        if let Some(lc) = link_change {
            mode = lc.mode.or(mode);
            strip_caps |= lc.strip_caps;
        }
    }
    if let Some(to) = &c.relink_to {
        link = Some(to.clone());
    }
    if strip_caps {
        records.retain(|(k, _)| k != "SCHILY.xattr.security.capability");
    }
    if let Some(m) = mode {
        h.set_mode(m);
    }
    if let Some((uid, gid)) = c.owner {
        // Numbers only: a name left in the header or in PAX would win with some extractors.
        records.retain(|(k, _)| !matches!(k.as_str(), "uid" | "gid" | "uname" | "gname"));
        if uid > 0o7777777 || gid > 0o7777777 {
            records.push(("uid".into(), uid.to_string().into_bytes()));
            records.push(("gid".into(), gid.to_string().into_bytes()));
        }
        h.set_uid(uid.min(0o7777777));
        h.set_gid(gid.min(0o7777777));
        if let Some(u) = h.as_ustar_mut() {
            u.uname = [0; 32];
            u.gname = [0; 32];
        } else if let Some(g) = h.as_gnu_mut() {
            g.uname = [0; 32];
            g.gname = [0; 32];
        }
    }
    // The stored data: a PAX 1.0 sparse map (in `ext`) and the segments.
    let stored = e.size + e.data_ext;
    if stored > MAX_USTAR_SIZE {
        // Past 8 GiB the size goes in PAX, the header saying 0, as Go and CPython write it
        // (every reader takes PAX's; a base-256 header field is a GNU-only extension).
        records.push(("size".into(), stored.to_string().into_bytes()));
        h.set_size(0);
    } else {
        h.set_size(stored);
    }
    if e.kind == Kind::Dir && !path.ends_with('/') {
        path.push('/');
    }
    if sparse_name {
        records.push(("GNU.sparse.name".into(), path.clone().into_bytes()));
    } else if h.set_path(&path).is_err() {
        records.push(("path".into(), path.clone().into_bytes()));
        set_truncated(&mut h.as_old_mut().name, &path);
    }
    if let Some(l) = &link {
        if h.set_link_name(l).is_err() {
            records.push(("linkpath".into(), l.clone().into_bytes()));
            set_truncated(&mut h.as_old_mut().linkname, l);
        }
    }
    if let Some(new) = c.content.as_ref().filter(|_| e.kind == Kind::File) {
        // New contents (an edited package database): the source's data is skipped.
        h.set_size(new.data.len() as u64);
        h.set_cksum();
        tw.write_pax(&records)?;
        tw.write_header(&h)?;
        tw.w.write_all(&new.data)?;
        return tw.pad(new.data.len() as u64);
    }
    h.set_cksum();
    tw.write_pax(&records)?;
    tw.write_header(&h)?;
    tw.w.write_all(&e.ext)?;
    let n = tr.copy_data(&mut tw.w)?;
    if n != e.size {
        return Err(bad("entry data shorter than its header says"));
    }
    tw.pad(e.size)
}

fn set_truncated(field: &mut [u8; 100], s: &str) {
    field.fill(0);
    let b = s.as_bytes();
    let n = b.len().min(100);
    field[..n].copy_from_slice(&b[..n]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::codec::decoder;

    fn blob(b: &[u8]) -> Arc<dyn ReadAt> {
        Arc::new(b.to_vec())
    }

    fn vec_out() -> io::Result<Vec<u8>> {
        Ok(Vec::new())
    }

    /// Build a tar with GNU tar-like edge cases using the tar crate's builder.
    fn sample() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut add =
            |path: &str, kind: tar::EntryType, mode: u32, data: &[u8], link: Option<&str>, pax: &[(&str, &[u8])]| {
                if !pax.is_empty() {
                    b.append_pax_extensions(pax.iter().copied()).unwrap();
                }
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(kind);
                h.set_mode(mode);
                h.set_uid(1000);
                h.set_gid(1000);
                h.set_mtime(1_700_000_000);
                h.set_size(data.len() as u64);
                match link {
                    Some(l) => b.append_link(&mut h, path, l).unwrap(),
                    None => b.append_data(&mut h, path, data).unwrap(),
                }
            };
        add("usr/", tar::EntryType::Directory, 0o755, b"", None, &[]);
        add(
            "usr/bin/ping",
            tar::EntryType::Regular,
            0o755,
            b"\x7fELFping",
            None,
            &[("SCHILY.xattr.security.capability", b"\x01\x00\x00\x02\x00\x20\x00\x00")],
        );
        add("usr/bin/su", tar::EntryType::Regular, 0o4755, b"su-binary", None, &[]);
        add("usr/bin/perl5.36.0", tar::EntryType::Regular, 0o755, b"perl", None, &[]);
        add("usr/bin/perl", tar::EntryType::Link, 0o755, b"", Some("usr/bin/perl5.36.0"), &[]);
        let long = format!("opt/{}/file", "d".repeat(150));
        add(&long, tar::EntryType::Regular, 0o644, b"long", None, &[]);
        add("opt/longlink", tar::EntryType::Symlink, 0o777, b"", Some(&format!("/{}", "t".repeat(120))), &[]);
        add("root/.env", tar::EntryType::Regular, 0o600, b"SECRET=1", None, &[]);
        add("app/a", tar::EntryType::Link, 0o600, b"", Some("root/.env"), &[]);
        add("app/b", tar::EntryType::Link, 0o600, b"", Some("root/.env"), &[]);
        add("dev/null", tar::EntryType::Char, 0o666, b"", None, &[]);
        add("run/fifo", tar::EntryType::Fifo, 0o644, b"", None, &[]);
        add("etc/.wh.gone", tar::EntryType::Regular, 0o644, b"", None, &[]);
        add("var/.wh..wh..opq", tar::EntryType::Regular, 0o644, b"", None, &[]);
        b.into_inner().unwrap()
    }

    /// (path, kind, mode, link, data, has security.capability)
    type Seen = (String, Kind, u32, Option<String>, Vec<u8>, bool);

    fn entries(blob: &[u8]) -> Vec<Seen> {
        crate::layer::testdata::entries(blob)
            .into_iter()
            .map(|(e, data)| {
                let (caps, mode) = (e.has_xattr("security.capability"), e.mode());
                (e.path, e.kind, mode, e.link, data, caps)
            })
            .collect()
    }

    #[test]
    fn unchanged_plan_copies_every_entry_verbatim() {
        let input = sample();
        let (out, rw) = rewrite_layer(
            blob(&input),
            vec_out,
            &LayerPlan::default(),
            Settings::new(OutputCodec::Gzip(6)),
            &Limits::default(),
        )
        .unwrap();
        let (_, mut d) = decoder(&out[..]).unwrap();
        let mut plain = Vec::new();
        d.read_to_end(&mut plain).unwrap();
        // Same entries byte for byte; only the end-of-archive padding may differ.
        assert_eq!(&plain[..plain.len() - 1024], &input[..plain.len() - 1024]);
        assert_eq!(rw.diff_id, Digest::of(&plain));
        assert_eq!(rw.digest, Digest::of(&out));
    }

    #[test]
    fn a_new_owner_is_set_by_number_with_the_names_cleared() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_username("root").unwrap();
        h.set_groupname("root").unwrap();
        b.append_data(&mut h, "var/lib/nginx/", &b""[..]).unwrap();
        let input = b.into_inner().unwrap();
        let mut plan = LayerPlan::default();
        plan.changes.insert("var/lib/nginx".into(), EntryChange { owner: Some((65532, 65532)), ..Default::default() });
        let (out, rw) =
            rewrite_layer(blob(&input), vec_out, &plan, Settings::new(OutputCodec::Gzip(6)), &Limits::default())
                .unwrap();
        assert_eq!(rw.stats.changed, 1);
        let got = crate::layer::testdata::entries(&out);
        let (e, _) = &got[0];
        assert_eq!((&*e.path, e.uid(), e.gid(), e.mode()), ("var/lib/nginx", 65532, 65532, 0o755));
        assert_eq!(&e.header.as_gnu().unwrap().uname[..4], b"\0\0\0\0", "no name left to win over the number");
    }

    #[test]
    fn applies_removals_modes_caps_and_promotes_hardlinks() {
        let input = sample();
        let mut plan = LayerPlan::default();
        let ch = |f: fn(&mut EntryChange)| {
            let mut c = EntryChange::default();
            f(&mut c);
            c
        };
        plan.changes.insert("usr/bin/su".into(), ch(|c| c.mode = Some(0o755)));
        plan.changes.insert("usr/bin/ping".into(), ch(|c| c.strip_caps = true));
        plan.changes.insert(
            "root/.env".into(),
            ch(|c| {
                c.remove = true;
                c.promote_to = Some("app/a".into())
            }),
        );
        plan.changes.insert("app/a".into(), ch(|c| c.remove = true));
        plan.changes.insert("app/b".into(), ch(|c| c.relink_to = Some("app/a".into())));
        let long = format!("opt/{}/file", "d".repeat(150));
        plan.changes.insert(long.clone(), ch(|c| c.mode = Some(0o600)));
        let (out, rw) =
            rewrite_layer(blob(&input), vec_out, &plan, Settings::new(OutputCodec::Gzip(6)), &Limits::default())
                .unwrap();
        let got = entries(&out);
        let find = |p: &str| got.iter().find(|e| e.0 == p).unwrap_or_else(|| panic!("{p} missing from {got:?}"));
        assert_eq!(find("usr/bin/su").2, 0o755);
        assert!(!find("usr/bin/ping").5);
        assert_eq!(find("usr/bin/ping").4, b"\x7fELFping");
        assert!(got.iter().all(|e| e.0 != "root/.env"));
        assert_eq!(find("app/a").1, Kind::File);
        assert_eq!(find("app/a").4, b"SECRET=1");
        assert_eq!(find("app/b").3.as_deref(), Some("app/a"));
        assert_eq!(find(&long).2, 0o600);
        assert_eq!(find("opt/longlink").3.as_deref(), Some(format!("/{}", "t".repeat(120)).as_str()));
        assert_eq!(find("usr/bin/perl").3.as_deref(), Some("usr/bin/perl5.36.0"));
        assert_eq!(find("dev/null").1, Kind::CharDev);
        assert_eq!(find("run/fifo").1, Kind::Fifo);
        assert!(got.iter().any(|e| e.0 == "etc/.wh.gone"));
        assert!(got.iter().any(|e| e.0 == "var/.wh..wh..opq"));
        assert_eq!((rw.stats.changed, rw.stats.removed), (5, 1));
        // Deterministic: the same input and plan give the same digest.
        let (_, again) =
            rewrite_layer(blob(&input), vec_out, &plan, Settings::new(OutputCodec::Gzip(6)), &Limits::default())
                .unwrap();
        assert_eq!(again.digest, rw.digest);
    }

    #[test]
    fn gzip_layers_are_spliced_to_the_same_tar() {
        // 60 files of ~64 KiB text: many deflate blocks, most far from any change.
        let mut b = tar::Builder::new(Vec::new());
        for i in 0..60u32 {
            let text = crate::layer::testdata::sample(65_000, i + 1);
            let mut h = tar::Header::new_gnu();
            h.set_mode(if i == 30 { 0o4755 } else { 0o644 });
            h.set_size(text.len() as u64);
            h.set_mtime(1_700_000_000);
            b.append_data(&mut h, format!("data/f{i}"), &text[..]).unwrap();
        }
        let tar = b.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        let mut plan = LayerPlan::default();
        plan.changes.insert("data/f10".into(), EntryChange { remove: true, ..Default::default() });
        plan.changes.insert("data/f30".into(), EntryChange { mode: Some(0o755), ..Default::default() });
        let codec = OutputCodec::Gzip(6);
        let (spliced, s) = rewrite_layer(blob(&gz), vec_out, &plan, Settings::new(codec), &Limits::default()).unwrap();
        let (full, f) = rewrite_layer(blob(&tar), vec_out, &plan, Settings::new(codec), &Limits::default()).unwrap();
        assert_eq!(s.diff_id, f.diff_id, "splicing and recompressing must give the same tar");
        assert!(s.stats.copied > tar.len() as u64 / 2, "{:?}", s.stats);
        assert_eq!(f.stats.copied, 0);
        let (recompressed, r) = rewrite_layer(
            blob(&gz),
            vec_out,
            &plan,
            Settings { splice: false, ..Settings::new(codec) },
            &Limits::default(),
        )
        .unwrap();
        assert_eq!((r.diff_id, r.stats.copied), (f.diff_id.clone(), 0), "--recompress does not splice");
        assert_eq!(recompressed, full, "recompressing from gzip or from the plain tar: the same blob");
        assert_eq!((s.stats.removed, s.stats.changed), (1, 1));
        let (_, mut d) = decoder(&spliced[..]).unwrap();
        let mut plain = Vec::new();
        d.read_to_end(&mut plain).unwrap();
        assert_eq!(Digest::of(&plain), s.diff_id);
        assert_eq!(
            (Digest::of(&spliced), spliced.len() as u64),
            (s.digest.clone(), s.size),
            "hashed on the check's thread"
        );
        assert!(spliced.len() < full.len() * 11 / 10);
        let again = rewrite_layer(blob(&gz), vec_out, &plan, Settings::new(codec), &Limits::default()).unwrap().0;
        assert_eq!(again, spliced);
    }

    #[test]
    fn truncated_and_corrupt_input_are_errors() {
        let input = sample();
        let mut gz = Encoder::new(OutputCodec::Gzip(6), Vec::new()).unwrap();
        gz.write_all(&input).unwrap();
        let gz = gz.finish().unwrap();
        let cut = &gz[..gz.len() / 2];
        let mut corrupt = input.clone();
        corrupt[600] ^= 0xff; // inside the second header
        for bad_input in [cut, &corrupt[..]] {
            let r = rewrite_layer(
                blob(bad_input),
                vec_out,
                &LayerPlan::default(),
                Settings::new(OutputCodec::Gzip(6)),
                &Limits::default(),
            );
            assert!(r.is_err());
        }
    }

    /// A header block of type `t` declaring `size`; `f` edits its raw bytes before the checksum.
    fn header(name: &str, t: u8, size: u64, f: impl FnOnce(&mut [u8; 512])) -> [u8; 512] {
        let mut h = tar::Header::new_gnu();
        h.set_path(name).unwrap();
        h.set_entry_type(tar::EntryType::new(t));
        h.set_mode(0o644);
        h.set_size(size);
        h.set_mtime(1_700_000_000);
        let mut b = *h.as_bytes();
        f(&mut b);
        let mut h = tar::Header::from_byte_slice(&b).clone();
        h.set_cksum();
        *h.as_bytes()
    }

    fn octal(field: &mut [u8], v: u64) {
        let s = format!("{v:0w$o}\0", w = field.len() - 1);
        field.copy_from_slice(s.as_bytes());
    }

    fn padded(t: &mut Vec<u8>, data: &[u8]) {
        t.extend_from_slice(data);
        t.resize(t.len().div_ceil(512) * 512, 0);
    }

    /// GNU sparse files as `tar --sparse` writes them (old-GNU `S` with an extension block) and
    /// as `--sparse-version=1.0` does (PAX, map in the data, real name in GNU.sparse.name).
    fn sparse_sample() -> Vec<u8> {
        let mut t = Vec::new();
        t.extend_from_slice(&header("sparse", b'S', 1024, |b| {
            octal(&mut b[386..398], 0);
            octal(&mut b[398..410], 512);
            b[482] = 1; // isextended
            octal(&mut b[483..495], 1 << 20); // realsize
        }));
        let mut ext = [0u8; 512];
        octal(&mut ext[0..12], (1 << 20) - 512);
        octal(&mut ext[12..24], 512);
        t.extend_from_slice(&ext);
        t.extend_from_slice(&[b'z'; 1024]);
        let recs: Vec<(String, Vec<u8>)> = [
            ("GNU.sparse.major", "1"),
            ("GNU.sparse.minor", "0"),
            ("GNU.sparse.name", "opt/real name"),
            ("GNU.sparse.realsize", "1000000"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect();
        TarWriter::new(&mut t).write_pax(&recs).unwrap();
        let mut data = b"1\n999995\n5\n".to_vec();
        data.resize(512, 0);
        data.extend_from_slice(b"hello");
        t.extend_from_slice(&header("./GNUSparseFile.0/real name", b'0', data.len() as u64, |_| {}));
        padded(&mut t, &data);
        t.extend_from_slice(&header("next", b'0', 4, |_| {}));
        padded(&mut t, b"next");
        t.extend_from_slice(&[0; 1024]);
        t
    }

    #[test]
    fn gnu_sparse_files_are_read_and_passed_through_with_their_maps() {
        let t = sparse_sample();
        let idx = crate::scan::scan_layer(&t[..], None, None, &Limits::default()).unwrap();
        let got: Vec<(&str, Kind, u64)> = idx.entries.iter().map(|e| (e.path, e.kind, e.size)).collect();
        assert_eq!(
            got,
            vec![("sparse", Kind::File, 1 << 20), ("opt/real name", Kind::File, 1_000_000), ("next", Kind::File, 4)]
        );
        // Unchanged: the same tar, byte for byte.
        let (out, _) = rewrite_layer(
            blob(&t),
            vec_out,
            &LayerPlan::default(),
            Settings { splice: false, ..Settings::new(OutputCodec::Gzip(6)) },
            &Limits::default(),
        )
        .unwrap();
        let mut plain = Vec::new();
        decoder(&out[..]).unwrap().1.read_to_end(&mut plain).unwrap();
        assert_eq!(plain, t);
        // Changed (headers rebuilt): the map blocks, the data and the 1.0 header name stay.
        let mut plan = LayerPlan::default();
        for p in ["sparse", "opt/real name"] {
            plan.changes.insert(p.into(), EntryChange { mode: Some(0o600), ..Default::default() });
        }
        let (out, _) = rewrite_layer(
            blob(&t),
            vec_out,
            &plan,
            Settings { splice: false, ..Settings::new(OutputCodec::Gzip(6)) },
            &Limits::default(),
        )
        .unwrap();
        let back = crate::layer::testdata::entries(&out);
        assert_eq!(back.len(), 3);
        let (e, d) = &back[0];
        assert_eq!(
            (&*e.path, e.mode(), e.real_size, &e.ext[..], &d[..]),
            ("sparse", 0o600, 1 << 20, &ext_of(&t)[..], &[b'z'; 1024][..])
        );
        let (e, d) = &back[1];
        assert_eq!((&*e.path, e.mode(), e.real_size, d.len()), ("opt/real name", 0o600, 1_000_000, 5));
        assert!(e.ext.starts_with(b"1\n999995\n5\n") && e.data_ext == 512, "the 1.0 map is kept in ext");
        assert!(e.header.path_bytes().starts_with(b"GNUSparseFile.0/"), "{:?}", e.header.path_bytes());
        assert_eq!((back[2].0.path.as_str(), &back[2].1[..]), ("next", &b"next"[..]));
    }

    fn ext_of(t: &[u8]) -> Vec<u8> {
        t[512..1024].to_vec()
    }

    /// The rewritten tar, handed to a reader on another thread in chunks: nothing is kept whole.
    struct Pipe {
        tx: std::sync::mpsc::SyncSender<Vec<u8>>,
        buf: Vec<u8>,
    }

    impl Write for Pipe {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            self.buf.extend_from_slice(data);
            if self.buf.len() >= 4 << 20 {
                let full = std::mem::replace(&mut self.buf, Vec::with_capacity(4 << 20));
                self.tx.send(full).map_err(|_| io::Error::other("reader stopped"))?;
            }
            Ok(data.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl TarSink for Pipe {}

    #[test]
    fn a_file_over_8_gib_with_a_pax_size_is_read_and_rewritten_without_the_disk() {
        // As Go and CPython write it: the size in PAX, 0 in the header. The data is generated.
        const BIG: u64 = (8 << 30) + 3;
        let mut head = Vec::new();
        TarWriter::new(&mut head).write_pax(&[("size".into(), BIG.to_string().into_bytes())]).unwrap();
        head.extend_from_slice(&header("big", b'0', 0, |_| {}));
        let mut tail = vec![0u8; crate::layer::tar::padding(BIG) as usize];
        tail.extend_from_slice(&header("after", b'0', 5, |_| {}));
        padded(&mut tail, b"after");
        tail.extend_from_slice(&[0; 1024]);
        let input = io::Cursor::new(head).chain(io::repeat(0).take(BIG)).chain(io::Cursor::new(tail));

        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        let reader = std::thread::spawn(move || {
            let mut tr = TarReader::new(ChannelReader { rx, cur: Vec::new(), pos: 0 });
            let mut seen = Vec::new();
            while let Some(e) = tr.next_entry().unwrap() {
                // Small data is kept to compare, the big one only counted.
                let mut small = Vec::new();
                let n = if e.size < 1024 { tr.copy_data(&mut small) } else { tr.copy_data(&mut io::sink()) }.unwrap();
                let pax_size = e.pax.iter().find(|(k, _)| k == "size").map(|(_, v)| v.clone());
                seen.push((e.path, n, e.header.entry_size().unwrap(), pax_size, small));
            }
            seen
        });
        // The big file's header is rebuilt (a mode change), the small one is copied.
        let mut plan = LayerPlan::default();
        plan.changes.insert("big".into(), EntryChange { mode: Some(0o600), ..Default::default() });
        let mut tw = TarWriter::new(HashingWriter::new(Pipe { tx, buf: Vec::new() }));
        let stats = filter(TarReader::new(input), &mut tw, &plan).unwrap();
        assert_eq!(stats.changed, 1);
        let (mut pipe, _, len) = tw.finish().unwrap().finish();
        let rest = std::mem::take(&mut pipe.buf);
        pipe.tx.send(rest).unwrap();
        drop(pipe);
        let seen = reader.join().unwrap();
        assert_eq!(len, 1536 + BIG + 512 - 3 + 1024 + 1024, "PAX block, header, data, the small file, the end");
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0], ("big".into(), BIG, 0, Some(BIG.to_string().into_bytes()), Vec::new()));
        assert_eq!(seen[1], ("after".into(), 5, 5, None, b"after".to_vec()));
    }

    #[test]
    fn new_contents_replace_a_file_spliced_or_recompressed_the_same() {
        let input = sample();
        let gz = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
            e.write_all(&input).unwrap();
            e.finish().unwrap()
        };
        let mut plan = LayerPlan::default();
        let new = crate::plan::NewContent::new(b"edited database, longer than the original\n".to_vec());
        plan.changes.insert("usr/bin/su".into(), EntryChange { content: Some(new), ..Default::default() });
        let mut digests = Vec::new();
        for splice in [true, false] {
            let settings = Settings { codec: OutputCodec::Gzip(6), splice, workers: 1 };
            let (out, rw) = rewrite_layer(blob(&gz), vec_out, &plan, settings, &Limits::default()).unwrap();
            let (_, d) = decoder(&out[..]).unwrap();
            let mut ar = tar::Archive::new(d);
            let mut found = None;
            for e in ar.entries().unwrap() {
                let mut e = e.unwrap();
                if e.path().unwrap().to_str() == Some("usr/bin/su") {
                    let mut data = String::new();
                    e.read_to_string(&mut data).unwrap();
                    found = Some((data, e.header().mode().unwrap()));
                }
            }
            assert_eq!(found, Some(("edited database, longer than the original\n".to_string(), 0o4755)));
            assert_eq!(rw.stats.changed, 1);
            digests.push(rw.diff_id);
        }
        assert_eq!(digests[0], digests[1], "spliced or not, the same tar");
    }
}
