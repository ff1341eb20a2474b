//! The pipeline in-process, on OCI layouts built here: fast, no registry. The integration tests
//! (integration/) run the binary against a real registry and real Debian content.
//!
//! Owns: the pipeline's in-process tests. Must not: need a registry, root or network.

use super::*;
use crate::digest::Digest;
use crate::image;
use crate::transport::Manifest;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;

fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap().block_on(f)
}

/// A gzip layer of `(path, mode, data)` files (directories made as needed).
fn layer(files: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut dirs = BTreeSet::new();
    for (path, mode, data) in files {
        let mut parts: Vec<&str> = path.split('/').collect();
        parts.pop();
        for i in 1..=parts.len() {
            let d = parts[..i].join("/");
            if dirs.insert(d.clone()) {
                let mut h = tar::Header::new_ustar();
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                h.set_mtime(1_700_000_000);
                b.append_data(&mut h, format!("{d}/"), std::io::empty()).unwrap();
            }
        }
        let mut h = tar::Header::new_ustar();
        h.set_mode(*mode);
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, path, *data).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    gz.finish().unwrap()
}

fn diff_id(gz: &[u8]) -> Digest {
    let mut plain = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(gz), &mut plain).unwrap();
    Digest::of(&plain)
}

fn layout_ref(dir: &Path, tag: &str) -> ImageRef {
    ImageRef::Layout { dir: dir.to_path_buf(), tag: Some(tag.to_string()), digest: None }
}

/// An image of `layers` with an entrypoint, stored in the layout at `dir`; returns its manifest.
fn put_image(ep: &Endpoint, dir: &Path, tag: Option<&str>, arch: &str, layers: &[Vec<u8>]) -> Manifest {
    block(async {
        let config = json!({
            "architecture": arch, "os": "linux", "created": "2024-01-01T00:00:00Z",
            "config": {"Entrypoint": ["/app/server"], "Env": ["PATH=/usr/bin:/bin", "API_TOKEN=hunter2"]},
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| diff_id(l).to_string()).collect::<Vec<_>>()},
            "history": layers.iter().map(|_| json!({"created_by": "test"})).collect::<Vec<_>>(),
        });
        let config = serde_json::to_vec(&config).unwrap();
        let cd = Digest::of(&config);
        ep.put_blob_bytes(&cd, &config).await.unwrap();
        let mut descs = Vec::new();
        for l in layers {
            let d = Digest::of(l);
            ep.put_blob_bytes(&d, l).await.unwrap();
            descs.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d.as_str(), "size": l.len()}));
        }
        let m = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": image::OCI_MANIFEST,
            "config": {"mediaType": image::OCI_CONFIG, "digest": cd.as_str(), "size": config.len()}, "layers": descs}))
        .unwrap();
        let man = Manifest { digest: Digest::of(&m), bytes: m, media_type: image::OCI_MANIFEST.into() };
        let r = match tag {
            Some(t) => layout_ref(dir, t),
            None => ImageRef::Layout { dir: dir.to_path_buf(), tag: None, digest: Some(man.digest.clone()) },
        };
        ep.put_manifest(&r, &man).await.unwrap();
        man
    })
}

fn app_layers() -> Vec<Vec<u8>> {
    vec![
        layer(&[
            ("bin/sh", 0o755, b"\x7fELF-not-really-a-shell"),
            ("usr/bin/passwd", 0o4755, b"setuid tool"),
            ("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n"),
            ("var/cache/apt/pkgcache.bin", 0o644, b"cache bytes"),
        ]),
        layer(&[("app/server", 0o755, b"#!/bin/sh\necho serving\n"), ("app/config.yml", 0o644, b"port: 8080\n")]),
    ]
}

struct Fixture {
    _tmp: tempfile::TempDir,
    src_dir: std::path::PathBuf,
    dst_dir: std::path::PathBuf,
    src: ImageRef,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let src_dir = tmp.path().join("src");
    let dst_dir = tmp.path().join("dst");
    let src = layout_ref(&src_dir, "v1");
    let ep = Endpoint::open(&src, &NetOptions::default()).unwrap();
    put_image(&ep, &src_dir, Some("v1"), "amd64", &app_layers());
    Fixture { _tmp: tmp, src_dir, dst_dir, src }
}

