//! Peak memory of `rebuild -p strict` on a layer of many entries (issue #24, "64 MiB on any
//! layer"): the debian fixture, then a gzip layer of tiny files written by
//! integration/vendor-image.py, rebuilt layout to layout under GNU `time -v`. Memory, unlike
//! time, is deterministic enough to assert.

use crate::common::*;
use std::process::Command;

/// Peak RSS (KiB) of `harden rebuild -q --no-cache -p strict` on the debian fixture plus a
/// layer of `entries` tiny files; the rebuild must succeed and print the result by digest.
fn strict_peak_kib(entries: usize) -> u64 {
    let tmp = tempdir("memory");
    let src = tmp.path().join("src");
    let base = fixture("debian").oci_ref();
    let gen = integration_dir().join("vendor-image.py");
    run_ok(Command::new(require_tool("python3")).arg(&gen).args(["many", &base, &entries.to_string()]).arg(&src));
    let report = tmp.path().join("time.txt");
    let out = run_ok(
        Command::new(require_tool("time"))
            .arg("-v")
            .arg("-o")
            .arg(&report)
            .arg(harden_bin())
            .args(["rebuild", "-q", "--no-cache", "-p", "strict"])
            .arg(format!("oci:{}:vendor", src.display()))
            .arg(format!("oci:{}:hard", tmp.path().join("dst").display())),
    );
    assert!(stdout_str(&out).contains("@sha256:"), "{}", dump(&out));
    let text = std::fs::read_to_string(&report).unwrap();
    let kib = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in GNU time's report:\n{text}"));
    eprintln!("[memory] strict on debian + {entries} entries: peak RSS {kib} KiB");
    kib
}

/// The entry count (62k in the vendor image's second layer): 64 MiB.
#[test]
fn memory_strict_on_a_60k_entry_layer_stays_under_64_mib() {
    let kib = strict_peak_kib(60_000);
    assert!(kib <= 64 << 10, "peak RSS {kib} KiB > 64 MiB");
}

/// Beyond the size the peak grows with the entries, by a bounded amount each (the
/// scan's index: an 80-byte entry, its name and a tiny file's prefix; 8 bytes in each of the two
/// merged views): measured between 60,000 and 250,000 entries, about 180 bytes an entry
/// (300 before the merged view became a sorted index and `EntryInfo` shrank), and 68 MiB in
/// all at 250,000 (95 MiB before). Not a constant: the index is in memory, not on disk.
#[test]
fn memory_strict_on_a_250k_entry_layer_grows_under_224_bytes_an_entry() {
    let (small, big) = (60_000u64, 250_000u64);
    let (a, b) = (strict_peak_kib(small as usize), strict_peak_kib(big as usize));
    let per_entry = (b.saturating_sub(a) << 10) / (big - small);
    eprintln!("[memory] {per_entry} bytes of peak RSS an entry between {small} and {big} entries");
    assert!(per_entry <= 224, "{per_entry} bytes an entry (peak RSS {a} KiB at {small}, {b} KiB at {big})");
    assert!(b <= 80 << 10, "peak RSS {b} KiB > 80 MiB at {big} entries");
}
