//! `harden keygen`, `harden sign`, `harden verify` and `rebuild --sign-key` against the real
//! registry, checked by an independent implementation: `sigverify`, a small binary built on the
//! sigstore crate's cosign verification (integration/sigverify). The sigstore crate is not a
//! dev-dependency of harden (it takes minutes to build); the first test that needs sigverify
//! builds it once into target/sigverify with cargo, later runs reuse it.

use crate::common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub(crate) const PW: &str = "it-password";

/// target/sigverify/release/sigverify, built on first use (once per test process).
fn sigverify() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let target = repo_root().join("target/sigverify");
        let bin = target.join("release/sigverify");
        if !bin.is_file() {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            run_ok(
                Command::new(cargo)
                    .args(["build", "--release"])
                    .current_dir(integration_dir().join("sigverify"))
                    .env("CARGO_TARGET_DIR", &target),
            );
        }
        assert!(bin.is_file(), "building integration/sigverify did not produce {}", bin.display());
        bin
    })
    .clone()
}

/// `sigverify verify --plain-http REF PUB` (the sigstore crate's cosign verification).
fn sigverify_verify(reference: &str, public_key: &Path) -> std::process::Output {
    run_with_timeout(Command::new(sigverify()).args(["verify", "--plain-http", reference]).arg(public_key))
}

pub(crate) fn with_pw<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut v = vec![("HARDEN_PASSWORD", PW)];
    v.extend_from_slice(extra);
    v
}

