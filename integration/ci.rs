//! Drop-in use (issue 21): `make image` (image/build.sh) builds harden's own image with harden,
//! reproducibly, and it runs under runc — `--version` and a real rebuild between two registries;
//! the Kubernetes samples, the GitHub Action, the GitLab template and the Tekton Task validate
//! against their schemas; `check --format sarif` passes Microsoft's SARIF multitool with its
//! SARIF and GitHub rule sets. The validators are installed by integration/setup.sh into
//! target/it-venv (kubernetes-validate, check-jsonschema) and target/npm (sarif-multitool).

use crate::common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn venv_tool(name: &str) -> PathBuf {
    let p = repo_root().join("target/it-venv/bin").join(name);
    assert!(p.exists(), "{} is missing: run `make setup` (integration/setup.sh installs it from PyPI)", p.display());
    p
}

/// The multitool's native binary: its npm wrapper hands arguments to a shell, which splits
/// `--rule-kind "Sarif;Gh"` at the `;`.
fn sarif_multitool() -> PathBuf {
    let p = repo_root().join("target/npm/node_modules/@microsoft/sarif-multitool-linux/Sarif.Multitool");
    assert!(
        p.exists(),
        "{} is missing: run `make setup` (integration/setup.sh installs @microsoft/sarif-multitool from npm)",
        p.display()
    );
    p
}

