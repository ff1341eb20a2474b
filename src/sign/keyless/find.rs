//! Checking the keyless signatures of a digest that [`crate::sign::discover`] finds: the layers
//! of the legacy `sha256-<hex>.sig` and `.att` manifests that carry a certificate, and the
//! sigstore bundles among its referrers (API or referrers tag). One line per signature found.
//!
//! Owns: checking keylessly what was found. Must not: decide where to look (discover's), or
//! whether a verified signature is enough (the caller's policy).

use super::{
    verify_bundle, verify_legacy, verify_legacy_attestation, Policy, Refusal, TrustedRoot, Verified, CERT_ANNOTATION,
};
use crate::digest::Digest;
use crate::reference::ImageRef;
use crate::sign::check::fetch_layers;
use crate::sign::discover::{discover, referrer_manifest, Stored, Unreadable};
use crate::transport::Endpoint;
use anyhow::Result;
use serde_json::Value;
use std::collections::HashMap;

/// One keyless signature found, and the verdict.
#[derive(Debug, Clone)]
pub struct Line {
    /// `sha256-<hex>.sig #0 sha256:…` or `bundle sha256:…`.
    pub what: String,
    pub result: Result<Verified, Refusal>,
    /// From the `.att` tag: an attestation whatever its verdict, never a signature.
    pub attestation: bool,
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.result {
            Ok(v) => write!(f, "{}: verified keyless: {}", self.what, v.describe()),
            Err(e) => write!(f, "{}: FAILED: {e}", self.what),
        }
    }
}

/// Every keyless signature of `digest` beside `r` (what [`discover`] finds: the `.sig` layers with
/// a certificate, the bundles among the referrers), each checked against `root` and `policy`.
/// A `.sig` tag that cannot be read is an error (as for keys); unreadable referrers and `.att`
/// tags, and a signature that is there but wrong, are lines.
pub async fn examine(
    ep: &Endpoint,
    r: &ImageRef,
    digest: &Digest,
    root: &TrustedRoot,
    policy: &Policy,
) -> Result<Vec<Line>> {
    let mut found = discover(ep, r, digest).await;
    if let Some(i) = found.unreadable.iter().position(|u| matches!(u, Unreadable::Sig { .. })) {
        return Err(found.unreadable.swap_remove(i).into_error());
    }
    let mut lines = Vec::new();
    let mut blobs: HashMap<String, Result<Vec<u8>, String>> = HashMap::new();
    let malformed = |what: String, why: String| Line { what, result: Err(Refusal::Malformed(why)), attestation: false };
    for (stored, attestation) in [(&found.sig, false), (&found.att, true)] {
        let Some(Stored { tag, manifest: m }) = stored else { continue };
        match serde_json::from_slice::<Value>(&m.bytes) {
            Err(e) => lines.push(Line { attestation, ..malformed(tag.clone(), format!("not valid JSON ({e})")) }),
            Ok(json) => {
                fetch_layers(ep, &json, &mut blobs).await;
                for (i, l) in json["layers"].as_array().into_iter().flatten().enumerate() {
                    let Some(ann) = l["annotations"].as_object().filter(|a| a.contains_key(CERT_ANNOTATION)) else {
                        continue; // signed with a key: the keyed check's
                    };
                    let d = l["digest"].as_str().unwrap_or("(no digest)");
                    let what = format!("{tag} #{i} {d}");
                    let result = match blobs.get(d) {
                        Some(Ok(b)) if attestation => verify_legacy_attestation(b, ann, root, policy, digest.as_str()),
                        Some(Ok(payload)) => verify_legacy(payload, ann, root, policy, digest.as_str()),
                        Some(Err(e)) => Err(Refusal::Malformed(format!("payload: {e}"))),
                        None => Err(Refusal::Malformed("payload not fetched".into())),
                    };
                    lines.push(Line { what, result, attestation });
                }
            }
        }
    }
    if let Some(e) = found.att_unreadable() {
        lines.push(Line { attestation: true, ..malformed("attestations".into(), format!("{e:#}")) });
    }
    if let Some(e) = found.referrers_unreadable() {
        lines.push(malformed("referrers".into(), format!("{e:#}")));
    }
    for d in found.bundles() {
        let md = d["digest"].as_str().unwrap_or("(no digest)");
        let what = format!("bundle {md}");
        let mv = match referrer_manifest(ep, r, md).await {
            Ok(v) => v,
            Err(e) => {
                lines.push(malformed(what, e.to_string()));
                continue;
            }
        };
        fetch_layers(ep, &mv, &mut blobs).await;
        let layer = mv["layers"].as_array().and_then(|l| l.first()).and_then(|l| l["digest"].as_str());
        let result = match layer.and_then(|d| blobs.get(d)) {
            Some(Ok(b)) => {
                // A bundle signed with a key is the keyed check's, not a failure here.
                if serde_json::from_slice::<Value>(b).is_ok_and(|v| v["verificationMaterial"]["publicKey"].is_object())
                {
                    continue;
                }
                verify_bundle(b, root, policy, digest.as_str())
            }
            Some(Err(e)) => Err(Refusal::Malformed(format!("bundle: {e}"))),
            None => Err(Refusal::Malformed("the referrer has no bundle layer".into())),
        };
        lines.push(Line { what, result, attestation: false });
    }
    Ok(lines)
}

/// The first line that verified a signature (not an attestation: a bundle's statement is
/// cosign's `sign` predicate), or why none did (every line, joined) — `None` when none was found.
pub fn signed(lines: &[Line]) -> Result<&Line, Option<String>> {
    let is_signature = |l: &Line| match &l.result {
        _ if l.attestation => false,
        Ok(v) => v.predicate_type.as_deref().is_none_or(|p| p == crate::sign::dsse::COSIGN_SIGN_PREDICATE),
        Err(_) => true,
    };
    let sigs: Vec<&Line> = lines.iter().filter(|l| is_signature(l)).collect();
    if let Some(l) = sigs.iter().find(|l| l.result.is_ok()) {
        return Ok(l);
    }
    if sigs.is_empty() {
        return Err(None);
    }
    Err(Some(sigs.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")))
}

/// A verified bundle whose statement is of `predicate_type` (an attestation), if any.
pub fn attested<'a>(lines: &'a [Line], predicate_type: &str) -> Option<&'a Line> {
    lines.iter().find(|l| l.result.as_ref().is_ok_and(|v| v.predicate_type.as_deref() == Some(predicate_type)))
}
