//! The package database follows the files (issue #12), judged by dpkg itself: the `app`
//! fixture rebuilt with strict (`samples/app-profile.toml`) and with a profile removing packages
//! by name, each result unpacked with umoci; `dpkg-query --admindir=ROOT/var/lib/dpkg -W` lists
//! what is still there and `dpkg --root=ROOT --verify` reports nothing missing (the same rebuild
//! with `keep_database = true` — the old behaviour — makes it report thousands). The SBOM
//! (`rebuild --sbom`, `harden sbom`) passes cyclonedx-python-lib's strict validator and lists
//! exactly dpkg-query's packages.

use crate::common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `(package, version)` as dpkg-query lists them.
fn dpkg_packages(root: &Path) -> BTreeSet<(String, String)> {
    let out = run_ok(
        Command::new(require_tool("dpkg-query"))
            .arg(format!("--admindir={}", root.join("var/lib/dpkg").display()))
            .args(["-W", "-f=${Package}\t${Version}\n"]),
    );
    stdout_str(&out)
        .lines()
        .map(|l| {
            let (n, v) = l.split_once('\t').unwrap_or_else(|| panic!("dpkg-query line {l:?}"));
            (n.to_string(), v.to_string())
        })
        .collect()
}

/// The `missing` lines of `dpkg --root=ROOT --verify` (dpkg exits 1 when it reports any).
fn dpkg_missing(root: &Path) -> Vec<String> {
    let out =
        run_with_timeout(Command::new(require_tool("dpkg")).arg(format!("--root={}", root.display())).arg("--verify"));
    let text = stdout_str(&out);
    assert!(out.status.success() || !text.is_empty(), "dpkg --verify failed without a report:\n{}", dump(&out));
    text.lines().filter(|l| l.starts_with("missing")).map(str::to_string).collect()
}

fn venv_python() -> PathBuf {
    let p = repo_root().join("target/it-venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run `make setup` (integration/setup.sh installs cyclonedx-python-lib)",
        p.display()
    );
    p
}

/// cyclonedx-python-lib's strict JSON validator over `bom` (1.5); panics with its errors.
pub fn validate_sbom(bom: &Path) {
    let script = "import sys\nfrom cyclonedx.validation.json import JsonStrictValidator\n\
from cyclonedx.schema import SchemaVersion\n\
e = JsonStrictValidator(SchemaVersion.V1_5).validate_str(open(sys.argv[1]).read())\n\
sys.exit(f'invalid: {e}' if e else 0)\n";
    run_ok(Command::new(venv_python()).args(["-c", script]).arg(bom));
}

