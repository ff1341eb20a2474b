//! Keyless (Sigstore) verification against a private Sigstore instance, no network:
//! integration/keyless/sigstore_mock.py (Python `cryptography`) is the Fulcio-like CA, the CT
//! log, the Rekor-like log and writes `trusted_root.json`; it signs images in both cosign
//! formats (v0.3 bundle referrers, legacy `.sig` with certificate/bundle annotations) and pushes
//! them to the test's registry. sigstore-js (`@sigstore/verify`, integration/keyless/verify.js)
//! judges each signature first; then `harden verify` and the rebuild gate must agree.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ID: &str = "https://github.com/vendor/app/.github/workflows/release.yml@refs/tags/v1";
const ISS: &str = "https://token.actions.githubusercontent.com";

fn python() -> PathBuf {
    let p = repo_root().join("target/it-venv/bin/python");
    assert!(p.is_file(), "{} is missing: run integration/setup.sh (make setup)", p.display());
    p
}

/// The predicate type of the mock's keyless attestations (`--format att`).
const SLSA: &str = "https://slsa.dev/provenance/v1";

fn mock(args: &[&str]) -> Output {
    run_ok(Command::new(python()).arg(integration_dir().join("keyless/sigstore_mock.py")).args(args))
}

/// sigstore-js on what the mock wrote to OUT: Ok on acceptance, Err(its line).
fn sigstore_js(out: &Path, root: &Path, digest: &str, format: &str) -> Result<(), String> {
    let npm = repo_root().join("target/npm/node_modules");
    assert!(npm.join("@sigstore/verify").is_dir(), "{} lacks @sigstore/verify: run make setup", npm.display());
    let mut c = Command::new(require_tool("node"));
    c.arg(integration_dir().join("keyless/verify.js")).arg(out.join("bundle.json")).arg(root).args([digest, ID, ISS]);
    if format == "legacy" {
        c.arg(out.join("payload"));
    }
    let o = run_with_timeout(c.env("NODE_PATH", &npm));
    if o.status.success() {
        Ok(())
    } else {
        Err(stdout_str(&o))
    }
}

/// A tiny image (one empty tar layer) pushed to REPO:1; its digest.
fn tiny_image(reg: &Registry, repo: &str, tmp: &Path) -> String {
    let dir = tmp.join(format!("layout-{}", repo.replace('/', "-")));
    let layer = vec![0u8; 1024];
    oci_layout_of_layers(&dir, &[&layer], serde_json::json!({"Labels": {"repo": repo}}));
    skopeo_copy(&format!("oci:{}:t", dir.display()), &reg.image(&format!("{repo}:1")));
    skopeo_inspect(&reg.image(&format!("{repo}:1")), &[])["Digest"].as_str().unwrap().to_string()
}

fn verify_keyless(image: &str, root: &Path, extra: &[&str]) -> Output {
    let mut a = vec![
        "verify",
        image,
        "--certificate-identity",
        ID,
        "--certificate-oidc-issuer",
        ISS,
        "--trusted-root",
        root.to_str().unwrap(),
    ];
    a.extend_from_slice(extra);
    harden(&a)
}