fn f_src_digest(f: &Fixture) -> String {
    let ep = Endpoint::open(&f.src, &NetOptions::default()).unwrap();
    block(ep.manifest(&f.src)).unwrap().digest.to_string()
}

fn quiet(profiles: &[&str]) -> RebuildOptions {
    RebuildOptions {
        profiles: profiles.iter().map(|s| s.to_string()).collect(),
        progress: Progress::Quiet,
        ..RebuildOptions::default()
    }
}

/// Every key path of a JSON value (`a.b[].c`), to pin a report's shape.
fn shape(v: &Value, at: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
                out.insert(p.clone());
                shape(x, &p, out);
            }
        }
        Value::Array(a) => {
            for x in a {
                shape(x, &format!("{at}[]"), out);
            }
        }
        _ => {}
    }
}

/// The `harden-rebuild/1` shape of one image's report, as documented in docs/reports.md.
const ONE_IMAGE_SHAPE: &[&str] = &[
    "schema",
    "harden_version",
    "source",
    "source.reference",
    "source.digest",
    "profile",
    "profile.name",
    "profile.digest",
    "compression",
    "splice",
    "plan",
    "plan.summary",
    "plan.removed",
    "plan.removed[].path",
    "plan.removed[].rule",
    "plan.removed[].origin",
    "plan.setuid_stripped",
    "plan.capabilities_stripped",
    "plan.world_writable_fixed",
    "plan.notes",
    "plan.layers",
    "plan.layers[].digest",
    "plan.layers[].changes",
    "plan.layers[].removed",
    "plan.layers[].changed",
    "guard",
    "guard.broken",
    "guard.preexisting",
    "findings",
    "findings.before",
    "findings.after",
    "findings.summary",
    "layers",
    "layers[].input_digest",
    "layers[].output_digest",
    "layers[].action",
    "layers[].input_codec",
    "layers[].uncompressed_bytes",
    "layers[].scan",
    "layers[].bytes_in",
    "layers[].bytes_out",
    "layers[].entries_removed",
    "layers[].entries_changed",
    "layers[].bytes_spliced",
    "layers[].dropped_annotations",
    "layers[].purpose",
    "config_changes",
    "config_changes.user",
    "config_changes.env_removed",
    "config_changes.healthcheck",
    "config_changes.labels_set",
    "result",
    "result.digest",
    "result.config_digest",
    "result.reference",
    "timings_ms",
    "timings_ms.scan",
    "timings_ms.rewrite",
    "timings_ms.push",
    "timings_ms.total",
];

