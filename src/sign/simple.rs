//! Cosign "simple signing": payload, `.sig` tag, signature layers and the `.sig` manifest.
//!
//! One signature = one layer of the OCI manifest at tag `sha256-<hex>.sig` in the image's own
//! repository. The layer blob is the payload (uncompressed, so its diff_id is its digest), its
//! media type is [`SIMPLE_SIGNING_MEDIA_TYPE`] and its annotation [`SIGNATURE_ANNOTATION`] holds
//! the standard (padded) base64 of the DER signature over the payload bytes.
//!
//! Owns: the simple-signing payload, `.sig` layers and manifests, and checking them. Must not:
//! fetch or push anything (callers hand over blobs through closures).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256};

use super::keys::VerifyingKey;

/// Media type of a simple-signing payload layer.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Layer annotation holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// Optional layer annotations cosign may add (keyless signing / transparency log). harden signs
/// and verifies with keys only and never writes them; they name what a `.sig` layer may carry.
#[allow(dead_code)]
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
#[allow(dead_code)]
pub const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
#[allow(dead_code)]
pub const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
/// The `.sig` manifest and its config use the ordinary OCI media types.
pub use crate::image::{OCI_CONFIG as OCI_CONFIG_MEDIA_TYPE, OCI_MANIFEST as OCI_MANIFEST_MEDIA_TYPE};
/// `critical.type` of a cosign payload.
pub const PAYLOAD_TYPE: &str = "cosign container image signature";

