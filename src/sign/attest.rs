//! Cosign attestations (`cosign attest --key`): the manifest at tag `sha256-<hex>.att`, one layer
//! per attestation, each a DSSE envelope ([`super::dsse`]) of media type [`DSSE_MEDIA_TYPE`]
//! with the annotations `predicateType` and an empty `dev.cosignproject.cosign/signature`.
//!
//! Owns: the `.att` tag, its layer descriptor, appending to the manifest (the shape `.sig`
//! shares, [`super::simple::append_layer`]) and checking its layers. Must not: do I/O (callers
//! fetch the envelope blobs and push what [`append`] returns).

use super::dsse::{self, DsseFailure, VerifiedStatement};
use super::keys::VerifyingKey;
use super::simple::{self, sha256_digest, AppendedSignature, SIGNATURE_ANNOTATION};
use super::Rejected;
use serde_json::{json, Value};

/// Media type of an attestation layer.
pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
/// The layer annotation naming the statement's predicate type (the key is literally this).
pub const PREDICATE_TYPE_ANNOTATION: &str = "predicateType";

/// The tag holding the attestations of `manifest_digest`: `sha256-<hex>.att`.
pub fn att_tag(manifest_digest: &str) -> String {
    format!("{}.att", manifest_digest.replace(':', "-"))
}

/// The layer descriptor of an envelope blob.
pub fn descriptor(envelope_bytes: &[u8], predicate_type: &str) -> Value {
    json!({
        "mediaType": DSSE_MEDIA_TYPE,
        "size": envelope_bytes.len(),
        "digest": sha256_digest(envelope_bytes),
        "annotations": {
            SIGNATURE_ANNOTATION: "",
            PREDICATE_TYPE_ANNOTATION: predicate_type,
        },
    })
}

/// The `.att` manifest with the envelope appended (earlier attestations kept, as cosign without
/// `--replace`); `None` when this very blob is already a layer.
pub fn append(existing: Option<&Value>, envelope_bytes: &[u8], predicate_type: &str) -> Option<AppendedSignature> {
    simple::append_layer(existing, descriptor(envelope_bytes, predicate_type))
}

/// The outcome for one layer of a `.att` manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct AttVerdict {
    pub index: usize,
    pub digest: String,
    /// The layer's `predicateType` annotation (empty when missing).
    pub predicate_type: String,
    pub result: Result<VerifiedStatement, Rejected>,
}

/// Check every layer of a `.att` manifest: media type, the blob (`fetch(digest)`, its sha256
/// must be the digest), the envelope with `key`, the subject against `expected_digest`, and
/// that the statement's predicate type is the one the annotation claims.
pub fn verify_manifest<E: std::fmt::Display>(
    manifest: &Value,
    mut fetch: impl FnMut(&str) -> Result<Vec<u8>, E>,
    key: &VerifyingKey,
    expected_digest: &str,
) -> Vec<AttVerdict> {
    let Some(layers) = manifest.get("layers").and_then(Value::as_array) else {
        return Vec::new();
    };
    layers
        .iter()
        .enumerate()
        .map(|(index, l)| {
            let digest = l.get("digest").and_then(Value::as_str).unwrap_or_default().to_string();
            let predicate_type = l["annotations"][PREDICATE_TYPE_ANNOTATION].as_str().unwrap_or_default().to_string();
            let result = verify_layer(l, &digest, &predicate_type, &mut fetch, key, expected_digest);
            AttVerdict { index, digest, predicate_type, result }
        })
        .collect()
}

