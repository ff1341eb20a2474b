//! Scan cache: what the scan learns from a layer ([`LayerIndex`]: the headers, the prefixes the
//! plan, guard and audit read, ELF dependencies) is a pure function of the layer's digest and of
//! the scanner, so it is kept on disk (`scans/` in `--cache-dir`, beside the rewrite cache) and a
//! layer whose scan is known is not downloaded to plan. The sha256 of entries read again for the
//! plan's copy check ([`super::ScanShare::hash_locs`]) are kept beside it, for the same reason.
//!
//! An entry is input like any other: its header names the format, the scanner (harden's build:
//! [`crate::cache::build_id`]), the layer digest and the sha256 and length of its body; an entry
//! that fails any of these checks — another build's, a truncated or edited one, one filed under
//! another layer — is ignored with a notice and the layer is scanned again (and the entry
//! rewritten). The directory's permissions are the rewrite cache's ([`crate::cache`]), since
//! whoever can write a consistent entry decides what the plan sees.
//!
//! Owns: the entry format, reading and writing entries. Must not: scan, fetch or decide anything.

use crate::digest::Digest;
use crate::fs::Loc;
use crate::layer::codec::Codec;
use crate::layer::elf::ElfDeps;
use crate::layer::tar::Kind;
use crate::scan::{Entries, Entry, EntryInfo, LayerIndex};
use anyhow::{anyhow, bail, Result};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The entry format; part of every header.
const FORMAT: &str = "harden-scan/1";
/// Largest body read back (decompressed); the scan's own memory bound is 4 GiB of kept bytes.
const MAX_BODY: u64 = 8 << 30;

/// What an entry holds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum What {
    Index,
    Hashes,
}

impl What {
    fn as_str(self) -> &'static str {
        match self {
            What::Index => "index",
            What::Hashes => "hashes",
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    scanner: String,
    layer: String,
    what: String,
    body_sha256: String,
    body_len: u64,
}

#[derive(Serialize, Deserialize)]
struct WireIndex {
    codec: String,
    diff_id: String,
    uncompressed_size: u64,
    entries: Vec<WireEntry>,
}

/// One [`EntryInfo`], short keys, defaults left out.
#[derive(Serialize, Deserialize)]
struct WireEntry {
    p: String,
    k: u8,
    m: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    u: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    g: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    s: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    l: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    caps: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    esc: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    bb: bool,
    /// The prefix, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    x: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    elf: Option<WireElf>,
}

#[derive(Serialize, Deserialize)]
struct WireElf {
    is64: bool,
    machine: u16,
    dynamic: bool,
    needed: Vec<String>,
    runpath: Vec<String>,
    rpath: Vec<String>,
    incomplete: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
fn is_false(b: &bool) -> bool {
    !*b
}

fn kind_byte(k: Kind) -> u8 {
    match k {
        Kind::File => b'0',
        Kind::HardLink => b'1',
        Kind::Symlink => b'2',
        Kind::CharDev => b'3',
        Kind::BlockDev => b'4',
        Kind::Dir => b'5',
        Kind::Fifo => b'6',
        Kind::GlobalPax => b'g',
        Kind::Other(o) => o,
    }
}

fn codec_name(c: Codec) -> &'static str {
    match c {
        Codec::Gzip => "gzip",
        Codec::Zstd => "zstd",
        Codec::None => "none",
    }
}

/// [`WireIndex`] as it serialises, each entry made as it is written: recording the scan of a
/// layer of 500k entries costs its compressed bytes, not a copy of the index and its JSON.
struct WireOf<'a>(&'a LayerIndex);

impl Serialize for WireOf<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        struct Wire<'a>(&'a Entries);
        impl Serialize for Wire<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.collect_seq(self.0.iter().map(wire_entry))
            }
        }
        let index = self.0;
        let mut st = s.serialize_struct("WireIndex", 4)?;
        st.serialize_field("codec", codec_name(index.codec))?;
        st.serialize_field("diff_id", &index.diff_id.to_string())?;
        st.serialize_field("uncompressed_size", &index.uncompressed_size)?;
        st.serialize_field("entries", &Wire(&index.entries))?;
        st.end()
    }
}

