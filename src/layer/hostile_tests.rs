//! Crafted hostile layers through the scan and the rewrite: each gets a clear error or the
//! documented normalisation, never a panic, a hang or unbounded memory.
//!
//! Owns: those unit tests. Must not: depend on tools outside the crate (the Go oracle is the
//! integration tests' and the fuzzers').

use super::codec::{Encoder, OutputCodec};
use super::tar::{Kind, MAX_META, MAX_NAME};
use super::Limits;
use crate::fs::FinalFs;
use crate::plan::{self, LayerPlan};
use crate::profile;
use crate::rewrite::rewrite_layer;
use crate::scan::scan_layer;
use std::io::{Read, Write};

/// One raw tar entry with the name and link written as given (`tar::Builder` refuses `..`).
fn raw(out: &mut Vec<u8>, name: &str, kind: u8, mode: u32, data: &[u8], link: &str) {
    let mut h = tar::Header::new_ustar();
    {
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    h.set_entry_type(tar::EntryType::new(kind));
    h.set_mode(mode);
    h.set_size(data.len() as u64);
    h.set_mtime(1_700_000_000);
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

/// A PAX `x` block with one record of `value_len` bytes.
fn pax(out: &mut Vec<u8>, key: &str, value_len: usize) {
    super::tar::TarWriter::new(out).write_pax(&[(key.to_string(), vec![b'a'; value_len])]).unwrap();
}

fn end(mut t: Vec<u8>) -> Vec<u8> {
    t.extend_from_slice(&[0; 1024]);
    t
}

fn gz(t: &[u8]) -> Vec<u8> {
    let mut e = Encoder::new(OutputCodec::Gzip(6), Vec::new()).unwrap();
    e.write_all(t).unwrap();
    e.finish().unwrap()
}

fn zst(t: &[u8]) -> Vec<u8> {
    let mut e = Encoder::new(OutputCodec::Zstd(3), Vec::new()).unwrap();
    e.write_all(t).unwrap();
    e.finish().unwrap()
}

fn scan(blob: &[u8]) -> std::io::Result<crate::scan::LayerIndex> {
    scan_layer(blob, None, None, &Limits::default())
}

fn rewrite(blob: &[u8], plan: &LayerPlan) -> std::io::Result<Vec<u8>> {
    rewrite_layer(
        std::sync::Arc::new(blob.to_vec()),
        || Ok(Vec::new()),
        plan,
        crate::rewrite::Settings::new(OutputCodec::Gzip(6)),
        &Limits::default(),
    )
    .map(|(o, _)| o)
}

/// (raw stored name, kind, mode, data) of every entry of a (compressed) layer.
fn stored(blob: &[u8]) -> Vec<(String, Kind, u32, Vec<u8>)> {
    super::testdata::entries(blob)
        .into_iter()
        .map(|(e, data)| {
            let m = &e.meta[512.min(e.meta.len())..];
            let m = &m[..m.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1)];
            let name = super::tar::parse_pax(m)
                .ok()
                .and_then(|p| {
                    p.into_iter().find(|(k, _)| k == "path").map(|(_, v)| String::from_utf8_lossy(&v).into_owned())
                })
                .unwrap_or_else(|| String::from_utf8_lossy(&e.header.path_bytes()).into_owned());
            (name, e.kind, e.mode(), data)
        })
        .collect()
}

fn msg(r: std::io::Result<impl std::fmt::Debug>) -> String {
    match r {
        Ok(v) => panic!("a hostile layer was accepted: {v:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn escaping_names_are_flagged_and_rewritten_inside_the_root() {
    let mut t = Vec::new();
    raw(&mut t, "etc/", b'5', 0o755, b"", "");
    raw(&mut t, "../../etc/cron.d/evil", b'0', 0o644, b"* * * * * root sh\n", "");
    raw(&mut t, "/abs/file", b'0', 0o644, b"x", "");
    raw(&mut t, "app/ok", b'0', 0o644, b"ok", "");
    raw(&mut t, "app/hard", b'1', 0o644, b"", "../../etc/shadow");
    let blob = gz(&end(t));
    let idx = scan(&blob).unwrap();
    let esc: Vec<(&str, bool)> = idx.entries.iter().map(|e| (e.path, e.escapes)).collect();
    assert_eq!(
        esc,
        vec![("etc", false), ("etc/cron.d/evil", true), ("abs/file", true), ("app/ok", false), ("app/hard", true)]
    );
    assert_eq!(idx.entries.at(4).link(), Some("etc/shadow"));

    // Even a profile that changes nothing rewrites the layer, with the names inside the root.
    let fs = FinalFs::build(vec![idx]);
    let p = plan::plan(&fs, &profile::load(&["passthrough".into()]).unwrap());
    assert!(!p.layers[0].is_unchanged());
    let out = rewrite(&blob, &p.layers[0]).unwrap();
    let names: Vec<String> = stored(&out).into_iter().map(|e| e.0).collect();
    assert_eq!(names, vec!["etc/", "etc/cron.d/evil", "abs/file", "app/ok", "app/hard"]);
    let back = scan(&out).unwrap();
    assert!(back.entries.iter().all(|e| !e.escapes), "{:?}", back.entries);
    assert_eq!(back.entries.at(4).link(), Some("etc/shadow"));
    assert_eq!(stored(&out)[1].3, b"* * * * * root sh\n");
}

#[test]
fn a_symlink_out_of_the_root_and_an_entry_through_it_are_reported_never_followed() {
    let mut t = Vec::new();
    raw(&mut t, "etc/passwd", b'0', 0o644, b"root:x:0:0::/root:/bin/sh\n", "");
    raw(&mut t, "evil", b'2', 0o777, b"", "../../../../../etc");
    raw(&mut t, "evil/passwd", b'0', 0o644, b"pwned::0:0::/:/bin/sh\n", "");
    let fs = FinalFs::build(vec![scan(&gz(&end(t))).unwrap()]);
    assert_eq!(fs.through_symlink.len(), 1);
    assert_eq!(fs.entry(fs.through_symlink[0].0).path, "evil/passwd");
    // Lookups never leave the root; and as containerd resolves the parent within the root
    // (`fs.RootPath`), the entry written through the link lands on /etc/passwd, as in the
    // container. The scan kept no contents of it (by its stored name it is no account file):
    // that is said, naming it.
    assert_eq!(fs.resolve("/evil/passwd", true).as_deref(), Some("etc/passwd"));
    assert_eq!(fs.placed_path(fs.through_symlink[0].0), "etc/passwd");
    assert_eq!(fs.get("etc/passwd").map(|(l, _)| l.entry), Some(2));
    assert!(fs.prefix("/etc/passwd").is_none());
    assert!(
        fs.unpack_notes.iter().any(|n| n.contains("/evil/passwd") && n.contains("/etc/passwd")),
        "{:?}",
        fs.unpack_notes
    );
}

#[test]
fn duplicate_entries_the_later_wins_and_the_rewrite_keeps_both() {
    let mut t = Vec::new();
    raw(&mut t, "usr/bin/tool", b'0', 0o755, b"old", "");
    raw(&mut t, "usr/bin/other", b'0', 0o755, b"o", "");
    raw(&mut t, "usr/bin/tool", b'0', 0o4755, b"new", "");
    let blob = gz(&end(t));
    let fs = FinalFs::build(vec![scan(&blob).unwrap()]);
    assert_eq!(fs.get("usr/bin/tool").unwrap().1.mode, 0o4755, "the later entry wins, as on extraction");
    // baseline strips the setuid bit the final entry has: both copies get the new mode, both
    // stay (byte fidelity), in order, so extraction still ends with the later one.
    let p = plan::plan(&fs, &profile::load(&["baseline".into()]).unwrap());
    let out = rewrite(&blob, &p.layers[0]).unwrap();
    let got: Vec<(String, u32, Vec<u8>)> = stored(&out).into_iter().map(|e| (e.0, e.2, e.3)).collect();
    assert_eq!(
        got,
        vec![
            ("usr/bin/tool".into(), 0o755, b"old".to_vec()),
            ("usr/bin/other".into(), 0o755, b"o".to_vec()),
            ("usr/bin/tool".into(), 0o755, b"new".to_vec()),
        ]
    );
    // A removal drops every copy.
    let mut lp = LayerPlan::default();
    lp.changes.entry("usr/bin/tool".into()).or_default().remove = true;
    let names: Vec<String> = stored(&rewrite(&blob, &lp).unwrap()).into_iter().map(|e| e.0).collect();
    assert_eq!(names, vec!["usr/bin/other"]);
}

#[test]
fn enormous_pax_headers_and_names_are_refused() {
    // One 2 MiB PAX record.
    let mut t = Vec::new();
    pax(&mut t, "comment", 2 << 20);
    raw(&mut t, "a", b'0', 0o644, b"", "");
    let e = msg(scan(&gz(&end(t.clone()))));
    assert!(e.contains("limit"), "{e}");
    assert!(msg(rewrite(&gz(&end(t)), &LayerPlan::default())).contains("limit"));

    // A chain of PAX blocks, each under the per-block limit, over the total.
    let mut t = Vec::new();
    for _ in 0..5 {
        pax(&mut t, "comment", (MAX_META - 1024) as usize);
    }
    raw(&mut t, "a", b'0', 0o644, b"", "");
    assert!(msg(scan(&gz(&end(t)))).contains("metadata blocks before one entry exceed"));

    // A name longer than PATH_MAX through PAX.
    let mut t = Vec::new();
    pax(&mut t, "path", MAX_NAME + 1);
    raw(&mut t, "a", b'0', 0o644, b"", "");
    assert!(msg(scan(&gz(&end(t)))).contains("PATH_MAX"));

    // A PAX size that is not a number: the entry cannot be framed.
    let mut t = Vec::new();
    super::tar::TarWriter::new(&mut t).write_pax(&[("size".to_string(), b"1k".to_vec())]).unwrap();
    raw(&mut t, "a", b'0', 0o644, b"", "");
    assert!(msg(scan(&gz(&end(t)))).contains("PAX size record `1k` is not a number"));
}

#[test]
fn header_only_entries_carry_no_data_whatever_size_they_declare() {
    // POSIX, GNU tar, Go and CPython: no data follows a directory (or link, device, FIFO), so
    // the next header comes at once. Skipping the 1024 declared bytes would hide `sbin/hidden`
    // from the scan (and so from the plan and the audit) while every unpacker creates it.
    let mut t = Vec::new();
    raw(&mut t, "sbin", b'5', 0o755, b"", "");
    let dir_header = t.len() - 512;
    let mut h = tar::Header::from_byte_slice(&t[dir_header..]).clone();
    h.set_size(1024);
    h.set_cksum();
    t[dir_header..].copy_from_slice(h.as_bytes());
    raw(&mut t, "sbin/hidden", b'0', 0o4755, b"suid", "");
    raw(&mut t, "z", b'0', 0o644, &[b'z'; 1024], "");
    let idx = scan(&gz(&end(t))).unwrap();
    let got: Vec<(&str, u64)> = idx.entries.iter().map(|e| (e.path, e.size)).collect();
    assert_eq!(got, vec![("sbin", 0), ("sbin/hidden", 4), ("z", 1024)]);

    // A PAX key with a NUL byte is refused (as bsdtar and GNU tar do); PAX blocks with no entry
    // after them end the archive (as GNU tar and Go do).
    let mut t = Vec::new();
    super::tar::TarWriter::new(&mut t).write_pax(&[("SCHILY.xattr.a\0b".to_string(), b"v".to_vec())]).unwrap();
    raw(&mut t, "a", b'0', 0o644, b"", "");
    assert!(msg(scan(&gz(&end(t)))).contains("NUL"));
    let mut t = Vec::new();
    raw(&mut t, "a", b'0', 0o644, b"", "");
    pax(&mut t, "path", 10);
    assert_eq!(scan(&gz(&t)).unwrap().entries.len(), 1);
    assert_eq!(scan(&gz(&end(t))).unwrap().entries.len(), 1);
}

#[test]
fn a_pax_size_overrides_the_header_as_every_reader_does() {
    // Go's pax-pos-size-file.tar: header 684, PAX 999. GNU tar, bsdtar and Go frame it by 999.
    let mut t = Vec::new();
    super::tar::TarWriter::new(&mut t).write_pax(&[("size".to_string(), b"999".to_vec())]).unwrap();
    let mut body = vec![b'x'; 999];
    raw(&mut t, "a", b'0', 0o644, &body[..684], "");
    t.truncate(t.len() - 512 * 2); // drop the 684 bytes (2 blocks) the header framed
    body.resize(999usize.div_ceil(512) * 512, 0);
    t.extend_from_slice(&body);
    raw(&mut t, "b", b'0', 0o644, b"after", "");
    let blob = gz(&end(t));
    let idx = scan(&blob).unwrap();
    let got: Vec<(&str, u64)> = idx.entries.iter().map(|e| (e.path, e.size)).collect();
    assert_eq!(got, vec![("a", 999), ("b", 5)]);
    // Passed through unchanged, and rewritten (its header rebuilt) alike.
    let fs = FinalFs::build(vec![idx]);
    let mut p = plan::plan(&fs, &profile::load(&["passthrough".into()]).unwrap()).layers.remove(0);
    let same = super::testdata::entries(&rewrite(&blob, &p).unwrap());
    p.changes.insert("a".into(), plan::EntryChange { mode: Some(0o600), ..Default::default() });
    let changed = super::testdata::entries(&rewrite(&blob, &p).unwrap());
    for out in [same, changed] {
        let got: Vec<(&str, usize, &[u8])> = out.iter().map(|(e, d)| (&*e.path, d.len(), &d[..3])).collect();
        assert_eq!(got, vec![("a", 999, &b"xxx"[..]), ("b", 5, &b"aft"[..])]);
    }
}

#[test]
fn truncated_and_corrupt_gzip_and_zstd_are_errors() {
    let mut t = Vec::new();
    for i in 0..200 {
        raw(&mut t, &format!("f{i}"), b'0', 0o644, format!("content {i} ").repeat(50).as_bytes(), "");
    }
    let t = end(t);
    for (name, blob) in [("gzip", gz(&t)), ("zstd", zst(&t))] {
        assert!(scan(&blob).is_ok(), "{name}");
        for cut in [10, blob.len() / 3, blob.len() / 2, blob.len() - 9, blob.len() - 1] {
            let e = msg(scan(&blob[..cut]));
            assert!(!e.is_empty(), "{name} cut at {cut}");
            assert!(rewrite(&blob[..cut], &LayerPlan::default()).is_err(), "{name} cut at {cut}");
        }
        for at in [20, blob.len() / 2, blob.len() - 6] {
            let mut bad = blob.clone();
            bad[at] ^= 0x55;
            assert!(scan(&bad).is_err(), "{name} with byte {at} flipped");
            assert!(rewrite(&bad, &LayerPlan::default()).is_err(), "{name} with byte {at} flipped");
        }
        // Garbage after the stream.
        let mut trailing = blob.clone();
        trailing.extend_from_slice(b"garbage after the end");
        assert!(scan(&trailing).is_err() || name == "zstd", "{name} with trailing garbage");
    }
    // A tar cut inside a header or inside data, uncompressed.
    assert!(msg(scan(&t[..700])).contains("truncated"));
    assert!(msg(scan(&t[..1000])).contains("truncated"));
}

/// A tar holding one file of `size` zero bytes, compressed with `codec`, produced streaming.
fn bomb(codec: OutputCodec, size: u64) -> Vec<u8> {
    let mut e = Encoder::new(codec, Vec::new()).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_path("zeros").unwrap();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_cksum();
    e.write_all(h.as_bytes()).unwrap();
    let chunk = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        e.write_all(&chunk[..n]).unwrap();
        left -= n as u64;
    }
    e.write_all(&[0u8; 1024]).unwrap();
    e.finish().unwrap()
}

#[test]
fn decompression_bombs_stop_at_the_limits() {
    for codec in [OutputCodec::Gzip(9), OutputCodec::Zstd(19)] {
        let b = bomb(codec, 96 << 20);
        assert!(b.len() < 200 << 10, "{codec}: {} bytes", b.len());
        // Size limit.
        let small = Limits::new(8 << 20, 1_000_000, 1000);
        let e = msg(scan_layer(&b[..], None, None, &small));
        assert!(e.contains("--max-layer-size"), "{codec}: {e}");
        let e = msg(rewrite_layer(
            std::sync::Arc::new(b.clone()),
            || Ok(Vec::new()),
            &LayerPlan::default(),
            crate::rewrite::Settings::new(OutputCodec::Gzip(1)),
            &small,
        ));
        assert!(e.contains("--max-layer-size"), "{codec}: {e}");
        // Ratio limit (judged past 64 MiB).
        let ratio = Limits::new(1 << 40, 100, 1000);
        let e = msg(scan_layer(&b[..], None, None, &ratio));
        assert!(e.contains("--max-ratio"), "{codec}: {e}");
        // The defaults let it through: a file of zeros is also what a legitimate layer may hold,
        // and it fits --max-layer-size (the ratio is off unless asked for).
        let ok = Limits::new(1 << 40, super::DEFAULT_MAX_RATIO, 1000);
        assert_eq!(super::DEFAULT_MAX_RATIO, 0);
        assert_eq!(scan_layer(&b[..], None, None, &ok).unwrap().uncompressed_size, (96 << 20) + 512 + 1024);
    }
}

#[test]
fn entry_counts_are_bounded_across_the_run() {
    let mut t = Vec::new();
    for i in 0..30 {
        raw(&mut t, &format!("f{i}"), b'0', 0o644, b"", "");
    }
    let blob = gz(&end(t));
    let limits = Limits::new(1 << 30, 1000, 50);
    scan_layer(&blob[..], None, None, &limits).unwrap();
    // The second layer of the same run shares the budget.
    let e = msg(scan_layer(&blob[..], None, None, &limits.clone()));
    assert!(e.contains("--max-entries"), "{e}");
}

#[test]
fn an_interrupted_run_stops_reading() {
    static FLAG: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let blob = bomb(OutputCodec::Gzip(1), 4 << 20);
    let limits = Limits::default().with_cancel(&FLAG);
    assert!(scan_layer(&blob[..], None, None, &limits).is_ok());
    FLAG.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(msg(scan_layer(&blob[..], None, None, &limits)).contains("interrupted"));
    let mut sink = Vec::new();
    let (_, mut r) = super::codec::limited_decoder(&blob[..], &limits).unwrap();
    assert!(r.read_to_end(&mut sink).is_err());
}

/// A metadata block of type `t` carrying `data` (PAX records for `x`/`g`, a name for `L`).
fn meta_block(out: &mut Vec<u8>, t: u8, data: &[u8]) {
    let mut h = tar::Header::new_ustar();
    h.set_path("PaxHeader").unwrap();
    h.set_entry_type(tar::EntryType::new(t));
    h.set_size(data.len() as u64);
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

/// Recompute a header block's checksum after editing its bytes.
fn resum(b: &mut [u8]) {
    b[148..156].fill(b' ');
    let sum: u32 = b.iter().map(|&c| u32::from(c)).sum();
    b[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

fn records(recs: &[(&str, &[u8])]) -> Vec<u8> {
    super::tar::encode_pax(&recs.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect::<Vec<_>>())
}

/// Each way a layer hid a setuid bash from an earlier harden while Go's archive/tar (which
/// containerd unpacks with) creates it: the scan sees it now, and the baseline rewrite strips
/// the bit in what Go will read.
#[test]
fn framing_as_go_reads_it_shows_the_smuggled_setuid_shell() {
    let bash = |t: &mut Vec<u8>| raw(t, "bin/bash", b'0', 0o4755, b"#!bash\n", "");
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    // Two `x` headers: Go keeps the last one's records only (not the first's `size`).
    let mut t = Vec::new();
    meta_block(&mut t, b'x', &records(&[("size", b"1536")]));
    meta_block(&mut t, b'x', &records(&[("mtime", b"1")]));
    raw(&mut t, "file", b'0', 0o644, b"", "");
    bash(&mut t);
    cases.push(("two x headers", t));
    // `x{size}` then `g`: the `g` is framed by its own size and drops the pending records.
    let mut t = Vec::new();
    meta_block(&mut t, b'x', &records(&[("size", b"1536")]));
    meta_block(&mut t, b'g', &records(&[("comment", b"hi")]));
    bash(&mut t);
    cases.push(("x then g", t));
    // A `\0` type flag on a name ending in `/` is a directory to Go: no data.
    let mut t = Vec::new();
    raw(&mut t, "d/", 0, 0o755, b"", "");
    t[124..136].copy_from_slice(b"00000001000\0");
    t[156] = 0;
    resum(&mut t[..512]);
    bash(&mut t);
    cases.push(("NUL type flag directory declaring data", t));
    // A GNU long name wins over a PAX path in Go.
    let mut t = Vec::new();
    meta_block(&mut t, b'x', &records(&[("path", b"usr/share/doc/x")]));
    meta_block(&mut t, b'L', b"bin/bash\0");
    raw(&mut t, "placeholder", b'0', 0o4755, b"#!bash\n", "");
    cases.push(("GNU long name and PAX path", t));
    // The mode in base-256.
    let mut t = Vec::new();
    bash(&mut t);
    t[100..108].copy_from_slice(&[0x80, 0, 0, 0, 0, 0, 0x09, 0xed]);
    resum(&mut t[..512]);
    cases.push(("base-256 mode", t));
    for (what, t) in cases {
        let blob = gz(&end(t));
        let idx = scan(&blob).unwrap_or_else(|e| panic!("{what}: {e}"));
        let bash = idx.entries.iter().find(|e| e.path == "bin/bash");
        assert_eq!(bash.map(|e| e.mode), Some(0o4755), "{what}: {:?}", idx.entries);
        let fs = FinalFs::build(vec![idx]);
        let p = plan::plan(&fs, &profile::load(&["baseline".into()]).unwrap());
        let out = rewrite(&blob, &p.layers[0]).unwrap();
        let back = scan(&out).unwrap();
        let modes: Vec<(&str, u32)> = back.entries.iter().map(|e| (e.path, e.mode)).collect();
        assert!(modes.contains(&("bin/bash", 0o755)), "{what}: {modes:?}");
        assert!(modes.iter().all(|(_, m)| m & 0o6000 == 0), "{what}: {modes:?}");
    }
}

/// What Go refuses, harden refuses: a PAX path or link target with a NUL, an empty PAX key,
/// NULs inside a PAX block's declared size, a zero block followed by a header, a sparse map
/// that does not add up to the stored data.
#[test]
fn archives_go_refuses_are_refused() {
    let f = |t: &mut Vec<u8>| raw(t, "f", b'0', 0o644, b"x", "");
    let mut cases: Vec<(&str, Vec<u8>, &str)> = Vec::new();
    let mut t = Vec::new();
    meta_block(&mut t, b'x', b"19 path=etc/x\0.txt\n");
    f(&mut t);
    cases.push(("NUL in path", t, "NUL"));
    let mut t = Vec::new();
    meta_block(&mut t, b'x', b"6 =ab\n");
    f(&mut t);
    cases.push(("empty key", t, "empty key"));
    let mut t = Vec::new();
    meta_block(&mut t, b'x', b"9 path=a\n\0\0");
    f(&mut t);
    cases.push(("NULs in the records", t, "PAX record"));
    let mut t = Vec::new();
    f(&mut t);
    t.extend_from_slice(&[0; 512]);
    f(&mut t);
    cases.push(("zero block then header", t, "single zero block"));
    let mut t = Vec::new();
    meta_block(&mut t, b'x', &records(&[("GNU.sparse.map", b"0,100"), ("GNU.sparse.numblocks", b"1")]));
    f(&mut t);
    cases.push(("sparse map past the data", t, "sparse"));
    for (what, t, want) in cases {
        let e = msg(scan(&gz(&end(t))));
        assert!(e.contains(want), "{what}: {e}");
    }
}
