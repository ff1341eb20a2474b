//! Scan: read every layer once, headers only (plus small prefixes of the few files later stages
//! look inside, and when asked the sha256 of every executable's data, which streams past for
//! busybox's banner anyway), and check each layer's uncompressed digest against the config's
//! diff_id.
//!
//! Owns: turning a layer blob into a [`LayerIndex`], and how an index keeps its entries (packed,
//! [`Entries`]; read as [`Entry`] views). Must not: decide what to change, write blobs.

use crate::digest::{Digest, HashingReader};
use crate::layer::codec::Codec;
use crate::layer::elf::{self, ElfDeps};
use crate::layer::inflate;
use crate::layer::tar::{Kind, TarReader};
use crate::layer::Limits;
use std::io::{self, Read};

/// One entry's fields, as an owned [`EntryInfo`] holds them or an [`Entry`] view lends them.
#[derive(Clone, Copy)]
pub struct Fields<Name, Prefix, R> {
    pub path: Name,
    /// The size once extracted (a sparse file's real size).
    pub size: u64,
    pub uid: u64,
    pub gid: u64,
    pub mode: u32,
    pub kind: Kind,
    /// Carries a `security.capability` xattr.
    pub caps: bool,
    pub escapes: bool,
    /// An executable whose data holds busybox's banner (`BusyBox v`): busybox under any name.
    pub busybox: bool,
    /// The first bytes of the file, for the few files later stages look inside (see
    /// [`prefix_len`]; many files of a vendor tree are such: not rare). Read it with
    /// [`Entry::prefix`].
    pub prefix: Prefix,
    /// An [`EntryInfo`]'s is set through [`EntryInfo::set_link`] and [`EntryInfo::set_elf`]:
    /// `None` when the entry has neither.
    pub rare: R,
}

/// One entry as the scan reads it, owned: what the scan builds before a layer's [`Entries`]
/// packs it, and what tests, the scan cache and the audit's predicted layers build. Everything
/// else reads entries as [`Entry`] views of a layer.
pub type EntryInfo = Fields<Box<str>, Option<Box<[u8]>>, Option<Box<Rare>>>;

/// One entry of a layer (or an [`EntryInfo`]), read: its fields copied out of the packed
/// index, its name and prefix borrowed from the layer's arenas.
pub type Entry<'a> = Fields<&'a str, Option<&'a [u8]>, Option<&'a Rare>>;

/// What few entries have, kept apart so that the others cost nothing for it.
#[derive(Clone, Debug, Default)]
pub struct Rare {
    link: Option<Box<str>>,
    /// An ELF file's class, machine and dynamic dependencies (what the guard follows), read as
    /// the layer streams past (see [`crate::layer::elf`]).
    elf: Option<ElfDeps>,
    /// A packed entry's fields when one does not fit its packed field (tar allows more): the
    /// packed fields then hold nothing. Never set on an [`EntryInfo`].
    wide: Option<Wide>,
}

/// What [`Rare::wide`] keeps: a size, uid or gid past 32 bits, a mode past 16, a kind that is
/// none of tar's (`Kind::Other`).
#[derive(Clone, Copy, Debug)]
struct Wide {
    size: u64,
    uid: u64,
    gid: u64,
    mode: u32,
    kind: Kind,
}

impl<N, P, R> Fields<N, P, R> {
    /// The same entry with another name, prefix and rare part (of another kind: a view of an
    /// owned entry, an owned copy of a view).
    fn with<N2, P2, R2>(&self, path: N2, prefix: P2, rare: R2) -> Fields<N2, P2, R2> {
        let (size, uid, gid, mode, kind) = (self.size, self.uid, self.gid, self.mode, self.kind);
        Fields {
            path,
            size,
            uid,
            gid,
            mode,
            kind,
            caps: self.caps,
            escapes: self.escapes,
            busybox: self.busybox,
            prefix,
            rare,
        }
    }
}

impl EntryInfo {
    /// This entry read as a layer's entries are.
    pub fn view(&self) -> Entry<'_> {
        self.with(&self.path, self.prefix.as_deref(), self.rare.as_deref())
    }

    pub fn set_link(&mut self, link: Option<impl Into<Box<str>>>) {
        if link.is_some() || self.rare.is_some() {
            self.rare_mut(|r| r.link = link.map(Into::into));
        }
    }

    pub fn set_prefix(&mut self, prefix: Option<Box<[u8]>>) {
        self.prefix = prefix;
    }

    pub fn set_elf(&mut self, elf: Option<ElfDeps>) {
        if elf.is_some() || self.rare.is_some() {
            self.rare_mut(|r| r.elf = elf);
        }
    }

    fn rare_mut(&mut self, f: impl FnOnce(&mut Rare)) {
        let mut r = self.rare.take().unwrap_or_default();
        f(&mut r);
        if r.link.is_some() || r.elf.is_some() {
            self.rare = Some(r);
        }
    }
}