/// `harden keygen --output DIR/NAME` with the test password; returns (key, pub).
pub(crate) fn keygen(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let prefix = dir.join(name);
    let out = harden_env(&["keygen", "--output", prefix.to_str().unwrap()], &with_pw(&[]));
    assert!(out.status.success(), "keygen failed:\n{}", dump(&out));
    assert!(out.stdout.is_empty(), "keygen prints nothing on stdout:\n{}", dump(&out));
    let (k, p) = (dir.join(format!("{name}.key")), dir.join(format!("{name}.pub")));
    let pem = std::fs::read_to_string(&k).unwrap();
    assert!(pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"), "{pem}");
    assert!(std::fs::read_to_string(&p).unwrap().starts_with("-----BEGIN PUBLIC KEY-----\n"));
    (k, p)
}

/// The `.sig` tag of a digest.
fn sig_tag(digest: &str) -> String {
    format!("{}.sig", digest.replace(':', "-"))
}

/// Every line of a successful `harden sign`, as `NAME@sha256:…`.
fn signed_lines(out: &std::process::Output) -> Vec<Pinned> {
    assert!(out.status.success(), "harden sign failed:\n{}", dump(out));
    let stdout = stdout_str(out);
    stdout
        .lines()
        .map(|l| {
            let (name, digest) = l.rsplit_once('@').unwrap_or_else(|| panic!("line {l:?} is not NAME@sha256:HEX"));
            assert!(is_sha256_digest(digest), "{l:?}");
            Pinned { name: name.to_string(), digest: digest.to_string() }
        })
        .collect()
}

/// keygen → sign by tag → sigstore's cosign verification → harden verify; another key fails
/// with exit 3; signing again adds nothing; the layer and payload are cosign's, byte for byte.
#[test]
fn sign_registry_image_verified_by_sigstore() {
    let reg = Registry::start(false);
    let fx = fixture("debian");
    let src = reg.push_fixture(&fx, "debian:1");
    let tmp = tempdir("sign-reg");
    let (key, public) = keygen(tmp.path(), "k");

    // Existing files are kept without --force.
    let again = harden_env(&["keygen", "--output", tmp.path().join("k").to_str().unwrap()], &with_pw(&[]));
    expect_exit(&again, 1);
    assert!(stderr_str(&again).contains("already exists"), "{}", dump(&again));

    let out = harden_env(&["sign", &src, "--key", key.to_str().unwrap()], &with_pw(&[]));
    let pinned = expect_pinned(&out);
    assert_eq!(pinned.name, reg.image("debian"));
    assert_eq!(pinned.digest, fx.manifest_digest(), "the tag must be resolved to the image digest");

    let sv = sigverify_verify(&pinned.reference(), &public);
    assert!(sv.status.success(), "sigstore's cosign verification rejects harden's signature:\n{}", dump(&sv));
    let sv = sigverify_verify(&src, &public);
    assert!(sv.status.success(), "by tag:\n{}", dump(&sv));

    let ok = harden(&["verify", &src, "--key", public.to_str().unwrap()]);
    assert_eq!(expect_pinned(&ok), pinned);

    // Another key: nothing verifies, exit 3 with the reason; sigstore agrees.
    let (_, other_pub) = keygen(tmp.path(), "other");
    let bad = harden(&["verify", &src, "--key", other_pub.to_str().unwrap()]);
    expect_exit(&bad, 3);
    assert!(stderr_str(&bad).contains("signature does not verify with the public key"), "{}", dump(&bad));
    let sv = sigverify_verify(&pinned.reference(), &other_pub);
    assert_eq!(sv.status.code(), Some(1), "sigverify must reject another key:\n{}", dump(&sv));

    // Signing again with the same key adds no layer.
    let sig_ref = reg.image(&format!("debian:{}", sig_tag(&pinned.digest)));
    let before = skopeo_inspect_raw_bytes(&sig_ref, &[]);
    assert_eq!(expect_pinned(&harden_env(&["sign", &src, "--key", key.to_str().unwrap()], &with_pw(&[]))), pinned);
    assert_eq!(skopeo_inspect_raw_bytes(&sig_ref, &[]), before, "signing twice with one key changed the .sig manifest");

    // The .sig manifest and payload are exactly cosign's.
    let m: Value = serde_json::from_slice(&before).unwrap();
    assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(m["config"]["mediaType"], "application/vnd.oci.image.config.v1+json");
    let layers = m["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{m}");
    assert_eq!(layers[0]["mediaType"], "application/vnd.dev.cosign.simplesigning.v1+json");
    assert!(layers[0]["annotations"]["dev.cosignproject.cosign/signature"].is_string(), "{m}");
    let copy = tmp.path().join("sig-layout");
    skopeo_copy(&sig_ref, &format!("oci:{}:sig", copy.display()));
    let payload = oci_read_blob_verified(&copy, layers[0]["digest"].as_str().unwrap());
    let want = format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{}"}},"image":{{"docker-manifest-digest":"{}"}},"type":"cosign container image signature"}},"optional":null}}"#,
        reg.image("debian"),
        pinned.digest
    );
    assert_eq!(String::from_utf8(payload).unwrap(), want);

    // A wrong password is one clear error, exit 1.
    let wrong = harden_env(&["sign", &src, "--key", key.to_str().unwrap()], &[("HARDEN_PASSWORD", "nope")]);
    expect_exit(&wrong, 1);
    assert!(stderr_str(&wrong).contains("wrong password"), "{}", dump(&wrong));
}

/// A key written by the sigstore crate (src/sign/testdata/sigstore-rs.key) loads in harden and
/// signs (password via COSIGN_PASSWORD); -a annotations land in the payload; both verifiers agree.
#[test]
fn sign_with_sigstore_written_key() {
    let reg = Registry::start(false);
    let fx = fixture("debian");
    let src = reg.push_fixture(&fx, "sigstore-key:1");
    let testdata = repo_root().join("src/sign/testdata");
    let out = harden_env(
        &["sign", &src, "--key", testdata.join("sigstore-rs.key").to_str().unwrap(), "-a", "team=infra"],
        &[("COSIGN_PASSWORD", "harden-test")],
    );
    let pinned = expect_pinned(&out);
    let public = testdata.join("sigstore-rs.pub");
    let sv = sigverify_verify(&pinned.reference(), &public);
    assert!(sv.status.success(), "{}", dump(&sv));
    expect_pinned(&harden(&["verify", &src, "--key", public.to_str().unwrap()]));
    // The cosign-format key of a third implementation (N=65536, older PEM label) signs too.
    let out = harden_env(
        &["sign", &src, "--key", testdata.join("cosign-compat.key").to_str().unwrap()],
        &[("COSIGN_PASSWORD", "harden-test")],
    );
    expect_pinned(&out);
    let sv = sigverify_verify(&pinned.reference(), &testdata.join("cosign-compat.pub"));
    assert!(sv.status.success(), "{}", dump(&sv));
    let m = skopeo_inspect_raw(&reg.image(&format!("sigstore-key:{}", sig_tag(&pinned.digest))));
    assert_eq!(m["layers"].as_array().unwrap().len(), 2, "{m}");
}