fn verify_layer<E: std::fmt::Display>(
    layer: &Value,
    digest: &str,
    predicate_type: &str,
    fetch: &mut impl FnMut(&str) -> Result<Vec<u8>, E>,
    key: &VerifyingKey,
    expected_digest: &str,
) -> Result<VerifiedStatement, Rejected> {
    let mt = layer.get("mediaType").and_then(Value::as_str).unwrap_or_default();
    if mt != DSSE_MEDIA_TYPE {
        return Err(Rejected::AttMediaType(mt.to_string()));
    }
    if digest.is_empty() {
        return Err(Rejected::NoDigest);
    }
    let blob = fetch(digest).map_err(|e| Rejected::Fetch { what: "envelope", why: e.to_string() })?;
    let actual = sha256_digest(&blob);
    if actual != digest {
        return Err(Rejected::EnvelopeDigest { found: actual, expected: digest.to_string() });
    }
    let env: Value = serde_json::from_slice(&blob).map_err(|e| DsseFailure::Malformed(format!("not JSON ({e})")))?;
    let st = dsse::verify_envelope(&env, key, expected_digest)?;
    if !predicate_type.is_empty() && st.predicate_type != predicate_type {
        return Err(
            DsseFailure::PredicateType { expected: predicate_type.to_string(), found: st.predicate_type }.into()
        );
    }
    Ok(st)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::dsse::tests::{test_key, D};
    use crate::sign::dsse::{sign_envelope, statement, Subject, SLSA_PROVENANCE_V1};
    use std::collections::HashMap;

    fn envelope(key: &crate::sign::SigningKey, digest: &str, pt: &str) -> Vec<u8> {
        let s = Subject { name: "r/app".into(), digest: digest.into(), annotations: Default::default() };
        serde_json::to_vec(&sign_envelope(&statement(&s, pt, &json!({"x": 1})), key).unwrap()).unwrap()
    }

    #[test]
    fn append_keeps_earlier_layers_and_verifies() {
        let k = test_key();
        let a = envelope(&k, D, SLSA_PROVENANCE_V1);
        let b = envelope(&k, D, dsse::CYCLONEDX);
        let first = append(None, &a, SLSA_PROVENANCE_V1).unwrap();
        assert!(append(Some(&first.manifest), &a, SLSA_PROVENANCE_V1).is_none(), "the same blob twice");
        let both = append(Some(&first.manifest), &b, dsse::CYCLONEDX).unwrap();
        let layers = both.manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 2);
        assert_eq!(layers[0]["annotations"]["predicateType"], SLSA_PROVENANCE_V1);
        assert_eq!(layers[0]["annotations"][SIGNATURE_ANNOTATION], "");
        assert_eq!(layers[1]["mediaType"], DSSE_MEDIA_TYPE);
        assert_eq!(att_tag(D), format!("sha256-{}.att", &D[7..]));

        let blobs: HashMap<String, Vec<u8>> =
            [a.clone(), b.clone()].into_iter().map(|x| (sha256_digest(&x), x)).collect();
        let fetch = |d: &str| blobs.get(d).cloned().ok_or("missing");
        let v = verify_manifest(&both.manifest, fetch, &k.public_key(), D);
        assert!(v.iter().all(|x| x.result.is_ok()), "{v:?}");
        assert_eq!(v[1].predicate_type, dsse::CYCLONEDX);
        // Another key, another digest: every layer fails, naming why.
        let v = verify_manifest(&both.manifest, fetch, &test_key().public_key(), D);
        assert!(v.iter().all(|x| x.result == Err(Rejected::Dsse(DsseFailure::SignatureInvalid))), "{v:?}");
        let other = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
        let v = verify_manifest(&both.manifest, fetch, &k.public_key(), other);
        assert!(matches!(&v[0].result, Err(Rejected::Dsse(DsseFailure::Subject { .. }))), "{v:?}");
        // A layer whose annotation lies about the predicate type.
        let mut lying = both.manifest.clone();
        lying["layers"][0]["annotations"]["predicateType"] = json!(dsse::CYCLONEDX);
        let v = verify_manifest(&lying, fetch, &k.public_key(), D);
        assert!(matches!(&v[0].result, Err(Rejected::Dsse(DsseFailure::PredicateType { .. }))), "{v:?}");
        // A blob that is not its digest, and one that is not JSON.
        let v = verify_manifest(&both.manifest, |_: &str| Ok::<_, String>(b"{}".to_vec()), &k.public_key(), D);
        assert!(matches!(&v[0].result, Err(Rejected::EnvelopeDigest { .. })), "{v:?}");
        // The line users see is unchanged.
        assert!(v[0].result.as_ref().unwrap_err().to_string().starts_with("envelope digest is sha256:"), "{v:?}");
        let junk = b"not json".to_vec();
        let m = append(None, &junk, SLSA_PROVENANCE_V1).unwrap().manifest;
        let v = verify_manifest(&m, |_: &str| Ok::<_, String>(junk.clone()), &k.public_key(), D);
        assert!(matches!(&v[0].result, Err(Rejected::Dsse(DsseFailure::Malformed(_)))), "{v:?}");
        assert!(v[0].result.as_ref().unwrap_err().to_string().starts_with("not a DSSE envelope: not JSON"), "{v:?}");
    }
}
