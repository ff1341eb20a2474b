//! Tar framing = Go's `archive/tar` (the reader containerd, moby and containers/storage unpack
//! layers with). A differential oracle: `integration/golist` (standard library only, built with
//! Debian's `golang-go`) and `harden tar-list` print the same JSON document for an archive —
//! each entry's name, type, size, mode, uid, gid, link target and where its data starts — or
//! harden refuses the archive. Run over every archive of the peer corpora (Go's
//! `archive/tar/testdata`, CPython's tarfile tests) and a crafted set of framing cases.
//!
//! And the smuggling layers of issue 20 (a setuid shell Go unpacks but an earlier harden did not
//! see) as images: `check` reports the setuid shell, and after `rebuild -p strict` Go's reading
//! of every result layer holds no setuid file and no shell, or harden refused the layer (exit 1,
//! one line naming it).

use crate::common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Build integration/golist once per test run, offline (no modules, GOCACHE under target/).
pub fn golist_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let go = require_tool("go");
        let work = repo_root().join("target/golist");
        let bin = work.join("golist");
        let out = Command::new(go)
            .args(["build", "-o"])
            .arg(&bin)
            .arg(".")
            .current_dir(integration_dir().join("golist"))
            .env("GOCACHE", work.join("cache"))
            .env("GOPATH", work.join("gopath"))
            .env("GO111MODULE", "off")
            .env("GOFLAGS", "")
            .env("CGO_ENABLED", "0")
            .output()
            .expect("running go build");
        assert!(out.status.success(), "go build integration/golist failed:\n{}", dump(&out));
        bin
    })
    .clone()
}

/// Go's listing of a plain tar file.
pub fn go_list(tar: &Path) -> Value {
    let out = run_with_timeout(Command::new(golist_bin()).arg(tar));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("golist printed no JSON ({e}):\n{}", dump(&out)))
}

/// harden's listing of a plain tar file (`harden tar-list`).
pub fn harden_list(tar: &Path) -> Value {
    let out = harden(&[std::ffi::OsStr::new("tar-list"), tar.as_os_str()]);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("harden tar-list printed no JSON ({e}):\n{}", dump(&out)));
    assert_eq!(out.status.code(), Some(if v["error"].is_null() { 0 } else { 1 }), "{}", dump(&out));
    v
}

/// Agreement, or a refusal by harden; anything else is a disagreement, described.
pub enum Verdict {
    Agree(usize),
    /// harden refuses (Go refuses too when the flag is set).
    Refused(String, bool),
    Disagree(String),
}

pub fn compare(tar: &Path) -> Verdict {
    let (go, hd) = (go_list(tar), harden_list(tar));
    if let Some(err) = hd["error"].as_str() {
        return Verdict::Refused(err.to_string(), !go["error"].is_null());
    }
    if let Some(err) = go["error"].as_str() {
        return Verdict::Disagree(format!("Go fails ({err}), harden reads {} entries", hd["entries"]));
    }
    if go["entries"] != hd["entries"] {
        return Verdict::Disagree(format!("Go reads {}\nharden reads {}", go["entries"], hd["entries"]));
    }
    Verdict::Agree(go["entries"].as_array().map_or(0, Vec::len))
}

// ------------------------------------------------------------------ crafted archives

