//! Image documents as JSON: media types, and read views of manifests and configs. Edits go
//! through `serde_json::Value` (with key order preserved), so fields harden does not model
//! survive untouched.
//!
//! Owns: media types and document shapes. Must not: parse tar or do I/O.

use crate::digest::Digest;
use anyhow::{anyhow, bail, Result};
use serde_json::Value;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

/// An index entry that is an attestation (BuildKit's provenance/SBOM manifests: platform
/// unknown/unknown, or Docker's reference-type annotation), not an image to run.
pub fn is_attestation(entry: &Value) -> bool {
    let p = &entry["platform"];
    (p["os"].as_str().unwrap_or("unknown") == "unknown" && p["architecture"].as_str().unwrap_or("unknown") == "unknown")
        || entry["annotations"]["vnd.docker.reference.type"].as_str() == Some("attestation-manifest")
}

/// A layer descriptor of a manifest.
#[derive(Clone, Debug)]
pub struct LayerDesc {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
}

impl LayerDesc {
    /// Foreign (non-distributable) layers are not rewritten or copied.
    pub fn is_foreign(&self) -> bool {
        self.media_type.contains("foreign") || self.media_type.contains("nondistributable")
    }
}

/// The parts of an image manifest the pipeline reads.
pub struct ManifestView {
    pub json: Value,
    pub config: LayerDesc,
    pub layers: Vec<LayerDesc>,
    pub docker: bool,
}

fn desc(v: &Value, what: &str) -> Result<LayerDesc> {
    let digest = Digest::parse(v["digest"].as_str().unwrap_or("")).map_err(|e| anyhow!("{what}: {e}"))?;
    let size = v["size"].as_u64().ok_or_else(|| anyhow!("{what} {digest}: no size"))?;
    Ok(LayerDesc { media_type: v["mediaType"].as_str().unwrap_or_default().to_string(), digest, size })
}

impl ManifestView {
    pub fn parse(bytes: &[u8], media_type: &str) -> Result<ManifestView> {
        let json: Value = serde_json::from_slice(bytes).map_err(|e| anyhow!("manifest is not valid JSON: {e}"))?;
        if json["schemaVersion"] != 2 {
            bail!("manifest schemaVersion is {}, only 2 is supported", json["schemaVersion"]);
        }
        let config = desc(&json["config"], "config")?;
        // An artifact (a Helm chart, a signature, an SBOM) is not an image to rebuild.
        if config.media_type != OCI_CONFIG && config.media_type != DOCKER_CONFIG {
            bail!("config media type `{}` is not an image config (an artifact, not an image?)", config.media_type);
        }
        let layers = json["layers"]
            .as_array()
            .ok_or_else(|| anyhow!("manifest has no layers list"))?
            .iter()
            .enumerate()
            .map(|(i, l)| desc(l, &format!("layer {i}")))
            .collect::<Result<Vec<_>>>()?;
        Ok(ManifestView { json, config, layers, docker: media_type == DOCKER_MANIFEST })
    }

    /// The media type for a gzip layer in this manifest's family.
    pub fn layer_media_type(&self, codec: crate::layer::codec::OutputCodec) -> String {
        match (self.docker, codec.media_suffix()) {
            (true, "gzip") => "application/vnd.docker.image.rootfs.diff.tar.gzip".into(),
            (true, _) => "application/vnd.docker.image.rootfs.diff.tar.zstd".into(),
            (false, s) => format!("application/vnd.oci.image.layer.v1.tar+{s}"),
        }
    }
}

/// The OCI media type of a Docker schema 2 layer, as containers/image converts it when it
/// writes an OCI layout (`convertToManifestOCI1`); `None` for a type it does not convert. An
/// OCI layer type is returned as it is.
pub fn oci_layer_media_type(media_type: &str) -> Option<&'static str> {
    Some(match media_type {
        "application/vnd.docker.image.rootfs.diff.tar.gzip" => "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.docker.image.rootfs.diff.tar" => "application/vnd.oci.image.layer.v1.tar",
        // Not a Docker type, but what harden writes for a zstd layer of a Docker manifest.
        "application/vnd.docker.image.rootfs.diff.tar.zstd" => "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        }
        "application/vnd.docker.image.rootfs.foreign.diff.tar" => {
            "application/vnd.oci.image.layer.nondistributable.v1.tar"
        }
        "application/vnd.oci.image.layer.v1.tar+gzip" => "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar" => "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+zstd" => "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip" => {
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        }
        "application/vnd.oci.image.layer.nondistributable.v1.tar" => {
            "application/vnd.oci.image.layer.nondistributable.v1.tar"
        }
        _ => return None,
    })
}

