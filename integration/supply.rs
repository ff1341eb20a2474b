//! Supply chain against the real registry (Debian's docker-registry 2.8: no referrers API, so
//! the referrers tag schema is what is exercised), each format checked by a verifier harden
//! did not write:
//! - DSSE attestations (`.att`) by Python's `cryptography` (integration/dsseverify.py, in the
//!   venv integration/setup.sh installs at target/it-venv);
//! - cosign v3 bundles by sigstore-js `@sigstore/verify` (integration/bundleverify/verify.js,
//!   installed by setup.sh into target/npm) with the public key and no log or timestamp.
//!
//! Each also checks that the statement's subject is the result's digest and that the
//! provenance names the source's digest. Tampering is refused with a line naming why, exit 3.

use crate::common::*;
use crate::sign::{keygen, with_pw};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SLSA: &str = "https://slsa.dev/provenance/v1";
const CDX: &str = "https://cyclonedx.org/bom";
const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

fn python() -> PathBuf {
    let p = repo_root().join("target/it-venv/bin/python");
    assert!(p.is_file(), "{} is missing: run integration/setup.sh (make setup)", p.display());
    p
}

/// `dsseverify.py ENVELOPE PUB DIGEST TYPE`: the statement on success.
fn python_verify(envelope: &[u8], public: &Path, digest: &str, predicate_type: &str) -> (Output, Option<Value>) {
    let tmp = tempdir("dsse");
    let f = tmp.path().join("envelope.json");
    std::fs::write(&f, envelope).unwrap();
    let out = run_with_timeout(
        Command::new(python())
            .arg(integration_dir().join("dsseverify.py"))
            .arg(&f)
            .arg(public)
            .args([digest, predicate_type]),
    );
    let st = out.status.success().then(|| serde_json::from_slice(&out.stdout).expect("dsseverify prints JSON"));
    (out, st)
}

/// sigstore-js on a bundle: the JSON line it prints on success.
fn sigstore_js_verify(bundle: &[u8], public: &Path, digest: &str) -> (Output, Option<Value>) {
    let npm = repo_root().join("target/npm/node_modules");
    assert!(
        npm.join("@sigstore/verify").is_dir(),
        "{} lacks @sigstore/verify: run integration/setup.sh (make setup)",
        npm.display()
    );
    let tmp = tempdir("bundle");
    let f = tmp.path().join("bundle.json");
    std::fs::write(&f, bundle).unwrap();
    let out = run_with_timeout(
        Command::new(require_tool("node"))
            .arg(integration_dir().join("bundleverify/verify.js"))
            .arg(&f)
            .arg(public)
            .arg(digest)
            .env("NODE_PATH", &npm),
    );
    let v = out.status.success().then(|| serde_json::from_slice(&out.stdout).expect("verify.js prints JSON"));
    (out, v)
}

/// GET `/v2/REPO/PATH` with curl: (status, body).
fn get(reg: &Registry, repo: &str, path: &str) -> (u16, Vec<u8>) {
    let tmp = tempdir("get");
    let f = tmp.path().join("body");
    let out = run_ok(
        Command::new(require_tool("curl"))
            .args(["-s", "-o"])
            .arg(&f)
            .args(["-w", "%{http_code}", "-H"])
            .arg("Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json")
            .arg(format!("http://{}/v2/{repo}/{path}", reg.host)),
    );
    (stdout_str(&out).trim().parse().unwrap(), std::fs::read(&f).unwrap_or_default())
}

fn manifest(reg: &Registry, repo: &str, reference: &str) -> Value {
    let (code, body) = get(reg, repo, &format!("manifests/{reference}"));
    assert_eq!(code, 200, "{repo}:{reference}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

fn blob(reg: &Registry, repo: &str, digest: &str) -> Vec<u8> {
    let (code, body) = get(reg, repo, &format!("blobs/{digest}"));
    assert_eq!(code, 200, "{repo}@{digest}");
    assert_eq!(sha256_digest(&body), digest, "the registry's blob is not its digest");
    body
}

/// Upload a blob (POST a session, PUT the bytes with the digest) and return its digest.
fn put_blob(reg: &Registry, repo: &str, bytes: &[u8]) -> String {
    let d = sha256_digest(bytes);
    let tmp = tempdir("put");
    let f = tmp.path().join("b");
    std::fs::write(&f, bytes).unwrap();
    let started = run_ok(
        Command::new(require_tool("curl"))
            .args(["-s", "-o", "/dev/null", "-D", "-", "-X", "POST"])
            .arg(format!("http://{}/v2/{repo}/blobs/uploads/", reg.host)),
    );
    let headers = stdout_str(&started);
    let location = headers
        .lines()
        .find_map(|l| l.strip_prefix("Location: ").or_else(|| l.strip_prefix("location: ")))
        .unwrap_or_else(|| panic!("no Location in {headers}"))
        .trim()
        .to_string();
    let location = if location.starts_with('/') { format!("http://{}{location}", reg.host) } else { location };
    let sep = if location.contains('?') { '&' } else { '?' };
    let out = run_ok(
        Command::new(require_tool("curl"))
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-X",
                "PUT",
                "-H",
                "Content-Type: application/octet-stream",
                "--data-binary",
            ])
            .arg(format!("@{}", f.display()))
            .arg(format!("{location}{sep}digest={d}")),
    );
    assert_eq!(stdout_str(&out).trim(), "201", "blob upload of {d}");
    d
}

