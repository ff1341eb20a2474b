//! Hostile image documents read from OCI layouts: each is a clear error, never a panic or a
//! hang, and nothing unverified gets past. And what endpoints answer for the code above them.
//!
//! Owns: those unit tests. Must not: need a registry or network.

use super::*;
use crate::image::{OCI_CONFIG, OCI_INDEX, OCI_MANIFEST};
use crate::source::{image_config, ScanShare, Scanner};
use serde_json::json;
use std::path::Path;

/// A layout with blobs written under the digests given (which may lie) and an index.json.
struct Fake {
    dir: tempfile::TempDir,
}

impl Fake {
    fn new() -> Fake {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
        std::fs::write(dir.path().join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Fake { dir }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    /// Store `bytes` under its true digest.
    fn blob(&self, bytes: &[u8]) -> Digest {
        let d = Digest::of(bytes);
        self.blob_as(&d, bytes);
        d
    }
    /// Store `bytes` under `d`, whatever their digest.
    fn blob_as(&self, d: &Digest, bytes: &[u8]) {
        std::fs::write(self.path().join("blobs/sha256").join(d.hex()), bytes).unwrap();
    }
    fn index(&self, entries: serde_json::Value) {
        let idx = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries});
        std::fs::write(self.path().join("index.json"), serde_json::to_vec(&idx).unwrap()).unwrap();
    }
    fn tag(&self, d: &Digest, media_type: &str, size: usize) {
        self.index(json!([{"mediaType": media_type, "digest": d.as_str(), "size": size,
                           "annotations": {"org.opencontainers.image.ref.name": "t"}}]));
    }
    fn r(&self, suffix: &str) -> ImageRef {
        ImageRef::parse(&format!("oci:{}{suffix}", self.path().display())).unwrap()
    }
    fn ep(&self) -> Endpoint {
        Endpoint::open(&self.r(":t"), &NetOptions::default()).unwrap()
    }
    /// An image: one gzip layer holding one file, its config and manifest, tagged `t`.
    fn image(&self) -> (Digest, Digest, Digest) {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        b.append_data(&mut h, "etc/hi", &b"hi"[..]).unwrap();
        let tar = b.into_inner().unwrap();
        let mut gz = crate::layer::codec::Encoder::new(crate::layer::codec::OutputCodec::Gzip(6), Vec::new()).unwrap();
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        let layer = gz.finish().unwrap();
        let l = self.blob(&layer);
        let config = json!({"architecture": "amd64", "os": "linux", "config": {},
                            "rootfs": {"type": "layers", "diff_ids": [Digest::of(&tar).as_str()]}});
        let config = serde_json::to_vec(&config).unwrap();
        let c = self.blob(&config);
        let m = self.manifest(&c, config.len(), &l, layer.len());
        (m, c, l)
    }
    fn manifest(&self, c: &Digest, csize: usize, l: &Digest, lsize: usize) -> Digest {
        let m = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                       "config": {"mediaType": OCI_CONFIG, "digest": c.as_str(), "size": csize},
                       "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                   "digest": l.as_str(), "size": lsize}]});
        let bytes = serde_json::to_vec(&m).unwrap();
        let d = self.blob(&bytes);
        self.tag(&d, OCI_MANIFEST, bytes.len());
        d
    }
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

/// Fetch, parse and scan the image tagged `t`: the same steps `rebuild` and `check` take.
fn read_image(f: &Fake) -> anyhow::Result<usize> {
    block(async {
        let ep = f.ep();
        let r = f.r(":t");
        let m = ep.manifest(&r).await?;
        let (view, config) = image_config(&ep, &r, &m).await?;
        let share = ScanShare::new()?;
        let limits = crate::layer::Limits::default();
        let scanner = Scanner {
            src: &ep,
            share: &share,
            jobs: 2,
            progress: &crate::progress::Progress::Quiet,
            limits: &limits,
            mirror_to: None,
            stop_mirroring: None,
            hash_executables: false,
        };
        let idx = scanner.scan(&view, &config).await?;
        Ok(idx.len())
    })
}

fn err_of(f: &Fake) -> String {
    match read_image(f) {
        Ok(n) => panic!("a hostile image was accepted ({n} layers)"),
        Err(e) => e.chain().map(ToString::to_string).collect::<Vec<_>>().join(": "),
    }
}

#[test]
fn an_honest_image_reads() {
    let f = Fake::new();
    f.image();
    assert_eq!(read_image(&f).unwrap(), 1);
}

#[test]
fn malformed_and_oversized_documents_are_errors() {
    let f = Fake::new();
    std::fs::write(f.path().join("index.json"), b"{\"manifests\": [").unwrap();
    assert!(err_of(&f).contains("index.json is not valid JSON"));

    std::fs::write(f.path().join("index.json"), vec![b' '; MAX_MANIFEST + 1]).unwrap();
    assert!(err_of(&f).contains("larger than"));

    let bad = f.blob(b"{\"schemaVersion\": 2, \"layers\": ");
    f.tag(&bad, OCI_MANIFEST, 10);
    assert!(err_of(&f).contains("not valid JSON"), "{}", err_of(&f));

    let huge = f.blob(&vec![b' '; MAX_MANIFEST + 1]);
    f.tag(&huge, OCI_MANIFEST, MAX_MANIFEST + 1);
    assert!(err_of(&f).contains("limit"), "{}", err_of(&f));

    // A config that is not a JSON object, and one over the config limit.
    let (_, _, l) = f.image();
    let c = f.blob(b"[1,2,3]");
    f.manifest(&c, 7, &l, 1);
    assert!(err_of(&f).contains("not a JSON object"), "{}", err_of(&f));
    let big = vec![b' '; MAX_CONFIG as usize + 1];
    let c = f.blob(&big);
    f.manifest(&c, big.len(), &l, 1);
    assert!(err_of(&f).contains("limit"), "{}", err_of(&f));
}

#[test]
fn wrong_media_types_are_errors() {
    let f = Fake::new();
    let (m, c, _) = f.image();
    // index.json says the manifest is a config.
    f.tag(&m, OCI_CONFIG, 10);
    assert!(err_of(&f).contains("not an image manifest"), "{}", err_of(&f));
    // A manifest whose config is not an image config (an artifact).
    let bytes = std::fs::read(f.path().join("blobs/sha256").join(m.hex())).unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    v["config"]["mediaType"] = json!("application/vnd.cncf.helm.config.v1+json");
    let bytes = serde_json::to_vec(&v).unwrap();
    let m2 = f.blob(&bytes);
    f.tag(&m2, OCI_MANIFEST, bytes.len());
    assert!(err_of(&f).contains("not an image config"), "{}", err_of(&f));
    let _ = c;
}

#[test]
fn digests_that_lie_are_errors() {
    // The manifest blob's content is not what its name says.
    let f = Fake::new();
    let (m, c, l) = f.image();
    f.blob_as(&m, b"{\"schemaVersion\": 2}");
    assert!(err_of(&f).contains("corrupt"), "{}", err_of(&f));

    // The config blob lies.
    let f = Fake::new();
    let (_, c2, _) = f.image();
    f.blob_as(&c2, br#"{"rootfs":{"diff_ids":[]}}"#);
    assert!(err_of(&f).contains("tampered"), "{}", err_of(&f));

    // The layer blob lies (same size, other bytes): the scan's digest check catches it.
    let f = Fake::new();
    let (_, _, l3) = f.image();
    let p = f.path().join("blobs/sha256").join(l3.hex());
    let mut bytes = std::fs::read(&p).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&p, &bytes).unwrap();
    // (gzip's own checksum, or the digest, whichever notices first)
    assert!(err_of(&f).contains("corrupt"), "{}", err_of(&f));

    // The layer's size differs from its descriptor.
    let f = Fake::new();
    let (_, _, l4) = f.image();
    let p = f.path().join("blobs/sha256").join(l4.hex());
    let mut bytes = std::fs::read(&p).unwrap();
    bytes.extend_from_slice(&[0; 10]);
    std::fs::write(&p, &bytes).unwrap();
    assert!(err_of(&f).contains("but the manifest says"), "{}", err_of(&f));

    // A digest asked for directly (not in index.json), whose blob holds something else.
    let f = Fake::new();
    f.image();
    let lie = Digest::of(b"something else");
    f.blob_as(&lie, &std::fs::read(f.path().join("blobs/sha256").join(m.hex())).unwrap());
    let e = block(f.ep().manifest(&f.r(&format!("@{lie}")))).unwrap_err().to_string();
    assert!(e.contains("corrupt"), "{e}");
    let _ = (c, l);
}

/// An index that points to itself can only exist if a digest lies (a document cannot contain
/// its own hash); the lie is caught on the first read, so there is no loop to run.
#[test]
fn an_index_pointing_to_itself_is_an_error_not_a_hang() {
    let f = Fake::new();
    let me = Digest::of(b"placeholder: the digest the index claims");
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
                       "manifests": [{"mediaType": OCI_INDEX, "digest": me.as_str(), "size": 100,
                                      "platform": {"os": "linux", "architecture": "amd64"}}]});
    let bytes = serde_json::to_vec(&index).unwrap();
    f.blob_as(&me, &bytes);
    f.tag(&me, OCI_INDEX, bytes.len());
    let errors = crate::test_support::unless_hung("a self-referencing index", move || {
        let by_tag = block(f.ep().manifest(&f.r(":t")));
        let by_digest = block(f.ep().manifest(&f.r(&format!("@{me}"))));
        [by_tag, by_digest].map(|r| r.map(drop).map_err(|e| e.to_string()))
    });
    for r in errors {
        let e = r.expect_err("a self-referencing index must not be read");
        assert!(e.contains("corrupt"), "{e}");
    }
}