impl<'a> Entry<'a> {
    /// A link's target (symlink or hardlink).
    pub fn link(&self) -> Option<&'a str> {
        self.rare.and_then(|r| r.link.as_deref())
    }

    /// The first bytes of the file, for the few files later stages look inside (see [`prefix_len`]).
    pub fn prefix(&self) -> Option<&'a [u8]> {
        self.prefix
    }

    /// An ELF file's class, machine and dynamic dependencies.
    pub fn elf(&self) -> Option<&'a ElfDeps> {
        self.rare.and_then(|r| r.elf.as_ref())
    }

    pub fn is_whiteout(&self) -> bool {
        crate::layer::path::split_parent(self.path).1.starts_with(".wh.")
    }

    /// What keeping this entry costs against the reading limits ([`Limits::take_entry`]).
    pub fn kept_bytes(&self) -> u64 {
        (self.path.len()
            + self.link().map_or(0, str::len)
            + self.prefix().map_or(0, <[u8]>::len)
            + self.elf().map_or(0, ElfDeps::kept_bytes)) as u64
    }

    /// An owned copy, to change and pack into another layer's entries.
    pub fn to_owned(&self) -> EntryInfo {
        let mut e: EntryInfo = self.with(self.path.into(), self.prefix.map(Into::into), None);
        e.set_link(self.link());
        e.set_elf(self.elf().cloned());
        e
    }
}

impl std::fmt::Debug for EntryInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.view().fmt(f)
    }
}

impl std::fmt::Debug for Entry<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("path", &self.path)
            .field("size", &self.size)
            .field("uid", &self.uid)
            .field("gid", &self.gid)
            .field("mode", &self.mode)
            .field("kind", &self.kind)
            .field("caps", &self.caps)
            .field("escapes", &self.escapes)
            .field("busybox", &self.busybox)
            .field("prefix", &self.prefix)
            .field("link", &self.link())
            .field("elf", &self.elf())
            .finish()
    }
}

/// One entry in a layer's [`Entries`]: 24 bytes. Its name and prefix end where these say in the
/// layer's arenas, and start where the entry before it ends its own.
#[derive(Clone, Copy, Debug)]
struct Packed {
    name_end: u32,
    prefix_end: u32,
    /// Size, uid, gid and mode are zero when [`flag::WIDE`]: they are then in its [`Rare`].
    size: u32,
    uid: u32,
    gid: u32,
    mode: u16,
    /// Its kind ([`KINDS`]) in the low 3 bits, [`flag`]s above.
    bits: u16,
}

/// Tar's kinds, as [`Packed::bits`] numbers them (`Kind::Other` is [`flag::WIDE`]).
const KINDS: [Kind; 8] =
    [Kind::File, Kind::HardLink, Kind::Symlink, Kind::CharDev, Kind::BlockDev, Kind::Dir, Kind::Fifo, Kind::GlobalPax];

/// [`Packed::bits`] above its kind.
mod flag {
    pub const CAPS: u16 = 1 << 3;
    pub const ESCAPES: u16 = 1 << 4;
    pub const BUSYBOX: u16 = 1 << 5;
    /// Has a prefix (perhaps empty): `None` and `Some(&[])` differ.
    pub const PREFIX: u16 = 1 << 6;
    /// Has a [`super::Rare`] in [`super::Entries`]' list of them.
    pub const RARE: u16 = 1 << 7;
    /// One of its fields does not fit the packed one: all are in its [`super::Rare`].
    pub const WIDE: u16 = 1 << 8;
}

/// A layer's entries, packed: a [`Packed`] each, every name in one string and every kept prefix
/// in one buffer (names and prefixes at most 4 GiB a layer, as [`crate::layer::MAX_KEPT_BYTES`]
/// bounds them across the run), and what few entries have ([`Rare`]) apart, by entry number.
/// 24 bytes an entry beyond its name and prefix (an owned [`EntryInfo`] costs 80, a heap
/// name and a heap prefix). Read with [`Entries::at`], [`Entries::iter`], [`Entries::name`].
#[derive(Clone, Default)]
pub struct Entries {
    packed: Vec<Packed>,
    names: String,
    prefixes: Vec<u8>,
    /// Sorted by entry number (entries are pushed in order).
    rare: Vec<(u32, Rare)>,
}