#[test]
fn one_image_report_has_the_documented_shape() {
    let f = fixture();
    let dst = layout_ref(&f.dst_dir, "hard");
    let out = block(rebuild(&f.src, &dst, &quiet(&["baseline"]))).unwrap();
    let v = serde_json::to_value(&out.report).unwrap();
    let mut keys = BTreeSet::new();
    shape(&v, "", &mut keys);
    // Findings have their own documented shape (docs/checks.md); pin only down to the list.
    keys.retain(|k| !k.starts_with("findings.before[]") && !k.starts_with("findings.after[]"));
    let want: BTreeSet<String> = ONE_IMAGE_SHAPE.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        keys,
        want,
        "\nextra: {:?}\nmissing: {:?}",
        keys.difference(&want).collect::<Vec<_>>(),
        want.difference(&keys).collect::<Vec<_>>()
    );
    assert_eq!(v["schema"], "harden-rebuild/1");
    // Actions, as strings.
    let actions: Vec<&str> = v["layers"].as_array().unwrap().iter().map(|l| l["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["rewritten", "reused", "added"]);
    assert_eq!(v["layers"][2]["input_digest"], Value::Null);
    assert!(v["layers"][1].get("bytes_spliced").is_none(), "only rewritten layers say how much was spliced");
}

#[test]
fn rebuild_on_layouts_removes_strips_and_is_reproducible() {
    let f = fixture();
    let dst = layout_ref(&f.dst_dir, "hard");
    let first = block(rebuild(&f.src, &dst, &quiet(&["baseline"]))).unwrap();
    let pushed = first.pushed.clone().unwrap();
    let r = &first.report;
    let removed: Vec<&str> = r.image.as_ref().unwrap().plan.removed.iter().map(|p| p.path.as_str()).collect();
    assert!(removed.contains(&"/var/cache/apt/pkgcache.bin"), "{removed:?}");
    assert_eq!(r.image.as_ref().unwrap().plan.setuid_stripped, ["/usr/bin/passwd"]);
    let digest = r.result.as_ref().unwrap().digest.clone();
    assert_eq!(pushed, format!("oci:{}@{digest}", f.dst_dir.display()));
    // The destination holds the result under its tag, with every blob it names.
    let ep = Endpoint::open(&dst, &NetOptions::default()).unwrap();
    let m = block(ep.manifest(&dst)).unwrap();
    assert_eq!(m.digest.to_string(), digest);
    let mv: Value = serde_json::from_slice(&m.bytes).unwrap();
    for d in std::iter::once(&mv["config"]).chain(mv["layers"].as_array().unwrap()) {
        let d = Digest::parse(d["digest"].as_str().unwrap()).unwrap();
        assert!(block(ep.has_blob(&d)).unwrap(), "{d} missing");
    }
    let cd = Digest::parse(mv["config"]["digest"].as_str().unwrap()).unwrap();
    let config: Value = serde_json::from_slice(&block(ep.blob_bytes(&cd, 1 << 20)).unwrap()).unwrap();
    assert_eq!(config["config"]["User"], "65532:65532");
    assert!(!config["config"]["Env"].to_string().contains("hunter2"), "secret env removed");
    assert_eq!(mv["annotations"]["org.opencontainers.image.base.digest"], json!(f_src_digest(&f)));
    // Same source, profile and build: same digest, into another layout.
    let other = layout_ref(&f.dst_dir.with_file_name("again"), "x");
    let second = block(rebuild(&f.src, &other, &quiet(&["baseline"]))).unwrap();
    assert_eq!(second.report.result.unwrap().digest, digest);
}

#[test]
fn dry_run_lists_the_plan_and_pushes_nothing() {
    let f = fixture();
    let dst = layout_ref(&f.dst_dir, "hard");
    let out = block(rebuild(&f.src, &dst, &RebuildOptions { dry_run: true, ..quiet(&["strict"]) })).unwrap();
    assert!(out.pushed.is_none());
    let lines = &out.dry_run[0].lines;
    assert!(lines[0].starts_with("removed "), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("remove /bin/sh")), "{lines:?}");
    assert!(!f.dst_dir.exists(), "a dry run writes nothing");
}

#[test]
fn the_guard_refuses_before_anything_is_pushed() {
    let f = fixture();
    let dst = layout_ref(&f.dst_dir, "hard");
    let profile = f.src_dir.with_file_name("breaks.toml");
    std::fs::write(&profile, "name = \"breaks\"\n[files]\nremove = [\"/app/server\"]\n").unwrap();
    let o = quiet(&[profile.to_str().unwrap()]);
    let e = block(rebuild(&f.src, &dst, &o)).unwrap_err();
    assert!(matches!(e.downcast_ref::<Failure>(), Some(Failure::Policy(_))), "{e:#}");
    assert!(e.to_string().contains("/app/server"), "{e:#}");
    assert!(!f.dst_dir.exists(), "nothing pushed, not even a directory");
    // A dry run lists the plan and reports the refusal rather than failing outright.
    let dry = block(rebuild(&f.src, &dst, &RebuildOptions { dry_run: true, ..o })).unwrap();
    assert!(dry.refused.is_some());
    assert!(dry.dry_run[0].lines.iter().any(|l| l.starts_with("guard: ")));
}