fn wire_entry(e: Entry<'_>) -> WireEntry {
    let b64 = base64::engine::general_purpose::STANDARD;
    WireEntry {
        p: e.path.to_string(),
        k: kind_byte(e.kind),
        m: e.mode,
        u: e.uid,
        g: e.gid,
        s: e.size,
        l: e.link().map(str::to_string),
        caps: e.caps,
        esc: e.escapes,
        bb: e.busybox,
        x: e.prefix().map(|p| b64.encode(p)),
        elf: e.elf().map(|d| WireElf {
            is64: d.is64,
            machine: d.machine,
            dynamic: d.dynamic,
            needed: d.needed.clone(),
            runpath: d.runpath.clone(),
            rpath: d.rpath.clone(),
            incomplete: d.incomplete,
        }),
    }
}

fn index_of(w: WireIndex) -> Result<LayerIndex> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let codec = match w.codec.as_str() {
        "gzip" => Codec::Gzip,
        "zstd" => Codec::Zstd,
        "none" => Codec::None,
        o => bail!("unknown codec {o}"),
    };
    let diff_id = Digest::parse(&w.diff_id).map_err(|e| anyhow!(e))?;
    let mut entries = Entries::default();
    for e in w.entries {
        let prefix = match e.x {
            Some(x) => Some(b64.decode(x)?.into_boxed_slice()),
            None => None,
        };
        let mut entry = EntryInfo {
            path: e.p.into(),
            kind: Kind::from_byte(e.k),
            mode: e.m,
            uid: e.u,
            gid: e.g,
            size: e.s,
            caps: e.caps,
            escapes: e.esc,
            busybox: e.bb,
            prefix,
            rare: None,
        };
        entry.set_link(e.l);
        entry.set_elf(e.elf.map(|d| ElfDeps {
            is64: d.is64,
            machine: d.machine,
            dynamic: d.dynamic,
            needed: d.needed,
            runpath: d.runpath,
            rpath: d.rpath,
            incomplete: d.incomplete,
        }));
        entries.push(entry)?;
    }
    entries.shrink_to_fit();
    Ok(LayerIndex { entries, codec, diff_id, uncompressed_size: w.uncompressed_size })
}

/// The scan cache in one directory (`--cache-dir`/scans); notices go to `progress`.
pub struct ScanCache {
    dir: PathBuf,
    scanner: String,
    progress: crate::progress::Progress,
}

impl ScanCache {
    /// Entries under `dir` (created and checked private by [`crate::cache::RewriteCache::new`]),
    /// for this build of harden.
    pub fn new(dir: PathBuf, progress: crate::progress::Progress) -> ScanCache {
        ScanCache { dir, scanner: crate::cache::build_id().to_string(), progress }
    }

    /// As [`ScanCache::new`], for another scanner version (tests).
    #[cfg(test)]
    fn with_scanner(dir: PathBuf, scanner: &str) -> ScanCache {
        ScanCache { dir, scanner: scanner.into(), progress: crate::progress::Progress::Quiet }
    }

    fn path(&self, layer: &Digest, what: What) -> PathBuf {
        match what {
            What::Index => self.dir.join(layer.hex()),
            What::Hashes => self.dir.join(format!("{}.hashes", layer.hex())),
        }
    }

    /// The scan of `layer`, when a sound entry of this scanner holds it. Blocking.
    pub fn index(&self, layer: &Digest) -> Option<LayerIndex> {
        let body = self.read(layer, What::Index)?;
        match serde_json::from_slice::<WireIndex>(&body).map_err(anyhow::Error::from).and_then(index_of) {
            Ok(i) => Some(i),
            Err(e) => {
                self.ignore(&self.path(layer, What::Index), &format!("cannot be read ({e})"));
                None
            }
        }
    }

    /// Record the scan of `layer`. Blocking.
    pub fn put_index(&self, layer: &Digest, index: &LayerIndex) -> Result<()> {
        self.write(layer, What::Index, |w| Ok(serde_json::to_writer(w, &WireOf(index))?))
    }

