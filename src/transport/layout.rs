//! OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`) as a source and a sink.
//! Blobs are written to a temporary name and renamed; `index.json` is replaced by rename last.
//!
//! Every file of a layout harden reads must be a regular file, not a symlink (nor a device,
//! FIFO or socket): a layout is often someone else's (unpacked from a download), and a blob
//! symlinked to `/dev/zero` or `/etc/shadow` must neither cost memory nor be read. `index.json`,
//! manifests and configs are read through [`crate::files::read_regular`] (bounded, at most the
//! limit + 1 byte); a layer blob is checked the same way before its path is handed on. Errors
//! name the file, never what a refused one holds.
//!
//! Owns: reading and writing OCI layouts on disk. Must not: know about profiles, or follow
//! symlinks inside a layout.

use super::{LocalBlob, Manifest};
use crate::digest::Digest;
use crate::reference::ImageRef;
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};

pub struct Layout {
    pub dir: PathBuf,
}

const REF_NAME: &str = "org.opencontainers.image.ref.name";

impl Layout {
    pub fn new(dir: PathBuf) -> Layout {
        Layout { dir }
    }

    fn blob_path(&self, d: &Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(d.hex())
    }

    fn index(&self) -> Result<serde_json::Value> {
        let p = self.dir.join("index.json");
        let text = crate::files::read_regular(&p, super::MAX_MANIFEST as u64)
            .with_context(|| format!("oci:{}: cannot read index.json", self.dir.display()))?;
        serde_json::from_slice(&text)
            .with_context(|| format!("oci:{}: index.json is not valid JSON", self.dir.display()))
    }

    pub fn manifest(&self, r: &ImageRef) -> Result<Manifest> {
        let index = self.index()?;
        let entries = index["manifests"].as_array().cloned().unwrap_or_default();
        let pick = match (r.digest(), r.tag()) {
            (Some(d), _) => entries.iter().find(|e| e["digest"] == d.as_str()).or(None),
            (None, Some(t)) => entries.iter().find(|e| e["annotations"][REF_NAME] == t),
            (None, None) if entries.len() == 1 => entries.first(),
            (None, None) => bail!("{r}: the layout holds {} images; name one with oci:DIR:TAG", entries.len()),
        };
        let (digest, media_type) = match (pick, r.digest()) {
            (Some(e), _) => (
                Digest::parse(e["digest"].as_str().unwrap_or("")).map_err(|e| anyhow!("{r}: index.json: {e}"))?,
                e["mediaType"].as_str().map(str::to_string),
            ),
            // A digest not listed in index.json may still be a blob of the layout (a platform manifest).
            (None, Some(d)) => (d.clone(), None),
            (None, None) => bail!("{r}: no image with that tag in index.json"),
        };
        let bytes = self.blob_bytes(&digest, super::MAX_MANIFEST as u64).with_context(|| format!("{r}: manifest"))?;
        let got = Digest::of(&bytes);
        if got != digest {
            bail!("{r}: manifest blob {digest} has digest {got} (corrupt layout)");
        }
        let media_type = media_type
            .or_else(|| super::media_type_of(&bytes))
            .ok_or_else(|| anyhow!("{r}: manifest {digest} has no media type"))?;
        Ok(Manifest { bytes, media_type, digest })
    }

    /// Like [`Layout::manifest`], but `None` when the layout (or its `index.json`) does not exist,
    /// no entry has the tag, or the digest is neither listed nor a blob of the layout.
    pub fn manifest_opt(&self, r: &ImageRef) -> Result<Option<Manifest>> {
        if !self.dir.join("index.json").exists() {
            return Ok(None);
        }
        let index = self.index()?;
        let entries = index["manifests"].as_array().cloned().unwrap_or_default();
        let present = match (r.digest(), r.tag()) {
            (Some(d), _) => entries.iter().any(|e| e["digest"] == d.as_str()) || self.has_blob(d),
            (None, Some(t)) => entries.iter().any(|e| e["annotations"][REF_NAME] == t),
            (None, None) => !entries.is_empty(),
        };
        if !present {
            return Ok(None);
        }
        self.manifest(r).map(Some)
    }