/// An index of two platforms (amd64 with the app's layers, arm64 with the first), plus `extra`
/// as a third entry, at `oci:DIR/src:multi`: (its reference, the layout, amd64, arm64, the index).
fn two_platforms(dir: &Path, extra: Option<Value>) -> (ImageRef, Endpoint, Manifest, Manifest, Manifest) {
    let dir = dir.join("src");
    let r = layout_ref(&dir, "multi");
    let ep = Endpoint::open(&r, &NetOptions::default()).unwrap();
    let amd = put_image(&ep, &dir, None, "amd64", &app_layers());
    let arm = put_image(&ep, &dir, None, "arm64", &app_layers()[..1]);
    let entry = |m: &Manifest, arch: &str| json!({"mediaType": image::OCI_MANIFEST, "digest": m.digest.as_str(), "size": m.bytes.len(), "platform": {"os": "linux", "architecture": arch}});
    let mut entries = vec![entry(&amd, "amd64"), entry(&arm, "arm64")];
    entries.extend(extra);
    let idx =
        serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": image::OCI_INDEX, "manifests": entries})).unwrap();
    let idx = Manifest { digest: Digest::of(&idx), bytes: idx, media_type: image::OCI_INDEX.into() };
    block(ep.put_manifest(&r, &idx)).unwrap();
    (r, ep, amd, arm, idx)
}

#[test]
fn an_index_is_rebuilt_platform_by_platform() {
    let tmp = tempfile::tempdir().unwrap();
    let att = json!({"mediaType": image::OCI_MANIFEST, "digest": Digest::of(b"attestation").as_str(), "size": 1, "platform": {"os": "unknown", "architecture": "unknown"}});
    let (r, _, _, _, _) = two_platforms(tmp.path(), Some(att));

    let dst = layout_ref(&tmp.path().join("dst"), "hard");
    let out = block(rebuild(&r, &dst, &quiet(&["baseline"]))).unwrap();
    let images = out.report.images.as_ref().unwrap();
    assert_eq!(images.len(), 2, "two platforms; the attestation is dropped");
    let dep = Endpoint::open(&dst, &NetOptions::default()).unwrap();
    let top: Value = serde_json::from_slice(&block(dep.manifest(&dst)).unwrap().bytes).unwrap();
    let archs: Vec<&str> =
        top["manifests"].as_array().unwrap().iter().map(|e| e["platform"]["architecture"].as_str().unwrap()).collect();
    assert_eq!(archs, ["amd64", "arm64"]);
    // --platform picks one.
    let one = RebuildOptions { platforms: vec!["linux/arm64".into()], ..quiet(&["baseline"]) };
    let out = block(rebuild(&r, &layout_ref(&tmp.path().join("one"), "x"), &one)).unwrap();
    assert_eq!(out.report.images.unwrap().len(), 1);
    let none = RebuildOptions { platforms: vec!["linux/s390x".into()], ..quiet(&["baseline"]) };
    let e = block(rebuild(&r, &layout_ref(&tmp.path().join("none"), "x"), &none)).unwrap_err();
    assert!(matches!(e.downcast_ref::<Failure>(), Some(Failure::Usage(_))), "{e:#}");
}

