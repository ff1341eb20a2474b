//! rpm databases are read, never edited (issue #12), judged by rpm itself. Debian's `rpm`
//! builds three tiny packages (`rpmbuild -bb`) and installs them into a root with a real
//! `rpmdb.sqlite` (`rpm --initdb`, `rpm -i`); for Berkeley DB, the same headers (`rpmdb
//! --exportdb`) are loaded into a genuine hash database by Berkeley DB's own `db5.3_load`. Each
//! root becomes a one-layer OCI image (umoci), harden rebuilds it with a profile removing some
//! of the packages' files, and:
//! - the report's `plan.packages.lost_files` and the stderr note name exactly the packages
//!   `rpm -qf` says own the removed files, and the database is marked as left as it was;
//! - the result's database is byte-for-byte the source's (and `rpm -qa` still lists everything);
//! - `harden sbom` and `rebuild --sbom` list exactly `rpm -qa`'s packages (name, `%{EVR}`), and
//!   the SBOM passes cyclonedx-python-lib's strict validator;
//! - `harden check` of the result reports HARDEN-PACKAGE-DB-STALE naming those packages.
//!
//! rpm 4.18's `bdb_ro` backend will not open a `Packages` file without its index files
//! (`Name`, `Basenames`, …), which `db5.3_load` cannot make; the Berkeley DB case is judged by
//! `rpm -qa` over the sqlite database its headers were exported from.

use crate::common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const DB: &str = "/var/lib/rpm";

/// `(name, epoch or none, files)`: each file holds its own path.
const PACKAGES: [(&str, Option<u32>, &[&str]); 3] = [
    ("hello-harden", Some(3), &["/usr/bin/hello-harden", "/usr/share/doc/hello-harden/README"]),
    ("tools-harden", None, &["/usr/bin/tool-a", "/usr/bin/tool-b", "/etc/tools-harden.conf"]),
    ("keep-harden", None, &["/usr/share/keep-harden/data"]),
];

/// The files the test profile removes; hello-harden and tools-harden own them.
const REMOVED: [&str; 2] = ["/usr/bin/hello-harden", "/usr/bin/tool-a"];

fn rpm(root: &Path, args: &[&str]) -> String {
    let out = run_ok(
        Command::new(require_tool("rpm"))
            .arg("--root")
            .arg(root)
            .args(["--dbpath", DB, "--define", "_db_backend sqlite"])
            .args(args),
    );
    stdout_str(&out)
}

/// Build the packages and install them into a fresh root with an `rpmdb.sqlite`.
fn sqlite_root(tmp: &Path) -> PathBuf {
    let top = tmp.join("rpmbuild");
    let mut rpms = Vec::new();
    for (name, epoch, files) in PACKAGES {
        let spec = tmp.join(format!("{name}.spec"));
        let mut install = String::new();
        for f in files {
            let dir = Path::new(f).parent().unwrap().display().to_string();
            install.push_str(&format!("mkdir -p %{{buildroot}}{dir}\necho '{f}' > %{{buildroot}}{f}\n"));
        }
        let epoch = epoch.map(|e| format!("Epoch: {e}\n")).unwrap_or_default();
        std::fs::write(
            &spec,
            format!(
                "Name: {name}\nVersion: 1.0\nRelease: 2\n{epoch}Summary: harden test\nLicense: MIT\nBuildArch: noarch\n\
                 Requires: /bin/sh\n%description\nharden test\n%install\n{install}%files\n{}\n",
                files.join("\n")
            ),
        )
        .unwrap();
        run_ok(
            Command::new(require_tool("rpmbuild"))
                .args(["-bb", "--quiet", "--define"])
                .arg(format!("_topdir {}", top.display()))
                .arg(&spec),
        );
        rpms.push(top.join(format!("RPMS/noarch/{name}-1.0-2.noarch.rpm")));
    }
    let root = tmp.join("root-sqlite");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/os-release"), "ID=fedora\nVERSION_ID=40\n").unwrap();
    rpm(&root, &["--initdb"]);
    let mut args = vec!["-i", "--nodeps", "--noscripts"];
    let paths: Vec<String> = rpms.iter().map(|p| p.display().to_string()).collect();
    args.extend(paths.iter().map(String::as_str));
    rpm(&root, &args);
    assert!(root.join("var/lib/rpm/rpmdb.sqlite").is_file());
    root
}

