//! `harden check IMAGE` against the real fixtures: the app image before (root, setuid, shells,
//! caches, secrets: exit 3) and after `rebuild --profile strict` (only what the profile keeps),
//! and `rebuild`'s before/after findings in its report.

use crate::common::*;
use serde_json::Value;
use std::collections::BTreeSet;

/// `check` prints its findings on stdout whatever the verdict: only the exit code says.
fn expect_code(out: &std::process::Output, code: i32) {
    assert_eq!(out.status.code(), Some(code), "expected exit code {code}:\n{}", dump(out));
}

fn check_json(image: &str, extra: &[&str]) -> (std::process::Output, Value) {
    let mut args = vec!["check", image, "--format", "json"];
    args.extend_from_slice(extra);
    let out = harden(&args);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("check --format json printed no JSON ({e}):\n{}", dump(&out)));
    (out, v)
}

fn ids(findings: &Value) -> BTreeSet<String> {
    findings.as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap().to_string()).collect()
}

pub fn paths(v: &Value, id: &str) -> Vec<String> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == id)
        .flat_map(|f| f["evidence"].as_array().unwrap().iter())
        .filter_map(|e| e["path"].as_str().map(str::to_string))
        .collect()
}

fn manifest_layers(layout: &std::path::Path, digest: &str) -> BTreeSet<String> {
    let m = read_json(&oci_blob_path(layout, digest));
    m["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_string()).collect()
}

/// Findings that strict addresses and must be gone after it.
const STRICT_FIXES: [&str; 9] = [
    "HARDEN-USER-ROOT",
    "HARDEN-CONTRACT-UNMET",
    "HARDEN-FILE-SETUID",
    "HARDEN-FILE-CAPABILITIES",
    "HARDEN-SHELLS",
    "HARDEN-PACKAGE-MANAGERS",
    "HARDEN-PACKAGE-CACHES",
    "HARDEN-SECRET-FILE",
    "HARDEN-SECRET-CONTENT",
];

#[test]
fn check_app_before_and_after_strict() {
    let fx = fixture("app");
    let src = fx.oci_ref();

    // Before: the fixture's planted problems, each with its layer.
    let (out, before) = check_json(&src, &["--fail-on", "warn"]);
    expect_code(&out, 3);
    assert_eq!(before["schema"], "harden-check/1");
    assert_eq!(before["failed"], true);
    let found = ids(&before["findings"]);
    for id in [
        "HARDEN-USER-ROOT",
        "HARDEN-FILE-SETUID",
        "HARDEN-FILE-CAPABILITIES",
        "HARDEN-SHELLS",
        "HARDEN-PACKAGE-MANAGERS",
        "HARDEN-PACKAGE-CACHES",
        "HARDEN-SECRET-FILE",
        "HARDEN-HEALTHCHECK-MISSING",
        "HARDEN-SIGNATURE-MISSING",
        "HARDEN-CONTRACT-UNMET",
    ] {
        assert!(found.contains(id), "{id} missing: {found:?}");
    }
    // The contract cannot be met: a root user, and setuid and capability files left.
    let unmet = paths(&before, "HARDEN-CONTRACT-UNMET");
    for p in ["/usr/bin/su", "/usr/bin/ping"] {
        assert!(unmet.contains(&p.to_string()), "{p} not in {unmet:?}");
    }
    let setuid = paths(&before, "HARDEN-FILE-SETUID");
    for p in ["/usr/local/bin/setuid-copy", "/usr/bin/su", "/usr/bin/sudo", "/usr/lib/openssh/ssh-keysign"] {
        assert!(setuid.contains(&p.to_string()), "{p} not in {setuid:?}");
    }
    assert_eq!(paths(&before, "HARDEN-FILE-CAPABILITIES"), vec!["/usr/bin/ping"]);
    let shells = paths(&before, "HARDEN-SHELLS");
    assert!(shells.contains(&"/usr/bin/sh".to_string()) && shells.contains(&"/usr/bin/dash".to_string()), "{shells:?}");
    let caches = paths(&before, "HARDEN-PACKAGE-CACHES");
    for p in ["/root/.cache/pip", "/var/cache/apt/archives/fake_1.0_amd64.deb"] {
        assert!(caches.contains(&p.to_string()), "{p} not in {caches:?}");
    }
    let secrets = paths(&before, "HARDEN-SECRET-FILE");
    assert!(
        secrets.contains(&"/app/.env".to_string()) && secrets.contains(&"/root/.ssh/id_rsa".to_string()),
        "{secrets:?}"
    );
    // CA certificates are not secrets.
    let all: Vec<String> =
        paths(&before, "HARDEN-SECRET-FILE").into_iter().chain(paths(&before, "HARDEN-SECRET-CONTENT")).collect();
    assert!(
        !all.iter().any(|p| p.starts_with("/etc/ssl/certs") || p.starts_with("/usr/share/ca-certificates")),
        "{all:?}"
    );
    // Every file's evidence names a layer of the manifest.
    let layers = manifest_layers(&fx.layout, &fx.manifest_digest());
    for f in before["findings"].as_array().unwrap() {
        for e in f["evidence"].as_array().unwrap() {
            if e["path"].is_string() && f["id"] != "HARDEN-LAYER-PATH-ESCAPE" {
                assert!(layers.contains(e["layer"].as_str().unwrap_or("")), "{f}");
            }
        }
    }
    assert_eq!(before["image"]["digest"].as_str(), Some(fx.manifest_digest().as_str()));

    // Exit 0 when nothing reaches --fail-on: the only fatal findings are the secret files.
    let out = harden(&["check", &src, "--ignore", "HARDEN-SECRET-FILE", "--ignore", "harden-secret-content", "-q"]);
    assert_eq!(out.status.code(), Some(0), "{}", dump(&out));
    assert!(stdout_str(&out).contains("HARDEN-FILE-SETUID"), "text output lists findings:\n{}", dump(&out));
    assert!(!stdout_str(&out).contains("HARDEN-SECRET-FILE"), "{}", dump(&out));

    // SARIF 2.1.0.
    let out = harden(&["check", &src, "--format", "sarif", "-q"]);
    expect_code(&out, 3);
    let sarif: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let run = &sarif["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "harden");
    let results = run["results"].as_array().unwrap();
    assert!(results.iter().any(|r| r["ruleId"] == "HARDEN-FILE-SETUID"
        && r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "usr/local/bin/setuid-copy"));
    for r in results {
        let i = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(run["tool"]["driver"]["rules"][i]["id"], r["ruleId"]);
    }

    // Rebuild with strict: both lists in the report, the summary line on stderr.
    let tmp = tempdir("check-strict");
    let out_dir = tmp.path().join("out");
    let report = tmp.path().join("report.json");
    let out = harden(&[
        "rebuild",
        &src,
        &format!("oci:{}:strict", out_dir.display()),
        "--profile",
        "strict",
        "--report",
        report.to_str().unwrap(),
    ]);
    let pinned = expect_pinned(&out);
    let line = stderr_str(&out).lines().find(|l| l.contains("findings ") && l.contains(" → ")).map(str::to_string);
    let line = line.unwrap_or_else(|| panic!("no `findings N → M` line on stderr:\n{}", dump(&out)));
    assert!(line.contains("(fatal 1 → 0)") || line.contains("(fatal 2 → 0)"), "{line}");
    let rep = read_json(&report);
    let report_before = ids(&rep["findings"]["before"]);
    let report_after = ids(&rep["findings"]["after"]);
    assert_eq!(report_before, found, "rebuild's before list is check's");

    // After: what strict chose to keep, and the same list as the report predicted.
    let (out, after) = check_json(&pinned.reference(), &["--fail-on", "warn"]);
    expect_code(&out, 0);
    let after_ids = ids(&after["findings"]);
    for id in STRICT_FIXES {
        assert!(!after_ids.contains(id), "{id} still there after strict: {after:#}");
    }
    assert_eq!(after_ids, report_after, "the report's after list is what check finds on the result");
    let result_layers = manifest_layers(&out_dir, &pinned.digest);
    for f in rep["findings"]["after"].as_array().unwrap() {
        for e in f["evidence"].as_array().unwrap() {
            if let Some(l) = e["layer"].as_str() {
                assert!(result_layers.contains(l), "after evidence names a result layer: {f}");
            }
        }
    }
}

/// The real Debian image: many findings before, only info-level ones after strict.
#[test]
fn check_debian_before_and_after_strict() {
    let fx = fixture("debian");
    let (out, before) = check_json(&fx.oci_ref(), &["--fail-on", "warn"]);
    expect_code(&out, 3);
    let found = ids(&before["findings"]);
    for id in ["HARDEN-USER-ROOT", "HARDEN-FILE-SETUID", "HARDEN-SHELLS", "HARDEN-PACKAGE-MANAGERS"] {
        assert!(found.contains(id), "{id} missing: {found:?}");
    }
    assert!(paths(&before, "HARDEN-FILE-SETUID").len() >= 8, "{before:#}");
    assert!(
        !found.contains("HARDEN-SECRET-CONTENT") && !found.contains("HARDEN-SECRET-FILE"),
        "a stock Debian has no secrets: {before:#}"
    );

    // Its CMD runs /bin/sh: strict, keeping the one shell it needs.
    let tmp = tempdir("check-debian");
    let profile = tmp.path().join("strict-sh.toml");
    std::fs::write(&profile, "extends = \"strict\"\n[files]\nkeep = [\"/bin/sh\", \"/bin/dash\"]\n").unwrap();
    let out_dir = tmp.path().join("out");
    let pinned = expect_pinned(&harden(&[
        "rebuild",
        &fx.oci_ref(),
        &format!("oci:{}:strict", out_dir.display()),
        "--profile",
        profile.to_str().unwrap(),
    ]));
    let (out, after) = check_json(&pinned.reference(), &["--fail-on", "warn"]);
    expect_code(&out, 0);
    for f in after["findings"].as_array().unwrap() {
        assert_eq!(f["level"], "info", "only info findings remain after strict: {f}");
    }
    let shells = paths(&after, "HARDEN-SHELLS");
    assert_eq!(shells, vec!["/usr/bin/dash", "/usr/bin/sh"], "{after:#}");
    // --profile: what the profile keeps is expected, not reported.
    let (_, with_profile) = check_json(&pinned.reference(), &["--profile", profile.to_str().unwrap()]);
    assert!(paths(&with_profile, "HARDEN-SHELLS").is_empty(), "{with_profile:#}");
}

#[test]
fn check_errors() {
    let fx = fixture("debian");
    let out = harden(&["check", &fx.oci_ref(), "--ignore", "HARDEN-NOPE"]);
    assert_eq!(out.status.code(), Some(2), "{}", dump(&out));
    assert!(stderr_str(&out).contains("HARDEN-NOPE"), "{}", dump(&out));
    let tmp = tempdir("check-missing");
    let out = harden(&["check", &format!("oci:{}:x", tmp.path().join("no-such-layout").display())]);
    expect_exit(&out, 1);
    let out = harden(&["check", &fx.oci_ref(), "--format", "yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", dump(&out));
}

/// `check -o FILE` and `sbom -o FILE` write what they would print, whole, to FILE (nothing on
/// stdout), replacing what was there; the SBOM written is valid CycloneDX to
/// cyclonedx-python-lib's strict validator. A FILE that cannot be written is exit 1 naming
/// `--output`, and nothing half-written is left. `harden --version` is the build id that keys
/// the caches: the version and a digest of what the binary was built from.
#[test]
fn check_and_sbom_write_to_a_file_with_o() {
    let fx = fixture("app");
    let src = fx.oci_ref();
    let tmp = tempdir("check-o");
    let sarif = tmp.path().join("findings.sarif");
    std::fs::write(&sarif, "old contents, longer than nothing").unwrap();
    let printed = harden(&["check", &src, "--format", "sarif", "-q"]);
    expect_code(&printed, 3);
    let written = harden(&["check", &src, "--format", "sarif", "-q", "-o", sarif.to_str().unwrap()]);
    expect_code(&written, 3);
    assert!(written.stdout.is_empty(), "check -o printed on stdout:\n{}", dump(&written));
    assert_eq!(std::fs::read(&sarif).unwrap(), printed.stdout, "check -o FILE holds what check prints");
    let v = read_json(&sarif);
    assert_eq!(v["version"], "2.1.0", "{v:#}");

    let bom = tmp.path().join("sbom.json");
    let out = harden(&["sbom", &src, "-q", "--output", bom.to_str().unwrap()]);
    assert!(out.status.success() && out.stdout.is_empty(), "{}", dump(&out));
    let printed = harden(&["sbom", &src, "-q"]);
    assert_eq!(std::fs::read(&bom).unwrap(), printed.stdout, "sbom -o FILE holds what sbom prints");
    crate::packages::validate_sbom(&bom);

    let nowhere = tmp.path().join("no-such-dir").join("x.json");
    let out = harden(&["sbom", &src, "-q", "-o", nowhere.to_str().unwrap()]);
    expect_exit(&out, 1);
    assert!(stderr_str(&out).contains("--output"), "{}", dump(&out));
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 2, "a temporary file was left: {left:?}");

    let out = harden(&["--version"]);
    assert!(out.status.success(), "{}", dump(&out));
    let printed = stdout_str(&out);
    let id = printed.trim().strip_prefix(concat!("harden ", env!("CARGO_PKG_VERSION"), "+")).unwrap_or_default();
    assert!(id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()), "--version printed {printed:?}");
}