#[test]
fn endpoints_answer_what_pipeline_code_asks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    // reference, holds_index, holds_signatures, keeps_manifests, is_registry
    let cases = [
        (format!("oci:{d}/lay:t"), true, true, true, false),
        (format!("oci-archive:{d}/o.tar:t"), true, true, true, false),
        (format!("docker-archive:{d}/a.tar"), false, false, false, false),
        ("127.0.0.1:5000/team/app:1".to_string(), true, true, true, true),
    ];
    for (r, index, signatures, manifests, registry) in cases {
        let ep = Endpoint::open(&ImageRef::parse(&r).unwrap(), &NetOptions::default()).unwrap();
        assert_eq!(ep.holds_index(), index, "{r}: holds_index");
        assert_eq!(ep.holds_signatures(), signatures, "{r}: holds_signatures");
        assert_eq!(ep.keeps_manifests(), manifests, "{r}: keeps_manifests");
        assert_eq!(ep.is_registry(), registry, "{r}: is_registry");
        assert_eq!(ep.registry_repository().is_some(), registry, "{r}: registry_repository");
    }
}

/// The README's "another transport" recipe: only `reference.rs` and `transport/` match on
/// `ImageRef` or `Endpoint` variants, so a new variant's every question is found by the
/// compiler there. Test code (a `tests.rs`, or below `#[cfg(test)]`) may build references.
#[test]
fn no_variant_is_matched_above_transport() {
    let variants = [
        "ImageRef::Registry",
        "ImageRef::Layout",
        "ImageRef::DockerArchive",
        "ImageRef::OciArchive",
        "Endpoint::Registry",
        "Endpoint::Layout",
        "Endpoint::Archive",
    ];
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut todo = vec![src.clone()];
    let mut found = Vec::new();
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                if rel != "transport" {
                    todo.push(p);
                }
                continue;
            }
            if rel == "reference.rs" || p.file_name().is_some_and(|n| n == "tests.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            let code = text.split("#[cfg(test)]\nmod tests {").next().unwrap_or_default();
            for (n, line) in code.lines().enumerate() {
                if variants.iter().any(|v| line.contains(v)) {
                    found.push(format!("src/{rel}:{}: {}", n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "variants matched above transport/ (ask the endpoint or the reference):\n{}",
        found.join("\n")
    );
}