#[test]
fn an_unwritable_destination_fails_before_any_work() {
    let f = fixture();
    let file = f.dst_dir.with_file_name("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let dst = layout_ref(&file.join("layout"), "x");
    let e = block(rebuild(&f.src, &dst, &quiet(&["baseline"]))).unwrap_err();
    let msg = format!("{e:#}");
    assert!(msg.contains("the destination does not accept a push") && msg.contains("not a directory"), "{msg}");
}

/// The diff_ids of the image `r` names (its content, whatever the compression).
fn diff_ids_of(r: &ImageRef) -> Vec<Value> {
    let ep = Endpoint::open(r, &NetOptions::default()).unwrap();
    let m = block(ep.manifest(r)).unwrap();
    let (_, config) = block(crate::source::image_config(&ep, r, &m)).unwrap();
    config["rootfs"]["diff_ids"].as_array().unwrap().clone()
}

#[test]
fn archives_round_trip_reproducibly_and_refuse_tampered_layers() {
    let f = fixture();
    let dir = f.dst_dir.parent().unwrap().join("archives");
    std::fs::create_dir_all(&dir).unwrap();
    let arch = |s: &str| ImageRef::parse(s).unwrap();
    // layout → oci-archive (the rebuild), → docker-archive (mirror), → layout (mirror).
    let oa = arch(&format!("oci-archive:{}/o.tar:hard", dir.display()));
    let out = block(rebuild(&f.src, &oa, &quiet(&["baseline"]))).unwrap();
    let printed = out.pushed.unwrap();
    assert!(printed.starts_with(&format!("oci-archive:{}/o.tar@sha256:", dir.display())), "{printed}");
    let hardened = diff_ids_of(&oa);
    let da = arch(&format!("docker-archive:{}/d.tar:localhost/app:1", dir.display()));
    block(rebuild(&oa, &da, &quiet(&["passthrough"]))).unwrap();
    let back = layout_ref(&dir.join("back"), "x");
    block(rebuild(&arch(&format!("docker-archive:{}/d.tar:@0", dir.display())), &back, &quiet(&["passthrough"])))
        .unwrap();
    assert_eq!(diff_ids_of(&back), hardened, "the content survives both archive kinds");
    let names: BTreeSet<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names, BTreeSet::from(["back".to_string(), "d.tar".into(), "o.tar".into()]), "no temporary files");

    // Same input, same bytes; the docker-archive has manifest.json, the config and tar layers.
    let da2 = arch(&format!("docker-archive:{}/d2.tar:localhost/app:1", dir.display()));
    block(rebuild(&oa, &da2, &quiet(&["passthrough"]))).unwrap();
    let d1 = std::fs::read(dir.join("d.tar")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(dir.join("d.tar")).unwrap().permissions().mode() & 0o777, 0o644);
    assert_eq!(d1, std::fs::read(dir.join("d2.tar")).unwrap());
    let mut ar = tar::Archive::new(&d1[..]);
    let mut entries = Vec::new();
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        assert_eq!((e.header().mtime().unwrap(), e.header().uid().unwrap(), e.header().gid().unwrap()), (0, 0, 0));
        entries.push(e.path().unwrap().to_string_lossy().into_owned());
    }
    let mut sorted = entries.clone();
    sorted.sort();
    assert_eq!(entries, sorted);
    assert!(
        entries.contains(&"manifest.json".to_string()) && entries.iter().filter(|e| e.ends_with(".tar")).count() == 3
    );

    // A layer whose bytes are not its diff_id is refused, naming it; nothing is written.
    let mut rebuilt = tar::Builder::new(Vec::new());
    let mut victim = String::new();
    for e in tar::Archive::new(&d1[..]).entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        if name.ends_with(".tar") && victim.is_empty() {
            let n = data.len() / 3;
            data[n] ^= 1;
            victim = name.clone();
        }
        let mut h = e.header().clone();
        rebuilt.append_data(&mut h, &name, &data[..]).unwrap();
    }
    std::fs::write(dir.join("bad.tar"), rebuilt.into_inner().unwrap()).unwrap();
    let never = layout_ref(&dir.join("never"), "x");
    let e = block(rebuild(&arch(&format!("docker-archive:{}/bad.tar", dir.display())), &never, &quiet(&["baseline"])))
        .unwrap_err();
    assert!(format!("{e:#}").contains(&victim), "{e:#}");
    assert!(!dir.join("never").exists());

    // An archive that is not one, and a missing one, are one-line errors naming the file.
    std::fs::write(dir.join("junk.tar"), b"not a tar at all").unwrap();
    for name in ["junk.tar", "missing.tar"] {
        let e =
            block(rebuild(&arch(&format!("oci-archive:{}/{name}", dir.display())), &never, &quiet(&[]))).unwrap_err();
        assert!(format!("{e:#}").contains(name), "{e:#}");
    }
}