/// A Docker schema 2 manifest as an OCI image manifest, as skopeo writes one into an OCI
/// layout: the manifest's and the config descriptor's media types and each layer's
/// ([`oci_layer_media_type`]); digests, sizes and other fields stay. Unlike skopeo, the config
/// blob is kept as it is (skopeo re-serialises it through Go's OCI struct, which drops Docker's
/// `Healthcheck`): only its descriptor's media type changes. An error names a layer whose media
/// type has no OCI form.
pub fn docker_manifest_to_oci(manifest: &Value) -> Result<Value> {
    let mut m = manifest.clone();
    m["mediaType"] = Value::from(OCI_MANIFEST);
    m["config"]["mediaType"] = Value::from(OCI_CONFIG);
    for (i, l) in
        m["layers"].as_array_mut().ok_or_else(|| anyhow!("manifest has no layers list"))?.iter_mut().enumerate()
    {
        let from = l["mediaType"].as_str().unwrap_or_default();
        let to = oci_layer_media_type(from).ok_or_else(|| {
            anyhow!("layer {i}: media type `{from}` has no OCI form; cannot write it to an OCI layout")
        })?;
        l["mediaType"] = Value::from(to);
    }
    Ok(m)
}

/// Descriptor annotations that describe a layer blob's bytes for lazy pulling: eStargz's TOC
/// digest and uncompressed size, zstd:chunked's manifest position and checksums. They are true of
/// the source blob only; a rewritten layer no longer matches its TOC, and a snapshotter trusting
/// them would fetch the wrong ranges.
pub fn is_lazy_pull_annotation(key: &str) -> bool {
    const PREFIXES: [&str; 5] = [
        "containerd.io/snapshot/stargz/",
        "io.containers.estargz.",
        "io.containers.zstd-chunked.",
        "io.github.containers.zstd-chunked.",
        "io.github.containers.estargz.",
    ];
    PREFIXES.iter().any(|p| key.starts_with(p))
}

/// Drop the lazy-pull annotations ([`is_lazy_pull_annotation`]) from a rewritten layer's
/// descriptor, and the `annotations` object if nothing is left; the dropped keys, in order.
pub fn drop_lazy_pull_annotations(desc: &mut Value) -> Vec<String> {
    let Some(obj) = desc.as_object_mut() else { return Vec::new() };
    let Some(ann) = obj.get_mut("annotations").and_then(Value::as_object_mut) else { return Vec::new() };
    let dropped: Vec<String> = ann.keys().filter(|k| is_lazy_pull_annotation(k)).cloned().collect();
    for k in &dropped {
        ann.shift_remove(k);
    }
    if ann.is_empty() && !dropped.is_empty() {
        obj.shift_remove("annotations");
    }
    dropped
}

