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
/// (`subject_media_type`, `subject_digest`, `subject_size`), field for field as cosign's
/// `WriteReferrer` (pkg/oci/remote/write.go) marshals it: go-containerregistry's `v1.Manifest`
/// (`schemaVersion`, `mediaType`, `config`, `layers`, `annotations`, `subject`; descriptors as
/// `mediaType`, `size`, `digest`, then `artifactType`) followed by `artifactType`. The config
/// descriptor carries the artifact type too (`cosign clean --type referrer` selects by it);
/// annotations are `dev.sigstore.bundle.content`, `dev.sigstore.bundle.predicateType` and
/// `org.opencontainers.image.created`, in Go's sorted map order. `created` is recorded only
/// when given (`SOURCE_DATE_EPOCH`; cosign uses the wall clock), so the same bundle gives the
/// same manifest.
pub fn referrer_manifest(
    bundle_bytes: &[u8],
    predicate_type: &str,
    subject: Described<'_>,
    created: Option<&str>,
) -> Vec<u8> {
    let Described { media_type: subject_media_type, digest: subject_digest, size: subject_size } = subject;
    let mut annotations = Map::new();
    annotations.insert(CONTENT_ANNOTATION.into(), json!("dsse-envelope"));
    annotations.insert(PREDICATE_ANNOTATION.into(), json!(predicate_type));
    if let Some(c) = created {
        annotations.insert(CREATED_ANNOTATION.into(), json!(c));
    }
    let v = json!({
        "schemaVersion": 2,
        "mediaType": image::OCI_MANIFEST,
        "config": {
            "mediaType": EMPTY_MEDIA_TYPE,
            "size": EMPTY_BLOB.len(),
            "digest": sha256_digest(EMPTY_BLOB),
            "artifactType": BUNDLE_MEDIA_TYPE,
        },
        "layers": [{ "mediaType": BUNDLE_MEDIA_TYPE, "size": bundle_bytes.len(), "digest": sha256_digest(bundle_bytes) }],
        "annotations": annotations,
        "subject": { "mediaType": subject_media_type, "size": subject_size, "digest": subject_digest },
        "artifactType": BUNDLE_MEDIA_TYPE,
    });
    serde_json::to_vec(&v).expect("serializing a JSON value")
}

/// The manifest a referrer describes, as its `subject` descriptor names it.
#[derive(Clone, Copy, Debug)]
pub struct Described<'a> {
    pub media_type: &'a str,
    pub digest: &'a str,
    pub size: u64,
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

/// Fields protojson accepts by their proto name as well as their JSON name, at the levels
/// harden reads.
const PROTO_NAMES: [(&str, &str); 9] = [
    ("media_type", "mediaType"),
    ("verification_material", "verificationMaterial"),
    ("dsse_envelope", "dsseEnvelope"),
    ("message_signature", "messageSignature"),
    ("public_key", "publicKey"),
    ("x509_certificate_chain", "x509CertificateChain"),
    ("tlog_entries", "tlogEntries"),
    ("timestamp_verification_data", "timestampVerificationData"),
    ("payload_type", "payloadType"),
];

/// `v` (an object) with proto names renamed to JSON names; an error naming any key not in
/// `known` (protojson refuses unknown fields) or given twice under both names.
fn known_fields(v: &Value, what: &str, known: &[&str]) -> Result<Map<String, Value>, String> {
    let obj = v.as_object().ok_or_else(|| format!("{what} is not a JSON object"))?;
    let mut out = Map::new();
    for (k, val) in obj {
        let name = PROTO_NAMES.iter().find(|(p, _)| p == k).map_or(k.as_str(), |(_, j)| j);
        if !known.contains(&name) {
            return Err(format!("{what} has an unknown field `{k}` (cosign's protojson refuses it)"));
        }
        if out.insert(name.to_string(), val.clone()).is_some() {
            return Err(format!("{what} gives `{name}` twice"));
        }
    }
    Ok(out)
}