/// Validate `sarif` with the SARIF and GitHub (GH) rule sets; return what it reported. The
/// multitool exits 0 whatever it finds, so its own SARIF log is read.
fn multitool_validate(sarif: &Path) -> Vec<(String, String, String)> {
    let log = sarif.with_extension("validation.sarif");
    let _ = std::fs::remove_file(&log);
    let out = run_with_timeout(
        Command::new(sarif_multitool()).args(["validate", "--rule-kind", "Sarif;Gh", "-o"]).arg(&log).arg(sarif),
    );
    assert!(out.status.success(), "sarif-multitool validate failed:\n{}", dump(&out));
    let v = read_json(&log);
    v["runs"][0]["results"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|r| {
            (
                r["level"].as_str().unwrap_or("warning").to_string(),
                r["ruleId"].as_str().unwrap_or("").to_string(),
                r["message"]["text"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn assert_github_accepts(sarif: &Path) {
    let found = multitool_validate(sarif);
    // SARIF2005 (no `informationUri`, a warning): harden names no homepage until Cargo.toml's
    // `repository` does; then it is filled in.
    let bad: Vec<_> = found.iter().filter(|(level, rule, _)| level != "note" && rule != "SARIF2005").collect();
    assert!(bad.is_empty(), "{}: the SARIF multitool reports {} errors/warnings: {bad:#?}", sarif.display(), bad.len());
}

/// `check --format sarif` of a vendor-like image and of a two-platform index: zero errors and
/// zero warnings from the SARIF and GitHub rule sets; one run per platform, each its own
/// category; the same image checked twice gives the same fingerprints.
#[test]
fn ci_sarif_of_an_image_and_an_index_passes_the_sarif_multitool() {
    let tmp = tempdir("ci-sarif");
    let fx = fixture("app");
    let check = |r: &str, name: &str| -> (PathBuf, Value) {
        let out = harden(&["check", r, "--format", "sarif", "--fail-on", "fatal"]);
        assert!(matches!(out.status.code(), Some(0) | Some(3)), "{}", dump(&out));
        let p = tmp.path().join(name);
        std::fs::write(&p, &out.stdout).unwrap();
        (p.clone(), read_json(&p))
    };
    let (one, doc) = check(&fx.oci_ref(), "app.sarif");
    assert_github_accepts(&one);
    let results = doc["runs"][0]["results"].as_array().unwrap();
    assert!(results.len() > 10, "the app fixture has findings: {doc}");
    let (_, again) = check(&fx.oci_ref(), "app-again.sarif");
    let fps = |d: &Value| -> Vec<Value> {
        d["runs"][0]["results"].as_array().unwrap().iter().map(|r| r["partialFingerprints"].clone()).collect()
    };
    assert_eq!(fps(&doc), fps(&again));

    let (fx2, _) = crate::platforms::multi_platform_layout(tmp.path());
    let (idx, doc) = check(&format!("oci:{}:multi", fx2.layout.display()), "index.sarif");
    assert_github_accepts(&idx);
    let runs = doc["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "one run per image (the attestation manifest is none)");
    let ids: Vec<&str> = runs.iter().map(|r| r["automationDetails"]["id"].as_str().unwrap()).collect();
    assert!(ids[0].contains("/linux/amd64/sha256:") && ids[1].contains("/linux/arm64/v8/sha256:"), "{ids:?}");
}

/// Every manifest in samples/ validates with kubernetes-validate (offline schemas, strict:
/// unknown fields fail); the action and the GitLab template with check-jsonschema's built-in
/// vendor schemas; the Tekton Task against samples/ci/tekton/task-v1.schema.json (Tekton publishes no
/// JSON schema). Each validator is shown to reject a broken copy, so a pass means something.
#[test]
fn ci_samples_and_templates_validate_against_their_schemas() {
    let root = repo_root();
    let kv = venv_tool("kubernetes-validate");
    let cj = venv_tool("check-jsonschema");
    let tmp = tempdir("ci-schemas");
    let mut manifests: Vec<PathBuf> = std::fs::read_dir(root.join("samples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    manifests.sort();
    assert!(!manifests.is_empty(), "samples/ has no Kubernetes manifests");
    for m in &manifests {
        let out = run_with_timeout(Command::new(&kv).args(["--strict", "--quiet"]).arg(m));
        assert!(out.status.success(), "kubernetes-validate {}:\n{}", m.display(), dump(&out));
    }
    let job = std::fs::read_to_string(root.join("samples/batch-job.yaml")).unwrap();
    let broken = tmp.path().join("job.yaml");
    std::fs::write(&broken, job.replace("restartPolicy:", "restartPolicyy:")).unwrap();
    let out = run_with_timeout(Command::new(&kv).args(["--strict", "--quiet"]).arg(&broken));
    assert!(!out.status.success(), "kubernetes-validate accepted an unknown field:\n{}", dump(&out));

    let schema_check = |args: &[&str], file: &Path| -> std::process::Output {
        run_with_timeout(Command::new(&cj).args(args).arg(file))
    };
    let tekton_schema = root.join("samples/ci/tekton/task-v1.schema.json");
    let tekton_schema = tekton_schema.to_str().unwrap();
    let cases: [(&[&str], &str, (&str, &str)); 3] = [
        (&["--builtin-schema", "vendor.github-actions"], "action.yml", ("using: composite", "using: compositee")),
        (
            &["--builtin-schema", "vendor.gitlab-ci"],
            "samples/ci/gitlab/harden.gitlab-ci.yml",
            ("when: always", "when: sometimes"),
        ),
        (&["--schemafile", tekton_schema], "samples/ci/tekton/harden-task.yaml", ("stdoutConfig:", "stdoutConfg:")),
    ];
    for (args, file, (from, to)) in cases {
        let path = root.join(file);
        let out = schema_check(args, &path);
        assert!(out.status.success(), "check-jsonschema {args:?} {file}:\n{}", dump(&out));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} no longer has {from:?}: update this test");
        let bad = tmp.path().join(Path::new(file).file_name().unwrap());
        std::fs::write(&bad, text.replacen(from, to, 1)).unwrap();
        let out = schema_check(args, &bad);
        assert!(!out.status.success(), "check-jsonschema {args:?} accepted a broken {file}:\n{}", dump(&out));
    }
}

fn build_image(out: &Path, sign_key: Option<&Path>) -> String {
    let mut cmd = Command::new(require_tool("bash"));
    cmd.arg(repo_root().join("image/build.sh")).env("HARDEN", harden_bin()).env("OUT", out).env_remove("IMAGE");
    match sign_key {
        Some(k) => cmd.env("SIGN_KEY", k).env("HARDEN_PASSWORD", "image-pw"),
        None => cmd.env_remove("SIGN_KEY"),
    };
    let o = run_ok(&mut cmd);
    let digest = stdout_str(&o).trim().to_string();
    assert!(is_sha256_digest(&digest), "image/build.sh printed {digest:?}\n{}", dump(&o));
    digest
}

/// Unpack harden's image and run it under runc as its config says (uid 65532), with the host's
/// network (the registries listen on loopback).
fn run_image(layout_ref: &str, bundle: &Path, args: &[&str]) -> std::process::Output {
    if !bundle.exists() {
        umoci_unpack(layout_ref, bundle);
        let cfg_path = bundle.join("config.json");
        let mut cfg = read_json(&cfg_path);
        if let Some(ns) = cfg["linux"]["namespaces"].as_array_mut() {
            ns.retain(|n| n["type"] != "network");
        }
        std::fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    }
    let mut full = vec!["/usr/local/bin/harden"];
    full.extend_from_slice(args);
    runc_run_args(bundle, Some(&full))
}

/// `make image` twice gives one digest (and with SIGN_KEY the same digest, signed and attested:
/// `harden verify` checks both); the image has no shell, passes `harden check --fail-on warn`,
/// runs under containerd (`ctr run`) and under runc as 65532: `--version`, then a real rebuild
/// from one local registry to another, which skopeo reads back by the digest it printed.
#[test]
fn ci_make_image_is_reproducible_and_runs_a_rebuild_under_runc() {
    let tmp = tempdir("ci-image");
    let first = build_image(&tmp.path().join("one"), None);
    let second = build_image(&tmp.path().join("two"), None);
    assert_eq!(first, second, "make image is not reproducible");
    let keys = tmp.path().join("cosign");
    run_ok(Command::new(harden_bin()).args(["keygen", "--output"]).arg(&keys).env("HARDEN_PASSWORD", "image-pw"));
    let signed_out = tmp.path().join("signed");
    let signed = build_image(&signed_out, Some(&keys.with_extension("key")));
    assert_eq!(signed, first, "signing changed the image");
    let out = tmp.path().join("one");
    let version = stdout_str(&harden(&["--version"])).split_whitespace().nth(1).unwrap().to_string();
    let layout_ref = format!("oci:{}:{version}", out.join("harden-oci").display());
    assert_eq!(oci_manifest_digest(&out.join("harden-oci"), &version), first);
    oci_image_tool_validate(&out.join("harden-oci"));
    let cfg = skopeo_inspect_config(&layout_ref, &[]);
    assert_eq!(cfg["config"]["User"], "65532:65532", "{cfg}");
    assert_eq!(cfg["config"]["Entrypoint"], serde_json::json!(["/usr/local/bin/harden"]));
    let check = read_json(&out.join("harden-check.json"));
    assert_eq!(check["summary"]["fatal"], 0, "{check}");
    assert_eq!(check["summary"]["warn"], 0, "{check}");
    let sbom = read_json(&out.join("harden.cdx.json"));
    assert_eq!(sbom["bomFormat"], "CycloneDX");

    let signed_ref = format!("oci:{}:{version}", signed_out.join("harden-oci").display());
    let pub_key = keys.with_extension("pub");
    let pub_key = pub_key.to_str().unwrap();
    let v = harden(&["verify", &signed_ref, "--key", pub_key, "--attestation", "https://slsa.dev/provenance/v1"]);
    assert!(v.status.success(), "the signed image does not verify:\n{}", dump(&v));
    let v = harden(&["verify", &layout_ref, "--key", pub_key]);
    assert!(!v.status.success(), "the unsigned build verifies:\n{}", dump(&v));

    // containerd imports the layout and runs it.
    let ctrd = Containerd::start();
    let tar = tmp.path().join("harden-oci.tar");
    run_ok(Command::new("tar").arg("-C").arg(out.join("harden-oci")).arg("-cf").arg(&tar).arg("."));
    let o = run_with_timeout(
        ctrd.ctr().args(["images", "import", "--snapshotter", "native", "--base-name", "localhost/harden"]).arg(&tar),
    );
    assert!(o.status.success(), "ctr images import:\n{}\n{}", dump(&o), ctrd.log());
    let id = format!("harden-it-image-{}", std::process::id());
    let o = run_with_timeout(ctrd.ctr().args([
        "run",
        "--rm",
        "--snapshotter",
        "native",
        &format!("localhost/harden:{version}"),
        &id,
        "/usr/local/bin/harden",
        "--version",
    ]));
    assert!(o.status.success(), "ctr run:\n{}\n{}", dump(&o), ctrd.log());
    assert_eq!(stdout_str(&o).trim(), format!("harden {version}"));
    drop(ctrd);

    let bundle = tmp.path().join("bundle");
    let v = run_image(&layout_ref, &bundle, &["--version"]);
    assert!(v.status.success(), "{}", dump(&v));
    assert_eq!(stdout_str(&v).trim(), format!("harden {version}"));
    assert!(!bundle.join("rootfs/bin/sh").exists() && !bundle.join("rootfs/usr/bin/sh").exists());

    let a = Registry::start(false);
    let b = Registry::start(false);
    let src = a.push_fixture(&fixture("debian"), "debian:1");
    let dst = b.image("debian:hardened");
    let r = run_image(&layout_ref, &bundle, &["rebuild", &src, &dst, "-p", "baseline"]);
    assert!(r.status.success(), "the image's rebuild failed:\n{}", dump(&r));
    let printed = stdout_str(&r).trim().to_string();
    let digest = printed.rsplit_once('@').map(|(_, d)| d.to_string()).unwrap_or_default();
    assert!(is_sha256_digest(&digest), "rebuild printed {printed:?}");
    assert_eq!(skopeo_inspect(&b.docker("debian:hardened"), &[])["Digest"], digest.as_str());
}
