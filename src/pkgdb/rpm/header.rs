//! One rpm header blob as the databases store it (the "immutable region" rpm writes:
//! big-endian `il` index count, `dl` data length, `il` 16-byte index entries — tag, type,
//! offset, count — then `dl` bytes of data), read into a [`Package`]. Every offset and count is
//! checked against the blob before it is used; a blob that lies gives an error, never a panic,
//! and nothing is allocated beyond what the blob itself holds.
//!
//! Owns: the header format. Must not: know where the blob came from (sqlite, Berkeley DB).

use crate::pkgdb::Package;

/// rpm's own limits (`lib/header.c`: `hdrchkTags`, `hdrchkData`).
const MAX_TAGS: u32 = 0xffff;
const MAX_DATA: u32 = 0x0fff_ffff;

const NAME: u32 = 1000;
const VERSION: u32 = 1001;
const RELEASE: u32 = 1002;
const EPOCH: u32 = 1003;
const ARCH: u32 = 1022;
const OLDFILENAMES: u32 = 1027;
const FILESTATES: u32 = 1029;
const FILEFLAGS: u32 = 1037;
const REQUIRENAME: u32 = 1049;
const DIRINDEXES: u32 = 1116;
const BASENAMES: u32 = 1117;
const DIRNAMES: u32 = 1118;

const T_CHAR: u32 = 1;
const T_INT8: u32 = 2;
const T_INT32: u32 = 4;
const T_STRING: u32 = 6;
const T_STRING_ARRAY: u32 = 8;
const T_I18NSTRING: u32 = 9;

/// What one listed path costs beyond its bytes (the `String` that holds it).
pub const PATH_COST: usize = 32;

/// The `gpg-pubkey` pseudo-packages rpm keeps for imported keys: no files, not software.
const PUBKEY: &str = "gpg-pubkey";

struct Entry {
    tag: u32,
    ty: u32,
    offset: u32,
    count: u32,
}

/// A parsed header: its index and data store.
pub struct Header<'a> {
    entries: Vec<Entry>,
    data: &'a [u8],
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4).map(|x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]))
}

impl<'a> Header<'a> {
    /// Parse a header blob; the error says what is wrong (the caller names the file).
    pub fn parse(blob: &'a [u8]) -> Result<Header<'a>, String> {
        let (Some(il), Some(dl)) = (be32(blob, 0), be32(blob, 4)) else {
            return Err(format!("header of {} bytes, shorter than its 8-byte preamble", blob.len()));
        };
        if il == 0 || il > MAX_TAGS || dl > MAX_DATA {
            return Err(format!("header claims {il} tags and {dl} data bytes (out of rpm's limits)"));
        }
        let start = 8 + il as usize * 16;
        let end = start + dl as usize;
        if end > blob.len() {
            return Err(format!("header claims {il} tags and {dl} data bytes, but the blob is {} bytes", blob.len()));
        }
        let data = &blob[start..end];
        let mut entries = Vec::with_capacity(il as usize);
        for i in 0..il as usize {
            let at = 8 + i * 16;
            let f = |k: usize| be32(blob, at + 4 * k).unwrap_or(0);
            let e = Entry { tag: f(0), ty: f(1), offset: f(2), count: f(3) };
            if e.offset as usize > data.len() {
                return Err(format!("tag {} has offset {} beyond the {} data bytes", e.tag, e.offset, data.len()));
            }
            entries.push(e);
        }
        Ok(Header { entries, data })
    }

    fn entry(&self, tag: u32) -> Option<&Entry> {
        self.entries.iter().find(|e| e.tag == tag)
    }

    /// `count` NUL-terminated strings from the entry's offset. Each costs at least one data
    /// byte, so a count beyond the data is refused before anything is allocated.
    fn strings(&self, tag: u32) -> Result<Vec<&'a str>, String> {
        let Some(e) = self.entry(tag) else { return Ok(Vec::new()) };
        if !matches!(e.ty, T_STRING | T_STRING_ARRAY | T_I18NSTRING) {
            return Err(format!("tag {tag} has type {}, not a string", e.ty));
        }
        // A STRING holds one whatever its count; an I18N string's first is the untranslated one.
        let count = if e.ty == T_STRING_ARRAY { e.count as usize } else { 1 };
        let mut rest = &self.data[e.offset as usize..];
        if count > rest.len() {
            return Err(format!("tag {tag} claims {count} strings in {} bytes", rest.len()));
        }
        let mut out = Vec::with_capacity(count);
        for i in 0..count {
            let Some(n) = rest.iter().position(|&b| b == 0) else {
                return Err(format!("tag {tag}: string {i} of {count} runs past the data"));
            };
            let s = std::str::from_utf8(&rest[..n]).map_err(|_| format!("tag {tag}: string {i} is not UTF-8"))?;
            out.push(s);
            rest = &rest[n + 1..];
        }
        Ok(out)
    }

