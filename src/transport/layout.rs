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
//! cosign's view of a layout (`cosign save`, `cosign verify --local-image`; its
//! pkg/oci/layout) is kept beside harden's tags: cosign finds the signed image, its `.sig` and
//! its `.att` manifests by the `kind` annotation of their `index.json` entries
//! (`dev.cosignproject.cosign/image` or `…/imageIndex`, `…/sigs`, `…/atts`; the first of each),
//! and the bundles of that image by the `subject` of the manifests among the blobs. Storing a
//! `.sig` or `.att` tag (harden's `sha256-<hex>.sig`/`.att`), or the referrers tag
//! `sha256-<hex>`, marks that entry and the entry of the image it names, each kind on one entry
//! only (the last stored: an index is signed after its platforms). Reading, a layout with one
//! entry of kind image (what `cosign save` writes, with no `ref.name`) is read without a tag,
//! and its `sigs`/`atts` entries answer harden's `.sig`/`.att` tags of that image.
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
/// cosign's annotation of its layout entries, and its values (pkg/oci/layout/index.go).
const KIND: &str = "kind";
const KIND_IMAGE: &str = "dev.cosignproject.cosign/image";
const KIND_INDEX: &str = "dev.cosignproject.cosign/imageIndex";
const KIND_SIGS: &str = "dev.cosignproject.cosign/sigs";
const KIND_ATTS: &str = "dev.cosignproject.cosign/atts";

/// What a tag of harden's names in cosign's terms: (the subject's `sha256:<hex>`, the kind of
/// the tagged entry — None for the referrers tag, which cosign does not mark).
fn cosign_tag(tag: &str) -> Option<(String, Option<&'static str>)> {
    let (hex, kind) = match tag.strip_prefix("sha256-")? {
        t if t.ends_with(".sig") => (&t[..t.len() - 4], Some(KIND_SIGS)),
        t if t.ends_with(".att") => (&t[..t.len() - 4], Some(KIND_ATTS)),
        t => (t, None),
    };
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| (format!("sha256:{hex}"), kind))
}

/// Set `kind` on `entry`, taking it (or, for the image kinds, either of them) off every other.
fn mark(list: &mut [serde_json::Value], entry: usize, kind: &str) {
    let image = |k: &str| k == KIND_IMAGE || k == KIND_INDEX;
    for (i, e) in list.iter_mut().enumerate() {
        let k = e["annotations"][KIND].as_str().unwrap_or_default().to_string();
        if i == entry {
            if !e["annotations"].is_object() {
                e["annotations"] = serde_json::json!({});
            }
            e["annotations"][KIND] = serde_json::json!(kind);
        } else if k == kind || (image(&k) && image(kind)) {
            if let Some(a) = e["annotations"].as_object_mut() {
                a.shift_remove(KIND);
                if a.is_empty() {
                    if let Some(o) = e.as_object_mut() {
                        o.shift_remove("annotations");
                    }
                }
            }
        }
    }
}

/// The entry `cosign save` marks as its image (or index), when exactly one is.
fn cosign_image(entries: &[serde_json::Value]) -> Option<&serde_json::Value> {
    let mut it = entries.iter().filter(|e| matches!(e["annotations"][KIND].as_str(), Some(KIND_IMAGE | KIND_INDEX)));
    let first = it.next()?;
    it.next().is_none().then_some(first)
}

