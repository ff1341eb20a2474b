//! The one walk over what a reference names: a single image manifest, or an index (OCI index or
//! Docker manifest list) with its entries, nested indexes followed up to [`MAX_INDEX_DEPTH`].
//!
//! One policy for every command: each entry is classified ([`EntryKind`]) and listed as the
//! index lists it (a digest listed twice, say as an image and as an attestation, is two
//! entries; a nested index is followed once), children of a nested index before the nested
//! index itself; an entry pointing back at an index above it is refused. What a command does with each kind is
//! the command's: `rebuild` rewrites the images of the top index (it cannot write nested
//! indexes, so it refuses them) and drops attestations; `check` audits every image; `sign`
//! signs every entry.
//!
//! Owns: fetching and parsing index manifests, classifying entries. Must not: fetch image
//! manifests or layers (callers do, for the entries they want).

use crate::digest::Digest;
use crate::image;
use crate::reference::ImageRef;
use crate::transport::{Endpoint, Manifest};
use anyhow::{anyhow, bail, Result};
use serde_json::Value;

/// How deep nested indexes are followed.
pub const MAX_INDEX_DEPTH: usize = 4;

/// What an index entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// An image manifest for a platform.
    Image,
    /// An attestation manifest (BuildKit provenance/SBOM): describes the source's digests.
    Attestation,
    /// An index inside the index.
    Index,
}

/// One entry of an index, found by [`walk`].
#[derive(Clone, Debug)]
pub struct Entry {
    pub digest: Digest,
    pub kind: EntryKind,
    /// The descriptor as the index holds it (platform, annotations and fields harden does not model).
    pub descriptor: Value,
    /// Its position in the index that lists it.
    pub position: usize,
    /// 0 for an entry of the top index, 1 inside a nested index, …
    pub depth: usize,
}

impl Entry {
    /// The manifest this entry names (`r` with its digest), whose size must be the one the
    /// descriptor states, as a layer's and a config's must.
    pub async fn fetch(&self, ep: &Endpoint, r: &ImageRef) -> Result<Manifest> {
        let m = ep.manifest(&r.with_digest(&self.digest)).await?;
        check_size(r, &self.descriptor, &m)?;
        Ok(m)
    }

    /// `os/arch[/variant]` of the descriptor (`unknown` where it says nothing).
    pub fn platform(&self) -> String {
        platform_name(&self.descriptor)
    }
}

/// `os/arch[/variant]` of an index descriptor.
pub fn platform_name(descriptor: &Value) -> String {
    let p = &descriptor["platform"];
    let os = p["os"].as_str().unwrap_or("unknown");
    let arch = p["architecture"].as_str().unwrap_or("unknown");
    match p["variant"].as_str() {
        Some(v) => format!("{os}/{arch}/{v}"),
        None => format!("{os}/{arch}"),
    }
}

/// What a reference names: its manifest, and for an index the index document and every entry.
pub struct Walk {
    pub top: Manifest,
    /// The top index's JSON (None for an image manifest).
    pub index: Option<Value>,
    /// Every entry, nested ones included; empty for an image manifest.
    pub entries: Vec<Entry>,
}

impl Walk {
    /// Every digest the walk found, each once, in walk order.
    pub fn digests(&self) -> Vec<&Digest> {
        let mut out: Vec<&Digest> = Vec::new();
        for e in &self.entries {
            if !out.contains(&&e.digest) {
                out.push(&e.digest);
            }
        }
        out
    }

    /// Entries of the top index (depth 0), in index order.
    pub fn top_entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| e.depth == 0)
    }
}

/// Resolve `r` and, for an index, list its entries.
pub async fn walk(ep: &Endpoint, r: &ImageRef) -> Result<Walk> {
    let top = ep.manifest(r).await?;
    if !image::is_index(&top.media_type) {
        return Ok(Walk { top, index: None, entries: Vec::new() });
    }
    let index = parse_index(r, &top)?;
    let mut w = Walker { ep, r, above: vec![top.digest.clone()], out: Vec::new() };
    w.collect(&top, &index).await?;
    Ok(Walk { top, index: Some(index), entries: w.out })
}

fn parse_index(r: &ImageRef, m: &Manifest) -> Result<Value> {
    let index: Value = serde_json::from_slice(&m.bytes)
        .map_err(|e| anyhow!("{}: index is not valid JSON: {e}", r.by_digest(&m.digest)))?;
    if !index["manifests"].is_array() {
        bail!("{}: index has no manifests list", r.by_digest(&m.digest));
    }
    Ok(index)
}

/// A descriptor's stated size against the manifest fetched for it.
fn check_size(r: &ImageRef, descriptor: &Value, m: &Manifest) -> Result<()> {
    match descriptor["size"].as_u64() {
        Some(size) if size != m.bytes.len() as u64 => {
            bail!("{}: manifest is {} bytes, but the index says {size}", r.by_digest(&m.digest), m.bytes.len())
        }
        _ => Ok(()),
    }
}

/// An index walk in progress: the indexes above the one being listed (the top first; a loop
/// back to one of them is refused) and the entries listed so far.
struct Walker<'a> {
    ep: &'a Endpoint,
    r: &'a ImageRef,
    above: Vec<Digest>,
    out: Vec<Entry>,
}

