//! Everything that vouches for one manifest digest, checked against a set of public keys: the
//! legacy `.sig` layers, cosign v3 bundles among its referrers, the `.att` attestations. One
//! line per signature or attestation found, saying which key verified it or why none did.
//! `harden verify` and the rebuild's `--require-signature` gate both read this.
//!
//! Owns: finding and checking what describes a digest. Must not: decide whether that is
//! enough (the caller's policy), or push anything.

use super::store::{beside, sig_ref};
use super::{attest, bundle, dsse, referrers, simple, VerifyingKey};
use crate::digest::Digest;
use crate::reference::ImageRef;
use crate::transport::Endpoint;
use anyhow::Result;
use serde_json::Value;
use std::collections::HashMap;

/// Largest blob read back: a simple-signing payload, an envelope or a bundle.
const MAX_BLOB: u64 = super::publish::MAX_ENVELOPE;

/// What kind of thing a line is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A legacy `.sig` layer or a bundle of cosign's `sign` statement: a signature.
    Signature,
    /// A `.att` layer or a bundle of another statement.
    Attestation,
}

/// One signature or attestation found, and the verdict.
#[derive(Debug, Clone)]
pub struct Line {
    pub kind: Kind,
    /// Where it is: `sha256-<hex>.sig #0 sha256:…`, `bundle sha256:…`, `sha256-<hex>.att #1 sha256:…`.
    pub what: String,
    /// The predicate type (attestations and bundles).
    pub predicate_type: Option<String>,
    /// `Ok(i)`: verified with `keys[i]`; `Err(why)`: with none.
    pub result: Result<usize, String>,
    /// The verified statement's payload (attestations and bundles).
    pub statement: Option<Vec<u8>>,
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pt = self.predicate_type.as_deref().map(|p| format!(" ({p})")).unwrap_or_default();
        match &self.result {
            Ok(k) => write!(f, "{}{pt}: verified with key #{k}", self.what),
            Err(e) => write!(f, "{}{pt}: FAILED: {e}", self.what),
        }
    }
}

/// Everything found for one digest.
#[derive(Debug)]
pub struct Examined {
    pub digest: Digest,
    pub lines: Vec<Line>,
}

impl Examined {
    /// The first key that verifies a signature (either format).
    pub fn signed_by(&self) -> Option<usize> {
        self.lines.iter().filter(|l| l.kind == Kind::Signature).find_map(|l| l.result.as_ref().ok().copied())
    }

    /// A verified attestation (or bundle) of `predicate_type`: the line.
    pub fn attested(&self, predicate_type: &str) -> Option<&Line> {
        self.lines.iter().find(|l| l.result.is_ok() && l.predicate_type.as_deref() == Some(predicate_type))
    }
}

