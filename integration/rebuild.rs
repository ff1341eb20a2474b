//! `harden rebuild SRC DST [--profile NAME|FILE]...` against the CLI contract:
//! on success stdout is exactly one line `host:port/repo@sha256:..` or
//! `oci:DIR@sha256:..`; exit 1 runtime error, 2 usage, 3 policy.

use crate::common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Checks a registry result: printed name, digest resolvable, raw manifest
/// hashes to the digest, and the tag points at the same manifest.
fn check_registry_result(reg: &Registry, pinned: &Pinned, repo: &str, tag: &str, creds: &[&str]) {
    assert_eq!(pinned.name, format!("{}/{}", reg.host, repo), "printed name");
    let by_digest = format!("{}/{}@{}", reg.host, repo, pinned.digest);
    let raw = skopeo_inspect_raw_bytes(&by_digest, creds);
    assert_eq!(sha256_digest(&raw), pinned.digest, "registry manifest bytes do not hash to the printed digest");
    let manifest: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(manifest["schemaVersion"], 2, "{manifest}");
    let by_tag = skopeo_inspect(&format!("{}/{}:{}", reg.host, repo, tag), creds);
    assert_eq!(
        by_tag["Digest"].as_str(),
        Some(pinned.digest.as_str()),
        "tag {tag} does not point at the printed digest"
    );
}

/// Checks an OCI-layout result: printed name is `oci:DIR`, the index names
/// the digest, and the manifest blob hashes to it.
fn check_oci_result(dir: &Path, pinned: &Pinned, tag: &str) {
    assert_eq!(pinned.name, format!("oci:{}", dir.display()), "printed name");
    assert_eq!(oci_manifest_digest(dir, tag), pinned.digest, "index.json tag {tag}");
    oci_read_blob_verified(dir, &pinned.digest);
}

/// Manifest and config of a result in an OCI layout, with the config digest
/// and the `org.opencontainers.image.base.name` label/annotation blanked.
fn normalized_result(layout: &Path, digest: &str) -> (serde_json::Value, serde_json::Value) {
    const BASE_NAME: &str = "org.opencontainers.image.base.name";
    let mut manifest: serde_json::Value = serde_json::from_slice(&oci_read_blob_verified(layout, digest)).unwrap();
    let cfg_digest = manifest["config"]["digest"].as_str().unwrap().to_string();
    let mut config: serde_json::Value = serde_json::from_slice(&oci_read_blob_verified(layout, &cfg_digest)).unwrap();
    if let Some(a) = manifest.get_mut("annotations").and_then(|a| a.as_object_mut()) {
        a.remove(BASE_NAME);
    }
    manifest["config"]["digest"] = serde_json::Value::Null;
    manifest["config"]["size"] = serde_json::Value::Null;
    if let Some(l) = config.pointer_mut("/config/Labels").and_then(|l| l.as_object_mut()) {
        l.remove(BASE_NAME);
    }
    (manifest, config)
}

/// (a) registry -> registry with a profile, then verify the result with
/// independent tools and run it.
#[test]
fn rebuild_registry_to_registry_runs() {
    let reg = Registry::start(false);
    let fx = fixture("debian");
    let src = reg.push_fixture(&fx, "debian:1");
    let dst = reg.image("hardened:1");

    let out = harden(&["rebuild", &src, &dst, "--profile", &default_profile()]);
    let pinned = expect_pinned(&out);
    check_registry_result(&reg, &pinned, "hardened", "1", &[]);

    // Copy it back out by digest: skopeo verifies every blob digest.
    let tmp = tempdir("rebuild-r2r");
    let layout = tmp.path().join("out");
    let layout_ref = format!("oci:{}:hardened", layout.display());
    skopeo_copy(&pinned.reference(), &layout_ref);
    oci_image_tool_validate(&layout);
    assert_eq!(oci_manifest_digest(&layout, "hardened"), pinned.digest, "skopeo changed the manifest");

    let bundle = tmp.path().join("bundle");
    umoci_unpack(&layout_ref, &bundle);
    let run = runc_run(&bundle);
    assert!(run.status.success(), "hardened image does not run:\n{}", dump(&run));
    assert_eq!(stdout_str(&run), "hello from debian\n", "{}", dump(&run));
}

