//! Rebuilding an index (OCI index or Docker manifest list): which of its entries to rebuild,
//! each platform pushed by digest through [`super::single`], then the new index under the
//! destination's tag.
//!
//! Owns: platform selection, the new index document. Must not: rewrite layers itself.

use super::{single, Ctx, Prepared};
use crate::digest::Digest;
use crate::progress::Progress;
use crate::report::ImageReport;
use crate::source::walk::{Entry, EntryKind, Walk};
use crate::transport::Manifest;
use crate::Failure;
use anyhow::{anyhow, bail, Result};
use serde_json::{json, Value};

/// Which entries of the top index to rebuild: images of the chosen platforms (all when
/// `wanted` is empty); attestations are dropped (they describe the source's digests); a nested
/// index is refused (the result would need one too).
pub fn select_platforms(w: &Walk, wanted: &[String], progress: &Progress) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    for e in w.top_entries() {
        let name = e.platform();
        match e.kind {
            EntryKind::Attestation => {
                progress.line(&format!(
                    "note: dropping attestation manifest {} (it describes the source's digests)",
                    e.digest
                ));
                continue;
            }
            EntryKind::Index => {
                bail!("index entry {} ({name}) is itself an index; nested indexes are not supported", e.position)
            }
            EntryKind::Image => {}
        }
        let variant = e.descriptor["platform"]["variant"].as_str();
        let short = name.rsplit_once('/').map_or(name.as_str(), |(head, _)| head).to_string();
        if wanted.is_empty() || wanted.iter().any(|w| *w == name || (variant.is_some() && *w == short)) {
            out.push(e.clone());
        }
    }
    if out.is_empty() {
        bail!(Failure::Usage(format!("no platform of the index matches --platform {}", wanted.join(", "))));
    }
    Ok(out)
}

/// A pushed index: its manifest, each platform's report, the first platform's runtime contract.
pub struct Done {
    pub manifest: Manifest,
    pub images: Vec<ImageReport>,
    pub contract: Option<crate::contract::Contract>,
}

/// Push every chosen platform, then the index listing them (other entries dropped).
pub async fn execute(
    ctx: &Ctx<'_>,
    index: &Value,
    top: &Manifest,
    chosen: &[Entry],
    images: Vec<Prepared>,
) -> Result<Done> {
    let mut per = Vec::new();
    let mut contract = None;
    let mut new_entries = Vec::new();
    for (p, e) in images.into_iter().zip(chosen) {
        let done = single::execute(ctx, p, None).await?;
        contract.get_or_insert(done.contract);
        let mut d = e.descriptor.clone();
        d["digest"] = json!(done.manifest.digest.as_str());
        d["size"] = json!(done.manifest.bytes.len());
        d["mediaType"] = json!(done.manifest.media_type);
        new_entries.push(d);
        per.push(done.report);
    }
    let mut index = index.clone();
    index["manifests"] = json!(new_entries);
    // A Docker manifest list becomes an OCI index where only OCI is held (see single::execute).
    let media_type = match ctx.dst.holds_oci_only() && top.media_type == crate::image::DOCKER_LIST {
        true => {
            index["mediaType"] = json!(crate::image::OCI_INDEX);
            crate::image::OCI_INDEX.to_string()
        }
        false => top.media_type.clone(),
    };
    let bytes = serde_json::to_vec(&index)?;
    let m = Manifest { digest: Digest::of(&bytes), bytes, media_type };
    if per.is_empty() {
        return Err(anyhow!("no image to rebuild"));
    }
    ctx.dst.put_manifest(ctx.dst_ref, &m).await?;
    Ok(Done { manifest: m, images: per, contract })
}