/// A multi-platform index: every platform manifest and the index are signed, and sigstore
/// verifies each.
#[test]
fn sign_index_signs_every_manifest() {
    let reg = Registry::start(false);
    let tmp = tempdir("sign-index");
    let fx = fixture("debian").copy_into(tmp.path());
    let digest = fx.manifest_digest();
    let size = std::fs::metadata(oci_blob_path(&fx.layout, &digest)).unwrap().len();
    let index = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": size, "platform": {"os": "linux", "architecture": "amd64"}}]}))
    .unwrap();
    let index_digest = sha256_digest(&index);
    std::fs::write(oci_blob_path(&fx.layout, &index_digest), &index).unwrap();
    let mut idx = read_json(&fx.layout.join("index.json"));
    idx["manifests"].as_array_mut().unwrap().push(json!({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": index_digest, "size": index.len(), "annotations": {"org.opencontainers.image.ref.name": "multi"}}));
    std::fs::write(fx.layout.join("index.json"), serde_json::to_vec(&idx).unwrap()).unwrap();
    let mut c = Command::new(require_tool("skopeo"));
    c.args(["copy", "--quiet", "--all", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:multi", fx.layout.display()))
        .arg(reg.docker("multi:1"));
    run_ok(&mut c);

    let (key, public) = keygen(tmp.path(), "k");
    let out = harden_env(&["sign", &reg.image("multi:1"), "--key", key.to_str().unwrap()], &with_pw(&[]));
    let lines = signed_lines(&out);
    let digests: Vec<&str> = lines.iter().map(|p| p.digest.as_str()).collect();
    assert_eq!(digests, vec![index_digest.as_str(), digest.as_str()], "{}", dump(&out));
    for p in &lines {
        let sv = sigverify_verify(&p.reference(), &public);
        assert!(sv.status.success(), "{}:\n{}", p.reference(), dump(&sv));
    }
    expect_pinned(&harden(&["verify", &reg.image("multi:1"), "--key", public.to_str().unwrap()]));
}

/// `rebuild --sign-key` signs the pushed result; the report records the signature.
#[test]
fn rebuild_sign_key_signs_result_and_reports_it() {
    let reg = Registry::start(false);
    let fx = fixture("debian");
    let src = reg.push_fixture(&fx, "debian:1");
    let tmp = tempdir("sign-rebuild");
    let (key, public) = keygen(tmp.path(), "k");
    let report = tmp.path().join("report.json");
    let out = harden_env(
        &[
            "rebuild",
            &src,
            &reg.image("signed:1"),
            "--profile",
            &default_profile(),
            "--sign-key",
            key.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
        &with_pw(&[]),
    );
    let pinned = expect_pinned(&out);
    let sv = sigverify_verify(&pinned.reference(), &public);
    assert!(sv.status.success(), "{}", dump(&sv));
    expect_pinned(&harden(&["verify", &pinned.reference(), "--key", public.to_str().unwrap()]));

    let r = read_json(&report);
    let sig = &r["signature"];
    assert_eq!(sig["tag"], sig_tag(&pinned.digest), "{r}");
    let raw = skopeo_inspect_raw_bytes(&reg.image(&format!("signed:{}", sig_tag(&pinned.digest))), &[]);
    assert_eq!(sig["manifest_digest"], sha256_digest(&raw), "{r}");
    let m: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(sig["payload_digest"], m["layers"][0]["digest"], "{r}");
}