fn put_manifest(reg: &Registry, repo: &str, reference: &str, v: &Value) -> String {
    let bytes = serde_json::to_vec(v).unwrap();
    let tmp = tempdir("putm");
    let f = tmp.path().join("m");
    std::fs::write(&f, &bytes).unwrap();
    let mt = v["mediaType"].as_str().unwrap_or("application/vnd.oci.image.manifest.v1+json").to_string();
    let out = run_ok(
        Command::new(require_tool("curl"))
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "-H"])
            .arg(format!("Content-Type: {mt}"))
            .args(["--data-binary"])
            .arg(format!("@{}", f.display()))
            .arg(format!("http://{}/v2/{repo}/manifests/{reference}", reg.host)),
    );
    assert_eq!(stdout_str(&out).trim(), "201", "manifest PUT {repo}:{reference}");
    sha256_digest(&bytes)
}

fn tag_of(digest: &str) -> String {
    digest.replace(':', "-")
}

/// `rebuild --sign-key --attest`: the result's `.att` holds SLSA provenance and the CycloneDX
/// SBOM; Python's cryptography verifies both, their subject is the result and the provenance
/// names the source digest and the key that verified the source (`--require-signature`); the
/// source's own `.sig` is reported as not carried over; the same run gives the same statements.
#[test]
fn supply_rebuild_attests_provenance_and_sbom_checked_by_python() {
    let reg = Registry::start(false);
    let fx = fixture("debian");
    let src = reg.push_fixture(&fx, "vendor:1");
    let tmp = tempdir("supply-attest");
    let (key, public) = keygen(tmp.path(), "k");
    let (vendor_key, vendor_pub) = keygen(tmp.path(), "vendor");
    expect_pinned(&harden_env(&["sign", &src, "--key", vendor_key.to_str().unwrap()], &with_pw(&[])));

    let report = tmp.path().join("report.json");
    let rebuild = |report: &Path| {
        harden_env(
            &[
                "rebuild",
                &src,
                &reg.image("hard:1"),
                "--profile",
                &default_profile(),
                "--sign-key",
                key.to_str().unwrap(),
                "--attest",
                "--require-signature",
                vendor_pub.to_str().unwrap(),
                "--report",
                report.to_str().unwrap(),
            ],
            &with_pw(&[]),
        )
    };
    let out = rebuild(&report);
    let pinned = expect_pinned(&out);
    let err = stderr_str(&out);
    assert!(err.contains("verified with") && err.contains("vendor.pub"), "{}", dump(&out));
    assert!(err.contains(&format!("not carried over: {}.sig", tag_of(&fx.manifest_digest()))), "{}", dump(&out));

    let att = manifest(&reg, "hard", &format!("{}.att", tag_of(&pinned.digest)));
    let layers = att["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2, "{att}");
    let mut statements = Vec::new();
    for (l, ty) in layers.iter().zip([SLSA, CDX]) {
        assert_eq!(l["mediaType"], "application/vnd.dsse.envelope.v1+json");
        assert_eq!(l["annotations"]["predicateType"], ty);
        assert_eq!(l["annotations"]["dev.cosignproject.cosign/signature"], "");
        let env = blob(&reg, "hard", l["digest"].as_str().unwrap());
        let (ok, st) = python_verify(&env, &public, &pinned.digest, ty);
        let st = st.unwrap_or_else(|| panic!("cryptography rejects harden's {ty} attestation:\n{}", dump(&ok)));
        assert_eq!(st["_type"], "https://in-toto.io/Statement/v1");
        assert_eq!(st["subject"][0]["name"], reg.image("hard"));
        // Another key: the independent verifier refuses.
        let (_, other) = python_verify(&env, &vendor_pub, &pinned.digest, ty);
        assert!(other.is_none(), "another key verified {ty}");
        // Another digest: refused too.
        let (_, wrong) = python_verify(&env, &public, &fx.manifest_digest(), ty);
        assert!(wrong.is_none(), "{ty}'s subject matched the source digest");
        statements.push(st);
    }
    let p = &statements[0]["predicate"];
    assert_eq!(p["buildDefinition"]["buildType"], "https://harden.dev/buildtypes/rebuild/v1");
    assert_eq!(p["buildDefinition"]["externalParameters"]["source"], src);
    let deps = p["buildDefinition"]["resolvedDependencies"].as_array().unwrap();
    assert_eq!(deps[0]["digest"]["sha256"], fx.manifest_digest()[7..], "{p}");
    assert!(deps[1..].iter().all(|d| d["digest"]["sha256"].as_str().is_some_and(|h| h.len() == 64)), "{p}");
    assert!(deps[1]["uri"].as_str().unwrap().starts_with("harden:profiles/"), "{p}");
    let verified_by = p["buildDefinition"]["internalParameters"]["sourceVerifiedBy"][0].as_str().unwrap();
    assert!(verified_by.contains("vendor.pub") && verified_by.contains(&fx.manifest_digest()), "{verified_by}");
    let by = &p["runDetails"]["byproducts"][0];
    assert_eq!(by["digest"]["sha256"], pinned.digest[7..]);
    assert!(by["annotations"]["findings"].as_str().unwrap().starts_with("findings "), "{by}");
    assert!(p["runDetails"].get("metadata").is_none(), "no wall-clock time without SOURCE_DATE_EPOCH: {p}");
    assert_eq!(statements[1]["predicate"]["bomFormat"], "CycloneDX");

    let r = read_json(&report);
    assert_eq!(r["attestations"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(r["source_signatures"][0]["digest"], fx.manifest_digest());
    assert!(r["not_carried_over"][0]["what"].as_str().unwrap().ends_with(".sig (1 signature)"), "{r}");

    // harden verify --attestation agrees; with another key it refuses with exit 3.
    for t in ["slsaprovenance1", "cyclonedx", SLSA] {
        let ok = harden(&["verify", &pinned.reference(), "--key", public.to_str().unwrap(), "--attestation", t]);
        assert_eq!(expect_pinned(&ok), pinned);
    }
    let bad = harden(&[
        "verify",
        &pinned.reference(),
        "--key",
        vendor_pub.to_str().unwrap(),
        "--attestation",
        "slsaprovenance1",
    ]);
    expect_exit(&bad, 3);
    assert!(stderr_str(&bad).contains("no signature of the envelope verifies"), "{}", dump(&bad));

    // The same run again: same digest, same statements, nothing added to the .att.
    let report2 = tmp.path().join("report2.json");
    assert_eq!(expect_pinned(&rebuild(&report2)), pinned);
    let r2 = read_json(&report2);
    for (a, b) in r["attestations"].as_array().unwrap().iter().zip(r2["attestations"].as_array().unwrap()) {
        assert_eq!(a["statement_digest"], b["statement_digest"], "the same run gave another statement");
        assert_eq!(b["added"], false);
    }
    let att2 = manifest(&reg, "hard", &format!("{}.att", tag_of(&pinned.digest)));
    assert_eq!(att2["layers"].as_array().unwrap().len(), 2);
}

/// `harden attest` on any image; Python verifies it. Tampering — a changed payload, a
/// statement about another digest under this one's `.att` — is refused with a line, exit 3.
#[test]
fn supply_attest_command_and_tampering() {
    let reg = Registry::start(false);
    let fx = fixture("debian");
    let src = reg.push_fixture(&fx, "any:1");
    let tmp = tempdir("supply-tamper");
    let (key, public) = keygen(tmp.path(), "k");
    let pred = tmp.path().join("vex.json");
    std::fs::write(&pred, br#"{"@context":"https://openvex.dev/ns/v0.2.0","statements":[]}"#).unwrap();
    let attest = |image: &str| {
        harden_env(
            &[
                "attest",
                image,
                "--key",
                key.to_str().unwrap(),
                "--predicate",
                pred.to_str().unwrap(),
                "--type",
                "openvex",
            ],
            &with_pw(&[]),
        )
    };
    let pinned = expect_pinned(&attest(&src));
    assert_eq!(pinned.digest, fx.manifest_digest());
    let att_tag = format!("{}.att", tag_of(&pinned.digest));
    let att = manifest(&reg, "any", &att_tag);
    let env = blob(&reg, "any", att["layers"][0]["digest"].as_str().unwrap());
    let (out, st) = python_verify(&env, &public, &pinned.digest, "https://openvex.dev/ns");
    assert_eq!(st.unwrap_or_else(|| panic!("{}", dump(&out)))["predicate"]["statements"], json!([]));
    expect_pinned(&harden(&["verify", &src, "--key", public.to_str().unwrap(), "--attestation", "openvex"]));
    // A malformed predicate is one line, exit 1; an unknown type is a usage error.
    std::fs::write(tmp.path().join("bad.json"), b"[1,").unwrap();
    let bad = harden_env(
        &[
            "attest",
            &src,
            "--key",
            key.to_str().unwrap(),
            "--predicate",
            tmp.path().join("bad.json").to_str().unwrap(),
            "--type",
            "openvex",
        ],
        &with_pw(&[]),
    );
    expect_exit(&bad, 1);
    assert!(stderr_str(&bad).contains("not valid JSON"), "{}", dump(&bad));

    // A changed payload: same signature, the statement edited, pushed as the only layer.
    let mut e: Value = serde_json::from_slice(&env).unwrap();
    let payload = String::from_utf8(base64_decode(e["payload"].as_str().unwrap())).unwrap();
    e["payload"] = json!(base64_encode(payload.replace("statements", "statementz").as_bytes()));
    let evil = serde_json::to_vec(&e).unwrap();
    let mut m = att.clone();
    m["layers"][0]["digest"] = json!(put_blob(&reg, "any", &evil));
    m["layers"][0]["size"] = json!(evil.len());
    put_manifest(&reg, "any", &att_tag, &m);
    let (_, st) = python_verify(&evil, &public, &pinned.digest, "https://openvex.dev/ns");
    assert!(st.is_none(), "cryptography accepted a changed payload");
    let out = harden(&["verify", &src, "--key", public.to_str().unwrap(), "--attestation", "openvex"]);
    expect_exit(&out, 3);
    assert!(stderr_str(&out).contains(&format!("{att_tag} #0")), "{}", dump(&out));
    assert!(stderr_str(&out).contains("no signature of the envelope verifies"), "{}", dump(&out));

    // A subject of another digest: the original (valid) attestation of `any:1` stored as the
    // attestation of another image.
    let other_fx = fixture("app");
    let other = reg.push_fixture(&other_fx, "any:2");
    put_manifest(&reg, "any", &format!("{}.att", tag_of(&other_fx.manifest_digest())), &att);
    let out = harden(&["verify", &other, "--key", public.to_str().unwrap(), "--attestation", "openvex"]);
    expect_exit(&out, 3);
    assert!(stderr_str(&out).contains("the statement's subject is"), "{}", dump(&out));
}

fn base64_decode(s: &str) -> Vec<u8> {
    let out = Command::new(require_tool("python3"))
        .args(["-c", "import base64,sys; sys.stdout.buffer.write(base64.b64decode(sys.argv[1]))", s])
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

/// `harden sign --bundle` with two keys, one after the other: two referrers in the referrers
/// tag `sha256-<hex>` (an index whose descriptors carry artifactType and annotations), each
/// bundle accepted by sigstore-js with its key and refused with the other; `harden verify`
/// agrees. A referrer whose manifest `subject` lies, and a referrers tag that is not an index,
/// are refused (exit 3 with a line; signing refuses to overwrite it, exit 1).
#[test]
fn supply_bundles_in_the_referrers_tag_checked_by_sigstore_js() {
    let reg = Registry::start(false);
    let fx = fixture("debian");
    let src = reg.push_fixture(&fx, "b:1");
    let tmp = tempdir("supply-bundle");
    let (k1, p1) = keygen(tmp.path(), "k1");
    let (k2, p2) = keygen(tmp.path(), "k2");
    for k in [&k1, &k2] {
        let out = harden_env(&["sign", &src, "--key", k.to_str().unwrap(), "--bundle"], &with_pw(&[]));
        assert_eq!(expect_pinned(&out).digest, fx.manifest_digest());
    }
    let digest = fx.manifest_digest();
    let (code, _) = get(&reg, "b", &format!("manifests/{}.sig", tag_of(&digest)));
    assert_eq!(code, 404, "--bundle writes no legacy .sig");
    let index = manifest(&reg, "b", &tag_of(&digest));
    assert_eq!(index["mediaType"], "application/vnd.oci.image.index.v1+json");
    let refs = index["manifests"].as_array().unwrap();
    assert_eq!(refs.len(), 2, "{index}");
    for (d, public, other) in [(&refs[0], &p1, &p2), (&refs[1], &p2, &p1)] {
        assert_eq!(d["artifactType"], BUNDLE, "{d}");
        assert_eq!(d["annotations"]["dev.sigstore.bundle.predicateType"], "https://sigstore.dev/cosign/sign/v1");
        let m = manifest(&reg, "b", d["digest"].as_str().unwrap());
        assert_eq!(m["subject"]["digest"], digest);
        assert_eq!(m["artifactType"], BUNDLE);
        assert_eq!(m["config"]["mediaType"], "application/vnd.oci.empty.v1+json");
        let bundle = blob(&reg, "b", m["layers"][0]["digest"].as_str().unwrap());
        let (out, v) = sigstore_js_verify(&bundle, public, &digest);
        let v = v.unwrap_or_else(|| panic!("sigstore-js rejects harden's bundle:\n{}", dump(&out)));
        assert_eq!(v["subject"][0], digest[7..]);
        let (_, wrong) = sigstore_js_verify(&bundle, other, &digest);
        assert!(wrong.is_none(), "sigstore-js accepted another key");
    }
    for p in [&p1, &p2] {
        expect_pinned(&harden(&["verify", &src, "--key", p.to_str().unwrap()]));
    }
    // `check` counts a bundle as a signature (before it, HARDEN-SIGNATURE-MISSING was reported).
    let checked = harden(&["check", &src, "--format", "json", "--fail-on", "fatal"]);
    let findings: Value = serde_json::from_slice(&checked.stdout).unwrap_or_else(|e| panic!("{e}: {}", dump(&checked)));
    let has_missing =
        |v: &Value| v["findings"].as_array().unwrap().iter().any(|f| f["id"] == "HARDEN-SIGNATURE-MISSING");
    assert!(!has_missing(&findings), "a bundle-signed image is reported unsigned:\n{findings}");
    let unsigned = harden(&["check", &reg.push_fixture(&fx, "unsigned:1"), "--format", "json", "--fail-on", "fatal"]);
    assert!(has_missing(&serde_json::from_slice(&unsigned.stdout).unwrap()), "{}", dump(&unsigned));

    // A referrer whose manifest's subject lies: image 2's referrers tag lists image 1's bundles.
    let other_fx = fixture("app");
    let other = reg.push_fixture(&other_fx, "b:2");
    put_manifest(&reg, "b", &tag_of(&other_fx.manifest_digest()), &index);
    let out = harden(&["verify", &other, "--key", p1.to_str().unwrap()]);
    expect_exit(&out, 3);
    assert!(stderr_str(&out).contains(&format!("names subject {digest}")), "{}", dump(&out));

    // A referrers tag that holds an image manifest: signing refuses (exit 1) and leaves it;
    // verifying says so (exit 3).
    let third = reg.push_fixture(&fx, "c:1");
    let image_manifest = manifest(&reg, "c", "1");
    let planted = put_manifest(&reg, "c", &tag_of(&digest), &image_manifest);
    let out = harden_env(&["sign", &third, "--key", k1.to_str().unwrap(), "--bundle"], &with_pw(&[]));
    expect_exit(&out, 1);
    assert!(stderr_str(&out).contains("not an OCI image index"), "{}", dump(&out));
    assert_eq!(sha256_digest(&serde_json::to_vec(&manifest(&reg, "c", &tag_of(&digest))).unwrap()), planted);
    let out = harden(&["verify", &third, "--key", p1.to_str().unwrap()]);
    expect_exit(&out, 3);
    assert!(stderr_str(&out).contains("not an OCI image index"), "{}", dump(&out));
}

/// `--require-signature`: an unsigned source (or one signed by another key) is refused with
/// exit 3 before anything is pushed; a source signed only with a cosign v3 bundle passes and
/// the result is bundle-signed and attested in bundles too (`rebuild --bundle --attest`), which
/// sigstore-js accepts. Batch takes `require_signature` from `[defaults]`.
#[test]
fn supply_require_signature_gate() {
    let reg = Registry::start(false);
    let fx = fixture("debian");
    let src = reg.push_fixture(&fx, "gate:1");
    let tmp = tempdir("supply-gate");
    let (key, public) = keygen(tmp.path(), "k");
    let (vendor_key, vendor_pub) = keygen(tmp.path(), "vendor");
    let (_, stranger_pub) = keygen(tmp.path(), "stranger");
    let dst = reg.image("gated:1");
    let rebuild = |extra: &[&str]| {
        let mut args: Vec<String> = ["rebuild", &src, &dst, "--profile", "passthrough"].map(String::from).to_vec();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    // Unsigned: refused, nothing pushed.
    let a = rebuild(&["--require-signature", vendor_pub.to_str().unwrap()]);
    let out = harden(&a);
    expect_exit(&out, 3);
    assert!(stderr_str(&out).contains("no signature verifies with --require-signature"), "{}", dump(&out));
    assert!(stderr_str(&out).contains("carries no signature"), "{}", dump(&out));
    let (code, _) = get(&reg, "gated", "manifests/1");
    assert_eq!(code, 404, "a refused rebuild pushed its result");

    // Signed with a bundle by the vendor: a stranger's key is still refused, naming the bundle.
    expect_pinned(&harden_env(&["sign", &src, "--key", vendor_key.to_str().unwrap(), "--bundle"], &with_pw(&[])));
    let a = rebuild(&["--require-signature", stranger_pub.to_str().unwrap()]);
    let out = harden(&a);
    expect_exit(&out, 3);
    assert!(stderr_str(&out).contains("bundle sha256:") && stderr_str(&out).contains("FAILED"), "{}", dump(&out));

    // Either key may verify; the result is signed with a bundle of its own.
    let a = rebuild(&[
        "--require-signature",
        stranger_pub.to_str().unwrap(),
        "--require-signature",
        vendor_pub.to_str().unwrap(),
        "--sign-key",
        key.to_str().unwrap(),
        "--bundle",
        "--attest",
    ]);
    let pinned = expect_pinned(&harden_env(&a, &with_pw(&[])));
    // The referrers tag lists the signature bundle and, as cosign v3 stores attestations, the
    // provenance and SBOM bundles; sigstore-js accepts each, about the result.
    let index = manifest(&reg, "gated", &tag_of(&pinned.digest));
    let mut types = Vec::new();
    for d in index["manifests"].as_array().unwrap() {
        let m = manifest(&reg, "gated", d["digest"].as_str().unwrap());
        let bundle = blob(&reg, "gated", m["layers"][0]["digest"].as_str().unwrap());
        let (out, v) = sigstore_js_verify(&bundle, &public, &pinned.digest);
        let v = v.unwrap_or_else(|| panic!("sigstore-js rejects the result's bundle:\n{}", dump(&out)));
        types.push(v["predicateType"].as_str().unwrap().to_string());
        if v["predicateType"] == SLSA {
            let b: Value = serde_json::from_slice(&bundle).unwrap();
            let st: Value =
                serde_json::from_slice(&base64_decode(b["dsseEnvelope"]["payload"].as_str().unwrap())).unwrap();
            let dep = &st["predicate"]["buildDefinition"]["resolvedDependencies"][0];
            assert_eq!(dep["digest"]["sha256"], fx.manifest_digest()[7..], "{st}");
        }
    }
    assert_eq!(types, ["https://sigstore.dev/cosign/sign/v1", SLSA, CDX]);
    expect_pinned(&harden(&["verify", &pinned.reference(), "--key", public.to_str().unwrap()]));
    expect_pinned(&harden(&[
        "verify",
        &pinned.reference(),
        "--key",
        public.to_str().unwrap(),
        "--attestation",
        "slsaprovenance1",
    ]));

    // Batch: [defaults] require_signature; the unsigned job is refused (exit 3).
    let unsigned = reg.push_fixture(&fixture("app"), "gate:2");
    let gate = format!("require_signature = [\"{}\"]", vendor_pub.display());
    expect_gated_batch(&reg, tmp.path(), &gate, (&src, &unsigned), "no signature verifies");
}

/// protobuf-specs' published bundle JSON schema (integration/schemas, integration/bundleschema.py).
fn schema_check(bundle: &[u8]) -> Output {
    let tmp = tempdir("bundle-schema");
    let f = tmp.path().join("bundle.json");
    std::fs::write(&f, bundle).unwrap();
    run_with_timeout(Command::new(python()).arg(integration_dir().join("bundleschema.py")).arg(&f))
}

/// cosign v3 attestations (issue 21, part 6): `attest --bundle` writes a bundle referrer and no
/// `.att`; `attest` without it writes the `.att` and, since the image has a bundle (cosign v3
/// then reads bundles only), a bundle referrer too. Each referrer manifest is what cosign's
/// `WriteReferrer` writes, field by field (artifactType on the manifest and on the config
/// descriptor, `dev.sigstore.bundle.*` and `org.opencontainers.image.created` from
/// `SOURCE_DATE_EPOCH`); each bundle passes sigstore-js and protobuf-specs' JSON schema; `harden
/// verify --attestation` finds both types; a bundle with an unknown field or two signatures
/// (schema-valid or not) is refused by `harden verify`, as cosign's protojson and sigstore-go do.
#[test]
fn supply_attest_bundles_as_cosign_writes_them() {
    let reg = Registry::start(false);
    let fx = fixture("debian");
    let src = reg.push_fixture(&fx, "v3:1");
    let digest = fx.manifest_digest();
    let tmp = tempdir("supply-v3");
    let (key, public) = keygen(tmp.path(), "k");
    let k = key.to_str().unwrap();
    let pred = tmp.path().join("vex.json");
    std::fs::write(&pred, br#"{"@context":"https://openvex.dev/ns/v0.2.0","statements":[]}"#).unwrap();
    let env = with_pw(&[("SOURCE_DATE_EPOCH", "1700000000")]);
    let attest = |ty: &str, extra: &[&str]| {
        let mut args = vec!["attest", &src, "--key", k, "--predicate", pred.to_str().unwrap(), "--type", ty];
        args.extend_from_slice(extra);
        expect_pinned(&harden_env(&args, &env))
    };
    let att_tag = format!("{}.att", tag_of(&digest));
    // --bundle: a referrer, no .att.
    attest("openvex", &["--bundle"]);
    assert_eq!(get(&reg, "v3", &format!("manifests/{att_tag}")).0, 404, "attest --bundle wrote a legacy .att");
    // Without --bundle, on an image that has a bundle: the .att and a referrer.
    attest("https://example.com/predicate/v1", &[]);
    assert_eq!(manifest(&reg, "v3", &att_tag)["layers"].as_array().unwrap().len(), 1);
    let index = manifest(&reg, "v3", &tag_of(&digest));
    let refs = index["manifests"].as_array().unwrap();
    assert_eq!(refs.len(), 2, "{index:#}");
    for (d, ty) in refs.iter().zip(["https://openvex.dev/ns", "https://example.com/predicate/v1"]) {
        assert_eq!(d["artifactType"], BUNDLE, "{d}");
        let m = manifest(&reg, "v3", d["digest"].as_str().unwrap());
        // cosign's WriteReferrer, field by field.
        assert_eq!(m["schemaVersion"], 2);
        assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
        assert_eq!(m["artifactType"], BUNDLE);
        assert_eq!(
            m["config"],
            json!({"mediaType": "application/vnd.oci.empty.v1+json", "size": 2,
                   "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
                   "artifactType": BUNDLE})
        );
        assert_eq!(
            m["annotations"],
            json!({"dev.sigstore.bundle.content": "dsse-envelope", "dev.sigstore.bundle.predicateType": ty,
                   "org.opencontainers.image.created": "2023-11-14T22:13:20Z"})
        );
        assert_eq!(m["subject"]["digest"], digest);
        assert_eq!(m["layers"].as_array().unwrap().len(), 1);
        assert_eq!(m["layers"][0]["mediaType"], BUNDLE);
        let bundle = blob(&reg, "v3", m["layers"][0]["digest"].as_str().unwrap());
        let (out, v) = sigstore_js_verify(&bundle, &public, &digest);
        let v = v.unwrap_or_else(|| panic!("sigstore-js rejects the attestation bundle:\n{}", dump(&out)));
        assert_eq!(v["predicateType"], ty);
        let out = schema_check(&bundle);
        assert!(out.status.success(), "the bundle fails protobuf-specs' schema:\n{}", dump(&out));
    }
    for ty in ["openvex", "https://example.com/predicate/v1"] {
        expect_pinned(&harden(&["verify", &src, "--key", public.to_str().unwrap(), "--attestation", ty]));
    }

    // Strictness: a bundle with an unknown field, and one with two signatures, each the only
    // referrer of another image; the schema and `harden verify` both refuse them.
    let m0 = manifest(&reg, "v3", refs[0]["digest"].as_str().unwrap());
    let good: Value = serde_json::from_slice(&blob(&reg, "v3", m0["layers"][0]["digest"].as_str().unwrap())).unwrap();
    let mut unknown = good.clone();
    unknown["extra"] = json!("x");
    let mut two = good.clone();
    let s = two["dsseEnvelope"]["signatures"][0].clone();
    two["dsseEnvelope"]["signatures"].as_array_mut().unwrap().push(s);
    for (i, (bad, why)) in [(unknown, "unknown field `extra`"), (two, "2 signatures")].into_iter().enumerate() {
        let other_fx = fixture("app");
        let repo = format!("bad{i}");
        let other = reg.push_fixture(&other_fx, &format!("{repo}:1"));
        let od = other_fx.manifest_digest();
        let bytes = serde_json::to_vec(&bad).unwrap();
        assert!(!schema_check(&bytes).status.success() || i == 1, "the schema accepts an unknown field");
        let bd = put_blob(&reg, &repo, &bytes);
        put_blob(&reg, &repo, b"{}");
        let mut rm = m0.clone();
        rm["layers"][0]["digest"] = json!(bd);
        rm["layers"][0]["size"] = json!(bytes.len());
        rm["subject"] = json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": od,
                               "size": skopeo_inspect_raw_bytes(&other, &[]).len()});
        let rd = put_manifest(&reg, &repo, &sha256_digest(&serde_json::to_vec(&rm).unwrap()), &rm);
        let idx = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                         "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": rd,
                                        "size": serde_json::to_vec(&rm).unwrap().len(), "artifactType": BUNDLE,
                                        "annotations": rm["annotations"].clone()}]});
        put_manifest(&reg, &repo, &tag_of(&od), &idx);
        let out = harden(&["verify", &other, "--key", public.to_str().unwrap(), "--attestation", "openvex"]);
        expect_exit(&out, 3);
        assert!(stderr_str(&out).contains(why), "{}", dump(&out));
    }
}

/// Signatures and attestations in an `oci:` layout (issue 21, part 5), found the way cosign's
/// `--local-image` finds them (pkg/oci/layout/index.go `imageByAnnotation`: the first
/// `index.json` entry whose `kind` annotation is `dev.cosignproject.cosign/image`, `…/sigs`,
/// `…/atts`), beside harden's own tags; and a layout shaped as `cosign save` writes it
/// (pkg/oci/layout/write.go: entries with `kind` only, no `ref.name`; crafted here per that code,
/// since cosign is not installable here) answers `harden verify` with no tag.
#[test]
fn supply_oci_layout_signatures_as_cosign_keeps_them() {
    let tmp = tempdir("supply-layout-kinds");
    let fx = fixture("app").copy_into(tmp.path());
    let src = fx.oci_ref();
    let digest = fx.manifest_digest();
    let (key, public) = keygen(tmp.path(), "k");
    let k = key.to_str().unwrap();
    let pred = tmp.path().join("vex.json");
    std::fs::write(&pred, br#"{"@context":"https://openvex.dev/ns/v0.2.0","statements":[]}"#).unwrap();
    expect_pinned(&harden_env(&["sign", &src, "--key", k], &with_pw(&[])));
    expect_pinned(&harden_env(
        &["attest", &src, "--key", k, "--predicate", pred.to_str().unwrap(), "--type", "openvex"],
        &with_pw(&[]),
    ));
    let index = read_json(&fx.layout.join("index.json"));
    let entries = index["manifests"].as_array().unwrap();
    // cosign's lookup: the first entry of each kind.
    let by_kind = |kind: &str| {
        entries
            .iter()
            .find(|e| e["annotations"]["kind"] == kind)
            .unwrap_or_else(|| panic!("no entry of kind {kind}: {index:#}"))
    };
    assert_eq!(by_kind("dev.cosignproject.cosign/image")["digest"], digest.as_str());
    for (kind, ext) in [("dev.cosignproject.cosign/sigs", "sig"), ("dev.cosignproject.cosign/atts", "att")] {
        let e = by_kind(kind);
        let tag = format!("{}.{ext}", tag_of(&digest));
        assert_eq!(e["annotations"]["org.opencontainers.image.ref.name"], tag.as_str(), "{index:#}");
        assert_eq!(entries.iter().filter(|x| x["annotations"]["kind"] == kind).count(), 1, "{index:#}");
        // skopeo reads the same manifest by harden's tag.
        let raw = skopeo_inspect_raw_bytes(&format!("oci:{}:{tag}", fx.layout.display()), &[]);
        assert_eq!(sha256_digest(&raw), e["digest"].as_str().unwrap());
    }
    // The fixture's tag still names the image.
    assert_eq!(oci_manifest_digest(&fx.layout, &fx.tag), digest);

    // `cosign save`'s shape: the same blobs, three entries marked by kind only.
    let saved = tmp.path().join("saved");
    std::fs::create_dir(&saved).unwrap();
    run_ok(Command::new("cp").arg("-a").arg(fx.layout.join("blobs")).arg(&saved));
    std::fs::copy(fx.layout.join("oci-layout"), saved.join("oci-layout")).unwrap();
    let mark = |e: &Value, kind: &str| json!({"mediaType": e["mediaType"], "size": e["size"], "digest": e["digest"], "annotations": {"kind": kind}});
    let kinds = ["dev.cosignproject.cosign/image", "dev.cosignproject.cosign/sigs", "dev.cosignproject.cosign/atts"];
    let list: Vec<Value> = kinds.iter().map(|k| mark(by_kind(k), k)).collect();
    std::fs::write(
        saved.join("index.json"),
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": list})).unwrap(),
    )
    .unwrap();
    let saved_ref = format!("oci:{}", saved.display());
    let pubs = public.to_str().unwrap();
    let ok = harden(&["verify", &saved_ref, "--key", pubs, "--attestation", "openvex"]);
    assert_eq!(expect_pinned(&ok).digest, digest, "{}", dump(&ok));
    // Another key verifies neither: exit 3.
    let (_, other) = keygen(tmp.path(), "other");
    expect_exit(&harden(&["verify", &saved_ref, "--key", other.to_str().unwrap()]), 3);
}
