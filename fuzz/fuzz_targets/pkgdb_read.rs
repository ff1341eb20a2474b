//! Arbitrary bytes as the text of dpkg and apk databases, read as harden reads them from an
//! image: the same bytes as `var/lib/dpkg/status`, an `info/<pkg>.list` and `.md5sums`, a
//! distroless `status.d/` stanza file and its md5sums, and apk's `installed` and `world`, all in
//! one layer; then the edits that follow a removal. Also each format's parser alone, with its
//! writer (what parses must write back). Errors are fine; panics, hangs and memory beyond a
//! small multiple of the input are not.
#![no_main]

use harden::fs::FinalFs;
use harden::layer::Limits;
use harden::pkgdb::{self, apk, dpkg};
use harden::scan;
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeSet;

/// A plain tar holding `data` under each database path.
fn layer(data: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for name in [
        "var/lib/dpkg/status",
        "var/lib/dpkg/info/a.list",
        "var/lib/dpkg/info/a.md5sums",
        "var/lib/dpkg/status.d/a",
        "var/lib/dpkg/status.d/a.md5sums",
        "lib/apk/db/installed",
        "etc/apk/world",
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, data).expect("in memory");
    }
    b.into_inner().expect("in memory")
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(st) = dpkg::parse("status", text) {
            for s in &st {
                let _ = (s.depends(), s.conffiles(), s.installed());
            }
            let _ = dpkg::write(&st);
        }
        if let Ok(pkgs) = apk::parse("installed", text) {
            let _ = apk::write(&pkgs);
        }
    }
    let limits = Limits::new(64 << 20, 0, 100_000);
    let Ok(index) = scan::scan_layer(&layer(data)[..], None, None, &limits) else { return };
    let fs = FinalFs::build(vec![index]);
    if let Ok(dbs) = pkgdb::load(&fs) {
        for db in &dbs {
            let all: BTreeSet<usize> = (0..db.packages.len()).collect();
            let _ = db.edit(&all, &|p| p.len() % 2 == 0);
        }
    }
});