/// A header block: ustar, name and link as given, octal fields, checksummed after `tweak`.
fn hdr(name: &[u8], typeflag: u8, size: u64, mode: u32, link: &[u8], tweak: impl FnOnce(&mut [u8; 512])) -> Vec<u8> {
    let mut b = [0u8; 512];
    b[..name.len()].copy_from_slice(name);
    b[100..108].copy_from_slice(format!("{mode:07o}\0").as_bytes());
    b[108..116].copy_from_slice(b"0000000\0");
    b[116..124].copy_from_slice(b"0000000\0");
    b[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    b[136..148].copy_from_slice(b"14533444000\0");
    b[156] = typeflag;
    b[157..157 + link.len()].copy_from_slice(link);
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    tweak(&mut b);
    b[148..156].fill(b' ');
    let sum: u32 = b.iter().map(|&c| u32::from(c)).sum();
    b[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    b.to_vec()
}

fn pad(mut v: Vec<u8>) -> Vec<u8> {
    v.resize(v.len().div_ceil(512) * 512, 0);
    v
}

/// A regular file with its data.
fn file(name: &str, mode: u32, data: &[u8]) -> Vec<u8> {
    let mut v = hdr(name.as_bytes(), b'0', data.len() as u64, mode, b"", |_| {});
    v.extend_from_slice(&pad(data.to_vec()));
    v
}

/// PAX records, encoded (harden's encoder: only input; Go judges what it reads).
fn records(recs: &[(&str, &[u8])]) -> Vec<u8> {
    harden::layer::tar::encode_pax(&recs.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect::<Vec<_>>())
}

/// A metadata block of type `t` (`x`, `g`, `L`, `K`) carrying `data`.
fn meta(t: u8, data: &[u8]) -> Vec<u8> {
    let mut v = hdr(b"././@meta", t, data.len() as u64, 0o644, b"", |_| {});
    v.extend_from_slice(&pad(data.to_vec()));
    v
}

fn pax(recs: &[(&str, &[u8])]) -> Vec<u8> {
    meta(b'x', &records(recs))
}

const BASH: &[u8] = b"#!/bin/bash-is-an-elf-really\n";

fn setuid_bash() -> Vec<u8> {
    file("bin/bash", 0o4755, BASH)
}

fn end(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut v = parts.concat();
    v.extend_from_slice(&[0; 1024]);
    v
}

/// A base-256 numeric field of `len` bytes.
fn b256(len: usize, x: u64) -> Vec<u8> {
    let mut f = vec![0u8; len];
    for (i, byte) in x.to_be_bytes().iter().rev().enumerate() {
        f[len - 1 - i] = *byte;
    }
    f[0] |= 0x80;
    f
}

/// The layers that hid a setuid shell from an earlier harden (named), each an archive Go unpacks
/// with `/bin/bash` mode 4755.
pub fn smuggling_cases() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        // Two `x` headers: Go keeps only the last one's records; the first's `size` does not
        // frame the file, so the bash header is an entry, not the file's data.
        (
            "two-x-headers",
            end(&[pax(&[("size", b"1536")]), pax(&[("mtime", b"1")]), file("file", 0o644, b""), setuid_bash()]),
        ),
        // `x{size}` then `g`: Go frames the `g` by its own size and drops the pending records.
        ("x-then-g", end(&[pax(&[("size", b"1536")]), meta(b'g', &records(&[("comment", b"hi")])), setuid_bash()])),
        // A PAX size on a symlink: it carries no data in Go, the next header follows at once.
        (
            "pax-size-on-symlink",
            end(&[pax(&[("size", b"512")]), hdr(b"lnk", b'2', 0, 0o777, b"target", |_| {}), setuid_bash()]),
        ),
        // A `\0` type flag on a name ending in `/`: a directory to Go, no data.
        ("nul-type-dir", end(&[hdr(b"d/", 0, 512, 0o755, b"", |_| {}), setuid_bash()])),
        // The mode in base-256: 04755 to Go.
        (
            "base256-mode",
            end(&[{
                let mut v = hdr(b"bin/bash", b'0', BASH.len() as u64, 0, b"", |b| {
                    b[100..108].copy_from_slice(&b256(8, 0o4755))
                });
                v.extend_from_slice(&pad(BASH.to_vec()));
                v
            }]),
        ),
        // A GNU long name and a PAX path: Go takes the GNU name.
        (
            "gnu-long-name-wins",
            end(&[pax(&[("path", b"usr/share/doc/x")]), meta(b'L', b"bin/bash\0"), file("placeholder", 0o4755, BASH)]),
        ),
    ]
}

