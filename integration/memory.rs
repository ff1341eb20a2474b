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

/// The entry count (62k in the vendor image's second layer): 48 MiB (36 measured, where
/// the rewrite's buffers set the peak).
#[test]
fn memory_strict_on_a_60k_entry_layer_stays_under_48_mib() {
    let kib = strict_peak_kib(60_000);
    assert!(kib <= 48 << 10, "peak RSS {kib} KiB > 48 MiB");
}

/// Beyond the size the peak grows with the entries, by a bounded amount each (the
/// scan's index: a 24-byte packed entry, its name and a tiny file's prefix in the layer's
/// arenas; 8 bytes in each of the two merged views): measured between 60,000 and 250,000
/// entries, about 35 bytes an entry (the rewrite's buffers set the peak at 60,000, the index
/// at 250,000: the slope between them is below the index's ~90), and 42 MiB in all at 250,000
/// (68 before names went into arenas, 95 before the merged view became a sorted index). Not a
/// constant: the index is in memory, not on disk.
#[test]
fn memory_strict_on_a_250k_entry_layer_grows_under_96_bytes_an_entry() {
    let (small, big) = (60_000u64, 250_000u64);
    let (a, b) = (strict_peak_kib(small as usize), strict_peak_kib(big as usize));
    let per_entry = (b.saturating_sub(a) << 10) / (big - small);
    eprintln!("[memory] {per_entry} bytes of peak RSS an entry between {small} and {big} entries");
    assert!(per_entry <= 96, "{per_entry} bytes an entry (peak RSS {a} KiB at {small}, {b} KiB at {big})");
    assert!(b <= 52 << 10, "peak RSS {b} KiB > 52 MiB at {big} entries");
}

/// The bound on any layer, at 500,000 entries: 64 MiB (60 measured; 114 before the
/// index packed its entries). The index sets the peak here: about 90 bytes an entry.
#[test]
fn memory_strict_on_a_500k_entry_layer_stays_under_64_mib() {
    let kib = strict_peak_kib(500_000);
    assert!(kib <= 64 << 10, "peak RSS {kib} KiB > 64 MiB at 500,000 entries");
}