/// The bundle's version from its media type: `application/vnd.dev.sigstore.bundle.vX.Y+json`
/// (v0.3 on) or `application/vnd.dev.sigstore.bundle+json;version=X.Y` (before), as
/// sigstore-go parses it.
fn bundle_version(media_type: &str) -> Option<(u32, u32)> {
    let v = media_type
        .strip_prefix("application/vnd.dev.sigstore.bundle.v")
        .and_then(|r| r.strip_suffix("+json"))
        .or_else(|| media_type.strip_prefix("application/vnd.dev.sigstore.bundle+json;version="))?;
    let mut parts = v.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    match parts.next() {
        None => Some((major, minor)),
        Some(p) if p.parse::<u32>().is_ok() && parts.next().is_none() => Some((major, minor)),
        Some(_) => None,
    }
}

/// The bundle as cosign v3 accepts it, with JSON field names, or why not: no field protojson
/// would refuse (at the bundle, verification material, public key, envelope and signature
/// levels); a media type of version v0.3 or later (`MinVersion("v0.3")`); exactly one key
/// material (`publicKey`, `x509CertificateChain` or `certificate`: a protobuf oneof); exactly
/// one content, a DSSE envelope (a message signature is not what harden verifies); an
/// in-toto payload and exactly one signature (sigstore-go verifies one).
pub fn bundle_shape(b: &Value) -> Result<Value, String> {
    let top =
        known_fields(b, "the bundle", &["mediaType", "verificationMaterial", "dsseEnvelope", "messageSignature"])?;
    let mt = top.get("mediaType").and_then(Value::as_str).unwrap_or("");
    match bundle_version(mt) {
        Some(v) if v >= (0, 3) => {}
        Some((a, b)) => return Err(format!("the bundle is version {a}.{b}; cosign reads v0.3 or later")),
        None => return Err(format!("the bundle's media type {mt:?} is not a sigstore bundle's")),
    }
    let vm = known_fields(
        top.get("verificationMaterial").ok_or("the bundle has no verificationMaterial")?,
        "verificationMaterial",
        &["publicKey", "x509CertificateChain", "certificate", "tlogEntries", "timestampVerificationData"],
    )?;
    let materials =
        ["publicKey", "x509CertificateChain", "certificate"].iter().filter(|k| vm.contains_key(**k)).count();
    if materials != 1 {
        return Err(format!("verificationMaterial has {materials} key materials; a bundle has exactly one"));
    }
    if let Some(pk) = vm.get("publicKey") {
        known_fields(pk, "verificationMaterial.publicKey", &["hint"])?;
    }
    let env = match (top.get("dsseEnvelope"), top.get("messageSignature")) {
        (Some(e), None) => e,
        (None, Some(_)) => return Err("the bundle holds a message signature, not a DSSE envelope".into()),
        (Some(_), Some(_)) => return Err("the bundle holds both a DSSE envelope and a message signature".into()),
        (None, None) => return Err("the bundle holds no DSSE envelope".into()),
    };
    let mut env = known_fields(env, "the DSSE envelope", &["payload", "payloadType", "signatures"])?;
    let sigs = env.get("signatures").and_then(Value::as_array).ok_or("the DSSE envelope has no signatures")?;
    if sigs.len() != 1 {
        return Err(format!("the DSSE envelope has {} signatures; a bundle's has exactly one", sigs.len()));
    }
    let sig = known_fields(&sigs[0], "the DSSE signature", &["sig", "keyid"])?;
    env.insert("signatures".into(), Value::Array(vec![Value::Object(sig)]));
    let mut out = top;
    out.insert("dsseEnvelope".into(), Value::Object(env));
    out.insert("verificationMaterial".into(), Value::Object(vm));
    Ok(Value::Object(out))
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
    // cosign's ociremote.Bundle: exactly one layer, a sigstore bundle's.
    let layers = manifest["layers"]
        .as_array()
        .ok_or_else(|| Rejected::ReferrerShape("the referrer has no layers list".into()))?;
    if layers.len() != 1 {
        return Err(Rejected::ReferrerShape(format!(
            "the referrer has {} layers; a bundle referrer has exactly one",
            layers.len()
        )));
    }
    let layer = &layers[0];
    if !layer["mediaType"].as_str().unwrap_or_default().starts_with("application/vnd.dev.sigstore.bundle") {
        return Err(Rejected::ReferrerShape(format!(
            "the referrer's layer has media type {}, not a sigstore bundle's",
            layer["mediaType"]
        )));
    }
    let digest = layer["digest"].as_str().ok_or(Rejected::NoBundleDigest)?;
    let blob = fetch(digest).map_err(|e| Rejected::Fetch { what: "bundle", why: e.to_string() })?;
    if sha256_digest(&blob) != digest {
        return Err(Rejected::BundleContent(digest.to_string()));
    }
    verify_bundle(&blob, key, expected_digest)
}