/// Framing cases beyond the smuggling ones: each either read as Go reads it or refused.
pub fn framing_cases() -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = smuggling_cases().into_iter().map(|(n, t)| (n.to_string(), t)).collect();
    let sparse_hdr = |name: &[u8], stored: u64, real: u64, map: &[(u64, u64)], extended: bool| {
        hdr(name, b'S', stored, 0o644, b"", |b| {
            b[257..263].copy_from_slice(b"ustar ");
            b[263..265].copy_from_slice(b" \0");
            for (i, (o, l)) in map.iter().enumerate() {
                b[386 + 24 * i..398 + 24 * i].copy_from_slice(format!("{o:011o}\0").as_bytes());
                b[398 + 24 * i..410 + 24 * i].copy_from_slice(format!("{l:011o}\0").as_bytes());
            }
            b[482] = u8::from(extended);
            b[483..495].copy_from_slice(format!("{real:011o}\0").as_bytes());
        })
    };
    let mut more: Vec<(&str, Vec<u8>)> = vec![
        ("g-alone", end(&[meta(b'g', &records(&[("comment", b"global")])), file("f", 0o644, b"x")])),
        ("g-with-path", end(&[meta(b'g', &records(&[("path", b"named-global")])), file("f", 0o644, b"x")])),
        ("L-then-g", end(&[meta(b'L', b"long/name"), meta(b'g', &records(&[("a", b"b")])), file("f", 0o644, b"x")])),
        (
            "K-and-linkpath",
            end(&[
                pax(&[("linkpath", b"pax/target")]),
                meta(b'K', b"gnu/target"),
                hdr(b"l", b'2', 0, 0o777, b"hdr", |_| {}),
            ]),
        ),
        ("pax-path-nul", end(&[pax(&[("path", b"etc/shadow\0.txt")]), file("f", 0o644, b"x")])),
        ("pax-linkpath-nul", end(&[pax(&[("linkpath", b"a\0b")]), hdr(b"l", b'2', 0, 0o777, b"t", |_| {})])),
        ("pax-value-nul-other-key", end(&[pax(&[("comment", b"a\0b")]), file("f", 0o644, b"x")])),
        ("pax-empty-path", end(&[pax(&[("path", b"")]), file("header-name", 0o644, b"x")])),
        ("pax-repeated-key", end(&[pax(&[("path", b"first"), ("path", b"second")]), file("f", 0o644, b"x")])),
        ("pax-empty-key", end(&[meta(b'x', b"6 =ab\n"), file("f", 0o644, b"x")])),
        ("pax-trailing-nuls", end(&[meta(b'x', b"9 path=a\n\0\0\0"), file("f", 0o644, b"x")])),
        (
            "pax-size-on-dir",
            end(&[pax(&[("size", b"1024")]), hdr(b"dir/", b'5', 0, 0o755, b"", |_| {}), setuid_bash()]),
        ),
        ("pax-size-negative", end(&[pax(&[("size", b"-1")]), file("f", 0o644, b"")])),
        ("pax-uid-negative", end(&[pax(&[("uid", b"-1")]), file("f", 0o644, b"")])),
        ("pax-uid-big", end(&[pax(&[("uid", b"4294967296")]), file("f", 0o644, b"")])),
        ("pax-uid-bad", end(&[pax(&[("uid", b"12x")]), file("f", 0o644, b"")])),
        ("pax-mtime-bad", end(&[pax(&[("mtime", b"1.2.3")]), file("f", 0o644, b"")])),
        ("pax-then-eof", [pax(&[("path", b"x")]), vec![0; 1024]].concat()),
        (
            "base256-size",
            end(&[{
                let mut h = hdr(b"f", b'0', 0, 0o644, b"", |b| b[124..136].copy_from_slice(&b256(12, 5)));
                h.extend_from_slice(&pad(b"hello".to_vec()));
                h
            }]),
        ),
        ("base256-uid", end(&[hdr(b"f", b'0', 0, 0o644, b"", |b| b[108..116].copy_from_slice(&b256(8, 70000)))])),
        (
            "base256-negative-size",
            end(&[hdr(b"d/", b'5', 0, 0o755, b"", |b| b[124..136].copy_from_slice(&[0xff; 12]))]),
        ),
        (
            "octal-garbage-mtime",
            end(&[hdr(b"f", b'0', 0, 0o644, b"", |b| b[136..148].copy_from_slice(b"1453344400x\0"))]),
        ),
        ("unknown-type-with-data", end(&[hdr(b"weird", b'Z', 1024, 0o644, b"", |_| {}), setuid_bash(), vec![0; 512]])),
        ("contiguous-type-7", end(&[hdr(b"c", b'7', 3, 0o644, b"", |_| {}), pad(b"abc".to_vec())])),
        ("after-end-marker", [end(&[file("a", 0o644, b"x")]), setuid_bash(), vec![0; 1024]].concat()),
        (
            "single-zero-block-then-header",
            [file("a", 0o644, b"x"), vec![0; 512], setuid_bash(), vec![0; 1024]].concat(),
        ),
        ("no-end-marker", [file("a", 0o644, b"x")].concat()),
        ("short-padding-at-end", file("a", 0o644, b"x")[..513].to_vec()),
        ("truncated-data", file("a", 0o644, &[b'x'; 700])[..900].to_vec()),
        ("nul-type-file", end(&[hdr(b"plain", 0, 1, 0o644, b"", |_| {}), pad(b"y".to_vec())])),
        ("v7-header", end(&[hdr(b"old", b'0', 0, 0o644, b"", |b| b[257..265].fill(0))])),
        (
            "ustar-odd-version-prefix",
            end(&[hdr(b"name", b'0', 0, 0o644, b"", |b| {
                b[263..265].copy_from_slice(b"  ");
                b[345..351].copy_from_slice(b"prefix");
            })]),
        ),
        (
            "star-prefix",
            end(&[hdr(b"name", b'0', 0, 0o644, b"", |b| {
                b[345..351].copy_from_slice(b"prefix");
                b[508..512].copy_from_slice(b"tar\0");
            })]),
        ),
        (
            "gnu-bad-atime-prefix",
            end(&[hdr(b"name", b'0', 0, 0o644, b"", |b| {
                b[257..263].copy_from_slice(b"ustar ");
                b[263..265].copy_from_slice(b" \0");
                b[345..351].copy_from_slice(b"prefix");
            })]),
        ),
        ("old-gnu-sparse", end(&[sparse_hdr(b"sp", 512, 4096, &[(1024, 512)], false), vec![b's'; 512]])),
        ("old-gnu-sparse-map-too-long", end(&[sparse_hdr(b"sp", 512, 4096, &[(1024, 1024)], false), vec![b's'; 512]])),
        ("old-gnu-sparse-in-ustar", end(&[hdr(b"sp", b'S', 0, 0o644, b"", |_| {})])),
        (
            "old-gnu-sparse-extended",
            end(&[
                sparse_hdr(b"sp", 1024, 8192, &[(0, 512)], true),
                {
                    let mut ext = vec![0u8; 512];
                    ext[..24].copy_from_slice(&[&b"00000010000"[..], b"\0", b"00000001000", b"\0"].concat());
                    ext
                },
                vec![b's'; 1024],
            ]),
        ),
        (
            "pax-sparse-0.1",
            end(&[
                pax(&[
                    ("GNU.sparse.major", b"0"),
                    ("GNU.sparse.minor", b"1"),
                    ("GNU.sparse.name", b"real/name"),
                    ("GNU.sparse.realsize", b"4096"),
                    ("GNU.sparse.numblocks", b"1"),
                    ("GNU.sparse.map", b"2048,512"),
                ]),
                file("GNUSparseFile.0/name", 0o644, &[b's'; 512]),
            ]),
        ),
        (
            "pax-sparse-0.0",
            end(&[
                pax(&[
                    ("GNU.sparse.size", b"4096"),
                    ("GNU.sparse.numblocks", b"1"),
                    ("GNU.sparse.offset", b"0"),
                    ("GNU.sparse.numbytes", b"512"),
                    ("GNU.sparse.name", b"zero/zero"),
                ]),
                file("hdrname", 0o644, &[b's'; 512]),
            ]),
        ),
        (
            "pax-sparse-1.0",
            end(&[
                pax(&[
                    ("GNU.sparse.major", b"1"),
                    ("GNU.sparse.minor", b"0"),
                    ("GNU.sparse.name", b"one/zero"),
                    ("GNU.sparse.realsize", b"8192"),
                ]),
                file("GNUSparseFile.0/x", 0o644, &[pad(b"1\n4096\n512\n".to_vec()), vec![b's'; 512]].concat()),
            ]),
        ),
        (
            "pax-sparse-1.0-short-map",
            end(&[
                pax(&[("GNU.sparse.major", b"1"), ("GNU.sparse.minor", b"0"), ("GNU.sparse.realsize", b"8192")]),
                file("GNUSparseFile.0/x", 0o644, &pad(b"2\n4096\n512\n".to_vec())),
            ]),
        ),
        (
            "pax-sparse-unknown-version",
            end(&[
                pax(&[("GNU.sparse.major", b"2"), ("GNU.sparse.minor", b"0"), ("GNU.sparse.name", b"not/used")]),
                file("GNUSparseFile.0/x", 0o644, b"abc"),
            ]),
        ),
        (
            "pax-sparse-name-alone",
            end(&[pax(&[("GNU.sparse.name", b"not/sparse")]), file("GNUSparseFile.0/x", 0o644, b"abc")]),
        ),
        (
            "pax-sparse-on-symlink",
            end(&[
                pax(&[("GNU.sparse.map", b"0,1"), ("GNU.sparse.numblocks", b"1")]),
                hdr(b"l", b'2', 0, 0o777, b"t", |_| {}),
            ]),
        ),
        ("meta-over-1mib", end(&[meta(b'x', &records(&[("comment", &vec![b'a'; (1 << 20) + 10])]))])),
        (
            "checksum-bad",
            end(&[hdr(b"f", b'0', 0, 0o644, b"", |_| {})])
                .into_iter()
                .enumerate()
                .map(|(i, c)| if i == 150 { b'7' } else { c })
                .collect(),
        ),
        ("empty", Vec::new()),
        ("one-zero-block", vec![0; 512]),
        ("half-block", vec![b'a'; 100]),
    ];
    v.extend(more.drain(..).map(|(n, t)| (n.to_string(), t)));
    v
}