#[test]
fn rebuild_writes_the_contract_and_records_it_as_an_annotation() {
    let f = fixture();
    let dst = layout_ref(&f.dst_dir, "hard");
    let file = f.dst_dir.parent().unwrap().join("contract.json");
    let o = RebuildOptions { contract: Some(file.clone()), ..quiet(&["baseline"]) };
    block(rebuild(&f.src, &dst, &o)).unwrap();
    let written: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let sc = &written["securityContext"];
    assert_eq!((sc["runAsUser"].as_u64(), sc["runAsGroup"].as_u64()), (Some(65532), Some(65532)));
    // baseline strips the setuid bit of usr/bin/passwd: escalation can be forbidden.
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert!(written["dockerRunArgs"].as_array().unwrap().contains(&json!("no-new-privileges")));
    let ep = Endpoint::open(&dst, &NetOptions::default()).unwrap();
    let m: Value = serde_json::from_slice(&block(ep.manifest(&dst)).unwrap().bytes).unwrap();
    let annotated: Value =
        serde_json::from_str(m["annotations"][crate::contract::ANNOTATION].as_str().unwrap()).unwrap();
    assert_eq!(annotated, written);

    // passthrough leaves the setuid file and the root user: the contract says so.
    let yaml = f.dst_dir.parent().unwrap().join("contract.yaml");
    let o = RebuildOptions {
        contract: Some(yaml.clone()),
        contract_format: crate::contract::Format::Yaml,
        ..quiet(&["passthrough"])
    };
    block(rebuild(&f.src, &layout_ref(&f.dst_dir, "pass"), &o)).unwrap();
    let y = std::fs::read_to_string(&yaml).unwrap();
    assert!(y.contains("  runAsNonRoot: false\n") && y.contains("  allowPrivilegeEscalation: true\n"), "{y}");
    assert!(y.contains("/usr/bin/passwd"), "{y}");
}

/// `--require-signature` on an index needs the index and every platform signed; `--attest`
/// gives each platform its provenance and SBOM and the index its provenance, all verifying.
#[test]
fn an_index_is_gated_and_attested_per_platform() {
    use crate::sign::{check, dsse, store};
    let tmp = tempfile::tempdir().unwrap();
    let (r, ep, amd, arm, idx) = two_platforms(tmp.path(), None);
    let (vendor, key) = (crate::sign::dsse::tests::test_key(), crate::sign::dsse::tests::test_key());
    let trusted = vec![TrustedKey { name: "vendor.pub".into(), key: vendor.public_key() }];
    let none = Default::default();

    // Only the index signed: the platforms are not, so the gate refuses and nothing is pushed.
    block(store::sign_digest(&ep, &r, &idx.digest, crate::sign::Signer::quiet(&vendor), &none)).unwrap();
    let dst = layout_ref(&tmp.path().join("dst"), "hard");
    let o = RebuildOptions {
        require_signature: trusted.clone(),
        sign_key: Some(Arc::new(crate::sign::dsse::tests::test_key())),
        attest: true,
        ..quiet(&["baseline"])
    };
    let e = block(rebuild(&r, &dst, &o)).unwrap_err();
    assert!(matches!(e.downcast_ref::<Failure>(), Some(Failure::Policy(_))), "{e:#}");
    assert!(e.to_string().contains(&amd.digest.to_string()) && e.to_string().contains("carries no signature"), "{e:#}");
    assert!(!tmp.path().join("dst").exists(), "a refused rebuild pushed something");

    // Every manifest signed (as `harden sign` does): it passes, and every result is attested.
    block(store::sign(&ep, &r, crate::sign::Signer::quiet(&vendor), &none)).unwrap();
    let key = Arc::new(key);
    let o = RebuildOptions { sign_key: Some(Arc::clone(&key)), ..o };
    let out = block(rebuild(&r, &dst, &o)).unwrap();
    let rep = &out.report;
    let checked: Vec<&str> = rep.source_signatures.iter().map(|s| s.digest.as_str()).collect();
    assert_eq!(checked, [idx.digest.as_str(), amd.digest.as_str(), arm.digest.as_str()]);
    assert!(rep.source_signatures.iter().all(|s| s.key == "vendor.pub" && s.signature.contains(".sig #")));
    // What described the source is reported, not copied.
    assert_eq!(rep.not_carried_over.len(), 3, "{:?}", rep.not_carried_over);
    let top = Digest::parse(&rep.result.as_ref().unwrap().digest).unwrap();
    let platforms: Vec<Digest> = rep
        .images
        .as_ref()
        .unwrap()
        .iter()
        .map(|i| Digest::parse(&i.result.as_ref().unwrap().digest).unwrap())
        .collect();
    assert_eq!(rep.attestations.len(), 2 * platforms.len() + 1);
    let dep = Endpoint::open(&dst, &NetOptions::default()).unwrap();
    for d in &platforms {
        let ex = block(check::examine(&dep, &dst, d, &[key.public_key()])).unwrap();
        assert!(ex.attested(dsse::SLSA_PROVENANCE_V1).is_some() && ex.attested(dsse::CYCLONEDX).is_some(), "{ex:?}");
        assert!(ex.signed_by().is_some());
    }
    let ex = block(check::examine(&dep, &dst, &top, &[key.public_key()])).unwrap();
    let prov = ex.attested(dsse::SLSA_PROVENANCE_V1).expect("the index's provenance");
    let st: Value = serde_json::from_slice(prov.statement.as_ref().unwrap()).unwrap();
    assert_eq!(st["subject"][0]["digest"]["sha256"], top.hex());
    let p = &st["predicate"];
    assert_eq!(p["buildDefinition"]["resolvedDependencies"][0]["digest"]["sha256"], idx.digest.hex());
    let by = p["runDetails"]["byproducts"].as_array().unwrap();
    assert_eq!(by.len(), 2);
    assert_eq!(by[1]["annotations"]["platform"], "linux/arm64");
    assert_eq!(by[1]["annotations"]["source"], arm.digest.as_str());
    assert!(p["buildDefinition"]["internalParameters"]["sourceVerifiedBy"][0].as_str().unwrap().contains("vendor.pub"));

    // --bundle: a cosign v3 bundle per platform and for the index (the index's reported first),
    // registered in each referrers tag; no legacy .sig; each attestation also as a bundle.
    let bdst = layout_ref(&tmp.path().join("bundled"), "hard");
    let out = block(rebuild(&r, &bdst, &RebuildOptions { bundle: true, ..o })).unwrap();
    let rep = &out.report;
    assert!(rep.signature.is_none());
    assert_eq!(rep.bundles.len(), 3);
    assert_eq!(rep.bundles[0].subject, rep.result.as_ref().unwrap().digest);
    assert!(rep.attestations.iter().all(|a| a.bundle.is_some()), "{:?}", rep.attestations);
    let bep = Endpoint::open(&bdst, &NetOptions::default()).unwrap();
    for b in &rep.bundles {
        assert!(b.added && b.referrers_tag.is_some(), "{b:?}");
        let d = Digest::parse(&b.subject).unwrap();
        let ex = block(check::examine(&bep, &bdst, &d, &[key.public_key()])).unwrap();
        assert_eq!(ex.signed_by(), Some(0), "{ex:?}");
        assert!(!ex.lines.iter().any(|l| l.what.contains(".sig")), "{ex:?}");
        let bundled: Vec<Option<&str>> = ex
            .lines
            .iter()
            .filter(|l| l.what.starts_with("bundle ") && l.result.is_ok())
            .map(|l| l.predicate_type.as_deref())
            .collect();
        assert!(bundled.contains(&Some(dsse::COSIGN_SIGN_PREDICATE)), "{bundled:?}");
        assert!(bundled.contains(&Some(dsse::SLSA_PROVENANCE_V1)), "{bundled:?}");
    }
}