    /// The entry hashes known for `layer` (by entry number), empty when none. Blocking.
    pub fn hashes(&self, layer: &Digest) -> BTreeMap<usize, Digest> {
        let Some(body) = self.read(layer, What::Hashes) else { return BTreeMap::new() };
        let parsed: Result<BTreeMap<usize, String>, _> = serde_json::from_slice(&body);
        let out: Option<BTreeMap<usize, Digest>> =
            parsed.ok().and_then(|m| m.into_iter().map(|(k, v)| Digest::parse(&v).ok().map(|d| (k, d))).collect());
        out.unwrap_or_else(|| {
            self.ignore(&self.path(layer, What::Hashes), "cannot be read");
            BTreeMap::new()
        })
    }

    /// Add entry hashes of `layer` to what is recorded. Blocking.
    pub fn put_hashes(&self, layer: &Digest, fresh: &[(Loc, Digest)]) -> Result<()> {
        let mut all = self.hashes(layer);
        all.extend(fresh.iter().map(|(l, d)| (l.entry, d.clone())));
        let m: BTreeMap<usize, &str> = all.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.write(layer, What::Hashes, |w| Ok(serde_json::to_writer(w, &m)?))
    }

    /// A notice on this cache's progress (a failure to record an entry is not the run's).
    pub fn note(&self, msg: &str) {
        self.progress.line(msg);
    }

    fn ignore(&self, path: &Path, why: &str) {
        self.progress.line(&format!("scan cache entry {}: {why}; ignoring it", path.display()));
    }

    /// The body of an entry, checked; None (with a notice, unless simply absent) otherwise.
    fn read(&self, layer: &Digest, what: What) -> Option<Vec<u8>> {
        let path = self.path(layer, what);
        let f = std::fs::File::open(&path).ok()?;
        match self.read_checked(f, layer, what) {
            Ok(body) => Some(body),
            Err(e) => {
                self.ignore(&path, &e.to_string());
                None
            }
        }
    }

    fn read_checked(&self, f: std::fs::File, layer: &Digest, what: What) -> Result<Vec<u8>> {
        let mut r = std::io::BufReader::new(f);
        let mut line = Vec::new();
        std::io::BufRead::read_until(&mut (&mut r).take(64 << 10), b'\n', &mut line)?;
        let h: Header = serde_json::from_slice(&line).map_err(|_| anyhow!("no valid header"))?;
        if h.format != FORMAT {
            bail!("format {}, not {FORMAT}", h.format);
        }
        if h.scanner != self.scanner {
            bail!("written by another harden build ({}, this is {})", h.scanner, self.scanner);
        }
        if h.layer != layer.as_str() || h.what != what.as_str() {
            bail!("holds the {} of {}, not the {} of {layer}", h.what, h.layer, what.as_str());
        }
        let mut packed = Vec::new();
        (&mut r).take(MAX_BODY).read_to_end(&mut packed)?;
        let got = Digest::of(&packed);
        if packed.len() as u64 != h.body_len || got.hex() != h.body_sha256 {
            bail!("its body does not match its checksum (truncated or changed)");
        }
        let mut body = Vec::new();
        zstd::stream::read::Decoder::new(&packed[..])?.take(MAX_BODY).read_to_end(&mut body)?;
        Ok(body)
    }