/// (b) registry->registry, registry->oci, oci->registry and oci->oci: the
/// same source gives the same digest in every direction; registry and oci
/// sources differ only in the recorded base-image name.
#[test]
fn rebuild_four_directions_same_digest() {
    let reg = Registry::start(false);
    let tmp = tempdir("rebuild-4dir");
    let fx = fixture("debian").copy_into(tmp.path());
    let src_reg = reg.push_fixture(&fx, "debian:1");
    let src_oci = fx.oci_ref();
    let profile = default_profile();

    let rr = expect_pinned(&harden(&["rebuild", &src_reg, &reg.image("h-rr:1"), "--profile", &profile]));
    check_registry_result(&reg, &rr, "h-rr", "1", &[]);

    let ro_dir = tmp.path().join("ro");
    let ro =
        expect_pinned(&harden(&["rebuild", &src_reg, &format!("oci:{}:1", ro_dir.display()), "--profile", &profile]));
    check_oci_result(&ro_dir, &ro, "1");

    let or = expect_pinned(&harden(&["rebuild", &src_oci, &reg.image("h-or:1"), "--profile", &profile]));
    check_registry_result(&reg, &or, "h-or", "1", &[]);

    let oo_dir = tmp.path().join("oo");
    let oo =
        expect_pinned(&harden(&["rebuild", &src_oci, &format!("oci:{}:1", oo_dir.display()), "--profile", &profile]));
    check_oci_result(&oo_dir, &oo, "1");

    // Same source reference -> byte-identical result, whatever the destination.
    assert_eq!(rr.digest, ro.digest, "registry->registry vs registry->oci");
    assert_eq!(or.digest, oo.digest, "oci->registry vs oci->oci");
    // Across source transports the only permitted difference is the
    // org.opencontainers.image.base.name label/annotation, which records the
    // source reference as written (`host:port/debian:1` vs `oci:DIR:TAG`).
    // Layers, config and everything else must be identical.
    let from_reg = normalized_result(&ro_dir, &ro.digest);
    let from_oci = normalized_result(&oo_dir, &oo.digest);
    assert_eq!(from_reg, from_oci, "registry source vs oci source differ beyond org.opencontainers.image.base.name");

    // The source layout must be untouched by harden.
    assert_eq!(fx.manifest_digest(), fixture("debian").manifest_digest());

    // Layouts written by harden are valid and hold every blob.
    oci_image_tool_validate(&ro_dir);
    oci_image_tool_validate(&oo_dir);
    // ...and registry results copy out identically.
    let back = tmp.path().join("back");
    skopeo_copy(&rr.reference(), &format!("oci:{}:x", back.display()));
    assert_eq!(oci_manifest_digest(&back, "x"), rr.digest);
}

/// (c) The same rebuild run twice (a moment apart) gives the same digest.
#[test]
fn rebuild_is_reproducible() {
    let reg = Registry::start(false);
    let tmp = tempdir("rebuild-repro");
    let fx = fixture("debian").copy_into(tmp.path());
    let src = reg.push_fixture(&fx, "debian:1");
    let profile = default_profile();
    // --no-cache: both runs do all the work (the second would reuse the first's result).
    let args = ["rebuild", src.as_str(), &reg.image("repro:1"), "--profile", &profile, "--no-cache"];

    let first = expect_pinned(&harden(&args));
    std::thread::sleep(Duration::from_millis(1100)); // catch wall-clock timestamps
    let second = expect_pinned(&harden(&args));
    assert_eq!(first, second, "same rebuild, different result");
    check_registry_result(&reg, &second, "repro", "1", &[]);

    // And into two fresh OCI layouts from the OCI source.
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    let pa =
        expect_pinned(&harden(&["rebuild", &fx.oci_ref(), &format!("oci:{}:r", a.display()), "--profile", &profile]));
    let pb =
        expect_pinned(&harden(&["rebuild", &fx.oci_ref(), &format!("oci:{}:r", b.display()), "--profile", &profile]));
    assert_eq!(pa.digest, pb.digest, "oci->oci twice");
}

