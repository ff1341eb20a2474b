//! Signatures stored where cosign stores them: an OCI manifest at the tag `sha256-<hex>.sig`
//! beside the image (in the image's registry repository, or in an OCI layout's `index.json`),
//! one simple-signing layer per signature.
//!
//! Owns: resolving IMAGE to the manifest digest(s) to sign (a tag to its digest; for an index
//! every entry the [`walk`] finds, then the index itself), reading the existing `.sig` manifest,
//! pushing a new one through the [`push`] protocol. Checking them is [`super::check`]'s.
//!
//! Must not: know about image layers (a signature is over a manifest digest only), do
//! cryptography or format work (that is [`super::simple`] and [`super::keys`], pure), or read
//! key files and passwords ([`super::keyfile`] and the CLI do).
//!
//! [`walk`]: crate::source::walk
//! [`push`]: crate::transport::push

use crate::digest::Digest;
use crate::progress::Progress;
use crate::reference::ImageRef;
use crate::sign::{self, SignatureLayer, Signer};
use crate::source::walk;
use crate::transport::push::{Blob, Push};
use crate::transport::{Endpoint, Manifest};
use anyhow::{anyhow, Context, Result};
use serde_json::Value;
use std::collections::BTreeMap;

/// One manifest digest signed (or found already signed with this key).
#[derive(Debug, Clone)]
pub struct Signed {
    /// The image manifest (or index) digest the payload names.
    pub image_digest: Digest,
    /// The `.sig` tag holding the signature: `sha256-<hex>.sig`.
    pub tag: String,
    /// Digest of the `.sig` manifest as it now stands.
    pub manifest_digest: Digest,
    /// Digest of the simple-signing payload (the signature layer's blob).
    pub payload_digest: Digest,
    /// False when an equivalent signature was already there and nothing was pushed.
    pub added: bool,
}

/// The `.sig` reference for `digest` beside `r`: same repository (or layout), tag `sha256-<hex>.sig`.
pub fn sig_ref(r: &ImageRef, digest: &Digest) -> ImageRef {
    beside(r, sign::sig_tag(digest.as_str()))
}

/// The tag `tag` beside `r`: same repository (or layout), no digest. Where cosign keeps what
/// describes an image (`.sig`, `.att`, the referrers tag).
pub fn beside(r: &ImageRef, tag: String) -> ImageRef {
    r.with_tag(&tag)
}

/// Sign the image `r` names: its manifest, or for an index (OCI index / Docker manifest list)
/// every platform manifest and then the index. The result lists the digest `r` resolves to
/// first, then the manifests it lists.
pub async fn sign(
    ep: &Endpoint,
    r: &ImageRef,
    signer: Signer<'_>,
    annotations: &BTreeMap<String, String>,
) -> Result<Vec<Signed>> {
    let w = walk::walk(ep, r).await?;
    let mut out = Vec::with_capacity(w.entries.len() + 1);
    // Platform manifests first, the index last: a signed index means all of it was signed.
    for d in w.digests().into_iter().filter(|d| **d != w.top.digest) {
        out.push(sign_digest(ep, r, d, signer, annotations).await?);
    }
    out.insert(0, sign_digest(ep, r, &w.top.digest, signer, annotations).await?);
    Ok(out)
}