/// Both formats verify (sigstore-js first); each bad case is refused by both, with its own
/// reason from harden and exit 3; usage and unreadable input exit 2 and 1.
#[test]
fn keyless_verify_both_formats_and_each_refusal() {
    let reg = Registry::start(false);
    let tmp = tempdir("keyless");
    let inst = tmp.path().join("sigstore");
    mock(&["init", inst.to_str().unwrap()]);
    let root = inst.join("trusted_root.json");
    // (variant, formats, what harden must say, whether sigstore-js refuses it too)
    let cases: &[(&str, &[&str], &str, bool)] = &[
        ("", &["bundle", "legacy"], "verified keyless: ", false),
        ("other-ca", &["bundle", "legacy"], "FAILED: untrusted chain", true),
        ("loop-chain", &["legacy"], "FAILED: untrusted chain", true),
        ("other-digest", &["bundle", "legacy"], "FAILED: tampered: the log entry is for another artifact", true),
        ("bad-set", &["bundle", "legacy"], "FAILED: no log proof: the signed entry timestamp does not verify", true),
        ("no-log", &["bundle", "legacy"], "FAILED: no log proof: no transparency log entry", true),
        ("tampered-payload", &["bundle", "legacy"], "FAILED: tampered", true),
        ("malformed-cert", &["bundle", "legacy"], "FAILED: unreadable: malformed certificate", true),
        ("bad-sct", &["bundle", "legacy"], "FAILED: no valid SCT", true),
        ("bad-checkpoint", &["bundle"], "FAILED: no log proof: the checkpoint's signature does not verify", true),
        ("unknown-field", &["bundle"], "FAILED: unreadable: not a sigstore bundle (unknown field `extraTrust`", false),
        // RFC 3161 timestamps (OpenSSL's TSA) and Rekor v2 entries (no SET).
        ("tsa", &["bundle", "legacy"], "verified keyless: ", false),
        ("rekor-v2-tsa", &["bundle"], "verified keyless: ", false),
        (
            "rekor-v2",
            &["bundle"],
            "FAILED: no proof of time: the log entry (Rekor v2) proves inclusion but not time",
            true,
        ),
        (
            "tsa-other-sig",
            &["bundle", "legacy"],
            "FAILED: no proof of time: the timestamp is over another signature",
            true,
        ),
        (
            "tsa-untrusted",
            &["bundle"],
            "FAILED: no proof of time: the timestamp is signed by a TSA not in the trusted root",
            true,
        ),
        ("tsa-tampered", &["bundle"], "FAILED: no proof of time: the timestamp is tampered", true),
        ("tsa-expired", &["bundle"], "FAILED: certificate outside its validity: signed at", true),
        // cosign 2's keyless attestations: `.att` layers, Rekor intoto 0.0.2 entries.
        ("", &["att"], "verified keyless: ", false),
        ("tsa", &["att"], "verified keyless: ", false),
        ("other-digest", &["att"], "FAILED: tampered: the log entry is for another artifact", true),
        ("tampered-payload", &["att"], "FAILED: tampered", true),
        ("bad-set", &["att"], "FAILED: no log proof: the signed entry timestamp does not verify", true),
    ];
    for (variant, formats, want, js_refuses) in cases {
        for format in *formats {
            let repo = format!("k-{format}-{}", if variant.is_empty() { "good" } else { variant });
            let digest = tiny_image(&reg, &repo, tmp.path());
            let image = reg.image(&format!("{repo}:1"));
            let out_dir = tmp.path().join(&repo);
            let mut a = vec![
                "sign",
                inst.to_str().unwrap(),
                &digest,
                out_dir.to_str().unwrap(),
                "--format",
                format,
                "--identity",
                ID,
                "--issuer",
                ISS,
                "--push",
            ];
            let host_repo = format!("{}/{repo}", reg.host);
            a.extend(["--ref", &host_repo]);
            if !variant.is_empty() {
                a.extend(["--variant", variant]);
            }
            mock(&a);
            let js = sigstore_js(&out_dir, &root, &digest, format);
            assert_eq!(js.is_err(), *js_refuses, "sigstore-js on {format} {variant}: {js:?}");
            let attestation: &[&str] = if *format == "att" { &["--attestation", SLSA] } else { &[] };
            let out = verify_keyless(&image, &root, attestation);
            let err = stderr_str(&out);
            assert!(err.contains(want), "{format} {variant}: want {want:?}:\n{}", dump(&out));
            if *format == "att" {
                assert!(err.contains(".att #0 sha256:"), "{}", dump(&out));
            }
            if variant.is_empty() && *format != "att" {
                let pinned = expect_pinned(&out);
                assert_eq!(pinned.digest, digest);
                assert!(err.contains(&format!("verified keyless: {ID} ({ISS}), log entry 1 at ")), "{}", dump(&out));
                // Another identity, another issuer: refused with that reason (regexps too).
                let who = |id_flag: &str, id: &str, iss_flag: &str, iss: &str| {
                    harden(&["verify", &image, id_flag, id, iss_flag, iss, "--trusted-root", root.to_str().unwrap()])
                };
                let o = who("--certificate-identity", "https://github.com/evil/app", "--certificate-oidc-issuer", ISS);
                expect_exit(&o, 3);
                assert!(stderr_str(&o).contains("FAILED: wrong identity: the certificate names"), "{}", dump(&o));
                let vendor = "^https://github\\.com/vendor/";
                let o = who(
                    "--certificate-identity-regexp",
                    vendor,
                    "--certificate-oidc-issuer",
                    "https://accounts.google.com",
                );
                expect_exit(&o, 3);
                assert!(stderr_str(&o).contains("FAILED: wrong issuer"), "{}", dump(&o));
                expect_pinned(&who(
                    "--certificate-identity-regexp",
                    vendor,
                    "--certificate-oidc-issuer-regexp",
                    "githubusercontent",
                ));
                // A root whose only CA expired before the signature.
                let o = verify_keyless(&image, &inst.join("trusted_root_expired_ca.json"), &[]);
                expect_exit(&o, 3);
                assert!(stderr_str(&o).contains("no certificate authority valid at"), "{}", dump(&o));
            } else if want.starts_with("verified") {
                assert_eq!(expect_pinned(&out).digest, digest);
                if variant.contains("tsa") {
                    assert!(err.contains(", timestamped by https://tsa.mock.harden"), "{}", dump(&out));
                }
                if *format == "att" {
                    // An attestation is not a signature: without --attestation nothing verifies.
                    let o = verify_keyless(&image, &root, &[]);
                    expect_exit(&o, 3);
                    assert!(stderr_str(&o).contains("no keyless signatures"), "{}", dump(&o));
                }
            } else {
                expect_exit(&out, 3);
            }
        }
    }
    // Usage and unreadable input.
    let image = reg.image("k-bundle-good:1");
    let o = harden(&["verify", &image, "--certificate-identity", ID, "--trusted-root", root.to_str().unwrap()]);
    expect_exit(&o, 2);
    let o = harden(&["verify", &image, "--certificate-identity", ID, "--certificate-oidc-issuer", ISS]);
    expect_exit(&o, 2);
    let o = harden(&[
        "verify",
        &image,
        "--certificate-identity-regexp",
        "(",
        "--certificate-oidc-issuer",
        ISS,
        "--trusted-root",
        root.to_str().unwrap(),
    ]);
    expect_exit(&o, 2);
    let bad_root = tmp.path().join("bad_root.json");
    std::fs::write(&bad_root, b"{\"mediaType\": 1").unwrap();
    let o = verify_keyless(&image, &bad_root, &[]);
    expect_exit(&o, 1);
    assert!(stderr_str(&o).contains("trusted root"), "{}", dump(&o));
}