/// (d) A registry with basic auth: credentials from DOCKER_CONFIG work;
/// without credentials harden exits 1 with a message.
#[test]
fn rebuild_auth_registry() {
    let reg = Registry::start(true);
    let fx = fixture("debian");
    let src = reg.push_fixture(&fx, "debian:1");
    let dst = reg.image("hardened:1");
    let profile = default_profile();
    let tmp = tempdir("rebuild-auth");
    let docker_config = reg.docker_config(tmp.path());

    let out =
        harden_env(&["rebuild", &src, &dst, "--profile", &profile], &[("DOCKER_CONFIG", docker_config.as_os_str())]);
    let pinned = expect_pinned(&out);
    check_registry_result(&reg, &pinned, "hardened", "1", &["--creds", "harden:secret-pw"]);

    // No credentials at all (harden() points DOCKER_CONFIG at an empty config).
    let out = harden(&["rebuild", &src, &reg.image("anon:1"), "--profile", &profile]);
    expect_exit(&out, 1);
    let err = stderr_str(&out).to_lowercase();
    assert!(
        ["unauthorized", "authentication", "401", "credential", "denied", "auth"].iter().any(|w| err.contains(w)),
        "the error should say authentication failed:\n{}",
        dump(&out)
    );

    // Wrong password.
    let bad = tmp.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    let auth = base64_encode(b"harden:wrong-pw");
    std::fs::write(
        bad.join("config.json"),
        serde_json::to_vec(&serde_json::json!({"auths": {reg.host.clone(): {"auth": auth}}})).unwrap(),
    )
    .unwrap();
    let out = harden_env(
        &["rebuild", &src, &reg.image("anon:1"), "--profile", &profile],
        &[("DOCKER_CONFIG", bad.as_os_str())],
    );
    expect_exit(&out, 1);
}

/// A destination that refuses the credentials fails before any layer is fetched or rewritten:
/// a push-scoped authentication and one HEAD, not a whole rebuild.
#[test]
fn rebuild_refused_destination_fails_before_any_work() {
    let open = Registry::start(false);
    let locked = Registry::start(true);
    let fx = fixture("debian");
    let src = open.push_fixture(&fx, "debian:1");
    let tmp = tempdir("rebuild-fail-fast");
    let bad = tmp.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(
        bad.join("config.json"),
        serde_json::to_vec(
            &serde_json::json!({"auths": {locked.host.clone(): {"auth": base64_encode(b"harden:wrong-pw")}}}),
        )
        .unwrap(),
    )
    .unwrap();
    let dst = locked.image("hardened:1");
    let started = std::time::Instant::now();
    let out =
        harden_env(&["rebuild", &src, &dst, "--profile", &default_profile()], &[("DOCKER_CONFIG", bad.as_os_str())]);
    let took = started.elapsed();
    expect_exit(&out, 1);
    let err = stderr_str(&out);
    assert!(err.contains("does not accept a push") && err.contains(&locked.host), "{}", dump(&out));
    assert!(!err.contains("scanned layer"), "no layer may be fetched before the destination is checked:\n{err}");
    eprintln!("refused destination failed after {took:?}");
}

/// (e) A missing source exits 1 and names the reference.
#[test]
fn rebuild_missing_image() {
    let reg = Registry::start(false);
    let missing = reg.image("does-not-exist:1");
    let out = harden(&["rebuild", &missing, &reg.image("out:1"), "--profile", &default_profile()]);
    expect_exit(&out, 1);
    assert!(
        stderr_str(&out).contains("does-not-exist"),
        "the error should name the missing reference {missing}:\n{}",
        dump(&out)
    );

    // Missing tag in an existing repository.
    let fx = fixture("debian");
    reg.push_fixture(&fx, "debian:1");
    let out = harden(&["rebuild", &reg.image("debian:nope"), &reg.image("out:1"), "--profile", &default_profile()]);
    expect_exit(&out, 1);
    assert!(stderr_str(&out).contains("debian:nope") || stderr_str(&out).contains("nope"), "{}", dump(&out));

    // Missing OCI layout.
    let tmp = tempdir("rebuild-missing");
    let gone = tmp.path().join("no-such-layout");
    let out = harden(&[
        "rebuild",
        &format!("oci:{}:x", gone.display()),
        &format!("oci:{}:y", tmp.path().join("dst").display()),
        "--profile",
        &default_profile(),
    ]);
    expect_exit(&out, 1);
    assert!(stderr_str(&out).contains("no-such-layout"), "{}", dump(&out));
}