/// The payload cosign signs, byte for byte: compact JSON in cosign's field order,
/// `"optional":null` when there are no annotations, otherwise an object with sorted keys.
/// Strings are escaped as Go's encoding/json does (`<`, `>`, `&`, U+2028, U+2029 as `\uXXXX`).
///
/// `docker_reference` is what cosign puts there by default: the repository without tag or
/// digest (e.g. `registry.example/ns/app`).
pub fn payload(docker_reference: &str, manifest_digest: &str, optional: &BTreeMap<String, String>) -> Vec<u8> {
    let mut s = String::with_capacity(192 + docker_reference.len());
    s.push_str(r#"{"critical":{"identity":{"docker-reference":"#);
    go_json_string(&mut s, docker_reference);
    s.push_str(r#"},"image":{"docker-manifest-digest":"#);
    go_json_string(&mut s, manifest_digest);
    s.push_str(r#"},"type":"#);
    go_json_string(&mut s, PAYLOAD_TYPE);
    s.push_str(r#"},"optional":"#);
    if optional.is_empty() {
        s.push_str("null");
    } else {
        s.push('{');
        for (i, (k, v)) in optional.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            go_json_string(&mut s, k);
            s.push(':');
            go_json_string(&mut s, v);
        }
        s.push('}');
    }
    s.push('}');
    s.into_bytes()
}

/// A JSON string literal as Go's `json.Marshal` writes it (HTML-safe escaping).
fn go_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The tag holding the signatures of `manifest_digest`: `sha256:<hex>` → `sha256-<hex>.sig`.
pub fn sig_tag(manifest_digest: &str) -> String {
    format!("{}.sig", manifest_digest.replace(':', "-"))
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The config blob cosign writes for a `.sig` manifest: one history entry and one diff_id per
/// signature layer (the payload digests, payloads being uncompressed).
pub fn signature_config(diff_ids: &[String]) -> Vec<u8> {
    let mut s = String::from(r#"{"architecture":"","created":"0001-01-01T00:00:00Z","history":["#);
    for i in 0..diff_ids.len() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(r#"{"created":"0001-01-01T00:00:00Z"}"#);
    }
    s.push_str(r#"],"os":"","rootfs":{"type":"layers","diff_ids":["#);
    for (i, d) in diff_ids.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        go_json_string(&mut s, d);
    }
    s.push_str(r#"]},"config":{}}"#);
    s.into_bytes()
}

/// One signature to add to a `.sig` manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureLayer {
    /// Digest of the payload blob (`sha256:<hex>`).
    pub digest: String,
    /// Size of the payload blob in bytes.
    pub size: u64,
    /// Standard padded base64 of the DER signature.
    pub signature_b64: String,
    /// Extra annotations besides the signature (certificate, chain, bundle); usually empty.
    pub annotations: BTreeMap<String, String>,
}

impl SignatureLayer {
    /// The layer for `payload` signed with `signature_der`, with no extra annotations.
    pub fn new(payload: &[u8], signature_der: &[u8]) -> Self {
        Self {
            digest: sha256_digest(payload),
            size: payload.len() as u64,
            signature_b64: B64.encode(signature_der),
            annotations: BTreeMap::new(),
        }
    }

    /// All layer annotations: the signature plus the extras.
    fn all_annotations(&self) -> BTreeMap<String, String> {
        let mut a = self.annotations.clone();
        a.insert(SIGNATURE_ANNOTATION.to_string(), self.signature_b64.clone());
        a
    }

    fn descriptor(&self) -> Value {
        let annotations: Map<String, Value> =
            self.all_annotations().into_iter().map(|(k, v)| (k, Value::String(v))).collect();
        json!({
            "mediaType": SIMPLE_SIGNING_MEDIA_TYPE,
            "size": self.size,
            "digest": self.digest,
            "annotations": annotations,
        })
    }
}

/// A new `.sig` manifest and the config blob it references. Push the payload blob(s) and
/// `config` first, then `manifest_bytes` (media type [`OCI_MANIFEST_MEDIA_TYPE`]) at the
/// [`sig_tag`].
#[derive(Debug, Clone)]
pub struct AppendedSignature {
    /// The manifest as JSON.
    pub manifest: Value,
    /// The manifest serialized (compact); push exactly these bytes.
    pub manifest_bytes: Vec<u8>,
    /// The config blob ([`signature_config`] of every layer's digest).
    pub config: Vec<u8>,
    /// `sha256:<hex>` of `config`.
    pub config_digest: String,
}

/// Add `layer` to the existing `.sig` manifest (or start a new one), as cosign does: existing
/// layers are kept in order and the new one is appended; the config is regenerated for all
/// layers. Returns `None` when a layer with the same digest, media type and annotations is
/// already there (nothing to push). Manifest-level annotations of the existing manifest are
/// kept; entries of `layers` that are not JSON objects are dropped.
pub fn append_signature(existing: Option<&Value>, layer: SignatureLayer) -> Option<AppendedSignature> {
    append_layer(existing, layer.descriptor())
}

/// Add one layer `descriptor` to a cosign manifest (`.sig` or `.att`, which share the shape:
/// an OCI manifest whose config lists one diff_id per layer): see [`append_signature`].
pub fn append_layer(existing: Option<&Value>, descriptor: Value) -> Option<AppendedSignature> {
    let existing_layers: Vec<Value> = existing
        .and_then(|m| m.get("layers"))
        .and_then(Value::as_array)
        .map(|ls| ls.iter().filter(|l| l.is_object()).cloned().collect())
        .unwrap_or_default();

    let duplicate = existing_layers.iter().any(|l| {
        l.get("digest") == descriptor.get("digest")
            && l.get("mediaType") == descriptor.get("mediaType")
            && string_map(l.get("annotations")) == string_map(descriptor.get("annotations"))
    });
    if duplicate {
        return None;
    }

    let mut layers = existing_layers;
    layers.push(descriptor);
    let diff_ids: Vec<String> =
        layers.iter().map(|l| l.get("digest").and_then(Value::as_str).unwrap_or_default().to_string()).collect();
    let config = signature_config(&diff_ids);
    let config_digest = sha256_digest(&config);

    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST_MEDIA_TYPE,
        "config": {
            "mediaType": OCI_CONFIG_MEDIA_TYPE,
            "size": config.len(),
            "digest": config_digest,
        },
        "layers": layers,
    });
    if let Some(a) = existing.and_then(|m| m.get("annotations")).filter(|a| a.is_object()) {
        manifest["annotations"] = a.clone();
    }
    let manifest_bytes = serde_json::to_vec(&manifest).expect("serializing a JSON value");
    Some(AppendedSignature { manifest, manifest_bytes, config, config_digest })
}

/// Annotations as a string map; `None` if absent or not all values are strings.
fn string_map(v: Option<&Value>) -> Option<BTreeMap<String, String>> {
    v?.as_object()?.iter().map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect()
}

/// What a verified payload says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedPayload {
    /// `critical.identity.docker-reference` (cosign does not check it; containers/image does).
    pub docker_reference: String,
    /// `optional` (null or an object).
    pub optional: Value,
}

/// Why one signature layer did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayerFailure {
    #[error("media type {0:?} is not {SIMPLE_SIGNING_MEDIA_TYPE}")]
    WrongMediaType(String),
    #[error("layer descriptor has no digest")]
    MissingDigest,
    #[error("layer has no {SIGNATURE_ANNOTATION} annotation")]
    MissingSignature,
    #[error("cannot fetch payload: {0}")]
    Fetch(String),
    #[error("payload digest is {actual}, layer says {expected}")]
    PayloadDigestMismatch { expected: String, actual: String },
    #[error("signature annotation is not valid base64")]
    BadBase64,
    #[error("signature does not verify with the public key")]
    SignatureInvalid,
    #[error("payload is not a cosign simple-signing payload: {0}")]
    PayloadUnparseable(String),
    #[error("payload signs {found}, not {expected}")]
    ManifestDigestMismatch { expected: String, found: String },
}

/// The outcome for one layer of a `.sig` manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerVerdict {
    /// Position in the manifest's `layers`.
    pub index: usize,
    /// The layer's digest as the manifest states it (empty if missing).
    pub digest: String,
    pub result: Result<VerifiedPayload, LayerFailure>,
}