/// A copy of `sqlite` whose database is a Berkeley DB hash `Packages` holding the same headers.
fn bdb_root(tmp: &Path, sqlite: &Path) -> PathBuf {
    let root = tmp.join("root-bdb");
    run_ok(Command::new("cp").arg("-a").arg(sqlite).arg(&root));
    std::fs::remove_dir_all(root.join("var/lib/rpm")).unwrap();
    std::fs::create_dir_all(root.join("var/lib/rpm")).unwrap();
    let out = run_ok(Command::new(require_tool("rpmdb")).arg("--root").arg(sqlite).args([
        "--dbpath",
        DB,
        "--define",
        "_db_backend sqlite",
        "--exportdb",
    ]));
    // A header list: per header an 8-byte magic, then the blob (il, dl, index, data).
    let (data, mut at, mut n) = (out.stdout, 0usize, 0u32);
    let mut dump = String::from("VERSION=3\nformat=bytevalue\ntype=hash\ndb_pagesize=4096\nHEADER=END\n");
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    while at < data.len() {
        assert_eq!(&data[at..at + 4], b"\x8e\xad\xe8\x01", "rpmdb --exportdb header magic at {at}");
        let be = |o: usize| u32::from_be_bytes(data[o..o + 4].try_into().unwrap()) as usize;
        let (il, dl) = (be(at + 8), be(at + 12));
        let blob = &data[at + 8..at + 16 + 16 * il + dl];
        n += 1;
        // rpm's key: the instance number, in the host's byte order.
        dump.push_str(&format!(" {}\n {}\n", hex(&n.to_ne_bytes()), hex(blob)));
        at += 16 + 16 * il + dl;
    }
    assert_eq!(n as usize, PACKAGES.len(), "rpmdb --exportdb exported every header");
    dump.push_str("DATA=END\n");
    let dump_file = tmp.join("packages.dump");
    std::fs::write(&dump_file, dump).unwrap();
    run_ok(Command::new(require_tool("db5.3_load")).arg("-f").arg(&dump_file).arg(root.join("var/lib/rpm/Packages")));
    root
}

/// A one-layer OCI layout holding `root`, as `oci:LAYOUT:t`.
fn layout_of(tmp: &Path, root: &Path, name: &str) -> String {
    let layout = tmp.join(format!("layout-{name}"));
    let image = format!("{}:t", layout.display());
    let umoci = require_tool("umoci");
    run_ok(Command::new(&umoci).args(["init", "--layout"]).arg(&layout));
    run_ok(Command::new(&umoci).args(["new", "--image", &image]));
    let bundle = tmp.join(format!("bundle-new-{name}"));
    run_ok(Command::new(&umoci).args(["unpack", "--image", &image]).arg(&bundle));
    std::fs::remove_dir_all(bundle.join("rootfs")).unwrap();
    run_ok(Command::new("cp").arg("-a").arg(root).arg(bundle.join("rootfs")));
    run_ok(Command::new(&umoci).args(["repack", "--image", &image]).arg(&bundle));
    format!("oci:{image}")
}

fn sbom_packages(bom: &Value) -> BTreeSet<(String, String)> {
    let comps = bom["components"].as_array().expect("components");
    comps
        .iter()
        .filter(|c| c["type"] == "library")
        .map(|c| {
            let purl = c["purl"].as_str().unwrap();
            assert!(purl.starts_with("pkg:rpm/fedora/") && purl.contains("distro=fedora-40"), "{purl}");
            (c["name"].as_str().unwrap().to_string(), c["version"].as_str().unwrap().to_string())
        })
        .collect()
}