/// The corpora and the crafted cases through Go and harden: agreement or a refusal, and each
/// counted. Zero disagreements.
#[test]
fn tar_framing_go_oracle_over_corpora_and_crafted_cases() {
    let tmp = tempdir("tarframing");
    let mut all: Vec<(String, Vec<u8>)> = crate::corpus::corpus();
    all.extend(framing_cases().into_iter().map(|(n, t)| (format!("crafted/{n}"), t)));
    let (mut agree, mut refused, mut both_refuse) = (0, 0, 0);
    let mut bad = Vec::new();
    for (i, (name, tar)) in all.iter().enumerate() {
        let p = tmp.path().join(format!("{i}.tar"));
        std::fs::write(&p, tar).unwrap();
        match compare(&p) {
            Verdict::Agree(n) => {
                agree += 1;
                println!("agree    {name:<45} {n} entries");
            }
            Verdict::Refused(why, go_too) => {
                refused += 1;
                both_refuse += usize::from(go_too);
                println!("refused  {name:<45} {} {why}", if go_too { "(Go fails too)" } else { "(Go reads it)" });
            }
            Verdict::Disagree(what) => {
                println!("DISAGREE {name:<45} {what}");
                bad.push(format!("{name}: {what}"));
            }
        }
    }
    println!(
        "tar framing: {} archives compared, {agree} agree, {refused} refused by harden ({both_refuse} of them Go fails too), {} disagree",
        all.len(),
        bad.len()
    );
    assert!(bad.is_empty(), "harden and Go's archive/tar disagree on {} archives:\n{}", bad.len(), bad.join("\n"));
}

