//! DSSE envelopes over in-toto statements, as cosign writes and reads them: the statement
//! (`_type`, `subject`, `predicateType`, `predicate`, nothing else), its pre-authentication
//! encoding (PAE), the envelope `{"payloadType","payload","signatures":[{"sig"}]}` signed with
//! ECDSA P-256/SHA-256 (DER) over the PAE, and checking one against a key and an image digest.
//!
//! Owns: those byte formats. Must not: do I/O, or know where an envelope is stored (a `.att`
//! layer, a sigstore bundle: [`super::attest`], [`super::bundle`]).

use super::keys::{SigningKey, VerifyingKey};
use super::SignError;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// The only payload type cosign accepts in an attestation envelope.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// in-toto Statement v1.
pub const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
/// What cosign v3 `sign` attests: the image itself, with an empty predicate.
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
pub const CYCLONEDX: &str = "https://cyclonedx.org/bom";

/// cosign's `--type` short names and the predicate type URIs they stand for.
pub const TYPE_NAMES: [(&str, &str); 6] = [
    ("slsaprovenance1", SLSA_PROVENANCE_V1),
    ("slsaprovenance", "https://slsa.dev/provenance/v0.2"),
    ("cyclonedx", CYCLONEDX),
    ("spdxjson", "https://spdx.dev/Document"),
    ("openvex", "https://openvex.dev/ns"),
    ("vuln", "https://cosign.sigstore.dev/attestation/vuln/v1"),
];

/// A `--type` value as a predicate type URI: a short name of [`TYPE_NAMES`] or a URI as given.
/// Anything else is an error naming the short names.
pub fn predicate_type(name: &str) -> Result<String, String> {
    if let Some((_, uri)) = TYPE_NAMES.iter().find(|(n, _)| *n == name) {
        return Ok((*uri).to_string());
    }
    if name.contains("://") {
        return Ok(name.to_string());
    }
    Err(format!(
        "predicate type `{name}` is neither a URI nor one of {}",
        TYPE_NAMES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
    ))
}

/// One subject of a statement: an image by its manifest digest (`name` may be empty, as in
/// cosign v3's `sign` statement, which names none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub name: String,
    /// `sha256:<hex>`.
    pub digest: String,
    pub annotations: BTreeMap<String, String>,
}

/// An in-toto Statement v1, compact JSON, fields in a fixed order (the predicate's as given):
/// the same inputs give the same bytes.
pub fn statement(subject: &Subject, predicate_type: &str, predicate: &Value) -> Vec<u8> {
    let mut s = Map::new();
    if !subject.name.is_empty() {
        s.insert("name".into(), json!(subject.name));
    }
    let hex = subject.digest.strip_prefix("sha256:").unwrap_or(&subject.digest);
    s.insert("digest".into(), json!({ "sha256": hex }));
    if !subject.annotations.is_empty() {
        s.insert("annotations".into(), json!(subject.annotations));
    }
    let v = json!({
        "_type": STATEMENT_V1,
        "subject": [Value::Object(s)],
        "predicateType": predicate_type,
        "predicate": predicate,
    });
    serde_json::to_vec(&v).expect("serializing a JSON value")
}

/// DSSE's pre-authentication encoding: `DSSEv1 <len type> <type> <len payload> <payload>`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!("DSSEv1 {} {} {} ", payload_type.len(), payload_type, payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out
}

/// The envelope of `payload` (an in-toto statement) signed with `key`, as JSON (cosign v3's
/// shape: no `keyid`).
pub fn sign_envelope(payload: &[u8], key: &SigningKey) -> Result<Value, SignError> {
    let sig = key.sign(&pae(IN_TOTO_PAYLOAD_TYPE, payload))?;
    Ok(json!({
        "payloadType": IN_TOTO_PAYLOAD_TYPE,
        "payload": B64.encode(payload),
        "signatures": [{ "sig": B64.encode(sig) }],
    }))
}