#[test]
fn a_warm_rerun_plans_from_the_scan_cache_fetches_no_layer_and_gives_the_same_digest() {
    let f = fixture();
    let cache_dir = f.dst_dir.with_file_name("cache");
    let run = |dst: &ImageRef| {
        let cache = Arc::new(RewriteCache::new(Some(cache_dir.clone())).unwrap());
        let share = Arc::new(ScanShare::new().unwrap().with_cache(cache.dir(), &Progress::Quiet));
        let o = RebuildOptions { cache: Some(cache), scans: Some(Arc::clone(&share)), ..quiet(&["baseline"]) };
        (block(rebuild(&f.src, dst, &o)).unwrap(), share)
    };
    let (cold, share) = run(&layout_ref(&f.dst_dir, "cold"));
    let layers: Vec<String> = cold
        .report
        .image
        .as_ref()
        .unwrap()
        .layers
        .as_ref()
        .unwrap()
        .iter()
        .filter_map(|l| l.input_digest.clone())
        .collect();
    let scans = |o: &Outcome| -> Vec<Option<&str>> {
        o.report.image.as_ref().unwrap().layers.as_ref().unwrap().iter().map(|l| l.scan).collect()
    };
    assert_eq!(scans(&cold), [Some("scanned"), Some("scanned"), None]);
    assert!(layers.iter().all(|d| share.fetched(&Digest::parse(d).unwrap())));

    // Another process (new cache objects), another destination: nothing fetched to plan, the
    // rewrite from the rewrite cache, the unchanged layer fetched only by the push that needs it.
    let (warm, share) = run(&layout_ref(&f.dst_dir.with_file_name("warm"), "warm"));
    assert_eq!(scans(&warm), [Some("scan-cache"), Some("scan-cache"), None]);
    assert!(layers.iter().all(|d| !share.fetched(&Digest::parse(d).unwrap())), "no layer fetched to plan");
    assert_eq!(warm.report.result.unwrap().digest, cold.report.result.unwrap().digest);
    let dst = layout_ref(&f.dst_dir.with_file_name("warm"), "warm");
    let ep = Endpoint::open(&dst, &NetOptions::default()).unwrap();
    for d in &layers[1..] {
        assert!(block(ep.has_blob(&Digest::parse(d).unwrap())).unwrap(), "the unchanged layer {d} was pushed");
    }
}