impl LayerVerdict {
    pub fn is_ok(&self) -> bool {
        self.result.is_ok()
    }
}

/// Check every layer of a `.sig` manifest: media type, signature annotation, payload digest
/// (`fetch_payload(digest)` must return the blob; its sha256 must equal the layer digest),
/// base64, ECDSA signature with `key`, payload JSON, and that `docker-manifest-digest` equals
/// `expected_manifest_digest`. The image is validly signed when at least one verdict is Ok.
/// A manifest without `layers` yields no verdicts.
pub fn verify_signature_manifest<E: std::fmt::Display>(
    sig_manifest: &Value,
    mut fetch_payload: impl FnMut(&str) -> Result<Vec<u8>, E>,
    key: &VerifyingKey,
    expected_manifest_digest: &str,
) -> Vec<LayerVerdict> {
    let Some(layers) = sig_manifest.get("layers").and_then(Value::as_array) else {
        return Vec::new();
    };
    layers
        .iter()
        .enumerate()
        .map(|(index, layer)| {
            let digest = layer.get("digest").and_then(Value::as_str).unwrap_or_default();
            LayerVerdict {
                index,
                digest: digest.to_string(),
                result: verify_layer(layer, digest, &mut fetch_payload, key, expected_manifest_digest),
            }
        })
        .collect()
}