    fn string(&self, tag: u32) -> Result<Option<&'a str>, String> {
        Ok(self.strings(tag)?.first().copied())
    }

    fn int8s(&self, tag: u32) -> Result<&'a [u8], String> {
        let Some(e) = self.entry(tag) else { return Ok(&[]) };
        if e.ty != T_CHAR && e.ty != T_INT8 {
            return Err(format!("tag {tag} has type {}, not CHAR/INT8", e.ty));
        }
        let (off, n) = (e.offset as usize, e.count as usize);
        self.data.get(off..off.saturating_add(n)).ok_or_else(|| {
            format!("tag {tag} claims {n} bytes at offset {off}, beyond the {} data bytes", self.data.len())
        })
    }

    fn int32s(&self, tag: u32) -> Result<Vec<u32>, String> {
        let Some(e) = self.entry(tag) else { return Ok(Vec::new()) };
        if e.ty != T_INT32 {
            return Err(format!("tag {tag} has type {}, not INT32", e.ty));
        }
        let (off, n) = (e.offset as usize, e.count as usize);
        let bytes = n.checked_mul(4).filter(|b| off + b <= self.data.len()).ok_or_else(|| {
            format!("tag {tag} claims {n} INT32 values at offset {off}, beyond the {} data bytes", self.data.len())
        })?;
        Ok(self.data[off..off + bytes].chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect())
    }
}

/// The package a header blob describes; `Ok(None)` for rpm's `gpg-pubkey` entries. `budget` is
/// the bytes of paths still allowed (each path costs its length and [`PATH_COST`]): directory
/// names are shared, so a small hostile header could otherwise expand into gigabytes.
pub fn package(blob: &[u8], budget: &mut usize) -> Result<Option<Package>, String> {
    let h = Header::parse(blob)?;
    let name = h.string(NAME)?.ok_or("header without a NAME tag")?;
    if name == PUBKEY {
        return Ok(None);
    }
    let version = h.string(VERSION)?.unwrap_or("");
    let release = h.string(RELEASE)?.unwrap_or("");
    // `%{EVR}` as rpm prints it: `E:V-R`, the epoch only when the header has one.
    let evr = match h.int32s(EPOCH)?.first() {
        Some(e) => format!("{e}:{version}-{release}"),
        None => format!("{version}-{release}"),
    };
    let arch = h.string(ARCH)?.unwrap_or("").to_string();
    let (base, dirs, idx) = (h.strings(BASENAMES)?, h.strings(DIRNAMES)?, h.int32s(DIRINDEXES)?);
    if base.len() != idx.len() {
        return Err(format!("package {name}: {} BASENAMES but {} DIRINDEXES", base.len(), idx.len()));
    }
    // Files rpm lists but did not put on disk: `%ghost` ones (flag 1 << 6), and those whose state
    // is not normal (0) or replaced (1) — not installed (`--excludedocs`, `tsflags=nodocs`),
    // net-shared, wrong colour, missing. They are not the package's files in the image.
    let (states, flags) = (h.int8s(FILESTATES)?, h.int32s(FILEFLAGS)?);
    let absent = |i: usize| states.get(i).is_some_and(|&s| s > 1) || flags.get(i).is_some_and(|&f| f & (1 << 6) != 0);
    let mut paths = Vec::new();
    let mut spend = |len: usize| -> Result<(), String> {
        *budget = budget.checked_sub(len + PATH_COST).ok_or_else(|| {
            format!("package {name}: the database lists more than {} MiB of paths", super::MAX_PATHS >> 20)
        })?;
        Ok(())
    };
    for (n, (b, &i)) in base.iter().zip(&idx).enumerate() {
        let d = dirs.get(i as usize).ok_or_else(|| {
            format!("package {name}: file {b:?} has directory index {i}, beyond its {} DIRNAMES", dirs.len())
        })?;
        if absent(n) {
            continue;
        }
        spend(d.len() + b.len())?;
        paths.push(format!("{d}{b}"));
    }
    // rpm < 4.0 headers list whole paths.
    if paths.is_empty() {
        for p in h.strings(OLDFILENAMES)? {
            spend(p.len())?;
            paths.push(p.to_string());
        }
    }
    for p in &paths {
        if !p.starts_with('/') || p.split('/').any(|c| c == "..") {
            return Err(format!(
                "package {name}: path {:?} is not absolute or leaves the root",
                p.chars().take(80).collect::<String>()
            ));
        }
    }
    // Requires are capabilities (`libc.so.6()(64bit)`, `/bin/sh`, `rpmlib(...)`); the names that
    // are plain words may be package names, which is all the plan's notes compare them with.
    // De-duplicated through a set: a linear scan per name is quadratic in a hostile header.
    let mut depends: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for r in h.strings(REQUIRENAME)? {
        if !r.is_empty() && !r.contains(['(', '/']) && seen.insert(r) {
            depends.push(r.to_string());
        }
    }
    Ok(Some(Package { name: name.to_string(), version: evr, arch, paths, depends }))
}