/// The report is written from one place whatever the outcome: an error after the source is
/// resolved (here a layer whose bytes were changed in the layout) leaves a report with what
/// was known — the source, no image, no result — and fails as before.
#[test]
fn a_failed_rebuild_still_writes_its_report() {
    let f = fixture();
    let layer = Digest::of(&app_layers()[1]);
    std::fs::write(f.src_dir.join("blobs/sha256").join(layer.hex()), b"not the layer").unwrap();
    let report = f._tmp.path().join("report.json");
    let dst = layout_ref(&f.dst_dir, "out");
    let o = RebuildOptions { report: Some(report.clone()), ..quiet(&["strict"]) };
    let Err(e) = block(rebuild(&f.src, &dst, &o)) else { panic!("a changed layer fails the rebuild") };
    assert!(format!("{e:#}").contains(layer.as_str()), "{e:#}");
    let r: Value = serde_json::from_slice(&std::fs::read(&report).expect("a report")).unwrap();
    assert_eq!(r["source"]["digest"], f_src_digest(&f));
    assert!(r.get("image").is_none_or(Value::is_null) && r.get("result").is_none_or(Value::is_null), "{r:#}");
    // Before the source is resolved (a profile that does not exist), none is written.
    std::fs::remove_file(&report).unwrap();
    let o = RebuildOptions { report: Some(report.clone()), ..quiet(&["no-such-profile"]) };
    assert!(block(rebuild(&f.src, &dst, &o)).is_err());
    assert!(!report.exists());
}

/// The copy check needs no second read of the layers when every candidate is an executable:
/// the scan hashed them on the way ([`crate::scan::ExecHashes`]). A byte-identical copy of a
/// removed shell in another layer goes with it; a same-size executable with other bytes stays.
#[test]
fn copies_of_removed_tools_are_found_from_the_first_scan_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let src = layout_ref(&tmp.path().join("src"), "v1");
    let ep = Endpoint::open(&src, &NetOptions::default()).unwrap();
    let layers = vec![
        layer(&[("bin/dash", 0o755, b"dash-binary"), ("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/dash\n")]),
        layer(&[
            ("opt/mysh", 0o755, b"dash-binary"),
            ("opt/same-size", 0o755, b"other-bytes"),
            ("app/server", 0o755, b"#!/app/run\n"),
            ("app/run", 0o755, b"\x7fELF-not-really"),
        ]),
    ];
    put_image(&ep, &tmp.path().join("src"), Some("v1"), "amd64", &layers);
    let share = Arc::new(ScanShare::new().unwrap());
    let o = RebuildOptions { scans: Some(Arc::clone(&share)), ..quiet(&["strict"]) };
    let out = block(rebuild(&src, &layout_ref(&tmp.path().join("dst"), "hard"), &o)).unwrap();
    let plan = &out.report.image.as_ref().unwrap().plan;
    let removed: Vec<&str> = plan.removed.iter().map(|p| p.path.as_str()).collect();
    assert!(removed.contains(&"/bin/dash") && removed.contains(&"/opt/mysh"), "{removed:?}");
    assert!(!removed.contains(&"/opt/same-size"), "{removed:?}");
    assert_eq!(share.rereads(), 0, "no layer was read a second time for the copy check");
}
