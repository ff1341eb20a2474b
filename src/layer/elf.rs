//! ELF dynamic linking facts, read while a layer streams past: the class and machine (which
//! library directories the loader searches and which libraries it accepts), and the dynamic
//! section's `DT_NEEDED`, `DT_RUNPATH` and `DT_RPATH`.
//!
//! Hand-written rather than `object` or `goblin`: those parse a whole file held in memory and
//! want the section headers, which sit at the end of the file. Here the file is a stream read
//! once: the program headers come from its start, then only the bytes up to the end of the
//! `PT_DYNAMIC` segment are held — up to [`MAX_HEAD`]; past it, the head and the dynamic segment
//! alone — so memory stays bounded whatever the file's size. What is kept per file is a few names.
//!
//! Owns: reading ELF bytes. Must not: look files up or decide anything.

use std::io;

/// Bytes of a file held at most while reading its dynamic section (its string table normally
/// lies in the first few MiB, before the dynamic segment).
pub const MAX_HEAD: u64 = 16 << 20;
/// Largest dynamic segment read (a real one is a few hundred bytes).
const MAX_DYNAMIC: u64 = 1 << 20;
/// Most `DT_NEEDED` names kept of one file.
pub const MAX_NEEDED: usize = 256;
/// Most `DT_RUNPATH` and `DT_RPATH` entries kept of one file, all together, and most bytes of
/// them: a real file has a handful of short ones; a hostile one (thousands of `a:a:…`) is cut
/// short and marked incomplete.
pub const MAX_SEARCH_DIRS: usize = 64;
pub const MAX_SEARCH_BYTES: usize = 16 << 10;
/// Program headers must lie in the first bytes of the file (they follow the ELF header).
const MAX_PHDRS_END: u64 = 64 << 10;

const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;
const DT_RPATH: u64 = 15;
const DT_RUNPATH: u64 = 29;

/// What the dynamic loader needs to know of one ELF file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ElfDeps {
    /// 64-bit (ELFCLASS64).
    pub is64: bool,
    /// `e_machine` (62 x86-64, 183 AArch64, 3 i386, 40 ARM, …).
    pub machine: u16,
    /// Has a dynamic section (a dynamically linked executable or a shared library).
    pub dynamic: bool,
    /// `DT_NEEDED` names, in order.
    pub needed: Vec<String>,
    /// `DT_RUNPATH` / `DT_RPATH` entries (`$ORIGIN` unexpanded).
    pub runpath: Vec<String>,
    pub rpath: Vec<String>,
    /// The dynamic section could not be read in full (strings past [`MAX_HEAD`], a malformed
    /// file): `needed` may be incomplete, so nothing may be concluded from a name's absence.
    pub incomplete: bool,
}

impl ElfDeps {
    /// Bytes this keeps in memory (for the scan's budget): each string's bytes and its own
    /// header, which for short names is most of it.
    pub fn kept_bytes(&self) -> usize {
        let strings = self.needed.iter().chain(&self.runpath).chain(&self.rpath);
        std::mem::size_of::<ElfDeps>() + strings.map(|s| s.capacity() + std::mem::size_of::<String>()).sum::<usize>()
    }
}

struct Header {
    is64: bool,
    le: bool,
    machine: u16,
    phoff: u64,
    phentsize: u64,
    phnum: u64,
}

fn header(b: &[u8]) -> Option<Header> {
    if b.len() < 52 || &b[..4] != b"\x7fELF" || !matches!(b[4], 1 | 2) || !matches!(b[5], 1 | 2) {
        return None;
    }
    let (is64, le) = (b[4] == 2, b[5] == 1);
    let r = Reader { b, le };
    let machine = r.u16(18)? as u16;
    let (phoff, phentsize, phnum) =
        if is64 { (r.u64(32)?, r.u16(54)?, r.u16(56)?) } else { (r.u32(28)?, r.u16(42)?, r.u16(44)?) };
    Some(Header { is64, le, machine, phoff, phentsize, phnum })
}

struct Reader<'a> {
    b: &'a [u8],
    le: bool,
}

