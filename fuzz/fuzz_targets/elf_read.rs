//! Arbitrary bytes as an ELF file: its dynamic section read as the scan reads it (a head, then
//! the rest in pieces), and the same bytes as an executable of a layer, scanned. Errors and
//! "not ELF" are fine; panics, hangs and memory beyond the caps (`DT_NEEDED`,
//! `DT_RUNPATH`/`DT_RPATH` entries and bytes) are not.
#![no_main]

use harden::layer::{elf, Limits};
use harden::scan;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // As the scan reads a file: a first piece, then what the reader asks for.
    let head = data.len().min(4096);
    let mut at = head;
    let deps = elf::read_deps(&data[..head], data.len() as u64, |n| {
        let end = at.saturating_add(n as usize).min(data.len());
        let v = data[at..end].to_vec();
        at = end;
        Ok(v)
    });
    if let Ok(Some(d)) = deps {
        assert!(d.needed.len() <= elf::MAX_NEEDED);
        assert!(d.runpath.len() + d.rpath.len() <= elf::MAX_SEARCH_DIRS);
        let _ = d.kept_bytes();
    }
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o755);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, "usr/bin/app", data).expect("in memory");
    let layer = b.into_inner().expect("in memory");
    let _ = scan::scan_layer(&layer[..], None, None, &Limits::new(64 << 20, 0, 100_000));
});
