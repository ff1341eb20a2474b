//! Package-database unit tests over crafted final filesystems: dpkg, distroless status.d and apk
//! databases read and edited to follow the files; hostile ones refused naming the file.
//!
//! Owns: those unit tests. Must not: need tools outside the crate.

use super::*;
use crate::fs::tests::{entry, layer};
use crate::scan::EntryInfo;

fn file(path: &str, text: &str) -> EntryInfo {
    let mut e = entry(path, Kind::File, None);
    e.size = text.len() as u64;
    e.prefix = Some(text.as_bytes().to_vec().into_boxed_slice());
    e
}

const STATUS: &str = "Package: sudo\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.9\n\
Depends: libc6\nConffiles:\n /etc/sudoers abc\n\n\
Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nMulti-Arch: same\nVersion: 2.36\n\n\
Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n\n";

fn image() -> FinalFs {
    FinalFs::build(vec![layer(vec![
        file("var/lib/dpkg/status", STATUS),
        file("var/lib/dpkg/info/sudo.list", "/.\n/etc\n/etc/sudoers\n/usr\n/usr/bin\n/usr/bin/sudo\n"),
        file("var/lib/dpkg/info/sudo.md5sums", "aa  usr/bin/sudo\n"),
        file("var/lib/dpkg/info/sudo.conffiles", "/etc/sudoers\n"),
        entry("var/lib/dpkg/info/sudo.postinst", Kind::File, None),
        file("var/lib/dpkg/info/libc6:amd64.list", "/.\n/usr\n/usr/lib\n/usr/lib/libc.so.6\n"),
        file("var/lib/dpkg/info/libc6:amd64.md5sums", "bb  usr/lib/libc.so.6\n"),
    ])])
}

#[test]
fn dpkg_loads_packages_with_their_paths_multiarch_included() {
    let dbs = load(&image()).unwrap();
    assert_eq!(dbs.len(), 1);
    let names: Vec<&str> = dbs[0].packages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["sudo", "libc6"], "a config-files-only package is not installed");
    assert!(dbs[0].packages[1].paths.contains(&"/usr/lib/libc.so.6".to_string()));
    assert_eq!(dbs[0].packages[0].depends, ["libc6"]);
}

#[test]
fn dpkg_removal_drops_stanza_and_info_files_trim_edits_lists() {
    let dbs = load(&image()).unwrap();
    let ed = dbs[0].edit(&[0].into(), &|_| false);
    let status = String::from_utf8(ed.replace["var/lib/dpkg/status"].clone()).unwrap();
    assert!(!status.contains("Package: sudo") && status.contains("Package: libc6") && status.contains("Package: gone"));
    let removed: Vec<&str> = ed.remove.iter().map(String::as_str).collect();
    assert_eq!(
        removed,
        [
            "var/lib/dpkg/info/sudo.conffiles",
            "var/lib/dpkg/info/sudo.list",
            "var/lib/dpkg/info/sudo.md5sums",
            "var/lib/dpkg/info/sudo.postinst"
        ]
    );
    // Trimming: sudo loses /usr/bin/sudo and /etc/sudoers but stays listed.
    let ed = dbs[0].edit(&BTreeSet::new(), &|p| p == "/usr/bin/sudo" || p == "/etc/sudoers");
    assert_eq!(ed.replace["var/lib/dpkg/info/sudo.list"], b"/.\n/etc\n/usr\n/usr/bin\n");
    assert_eq!(ed.replace["var/lib/dpkg/info/sudo.md5sums"], b"");
    assert_eq!(ed.replace["var/lib/dpkg/info/sudo.conffiles"], b"");
    let status = String::from_utf8(ed.replace["var/lib/dpkg/status"].clone()).unwrap();
    assert!(status.contains("Package: sudo") && !status.contains("sudoers"), "{status}");
    assert!(!ed.replace.contains_key("var/lib/dpkg/info/libc6:amd64.list"), "untouched files are not rewritten");
    assert!(ed.remove.is_empty());
    // Nothing gone: nothing to edit.
    assert_eq!(dbs[0].edit(&BTreeSet::new(), &|_| false), Edits::default());
}