impl Walker<'_> {
    /// Depth first; a nested index's entries are listed (post-order) before the nested index.
    async fn collect(&mut self, m: &Manifest, index: &Value) -> Result<()> {
        let (ep, r) = (self.ep, self.r);
        let depth = self.above.len() - 1;
        if depth >= MAX_INDEX_DEPTH {
            bail!("{}: indexes nested more than {MAX_INDEX_DEPTH} deep", r.by_digest(&m.digest));
        }
        let list = index["manifests"].as_array().map(Vec::as_slice).unwrap_or_default();
        for (position, desc) in list.iter().enumerate() {
            let digest = Digest::parse(desc["digest"].as_str().unwrap_or(""))
                .map_err(|err| anyhow!("{}: index entry {position}: {err}", r.by_digest(&m.digest)))?;
            if self.above.contains(&digest) {
                bail!("{}: index entry {position} points at an index that contains it", r.by_digest(&m.digest));
            }
            let kind = if desc["mediaType"].as_str().is_some_and(image::is_index) {
                EntryKind::Index
            } else if image::is_attestation(desc) {
                EntryKind::Attestation
            } else {
                EntryKind::Image
            };
            let descriptor = desc.clone();
            let followed = self.out.iter().any(|e| e.kind == EntryKind::Index && e.digest == digest);
            if kind == EntryKind::Index && !followed {
                let child = ep.manifest(&r.with_digest(&digest)).await?;
                check_size(r, desc, &child)?;
                let child_index = parse_index(r, &child)?;
                self.above.push(digest.clone());
                Box::pin(self.collect(&child, &child_index)).await?;
                self.above.pop();
            }
            self.out.push(Entry { digest, kind, descriptor, position, depth });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::NetOptions;
    use serde_json::json;

    fn block<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
    }

    /// Store `doc` as a manifest of `media_type` in the layout (tagged `tag` when given).
    fn put(ep: &Endpoint, dir: &std::path::Path, tag: Option<&str>, doc: Value, media_type: &str) -> Digest {
        let bytes = serde_json::to_vec(&doc).unwrap();
        let m = Manifest { digest: Digest::of(&bytes), bytes, media_type: media_type.into() };
        let r = ImageRef::Layout { dir: dir.into(), tag: tag.map(Into::into), digest: Some(m.digest.clone()) };
        block(ep.put_manifest(&r, &m)).unwrap();
        m.digest
    }

    fn desc(d: &Digest, media_type: &str, platform: Value) -> Value {
        json!({"mediaType": media_type, "digest": d.as_str(), "size": 1, "platform": platform})
    }

    /// The size of a blob of the layout.
    fn size_of(dir: &std::path::Path, d: &Digest) -> usize {
        std::fs::metadata(dir.join("blobs/sha256").join(d.hex())).unwrap().len() as usize
    }

    #[test]
    fn walks_nested_indexes_once_and_keeps_every_listing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("lay");
        let top_ref = ImageRef::Layout { dir: dir.clone(), tag: Some("t".into()), digest: None };
        let ep = Endpoint::open(&top_ref, &NetOptions::default()).unwrap();
        let image = Digest::of(b"an image manifest (never fetched by the walk)");
        let linux = json!({"os": "linux", "architecture": "amd64"});
        let unknown = json!({"os": "unknown", "architecture": "unknown"});
        let inner = put(
            &ep,
            &dir,
            None,
            json!({"schemaVersion": 2, "manifests": [desc(&image, image::OCI_MANIFEST, linux.clone())]}),
            image::OCI_INDEX,
        );
        let mut nested = desc(&inner, image::OCI_INDEX, linux.clone());
        nested["size"] = json!(size_of(&dir, &inner));
        let top = json!({"schemaVersion": 2, "manifests": [
            desc(&image, image::OCI_MANIFEST, linux.clone()),
            desc(&image, image::OCI_MANIFEST, unknown),
            nested.clone(),
            nested.clone(),
        ]});
        put(&ep, &dir, Some("t"), top, image::OCI_INDEX);
        let w = block(walk(&ep, &top_ref)).unwrap();
        let kinds: Vec<(EntryKind, usize)> = w.entries.iter().map(|e| (e.kind, e.depth)).collect();
        assert_eq!(
            kinds,
            [
                (EntryKind::Image, 0),
                (EntryKind::Attestation, 0),
                (EntryKind::Image, 1),
                (EntryKind::Index, 0),
                (EntryKind::Index, 0),
            ],
            "the same digest listed as an image and as an attestation is two entries; the nested index is followed once"
        );
        assert_eq!(w.top_entries().count(), 4);
        assert_eq!(w.digests(), [&image, &inner]);
        assert_eq!(w.entries[1].platform(), "unknown/unknown");

        // A nested index whose size the descriptor misstates.
        nested["size"] = json!(size_of(&dir, &inner) + 1);
        put(&ep, &dir, Some("lies"), json!({"schemaVersion": 2, "manifests": [nested]}), image::OCI_INDEX);
        let lies = ImageRef::Layout { dir: dir.clone(), tag: Some("lies".into()), digest: None };
        let Err(e) = block(walk(&ep, &lies)) else { panic!("a wrong size was accepted") };
        assert!(e.to_string().contains("but the index says"), "{e}");

        // A malformed index: one line naming it.
        let not_json = Manifest { digest: Digest::of(b"{"), bytes: b"{".to_vec(), media_type: image::OCI_INDEX.into() };
        let bad = ImageRef::Layout { dir: dir.clone(), tag: Some("bad".into()), digest: None };
        block(ep.put_manifest(&bad, &not_json)).unwrap();
        let Err(e) = block(walk(&ep, &bad)) else { panic!("a malformed index was walked") };
        assert!(e.to_string().contains("not valid JSON"), "{e}");
    }
}