/// A statement whose envelope verified.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedStatement {
    pub predicate_type: String,
    pub predicate: Value,
    /// The statement's bytes (the envelope's payload).
    pub payload: Vec<u8>,
}

/// Why an envelope did not verify; one line each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DsseFailure {
    #[error("not a DSSE envelope: {0}")]
    Malformed(String),
    #[error("payload type {0:?} is not {IN_TOTO_PAYLOAD_TYPE}")]
    PayloadType(String),
    #[error("no signature of the envelope verifies with the public key")]
    SignatureInvalid,
    #[error("the statement is not an in-toto statement: {0}")]
    Statement(String),
    #[error("the statement's subject is {found}, not {expected}")]
    Subject { expected: String, found: String },
    #[error("predicate type is {found}, not {expected}")]
    PredicateType { expected: String, found: String },
}

/// Check an envelope: payload type, a signature over the PAE by `key`, the statement's shape,
/// and that some subject's sha256 is `expected_digest` (`sha256:<hex>`).
pub fn verify_envelope(
    envelope: &Value,
    key: &VerifyingKey,
    expected_digest: &str,
) -> Result<VerifiedStatement, DsseFailure> {
    let malformed = |m: &str| DsseFailure::Malformed(m.to_string());
    let payload_type =
        envelope.get("payloadType").and_then(Value::as_str).ok_or_else(|| malformed("no payloadType"))?;
    if payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(DsseFailure::PayloadType(payload_type.to_string()));
    }
    let payload_b64 = envelope.get("payload").and_then(Value::as_str).ok_or_else(|| malformed("no payload"))?;
    let payload = B64.decode(payload_b64).map_err(|_| malformed("payload is not base64"))?;
    let sigs = envelope.get("signatures").and_then(Value::as_array).ok_or_else(|| malformed("no signatures"))?;
    let message = pae(payload_type, &payload);
    let verified = sigs.iter().any(|s| {
        s.get("sig")
            .and_then(Value::as_str)
            .and_then(|b| B64.decode(b).ok())
            .is_some_and(|der| key.verify(&message, &der).is_ok())
    });
    if !verified {
        return Err(DsseFailure::SignatureInvalid);
    }
    let st: Value = serde_json::from_slice(&payload).map_err(|e| DsseFailure::Statement(e.to_string()))?;
    let ty = st.get("_type").and_then(Value::as_str).unwrap_or_default();
    if !ty.starts_with("https://in-toto.io/Statement/") {
        return Err(DsseFailure::Statement(format!("_type {ty:?}")));
    }
    let predicate_type = st
        .get("predicateType")
        .and_then(Value::as_str)
        .ok_or_else(|| DsseFailure::Statement("no predicateType".into()))?
        .to_string();
    let subjects =
        st.get("subject").and_then(Value::as_array).ok_or_else(|| DsseFailure::Statement("no subject".into()))?;
    let want = expected_digest.strip_prefix("sha256:").unwrap_or(expected_digest);
    let found: Vec<&str> = subjects.iter().filter_map(|s| s["digest"]["sha256"].as_str()).collect();
    if !found.contains(&want) {
        return Err(DsseFailure::Subject {
            expected: expected_digest.to_string(),
            found: if found.is_empty() {
                "no sha256 digest".to_string()
            } else {
                found.iter().map(|h| format!("sha256:{h}")).collect::<Vec<_>>().join(", ")
            },
        });
    }
    Ok(VerifiedStatement { predicate_type, predicate: st.get("predicate").cloned().unwrap_or(Value::Null), payload })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

    pub(crate) const D: &str = "sha256:4a1c4b21597c1b4415bdbecb28a3296c6b5e23ca4f9feeb599860a1dac6a0108";

    pub(crate) fn test_key() -> SigningKey {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new()).unwrap();
        SigningKey::from_pkcs8_der(pkcs8.as_ref()).unwrap()
    }

    fn subject() -> Subject {
        Subject { name: "registry.example/app".into(), digest: D.into(), annotations: BTreeMap::new() }
    }

    #[test]
    fn pae_is_dsse_v1() {
        // The DSSE specification's own example.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ");
    }

    #[test]
    fn statement_bytes_are_fixed() {
        let s = statement(&subject(), SLSA_PROVENANCE_V1, &json!({"b": 1, "a": 2}));
        assert_eq!(
            std::str::from_utf8(&s).unwrap(),
            r#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"registry.example/app","digest":{"sha256":"4a1c4b21597c1b4415bdbecb28a3296c6b5e23ca4f9feeb599860a1dac6a0108"}}],"predicateType":"https://slsa.dev/provenance/v1","predicate":{"b":1,"a":2}}"#
        );
        assert_eq!(s, statement(&subject(), SLSA_PROVENANCE_V1, &json!({"b": 1, "a": 2})));
        // cosign v3's sign statement: no name, subject annotations.
        let s =
            Subject { name: String::new(), digest: D.into(), annotations: BTreeMap::from([("k".into(), "v".into())]) };
        let v: Value = serde_json::from_slice(&statement(&s, COSIGN_SIGN_PREDICATE, &json!({}))).unwrap();
        assert_eq!(v["subject"][0], json!({"digest": {"sha256": &D[7..]}, "annotations": {"k": "v"}}));
    }

    #[test]
    fn envelope_round_trip_and_tampering() {
        let k = test_key();
        let payload = statement(&subject(), CYCLONEDX, &json!({"bomFormat": "CycloneDX"}));
        let env = sign_envelope(&payload, &k).unwrap();
        let ok = verify_envelope(&env, &k.public_key(), D).unwrap();
        assert_eq!(ok.predicate_type, CYCLONEDX);
        assert_eq!(ok.payload, payload);
        // Another key.
        assert_eq!(verify_envelope(&env, &test_key().public_key(), D), Err(DsseFailure::SignatureInvalid));
        // Another subject.
        let other = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
        assert!(matches!(verify_envelope(&env, &k.public_key(), other), Err(DsseFailure::Subject { .. })));
        // A changed payload (still base64, still a statement).
        let mut bad = env.clone();
        let changed = statement(&subject(), CYCLONEDX, &json!({"bomFormat": "evil"}));
        bad["payload"] = json!(B64.encode(changed));
        assert_eq!(verify_envelope(&bad, &k.public_key(), D), Err(DsseFailure::SignatureInvalid));
        // Another payload type signed over honestly is still refused.
        let mut pt = env.clone();
        pt["payloadType"] = json!("text/plain");
        assert!(matches!(verify_envelope(&pt, &k.public_key(), D), Err(DsseFailure::PayloadType(_))));
        // Not an envelope at all: an error, no panic.
        for v in
            [json!(null), json!([]), json!({"payloadType": IN_TOTO_PAYLOAD_TYPE, "payload": "%%", "signatures": []})]
        {
            assert!(matches!(verify_envelope(&v, &k.public_key(), D), Err(DsseFailure::Malformed(_))), "{v}");
        }
        // A signed payload that is not a statement.
        let env = sign_envelope(b"{\"x\":1}", &k).unwrap();
        assert!(matches!(verify_envelope(&env, &k.public_key(), D), Err(DsseFailure::Statement(_))));
    }

    #[test]
    fn predicate_type_names() {
        assert_eq!(predicate_type("slsaprovenance1").unwrap(), SLSA_PROVENANCE_V1);
        assert_eq!(predicate_type("cyclonedx").unwrap(), CYCLONEDX);
        assert_eq!(predicate_type("https://example.com/x/v1").unwrap(), "https://example.com/x/v1");
        assert!(predicate_type("nonsense").unwrap_err().contains("slsaprovenance1"));
    }
}