#[test]
fn distroless_status_d_follows_too() {
    let fs = FinalFs::build(vec![layer(vec![
        file("var/lib/dpkg/status.d/base-files", "Package: base-files\nVersion: 12\nArchitecture: amd64\n"),
        file("var/lib/dpkg/status.d/base-files.md5sums", "aa  etc/debian_version\nbb  usr/lib/os-release\n"),
        file("var/lib/dpkg/status.d/tzdata", "Package: tzdata\nVersion: 2024a\nArchitecture: all\n"),
        file("var/lib/dpkg/status.d/tzdata.md5sums", "cc  usr/share/zoneinfo/UTC\n"),
    ])]);
    let dbs = load(&fs).unwrap();
    assert_eq!(dbs[0].format, Format::DpkgStatusD);
    assert_eq!(dbs[0].packages[1].paths, ["/usr/share/zoneinfo/UTC"]);
    let ed = dbs[0].edit(&[1].into(), &|p| p == "/etc/debian_version");
    assert!(
        ed.remove.contains("var/lib/dpkg/status.d/tzdata")
            && ed.remove.contains("var/lib/dpkg/status.d/tzdata.md5sums")
    );
    assert_eq!(ed.replace["var/lib/dpkg/status.d/base-files.md5sums"], b"bb  usr/lib/os-release\n");
}

#[test]
fn hostile_databases_are_refused_naming_the_file() {
    let bad = |entries: Vec<EntryInfo>| load(&FinalFs::build(vec![layer(entries)])).unwrap_err().0;
    let e = bad(vec![file("var/lib/dpkg/status", "Package: a\n\n oops\n")]);
    assert!(e.starts_with("/var/lib/dpkg/status:3:"), "{e}");
    let e = bad(vec![
        file("var/lib/dpkg/status", "Package: a\nArchitecture: all\n"),
        file("var/lib/dpkg/info/a.list", "/usr\n/../../etc/shadow\n"),
    ]);
    assert!(e.starts_with("/var/lib/dpkg/info/a.list:2: path"), "{e}");
    // Cut short by the scan (larger than it keeps): refused, not half-read.
    let mut big = file("var/lib/dpkg/status", "Package: a\n");
    big.size = MAX_FILE + 1;
    assert!(bad(vec![big]).contains("more than the 64 MiB"));
    let e = bad(vec![entry("var/lib/dpkg/status", Kind::Symlink, Some("/tmp/x"))]);
    assert!(e.contains("not a regular file"), "{e}");
    let mut bin = file("var/lib/dpkg/status", "");
    bin.prefix = Some(vec![b'P', 0xff, 0xfe].into_boxed_slice());
    bin.size = 3;
    assert!(bad(vec![bin]).contains("not UTF-8"));
}

#[test]
fn apk_database_follows_too() {
    let fs = FinalFs::build(vec![layer(vec![
        file("lib/apk/db/installed", "P:busybox\nV:1.36\nA:x86_64\nF:bin\nR:busybox\nZ:Q1a=\nR:sh\nZ:Q1b=\n\nP:curl\nV:8\nA:x86_64\nD:busybox\nF:usr/bin\nR:curl\n\n"),
        file("etc/apk/world", "busybox\ncurl\n"),
    ])]);
    let dbs = load(&fs).unwrap();
    assert_eq!(dbs[0].format, Format::Apk);
    assert_eq!(dbs[0].packages[1].paths, ["/usr/bin", "/usr/bin/curl"]);
    let ed = dbs[0].edit(&[1].into(), &|p| p == "/bin/sh");
    let installed = String::from_utf8(ed.replace["lib/apk/db/installed"].clone()).unwrap();
    assert_eq!(installed, "P:busybox\nV:1.36\nA:x86_64\nF:bin\nR:busybox\nZ:Q1a=\n\n");
    assert_eq!(ed.replace["etc/apk/world"], b"busybox\n");
}

#[test]
fn scan_keeps_database_files_whole() {
    assert!(is_database_file("var/lib/dpkg/status"));
    assert!(is_database_file("var/lib/dpkg/info/libc6:amd64.list"));
    assert!(is_database_file("var/lib/dpkg/status.d/tzdata.md5sums"));
    assert!(!is_database_file("var/lib/dpkg/info/sudo.postinst"));
    assert!(!is_database_file("var/lib/dpkg/status-old"));
    assert_eq!(crate::scan::prefix_len("var/lib/dpkg/status", 0o644, 5 << 20), 5 << 20);
}

