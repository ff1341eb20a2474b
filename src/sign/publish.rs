//! Storing attestations and cosign v3 bundles beside an image, through the [`push`] protocol
//! (blobs first and confirmed, the manifest last):
//! - an attestation is a layer appended to the manifest at `sha256-<hex>.att` (read, append,
//!   put the tag again; earlier attestations are kept);
//! - a bundle is a referrer manifest pushed by digest, then registered ([`super::referrers`]).
//!
//! Both are idempotent per key: the same statement already signed by this key is not added
//! again (ECDSA signatures are randomised, so "the same" is the same statement verifying with
//! the key, not the same bytes).
//!
//! Owns: the order of those writes. Must not: build the formats ([`super::attest`],
//! [`super::bundle`], [`super::dsse`] do) or read key files.
//!
//! [`push`]: crate::transport::push

use super::store::{self, beside};
use super::{attest, bundle, dsse, referrers, Signer, MAX_ENVELOPE};
use crate::digest::Digest;
use crate::reference::ImageRef;
use crate::transport::push::{Blob, Push};
use crate::transport::{Endpoint, Manifest};
use anyhow::{anyhow, Context, Result};
use serde_json::Value;

/// One attestation stored (or found already there).
#[derive(Debug, Clone)]
pub struct Attested {
    pub image_digest: Digest,
    pub predicate_type: String,
    /// `sha256-<hex>.att`.
    pub tag: String,
    /// The `.att` manifest as it now stands.
    pub manifest_digest: Digest,
    /// The envelope blob (the layer).
    pub envelope_digest: Digest,
    /// sha256 of the statement (the envelope's payload): the same run gives the same.
    pub statement_digest: Digest,
    /// False when this statement was already attested with this key.
    pub added: bool,
}

/// An in-toto statement about `digest` (a manifest), of `predicate_type`, as bytes to sign.
#[derive(Clone, Copy, Debug)]
pub struct Claim<'a> {
    pub digest: &'a Digest,
    pub predicate_type: &'a str,
    pub statement: &'a [u8],
}

/// Add an attestation of the claim signed with `key` to the `.att` manifest of its digest
/// beside `r`.
pub async fn attest_digest(ep: &Endpoint, r: &ImageRef, claim: Claim<'_>, signer: Signer<'_>) -> Result<Attested> {
    let Signer { key, progress, .. } = signer;
    let Claim { digest, predicate_type, statement } = claim;
    let tag = attest::att_tag(digest.as_str());
    let target = beside(r, tag.clone());
    let pinned = r.by_digest(digest);
    let statement_digest = Digest::of(statement);
    let (existing, existing_json) = store::read_existing(ep, &target, "attestation").await?;
    if let (Some(m), Some(json)) = (&existing, &existing_json) {
        for l in json["layers"].as_array().into_iter().flatten() {
            if l["annotations"][attest::PREDICATE_TYPE_ANNOTATION] != predicate_type {
                continue;
            }
            let Some(d) = l["digest"].as_str().and_then(|d| Digest::parse(d).ok()) else {
                continue;
            };
            let Ok(blob) = ep.blob_bytes(&d, MAX_ENVELOPE).await else {
                continue;
            };
            let same = serde_json::from_slice::<Value>(&blob)
                .ok()
                .and_then(|env| dsse::verify_envelope(&env, &key.public_key(), digest.as_str()).ok())
                .is_some_and(|st| st.payload == statement);
            if same {
                progress.line(&format!("{pinned} already has this {predicate_type} attestation with this key ({tag})"));
                return Ok(Attested {
                    image_digest: digest.clone(),
                    predicate_type: predicate_type.to_string(),
                    tag,
                    manifest_digest: m.digest.clone(),
                    envelope_digest: d,
                    statement_digest,
                    added: false,
                });
            }
        }
    }
    let envelope = dsse::sign_envelope(statement, key).map_err(|e| anyhow!("attesting {pinned}: {e}"))?;
    let envelope_bytes = serde_json::to_vec(&envelope)?;
    let envelope_digest = Digest::of(&envelope_bytes);
    let appended = attest::append(existing_json.as_ref(), &envelope_bytes, predicate_type)
        .ok_or_else(|| anyhow!("{target}: this envelope is already a layer"))?;
    let n = appended.manifest["layers"].as_array().map_or(0, Vec::len);
    let layer = Blob::bytes(envelope_digest.clone(), envelope_bytes);
    let manifest =
        store::push_appended(ep, &target, store::Appended { layer, signature: appended }, "attestation", progress)
            .await?;
    progress.line(&format!(
        "attested {pinned}: {predicate_type} ({tag}, {n} attestation{})",
        if n == 1 { "" } else { "s" }
    ));
    Ok(Attested {
        image_digest: digest.clone(),
        predicate_type: predicate_type.to_string(),
        tag,
        manifest_digest: manifest.digest,
        envelope_digest,
        statement_digest,
        added: true,
    })
}

