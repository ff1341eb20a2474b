//! cosign v3's signature: a sigstore bundle v0.3 (a DSSE envelope over the statement cosign
//! `sign` makes, the key named by its hint, no transparency log entry) stored as an OCI 1.1
//! referrer — an image manifest with `artifactType`, the empty config, the bundle as its one
//! layer and `subject` the signed image — and the referrers tag schema's index
//! (`sha256-<hex>`) for registries without the referrers API.
//!
//! Owns: the bundle JSON, the referrer manifest, the descriptor a referrers index lists and
//! adding one to such an index, checking a bundle. Must not: do I/O ([`super::referrers`] and
//! [`super::publish`] store and read them).

use super::dsse::{self, Subject, VerifiedStatement, COSIGN_SIGN_PREDICATE};
use super::keys::{SigningKey, VerifyingKey};
use super::simple::sha256_digest;
use super::{Rejected, SignError};
use crate::image;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;

pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The empty config of an artifact manifest: `{}`.
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
pub const EMPTY_BLOB: &[u8] = b"{}";
pub const CONTENT_ANNOTATION: &str = "dev.sigstore.bundle.content";
pub const PREDICATE_ANNOTATION: &str = "dev.sigstore.bundle.predicateType";
pub const CREATED_ANNOTATION: &str = "org.opencontainers.image.created";

/// The key hint of a bundle: standard base64 of sha256 over the key's DER SPKI (cosign's).
pub fn key_hint(key: &VerifyingKey) -> String {
    B64.encode(Sha256::digest(key.to_spki_der()))
}

/// A bundle of `statement` (an in-toto statement) signed with `key`, compact JSON.
pub fn bundle(statement: &[u8], key: &SigningKey) -> Result<Vec<u8>, SignError> {
    let env = dsse::sign_envelope(statement, key)?;
    let v = json!({
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": { "publicKey": { "hint": key_hint(&key.public_key()) } },
        "dsseEnvelope": env,
    });
    Ok(serde_json::to_vec(&v).expect("serializing a JSON value"))
}

/// The statement cosign v3 `sign --key` signs for `digest` (`-a` annotations on the subject).
pub fn sign_statement(digest: &str, annotations: &BTreeMap<String, String>) -> Vec<u8> {
    let subject = Subject { name: String::new(), digest: digest.to_string(), annotations: annotations.clone() };
    dsse::statement(&subject, COSIGN_SIGN_PREDICATE, &json!({}))
}

/// The referrer manifest holding `bundle_bytes` whose subject is the manifest described by
/// (`subject_media_type`, `subject_digest`, `subject_size`). `created` is recorded only when
/// given (`SOURCE_DATE_EPOCH`), so the same bundle gives the same manifest.
pub fn referrer_manifest(
    bundle_bytes: &[u8],
    predicate_type: &str,
    subject_media_type: &str,
    subject_digest: &str,
    subject_size: u64,
    created: Option<&str>,
) -> Vec<u8> {
    let mut annotations = Map::new();
    annotations.insert(CONTENT_ANNOTATION.into(), json!("dsse-envelope"));
    annotations.insert(PREDICATE_ANNOTATION.into(), json!(predicate_type));
    if let Some(c) = created {
        annotations.insert(CREATED_ANNOTATION.into(), json!(c));
    }
    let v = json!({
        "schemaVersion": 2,
        "mediaType": image::OCI_MANIFEST,
        "artifactType": BUNDLE_MEDIA_TYPE,
        "config": { "mediaType": EMPTY_MEDIA_TYPE, "digest": sha256_digest(EMPTY_BLOB), "size": EMPTY_BLOB.len() },
        "layers": [{ "mediaType": BUNDLE_MEDIA_TYPE, "digest": sha256_digest(bundle_bytes), "size": bundle_bytes.len() }],
        "subject": { "mediaType": subject_media_type, "digest": subject_digest, "size": subject_size },
        "annotations": annotations,
    });
    serde_json::to_vec(&v).expect("serializing a JSON value")
}

/// Why a referrer manifest or a referrers tag's index cannot be used: one line each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    #[error("referrer manifest: {0}")]
    ReferrerNotJson(String),
    #[error("referrer manifest has no artifactType and no config media type")]
    NoArtifactType,
    #[error("it is not JSON ({0})")]
    NotJson(String),
    /// The tag holds something else than an OCI index (its media type, or none).
    #[error("it holds {}, not an OCI image index", if .0.is_empty() { "a document without mediaType" } else { .0.as_str() })]
    NotAnIndex(String),
    #[error("the referrers index has no manifests list")]
    NoManifests,
}

