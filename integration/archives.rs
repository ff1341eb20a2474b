//! `docker-archive:` and `oci-archive:` as sources and destinations, judged by tools harden did
//! not write: skopeo writes the input archives and reads (inspects, copies to a registry) the
//! outputs; a private containerd imports a written docker-archive and runs the hardened app.

use crate::common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const APP_PROFILE: &str = "samples/app-profile.toml";

fn file_digest(p: &Path) -> String {
    sha256_digest(&std::fs::read(p).unwrap())
}

/// Names in `dir` (temporary files left behind would show up here).
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// skopeo writes a docker-archive of the app; harden hardens it into another docker-archive;
/// skopeo sees the digest harden printed, copies the result to a registry (checking every
/// blob), and a second run writes the same bytes; containerd imports it and runs the app,
/// whose health check passes.
#[test]
fn archives_docker_archive_in_and_out_skopeo_and_containerd() {
    let tmp = tempdir("archives-docker");
    let dir = tmp.path().join("files");
    std::fs::create_dir_all(&dir).unwrap();
    let fx = fixture("app");
    let input = dir.join("in.tar");
    skopeo_copy(&fx.oci_ref(), &format!("docker-archive:{}:localhost/app:1", input.display()));

    let out1 = dir.join("out.tar");
    let t = Instant::now();
    let run = |out: &Path| {
        harden(&[
            "rebuild",
            &format!("docker-archive:{}:localhost/app:1", input.display()),
            &format!("docker-archive:{}:localhost/app:hard", out.display()),
            "-p",
            APP_PROFILE,
            "--no-cache",
        ])
    };
    let pinned = expect_pinned(&run(&out1));
    eprintln!("[archives] docker-archive → docker-archive in {:?}", t.elapsed());
    assert_eq!(pinned.name, format!("docker-archive:{}", out1.display()));
    // The digest printed is the one skopeo sees.
    let seen = skopeo_inspect(&format!("docker-archive:{}", out1.display()), &[]);
    assert_eq!(seen["Digest"].as_str(), Some(pinned.digest.as_str()), "{seen:#}");
    let raw = skopeo_inspect_raw_bytes(&format!("docker-archive:{}", out1.display()), &[]);
    assert_eq!(sha256_digest(&raw), pinned.digest);
    // The config as stored (`skopeo inspect --config` re-serialises it through the OCI struct,
    // which has no Healthcheck), read with GNU tar; skopeo's manifest names it by digest.
    let tar_x = |name: &str| run_ok(Command::new(require_tool("tar")).arg("-xOf").arg(&out1).arg(name)).stdout;
    let mj: Value = serde_json::from_slice(&tar_x("manifest.json")).unwrap();
    assert_eq!(mj[0]["RepoTags"], serde_json::json!(["localhost/app:hard"]), "{mj:#}");
    let cfg_bytes = tar_x(mj[0]["Config"].as_str().unwrap());
    let seen_raw: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(seen_raw["config"]["digest"].as_str(), Some(sha256_digest(&cfg_bytes).as_str()));
    let cfg: Value = serde_json::from_slice(&cfg_bytes).unwrap();
    assert_eq!(cfg["config"]["User"], "65532:65532", "{cfg:#}");
    assert!(cfg["config"]["Healthcheck"]["Test"].is_array(), "{cfg:#}");

    // The same input gives the same bytes, and no temporary file is left beside the output.
    let out2 = dir.join("out2.tar");
    let again = expect_pinned(&run(&out2));
    assert_eq!(again.digest, pinned.digest);
    assert_eq!(file_digest(&out1), file_digest(&out2), "two runs wrote different archives");
    assert_eq!(names(&dir), ["in.tar", "out.tar", "out2.tar"]);
    // Entries: sorted, mtime 0, owned by 0:0 (GNU tar's listing).
    let listing = gnu_tar_list(&out1);
    let entry_names: Vec<&str> = listing.lines().filter_map(|l| l.split_whitespace().last()).collect();
    let mut sorted = entry_names.clone();
    sorted.sort();
    assert_eq!(entry_names, sorted, "{listing}");
    assert!(entry_names.contains(&"manifest.json"), "{listing}");
    for l in listing.lines() {
        assert!(l.contains(" 0/0 ") && l.contains("1970-01-01 00:00"), "entry not normalised: {l}");
    }

    // A registry takes it through skopeo (every blob checked against its digest).
    let reg = Registry::start(false);
    skopeo_copy(&format!("docker-archive:{}", out1.display()), &reg.docker("app:from-archive"));
    let pushed_cfg = skopeo_inspect_config(&reg.image("app:from-archive"), &[]);
    assert_eq!(pushed_cfg["rootfs"]["diff_ids"], cfg["rootfs"]["diff_ids"]);

    // containerd imports it and runs the hardened app.
    let ctrd = Containerd::start();
    let out = run_with_timeout(
        ctrd.ctr().args(["images", "import", "--snapshotter", "native"]).arg(&out1).env("HOME", tmp.path()),
    );
    assert!(out.status.success(), "ctr images import failed:\n{}\n{}", dump(&out), ctrd.log());
    let out = run_ok(ctrd.ctr().args(["images", "ls", "-q"]));
    assert!(stdout_str(&out).lines().any(|l| l == "localhost/app:hard"), "{}", dump(&out));
    let health: Vec<String> = cfg["config"]["Healthcheck"]["Test"].as_array().unwrap()[1..]
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let id = format!("harden-it-{}", std::process::id());
    let out = run_with_timeout(ctrd.ctr().args(["run", "-d", "--snapshotter", "native", "localhost/app:hard", &id]));
    assert!(out.status.success(), "ctr run failed:\n{}\n{}", dump(&out), ctrd.log());
    let start = Instant::now();
    let ok = loop {
        let out = run_with_timeout(ctrd.ctr().args(["task", "exec", "--exec-id", "health", &id]).args(&health));
        if out.status.success() {
            break true;
        }
        if start.elapsed() > Duration::from_secs(30) {
            eprintln!("health check never passed: {}", dump(&out));
            break false;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let uid = run_with_timeout(ctrd.ctr().args(["task", "exec", "--exec-id", "id", &id, "id", "-u"]));
    let _ = run_with_timeout(ctrd.ctr().args(["task", "kill", "-s", "SIGKILL", &id]));
    std::thread::sleep(Duration::from_millis(300));
    let _ = run_with_timeout(ctrd.ctr().args(["task", "delete", "-f", &id]));
    let _ = run_with_timeout(ctrd.ctr().args(["container", "delete", &id]));
    assert!(ok, "the hardened app's health check did not pass under containerd:\n{}", ctrd.log());
    assert_eq!(stdout_str(&uid), "65532\n", "{}", dump(&uid));
    // And `ctr run --rm` of a one-off command in the same image exits cleanly.
    let out = run_with_timeout(ctrd.ctr().args([
        "run",
        "--rm",
        "--snapshotter",
        "native",
        "localhost/app:hard",
        &format!("{id}-once"),
        "/usr/bin/python3",
        "-c",
        "import os; print(os.getuid())",
    ]));
    assert!(out.status.success(), "ctr run --rm failed:\n{}", dump(&out));
    assert_eq!(stdout_str(&out), "65532\n");
}

/// oci-archive in and out, with registries on the other side; a docker-archive from an
/// oci-archive; a layer whose bytes do not match its diff_id is refused, naming it.
#[test]
fn archives_oci_archive_with_registries_and_tampering() {
    let tmp = tempdir("archives-oci");
    let dir = tmp.path().join("files");
    std::fs::create_dir_all(&dir).unwrap();
    let fx = fixture("app");
    let reg = Registry::start(false);
    let oa = dir.join("in-oci.tar");
    skopeo_copy(&fx.oci_ref(), &format!("oci-archive:{}:v1", oa.display()));

    // oci-archive → registry.
    let pinned = expect_pinned(&harden(&[
        "rebuild",
        &format!("oci-archive:{}:v1", oa.display()),
        &reg.image("app:from-oa"),
        "-p",
        APP_PROFILE,
        "--no-cache",
    ]));
    assert_eq!(skopeo_inspect(&reg.image("app:from-oa"), &[])["Digest"].as_str(), Some(pinned.digest.as_str()));

    // registry → oci-archive: skopeo reads it, sees the same digest, copies it to a registry.
    let src = reg.push_fixture(&fx, "app:1");
    let out = dir.join("out-oci.tar");
    let p2 = expect_pinned(&harden(&[
        "rebuild",
        &src,
        &format!("oci-archive:{}:hard", out.display()),
        "-p",
        APP_PROFILE,
        "--no-cache",
    ]));
    assert_eq!(p2.name, format!("oci-archive:{}", out.display()));
    // The same content from a registry as from the archive (the manifests differ: a registry
    // source's name is recorded as base.name).
    let rootfs = |r: &str| skopeo_inspect_config(r, &[])["rootfs"].clone();
    assert_eq!(rootfs(&format!("oci-archive:{}:hard", out.display())), rootfs(&reg.image("app:from-oa")));
    let r = format!("oci-archive:{}:hard", out.display());
    assert_eq!(skopeo_inspect(&r, &[])["Digest"].as_str(), Some(p2.digest.as_str()));
    skopeo_copy(&r, &reg.docker("app:from-oci-out"));
    let raw: Value = serde_json::from_slice(&skopeo_inspect_raw_bytes(&r, &[])).unwrap();
    assert!(raw["annotations"]["org.opencontainers.image.base.digest"].is_string(), "{raw:#}");

    // oci-archive → docker-archive: skopeo sees what harden printed.
    let da = dir.join("out-docker.tar");
    let p3 = expect_pinned(&harden(&[
        "rebuild",
        &format!("oci-archive:{}:v1", oa.display()),
        &format!("docker-archive:{}:localhost/app:x", da.display()),
        "-p",
        APP_PROFILE,
    ]));
    assert_eq!(
        skopeo_inspect(&format!("docker-archive:{}", da.display()), &[])["Digest"].as_str(),
        Some(p3.digest.as_str())
    );
    assert_eq!(names(&dir), ["in-oci.tar", "out-docker.tar", "out-oci.tar"]);

    // Tampering: one byte of a layer's file changed in a skopeo-written docker-archive.
    let da_in = tmp.path().join("t.tar");
    skopeo_copy(&fx.oci_ref(), &format!("docker-archive:{}:localhost/app:1", da_in.display()));
    let x = tmp.path().join("x");
    std::fs::create_dir_all(&x).unwrap();
    run_ok(Command::new(require_tool("tar")).arg("-xf").arg(&da_in).arg("-C").arg(&x));
    let manifest = read_json(&x.join("manifest.json"));
    let layer = manifest[0]["Layers"][1].as_str().unwrap().to_string();
    let mut bytes = std::fs::read(x.join(&layer)).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    std::fs::write(x.join(&layer), &bytes).unwrap();
    let bad = tmp.path().join("bad.tar");
    run_ok(Command::new(require_tool("tar")).arg("-cf").arg(&bad).arg("-C").arg(&x).arg("."));
    let dst = dir.join("never.tar");
    let out =
        harden(&["rebuild", &format!("docker-archive:{}", bad.display()), &format!("oci-archive:{}", dst.display())]);
    expect_exit(&out, 1);
    let err = stderr_str(&out);
    let last = err.lines().last().unwrap_or_default();
    assert!(last.contains(&layer), "the error names the layer {layer}: {err}");
    assert!(!dst.exists(), "nothing written after a refusal");
    assert_eq!(names(&dir), ["in-oci.tar", "out-docker.tar", "out-oci.tar"]);
}

/// OCI outputs other tools address (issue 21, part 5): from each source form — a registry
/// holding a Docker schema 2 manifest, a docker-archive, an `oci:` layout, an oci-archive —
/// into an `oci:` layout and an `oci-archive:`, skopeo finds the output by its tag
/// (containers/image looks a tag up among OCI media types only) and sees the digest harden
/// printed; the manifest, its config descriptor and every layer have OCI media types; the
/// report's `result.converted_to_oci` says when a Docker manifest was converted; the config
/// blob is harden's own (health check kept); oci-image-tool validates a converted layout.
#[test]
fn archives_oci_outputs_hold_oci_media_types_for_every_direction() {
    const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    let tmp = tempdir("archives-oci-out");
    let fx = fixture("app");
    let reg = Registry::start(false);
    skopeo_copy_args(&fx.oci_ref(), &reg.docker("app:v2s2"), &["--format", "v2s2"]);
    assert_eq!(
        skopeo_inspect_raw(&reg.image("app:v2s2"))["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let da = tmp.path().join("in-docker.tar");
    skopeo_copy(&fx.oci_ref(), &format!("docker-archive:{}:localhost/app:1", da.display()));
    let oa = tmp.path().join("in-oci.tar");
    skopeo_copy(&fx.oci_ref(), &format!("oci-archive:{}:v1", oa.display()));
    let sources = [
        (reg.image("app:v2s2"), true),
        (format!("docker-archive:{}", da.display()), true),
        (fx.oci_ref(), false),
        (format!("oci-archive:{}:v1", oa.display()), false),
    ];
    for (i, (src, docker)) in sources.iter().enumerate() {
        for kind in ["oci", "oci-archive"] {
            let path = tmp.path().join(format!("out-{i}-{kind}"));
            let dst = format!("{kind}:{}:hard", path.display());
            let report = tmp.path().join(format!("report-{i}-{kind}.json"));
            let out = harden(&["rebuild", src, &dst, "-p", APP_PROFILE, "--report", report.to_str().unwrap()]);
            let pinned = expect_pinned(&out);
            let seen = skopeo_inspect(&dst, &[]);
            assert_eq!(seen["Digest"].as_str(), Some(pinned.digest.as_str()), "{src} → {dst}: {seen:#}");
            let raw_bytes = skopeo_inspect_raw_bytes(&dst, &[]);
            assert_eq!(sha256_digest(&raw_bytes), pinned.digest);
            let raw: Value = serde_json::from_slice(&raw_bytes).unwrap();
            // umoci's fixture manifest omits the (optional) OCI mediaType; a converted one has it.
            let mt = raw["mediaType"].as_str();
            assert!(mt == Some(OCI_MANIFEST) || (!docker && mt.is_none()), "{src} → {dst}: {raw:#}");
            assert_eq!(raw["config"]["mediaType"], "application/vnd.oci.image.config.v1+json", "{raw:#}");
            for l in raw["layers"].as_array().unwrap() {
                let mt = l["mediaType"].as_str().unwrap();
                assert!(mt.starts_with("application/vnd.oci.image.layer.v1.tar"), "{src} → {dst}: layer {mt}");
            }
            assert!(raw["annotations"]["org.opencontainers.image.base.digest"].is_string(), "{raw:#}");
            let r = read_json(&report);
            let conv = &r["result"]["converted_to_oci"];
            match docker {
                true => assert_eq!(
                    *conv,
                    serde_json::json!({"from": "application/vnd.docker.distribution.manifest.v2+json", "to": OCI_MANIFEST}),
                    "{r:#}"
                ),
                false => assert!(conv.is_null(), "an OCI source is not converted: {r:#}"),
            }
            // The config as stored keeps Docker's Healthcheck (skopeo's own conversion drops it).
            if kind == "oci" {
                let cfg = read_json(&oci_blob_path(&path, raw["config"]["digest"].as_str().unwrap()));
                assert!(cfg["config"]["Healthcheck"]["Test"].is_array(), "{cfg:#}");
                assert_eq!(cfg["config"]["User"], "65532:65532");
            }
        }
    }
    oci_image_tool_validate(&tmp.path().join("out-1-oci"));
}

/// A Docker manifest list rebuilt into an `oci:` layout becomes an OCI index (issue 21, part 5):
/// skopeo finds it by its tag with the printed digest, the index and its entries carry OCI media
/// types, the platform's manifest is an OCI one, and the report says what was converted.
#[test]
fn archives_docker_manifest_list_into_a_layout_is_an_oci_index() {
    let tmp = tempdir("archives-oci-list");
    let (fx, _) = crate::platforms::multi_platform_layout(tmp.path());
    let reg = Registry::start(false);
    let mut c = Command::new(require_tool("skopeo"));
    c.args(["copy", "--quiet", "--all", "--format", "v2s2", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:multi", fx.layout.display()))
        .arg(reg.docker("multi:v2s2"));
    run_ok(&mut c);
    let list = skopeo_inspect_raw(&reg.image("multi:v2s2"));
    assert_eq!(list["mediaType"], "application/vnd.docker.distribution.manifest.list.v2+json", "{list:#}");
    let out_dir = tmp.path().join("out");
    let dst = format!("oci:{}:hard", out_dir.display());
    let report = tmp.path().join("report.json");
    let out = harden(&[
        "rebuild",
        &reg.image("multi:v2s2"),
        &dst,
        "-p",
        "baseline",
        "--platform",
        "linux/amd64",
        "--report",
        report.to_str().unwrap(),
    ]);
    let pinned = expect_pinned(&out);
    let raw_bytes = skopeo_inspect_raw_bytes(&dst, &[]);
    assert_eq!(sha256_digest(&raw_bytes), pinned.digest);
    let raw: Value = serde_json::from_slice(&raw_bytes).unwrap();
    assert_eq!(raw["mediaType"], "application/vnd.oci.image.index.v1+json", "{raw:#}");
    let entries = raw["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{raw:#}");
    assert_eq!(entries[0]["mediaType"], "application/vnd.oci.image.manifest.v1+json", "{raw:#}");
    let m = read_json(&oci_blob_path(&out_dir, entries[0]["digest"].as_str().unwrap()));
    assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json", "{m:#}");
    assert_eq!(m["config"]["mediaType"], "application/vnd.oci.image.config.v1+json", "{m:#}");
    let seen = skopeo_inspect(&dst, &[]);
    // skopeo inspect resolves the platform through the index and reports the index's digest.
    assert_eq!(seen["Digest"].as_str(), Some(pinned.digest.as_str()), "{seen:#}");
    assert_eq!(seen["Architecture"], "amd64", "{seen:#}");
    let r = read_json(&report);
    assert_eq!(
        r["result"]["converted_to_oci"],
        serde_json::json!({"from": "application/vnd.docker.distribution.manifest.list.v2+json",
                           "to": "application/vnd.oci.image.index.v1+json"}),
        "{r:#}"
    );
    oci_image_tool_validate(&out_dir);
}