/// Whether `digest` beside `r` has a sigstore bundle among its referrers (API or referrers
/// tag): cosign v3 (and v2.6) then reads only bundles for it, so an attestation stored only as
/// `.att` would not be found.
pub async fn has_bundle(ep: &Endpoint, r: &ImageRef, digest: &Digest) -> Result<bool> {
    let listed = referrers::list(ep, r, digest).await?;
    Ok(listed.iter().any(|d| d["artifactType"] == bundle::BUNDLE_MEDIA_TYPE))
}

/// One bundle stored (or found already there).
#[derive(Debug, Clone)]
pub struct Bundled {
    pub image_digest: Digest,
    /// The referrer manifest (pushed by digest).
    pub manifest_digest: Digest,
    /// The referrers tag written, when the registry does not index referrers itself.
    pub referrers_tag: Option<String>,
    pub added: bool,
}

/// Sign `digest` (a manifest beside `r`) as cosign v3 does: a bundle of the `cosign/sign`
/// statement, stored as a referrer. `created` (`SOURCE_DATE_EPOCH`'s time) is recorded only
/// when given.
pub async fn bundle_digest(
    ep: &Endpoint,
    r: &ImageRef,
    digest: &Digest,
    signer: Signer<'_>,
    annotations: &std::collections::BTreeMap<String, String>,
) -> Result<Bundled> {
    let statement = bundle::sign_statement(digest.as_str(), annotations);
    let claim = Claim { digest, predicate_type: dsse::COSIGN_SIGN_PREDICATE, statement: &statement };
    bundle_statement(ep, r, claim, signer).await
}

/// Store the claim signed with `key` as a sigstore bundle referrer of its digest, as cosign
/// v3's `sign` (the `cosign/sign` statement) and `attest` (any other) do.
pub async fn bundle_statement(ep: &Endpoint, r: &ImageRef, claim: Claim<'_>, signer: Signer<'_>) -> Result<Bundled> {
    let Signer { key, created, progress } = signer;
    let Claim { digest, predicate_type, statement } = claim;
    let pinned = r.by_digest(digest);
    let subject = ep.manifest(&r.with_digest(digest)).await?;
    // Already signed with this key? A referrer whose bundle verifies with it over this statement.
    let listed = referrers::list(ep, r, digest).await.with_context(|| {
        format!("not signing {pinned}: its referrers cannot be read (a referrers tag is never overwritten)")
    })?;
    for d in listed {
        if d["artifactType"] != bundle::BUNDLE_MEDIA_TYPE {
            continue;
        }
        let Some(md) = d["digest"].as_str().and_then(|x| Digest::parse(x).ok()) else {
            continue;
        };
        let Ok(m) = ep.manifest(&r.without_tag().with_digest(&md)).await else {
            continue;
        };
        let Ok(mv) = serde_json::from_slice::<Value>(&m.bytes) else {
            continue;
        };
        let layer = mv["layers"][0]["digest"].as_str().and_then(|x| Digest::parse(x).ok());
        let blob = match layer {
            Some(l) => ep.blob_bytes(&l, MAX_ENVELOPE).await.ok(),
            None => None,
        };
        let fetch = |_: &str| blob.clone().ok_or("not fetched");
        if bundle::verify_referrer(&mv, fetch, &key.public_key(), digest.as_str())
            .is_ok_and(|st| st.payload == statement)
        {
            progress.line(&format!("{pinned} already has this {predicate_type} bundle with this key ({})", md.short()));
            return Ok(Bundled {
                image_digest: digest.clone(),
                manifest_digest: md,
                referrers_tag: None,
                added: false,
            });
        }
    }
    let bundle_bytes = bundle::bundle(statement, key).map_err(|e| anyhow!("signing {pinned}: {e}"))?;
    let described = bundle::Described {
        media_type: &subject.media_type,
        digest: digest.as_str(),
        size: subject.bytes.len() as u64,
    };
    let manifest_bytes = bundle::referrer_manifest(&bundle_bytes, predicate_type, described, created);
    let manifest = Manifest {
        digest: Digest::of(&manifest_bytes),
        bytes: manifest_bytes,
        media_type: crate::image::OCI_MANIFEST.to_string(),
    };
    let blobs = [
        Blob::bytes(Digest::of(bundle::EMPTY_BLOB), bundle::EMPTY_BLOB.to_vec()),
        Blob::bytes(Digest::of(&bundle_bytes), bundle_bytes),
    ];
    // By digest: a referrer has no tag of its own.
    let target = r.without_tag().with_digest(&manifest.digest);
    Push { dst: ep, mount_from: None, locations: None, jobs: 1, progress }
        .push(&blobs, &target, &manifest, "bundle manifest")
        .await?;
    let referrers_tag = referrers::register(ep, r, digest, &manifest, progress).await?;
    progress.line(&format!("bundled {pinned}: {predicate_type} (sigstore bundle {})", manifest.digest.short()));
    Ok(Bundled { image_digest: digest.clone(), manifest_digest: manifest.digest, referrers_tag, added: true })
}