    /// Write an entry whose body `body` writes (through zstd, so only the compressed bytes are
    /// held: the header states their digest and length).
    fn write(
        &self,
        layer: &Digest,
        what: What,
        body: impl FnOnce(&mut dyn std::io::Write) -> Result<()>,
    ) -> Result<()> {
        let mut zstd = zstd::stream::write::Encoder::new(Vec::new(), 3)?;
        body(&mut zstd)?;
        let packed = zstd.finish()?;
        let h = Header {
            format: FORMAT.into(),
            scanner: self.scanner.clone(),
            layer: layer.to_string(),
            what: what.as_str().into(),
            body_sha256: Digest::of(&packed).hex().into(),
            body_len: packed.len() as u64,
        };
        let mut out = serde_json::to_vec(&h)?;
        out.push(b'\n');
        out.extend_from_slice(&packed);
        crate::files::write_atomic(&self.path(layer, what), &out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> LayerIndex {
        let e = |path: &str, kind: Kind| EntryInfo {
            path: path.into(),
            kind,
            mode: 0o755,
            uid: 0,
            gid: 7,
            size: 3,
            caps: false,
            escapes: false,
            prefix: None,
            busybox: false,
            rare: None,
        };
        let mut bin = e("usr/bin/x", Kind::File);
        bin.prefix = Some(b"\x7fELF\0\x01".to_vec().into_boxed_slice());
        bin.set_elf(Some(ElfDeps {
            is64: true,
            machine: 62,
            dynamic: true,
            needed: vec!["libc.so.6".into()],
            runpath: vec!["$ORIGIN".into()],
            rpath: vec![],
            incomplete: false,
        }));
        bin.busybox = true;
        bin.caps = true;
        let mut link = e("bin", Kind::Symlink);
        link.set_link(Some("usr/bin"));
        link.escapes = true;
        LayerIndex {
            entries: Entries::from_owned([e("usr", Kind::Dir), bin, link, e("dev/x", Kind::Other(b'Z'))]).unwrap(),
            codec: Codec::Zstd,
            diff_id: Digest::of(b"tar"),
            uncompressed_size: 10240,
        }
    }

    /// Recording the scan of a layer of many entries holds its compressed bytes, not a copy of
    /// the index and its JSON (measured with the unit tests' counting allocator, which sees
    /// Rust's allocations, not zstd's own): 100,000 entries, several MiB of JSON, written
    /// within 2 MiB at the peak.
    #[test]
    fn recording_a_big_index_streams_it() {
        let n = 100_000;
        let entries = (0..n)
            .map(|i| crate::fs::tests::entry(&format!("opt/many/d{:05}/file-{i:07}.txt", i / 500), Kind::File, None))
            .collect();
        let idx = crate::fs::tests::layer(entries);
        let dir = tempfile::tempdir().unwrap();
        let c = ScanCache::with_scanner(dir.path().into(), "1+a");
        let layer = Digest::of(b"layer");
        let start = crate::memory::counting::start();
        c.put_index(&layer, &idx).unwrap();
        let (_, peak) = crate::memory::counting::since(start);
        eprintln!("recording {n} entries: peak {peak} bytes");
        assert!(peak < 2 << 20, "peak {peak} bytes");
        assert_eq!(c.index(&layer).expect("read back").entries.len(), n);
    }

    #[test]
    fn an_entry_round_trips_and_a_foreign_or_damaged_one_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let c = ScanCache::with_scanner(dir.path().into(), "1+a");
        let layer = Digest::of(b"layer");
        assert!(c.index(&layer).is_none());
        let idx = sample();
        c.put_index(&layer, &idx).unwrap();
        let back = c.index(&layer).expect("a sound entry is served");
        assert_eq!(format!("{:?}", back), format!("{idx:?}"), "every field survives");

        // Another scanner version: ignored (and the path is not mistaken for another layer's).
        assert!(ScanCache::with_scanner(dir.path().into(), "1+b").index(&layer).is_none());
        let other = Digest::of(b"other");
        std::fs::copy(c.path(&layer, What::Index), c.path(&other, What::Index)).unwrap();
        assert!(c.index(&other).is_none(), "an entry filed under another layer's name");
        // A body changed in place fails its checksum.
        let p = c.path(&layer, What::Index);
        let mut bytes = std::fs::read(&p).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&p, &bytes).unwrap();
        assert!(c.index(&layer).is_none(), "a changed body");
        std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        assert!(c.index(&layer).is_none(), "a truncated entry");

        // Hashes accumulate.
        let h = |n: usize| (Loc { layer: 0, entry: n }, Digest::of(&[n as u8]));
        c.put_hashes(&layer, &[h(1), h(5)]).unwrap();
        c.put_hashes(&layer, &[h(9)]).unwrap();
        let got = c.hashes(&layer);
        assert_eq!(got.keys().copied().collect::<Vec<_>>(), [1, 5, 9]);
        assert_eq!(got[&5], Digest::of(&[5]));
        assert!(ScanCache::with_scanner(dir.path().into(), "2").hashes(&layer).is_empty());
    }
}
