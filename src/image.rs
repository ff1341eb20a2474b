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

pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
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

/// `rootfs.diff_ids` of a config, checked against the manifest's layer count.
pub fn diff_ids(config: &Value, layers: usize) -> Result<Vec<Digest>> {
    let ids = config["rootfs"]["diff_ids"].as_array().ok_or_else(|| anyhow!("config has no rootfs.diff_ids"))?;
    if ids.len() != layers {
        bail!("config lists {} diff_ids for {} layers", ids.len(), layers);
    }
    ids.iter().map(|v| Digest::parse(v.as_str().unwrap_or("")).map_err(|e| anyhow!("config diff_id: {e}"))).collect()
}