impl Reader<'_> {
    fn u16(&self, o: u64) -> Option<u64> {
        let s: [u8; 2] = self.b.get(usize::try_from(o).ok()?..)?.get(..2)?.try_into().ok()?;
        Some(if self.le { u16::from_le_bytes(s) } else { u16::from_be_bytes(s) } as u64)
    }
    fn u32(&self, o: u64) -> Option<u64> {
        let s: [u8; 4] = self.b.get(usize::try_from(o).ok()?..)?.get(..4)?.try_into().ok()?;
        Some(if self.le { u32::from_le_bytes(s) } else { u32::from_be_bytes(s) } as u64)
    }
    fn u64(&self, o: u64) -> Option<u64> {
        let s: [u8; 8] = self.b.get(usize::try_from(o).ok()?..)?.get(..8)?.try_into().ok()?;
        Some(if self.le { u64::from_le_bytes(s) } else { u64::from_be_bytes(s) })
    }
    fn word(&self, is64: bool, o: u64) -> Option<u64> {
        if is64 {
            self.u64(o)
        } else {
            self.u32(o)
        }
    }
}

/// A program header: (type, file offset, virtual address, size in the file).
fn program_headers(h: &Header, b: &[u8]) -> Option<Vec<(u32, u64, u64, u64)>> {
    let r = Reader { b, le: h.le };
    let mut out = Vec::new();
    for i in 0..h.phnum.min(256) {
        let ph = h.phoff.checked_add(i.checked_mul(h.phentsize)?)?;
        let t = r.u32(ph)? as u32;
        let (off, vaddr, filesz) = if h.is64 {
            (r.u64(ph + 8)?, r.u64(ph + 16)?, r.u64(ph + 32)?)
        } else {
            (r.u32(ph + 4)?, r.u32(ph + 8)?, r.u32(ph + 16)?)
        };
        out.push((t, off, vaddr, filesz));
    }
    Some(out)
}

/// Read the dynamic linking facts of a file of `size` bytes whose first bytes are `head`;
/// `more(n)` reads the file's next `n` bytes (fewer only at its end). Returns None when the
/// file is not ELF. Reads at most to the end of the dynamic segment; the caller skips the rest.
pub fn read_deps(
    head: &[u8],
    size: u64,
    mut more: impl FnMut(u64) -> io::Result<Vec<u8>>,
) -> io::Result<Option<ElfDeps>> {
    let Some(h) = header(head) else { return Ok(None) };
    let mut deps = ElfDeps { is64: h.is64, machine: h.machine, ..Default::default() };
    let mut buf = head.to_vec();
    let phdrs_end = h.phoff.saturating_add(h.phnum.saturating_mul(h.phentsize)).min(size);
    if phdrs_end > MAX_PHDRS_END {
        deps.incomplete = true;
        return Ok(Some(deps));
    }
    if (buf.len() as u64) < phdrs_end {
        let extra = more(phdrs_end - buf.len() as u64)?;
        buf.extend_from_slice(&extra);
    }
    let Some(phdrs) = program_headers(&h, &buf) else {
        deps.incomplete = true;
        return Ok(Some(deps));
    };
    let Some(&(_, dyn_off, _, dyn_size)) = phdrs.iter().find(|p| p.0 == 2) else {
        return Ok(Some(deps)); // statically linked
    };
    deps.dynamic = true;
    let dyn_end = dyn_off.saturating_add(dyn_size);
    if dyn_size > MAX_DYNAMIC || dyn_end > size {
        deps.incomplete = true;
        return Ok(Some(deps));
    }
    // Hold the file up to the end of the dynamic segment, or the head and the segment apart.
    let dynamic: Vec<u8> = if dyn_off <= MAX_HEAD {
        if (buf.len() as u64) < dyn_end {
            let extra = more(dyn_end - buf.len() as u64)?;
            buf.extend_from_slice(&extra);
        }
        match buf.get(dyn_off as usize..dyn_end as usize) {
            Some(d) => d.to_vec(),
            None => {
                deps.incomplete = true;
                return Ok(Some(deps));
            }
        }
    } else {
        if (buf.len() as u64) < MAX_HEAD {
            let extra = more(MAX_HEAD - buf.len() as u64)?;
            buf.extend_from_slice(&extra);
        }
        let mut at = buf.len() as u64;
        while at < dyn_off {
            let chunk = more((dyn_off - at).min(1 << 20))?;
            if chunk.is_empty() {
                break;
            }
            at += chunk.len() as u64;
        }
        more(dyn_size)?
    };
    let r = Reader { b: &dynamic, le: h.le };
    let entry = if h.is64 { 16 } else { 8 };
    let word = if h.is64 { 8 } else { 4 };
    let mut strtab_addr = None;
    let mut refs: Vec<(u64, u64)> = Vec::new();
    let mut o = 0u64;
    while let (Some(tag), Some(val)) = (r.word(h.is64, o), r.word(h.is64, o + word)) {
        match tag {
            DT_NULL => break,
            DT_STRTAB => strtab_addr = Some(val),
            DT_NEEDED | DT_RPATH | DT_RUNPATH => refs.push((tag, val)),
            _ => {}
        }
        o += entry;
    }
    // DT_STRTAB is an address: the load segment holding it gives its file offset.
    let strtab =
        strtab_addr.and_then(|a| phdrs.iter().find(|p| p.0 == 1 && a >= p.2 && a - p.2 < p.3).map(|p| a - p.2 + p.1));
    let Some(strtab) = strtab else {
        deps.incomplete = !refs.is_empty();
        return Ok(Some(deps));
    };
    let mut search_bytes = 0usize;
    for (tag, val) in refs {
        let Some(s) = strtab.checked_add(val).and_then(|at| cstr(&buf, at)) else {
            deps.incomplete = true;
            continue;
        };
        match tag {
            // A real file needs a few dozen; a hostile one is cut short (and marked so).
            DT_NEEDED if deps.needed.len() >= MAX_NEEDED => deps.incomplete = true,
            DT_NEEDED => deps.needed.push(s),
            _ => {
                for dir in s.split(':').filter(|p| !p.is_empty()) {
                    let kept = deps.runpath.len() + deps.rpath.len();
                    if kept >= MAX_SEARCH_DIRS || search_bytes + dir.len() > MAX_SEARCH_BYTES {
                        deps.incomplete = true;
                        break;
                    }
                    search_bytes += dir.len();
                    if tag == DT_RPATH { &mut deps.rpath } else { &mut deps.runpath }.push(dir.to_string());
                }
            }
        }
    }
    Ok(Some(deps))
}