/// Test support: a header blob from `(tag, type, count, data)` entries, laid out as rpm does.
#[cfg(test)]
pub fn build(entries: &[(u32, u32, u32, Vec<u8>)]) -> Vec<u8> {
    let mut index = Vec::new();
    let mut data = Vec::new();
    for (tag, ty, count, d) in entries {
        if *ty == T_INT32 {
            while !data.len().is_multiple_of(4) {
                data.push(0);
            }
        }
        for v in [*tag, *ty, data.len() as u32, *count] {
            index.extend_from_slice(&v.to_be_bytes());
        }
        data.extend_from_slice(d);
    }
    let mut out = Vec::new();
    out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend(index);
    out.extend(data);
    out
}

#[cfg(test)]
pub mod tests {
    use super::*;

    fn pkg(b: &[u8]) -> Result<Option<Package>, String> {
        package(b, &mut (1 << 30))
    }

    fn s(v: &str) -> (u32, Vec<u8>) {
        (1, format!("{v}\0").into_bytes())
    }
    fn arr(v: &[&str]) -> (u32, Vec<u8>) {
        (v.len() as u32, v.iter().flat_map(|x| format!("{x}\0").into_bytes()).collect())
    }
    fn ints(v: &[u32]) -> (u32, Vec<u8>) {
        (v.len() as u32, v.iter().flat_map(|x| x.to_be_bytes()).collect())
    }

    /// A header for `name` owning `files` (absolute paths).
    pub fn blob(name: &str, epoch: Option<u32>, files: &[&str]) -> Vec<u8> {
        let mut dirs: Vec<String> = Vec::new();
        let (mut base, mut idx) = (Vec::new(), Vec::new());
        for f in files {
            let (d, b) = f.rsplit_once('/').unwrap();
            let d = format!("{d}/");
            let i = dirs.iter().position(|x| *x == d).unwrap_or_else(|| {
                dirs.push(d.clone());
                dirs.len() - 1
            });
            base.push(b);
            idx.push(i as u32);
        }
        let dirs: Vec<&str> = dirs.iter().map(String::as_str).collect();
        let mut e = vec![];
        let mut add = |tag, ty, (c, d): (u32, Vec<u8>)| e.push((tag, ty, c, d));
        add(NAME, T_STRING, s(name));
        add(VERSION, T_STRING, s("1.2"));
        add(RELEASE, T_STRING, s("3.el9"));
        if let Some(ep) = epoch {
            add(EPOCH, T_INT32, ints(&[ep]));
        }
        add(ARCH, T_STRING, s("x86_64"));
        add(REQUIRENAME, T_STRING_ARRAY, arr(&["glibc", "/bin/sh", "rpmlib(CompressedFileNames)"]));
        if !files.is_empty() {
            add(DIRINDEXES, T_INT32, ints(&idx));
            add(BASENAMES, T_STRING_ARRAY, arr(&base));
            add(DIRNAMES, T_STRING_ARRAY, arr(&dirs));
        }
        build(&e)
    }