/// Usage errors exit 2.
#[test]
fn rebuild_usage_errors() {
    let out = harden(&["rebuild"]);
    assert_eq!(out.status.code(), Some(2), "{}", dump(&out));
    let out = harden(&["rebuild", "127.0.0.1:1/a:1"]);
    assert_eq!(out.status.code(), Some(2), "{}", dump(&out));
    let out = harden(&["rebuild", "127.0.0.1:1/a:1", "127.0.0.1:1/b:1", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2), "{}", dump(&out));
}

/// Mirroring with a profile that changes no file: each layer is uploaded while it is scanned,
/// keeps its digest, and the push finds it already there.
#[test]
fn rebuild_passthrough_mirror_keeps_layers_and_overlaps_upload() {
    let a = Registry::start(false);
    let b = Registry::start(false);
    let fx = fixture("debian");
    let src = a.push_fixture(&fx, "debian:1");
    let src_raw: serde_json::Value = serde_json::from_slice(&skopeo_inspect_raw_bytes(&src, &[])).unwrap();
    let out = harden(&["rebuild", &a.image("debian:1"), &b.image("mirror:1"), "-p", "passthrough", "--no-cache"]);
    let pinned = expect_pinned(&out);
    let raw: serde_json::Value = serde_json::from_slice(&skopeo_inspect_raw_bytes(&pinned.reference(), &[])).unwrap();
    assert_eq!(raw["layers"][0]["digest"], src_raw["layers"][0]["digest"], "passthrough keeps the layer's bytes");
    let err = stderr_str(&out);
    assert!(err.contains("already present"), "the layer went up during the scan:\n{err}");
    assert!(!err.contains("pushed blob"), "no layer is uploaded a second time:\n{err}");
}