/// Add a signature of `digest` (a manifest in `r`'s repository or layout) to its `.sig`
/// manifest: payload blob and config blob first, then the `.sig` manifest by tag.
pub async fn sign_digest(
    ep: &Endpoint,
    r: &ImageRef,
    digest: &Digest,
    signer: Signer<'_>,
    annotations: &BTreeMap<String, String>,
) -> Result<Signed> {
    let Signer { key, progress, .. } = signer;
    let payload = sign::payload(&r.repository_name(), digest.as_str(), annotations);
    let payload_digest = Digest::of(&payload);
    let target = sig_ref(r, digest);
    let tag = sign::sig_tag(digest.as_str());
    let (existing, existing_json) = read_existing(ep, &target, "signature").await?;

    // ECDSA signatures are randomized: signing the same payload again gives a different
    // signature, so "the same signature" cannot mean "the same bytes". A layer counts as
    // already present when it carries this exact payload (same digest, hence same image digest,
    // reference and annotations) and its signature verifies with this key's public key. Signing
    // twice with one key is then idempotent, while another key still adds its own layer.
    if let (Some(m), Some(json)) = (&existing, &existing_json) {
        let verdicts = sign::verify_signature_manifest(
            json,
            |d| {
                if d == payload_digest.as_str() {
                    Ok(payload.clone())
                } else {
                    Err("another payload")
                }
            },
            &key.public_key(),
            digest.as_str(),
        );
        if verdicts.iter().any(|v| v.is_ok() && v.digest == payload_digest.as_str()) {
            if !ep.has_blob(&payload_digest).await? {
                ep.put_blob_bytes(&payload_digest, &payload).await?;
            }
            progress.line(&format!("{} is already signed with this key ({tag})", r.by_digest(digest)));
            return Ok(Signed {
                image_digest: digest.clone(),
                tag,
                manifest_digest: m.digest.clone(),
                payload_digest,
                added: false,
            });
        }
    }

    let signature = key.sign(&payload).map_err(|e| anyhow!("signing {}: {e}", r.by_digest(digest)))?;
    let Some(appended) = sign::append_signature(existing_json.as_ref(), SignatureLayer::new(&payload, &signature))
    else {
        // Only reachable if the store already holds this very signature (same random nonce).
        let m = existing.ok_or_else(|| anyhow!("{target}: signature reported present in a missing manifest"))?;
        return Ok(Signed {
            image_digest: digest.clone(),
            tag,
            manifest_digest: m.digest,
            payload_digest,
            added: false,
        });
    };
    let layers = appended.manifest["layers"].as_array().map_or(0, Vec::len);
    let layer = Blob::bytes(payload_digest.clone(), payload);
    let manifest = push_appended(ep, &target, Appended { layer, signature: appended }, "signature", progress).await?;
    progress.line(&format!(
        "signed {} ({tag}, {layers} signature{})",
        r.by_digest(digest),
        if layers == 1 { "" } else { "s" }
    ));
    Ok(Signed { image_digest: digest.clone(), tag, manifest_digest: manifest.digest, payload_digest, added: true })
}

/// The cosign manifest (`.sig`, `.att`) at `target` and its JSON; `(None, None)` when the tag
/// does not exist. One that is not JSON is an error: it is never replaced.
pub async fn read_existing(ep: &Endpoint, target: &ImageRef, what: &str) -> Result<(Option<Manifest>, Option<Value>)> {
    let existing = ep.manifest_opt(target).await.with_context(|| format!("{target}: reading the {what} manifest"))?;
    let json = match &existing {
        Some(m) => Some(serde_json::from_slice(&m.bytes).map_err(|e| {
            anyhow!("{target}: the existing {what} manifest is not valid JSON ({e}); not replacing it")
        })?),
        None => None,
    };
    Ok((existing, json))
}

/// A cosign manifest with one layer appended, and that layer's blob.
pub struct Appended {
    pub layer: Blob,
    pub signature: sign::simple::AppendedSignature,
}

