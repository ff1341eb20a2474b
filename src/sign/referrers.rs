//! OCI 1.1 referrers of a manifest: listing them (the registry's referrers API, and the
//! referrers tag `sha256-<hex>`) and registering a new one where the registry does not index it
//! itself (distribution 2.8, OCI layouts): a read-modify-write of the tag's index, stored
//! through the [`push`] protocol.
//!
//! Owns: where referrers are found and how the tag is updated. Must not: build manifests or
//! bundles ([`super::bundle`] does), or refuse anything but a tag that is not an index.
//!
//! [`push`]: crate::transport::push

use super::bundle;
use super::store::beside;
use crate::digest::Digest;
use crate::image;
use crate::progress::Progress;
use crate::reference::ImageRef;
use crate::transport::push::Push;
use crate::transport::{Endpoint, Manifest};
use anyhow::{anyhow, Result};
use serde_json::Value;

/// The referrers tag of `subject` beside `r`.
pub fn tag_ref(r: &ImageRef, subject: &Digest) -> ImageRef {
    beside(r, bundle::fallback_tag(subject.as_str()))
}

/// Every referrer of `subject` (descriptors, each digest once): what the registry's API
/// reports, then what the referrers tag lists. A referrers tag holding something other than an
/// index is an error naming it.
pub async fn list(ep: &Endpoint, r: &ImageRef, subject: &Digest) -> Result<Vec<Value>> {
    // The tag first: one that is not an index is named as such (before the client's reading
    // of the tag schema trips over it).
    let tagged = tag_index(ep, r, subject).await?.1;
    let mut out: Vec<Value> = ep.referrers_api(subject).await?.unwrap_or_default();
    out.extend(tagged);
    let mut seen = std::collections::HashSet::new();
    out.retain(|d| d["digest"].as_str().is_some_and(|x| seen.insert(x.to_string())));
    Ok(out)
}

/// The referrers tag's manifest (None when absent) and the descriptors it lists.
async fn tag_index(ep: &Endpoint, r: &ImageRef, subject: &Digest) -> Result<(Option<Manifest>, Vec<Value>)> {
    let target = tag_ref(r, subject);
    let Some(m) = ep.manifest_opt(&target).await.map_err(|e| anyhow!("reading the referrers of {subject}: {e:#}"))?
    else {
        return Ok((None, Vec::new()));
    };
    let index = bundle::parse_referrers_index(&m.bytes)
        .map_err(|e| anyhow!("{target}: the referrers tag of {subject} is not usable: {e}"))?;
    let list = index["manifests"].as_array().cloned().unwrap_or_default();
    Ok((Some(m), list))
}

/// Make `referrer` (a manifest with `subject`, already stored by digest) findable as a
/// referrer of `subject`: nothing to do when the registry's API (or the tag) already lists it;
/// else the referrers tag gets it appended — refused, never overwritten, when the tag holds
/// something that is not an index. Returns the tag when it was written.
pub async fn register(
    ep: &Endpoint,
    r: &ImageRef,
    subject: &Digest,
    referrer: &Manifest,
    progress: &Progress,
) -> Result<Option<String>> {
    let listed = |l: &[Value]| l.iter().any(|d| d["digest"] == referrer.digest.as_str());
    let target = tag_ref(r, subject);
    let existing = ep.manifest_opt(&target).await.map_err(|e| anyhow!("reading the referrers of {subject}: {e:#}"))?;
    let is_index = existing.as_ref().is_none_or(|m| bundle::parse_referrers_index(&m.bytes).is_ok());
    if is_index && ep.referrers_api(subject).await?.is_some_and(|l| listed(&l)) {
        return Ok(None);
    }
    let descriptor = bundle::referrer_descriptor(&referrer.bytes).map_err(|e| anyhow!("{e}"))?;
    let Some(bytes) = bundle::add_referrer(existing.as_ref().map(|m| m.bytes.as_slice()), &descriptor)
        .map_err(|e| anyhow!("{target}: refusing to overwrite the referrers tag of {subject}: {e}"))?
    else {
        return Ok(None);
    };
    let index = Manifest { digest: Digest::of(&bytes), bytes, media_type: image::OCI_INDEX.to_string() };
    Push { dst: ep, mount_from: None, locations: None, jobs: 1, progress }
        .push(&[], &target, &index, "referrers index")
        .await?;
    let tag = bundle::fallback_tag(subject.as_str());
    progress.line(&format!("registered referrer {} of {subject} in the referrers tag {tag}", referrer.digest.short()));
    Ok(Some(tag))
}