impl Entries {
    pub fn len(&self) -> usize {
        self.packed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.packed.is_empty()
    }

    /// Entry `i`'s name (cheaper than [`Entries::at`] when only the name is wanted). Panics when
    /// `i` is out of range, as indexing a slice does.
    pub fn name(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.packed[i - 1].name_end as usize };
        self.names.get(start..self.packed[i].name_end as usize).unwrap_or_default()
    }

    /// Entry `i`. Panics when `i` is out of range, as indexing a slice does.
    pub fn at(&self, i: usize) -> Entry<'_> {
        let p = self.packed[i];
        let (name_start, prefix_start) = match i.checked_sub(1) {
            Some(b) => (self.packed[b].name_end as usize, self.packed[b].prefix_end as usize),
            None => (0, 0),
        };
        let rare = if p.bits & flag::RARE != 0 {
            u32::try_from(i)
                .ok()
                .and_then(|n| self.rare.binary_search_by_key(&n, |r| r.0).ok())
                .map(|k| &self.rare[k].1)
        } else {
            None
        };
        let w = match rare.and_then(|r| r.wide) {
            Some(w) => w,
            None => Wide {
                size: p.size.into(),
                uid: p.uid.into(),
                gid: p.gid.into(),
                mode: p.mode.into(),
                kind: KINDS[usize::from(p.bits & 7)],
            },
        };
        Entry {
            path: self.names.get(name_start..p.name_end as usize).unwrap_or_default(),
            size: w.size,
            uid: w.uid,
            gid: w.gid,
            mode: w.mode,
            kind: w.kind,
            caps: p.bits & flag::CAPS != 0,
            escapes: p.bits & flag::ESCAPES != 0,
            busybox: p.bits & flag::BUSYBOX != 0,
            prefix: (p.bits & flag::PREFIX != 0)
                .then(|| self.prefixes.get(prefix_start..p.prefix_end as usize))
                .flatten(),
            rare,
        }
    }

    /// Entry `i`, or `None` past the end.
    pub fn get(&self, i: usize) -> Option<Entry<'_>> {
        (i < self.len()).then(|| self.at(i))
    }

    pub fn iter(&self) -> Iter<'_> {
        Iter { entries: self, next: 0..self.len() }
    }

    /// Every entry's name, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.len()).map(|i| self.name(i))
    }

    /// Pack `e` as the next entry; an error when the layer's names or prefixes pass 4 GiB or
    /// its entries 2^32 (the reading limits stop a run before either).
    pub fn push(&mut self, e: EntryInfo) -> io::Result<()> {
        let too_big = |what: &str| crate::layer::tar::bad(format!("a layer's {what} pass 4 GiB in memory"));
        let number = u32::try_from(self.packed.len())
            .map_err(|_| crate::layer::tar::bad("a layer has more than 2^32 entries to keep in memory"))?;
        let name_end = u32::try_from(self.names.len() + e.path.len()).map_err(|_| too_big("entry names"))?;
        let prefix_len = e.prefix.as_ref().map_or(0, |p| p.len());
        let prefix_end = u32::try_from(self.prefixes.len() + prefix_len).map_err(|_| too_big("kept prefixes"))?;
        let kind = KINDS.iter().position(|k| *k == e.kind);
        let narrow = (u32::try_from(e.size), u32::try_from(e.uid), u32::try_from(e.gid), u16::try_from(e.mode), kind);
        let mut flags = 0;
        for (set, bit) in [
            (e.caps, flag::CAPS),
            (e.escapes, flag::ESCAPES),
            (e.busybox, flag::BUSYBOX),
            (e.prefix.is_some(), flag::PREFIX),
        ] {
            if set {
                flags |= bit;
            }
        }
        let (size, uid, gid, mode) = match narrow {
            (Ok(s), Ok(u), Ok(g), Ok(m), Some(k)) => {
                flags |= k as u16;
                (s, u, g, m)
            }
            _ => {
                flags |= flag::WIDE;
                (0, 0, 0, 0)
            }
        };
        let mut rare = e.rare.map(|r| *r);
        if flags & flag::WIDE != 0 {
            let wide = Wide { size: e.size, uid: e.uid, gid: e.gid, mode: e.mode, kind: e.kind };
            rare.get_or_insert_with(Rare::default).wide = Some(wide);
        }
        if let Some(r) = rare {
            flags |= flag::RARE;
            self.rare.push((number, r));
        }
        self.names.push_str(&e.path);
        if let Some(p) = &e.prefix {
            self.prefixes.extend_from_slice(p);
        }
        self.packed.push(Packed { name_end, prefix_end, size, uid, gid, mode, bits: flags });
        Ok(())
    }

    /// Give back the room the vectors grew into beyond what they hold.
    pub fn shrink_to_fit(&mut self) {
        self.packed.shrink_to_fit();
        self.names.shrink_to_fit();
        self.prefixes.shrink_to_fit();
        self.rare.shrink_to_fit();
    }

    /// Entries packed from owned ones (tests and small layers): an error as [`Entries::push`].
    pub fn from_owned(entries: impl IntoIterator<Item = EntryInfo>) -> io::Result<Entries> {
        let mut out = Entries::default();
        for e in entries {
            out.push(e)?;
        }
        Ok(out)
    }
}