/// Push a cosign manifest with one layer appended: the new layer's blob and the regenerated
/// config first, then the manifest under `target`'s tag.
pub async fn push_appended(
    ep: &Endpoint,
    target: &ImageRef,
    appended: Appended,
    what: &str,
    progress: &Progress,
) -> Result<Manifest> {
    let Appended { layer, signature: appended } = appended;
    let config_digest = Digest::parse(&appended.config_digest).map_err(|e| anyhow!("{what} config: {e}"))?;
    let manifest = Manifest {
        digest: Digest::of(&appended.manifest_bytes),
        bytes: appended.manifest_bytes,
        media_type: sign::OCI_MANIFEST_MEDIA_TYPE.to_string(),
    };
    let blobs = [layer, Blob::bytes(config_digest, appended.config)];
    Push { dst: ep, mount_from: None, locations: None, jobs: 1, progress }
        .push(&blobs, target, &manifest, &format!("{what} manifest"))
        .await?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image;
    use crate::sign::check::{verify, Verified};
    use crate::sign::SigningKey;
    use crate::transport::NetOptions;
    use crate::Failure;
    use serde_json::json;
    use std::path::{Path, PathBuf};

    const SIG: &str = sign::simple::SIGNATURE_ANNOTATION;

    fn block<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
    }

    /// A layout holding one small image manifest tagged `tag`; returns its digest.
    fn put_image(ep: &Endpoint, dir: &Path, tag: &str, salt: &str) -> Digest {
        block(async {
            let config = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}, "config": {"Labels": {"salt": salt}}})).unwrap();
            let cd = Digest::of(&config);
            ep.put_blob_bytes(&cd, &config).await.unwrap();
            let m = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": image::OCI_MANIFEST, "config": {"mediaType": image::OCI_CONFIG, "digest": cd.as_str(), "size": config.len()}, "layers": []})).unwrap();
            let man = Manifest { digest: Digest::of(&m), bytes: m, media_type: image::OCI_MANIFEST.into() };
            ep.put_manifest(&layout_ref(dir, Some(tag)), &man).await.unwrap();
            man.digest
        })
    }

    fn layout_ref(dir: &Path, tag: Option<&str>) -> ImageRef {
        ImageRef::Layout { dir: dir.to_path_buf(), tag: tag.map(str::to_string), digest: None }
    }

    fn key() -> SigningKey {
        let (pem, _) = sign::generate(b"pw").unwrap();
        SigningKey::from_encrypted_pem(&pem, b"pw").unwrap()
    }

    struct Setup {
        _tmp: tempfile::TempDir,
        dir: PathBuf,
        ep: Endpoint,
        r: ImageRef,
        digest: Digest,
    }

    fn setup() -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("lay");
        let r = layout_ref(&dir, Some("v1"));
        let ep = Endpoint::open(&r, &NetOptions::default()).unwrap();
        let digest = put_image(&ep, &dir, "v1", "a");
        Setup { _tmp: tmp, dir, ep, r, digest }
    }

    fn sig_manifest(s: &Setup, d: &Digest) -> Value {
        let m = block(s.ep.manifest(&sig_ref(&s.r, d))).unwrap();
        serde_json::from_slice(&m.bytes).unwrap()
    }

    fn write_sig_manifest(s: &Setup, d: &Digest, v: &Value) {
        let bytes = serde_json::to_vec(v).unwrap();
        let m = Manifest { digest: Digest::of(&bytes), bytes, media_type: sign::OCI_MANIFEST_MEDIA_TYPE.into() };
        block(s.ep.put_manifest(&sig_ref(&s.r, d), &m)).unwrap();
    }

    /// The error must be a policy failure (exit 3) whose message contains `needle`.
    fn expect_policy(r: Result<Verified>, needle: &str) {
        let e = r.expect_err("verification should fail");
        assert!(matches!(e.downcast_ref::<Failure>(), Some(Failure::Policy(_))), "not a policy failure: {e:#}");
        assert!(e.to_string().contains(needle), "{e:#} lacks {needle:?}");
    }

    #[test]
    fn sign_then_verify_round_trip() {
        let s = setup();
        let k = key();
        let ann = BTreeMap::from([("team".to_string(), "infra".to_string())]);
        let signed = block(sign(&s.ep, &s.r, Signer::quiet(&k), &ann)).unwrap();
        assert_eq!(signed.len(), 1);
        assert_eq!(signed[0].image_digest, s.digest);
        assert!(signed[0].added);
        assert_eq!(signed[0].tag, format!("sha256-{}.sig", s.digest.hex()));
        let v = block(verify(&s.ep, &s.r, &k.public_key())).unwrap();
        assert_eq!(v.image_digest, s.digest);
        assert_eq!(v.lines[0].result, Ok(0));
        assert!(v.lines[0].what.starts_with(&v.tag), "{}", v.lines[0]);
        // The .sig manifest is cosign's shape, in index.json under the .sig tag, blobs present.
        let m = sig_manifest(&s, &s.digest);
        assert_eq!(m["mediaType"], sign::OCI_MANIFEST_MEDIA_TYPE);
        assert_eq!(m["layers"][0]["mediaType"], sign::simple::SIMPLE_SIGNING_MEDIA_TYPE);
        assert!(m["layers"][0]["annotations"][SIG].is_string());
        assert_eq!(m["layers"][0]["digest"], signed[0].payload_digest.as_str());
        assert!(s.dir.join("blobs/sha256").join(signed[0].payload_digest.hex()).is_file());
        assert!(s
            .dir
            .join("blobs/sha256")
            .join(Digest::parse(m["config"]["digest"].as_str().unwrap()).unwrap().hex())
            .is_file());
        assert_eq!(
            Digest::of(&block(s.ep.manifest(&sig_ref(&s.r, &s.digest))).unwrap().bytes),
            signed[0].manifest_digest
        );
        // The image tag still resolves to the image.
        assert_eq!(block(s.ep.manifest(&s.r)).unwrap().digest, s.digest);
    }

    #[test]
    fn signing_twice_with_one_key_adds_one_layer() {
        let s = setup();
        let (k1, k2) = (key(), key());
        let none = BTreeMap::new();
        let first = block(sign_digest(&s.ep, &s.r, &s.digest, Signer::quiet(&k1), &none)).unwrap();
        let again = block(sign_digest(&s.ep, &s.r, &s.digest, Signer::quiet(&k1), &none)).unwrap();
        assert!(first.added && !again.added);
        assert_eq!(first.manifest_digest, again.manifest_digest);
        assert_eq!(sig_manifest(&s, &s.digest)["layers"].as_array().unwrap().len(), 1);
        // Another key adds its own layer; both verify.
        let other = block(sign_digest(&s.ep, &s.r, &s.digest, Signer::quiet(&k2), &none)).unwrap();
        assert!(other.added);
        assert_eq!(sig_manifest(&s, &s.digest)["layers"].as_array().unwrap().len(), 2);
        block(verify(&s.ep, &s.r, &k1.public_key())).unwrap();
        block(verify(&s.ep, &s.r, &k2.public_key())).unwrap();
        // Other annotations are another payload: another layer.
        let ann = BTreeMap::from([("a".to_string(), "b".to_string())]);
        assert!(block(sign_digest(&s.ep, &s.r, &s.digest, Signer::quiet(&k1), &ann)).unwrap().added);
        assert_eq!(sig_manifest(&s, &s.digest)["layers"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn unsigned_image_fails_with_policy() {
        let s = setup();
        expect_policy(block(verify(&s.ep, &s.r, &key().public_key())), "no signatures");
    }

    #[test]
    fn other_key_fails() {
        let s = setup();
        block(sign(&s.ep, &s.r, Signer::quiet(&key()), &BTreeMap::new())).unwrap();
        expect_policy(block(verify(&s.ep, &s.r, &key().public_key())), "signature does not verify with the public key");
    }

    #[test]
    fn tampered_payload_blob_fails() {
        let s = setup();
        let k = key();
        let signed = block(sign(&s.ep, &s.r, Signer::quiet(&k), &BTreeMap::new())).unwrap();
        let p = s.dir.join("blobs/sha256").join(signed[0].payload_digest.hex());
        let text = std::fs::read_to_string(&p).unwrap().replace("oci:", "oci:x");
        std::fs::write(&p, text).unwrap();
        expect_policy(block(verify(&s.ep, &s.r, &k.public_key())), "corrupt or tampered");
    }

    #[test]
    fn changed_payload_with_matching_digest_fails() {
        // A changed payload stored under its own (correct) digest, with the layer pointing at it.
        let s = setup();
        let k = key();
        block(sign(&s.ep, &s.r, Signer::quiet(&k), &BTreeMap::new())).unwrap();
        let evil = sign::payload("oci:elsewhere", s.digest.as_str(), &BTreeMap::new());
        let ed = Digest::of(&evil);
        block(s.ep.put_blob_bytes(&ed, &evil)).unwrap();
        let mut m = sig_manifest(&s, &s.digest);
        m["layers"][0]["digest"] = json!(ed.as_str());
        m["layers"][0]["size"] = json!(evil.len());
        write_sig_manifest(&s, &s.digest, &m);
        expect_policy(block(verify(&s.ep, &s.r, &k.public_key())), "signature does not verify");
    }

    #[test]
    fn signature_for_another_digest_fails() {
        let s = setup();
        let k = key();
        let other = put_image(&s.ep, &s.dir, "v2", "b");
        block(sign(&s.ep, &s.r, Signer::quiet(&k), &BTreeMap::new())).unwrap();
        // Copy v1's signatures to v2's .sig tag: valid signatures, but over v1's digest.
        write_sig_manifest(&s, &other, &sig_manifest(&s, &s.digest));
        let r2 = layout_ref(&s.dir, Some("v2"));
        let e = block(verify(&s.ep, &r2, &k.public_key()));
        expect_policy(e, &format!("payload signs {}, not {other}", s.digest));
    }

    #[test]
    fn corrupted_signature_annotation_fails() {
        let s = setup();
        let k = key();
        block(sign(&s.ep, &s.r, Signer::quiet(&k), &BTreeMap::new())).unwrap();
        let mut m = sig_manifest(&s, &s.digest);
        let sig = m["layers"][0]["annotations"][SIG].as_str().unwrap().to_string();
        // Flip one base64 character in the middle: still base64, no longer the signature.
        let mut chars: Vec<char> = sig.chars().collect();
        let i = chars.len() / 2;
        chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
        m["layers"][0]["annotations"][SIG] = json!(chars.into_iter().collect::<String>());
        write_sig_manifest(&s, &s.digest, &m);
        expect_policy(block(verify(&s.ep, &s.r, &k.public_key())), "#0 sha256:");
        // Not base64 at all.
        m["layers"][0]["annotations"][SIG] = json!("%%%");
        write_sig_manifest(&s, &s.digest, &m);
        expect_policy(block(verify(&s.ep, &s.r, &k.public_key())), "not valid base64");
    }

    #[test]
    fn index_signs_every_platform_and_the_index() {
        let s = setup();
        let k = key();
        let d2 = put_image(&s.ep, &s.dir, "arm", "arm");
        let idx = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": image::OCI_INDEX, "manifests": [
            {"mediaType": image::OCI_MANIFEST, "digest": s.digest.as_str(), "size": 1, "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": image::OCI_MANIFEST, "digest": d2.as_str(), "size": 1, "platform": {"os": "linux", "architecture": "arm64"}}]}))
        .unwrap();
        let im = Manifest { digest: Digest::of(&idx), bytes: idx, media_type: image::OCI_INDEX.into() };
        let ir = layout_ref(&s.dir, Some("multi"));
        block(s.ep.put_manifest(&ir, &im)).unwrap();
        let signed = block(sign(&s.ep, &ir, Signer::quiet(&k), &BTreeMap::new())).unwrap();
        let digests: Vec<&Digest> = signed.iter().map(|x| &x.image_digest).collect();
        assert_eq!(digests, vec![&im.digest, &s.digest, &d2]);
        block(verify(&s.ep, &ir, &k.public_key())).unwrap();
        block(verify(&s.ep, &s.r, &k.public_key())).unwrap();
        block(verify(&s.ep, &layout_ref(&s.dir, Some("arm")), &k.public_key())).unwrap();
        // By digest too.
        block(verify(
            &s.ep,
            &ImageRef::Layout { dir: s.dir.clone(), tag: None, digest: Some(d2.clone()) },
            &k.public_key(),
        ))
        .unwrap();
    }
}