/// What a referrers index lists for `manifest_bytes` (a manifest with `subject`): media type,
/// digest, size, `artifactType` (or the config's media type) and all its annotations.
pub fn referrer_descriptor(manifest_bytes: &[u8]) -> Result<Value, IndexError> {
    let m: Value = serde_json::from_slice(manifest_bytes).map_err(|e| IndexError::ReferrerNotJson(e.to_string()))?;
    let artifact_type =
        m["artifactType"].as_str().or_else(|| m["config"]["mediaType"].as_str()).ok_or(IndexError::NoArtifactType)?;
    let mut d = json!({
        "mediaType": m["mediaType"].as_str().unwrap_or(image::OCI_MANIFEST),
        "digest": sha256_digest(manifest_bytes),
        "size": manifest_bytes.len(),
        "artifactType": artifact_type,
    });
    if let Some(a) = m.get("annotations").filter(|a| a.is_object()) {
        d["annotations"] = a.clone();
    }
    Ok(d)
}

/// The referrers tag of a subject: `sha256-<hex>` (algorithm to 32 characters, hex to 64).
pub fn fallback_tag(subject_digest: &str) -> String {
    let (alg, hex) = subject_digest.split_once(':').unwrap_or(("sha256", subject_digest));
    format!("{}-{}", &alg[..alg.len().min(32)], &hex[..hex.len().min(64)])
}

/// A referrers index with `descriptor` added: `existing` (the tag's manifest, when the tag
/// exists) must be an OCI index — anything else is refused, never overwritten. `Ok(None)` when
/// it already lists the digest.
pub fn add_referrer(existing: Option<&[u8]>, descriptor: &Value) -> Result<Option<Vec<u8>>, IndexError> {
    let mut index = match existing {
        None => json!({ "schemaVersion": 2, "mediaType": image::OCI_INDEX, "manifests": [] }),
        Some(bytes) => parse_referrers_index(bytes)?,
    };
    let list = index["manifests"].as_array_mut().ok_or(IndexError::NoManifests)?;
    if list.iter().any(|d| d["digest"] == descriptor["digest"]) {
        return Ok(None);
    }
    list.push(descriptor.clone());
    Ok(Some(serde_json::to_vec(&index).expect("serializing a JSON value")))
}

/// A referrers tag's manifest as an index: an OCI index with a `manifests` array, else an error
/// saying what it is.
pub fn parse_referrers_index(bytes: &[u8]) -> Result<Value, IndexError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| IndexError::NotJson(e.to_string()))?;
    let mt = v["mediaType"].as_str().unwrap_or("");
    if mt != image::OCI_INDEX || !v["manifests"].is_array() {
        return Err(IndexError::NotAnIndex(mt.to_string()));
    }
    Ok(v)
}

/// Check a bundle referrer: the manifest's `subject` and `artifactType` (the manifest the
/// registry lists as a referrer of `expected_digest` must say so), then the bundle (media
/// type, DSSE envelope with `key`, statement subject `expected_digest`). `fetch` gives the
/// bundle blob by digest, verified against it by the caller or here.
pub fn verify_referrer<E: std::fmt::Display>(
    manifest: &Value,
    fetch: impl FnOnce(&str) -> Result<Vec<u8>, E>,
    key: &VerifyingKey,
    expected_digest: &str,
) -> Result<VerifiedStatement, Rejected> {
    let subject = manifest["subject"]["digest"].as_str().unwrap_or("(none)");
    if subject != expected_digest {
        return Err(Rejected::ReferrerSubject { found: subject.to_string(), expected: expected_digest.to_string() });
    }
    let layer = manifest["layers"]
        .as_array()
        .and_then(|l| l.iter().find(|l| l["mediaType"] == BUNDLE_MEDIA_TYPE))
        .ok_or(Rejected::NoBundleLayer)?;
    let digest = layer["digest"].as_str().ok_or(Rejected::NoBundleDigest)?;
    let blob = fetch(digest).map_err(|e| Rejected::Fetch { what: "bundle", why: e.to_string() })?;
    if sha256_digest(&blob) != digest {
        return Err(Rejected::BundleContent(digest.to_string()));
    }
    verify_bundle(&blob, key, expected_digest)
}