    pub fn blob_bytes(&self, d: &Digest, max: u64) -> Result<Vec<u8>> {
        let p = self.blob_path(d);
        if std::fs::symlink_metadata(&p).is_err() {
            bail!("oci:{}: blob {d} is missing", self.dir.display());
        }
        crate::files::read_regular(&p, max).with_context(|| format!("oci:{}: blob {d}", self.dir.display()))
    }

    pub fn blob_local(&self, d: &Digest, size: u64) -> Result<LocalBlob> {
        let path = self.blob_path(d);
        if std::fs::symlink_metadata(&path).is_err() {
            bail!("oci:{}: blob {d} is missing", self.dir.display());
        }
        let (_, len) =
            crate::files::open_regular(&path).with_context(|| format!("oci:{}: blob {d}", self.dir.display()))?;
        if len != size {
            bail!("oci:{}: blob {d} is {len} bytes, but the manifest says {size}", self.dir.display());
        }
        Ok(LocalBlob { path, verified: false })
    }

    /// Whether the layout can be written: a file made and removed in its directory, or in the
    /// nearest existing directory above it when it does not exist yet (nothing is created).
    pub fn check_writable(&self) -> Result<()> {
        let mut dir = self.dir.as_path();
        while !dir.exists() {
            dir = match dir.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            if dir == Path::new(".") {
                break;
            }
        }
        if dir.exists() && !dir.is_dir() {
            bail!("{}: {} is not a directory", self.dir.display(), dir.display());
        }
        tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("{}: cannot write in {}", self.dir.display(), dir.display()))?;
        Ok(())
    }

    pub fn has_blob(&self, d: &Digest) -> bool {
        std::fs::symlink_metadata(self.blob_path(d)).is_ok_and(|m| m.is_file())
    }

    fn prepare(&self) -> Result<PathBuf> {
        let blobs = self.dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs)
            .with_context(|| format!("oci:{}: cannot create the layout", self.dir.display()))?;
        let marker = self.dir.join("oci-layout");
        if !marker.exists() {
            crate::files::write_atomic(&marker, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        Ok(blobs)
    }

    pub fn put_blob(&self, d: &Digest, src: &Path) -> Result<()> {
        self.prepare()?;
        let dst = self.blob_path(d);
        if dst.is_file() {
            return Ok(());
        }
        let tmp = tempfile::NamedTempFile::new_in(self.dir.join("blobs/sha256"))?;
        std::fs::copy(src, tmp.path()).with_context(|| format!("copying blob {d} into oci:{}", self.dir.display()))?;
        tmp.persist(&dst).map_err(|e| anyhow!("storing blob {d}: {}", e.error))?;
        Ok(())
    }

    pub fn put_blob_bytes(&self, d: &Digest, bytes: &[u8]) -> Result<()> {
        self.prepare()?;
        let dst = self.blob_path(d);
        if !dst.is_file() {
            crate::files::write_atomic(&dst, bytes)?;
        }
        Ok(())
    }

    pub fn put_manifest(&self, r: &ImageRef, m: &Manifest) -> Result<()> {
        self.put_blob_bytes(&m.digest, &m.bytes)?;
        let mut index = if self.dir.join("index.json").exists() {
            self.index()?
        } else {
            serde_json::json!({"schemaVersion": 2, "mediaType": crate::image::OCI_INDEX, "manifests": []})
        };
        let mut desc =
            serde_json::json!({"mediaType": m.media_type, "digest": m.digest.as_str(), "size": m.bytes.len()});
        let list = index["manifests"]
            .as_array_mut()
            .ok_or_else(|| anyhow!("oci:{}: index.json has no manifests list", self.dir.display()))?;
        match r.tag() {
            Some(t) => {
                desc["annotations"] = serde_json::json!({ REF_NAME: t });
                list.retain(|e| e["annotations"][REF_NAME] != t);
            }
            None => list.retain(|e| e["digest"] != m.digest.as_str() || e["annotations"][REF_NAME].is_string()),
        }
        list.push(desc);
        crate::files::write_atomic(&self.dir.join("index.json"), &serde_json::to_vec(&index)?)
    }
}