/// The first key whose verdict is Ok (its index), or the first key's reason.
fn pick<T>(per_key: impl Iterator<Item = Result<T, String>>) -> Result<(usize, T), String> {
    let mut first_err = None;
    let mut n = 0;
    for (i, r) in per_key.enumerate() {
        n += 1;
        match r {
            Ok(t) => return Ok((i, t)),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    let why = first_err.unwrap_or_else(|| "no key given".into());
    Err(if n > 1 { format!("with none of the {n} keys: {why}") } else { why })
}

/// Check everything beside `r` that describes `digest` against `keys`. A store that cannot be
/// read is an error; a document that is there but wrong is a failed line.
pub async fn examine(ep: &Endpoint, r: &ImageRef, digest: &Digest, keys: &[VerifyingKey]) -> Result<Examined> {
    let mut lines = Vec::new();
    let mut blobs: HashMap<String, Result<Vec<u8>, String>> = HashMap::new();

    // Legacy .sig.
    let sig_tag = simple::sig_tag(digest.as_str());
    if let Some(m) = ep.manifest_opt(&sig_ref(r, digest)).await? {
        match serde_json::from_slice::<Value>(&m.bytes) {
            Err(e) => lines.push(failed(Kind::Signature, &sig_tag, None, format!("not valid JSON ({e})"))),
            Ok(json) => {
                fetch_layers(ep, &json, &mut blobs).await;
                let per_key: Vec<Vec<simple::LayerVerdict>> = keys
                    .iter()
                    .map(|k| {
                        simple::verify_signature_manifest(
                            &json,
                            |d| blobs.get(d).cloned().unwrap_or_else(|| Err("not fetched".into())),
                            k,
                            digest.as_str(),
                        )
                    })
                    .collect();
                let n = per_key.first().map_or(0, Vec::len);
                if n == 0 {
                    lines.push(failed(Kind::Signature, &sig_tag, None, "holds no signature layers".into()));
                }
                for i in 0..n {
                    let layer = &per_key[0][i];
                    let result =
                        pick(per_key.iter().map(|vs| vs[i].result.as_ref().map(drop).map_err(ToString::to_string)))
                            .map(|(k, ())| k);
                    let digest = if layer.digest.is_empty() { "(no digest)" } else { &layer.digest };
                    lines.push(Line {
                        kind: Kind::Signature,
                        what: format!("{sig_tag} #{} {digest}", layer.index),
                        predicate_type: None,
                        result,
                        statement: None,
                    });
                }
            }
        }
    }

    // Bundles among the referrers (API or referrers tag).
    match referrers::list(ep, r, digest).await {
        Err(e) => lines.push(failed(Kind::Signature, "referrers", None, format!("{e:#}"))),
        Ok(list) => {
            for d in list.iter().filter(|d| d["artifactType"] == bundle::BUNDLE_MEDIA_TYPE) {
                let md = d["digest"].as_str().unwrap_or("(no digest)").to_string();
                let what = format!("bundle {md}");
                let claimed = d["annotations"][bundle::PREDICATE_ANNOTATION].as_str().map(str::to_string);
                let kind_of = |pt: Option<&str>| {
                    if pt.is_none_or(|p| p == dsse::COSIGN_SIGN_PREDICATE) {
                        Kind::Signature
                    } else {
                        Kind::Attestation
                    }
                };
                let manifest = match Digest::parse(&md) {
                    Ok(x) => ep.manifest(&r.without_tag().with_digest(&x)).await.map_err(|e| format!("{e:#}")),
                    Err(e) => Err(e),
                };
                let mv = manifest.and_then(|m| {
                    serde_json::from_slice::<Value>(&m.bytes).map_err(|e| format!("the referrer is not JSON ({e})"))
                });
                let mv = match mv {
                    Ok(v) => v,
                    Err(e) => {
                        lines.push(failed(kind_of(claimed.as_deref()), &what, claimed, e));
                        continue;
                    }
                };
                fetch_layers(ep, &mv, &mut blobs).await;
                let fetch = |d: &str| blobs.get(d).cloned().unwrap_or_else(|| Err("not fetched".into()));
                let result = pick(keys.iter().map(|k| bundle::verify_referrer(&mv, fetch, k, digest.as_str())));
                let pt = match &result {
                    Ok((_, st)) => Some(st.predicate_type.clone()),
                    Err(_) => claimed,
                };
                lines.push(Line {
                    kind: kind_of(pt.as_deref()),
                    what,
                    predicate_type: pt,
                    statement: result.as_ref().ok().map(|(_, st)| st.payload.clone()),
                    result: result.map(|(k, _)| k),
                });
            }
        }
    }

    // Attestations.
    let att_tag = attest::att_tag(digest.as_str());
    if let Some(m) = ep.manifest_opt(&beside(r, att_tag.clone())).await? {
        match serde_json::from_slice::<Value>(&m.bytes) {
            Err(e) => lines.push(failed(Kind::Attestation, &att_tag, None, format!("not valid JSON ({e})"))),
            Ok(json) => {
                fetch_layers(ep, &json, &mut blobs).await;
                let fetch = |d: &str| blobs.get(d).cloned().unwrap_or_else(|| Err("not fetched".into()));
                let per_key: Vec<Vec<attest::AttVerdict>> =
                    keys.iter().map(|k| attest::verify_manifest(&json, fetch, k, digest.as_str())).collect();
                for i in 0..per_key.first().map_or(0, Vec::len) {
                    let v = &per_key[0][i];
                    let result = pick(per_key.iter().map(|vs| vs[i].result.clone()));
                    lines.push(Line {
                        kind: Kind::Attestation,
                        what: format!(
                            "{att_tag} #{} {}",
                            v.index,
                            if v.digest.is_empty() { "(no digest)" } else { &v.digest }
                        ),
                        predicate_type: (!v.predicate_type.is_empty()).then(|| v.predicate_type.clone()),
                        statement: result.as_ref().ok().map(|(_, st)| st.payload.clone()),
                        result: result.map(|(k, _)| k),
                    });
                }
            }
        }
    }
    Ok(Examined { digest: digest.clone(), lines })
}

fn failed(kind: Kind, what: &str, predicate_type: Option<String>, why: String) -> Line {
    Line { kind, what: what.to_string(), predicate_type, result: Err(why), statement: None }
}

/// Fetch (verified) every layer blob of `manifest` not fetched yet.
async fn fetch_layers(ep: &Endpoint, manifest: &Value, blobs: &mut HashMap<String, Result<Vec<u8>, String>>) {
    for l in manifest["layers"].as_array().into_iter().flatten() {
        let Some(d) = l["digest"].as_str() else {
            continue;
        };
        if blobs.contains_key(d) {
            continue;
        }
        let got = match Digest::parse(d) {
            Ok(dd) => ep.blob_bytes(&dd, MAX_BLOB).await.map_err(|e| format!("{e:#}")),
            Err(e) => Err(e),
        };
        blobs.insert(d.to_string(), got);
    }
}