/// Check bundle bytes: v0.3 media type, a DSSE envelope verifying with `key` over a statement
/// whose subject is `expected_digest`. Message-signature bundles are not what harden writes;
/// they are refused by name.
pub fn verify_bundle(bytes: &[u8], key: &VerifyingKey, expected_digest: &str) -> Result<VerifiedStatement, Rejected> {
    let b: Value = serde_json::from_slice(bytes).map_err(|e| Rejected::BundleJson(e.to_string()))?;
    let mt = b["mediaType"].as_str().unwrap_or("");
    if !mt.starts_with("application/vnd.dev.sigstore.bundle") {
        return Err(Rejected::BundleMediaType(mt.to_string()));
    }
    let env = b.get("dsseEnvelope").ok_or(Rejected::NoEnvelope)?;
    // The hint only says which key to try: the signature decides. It explains a failure.
    dsse::verify_envelope(env, key, expected_digest).map_err(|failure| {
        match b["verificationMaterial"]["publicKey"]["hint"].as_str().filter(|h| *h != key_hint(key)) {
            Some(h) => Rejected::OtherKey { failure, named: h.to_string(), this: key_hint(key) },
            None => failure.into(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::dsse::tests::{test_key, D};

    #[test]
    fn bundle_and_referrer_round_trip() {
        let k = test_key();
        let b = bundle(&sign_statement(D, &BTreeMap::new()), &k).unwrap();
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["mediaType"], BUNDLE_MEDIA_TYPE);
        assert_eq!(v["verificationMaterial"]["publicKey"]["hint"], key_hint(&k.public_key()));
        assert!(v.get("verificationMaterial").unwrap().get("tlogEntries").is_none());
        let m = referrer_manifest(&b, COSIGN_SIGN_PREDICATE, image::OCI_MANIFEST, D, 1234, None);
        let mv: Value = serde_json::from_slice(&m).unwrap();
        assert_eq!(mv["subject"]["digest"], D);
        assert_eq!(mv["config"]["digest"], "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
        assert_eq!(mv["annotations"][CONTENT_ANNOTATION], "dsse-envelope");
        let st = verify_referrer(&mv, |_: &str| Ok::<_, String>(b.clone()), &k.public_key(), D).unwrap();
        assert_eq!(st.predicate_type, COSIGN_SIGN_PREDICATE);
        // A manifest whose subject lies.
        let other = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
        let e = verify_referrer(&mv, |_: &str| Ok::<_, String>(b.clone()), &k.public_key(), other).unwrap_err();
        assert!(matches!(&e, Rejected::ReferrerSubject { found, .. } if found == D), "{e}");
        assert!(e.to_string().contains("names subject"), "{e}");
        // Another key: the signature fails, and the hint says whose the bundle is.
        let e = verify_bundle(&b, &test_key().public_key(), D).unwrap_err();
        assert!(matches!(&e, Rejected::OtherKey { failure: dsse::DsseFailure::SignatureInvalid, .. }), "{e}");
        assert!(e.to_string().contains("no signature") && e.to_string().contains("names key"), "{e}");
        // Without the hint, the signature tells.
        let mut nohint = v.clone();
        nohint["verificationMaterial"] = json!({});
        let e = verify_bundle(&serde_json::to_vec(&nohint).unwrap(), &test_key().public_key(), D).unwrap_err();
        assert_eq!(e, Rejected::Dsse(dsse::DsseFailure::SignatureInvalid));
        // A blob that is not what the layer says.
        let e = verify_referrer(&mv, |_: &str| Ok::<_, String>(b"{}".to_vec()), &k.public_key(), D).unwrap_err();
        assert!(matches!(e, Rejected::BundleContent(_)), "{e}");
        assert!(verify_bundle(b"[]", &k.public_key(), D).is_err());
    }

    #[test]
    fn referrers_index_updates() {
        let k = test_key();
        let b1 = bundle(&sign_statement(D, &BTreeMap::new()), &k).unwrap();
        let b2 = bundle(&sign_statement(D, &BTreeMap::new()), &k).unwrap();
        let m1 = referrer_manifest(&b1, COSIGN_SIGN_PREDICATE, image::OCI_MANIFEST, D, 1, None);
        let m2 = referrer_manifest(&b2, COSIGN_SIGN_PREDICATE, image::OCI_MANIFEST, D, 1, Some("1970-01-01T00:00:00Z"));
        let d1 = referrer_descriptor(&m1).unwrap();
        assert_eq!(d1["artifactType"], BUNDLE_MEDIA_TYPE);
        assert_eq!(d1["annotations"][PREDICATE_ANNOTATION], COSIGN_SIGN_PREDICATE);
        let i1 = add_referrer(None, &d1).unwrap().unwrap();
        assert!(add_referrer(Some(&i1), &d1).unwrap().is_none(), "listed once");
        let i2 = add_referrer(Some(&i1), &referrer_descriptor(&m2).unwrap()).unwrap().unwrap();
        let v: Value = serde_json::from_slice(&i2).unwrap();
        assert_eq!(v["mediaType"], image::OCI_INDEX);
        assert_eq!(v["manifests"].as_array().unwrap().len(), 2);
        assert_eq!(v["manifests"][0]["digest"], sha256_digest(&m1));
        // A tag holding an image manifest, or junk: refused, naming what it holds.
        let e = add_referrer(Some(&m1), &d1).unwrap_err();
        assert_eq!(e, IndexError::NotAnIndex(image::OCI_MANIFEST.into()));
        assert!(e.to_string().contains("application/vnd.oci.image.manifest.v1+json, not an OCI image index"), "{e}");
        assert!(matches!(add_referrer(Some(b"nope"), &d1), Err(IndexError::NotJson(_))));
        assert_eq!(
            parse_referrers_index(b"{}").unwrap_err().to_string(),
            "it holds a document without mediaType, not an OCI image index"
        );
        assert_eq!(fallback_tag(D), format!("sha256-{}", &D[7..]));
    }
}