/// `rootfs.diff_ids` of a config, checked against the manifest's layer count.
pub fn diff_ids(config: &Value, layers: usize) -> Result<Vec<Digest>> {
    let ids = config["rootfs"]["diff_ids"].as_array().ok_or_else(|| anyhow!("config has no rootfs.diff_ids"))?;
    if ids.len() != layers {
        bail!("config lists {} diff_ids for {} layers", ids.len(), layers);
    }
    ids.iter().map(|v| Digest::parse(v.as_str().unwrap_or("")).map_err(|e| anyhow!("config diff_id: {e}"))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(config_type: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": config_type, "digest": Digest::of(b"{}").as_str(), "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": Digest::of(b"l").as_str(), "size": 1}],
        }))
        .unwrap()
    }

    #[test]
    fn parses_image_manifests_and_refuses_malformed_ones() {
        let v = ManifestView::parse(&manifest(OCI_CONFIG), OCI_MANIFEST).unwrap();
        assert_eq!(v.layers.len(), 1);
        assert!(ManifestView::parse(&manifest(DOCKER_CONFIG), DOCKER_MANIFEST).unwrap().docker);
        let err = |b: &[u8]| ManifestView::parse(b, OCI_MANIFEST).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err(&manifest("application/vnd.cncf.helm.config.v1+json")).contains("not an image config"));
        assert!(err(b"{not json").contains("not valid JSON"));
        assert!(err(b"[]").contains("schemaVersion"));
        assert!(err(br#"{"schemaVersion":2,"config":{"digest":"sha256:00","size":1},"layers":[]}"#).contains("digest"));
        assert!(err(br#"{"schemaVersion":1}"#).contains("schemaVersion"));
        let mut no_size: Value = serde_json::from_slice(&manifest(OCI_CONFIG)).unwrap();
        no_size["layers"][0]["size"] = serde_json::json!(-1);
        assert!(err(&serde_json::to_vec(&no_size).unwrap()).contains("no size"));
        // Deep nesting is an error from serde_json's recursion limit, not a stack overflow.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(err(deep.as_bytes()).contains("not valid JSON"));
        // The diff_ids must match the layers.
        let cfg = serde_json::json!({"rootfs": {"diff_ids": [Digest::of(b"x").as_str()]}});
        assert!(diff_ids(&cfg, 2).is_err());
        assert!(diff_ids(&serde_json::json!({"rootfs": {"diff_ids": ["md5:00"]}}), 1).is_err());
        assert_eq!(diff_ids(&cfg, 1).unwrap().len(), 1);
    }

    #[test]
    fn docker_manifests_convert_to_oci_as_skopeo_converts_them() {
        let d = |s: &[u8]| Digest::of(s).to_string();
        let m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "size": 2, "digest": d(b"c")},
            "layers": [
                {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 1, "digest": d(b"1")},
                {"mediaType": "application/vnd.docker.image.rootfs.diff.tar", "size": 1, "digest": d(b"2")},
                {"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "size": 1, "digest": d(b"3"), "urls": ["https://x"]},
                {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.zstd", "size": 1, "digest": d(b"4")},
            ],
        });
        let o = docker_manifest_to_oci(&m).unwrap();
        assert_eq!(o["mediaType"], OCI_MANIFEST);
        assert_eq!(o["config"], serde_json::json!({"mediaType": OCI_CONFIG, "size": 2, "digest": d(b"c")}));
        let types: Vec<&str> =
            o["layers"].as_array().unwrap().iter().map(|l| l["mediaType"].as_str().unwrap()).collect();
        assert_eq!(
            types,
            [
                "application/vnd.oci.image.layer.v1.tar+gzip",
                "application/vnd.oci.image.layer.v1.tar",
                "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                "application/vnd.oci.image.layer.v1.tar+zstd",
            ]
        );
        assert_eq!(o["layers"][2]["urls"], serde_json::json!(["https://x"]));
        assert_eq!(o["layers"][0]["digest"], m["layers"][0]["digest"]);
        let mut odd = m.clone();
        odd["layers"][0]["mediaType"] = serde_json::json!("application/x-unknown");
        assert!(docker_manifest_to_oci(&odd).unwrap_err().to_string().contains("application/x-unknown"));
    }

    #[test]
    fn lazy_pull_annotations_are_dropped_from_rewritten_layers_only_them() {
        let mut d = serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:00", "size": 1,
            "annotations": {
                "containerd.io/snapshot/stargz/toc.digest": "sha256:11",
                "org.example.keep": "yes",
                "io.containers.estargz.uncompressed-size": "42",
                "io.github.containers.zstd-chunked.manifest-position": "1:2:3:4",
                "io.containers.zstd-chunked.manifest-checksum": "sha256:22",
            }
        });
        let dropped = drop_lazy_pull_annotations(&mut d);
        assert_eq!(
            dropped,
            vec![
                "containerd.io/snapshot/stargz/toc.digest",
                "io.containers.estargz.uncompressed-size",
                "io.github.containers.zstd-chunked.manifest-position",
                "io.containers.zstd-chunked.manifest-checksum",
            ]
        );
        assert_eq!(d["annotations"], serde_json::json!({"org.example.keep": "yes"}));
        // Only lazy-pull keys: the annotations object goes with them; none: nothing changes.
        let mut only = serde_json::json!({"annotations": {"containerd.io/snapshot/stargz/toc.digest": "x"}});
        assert_eq!(drop_lazy_pull_annotations(&mut only).len(), 1);
        assert_eq!(only, serde_json::json!({}));
        let mut plain = serde_json::json!({"digest": "sha256:00", "annotations": {}});
        let before = plain.clone();
        assert!(drop_lazy_pull_annotations(&mut plain).is_empty());
        assert_eq!(plain, before);
        assert!(!is_lazy_pull_annotation("containerd.io/snapshot/other"));
    }
}