    #[test]
    fn reads_name_evr_arch_files_and_requires() {
        let p = pkg(&blob("bash", Some(2), &["/usr/bin/bash", "/usr/bin/sh", "/etc/skel/.bashrc"])).unwrap().unwrap();
        assert_eq!((p.name.as_str(), p.version.as_str(), p.arch.as_str()), ("bash", "2:1.2-3.el9", "x86_64"));
        assert_eq!(p.paths, ["/usr/bin/bash", "/usr/bin/sh", "/etc/skel/.bashrc"]);
        assert_eq!(p.depends, ["glibc"]);
        // A `%ghost` file and one not installed (`nodocs`) are not the package's files on disk.
        let mut e = vec![
            (NAME, T_STRING, 1, b"shadow\0".to_vec()),
            (FILESTATES, T_CHAR, 3, vec![0, 2, 0]),
            (DIRINDEXES, T_INT32, 3, [0u32, 1, 0].iter().flat_map(|x| x.to_be_bytes()).collect()),
            (BASENAMES, T_STRING_ARRAY, 3, b"useradd\0README\0lastlog\0".to_vec()),
            (DIRNAMES, T_STRING_ARRAY, 2, b"/usr/sbin/\0/usr/share/doc/shadow/\0".to_vec()),
            (FILEFLAGS, T_INT32, 3, [0u32, 2, 1 << 6].iter().flat_map(|x| x.to_be_bytes()).collect()),
        ];
        assert_eq!(pkg(&build(&e)).unwrap().unwrap().paths, ["/usr/sbin/useradd"]);
        e[1].3 = vec![0, 0, 0];
        e[5].3 = vec![0; 12];
        assert_eq!(pkg(&build(&e)).unwrap().unwrap().paths.len(), 3);
        let p = pkg(&blob("empty", None, &[])).unwrap().unwrap();
        assert_eq!(p.version, "1.2-3.el9");
        assert!(p.paths.is_empty());
        assert!(pkg(&blob("gpg-pubkey", None, &[])).unwrap().is_none());
    }

    #[test]
    fn hostile_headers_are_errors_not_panics() {
        let good = blob("bash", Some(1), &["/usr/bin/bash", "/etc/x"]);
        // Every truncation, and every single-byte corruption of the index: never a panic.
        for n in 0..good.len() {
            let _ = pkg(&good[..n]);
        }
        for i in 0..8 + 16 * 9 {
            for v in [0u8, 1, 0x7f, 0xff] {
                let mut b = good.clone();
                b[i] = v;
                let _ = pkg(&b);
            }
        }
        assert!(pkg(&[0, 0]).unwrap_err().contains("shorter than"));
        assert!(pkg(&[0xff; 8]).unwrap_err().contains("out of rpm's limits"));
        assert!(pkg(&[0, 0, 0, 1, 0, 0, 0, 0]).unwrap_err().contains("but the blob is 8 bytes"));
        // Offsets and counts out of range.
        let e = pkg(&build(&[(NAME, T_STRING_ARRAY, 0x7fff_ffff, b"a\0".to_vec())])).unwrap_err();
        assert!(e.contains("claims 2147483647 strings"), "{e}");
        let e = pkg(&build(&[(NAME, T_STRING, 1, b"abc".to_vec())])).unwrap_err();
        assert!(e.contains("runs past the data"), "{e}");
        let mut b = build(&[(NAME, T_STRING, 1, b"a\0".to_vec())]);
        b[8 + 8..8 + 12].copy_from_slice(&99u32.to_be_bytes());
        assert!(pkg(&b).unwrap_err().contains("offset 99 beyond"));
        let e = pkg(&build(&[(NAME, T_STRING, 1, b"a\0".to_vec()), (DIRINDEXES, T_INT32, u32::MAX, vec![0; 4])]))
            .unwrap_err();
        assert!(e.contains("INT32 values"), "{e}");
        let e = pkg(&build(&[
            (NAME, T_STRING, 1, b"a\0".to_vec()),
            (DIRINDEXES, T_INT32, 1, 5u32.to_be_bytes().to_vec()),
            (BASENAMES, T_STRING_ARRAY, 1, b"f\0".to_vec()),
            (DIRNAMES, T_STRING_ARRAY, 1, b"/usr/\0".to_vec()),
        ]))
        .unwrap_err();
        assert!(e.contains("directory index 5"), "{e}");
        let e = pkg(&build(&[
            (NAME, T_STRING, 1, b"a\0".to_vec()),
            (OLDFILENAMES, T_STRING_ARRAY, 1, b"/usr/../../etc\0".to_vec()),
        ]))
        .unwrap_err();
        assert!(e.contains("leaves the root"), "{e}");
        // Shared directory names cannot expand past the budget.
        let many = blob("big", None, &["/usr/share/a", "/usr/share/b", "/usr/share/c"]);
        let mut budget = 2 * (12 + PATH_COST);
        assert!(package(&many, &mut budget).unwrap_err().contains("MiB of paths"));
        assert!(pkg(&build(&[(VERSION, T_STRING, 1, b"1\0".to_vec())])).unwrap_err().contains("NAME"));
    }
}