/// The gate: `rebuild --require-identity --require-issuer --trusted-root` refuses a source
/// signed by another identity (exit 3, nothing pushed) and passes one the vendor signed, with
/// the identity, issuer, log entry and timestamp authority in the report and the provenance; `--require-signature`
/// and a keyless identity are alternatives.
#[test]
fn keyless_rebuild_gate() {
    let reg = Registry::start(false);
    let tmp = tempdir("keyless-gate");
    let inst = tmp.path().join("sigstore");
    mock(&["init", inst.to_str().unwrap()]);
    let root = inst.join("trusted_root.json");
    let fx = fixture("debian");
    let src = reg.push_fixture(&fx, "vendor:1");
    let digest = fx.manifest_digest();
    let host_repo = format!("{}/vendor", reg.host);
    let dst = reg.image("gated:1");
    let rebuild = |extra: &[&str]| {
        let mut a: Vec<String> = ["rebuild", &src, &dst, "--profile", "passthrough"].map(String::from).to_vec();
        a.extend(extra.iter().map(|s| s.to_string()));
        harden(&a)
    };
    let gate = ["--require-identity", ID, "--require-issuer", ISS, "--trusted-root", root.to_str().unwrap()];
    // Unsigned: refused before anything is rewritten.
    let out = rebuild(&gate);
    expect_exit(&out, 3);
    assert!(stderr_str(&out).contains("no keyless signature verifies for identity"), "{}", dump(&out));
    // Signed by another workflow: refused, naming it.
    let d = tmp.path().join("evil");
    mock(&[
        "sign",
        inst.to_str().unwrap(),
        &digest,
        d.to_str().unwrap(),
        "--format",
        "bundle",
        "--identity",
        "https://github.com/evil/app/.github/workflows/x.yml@refs/heads/main",
        "--issuer",
        ISS,
        "--ref",
        &host_repo,
        "--push",
    ]);
    let out = rebuild(&gate);
    expect_exit(&out, 3);
    assert!(
        stderr_str(&out).contains("wrong identity: the certificate names https://github.com/evil/app"),
        "{}",
        dump(&out)
    );
    assert!(skopeo_inspect_result_absent(&dst), "a refused rebuild pushed its result");
    // Signed by the vendor's workflow (legacy .sig, with a TSA timestamp): passes; report and provenance say who.
    let d = tmp.path().join("vendor");
    mock(&[
        "sign",
        inst.to_str().unwrap(),
        &digest,
        d.to_str().unwrap(),
        "--format",
        "legacy",
        "--identity",
        ID,
        "--issuer",
        ISS,
        "--ref",
        &host_repo,
        "--push",
        "--variant",
        "tsa",
    ]);
    let report = tmp.path().join("report.json");
    let mut a = gate.to_vec();
    a.extend(["--report", report.to_str().unwrap()]);
    let out = rebuild(&a);
    expect_pinned(&out);
    assert!(stderr_str(&out).contains(&format!("verified keyless: {ID} ({ISS}), log entry 1")), "{}", dump(&out));
    let rep = read_json(&report);
    let s = &rep["source_signatures"][0];
    assert_eq!(
        (s["identity"].as_str(), s["issuer"].as_str(), s["log_index"].as_i64()),
        (Some(ID), Some(ISS), Some(1)),
        "{rep}"
    );
    assert_eq!(s["digest"], digest.as_str());
    // Its RFC 3161 timestamp (cosign 2's annotation) verified too, and is named.
    assert_eq!(s["timestamp_authority"], "https://tsa.mock.harden", "{rep}");
    // A stranger's key or the vendor's identity: either passes.
    let (_, stranger_pub) = crate::sign::keygen(tmp.path(), "stranger");
    let mut a = gate.to_vec();
    a.extend(["--require-signature", stranger_pub.to_str().unwrap()]);
    expect_pinned(&rebuild(&a));

    // Batch: the gate from [defaults]; an unsigned source is refused (exit 3), the signed passes.
    let unsigned = reg.push_fixture(&fixture("app"), "unsigned:1");
    let gate =
        format!("require_identity = [\"{ID}\"]\nrequire_issuer = [\"{ISS}\"]\ntrusted_root = \"{}\"", root.display());
    expect_gated_batch(&reg, tmp.path(), &gate, (&src, &unsigned), "no keyless signature verifies");
}

fn skopeo_inspect_result_absent(image: &str) -> bool {
    let out = run_with_timeout(
        Command::new(require_tool("skopeo")).args(["inspect", "--raw", "--tls-verify=false"]).arg(skopeo_ref(image)),
    );
    !out.status.success()
}