/// The whole story for one root whose database is `db` (relative to the root).
fn rebuild_and_judge(tmp: &Path, root: &Path, judge: &Path, name: &str, db: &str) {
    let src = layout_of(tmp, root, name);
    // What rpm says: every package with its EVR, and who owns the files the profile removes.
    let listed: BTreeSet<(String, String)> = rpm(judge, &["-qa", "--qf", "%{NAME}\\t%{EVR}\\n"])
        .lines()
        .map(|l| {
            let (n, v) = l.split_once('\t').unwrap();
            (n.to_string(), v.to_string())
        })
        .collect();
    assert_eq!(listed.len(), PACKAGES.len(), "{listed:?}");
    assert!(listed.contains(&("hello-harden".into(), "3:1.0-2".into())), "{listed:?}");
    let mut qf = vec!["-qf", "--qf", "%{NAME}\\n"];
    qf.extend(REMOVED);
    let owners: BTreeSet<String> = rpm(judge, &qf).lines().map(str::to_string).collect();
    assert_eq!(owners.len(), 2, "{owners:?}");

    // `harden sbom` of the source lists exactly rpm -qa's packages.
    let out = harden(&["sbom", &src, "-q"]);
    assert!(out.status.success(), "harden sbom failed:\n{}", dump(&out));
    let bom: Value = serde_json::from_str(&stdout_str(&out)).unwrap();
    assert_eq!(sbom_packages(&bom), listed, "harden sbom lists what rpm -qa lists");

    let profile = tmp.join(format!("{name}.toml"));
    let quoted: Vec<String> = REMOVED.iter().map(|r| format!("\"{r}\"")).collect();
    std::fs::write(&profile, format!("extends = \"passthrough\"\n[files]\nremove = [{}]\n", quoted.join(", ")))
        .unwrap();
    let out_dir = tmp.join(format!("out-{name}"));
    let dst = format!("oci:{}:hard", out_dir.display());
    let report = tmp.join(format!("{name}.json"));
    let sbom = tmp.join(format!("{name}.cdx.json"));
    let out = harden(&[
        "rebuild",
        &src,
        &dst,
        "--profile",
        profile.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--sbom",
        sbom.to_str().unwrap(),
    ]);
    expect_pinned(&out);
    let report = read_json(&report);
    let pk = &report["plan"]["packages"];
    let lost: BTreeSet<String> = pk["lost_files"]
        .as_array()
        .unwrap_or_else(|| panic!("{pk:#}"))
        .iter()
        .map(|v| v.as_str().unwrap().into())
        .collect();
    assert_eq!(lost, owners, "lost_files names exactly rpm -qf's owners of the removed files");
    assert!(pk["removed"].as_array().unwrap().is_empty() && pk["trimmed"].as_array().unwrap().is_empty(), "{pk:#}");
    let left = pk["left_as_is"].as_str().unwrap();
    assert!(left.starts_with(&format!("/{db}: rpm databases are not edited")), "{left}");
    let stderr = stderr_str(&out);
    let note = stderr.lines().find(|l| l.contains(&format!("/{db} is left as it was"))).unwrap_or_else(|| {
        panic!("no note about the rpm database on stderr:\n{}", dump(&out));
    });
    for o in &owners {
        assert!(note.contains(o.as_str()), "the note names {o}: {note}");
    }
    assert!(!note.contains("keep-harden"), "{note}");
    let summary = report["plan"]["summary"].as_str().unwrap();
    assert!(summary.contains("2 lost files (database not edited)"), "{summary}");

    // The result: files gone, database bytes untouched, rpm still lists everything.
    let bundle = tmp.join(format!("bundle-{name}"));
    umoci_unpack(&dst, &bundle);
    let after = bundle.join("rootfs");
    for r in REMOVED {
        assert!(root.join(&r[1..]).exists() && !after.join(&r[1..]).exists(), "{r} is removed");
    }
    assert!(after.join("usr/bin/tool-b").exists());
    let (a, b) = (std::fs::read(root.join(db)).unwrap(), std::fs::read(after.join(db)).unwrap());
    assert!(a == b, "/{db} changed in the result");

    // The SBOM of the result: valid, and still rpm -qa's packages (the database lists them all).
    crate::packages::validate_sbom(&sbom);
    assert_eq!(sbom_packages(&read_json(&sbom)), listed);

    // check: the database lists files the image does not have, naming the packages.
    let out = run_with_timeout(Command::new(harden_bin()).args(["check", &dst, "-q"]));
    assert!(matches!(out.status.code(), Some(0) | Some(3)), "{}", dump(&out));
    let text = stdout_str(&out);
    assert!(text.contains("HARDEN-PACKAGE-DB-STALE"), "{}", dump(&out));
    for o in &owners {
        assert!(text.contains(&format!("package {o} lists 1 files the image does not have")), "{o}: {}", dump(&out));
    }
    assert!(!text.contains("package keep-harden"), "{text}");
    eprintln!("[rpmdb] {name}: {} packages, lost files: {lost:?}", listed.len());
}

#[test]
fn rpmdb_sqlite_and_bdb_are_read_never_edited_rpm_judges() {
    require_root();
    let tmp = tempdir("rpmdb");
    let sqlite = sqlite_root(tmp.path());
    assert!(rpm(&sqlite, &["-V", "-a", "--nodeps"]).is_empty(), "the source root verifies clean");
    rebuild_and_judge(tmp.path(), &sqlite, &sqlite, "sqlite", "var/lib/rpm/rpmdb.sqlite");
    let bdb = bdb_root(tmp.path(), &sqlite);
    rebuild_and_judge(tmp.path(), &bdb, &sqlite, "bdb", "var/lib/rpm/Packages");
}