/// A layer the profile leaves alone goes up while it downloads, before the plan: a guard refusal
/// then leaves that blob unreferenced at the destination but no manifest and no tag; a rebuild
/// that goes through finds it already there (and the layer it rewrites, uploaded while it was
/// rewritten), and its digest is the one a layout destination
/// (nothing uploaded before the plan) and a warm rerun give.
#[test]
fn rebuild_streams_untouched_layers_and_a_refusal_leaves_no_manifest() {
    let (a, b) = (Registry::start(false), Registry::start(false));
    let tar = |files: &[(&str, u32, &[u8])]| {
        let mut t = tar::Builder::new(Vec::new());
        for (path, mode, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(*mode);
            h.set_mtime(0);
            h.set_cksum();
            t.append_data(&mut h, path, *data).unwrap();
        }
        t.into_inner().unwrap()
    };
    let data: Vec<u8> = (0..300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let app = tar(&[
        ("bin/sh", 0o755, b"\x7fELF-not-really-a-shell"),
        ("app/server", 0o755, b"#!/bin/sh\necho serving\n"),
        ("opt/tool", 0o755, b"a tool the profile removes"),
    ]);
    let untouched = tar(&[("app/data.bin", 0o644, &data)]);
    let dir = tempdir("stream-src");
    oci_layout_of_layers(dir.path(), &[&app, &untouched], serde_json::json!({"Entrypoint": ["/app/server"]}));
    skopeo_copy(&format!("oci:{}:t", dir.path().display()), &a.docker("src:1"));
    // skopeo compresses the layers on the way: the source's digests are its manifest's.
    let src_manifest = skopeo_inspect_raw(&a.image("src:1"));
    let digests: Vec<String> =
        (0..2).map(|i| src_manifest["layers"][i]["digest"].as_str().unwrap().to_string()).collect();
    let profile = |name: &str, remove: &str| {
        let f = dir.path().join(format!("{name}.toml"));
        std::fs::write(&f, format!("name = \"{name}\"\n[files]\nremove = [\"{remove}\"]\n")).unwrap();
        f.display().to_string()
    };
    let status = |url: String| {
        let out = run_ok(Command::new(require_tool("curl")).args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-I",
            &url,
        ]));
        stdout_str(&out)
    };
    let v2 = |repo: &str, what: &str| format!("http://{}/v2/{repo}/{what}", b.host);

    // Refused: the entrypoint goes. The untouched layer went up during the scan; nothing names it.
    let out = harden(&[
        "rebuild",
        &a.image("src:1"),
        &b.image("refused:1"),
        "-p",
        &profile("breaks", "/app/server"),
        "--no-cache",
    ]);
    expect_exit(&out, 3);
    assert_eq!(status(v2("refused", &format!("blobs/{}", digests[1]))), "200", "the untouched layer streamed up");
    assert_eq!(status(v2("refused", "manifests/1")), "404", "no manifest, no tag after a refusal");
    let tags = run_with_timeout(Command::new(require_tool("curl")).args(["-s", &v2("refused", "tags/list")]));
    assert!(!stdout_str(&tags).contains("\"1\""), "no tag: {}", stdout_str(&tags));

    // A dry run uploads nothing, even of a profile that changes no file.
    let out =
        harden(&["rebuild", "--dry-run", &a.image("src:1"), &b.image("dry:1"), "-p", "passthrough", "--no-cache"]);
    assert!(out.status.success(), "{}", dump(&out));
    assert_eq!(status(v2("dry", &format!("blobs/{}", digests[1]))), "404", "a dry run uploads nothing");

    // Goes through: the tool's layer rewritten, the untouched one found already there.
    let ok = profile("ok", "/opt/tool");
    let cache = tempdir("stream-cache");
    let run = |dst: &str| {
        let out =
            harden(&["rebuild", &a.image("src:1"), dst, "-p", &ok, "--cache-dir", &cache.path().display().to_string()]);
        (expect_pinned(&out), stderr_str(&out))
    };
    let (cold, err) = run(&b.image("ok:1"));
    let short = &digests[1]["sha256:".len().."sha256:".len() + 12];
    assert!(err.contains(&format!("blob {short} already present")), "uploaded during the scan:\n{err}");
    check_registry_result(&b, &cold, "ok", "1", &[]);
    // The rewritten layer went up while it was rewritten (the push found it); the refused run,
    // whose verdict came before any rewrite, sent none of it.
    let rewritten = skopeo_inspect_raw(&b.image("ok:1"))["layers"][0]["digest"].as_str().unwrap().to_string();
    assert_ne!(rewritten, digests[0], "the tool's layer is rewritten");
    let short = &rewritten["sha256:".len().."sha256:".len() + 12];
    assert!(err.contains(&format!("blob {short} already present")), "uploaded while rewritten:\n{err}");
    assert_eq!(status(v2("refused", &format!("blobs/{rewritten}"))), "404", "a refusal rewrites and uploads nothing");
    let (warm, _) = run(&b.image("ok-again:1"));
    assert_eq!(warm.digest, cold.digest, "warm and cold give the same digest");
    let layout = tempdir("stream-dst");
    let out =
        harden(&["rebuild", &a.image("src:1"), &format!("oci:{}:t", layout.path().display()), "-p", &ok, "--no-cache"]);
    assert_eq!(expect_pinned(&out).digest, cold.digest, "streamed or not, the same digest");
}