fn sbom_packages(bom: &Value) -> BTreeSet<(String, String)> {
    bom["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["type"] == "library")
        .map(|c| (c["name"].as_str().unwrap().to_string(), c["version"].as_str().unwrap().to_string()))
        .collect()
}

struct Rebuilt {
    root: PathBuf,
    report: Value,
    sbom: PathBuf,
    layout_ref: String,
}

fn rebuild(tmp: &Path, src: &str, name: &str, profile: &str) -> Rebuilt {
    let out_dir = tmp.join(format!("out-{name}"));
    let layout_ref = format!("oci:{}:hard", out_dir.display());
    let report = tmp.join(format!("{name}.json"));
    let sbom = tmp.join(format!("{name}.cdx.json"));
    let out = harden(&[
        "rebuild",
        src,
        &layout_ref,
        "--profile",
        profile,
        "--report",
        report.to_str().unwrap(),
        "--sbom",
        sbom.to_str().unwrap(),
    ]);
    expect_pinned(&out);
    let bundle = tmp.join(format!("bundle-{name}"));
    umoci_unpack(&layout_ref, &bundle);
    Rebuilt { root: bundle.join("rootfs"), report: read_json(&report), sbom, layout_ref }
}

#[test]
fn packages_database_follows_the_files_dpkg_judges() {
    require_root();
    let tmp = tempdir("packages-strict");
    let fx = fixture("app").copy_into(tmp.path());
    let src = format!("oci:{}:{}", fx.layout.display(), fx.tag);
    let before_bundle = tmp.path().join("bundle-src");
    umoci_unpack(&src, &before_bundle);
    let before_root = before_bundle.join("rootfs");
    let before = dpkg_packages(&before_root);
    assert!(before.iter().any(|(n, _)| n == "sudo"), "the fixture has sudo: {before:?}");
    assert!(dpkg_missing(&before_root).is_empty(), "the source verifies clean");

    // The old behaviour, kept by `keep_database = true`: the database lies.
    let keepdb = tmp.path().join("keepdb.toml");
    std::fs::write(
        &keepdb,
        format!(
            "extends = \"{}\"\n[packages]\nkeep_database = true\n",
            repo_root().join("samples/app-profile.toml").display()
        ),
    )
    .unwrap();
    let old = rebuild(tmp.path(), &src, "keepdb", keepdb.to_str().unwrap());
    let old_missing = dpkg_missing(&old.root);
    assert!(old_missing.len() > 100, "keep_database leaves a database listing removed files: {}", old_missing.len());
    assert_eq!(dpkg_packages(&old.root), before, "keep_database lists every package still");

    let new = rebuild(tmp.path(), &src, "strict", "samples/app-profile.toml");
    let after = dpkg_packages(&new.root);
    let missing = dpkg_missing(&new.root);
    assert!(
        missing.is_empty(),
        "dpkg --verify reports missing files after strict: {:?}",
        &missing[..missing.len().min(20)]
    );
    for gone in ["sudo", "bash", "dash", "openssh-client", "iputils-ping", "login", "passwd", "apt"] {
        assert!(before.iter().any(|(n, _)| n == gone), "{gone} was installed");
        assert!(!after.iter().any(|(n, _)| n == gone), "{gone} is still listed after strict");
        assert!(!new.root.join(format!("var/lib/dpkg/info/{gone}.list")).exists(), "{gone}.list is left");
    }
    assert!(after.iter().any(|(n, _)| n == "libc6") && after.iter().any(|(n, _)| n == "python3-minimal"));
    let pk = &new.report["plan"]["packages"];
    assert_eq!(pk["before"].as_u64(), Some(before.len() as u64), "{pk:#}");
    assert_eq!(pk["after"].as_u64(), Some(after.len() as u64), "{pk:#}");
    let summary = new.report["plan"]["summary"].as_str().unwrap();
    assert!(summary.contains(&format!("packages {} → {} (", before.len(), after.len())), "{summary}");
    eprintln!(
        "[packages] strict: packages {} → {}, dpkg --verify missing {} (keep_database: {})",
        before.len(),
        after.len(),
        missing.len(),
        old_missing.len()
    );

    // The SBOM: valid CycloneDX 1.5, exactly dpkg-query's packages, the result's digest.
    validate_sbom(&new.sbom);
    let bom = read_json(&new.sbom);
    assert_eq!(sbom_packages(&bom), after, "the SBOM lists what dpkg-query lists");
    let digest = new.report["result"]["digest"].as_str().unwrap();
    assert_eq!(bom["metadata"]["component"]["version"].as_str(), Some(digest));
    // `harden sbom` of the result prints the same document.
    let out = harden(&["sbom", &new.layout_ref, "-q"]);
    assert!(out.status.success(), "harden sbom failed:\n{}", dump(&out));
    let printed: Value = serde_json::from_str(&stdout_str(&out)).unwrap();
    assert_eq!(printed["components"], bom["components"]);
    assert_eq!(printed["serialNumber"], bom["serialNumber"], "the serial number is the digest's");
}

#[test]
fn packages_removed_by_name_leave_files_and_database() {
    require_root();
    let tmp = tempdir("packages-byname");
    let fx = fixture("app").copy_into(tmp.path());
    let src = format!("oci:{}:{}", fx.layout.display(), fx.tag);
    let profile = tmp.path().join("byname.toml");
    std::fs::write(&profile, "extends = \"passthrough\"\n[packages]\nremove = [\"openssh-client\", \"iputils-*\"]\n")
        .unwrap();
    let before_bundle = tmp.path().join("bundle-src");
    umoci_unpack(&src, &before_bundle);
    let before = dpkg_packages(&before_bundle.join("rootfs"));
    let r = rebuild(tmp.path(), &src, "byname", profile.to_str().unwrap());
    let after = dpkg_packages(&r.root);
    let gone: BTreeSet<String> = before.difference(&after).map(|(n, _)| n.clone()).collect();
    assert_eq!(gone, BTreeSet::from(["openssh-client".to_string(), "iputils-ping".to_string()]));
    assert!(dpkg_missing(&r.root).is_empty(), "dpkg --verify reports missing files");
    assert!(before_bundle.join("rootfs/usr/bin/ssh").exists() && !r.root.join("usr/bin/ssh").exists());
    assert!(!r.root.join("usr/bin/ping").exists());
    // Shared directories stay; what stays still runs.
    assert!(r.root.join("usr/share/doc").is_dir() && r.root.join("etc").is_dir());
    let run = runc_run_args(r.root.parent().unwrap(), Some(&["python3", "-c", "print('still runs')"]));
    assert_eq!(stdout_str(&run), "still runs\n", "{}", dump(&run));
    validate_sbom(&r.sbom);
    assert_eq!(sbom_packages(&read_json(&r.sbom)), after);
}