/// Shell names the strict profile removes (as Go lists them).
fn is_shell(name: &str) -> bool {
    let n = name.trim_start_matches("./").trim_start_matches('/');
    matches!(n, "bin/bash" | "bin/sh" | "usr/bin/bash" | "bin/dash" | "usr/bin/sh")
}

/// Each smuggling layer as a one-layer image: `check` sees the setuid shell, and `rebuild -p
/// strict` leaves Go nothing setuid and no shell, or refuses the layer naming it.
#[test]
fn tar_framing_smuggled_setuid_shell_is_seen_and_removed() {
    let tmp = tempdir("smuggle");
    let mut failures = Vec::new();
    for (name, tar) in smuggling_cases() {
        let case = tmp.path().join(name);
        let layer = crate::corpus::layout_with_layer(&case.join("in"), &tar);
        let src = format!("oci:{}:t", case.join("in").display());
        // What Go unpacks: /bin/bash setuid (the case is what it says).
        std::fs::write(case.join("in.tar"), &tar).unwrap();
        let go = go_list(&case.join("in.tar"));
        assert!(
            go["entries"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| is_shell(e["name"].as_str().unwrap()) && e["mode"].as_i64().unwrap() & 0o4000 != 0),
            "{name}: Go does not read a setuid bash: {go}"
        );
        let out = harden(&["check", &src, "--format", "json"]);
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{name}: check --format json printed no JSON ({e}):\n{}", dump(&out)));
        let evidence = |id: &str| crate::check::paths(&v, id);
        let (setuid, shells) = (evidence("HARDEN-FILE-SETUID"), evidence("HARDEN-SHELLS"));
        if !(setuid.iter().any(|p| is_shell(p)) && shells.iter().any(|p| is_shell(p))) {
            failures.push(format!("{name}: check reports setuid {setuid:?}, shells {shells:?}:\n{}", dump(&out)));
        }
        let dst = format!("oci:{}:t", case.join("out").display());
        let out = harden(&["rebuild", "-q", "--no-cache", "-p", "strict", &src, &dst]);
        match out.status.code() {
            Some(0) => {
                let layout = case.join("out");
                let manifest = read_json(&oci_blob_path(&layout, &oci_manifest_digest(&layout, "t")));
                for (i, l) in manifest["layers"].as_array().unwrap().iter().enumerate() {
                    let blob = oci_read_blob_verified(&layout, l["digest"].as_str().unwrap());
                    let plain = case.join(format!("out-{i}.tar"));
                    let raw = case.join(format!("out-{i}.blob"));
                    std::fs::write(&raw, &blob).unwrap();
                    let data = if blob.starts_with(&[0x1f, 0x8b]) {
                        run_ok(Command::new(require_tool("gzip")).arg("-dc").arg(&raw)).stdout
                    } else {
                        blob
                    };
                    std::fs::write(&plain, data).unwrap();
                    let go = go_list(&plain);
                    let left: Vec<&Value> = go["entries"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|e| is_shell(e["name"].as_str().unwrap()) || e["mode"].as_i64().unwrap() & 0o6000 != 0)
                        .collect();
                    if !go["error"].is_null() || !left.is_empty() {
                        failures.push(format!("{name}: after strict Go reads layer {i} as {go}"));
                    }
                }
            }
            Some(1) if stderr_str(&out).lines().count() == 1 && stderr_str(&out).contains(&layer) => {
                println!("{name}: refused: {}", stderr_str(&out).trim());
            }
            _ => failures.push(format!("{name}: rebuild -p strict:\n{}", dump(&out))),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A differential mutation run without libFuzzer (the `tar_go_oracle` fuzz target does the same
/// at length under `make fuzz`): deterministic byte mutations of the crafted cases and the
/// small corpus archives, header checksums fixed up half of the time so the mutation reaches
/// the fields, each mutant through Go and harden. Agreement or a refusal; a disagreement is
/// kept under target/tarframing-disagreements/ to become a unit test.
#[test]
fn tar_framing_go_oracle_over_mutated_archives() {
    const PER_SEED: usize = 12;
    let tmp = tempdir("tarmut");
    let mut seeds: Vec<(String, Vec<u8>)> = framing_cases();
    seeds.extend(crate::corpus::corpus().into_iter().filter(|(_, t)| t.len() <= 16 << 10));
    let values: &[u8] = b"\x00\x01 0157xgLKS2\n/=\x80\xff";
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rnd = |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as usize
    };
    let (mut n, mut agree, mut refused, mut go_too) = (0, 0, 0, 0);
    let mut bad = Vec::new();
    for (name, seed) in seeds.iter().filter(|(_, t)| !t.is_empty()) {
        for m in 0..PER_SEED {
            let mut t = seed.clone();
            for _ in 0..1 + rnd(3) {
                let at = rnd(t.len().min(4096));
                t[at] = if rnd(4) == 0 { rnd(256) as u8 } else { values[rnd(values.len())] };
                let start = at / 512 * 512;
                if rnd(2) == 0 && t.len() >= start + 512 && &t[start + 257..start + 262] == b"ustar" {
                    let b = &mut t[start..start + 512];
                    b[148..156].fill(b' ');
                    let sum: u32 = b.iter().map(|&c| u32::from(c)).sum();
                    b[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
                }
            }
            let p = tmp.path().join("m.tar");
            std::fs::write(&p, &t).unwrap();
            n += 1;
            match compare(&p) {
                Verdict::Agree(_) => agree += 1,
                Verdict::Refused(_, go) => {
                    refused += 1;
                    go_too += usize::from(go);
                }
                Verdict::Disagree(what) => {
                    let keep = repo_root().join("target/tarframing-disagreements");
                    std::fs::create_dir_all(&keep).unwrap();
                    let file = keep.join(format!("{}-{m}.tar", name.replace('/', "_")));
                    std::fs::write(&file, &t).unwrap();
                    bad.push(format!("{} ({name} mutant {m}): {what}", file.display()));
                }
            }
        }
    }
    println!(
        "tar framing, mutants: {n} compared, {agree} agree, {refused} refused by harden ({go_too} of them Go fails too), {} disagree",
        bad.len()
    );
    assert!(bad.is_empty(), "harden and Go disagree on {} mutants:\n{}", bad.len(), bad.join("\n"));
}

/// What harden writes, Go reads as harden does: every archive harden reads (corpora and crafted
/// cases) rewritten with every entry changed (mode 0600: each header rebuilt, PAX records and
/// sparse maps carried over), and the result listed by Go and by harden: agreement, no error,
/// as many entries as the input.
#[test]
fn tar_framing_rewritten_layers_read_the_same_in_go() {
    use harden::layer::codec::OutputCodec;
    use harden::plan::{EntryChange, LayerPlan};
    let tmp = tempdir("tarrw");
    let mut all: Vec<(String, Vec<u8>)> = crate::corpus::corpus();
    all.extend(framing_cases().into_iter().map(|(n, t)| (format!("crafted/{n}"), t)));
    let (mut n, mut bad) = (0, Vec::new());
    for (name, tar) in all {
        let input = harden::layer::tarlist::listing(&tar[..]);
        if !input["error"].is_null() {
            continue;
        }
        let Ok(idx) = harden::scan::scan_layer(&tar[..], None, None, &harden::layer::Limits::default()) else {
            bad.push(format!("{name}: tar-list reads it, the scan does not"));
            continue;
        };
        let mut plan = LayerPlan::default();
        for e in &idx.entries {
            plan.changes.insert(e.path.to_string(), EntryChange { mode: Some(0o600), ..Default::default() });
        }
        let settings =
            harden::rewrite::Settings { splice: false, ..harden::rewrite::Settings::new(OutputCodec::Gzip(1)) };
        let out = harden::rewrite::rewrite_layer(
            std::sync::Arc::new(tar.clone()),
            || Ok(Vec::new()),
            &plan,
            settings,
            &harden::layer::Limits::default(),
        );
        let out = match out {
            Ok((out, _)) => out,
            Err(e) => {
                bad.push(format!("{name}: the rewrite fails: {e}"));
                continue;
            }
        };
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut harden::layer::codec::decoder(&out[..]).unwrap().1, &mut plain).unwrap();
        let p = tmp.path().join("rw.tar");
        std::fs::write(&p, &plain).unwrap();
        n += 1;
        let (go, ours) = (go_list(&p), harden_list(&p));
        let count = |v: &Value| v["entries"].as_array().map_or(0, Vec::len);
        if !go["error"].is_null() || go != ours || count(&go) != count(&input) {
            bad.push(format!("{name}: rewritten, Go reads {go}\nharden reads {ours}\nthe input was {input}"));
        }
    }
    println!("tar framing, rewritten: {n} archives rewritten with every entry changed, {} disagree", bad.len());
    assert!(bad.is_empty(), "{}", bad.join("\n\n"));
}