/// On a terminal (a pty from util-linux's `script`), a rebuild draws a bar per layer in flight
/// (download, rewrite, upload, with bytes done / total) and one summary of the finished ones;
/// the result still goes to stdout, and the same run off a terminal draws no bar.
#[test]
fn rebuild_on_a_terminal_draws_per_layer_bars() {
    let script = require_tool("script");
    let reg = Registry::start(false);
    let fx = fixture("app");
    let src = reg.push_fixture(&fx, "app:1");
    let tmp = tempdir("rebuild-tty");
    let typescript = tmp.path().join("typescript");
    let cmd = format!("{} rebuild --no-cache -p strict {src} {}", harden_bin().display(), reg.image("app-hard:tty"));
    let out = run_ok(std::process::Command::new(&script).args(["-qfec", &cmd]).arg(&typescript));
    let raw = std::fs::read(&typescript).expect("script's typescript");
    // Drop the terminal's escape sequences; carriage returns become line ends.
    let text: String = String::from_utf8_lossy(&raw).replace('\r', "\n");
    let esc = regex_lite_strip(&text);
    for want in ["download", "rewrite", "MiB/", "done: download", " · rewrite 1 (", " · upload "] {
        assert!(esc.contains(want), "no {want:?} on the terminal:\n{}\n{}", &esc[..esc.len().min(4000)], dump(&out));
    }
    assert!(esc.contains("@sha256:"), "the result is printed");

    let plain = harden(&["rebuild", "--no-cache", "-p", "strict", &src, &reg.image("app-hard:plain")]);
    expect_pinned(&plain);
    let err = stderr_str(&plain);
    assert!(!err.contains("MiB/") && !err.contains("done: download"), "bars off a terminal:\n{err}");
}

/// `text` without ANSI escape sequences (ESC [ … letter).
fn regex_lite_strip(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A rerun whose result is still at the destination re-tags it without planning or rewriting;
/// the record is checked against the destination: a blob gone, or a record pointing at an
/// image made from another source, and the rebuild runs again (to the same digest).
#[test]
fn rebuild_rerun_reuses_a_result_only_when_the_destination_holds_it() {
    let tmp = tempdir("rebuild-reuse");
    let app = fixture("app");
    let deb = fixture("debian");
    let cache = tmp.path().join("cache");
    let out = tmp.path().join("out");
    let rebuild = |src: &str, tag: &str| {
        harden(&[
            "rebuild",
            "-p",
            "baseline",
            "--cache-dir",
            cache.to_str().unwrap(),
            src,
            &format!("oci:{}:{tag}", out.display()),
        ])
    };
    let first = rebuild(&app.oci_ref(), "app");
    let made = expect_pinned(&first);
    let again = rebuild(&app.oci_ref(), "app");
    assert_eq!(expect_pinned(&again), made);
    assert!(stderr_str(&again).contains("nothing rebuilt"), "{}", dump(&again));
    assert!(!stderr_str(&again).contains("scanned layer"), "a reused result scans nothing:\n{}", dump(&again));

    // A layer blob of the result removed from the destination: rebuilt, and the blob is back.
    let m = read_json(&oci_blob_path(&out, &made.digest));
    let layer = m["layers"][0]["digest"].as_str().unwrap().to_string();
    std::fs::remove_file(oci_blob_path(&out, &layer)).unwrap();
    let repaired = rebuild(&app.oci_ref(), "app");
    assert_eq!(expect_pinned(&repaired), made);
    assert!(stderr_str(&repaired).contains("incomplete or not from this source"), "{}", dump(&repaired));
    oci_read_blob_verified(&out, &layer);

    // Every record now points at the debian result: the app's rerun must not take it.
    let deb_made = expect_pinned(&rebuild(&deb.oci_ref(), "debian"));
    let records = cache.join("results");
    let mut n = 0;
    for e in std::fs::read_dir(&records).unwrap() {
        let p = e.unwrap().path();
        let mut rec: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        rec["digest"] = serde_json::json!(deb_made.digest);
        std::fs::write(&p, serde_json::to_vec(&rec).unwrap()).unwrap();
        n += 1;
    }
    assert!(n >= 2, "one record per result: {n}");
    let forged = rebuild(&app.oci_ref(), "app");
    assert_eq!(expect_pinned(&forged), made, "a forged record must not tag another image");
    assert!(stderr_str(&forged).contains("not from this source"), "{}", dump(&forged));
}
