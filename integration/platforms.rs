//! Multi-platform images and the rewrite cache: an index is rebuilt platform by platform into a
//! new index (same platforms, order and annotations; attestations dropped), a layer shared by two
//! platforms is rewritten once, `--platform` chooses, and a rerun with the cache recompresses
//! nothing.

use crate::common::*;
use serde_json::{json, Value};

/// Add to the app fixture's layout an index of two "platforms" (the app and app-shellcmd images,
/// which share their base layer) and an attestation manifest, tagged `multi`.
pub(crate) fn multi_platform_layout(tmp: &std::path::Path) -> (Fixture, Value) {
    let fx = fixture("app").copy_into(tmp);
    let entry = |tag: &str, platform: Value| {
        let d = oci_manifest_digest(&fx.layout, tag);
        let size = std::fs::metadata(oci_blob_path(&fx.layout, &d)).unwrap().len();
        json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": size, "platform": platform})
    };
    let mut attestation = entry("app", json!({"os": "unknown", "architecture": "unknown"}));
    attestation["annotations"] = json!({"vnd.docker.reference.type": "attestation-manifest"});
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry("app", json!({"os": "linux", "architecture": "amd64"})),
                      entry("app-shellcmd", json!({"os": "linux", "architecture": "arm64", "variant": "v8"})),
                      attestation],
        "annotations": {"org.example.note": "kept"}});
    let bytes = serde_json::to_vec(&index).unwrap();
    let d = sha256_digest(&bytes);
    std::fs::write(oci_blob_path(&fx.layout, &d), &bytes).unwrap();
    let mut idx = read_json(&fx.layout.join("index.json"));
    idx["manifests"].as_array_mut().unwrap().push(json!({"mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": d, "size": bytes.len(), "annotations": {"org.opencontainers.image.ref.name": "multi"}}));
    std::fs::write(fx.layout.join("index.json"), serde_json::to_vec(&idx).unwrap()).unwrap();
    (fx, index)
}

#[test]
fn index_is_rebuilt_per_platform_and_shared_layers_once() {
    let reg = Registry::start(false);
    let tmp = tempdir("platforms");
    let (fx, source_index) = multi_platform_layout(tmp.path());
    let src = format!("oci:{}:multi", fx.layout.display());
    let dst = reg.image("multi:hard");
    let cache = tmp.path().join("cache");
    let report = tmp.path().join("report.json");
    // The same rebuild twice, into the same cache: the second must recompress nothing.
    let run_to = |dst: &str| {
        harden(&[
            "rebuild",
            &src,
            dst,
            "-p",
            "baseline",
            "--cache-dir",
            cache.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ])
    };
    let run = || run_to(&dst);
    let out = run();
    let pinned = expect_pinned(&out);
    assert!(stderr_str(&out).contains("dropping attestation manifest"), "{}", dump(&out));

    // A real index, verified by skopeo, with the same platforms in the same order.
    let raw = skopeo_inspect_raw_bytes(&pinned.reference(), &[]);
    assert_eq!(sha256_digest(&raw), pinned.digest);
    let index: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(index["mediaType"], "application/vnd.oci.image.index.v1+json");
    let platforms: Vec<&Value> = index["manifests"].as_array().unwrap().iter().map(|m| &m["platform"]).collect();
    assert_eq!(platforms, vec![&source_index["manifests"][0]["platform"], &source_index["manifests"][1]["platform"]]);
    assert_eq!(index["annotations"]["org.example.note"], "kept");
    let copy = tmp.path().join("copy");
    skopeo_copy_args(&pinned.reference(), &format!("oci:{}:x", copy.display()), &["--all"]);

    // The base layer both platforms share was rewritten once: the second platform reused it.
    let r = read_json(&report);
    let images = r["images"].as_array().expect("per-platform reports");
    assert_eq!(images.len(), 2);
    let base = |i: usize| images[i]["layers"][0].clone();
    assert_eq!(base(0)["action"], "rewritten", "{r}");
    assert_eq!(base(1)["action"], "rewritten (cached)", "{r}");
    assert_eq!(base(0)["output_digest"], base(1)["output_digest"]);

    // A rerun finds the index at its destination (each platform's manifest and blobs there,
    // made from this source) and only tags it again.
    let again = run();
    assert_eq!(expect_pinned(&again).digest, pinned.digest);
    assert!(stderr_str(&again).contains("nothing rebuilt"), "{}", dump(&again));
    assert_eq!(read_json(&report)["reused"]["made_by"]["images"].as_array().map(Vec::len), Some(2));

    // Without the result record, into another repository it is rebuilt: nothing recompressed
    // (the rewrite cache), the same digest.
    std::fs::remove_dir_all(cache.join("results")).unwrap();
    let again = run_to(&reg.image("multi2:hard"));
    assert_eq!(expect_pinned(&again).digest, pinned.digest);
    let r = read_json(&report);
    for img in r["images"].as_array().unwrap() {
        for l in img["layers"].as_array().unwrap() {
            assert_ne!(l["action"], "rewritten", "a rerun must not recompress: {l}");
        }
    }
    assert!(stderr_str(&again).contains("already present"), "{}", dump(&again));

    // check audits an index platform by platform (attestations are not images).
    let c = harden(&["check", &src, "--format", "json", "-q"]);
    assert_eq!(c.status.code(), Some(3), "the source holds secrets (fatal):\n{}", dump(&c));
    let doc: Value = serde_json::from_str(&stdout_str(&c)).unwrap();
    assert_eq!(doc["format"], "harden-check-index/1");
    assert_eq!(doc["images"].as_array().unwrap().len(), 2);
    let c = harden(&["check", &src, "--format", "sarif", "-q"]);
    let sarif: Value = serde_json::from_str(&stdout_str(&c)).unwrap();
    assert_eq!(sarif["runs"].as_array().unwrap().len(), 2);
    let strict_check = harden(&["check", &pinned.reference(), "-q", "--fail-on", "fatal"]);
    assert!(strict_check.status.success(), "{}", dump(&strict_check));

    // --platform chooses; the variant may be left out.
    let one = harden(&[
        "rebuild",
        &src,
        &reg.image("multi:arm"),
        "-p",
        "baseline",
        "--no-cache",
        "--platform",
        "linux/arm64",
    ]);
    let idx: Value = serde_json::from_slice(&skopeo_inspect_raw_bytes(&expect_pinned(&one).reference(), &[])).unwrap();
    assert_eq!(idx["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(idx["manifests"][0]["platform"]["architecture"], "arm64");
    let none = harden(&["rebuild", &src, &reg.image("multi:none"), "--platform", "windows/amd64"]);
    expect_exit(&none, 2);
}

#[test]
fn a_refused_platform_pushes_nothing() {
    let reg = Registry::start(false);
    let tmp = tempdir("platforms-refused");
    let (fx, _) = multi_platform_layout(tmp.path());
    // strict refuses the shell-form CMD of the second platform: nothing of the first is tagged.
    let dst = reg.image("multi:strict");
    let out = harden(&["rebuild", &format!("oci:{}:multi", fx.layout.display()), &dst, "-p", "strict", "--no-cache"]);
    expect_exit(&out, 3);
    assert!(stderr_str(&out).contains("/bin/sh"), "{}", dump(&out));
    let inspect = std::process::Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", &format!("docker://{dst}")])
        .output()
        .unwrap();
    assert!(!inspect.status.success(), "the tag must not exist after a refusal");
}