/// The entry answering `tag`: the one named so, else — for harden's `.sig`/`.att` tag of the
/// image a cosign layout marks — its `sigs`/`atts` entry.
fn tagged<'a>(entries: &'a [serde_json::Value], tag: &str) -> Option<&'a serde_json::Value> {
    entries.iter().find(|e| e["annotations"][REF_NAME] == tag).or_else(|| {
        let (subject, kind) = cosign_tag(tag)?;
        let image = cosign_image(entries)?;
        (image["digest"] == subject.as_str()).then_some(())?;
        entries.iter().find(|e| e["annotations"][KIND].as_str() == kind && kind.is_some())
    })
}

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
            (None, Some(t)) => tagged(&entries, t),
            (None, None) if entries.len() == 1 => entries.first(),
            (None, None) if cosign_image(&entries).is_some() => cosign_image(&entries),
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
            (None, Some(t)) => tagged(&entries, t).is_some(),
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
        // cosign's marks: the tagged signatures or attestations, and the image they are of.
        if let Some((subject, kind)) = r.tag().and_then(cosign_tag) {
            let last = list.len() - 1;
            if let Some(k) = kind {
                mark(list, last, k);
            }
            if let Some(i) = list.iter().position(|e| e["digest"] == subject.as_str()) {
                let k = match list[i]["mediaType"].as_str() {
                    Some(mt) if crate::image::is_index(mt) => KIND_INDEX,
                    _ => KIND_IMAGE,
                };
                mark(list, i, k);
            }
        }
        crate::files::write_atomic(&self.dir.join("index.json"), &serde_json::to_vec(&index)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn stored(l: &Layout, tag: Option<&str>, doc: &Value) -> Manifest {
        let bytes = serde_json::to_vec(doc).unwrap();
        let m =
            Manifest { digest: Digest::of(&bytes), media_type: doc["mediaType"].as_str().unwrap().to_string(), bytes };
        let r = ImageRef::Layout { dir: l.dir.clone(), tag: tag.map(str::to_string), digest: None };
        l.put_manifest(&r, &m).unwrap();
        m
    }

    fn kinds(l: &Layout) -> Vec<(String, String)> {
        let index = l.index().unwrap();
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| Some((e["digest"].as_str()?.to_string(), e["annotations"][KIND].as_str()?.to_string())))
            .collect()
    }

    /// Signing into a layout marks the entries as `cosign save` does, one of each kind, the last
    /// stored winning; harden's tags stay.
    #[test]
    fn signatures_in_a_layout_carry_cosigns_kinds() {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::new(dir.path().to_path_buf());
        let img = stored(
            &l,
            Some("hard"),
            &json!({"schemaVersion": 2, "mediaType": crate::image::OCI_MANIFEST, "layers": []}),
        );
        let other =
            stored(&l, None, &json!({"schemaVersion": 2, "mediaType": crate::image::OCI_MANIFEST, "layers": [1]}));
        let sig_of = |d: &Digest| format!("sha256-{}.sig", d.hex());
        let sig = stored(&l, Some(&sig_of(&other.digest)), &json!({"mediaType": crate::image::OCI_MANIFEST, "n": 1}));
        assert_eq!(
            kinds(&l),
            [(other.digest.to_string(), KIND_IMAGE.into()), (sig.digest.to_string(), KIND_SIGS.into())]
        );
        let sig2 = stored(&l, Some(&sig_of(&img.digest)), &json!({"mediaType": crate::image::OCI_MANIFEST, "n": 2}));
        let att = stored(
            &l,
            Some(&format!("sha256-{}.att", img.digest.hex())),
            &json!({"mediaType": crate::image::OCI_MANIFEST, "n": 3}),
        );
        let mut got = kinds(&l);
        got.sort();
        let mut want = vec![
            (img.digest.to_string(), KIND_IMAGE.to_string()),
            (sig2.digest.to_string(), KIND_SIGS.to_string()),
            (att.digest.to_string(), KIND_ATTS.to_string()),
        ];
        want.sort();
        assert_eq!(got, want);
        // harden's tag still names the image, and the image is the layout's default now.
        let r = |tag: Option<&str>| ImageRef::Layout { dir: l.dir.clone(), tag: tag.map(str::to_string), digest: None };
        assert_eq!(l.manifest(&r(Some("hard"))).unwrap().digest, img.digest);
        assert_eq!(l.manifest(&r(None)).unwrap().digest, img.digest);
        assert_eq!(l.manifest(&r(Some(&sig_of(&img.digest)))).unwrap().digest, sig2.digest);
        // The referrers tag marks the image but is not marked itself.
        stored(
            &l,
            Some(&format!("sha256-{}", other.digest.hex())),
            &json!({"mediaType": crate::image::OCI_INDEX, "manifests": []}),
        );
        assert!(kinds(&l).contains(&(other.digest.to_string(), KIND_IMAGE.into())));
        assert_eq!(cosign_tag("sha256-abc.sig"), None);
    }

    /// What `cosign save` writes (pkg/oci/layout/write.go: entries with `kind` only, no
    /// `ref.name`) reads: the image without a tag, its `.sig` and `.att` by harden's tags.
    #[test]
    fn a_cosign_save_layout_reads() {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::new(dir.path().to_path_buf());
        let mut entries = Vec::new();
        let mut put = |doc: Value, kind: &str| {
            let bytes = serde_json::to_vec(&doc).unwrap();
            let d = Digest::of(&bytes);
            l.put_blob_bytes(&d, &bytes).unwrap();
            entries.push(json!({"mediaType": crate::image::OCI_MANIFEST, "size": bytes.len(), "digest": d.as_str(), "annotations": {KIND: kind}}));
            d
        };
        let img = put(json!({"schemaVersion": 2, "layers": []}), KIND_IMAGE);
        let sig = put(json!({"schemaVersion": 2, "layers": [], "s": 1}), KIND_SIGS);
        let att = put(json!({"schemaVersion": 2, "layers": [], "a": 1}), KIND_ATTS);
        std::fs::write(
            dir.path().join("index.json"),
            serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": entries})).unwrap(),
        )
        .unwrap();
        let r = |tag: Option<String>| ImageRef::Layout { dir: l.dir.clone(), tag, digest: None };
        assert_eq!(l.manifest(&r(None)).unwrap().digest, img);
        assert_eq!(l.manifest(&r(Some(format!("sha256-{}.sig", img.hex())))).unwrap().digest, sig);
        assert_eq!(l.manifest(&r(Some(format!("sha256-{}.att", img.hex())))).unwrap().digest, att);
        // Another image's .sig is not that one.
        assert!(l.manifest_opt(&r(Some(format!("sha256-{}.sig", sig.hex())))).unwrap().is_none());
    }
}