/// The NUL-terminated string at `at` (at most 4096 bytes), if it lies in `b`.
fn cstr(b: &[u8], at: u64) -> Option<String> {
    let s = b.get(usize::try_from(at).ok()?..)?;
    let end = s.iter().take(4096).position(|&c| c == 0)?;
    Some(String::from_utf8_lossy(&s[..end]).into_owned())
}

/// The Debian multiarch triplet for an ELF class and machine, where there is one.
pub fn multiarch(is64: bool, machine: u16) -> Option<&'static str> {
    Some(match (machine, is64) {
        (62, true) => "x86_64-linux-gnu",
        (183, true) => "aarch64-linux-gnu",
        (3, false) => "i386-linux-gnu",
        (40, false) => "arm-linux-gnueabihf",
        (21, true) => "powerpc64le-linux-gnu",
        (22, true) => "s390x-linux-gnu",
        (243, true) => "riscv64-linux-gnu",
        (8, false) => "mipsel-linux-gnu",
        _ => return None,
    })
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A minimal ELF64 little-endian x86-64 shared object: one PT_LOAD mapping the whole file at
    /// address 0x1000, one PT_DYNAMIC, a string table. `pad` bytes of zeros go between the
    /// strings and the dynamic segment (to push it far into the file).
    pub fn elf64(needed: &[&str], runpath: Option<&str>, pad: usize) -> Vec<u8> {
        let mut strtab = vec![0u8];
        let mut offs = Vec::new();
        for n in needed.iter().chain(runpath.iter()) {
            offs.push(strtab.len() as u64);
            strtab.extend_from_slice(n.as_bytes());
            strtab.push(0);
        }
        let strtab_off = 64 + 2 * 56;
        let dyn_off = (strtab_off + strtab.len() + pad).div_ceil(8) * 8;
        let mut dynamic = Vec::new();
        let mut push = |t: u64, v: u64| {
            dynamic.extend_from_slice(&t.to_le_bytes());
            dynamic.extend_from_slice(&v.to_le_bytes());
        };
        for (i, _) in needed.iter().enumerate() {
            push(DT_NEEDED, offs[i]);
        }
        if runpath.is_some() {
            push(DT_RUNPATH, offs[needed.len()]);
        }
        push(DT_STRTAB, 0x1000 + strtab_off as u64);
        push(DT_NULL, 0);
        let total = dyn_off + dynamic.len();
        let mut b = vec![0u8; total];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[6] = 1;
        b[16..18].copy_from_slice(&3u16.to_le_bytes()); // ET_DYN
        b[18..20].copy_from_slice(&62u16.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&2u16.to_le_bytes());
        let ph = |b: &mut Vec<u8>, at: usize, t: u32, off: u64, vaddr: u64, size: u64| {
            b[at..at + 4].copy_from_slice(&t.to_le_bytes());
            b[at + 8..at + 16].copy_from_slice(&off.to_le_bytes());
            b[at + 16..at + 24].copy_from_slice(&vaddr.to_le_bytes());
            b[at + 32..at + 40].copy_from_slice(&size.to_le_bytes());
        };
        ph(&mut b, 64, 1, 0, 0x1000, total as u64);
        ph(&mut b, 120, 2, dyn_off as u64, 0x1000 + dyn_off as u64, dynamic.len() as u64);
        b[strtab_off..strtab_off + strtab.len()].copy_from_slice(&strtab);
        b[dyn_off..].copy_from_slice(&dynamic);
        b
    }

    /// Read `file` as the scan does: a head of `head` bytes, then on demand.
    pub fn deps_of(file: &[u8], head: usize) -> Option<ElfDeps> {
        let mut at = head.min(file.len());
        read_deps(&file[..at], file.len() as u64, |n| {
            let end = (at + n as usize).min(file.len());
            let v = file[at..end].to_vec();
            at = end;
            Ok(v)
        })
        .unwrap()
    }

    #[test]
    fn reads_needed_and_runpath_from_a_crafted_elf() {
        let b = elf64(&["libc.so.6", "libfoo.so.1"], Some("$ORIGIN/../lib:/opt/x"), 0);
        let d = deps_of(&b, 64).unwrap();
        assert_eq!(d.needed, vec!["libc.so.6", "libfoo.so.1"]);
        assert_eq!(d.runpath, vec!["$ORIGIN/../lib", "/opt/x"]);
        assert!(d.dynamic && d.is64 && !d.incomplete);
        assert_eq!(d.machine, 62);
        // The same with the dynamic segment past MAX_HEAD: the head and the segment are read
        // apart, and the strings (in the head) still resolve.
        let far = elf64(&["libz.so.1"], None, MAX_HEAD as usize + 4096);
        assert_eq!(deps_of(&far, 4096).unwrap().needed, vec!["libz.so.1"]);
        // A hostile number of names is cut short, and says so.
        let many: Vec<String> = (0..300).map(|i| format!("l{i}.so")).collect();
        let many = elf64(&many.iter().map(String::as_str).collect::<Vec<_>>(), None, 0);
        let d = deps_of(&many, 64).unwrap();
        assert_eq!((d.needed.len(), d.incomplete), (MAX_NEEDED, true));
        // So is a hostile search path (8,192 `a:` entries): kept to MAX_SEARCH_DIRS, counted
        // with the strings' own headers.
        let many_dirs = "a:".repeat(2048);
        let b = elf64(&["libc.so.6"], Some(&many_dirs[..4095]), 0);
        let d = deps_of(&b, 64).unwrap();
        assert_eq!((d.runpath.len(), d.incomplete), (MAX_SEARCH_DIRS, true));
        assert!(d.kept_bytes() >= MAX_SEARCH_DIRS * std::mem::size_of::<String>(), "{}", d.kept_bytes());
        // Not ELF, or truncated: no facts, no panic.
        assert_eq!(deps_of(b"#!/bin/sh\n", 10), None);
        for cut in [60, 100, 200, b.len() - 1] {
            let _ = deps_of(&b[..cut], cut.min(64));
        }
    }

    #[test]
    fn reads_a_real_elf_of_the_host() {
        // /usr/bin/true of the build machine: a dynamically linked executable that needs libc.
        let b = std::fs::read("/usr/bin/true").expect("/usr/bin/true (coreutils) is on every build machine");
        let d = deps_of(&b, 1024).unwrap();
        assert!(d.dynamic && !d.incomplete, "{d:?}");
        assert!(d.needed.iter().any(|n| n.starts_with("libc.so")), "{d:?}");
    }
}