/// [`Entries::iter`]: each entry's view, in order.
pub struct Iter<'a> {
    entries: &'a Entries,
    next: std::ops::Range<usize>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = Entry<'a>;
    fn next(&mut self) -> Option<Entry<'a>> {
        self.next.next().map(|i| self.entries.at(i))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.next.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.next.next_back().map(|i| self.entries.at(i))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Entries {
    type Item = Entry<'a>;
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl std::fmt::Debug for Entries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[derive(Clone, Debug)]
pub struct LayerIndex {
    pub entries: Entries,
    pub codec: Codec,
    pub diff_id: Digest,
    pub uncompressed_size: u64,
}

/// Files whose contents matter later: executables (shebang, ELF interpreter), account
/// databases (user checks), package databases and os-release ([`crate::pkgdb`]), and candidate secret files (audit by content). Bounded sizes
/// keep the whole scan's memory small.
pub fn prefix_len(path: &str, mode: u32, size: u64) -> u64 {
    const ACCOUNTS: [&str; 4] = ["etc/passwd", "etc/group", "etc/shadow", "etc/gshadow"];
    if ACCOUNTS.contains(&path) {
        return size.min(1 << 20);
    }
    // The dynamic loader's search path (the guard resolves DT_NEEDED through it).
    if path == "etc/ld.so.conf"
        || path.starts_with("etc/ld.so.conf.d/")
        || (path.starts_with("etc/ld-musl-") && path.ends_with(".path"))
    {
        return size.min(64 << 10);
    }
    // Package databases, whole (the plan edits them; a file cut short is refused there, naming it).
    if crate::pkgdb::paths::is_database_file(path) {
        return size.min(crate::pkgdb::paths::MAX_FILE);
    }
    if path == "etc/os-release" || path == "usr/lib/os-release" {
        return size.min(4096);
    }
    if mode & 0o111 != 0 {
        return size.min(1024);
    }
    // The audit reads these for key material, and skips library code: keep nothing of it.
    if crate::secrets::library_path(path) {
        return 0;
    }
    let lower = path.to_ascii_lowercase();
    let secretish = [
        ".pem",
        ".key",
        ".p12",
        ".pfx",
        ".asc",
        ".env",
        ".npmrc",
        "id_rsa",
        "id_ecdsa",
        "id_ed25519",
        "id_dsa",
        "credentials",
        ".json",
        ".yml",
        ".yaml",
        ".cfg",
        ".conf",
        ".ini",
        ".txt",
        ".py",
        ".sh",
        ".properties",
        ".toml",
        ".xml",
        ".rb",
        ".js",
        ".php",
        ".tfvars",
    ];
    if secretish.iter().any(|s| lower.ends_with(s)) {
        return size.min(4096);
    }
    0
}

/// busybox's banner, in every build's data.
const BUSYBOX: &[u8] = b"BusyBox v";

/// A sink that looks for [`BUSYBOX`] across the chunks written to it, allocating nothing.
struct Banner {
    finder: memchr::memmem::Finder<'static>,
    /// The last bytes seen (fewer than the banner), for a banner split between two chunks.
    tail: [u8; 8],
    len: usize,
    found: bool,
}

impl Banner {
    fn new(head: &[u8]) -> Banner {
        let mut b = Banner { finder: memchr::memmem::Finder::new(BUSYBOX), tail: [0; 8], len: 0, found: false };
        b.look(head);
        b
    }

    fn look(&mut self, data: &[u8]) {
        const K: usize = BUSYBOX.len() - 1;
        if self.found || data.is_empty() {
            return;
        }
        // The previous tail with this chunk's start: a banner straddling the two.
        let mut w = [0u8; 2 * K];
        let n = data.len().min(K);
        w[..self.len].copy_from_slice(&self.tail[..self.len]);
        w[self.len..self.len + n].copy_from_slice(&data[..n]);
        let joined = &w[..self.len + n];
        if self.finder.find(joined).is_some() || self.finder.find(data).is_some() {
            self.found = true;
            return;
        }
        let last = if data.len() >= K { &data[data.len() - K..] } else { &joined[joined.len().saturating_sub(K)..] };
        self.tail[..last.len()].copy_from_slice(last);
        self.len = last.len();
    }
}

/// The sha256 of executables' data, taken while the scan streams them past for busybox's banner:
/// `(entry number, hash)`, entries numbered as [`scan_layer`] numbers them. The plan's copy check
/// ([`crate::plan::copy_check`]) hashes executables only, so with these it need not read the
/// layer again. 36 bytes per executable.
pub type ExecHashes = Vec<(u32, [u8; 32])>;

/// What an entry's data goes through as the scan reads it: the banner search, and a hash when
/// the entry is an executable whose hash is kept ([`ExecHashes`]).
struct Body {
    banner: Banner,
    hash: Option<sha2::Sha256>,
}

impl Body {
    fn new(head: &[u8], hashing: bool) -> Body {
        use sha2::Digest as _;
        let mut b = Body { banner: Banner::new(&[]), hash: hashing.then(sha2::Sha256::new) };
        b.look(head);
        b
    }

    fn look(&mut self, data: &[u8]) {
        use sha2::Digest as _;
        if let Some(h) = &mut self.hash {
            h.update(data);
        }
        self.banner.look(data);
    }
}

impl std::io::Write for Body {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.look(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The sha256 of the data of the entries `wanted` of one layer blob (numbered as
/// [`scan_layer`] numbers them: global PAX headers are not entries), read again within `limits`.
/// This second read serves the plan's search for copies of removed tools, for the few files
/// that may be one.
pub fn hash_entries(
    blob: impl Read,
    wanted: &std::collections::BTreeSet<usize>,
    limits: &Limits,
) -> io::Result<std::collections::HashMap<usize, Digest>> {
    let mut out = std::collections::HashMap::new();
    let (_, plain) = crate::layer::codec::limited_decoder(blob, limits)?;
    let mut tr = TarReader::new(plain);
    let mut i = 0;
    while out.len() < wanted.len() {
        let Some(e) = tr.next_entry()? else { break };
        if e.kind == Kind::GlobalPax {
            continue;
        }
        if wanted.contains(&i) {
            let mut h = crate::digest::HashingWriter::new(io::sink());
            tr.copy_data(&mut h)?;
            out.insert(i, h.finish().1);
        }
        i += 1;
    }
    Ok(out)
}

/// Scan one layer blob within `limits` (size, ratio, entries: see [`Limits`]). The blob's digest
/// (when not verified on download) and the config's diff_id are checked when given: a mismatch
/// is an error naming both. One thread decompresses (and hashes the blob), the caller's hashes
/// the uncompressed stream and parses it (see [`crate::layer::inflate`]). A scan that fails
/// gives back the entries it had taken from `limits`.
pub fn scan_layer(
    blob: impl Read + Send,
    expected_digest: Option<&Digest>,
    expected_diff_id: Option<&Digest>,
    limits: &Limits,
) -> io::Result<LayerIndex> {
    scan_checked(blob, expected_digest, expected_diff_id, limits, false, &mut |_| {}).map(|(index, _)| index)
}

/// [`scan_layer`], with the hashes of the layer's executables ([`ExecHashes`]) taken on the way
/// when `hash_executables`, and each entry shown to `watch` as soon as it is read.
pub fn scan_layer_hashing(
    blob: impl Read + Send,
    (expected_digest, expected_diff_id): (Option<&Digest>, Option<&Digest>),
    limits: &Limits,
    hash_executables: bool,
    watch: &mut dyn FnMut(Entry<'_>),
) -> io::Result<(LayerIndex, ExecHashes)> {
    scan_checked(blob, expected_digest, expected_diff_id, limits, hash_executables, watch)
}

fn scan_checked(
    blob: impl Read + Send,
    expected_digest: Option<&Digest>,
    expected_diff_id: Option<&Digest>,
    limits: &Limits,
    hash_executables: bool,
    watch: &mut dyn FnMut(Entry<'_>),
) -> io::Result<(LayerIndex, ExecHashes)> {
    let mut taken = (0u64, 0u64);
    let res = scan_counted(blob, (expected_digest, expected_diff_id), limits, (hash_executables, watch), &mut taken);
    if res.is_err() {
        limits.give_back(taken.0, taken.1);
    }
    res
}

/// [`scan_checked`]'s scan, counting what it takes from `limits` in `taken`.
fn scan_counted(
    blob: impl Read + Send,
    (expected_digest, expected_diff_id): (Option<&Digest>, Option<&Digest>),
    limits: &Limits,
    (hash_executables, watch): (bool, &mut dyn FnMut(Entry<'_>)),
    taken: &mut (u64, u64),
) -> io::Result<(LayerIndex, ExecHashes)> {
    let ((entries, diff_id, uncompressed_size, hashes), compressed) =
        inflate::with_plain(blob, expected_digest.is_some(), limits, |plain| {
            let mut hashing = HashingReader::new(plain);
            let mut entries = Entries::default();
            let mut hashes = ExecHashes::new();
            {
                let mut tr = TarReader::new(&mut hashing);
                while let Some(e) = tr.next_entry()? {
                    if e.kind == Kind::GlobalPax {
                        continue;
                    }
                    let mode = e.mode();
                    // A sparse file's stored bytes are not its bytes from offset 0: no prefix.
                    let want = if e.kind == Kind::File && !e.sparse { prefix_len(&e.path, mode, e.size) } else { 0 };
                    // Every file's first bytes say whether it is ELF (libraries are not executable).
                    let head_len = if e.kind == Kind::File && !e.sparse { want.max(e.size.min(64)) } else { 0 };
                    let head = if head_len > 0 { tr.read_prefix(head_len)? } else { Vec::new() };
                    let executable = e.kind == Kind::File && !e.sparse && mode & 0o111 != 0 && e.size > 0;
                    let mut body = Body::new(&head, hash_executables && executable);
                    let elf = if head.starts_with(b"\x7fELF") {
                        elf::read_deps(&head, e.size, |n| {
                            let more = tr.read_prefix(n)?;
                            body.look(&more);
                            Ok(more)
                        })?
                    } else {
                        None
                    };
                    let prefix: Option<Box<[u8]>> = (want > 0).then(|| head[..head.len().min(want as usize)].into());
                    // Executables are read to their end for busybox's banner (the bytes stream past
                    // anyway); nothing of them is kept but the flag.
                    let busybox = if executable {
                        tr.copy_data(&mut body)?;
                        body.banner.found
                    } else {
                        false
                    };
                    if let (Some(h), Ok(n)) = (body.hash.take(), u32::try_from(entries.len())) {
                        use sha2::Digest as _;
                        hashes.push((n, h.finalize().into()));
                    }
                    let mut entry = EntryInfo {
                        caps: e.has_xattr("security.capability"),
                        uid: e.uid(),
                        gid: e.gid(),
                        // A copy of its length: shrinking the reader's string in place would leave
                        // a hole after every name that later names do not fit.
                        path: Box::from(e.path.as_str()),
                        kind: e.kind,
                        mode,
                        size: e.real_size,
                        escapes: e.escapes,
                        busybox,
                        prefix,
                        rare: None,
                    };
                    entry.set_link(e.link);
                    entry.set_elf(elf);
                    watch(entry.view());
                    let kept = entry.view().kept_bytes();
                    limits.take_entry(kept)?;
                    taken.0 += 1;
                    taken.1 += kept;
                    entries.push(entry)?;
                }
                tr.finish()?;
            }
            let (diff_id, uncompressed_size) = hashing.finish()?;
            entries.shrink_to_fit();
            Ok((entries, diff_id, uncompressed_size, hashes))
        })?;
    if let Some(expected) = expected_digest {
        let digest = compressed.digest.as_ref().ok_or_else(|| io::Error::other("the blob was not hashed"))?;
        if expected != digest {
            return Err(crate::layer::tar::bad(format!("blob content has digest {digest} (corrupt or tampered)")));
        }
    }
    if let Some(expected) = expected_diff_id {
        if *expected != diff_id {
            return Err(crate::layer::tar::bad(format!(
                "uncompressed content has digest {diff_id}, but the config's diff_id says {expected}"
            )));
        }
    }
    Ok((LayerIndex { entries, codec: compressed.codec, diff_id, uncompressed_size }, hashes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A tar stream of `n` one-byte files, 500 a directory, made as it is read.
    struct ManyFiles {
        n: usize,
        next: usize,
        block: Vec<u8>,
        pos: usize,
    }

    impl Read for ManyFiles {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.pos == self.block.len() {
                self.pos = 0;
                self.block.clear();
                if self.next < self.n {
                    let i = self.next;
                    let mut h = tar::Header::new_ustar();
                    h.set_path(format!("opt/many/d{:05}/file-{i:07}.txt", i / 500))?;
                    h.set_size(1);
                    h.set_mode(0o644);
                    h.set_cksum();
                    self.block.extend_from_slice(h.as_bytes());
                    self.block.extend_from_slice(&[b'x'; 512]);
                } else if self.next == self.n {
                    self.block.resize(1024, 0);
                }
                self.next += 1;
            }
            let k = out.len().min(self.block.len() - self.pos);
            out[..k].copy_from_slice(&self.block[self.pos..self.pos + k]);
            self.pos += k;
            Ok(k)
        }
    }

    /// The scan's index costs a bounded number of bytes per entry, its name included, measured
    /// with the unit tests' counting allocator (on the thread that builds it) over 100,000
    /// entries: what the memory of `-p strict` on a layer of many entries grows with.
    #[test]
    fn the_index_costs_bounded_bytes_per_entry() {
        let n = 100_000;
        let start = crate::memory::counting::start();
        let index =
            scan_layer(ManyFiles { n, next: 0, block: Vec::new(), pos: 0 }, None, None, &Limits::default()).unwrap();
        let (live, peak) = crate::memory::counting::since(start);
        assert_eq!(index.entries.len(), n);
        assert!(std::mem::size_of::<Packed>() <= 24, "{} bytes an entry", std::mem::size_of::<Packed>());
        let names: i64 = index.entries.names().map(|p| p.len() as i64).sum();
        assert_eq!(names / n as i64, 32, "opt/many/dNNNNN/file-NNNNNNN.txt");
        // What the index holds is what dropping it frees (`live` is low by the buffers the
        // decompressing thread handed this one, which this one freed).
        drop(index);
        let held = live - crate::memory::counting::since(start).0;
        let (per_entry, per_peak) = (held / n as i64, peak / n as i64);
        eprintln!("index: {held} bytes held, {peak} at peak: {per_entry} and {per_peak} per entry, names included");
        // 24 packed bytes, a 32-byte name and a one-byte prefix in arenas: 57 (an 80-byte
        // `EntryInfo`, a 48-byte heap name and a 32-byte heap prefix before); at the peak the
        // arenas' spare room before they are shrunk to fit, and the buffers in flight.
        assert!(per_entry <= 58 && per_peak <= 96, "{per_entry} / {per_peak} bytes per entry");
    }

    fn owned(path: &str) -> EntryInfo {
        EntryInfo {
            path: path.into(),
            size: 0,
            uid: 0,
            gid: 0,
            mode: 0o644,
            kind: Kind::File,
            caps: false,
            escapes: false,
            busybox: false,
            prefix: None,
            rare: None,
        }
    }

    /// Packed entries read back as they were pushed: names and prefixes from the arenas (an
    /// empty prefix is not no prefix), flags, links and ELF data apart, and a size, uid or gid
    /// past 32 bits, a mode past 16 or a kind none of tar's kept whole (tar allows them) rather
    /// than cut.
    #[test]
    fn packed_entries_read_back_as_pushed() {
        let mut wide = owned("big/ids");
        (wide.uid, wide.gid, wide.size) = (u64::from(u32::MAX) + 1, 7, 3);
        let mut huge = owned("big/size");
        huge.size = 5 << 32;
        huge.set_link(Some("elsewhere"));
        let mut exe = owned("usr/bin/x");
        (exe.mode, exe.caps, exe.busybox, exe.uid, exe.gid, exe.size) = (0o4755, true, true, u32::MAX.into(), 1, 9);
        exe.set_prefix(Some(b"\x7fELF".to_vec().into_boxed_slice()));
        exe.set_elf(Some(ElfDeps { is64: true, machine: 62, ..ElfDeps::default() }));
        let mut empty = owned("etc/empty.conf");
        empty.set_prefix(Some(Box::new([])));
        let mut link = owned("bin");
        (link.kind, link.escapes) = (Kind::Symlink, true);
        link.set_link(Some("usr/bin"));
        let mut other = owned("");
        other.kind = Kind::Other(b'Z');
        let mut modes = owned("dev/null");
        (modes.kind, modes.mode) = (Kind::CharDev, 0o100644);
        let mut big_mode = owned("m");
        big_mode.mode = 0o7_777_777;
        let all = vec![owned("a"), wide, exe, empty, huge, link, other, owned("ü/ß"), modes, big_mode];
        let packed = Entries::from_owned(all.clone()).unwrap();
        assert_eq!(packed.len(), all.len());
        assert_eq!(format!("{:?}", packed), format!("{:?}", all.iter().map(EntryInfo::view).collect::<Vec<_>>()));
        for (i, e) in all.iter().enumerate() {
            assert_eq!(packed.name(i), &*e.path);
            assert_eq!(format!("{:?}", packed.at(i).to_owned()), format!("{e:?}"), "entry {i}");
        }
        assert_eq!(packed.at(1).uid, u64::from(u32::MAX) + 1, "not cut to 32 bits");
        assert_eq!((packed.at(4).size, packed.at(4).link()), (5 << 32, Some("elsewhere")));
        assert_eq!(packed.at(3).prefix(), Some(&[][..]));
        assert_eq!(packed.at(0).prefix(), None);
        assert_eq!(packed.at(2).elf().map(|d| d.machine), Some(62));
        assert!(packed.get(all.len()).is_none());
        assert_eq!(packed.iter().rev().nth(2).map(|e| e.path), Some("ü/ß"));
        assert_eq!(
            (packed.at(6).kind, packed.at(8).kind, packed.at(8).mode),
            (Kind::Other(b'Z'), Kind::CharDev, 0o100644)
        );
        assert_eq!(packed.at(9).mode, 0o7_777_777, "not cut to 16 bits");
    }

    /// The hashes the scan takes of executables are those a second read ([`hash_entries`]) takes,
    /// through every way the scan reads data (the head, an ELF file's dynamic section, the rest
    /// for busybox's banner), for executables only.
    #[test]
    fn the_scan_hashes_executables_as_a_second_read_does() {
        let elf = std::fs::read("/bin/true").unwrap();
        let mut busybox = vec![7u8; 200_000];
        busybox[150_000..150_009].copy_from_slice(b"BusyBox v");
        let files: Vec<(&str, u32, &[u8])> = vec![
            ("bin/true", 0o755, &elf),
            ("bin/tiny", 0o755, b"#!/bin/sh\n"),
            ("bin/busybox", 0o4755, &busybox),
            ("usr/lib/libtrue.so", 0o644, &elf), // not executable: not hashed
            ("bin/empty", 0o755, b""),           // empty: not hashed
            ("bin/copy", 0o700, &elf),
        ];
        let mut b = tar::Builder::new(Vec::new());
        for (path, mode, data) in &files {
            let mut h = tar::Header::new_ustar();
            h.set_mode(*mode);
            h.set_size(data.len() as u64);
            b.append_data(&mut h, path, *data).unwrap();
        }
        let t = b.into_inner().unwrap();
        let mut seen = Vec::new();
        let (index, hashes) =
            scan_layer_hashing(&t[..], (None, None), &Limits::default(), true, &mut |e| seen.push(e.path.to_string()))
                .unwrap();
        assert_eq!(seen, files.iter().map(|f| f.0).collect::<Vec<_>>(), "every entry watched, in order");
        let got: Vec<(&str, Digest)> =
            hashes.iter().map(|(n, h)| (index.entries.name(*n as usize), Digest::from_sha256(h))).collect();
        let wanted = [0, 1, 2, 5].into_iter().collect();
        let again = hash_entries(&t[..], &wanted, &Limits::default()).unwrap();
        let expect: Vec<(&str, Digest)> = [0, 1, 2, 5].iter().map(|i| (files[*i].0, again[i].clone())).collect();
        assert_eq!(got, expect);
        assert_eq!(got[0].1, Digest::of(&elf));
        assert!(index.entries.at(0).elf().is_some() && index.entries.at(2).busybox);
        // scan_layer takes none, and the same index.
        let plain = scan_layer(&t[..], None, None, &Limits::default()).unwrap();
        assert_eq!(format!("{:?}", plain.entries), format!("{:?}", index.entries));
    }

    #[test]
    fn the_busybox_banner_is_found_across_chunks() {
        let data = b"xxxxBusyBox v1.36.1 (2023-01-01)".to_vec();
        for split in 0..data.len() {
            for first in [0, 2] {
                let mut b = Body::new(&data[..first.min(split)], false);
                b.write_all(&data[first.min(split)..split]).unwrap();
                // One byte at a time, then the rest.
                for c in data[split..].chunks(1).take(3) {
                    b.write_all(c).unwrap();
                }
                b.write_all(&data[(split + 3).min(data.len())..]).unwrap();
                assert!(b.banner.found, "split at {split}");
            }
        }
        let mut b = Body::new(b"BusyBox", false);
        b.write_all(b"v1 BusyBox").unwrap();
        b.write_all(b"-v").unwrap();
        assert!(!b.banner.found, "neither is the banner");
        let mut b = Body::new(b"Busy", true);
        b.write_all(b"Box").unwrap();
        b.write_all(b" ").unwrap();
        b.write_all(b"v").unwrap();
        assert!(b.banner.found);
    }
}
