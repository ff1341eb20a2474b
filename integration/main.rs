//! Integration tests: the real `harden` binary against a real registry
//! (Debian's docker-registry), skopeo, umoci, runc and oci-image-tool, on
//! OCI-layout fixtures with real Debian content (integration/build-image.sh).
//!
//! Needs root and the tools from `make setup`. Run with
//! `cargo test --test integration` (or `make integration`).
//!
//! `harness_*` tests exercise only the infrastructure (fixtures, registry,
//! skopeo, umoci, runc) and must pass regardless of harden's state; the
//! `rebuild_*` tests check harden's CLI contract; `profiles_*` are the hardening profiles'
//! acceptance test on the app fixture; `matrix_*` rebuild every fixture with every built-in profile.

mod archives;
mod auth;
mod batch;
mod check;
mod ci;
mod common;
mod contract;
mod corpus;
mod files;
mod fleet;
mod formats;
mod hostile;
mod keyless;
mod matrix;
mod memory;
mod packages;
mod platforms;
mod profiles;
mod rebuild;
mod reliability;
mod rpmdb;
mod sign;
mod supply;
mod tarframing;
mod verify_run;

use common::*;
use std::process::Command;

/// Fixture -> registry -> OCI layout -> validate -> unpack -> runc run.
#[test]
fn harness_debian_fixture_roundtrip_and_runs() {
    let reg = Registry::start(false);
    let fx = fixture("debian");
    let pushed = reg.push_fixture(&fx, "debian:1");

    // skopeo copies the manifest byte for byte, so the digest is the layout's.
    let inspected = skopeo_inspect(&pushed, &[]);
    assert_eq!(inspected["Digest"].as_str().unwrap(), fx.manifest_digest());
    let raw = skopeo_inspect_raw_bytes(&pushed, &[]);
    assert_eq!(sha256_digest(&raw), fx.manifest_digest());

    let tmp = tempdir("harness-roundtrip");
    let out_layout = tmp.path().join("out");
    let out_ref = format!("oci:{}:back", out_layout.display());
    skopeo_copy(&pushed, &out_ref);
    oci_image_tool_validate(&out_layout);

    let bundle = tmp.path().join("bundle");
    umoci_unpack(&out_ref, &bundle);
    let run = runc_run(&bundle);
    assert!(run.status.success(), "runc run failed:\n{}", dump(&run));
    assert_eq!(stdout_str(&run), "hello from debian\n");
}

/// The acceptance image really holds what the hardening profiles target.
#[test]
fn harness_app_fixture_contents() {
    let fx = fixture("app");
    oci_image_tool_validate(&fx.layout);
    let manifest = read_json(&oci_blob_path(&fx.layout, &fx.manifest_digest()));
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2, "app = debootstrap layer + app layer: {manifest}");

    let base = gnu_tar_list(&oci_blob_path(&fx.layout, layers[0]["digest"].as_str().unwrap()));
    let lines: Vec<&str> = base.lines().collect();
    let i = lines
        .iter()
        .position(|l| l.ends_with(" usr/bin/ping"))
        .unwrap_or_else(|| panic!("usr/bin/ping missing from base layer"));
    // GNU tar marks entries with xattrs by a '*' after the mode string and
    // lists their names on the following lines with -vv.
    assert!(lines[i].starts_with("-rwxr-xr-x*"), "ping should carry xattrs: {}", lines[i]);
    assert!(
        lines[i + 1..].iter().take_while(|l| l.starts_with("  x:")).any(|l| l.ends_with(" security.capability")),
        "ping should carry security.capability: {:?}",
        &lines[i..(i + 3).min(lines.len())]
    );

    let app = gnu_tar_list(&oci_blob_path(&fx.layout, layers[1]["digest"].as_str().unwrap()));
    for needle in [
        "app/server.py",
        "app/.env",
        "root/.ssh/id_rsa",
        "root/.cache/pip/http/somefile",
        "var/cache/apt/archives/fake_1.0_amd64.deb",
        "app/data/b link to app/data/a",
    ] {
        assert!(app.contains(needle), "app layer lacks {needle}:\n{app}");
    }
    let suid = app.lines().find(|l| l.ends_with(" usr/local/bin/setuid-copy")).expect("setuid-copy");
    assert!(suid.starts_with("-rwsr-xr-x"), "setuid-copy must be 4755: {suid}");

    let cfg_digest = manifest["config"]["digest"].as_str().unwrap();
    let cfg: serde_json::Value = serde_json::from_slice(&oci_read_blob_verified(&fx.layout, cfg_digest)).unwrap();
    assert_eq!(cfg["config"]["Entrypoint"], serde_json::json!(["/usr/bin/python3", "/app/server.py"]));
    assert_eq!(cfg["config"]["WorkingDir"], "/app");
    assert!(cfg["config"]["ExposedPorts"]["8080/tcp"].is_object());

    let shell = fixture("app-shellcmd");
    let m2 = read_json(&oci_blob_path(&shell.layout, &shell.manifest_digest()));
    let cfg2: serde_json::Value =
        serde_json::from_slice(&oci_read_blob_verified(&shell.layout, m2["config"]["digest"].as_str().unwrap()))
            .unwrap();
    assert_eq!(cfg2["config"]["Cmd"], serde_json::json!(["/bin/sh", "-c", "python3 /app/server.py"]));
    assert!(cfg2["config"]["Entrypoint"].is_null(), "app-shellcmd must have no Entrypoint: {cfg2}");
}