/// Random text from the formats' own alphabet: parsing, editing and writing never panic, and a
/// database that parses writes back to text that parses to the same thing.
#[test]
fn random_databases_never_panic() {
    let alphabet: Vec<char> = "PVADFRMZaCo: \t\n\n./-_,|()>=!x\u{e9}".chars().collect();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..3000 {
        let len = (next() % 200) as usize;
        let text: String = (0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect();
        if let Ok(st) = dpkg::parse("s", &text) {
            let again = dpkg::parse("s", &dpkg::write(&st)).expect("written status parses");
            assert_eq!(again.len(), st.len(), "{text:?}");
            for mut s in st {
                let _ = (s.depends(), s.conffiles(), s.installed());
                s.drop_conffiles(&|p| p.len() % 2 == 0);
            }
        }
        if let Ok(pk) = apk::parse("i", &text) {
            for mut p in pk {
                let _ = (p.depends(), p.owned());
                p.trim(&|x| x.len() % 3 == 0);
            }
        }
        let _ = dpkg::filter_list(&text, &|p| p.starts_with('/'));
        let _ = dpkg::filter_md5sums(&text, &|p| p.len() > 3);
        let _ = apk::filter_world(&text, &|n| n.len() == 1);
    }
}

#[test]
fn duplicate_stanzas_fail_and_each_file_is_read_once() {
    // 300 stanzas of one package over one big list: refused at the second, not read 300 times.
    let stanza = "Package: sudo\nStatus: install ok installed\nArchitecture: amd64\n\n";
    let list: String = (0..100_000).map(|i| format!("/p{i}\n")).collect();
    let fs = FinalFs::build(vec![layer(vec![
        file("var/lib/dpkg/status", &stanza.repeat(300)),
        file("var/lib/dpkg/info/sudo.list", &list),
    ])]);
    let e = load(&fs).unwrap_err().0;
    assert!(e.contains("status:5: a second stanza for package sudo"), "{e}");
    // The same name on two architectures is two packages (multi-arch), each with its files.
    let two = "Package: libc6\nArchitecture: amd64\n\nPackage: libc6\nArchitecture: i386\n\n";
    let fs = FinalFs::build(vec![layer(vec![
        file("var/lib/dpkg/status", two),
        file("var/lib/dpkg/info/libc6:amd64.list", "/a\n"),
        file("var/lib/dpkg/info/libc6:i386.list", "/b\n"),
    ])]);
    let dbs = load(&fs).unwrap();
    assert_eq!(dbs[0].packages[0].paths, ["/a"]);
    assert_eq!(dbs[0].packages[1].paths, ["/b"]);
    // status.d: one file of many stanzas shares one md5sums, read for its first stanza only.
    let many: String = (0..300).map(|i| format!("Package: p{i}\n\n")).collect();
    let md5: String = (0..1000).map(|i| format!("00  usr/f{i}\n")).collect();
    let fs = FinalFs::build(vec![layer(vec![
        file("var/lib/dpkg/status.d/base", &many),
        file("var/lib/dpkg/status.d/base.md5sums", &md5),
    ])]);
    let dbs = load(&fs).unwrap();
    let listed: usize = dbs[0].packages.iter().map(|p| p.paths.len()).sum();
    assert_eq!((dbs[0].packages.len(), listed), (300, 1000));
    // A set de-duplicates dependencies: 100k names in one Depends is linear, not quadratic (a
    // list's `contains` would make 2.5 billion comparisons: minutes, where a set takes well under
    // a second even in a debug build on a loaded machine; 400k names took 6.5 s there).
    let deps: Vec<String> = (0..100_000).map(|i| format!("d{}", i % 50_000)).collect();
    let st = dpkg::parse("s", &format!("Package: a\nDepends: {}\n", deps.join(", "))).unwrap();
    let found = crate::test_support::unless_hung("100k Depends", move || st[0].depends().len());
    assert_eq!(found, 50_000);
}