fn verify_layer<E: std::fmt::Display>(
    layer: &Value,
    digest: &str,
    fetch_payload: &mut impl FnMut(&str) -> Result<Vec<u8>, E>,
    key: &VerifyingKey,
    expected_manifest_digest: &str,
) -> Result<VerifiedPayload, LayerFailure> {
    let media_type = layer.get("mediaType").and_then(Value::as_str).unwrap_or_default();
    if media_type != SIMPLE_SIGNING_MEDIA_TYPE {
        return Err(LayerFailure::WrongMediaType(media_type.to_string()));
    }
    if digest.is_empty() {
        return Err(LayerFailure::MissingDigest);
    }
    let sig_b64 = layer
        .get("annotations")
        .and_then(|a| a.get(SIGNATURE_ANNOTATION))
        .and_then(Value::as_str)
        .ok_or(LayerFailure::MissingSignature)?;
    let payload = fetch_payload(digest).map_err(|e| LayerFailure::Fetch(e.to_string()))?;
    let actual = sha256_digest(&payload);
    if actual != digest {
        return Err(LayerFailure::PayloadDigestMismatch { expected: digest.to_string(), actual });
    }
    // Go's JSON decoding of []byte (and sigstore-rs) tolerate line breaks in base64.
    let cleaned: String = sig_b64.chars().filter(|c| *c != '\n' && *c != '\r').collect();
    let sig = B64.decode(cleaned.as_bytes()).map_err(|_| LayerFailure::BadBase64)?;
    key.verify(&payload, &sig).map_err(|_| LayerFailure::SignatureInvalid)?;

    let v: Value = serde_json::from_slice(&payload).map_err(|e| LayerFailure::PayloadUnparseable(e.to_string()))?;
    let critical = v.get("critical").ok_or_else(|| LayerFailure::PayloadUnparseable("no \"critical\"".into()))?;
    let found = critical
        .get("image")
        .and_then(|i| i.get("docker-manifest-digest"))
        .and_then(Value::as_str)
        .ok_or_else(|| LayerFailure::PayloadUnparseable("no critical.image.docker-manifest-digest".into()))?;
    let docker_reference = critical
        .get("identity")
        .and_then(|i| i.get("docker-reference"))
        .and_then(Value::as_str)
        .ok_or_else(|| LayerFailure::PayloadUnparseable("no critical.identity.docker-reference".into()))?;
    if found != expected_manifest_digest {
        return Err(LayerFailure::ManifestDigestMismatch {
            expected: expected_manifest_digest.to_string(),
            found: found.to_string(),
        });
    }
    Ok(VerifiedPayload {
        docker_reference: docker_reference.to_string(),
        optional: v.get("optional").cloned().unwrap_or(Value::Null),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::keys::SigningKey;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
    use std::collections::HashMap;

    const DIGEST: &str = "sha256:4a1c4b21597c1b4415bdbecb28a3296c6b5e23ca4f9feeb599860a1dac6a0108";

    fn test_key() -> SigningKey {
        // Fast: no scrypt.
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new()).unwrap();
        SigningKey::from_pkcs8_der(pkcs8.as_ref()).unwrap()
    }

    #[test]
    fn known_payload() {
        let p = payload("registry.example/ns/app", DIGEST, &BTreeMap::new());
        assert_eq!(
            std::str::from_utf8(&p).unwrap(),
            r#"{"critical":{"identity":{"docker-reference":"registry.example/ns/app"},"image":{"docker-manifest-digest":"sha256:4a1c4b21597c1b4415bdbecb28a3296c6b5e23ca4f9feeb599860a1dac6a0108"},"type":"cosign container image signature"},"optional":null}"#
        );
        let mut opt = BTreeMap::new();
        opt.insert("tool".to_string(), "harden".to_string());
        opt.insert("a&b".to_string(), "<x>\n\"q\"".to_string());
        let p = payload("localhost:5000/app", DIGEST, &opt);
        assert_eq!(
            std::str::from_utf8(&p).unwrap(),
            r#"{"critical":{"identity":{"docker-reference":"localhost:5000/app"},"image":{"docker-manifest-digest":"sha256:4a1c4b21597c1b4415bdbecb28a3296c6b5e23ca4f9feeb599860a1dac6a0108"},"type":"cosign container image signature"},"optional":{"a\u0026b":"\u003cx\u003e\n\"q\"","tool":"harden"}}"#
        );
        // Still valid JSON with the same meaning.
        let v: Value = serde_json::from_slice(&p).unwrap();
        assert_eq!(v["optional"]["a&b"], "<x>\n\"q\"");
    }

    #[test]
    fn payload_fixture_matches() {
        // testdata/payload.json is what the cross-implementation signature fixtures sign.
        let p = payload("registry.example/ns/app", DIGEST, &BTreeMap::new());
        assert_eq!(p, include_bytes!("testdata/payload.json"));
    }

    #[test]
    fn tag_and_config() {
        assert_eq!(sig_tag(DIGEST), "sha256-4a1c4b21597c1b4415bdbecb28a3296c6b5e23ca4f9feeb599860a1dac6a0108.sig");
        let c = signature_config(&["sha256:aa".into(), "sha256:bb".into()]);
        assert_eq!(
            std::str::from_utf8(&c).unwrap(),
            r#"{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{"created":"0001-01-01T00:00:00Z"},{"created":"0001-01-01T00:00:00Z"}],"os":"","rootfs":{"type":"layers","diff_ids":["sha256:aa","sha256:bb"]},"config":{}}"#
        );
        let c = signature_config(&["sha256:aa".into()]);
        assert_eq!(
            std::str::from_utf8(&c).unwrap(),
            r#"{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{"created":"0001-01-01T00:00:00Z"}],"os":"","rootfs":{"type":"layers","diff_ids":["sha256:aa"]},"config":{}}"#
        );
    }

    /// A signed `.sig` manifest and its blob store.
    fn signed(
        key: &SigningKey,
        existing: Option<&Value>,
        digest: &str,
    ) -> (AppendedSignature, HashMap<String, Vec<u8>>) {
        let p = payload("registry.example/ns/app", digest, &BTreeMap::new());
        let layer = SignatureLayer::new(&p, &key.sign(&p).unwrap());
        let out = append_signature(existing, layer).expect("new layer");
        let mut blobs = HashMap::new();
        blobs.insert(sha256_digest(&p), p);
        (out, blobs)
    }

    fn fetcher(blobs: &HashMap<String, Vec<u8>>) -> impl FnMut(&str) -> Result<Vec<u8>, String> + '_ {
        |d| blobs.get(d).cloned().ok_or_else(|| format!("blob {d} not found"))
    }

    #[test]
    fn append_builds_cosign_manifest() {
        let key = test_key();
        let (out, _) = signed(&key, None, DIGEST);
        let m = &out.manifest;
        assert_eq!(m["schemaVersion"], 2);
        assert_eq!(m["mediaType"], OCI_MANIFEST_MEDIA_TYPE);
        assert_eq!(m["config"]["mediaType"], OCI_CONFIG_MEDIA_TYPE);
        assert_eq!(m["config"]["digest"], out.config_digest.as_str());
        assert_eq!(m["config"]["size"], out.config.len());
        assert_eq!(out.config_digest, sha256_digest(&out.config));
        let layers = m["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1);
        assert_eq!(layers[0]["mediaType"], SIMPLE_SIGNING_MEDIA_TYPE);
        assert!(layers[0]["annotations"][SIGNATURE_ANNOTATION].is_string());
        let cfg: Value = serde_json::from_slice(&out.config).unwrap();
        assert_eq!(cfg["rootfs"]["diff_ids"][0], layers[0]["digest"]);
        assert_eq!(serde_json::from_slice::<Value>(&out.manifest_bytes).unwrap(), out.manifest);
    }

    #[test]
    fn append_is_idempotent_and_accumulates() {
        let key = test_key();
        let p = payload("registry.example/ns/app", DIGEST, &BTreeMap::new());
        let layer = SignatureLayer::new(&p, &key.sign(&p).unwrap());
        let first = append_signature(None, layer.clone()).unwrap();
        // Same layer again: nothing to do.
        assert!(append_signature(Some(&first.manifest), layer.clone()).is_none());
        // Round-tripped through bytes (as fetched from a registry): still a duplicate.
        let fetched: Value = serde_json::from_slice(&first.manifest_bytes).unwrap();
        assert!(append_signature(Some(&fetched), layer.clone()).is_none());

        // Same payload, new signature (ECDSA is randomized): a second layer.
        let layer2 = SignatureLayer::new(&p, &key.sign(&p).unwrap());
        let second = append_signature(Some(&first.manifest), layer2.clone()).unwrap();
        let layers = second.manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 2);
        assert_eq!(layers[0], first.manifest["layers"][0]);
        let cfg: Value = serde_json::from_slice(&second.config).unwrap();
        assert_eq!(cfg["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
        assert_eq!(cfg["history"].as_array().unwrap().len(), 2);
        assert!(append_signature(Some(&second.manifest), layer2).is_none());
        assert!(append_signature(Some(&second.manifest), layer.clone()).is_none());

        // Same digest and signature but different extra annotations: not a duplicate.
        let mut layer3 = layer;
        layer3.annotations.insert(BUNDLE_ANNOTATION.into(), "{}".into());
        assert!(append_signature(Some(&second.manifest), layer3).is_some());
    }

    #[test]
    fn verify_ok() {
        let key = test_key();
        let (out, blobs) = signed(&key, None, DIGEST);
        let v = verify_signature_manifest(&out.manifest, fetcher(&blobs), &key.public_key(), DIGEST);
        assert_eq!(v.len(), 1);
        let ok = v[0].result.as_ref().unwrap();
        assert_eq!(ok.docker_reference, "registry.example/ns/app");
        assert_eq!(ok.optional, Value::Null);
    }

    #[test]
    fn verify_other_key_fails() {
        let key = test_key();
        let (out, blobs) = signed(&key, None, DIGEST);
        let v = verify_signature_manifest(&out.manifest, fetcher(&blobs), &test_key().public_key(), DIGEST);
        assert_eq!(v[0].result, Err(LayerFailure::SignatureInvalid));
    }

    #[test]
    fn verify_other_digest_fails() {
        let key = test_key();
        let (out, blobs) = signed(&key, None, DIGEST);
        let other = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
        let v = verify_signature_manifest(&out.manifest, fetcher(&blobs), &key.public_key(), other);
        assert!(matches!(&v[0].result, Err(LayerFailure::ManifestDigestMismatch { found, .. }) if found == DIGEST));
    }

    #[test]
    fn verify_tampered_payload_fails() {
        let key = test_key();
        let (out, blobs) = signed(&key, None, DIGEST);
        let digest = out.manifest["layers"][0]["digest"].as_str().unwrap().to_string();

        // The registry serves different bytes than the layer digest: digest mismatch.
        let mut evil = blobs.clone();
        let tampered = payload("registry.example/ns/evil", DIGEST, &BTreeMap::new());
        evil.insert(digest.clone(), tampered.clone());
        let v = verify_signature_manifest(&out.manifest, fetcher(&evil), &key.public_key(), DIGEST);
        assert!(matches!(v[0].result, Err(LayerFailure::PayloadDigestMismatch { .. })));

        // Consistent digest and size, but the signature was over other bytes.
        let mut m = out.manifest.clone();
        m["layers"][0]["digest"] = sha256_digest(&tampered).into();
        m["layers"][0]["size"] = tampered.len().into();
        let mut store = HashMap::new();
        store.insert(sha256_digest(&tampered), tampered);
        let v = verify_signature_manifest(&m, fetcher(&store), &key.public_key(), DIGEST);
        assert_eq!(v[0].result, Err(LayerFailure::SignatureInvalid));

        // Blob missing.
        let v = verify_signature_manifest(&out.manifest, fetcher(&HashMap::new()), &key.public_key(), DIGEST);
        assert!(matches!(v[0].result, Err(LayerFailure::Fetch(_))));
    }

    #[test]
    fn verify_corrupted_annotation_fails() {
        let key = test_key();
        let (out, blobs) = signed(&key, None, DIGEST);
        let sig = out.manifest["layers"][0]["annotations"][SIGNATURE_ANNOTATION].as_str().unwrap().to_string();

        let mut m = out.manifest.clone();
        m["layers"][0]["annotations"][SIGNATURE_ANNOTATION] = format!("{}!", &sig[1..]).into();
        let v = verify_signature_manifest(&m, fetcher(&blobs), &key.public_key(), DIGEST);
        assert_eq!(v[0].result, Err(LayerFailure::BadBase64));

        // Valid base64, wrong signature bytes.
        let mut bytes = B64.decode(&sig).unwrap();
        let n = bytes.len();
        bytes[n - 3] ^= 0x40;
        m["layers"][0]["annotations"][SIGNATURE_ANNOTATION] = B64.encode(bytes).into();
        let v = verify_signature_manifest(&m, fetcher(&blobs), &key.public_key(), DIGEST);
        assert_eq!(v[0].result, Err(LayerFailure::SignatureInvalid));

        // Missing annotation.
        m["layers"][0]["annotations"] = json!({});
        let v = verify_signature_manifest(&m, fetcher(&blobs), &key.public_key(), DIGEST);
        assert_eq!(v[0].result, Err(LayerFailure::MissingSignature));

        // Wrapped base64 (as some tools write) is accepted.
        let wrapped = format!("{}\n{}", &sig[..40], &sig[40..]);
        m["layers"][0]["annotations"] = json!({ SIGNATURE_ANNOTATION: wrapped });
        let v = verify_signature_manifest(&m, fetcher(&blobs), &key.public_key(), DIGEST);
        assert!(v[0].is_ok(), "{:?}", v[0]);
    }

    #[test]
    fn verify_wrong_media_type_and_unparseable_payload() {
        let key = test_key();
        let (out, blobs) = signed(&key, None, DIGEST);
        let mut m = out.manifest.clone();
        m["layers"][0]["mediaType"] = "application/vnd.oci.image.layer.v1.tar".into();
        let v = verify_signature_manifest(&m, fetcher(&blobs), &key.public_key(), DIGEST);
        assert!(matches!(v[0].result, Err(LayerFailure::WrongMediaType(_))));

        // A properly signed blob that is not a cosign payload.
        let junk = b"not json".to_vec();
        let layer = SignatureLayer::new(&junk, &key.sign(&junk).unwrap());
        let two = append_signature(Some(&out.manifest), layer).unwrap();
        let mut store = blobs.clone();
        store.insert(sha256_digest(&junk), junk);
        let v = verify_signature_manifest(&two.manifest, fetcher(&store), &key.public_key(), DIGEST);
        assert_eq!(v.len(), 2);
        assert!(v[0].is_ok());
        assert!(matches!(v[1].result, Err(LayerFailure::PayloadUnparseable(_))));
        assert_eq!(v[1].index, 1);

        assert!(verify_signature_manifest(&json!({}), fetcher(&store), &key.public_key(), DIGEST).is_empty());
    }

    #[test]
    fn failure_messages_are_one_line() {
        let msgs = [
            LayerFailure::WrongMediaType("x".into()).to_string(),
            LayerFailure::PayloadDigestMismatch { expected: "a".into(), actual: "b".into() }.to_string(),
            LayerFailure::ManifestDigestMismatch { expected: "a".into(), found: "b".into() }.to_string(),
            crate::sign::SignError::WrongPassword.to_string(),
        ];
        for m in msgs {
            assert!(!m.contains('\n'), "{m}");
        }
    }
}