/// The app image starts: server.py --selftest under runc, as root, in /app.
#[test]
fn harness_app_fixture_runs() {
    let fx = fixture("app");
    let tmp = tempdir("harness-app");
    let bundle = tmp.path().join("bundle");
    umoci_unpack(&fx.oci_ref(), &bundle);
    let run = runc_run_args(&bundle, Some(&["/usr/bin/python3", "/app/server.py", "--selftest"]));
    assert!(run.status.success(), "{}", dump(&run));
    assert_eq!(stdout_str(&run), "selftest 200 OK ok\nuid=0 cwd=/app\n");
}

/// The auth registry refuses anonymous clients and accepts harden:secret-pw.
#[test]
fn harness_auth_registry() {
    let reg = Registry::start(true);
    let fx = fixture("debian");
    let pushed = reg.push_fixture(&fx, "debian:1");

    let with = skopeo_inspect(&pushed, &["--creds", "harden:secret-pw"]);
    assert_eq!(with["Digest"].as_str().unwrap(), fx.manifest_digest());

    // The DOCKER_CONFIG form that the harden tests use works for skopeo too.
    let tmp = tempdir("harness-auth");
    let dc = reg.docker_config(tmp.path());
    let out = Command::new(require_tool("skopeo"))
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(reg.docker("debian:1"))
        .env("DOCKER_CONFIG", &dc)
        .env_remove("REGISTRY_AUTH_FILE")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", dump(&out));

    let anon = Command::new(require_tool("skopeo"))
        .args(["inspect", "--raw", "--tls-verify=false", "--no-creds"])
        .arg(reg.docker("debian:1"))
        .output()
        .unwrap();
    assert!(!anon.status.success(), "anonymous access must fail:\n{}", dump(&anon));
}

#[test]
fn harness_helpers() {
    assert_eq!(base64_encode(b"harden:secret-pw"), "aGFyZGVuOnNlY3JldC1wdw==");
    assert_eq!(base64_encode(b"a"), "YQ==");
    assert_eq!(base64_encode(b"ab"), "YWI=");
    assert_eq!(skopeo_ref("127.0.0.1:5000/a/b:1"), "docker://127.0.0.1:5000/a/b:1");
    assert_eq!(skopeo_ref("oci:/x/y:tag"), "oci:/x/y:tag");
    assert_eq!(oci_dir_of("/x/y:tag"), std::path::PathBuf::from("/x/y"));
    assert_eq!(oci_dir_of("/x/y@sha256:00"), std::path::PathBuf::from("/x/y"));
    assert_eq!(oci_dir_of("/x:1/y"), std::path::PathBuf::from("/x:1/y"));
    assert!(is_sha256_digest(&sha256_digest(b"")));
    assert_eq!(sha256_digest(b""), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

/// A missing tool must fail the test with a message naming it, not skip.
#[test]
#[should_panic(expected = "integration test needs the `no-such-tool-for-harden` command")]
fn harness_missing_tool_fails_loudly() {
    require_tool("no-such-tool-for-harden");
}