/// Check bundle bytes as strictly as cosign reads them (protojson into the protobuf-specs
/// `Bundle`, then sigstore-go's `NewBundle` and `MinVersion("v0.3")`): see [`bundle_shape`];
/// then a DSSE envelope verifying with `key` over a statement whose subject is
/// `expected_digest`.
pub fn verify_bundle(bytes: &[u8], key: &VerifyingKey, expected_digest: &str) -> Result<VerifiedStatement, Rejected> {
    let raw: Value = serde_json::from_slice(bytes).map_err(|e| Rejected::BundleJson(e.to_string()))?;
    let b = bundle_shape(&raw).map_err(Rejected::BundleShape)?;
    let env = &b["dsseEnvelope"];
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
        let m = referrer_manifest(
            &b,
            COSIGN_SIGN_PREDICATE,
            Described { media_type: image::OCI_MANIFEST, digest: D, size: 1234 },
            None,
        );
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
        nohint["verificationMaterial"] = json!({"publicKey": {}});
        let e = verify_bundle(&serde_json::to_vec(&nohint).unwrap(), &test_key().public_key(), D).unwrap_err();
        assert_eq!(e, Rejected::Dsse(dsse::DsseFailure::SignatureInvalid));
        // A blob that is not what the layer says.
        let e = verify_referrer(&mv, |_: &str| Ok::<_, String>(b"{}".to_vec()), &k.public_key(), D).unwrap_err();
        assert!(matches!(e, Rejected::BundleContent(_)), "{e}");
        assert!(verify_bundle(b"[]", &k.public_key(), D).is_err());
    }

    #[test]
    fn bundles_are_read_as_strictly_as_cosign() {
        let k = test_key();
        let b = bundle(&sign_statement(D, &BTreeMap::new()), &k).unwrap();
        let v: Value = serde_json::from_slice(&b).unwrap();
        let check = |v: &Value| verify_bundle(&serde_json::to_vec(v).unwrap(), &k.public_key(), D).map(|_| ());
        check(&v).unwrap();
        let with = |f: &dyn Fn(&mut Value)| {
            let mut x = v.clone();
            f(&mut x);
            check(&x)
        };
        // protojson reads proto names too; a later version is read.
        with(&|x| {
            let e = x.as_object_mut().unwrap().shift_remove("dsseEnvelope").unwrap();
            x["dsse_envelope"] = e;
        })
        .unwrap();
        with(&|x| x["mediaType"] = json!("application/vnd.dev.sigstore.bundle.v0.4+json")).unwrap();
        let err = |f: &dyn Fn(&mut Value), want: &str| {
            let e = with(f).unwrap_err();
            assert!(matches!(e, Rejected::BundleShape(_)) && e.to_string().contains(want), "{e} (wanted {want})");
        };
        err(&|x| x["mediaType"] = json!("application/vnd.dev.sigstore.bundle+json;version=0.2"), "v0.3 or later");
        err(&|x| x["mediaType"] = json!("application/json"), "not a sigstore bundle");
        err(&|x| x["extra"] = json!(1), "unknown field `extra`");
        err(&|x| x["dsseEnvelope"]["foo"] = json!("x"), "unknown field `foo`");
        err(&|x| x["verificationMaterial"]["publicKey"]["raw"] = json!("x"), "unknown field `raw`");
        err(&|x| x["dsseEnvelope"]["signatures"][0]["extra"] = json!("x"), "unknown field `extra`");
        err(
            &|x| {
                let s = x["dsseEnvelope"]["signatures"][0].clone();
                x["dsseEnvelope"]["signatures"].as_array_mut().unwrap().push(s);
            },
            "2 signatures",
        );
        err(&|x| x["dsseEnvelope"]["signatures"] = json!([]), "0 signatures");
        err(&|x| x["verificationMaterial"] = json!({}), "0 key materials");
        err(&|x| x["verificationMaterial"]["certificate"] = json!({"rawBytes": ""}), "2 key materials");
        err(
            &|x| {
                x.as_object_mut().unwrap().shift_remove("dsseEnvelope");
                x["messageSignature"] = json!({});
            },
            "message signature",
        );
        err(&|x| x["dsse_envelope"] = x["dsseEnvelope"].clone(), "twice");
        // A referrer holds exactly one layer, a bundle.
        let m: Value = serde_json::from_slice(&referrer_manifest(
            &b,
            COSIGN_SIGN_PREDICATE,
            Described { media_type: image::OCI_MANIFEST, digest: D, size: 1 },
            None,
        ))
        .unwrap();
        let fetch = |_: &str| Ok::<_, String>(b.clone());
        verify_referrer(&m, fetch, &k.public_key(), D).unwrap();
        let mut two = m.clone();
        let l = two["layers"][0].clone();
        two["layers"].as_array_mut().unwrap().push(l);
        assert!(verify_referrer(&two, fetch, &k.public_key(), D).unwrap_err().to_string().contains("2 layers"));
        let mut other = m.clone();
        other["layers"][0]["mediaType"] = json!("application/json");
        assert!(verify_referrer(&other, fetch, &k.public_key(), D)
            .unwrap_err()
            .to_string()
            .contains("not a sigstore bundle"));
    }

    #[test]
    fn referrer_manifest_is_cosigns_write_referrer_field_by_field() {
        // go-containerregistry's v1.Manifest and v1.Descriptor as encoding/json writes them,
        // with cosign's referrerManifest's trailing artifactType (pkg/oci/remote/write.go).
        let b = br#"{"x":1}"#;
        let m = referrer_manifest(
            b,
            "https://slsa.dev/provenance/v1",
            Described { media_type: image::OCI_MANIFEST, digest: D, size: 1234 },
            Some("2026-01-01T00:00:00Z"),
        );
        let want = format!(
            concat!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","#,
                r#""config":{{"mediaType":"application/vnd.oci.empty.v1+json","size":2,"#,
                r#""digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","#,
                r#""artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json"}},"#,
                r#""layers":[{{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","size":7,"digest":"{}"}}],"#,
                r#""annotations":{{"dev.sigstore.bundle.content":"dsse-envelope","#,
                r#""dev.sigstore.bundle.predicateType":"https://slsa.dev/provenance/v1","#,
                r#""org.opencontainers.image.created":"2026-01-01T00:00:00Z"}},"#,
                r#""subject":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1234,"digest":"{}"}},"#,
                r#""artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json"}}"#
            ),
            sha256_digest(b),
            D
        );
        assert_eq!(String::from_utf8(m).unwrap(), want);
    }

    #[test]
    fn referrers_index_updates() {
        let k = test_key();
        let b1 = bundle(&sign_statement(D, &BTreeMap::new()), &k).unwrap();
        let b2 = bundle(&sign_statement(D, &BTreeMap::new()), &k).unwrap();
        let m1 = referrer_manifest(
            &b1,
            COSIGN_SIGN_PREDICATE,
            Described { media_type: image::OCI_MANIFEST, digest: D, size: 1 },
            None,
        );
        let m2 = referrer_manifest(
            &b2,
            COSIGN_SIGN_PREDICATE,
            Described { media_type: image::OCI_MANIFEST, digest: D, size: 1 },
            Some("1970-01-01T00:00:00Z"),
        );
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
