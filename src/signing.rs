//! Signing stage: cosign signatures of an image, stored where cosign stores them — an OCI
//! manifest at the tag `sha256-<hex>.sig` beside the image (in the image's registry repository,
//! or in an OCI layout's `index.json`), one simple-signing layer per signature.
//!
//! Owns: pushing and reading `.sig` manifests for an image through [`transport`]: resolving
//! IMAGE to the manifest digest(s) to sign (a tag to its digest; for an index every platform
//! manifest and the index itself), fetching the existing `.sig` manifest, pushing the payload
//! and config blobs first and the `.sig` manifest last; checking the signatures of an image;
//! and the key files on disk with their passwords (`HARDEN_PASSWORD`, `COSIGN_PASSWORD`, or a
//! prompt on the terminal).
//!
//! Must not: know about image layers or their contents (a signature is over a manifest digest
//! only), or do cryptography or format work itself: that is [`crate::sign`]'s, on ring.
//!
//! [`transport`]: crate::transport

use crate::digest::Digest;
use crate::image;
use crate::progress::Progress;
use crate::reference::ImageRef;
use crate::sign::{self, keys, LayerVerdict, SignatureLayer, SigningKey, VerifyingKey};
use crate::transport::{Endpoint, Manifest};
use crate::Failure;
use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Environment variables holding the key password, in the order they are read.
pub const PASSWORD_ENV: [&str; 2] = ["HARDEN_PASSWORD", "COSIGN_PASSWORD"];
/// Largest simple-signing payload read back (cosign's are a few hundred bytes).
const MAX_PAYLOAD: u64 = 1 << 20;
/// How deep nested indexes are followed when signing every manifest of an index.
const MAX_INDEX_DEPTH: usize = 4;

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

/// The outcome of a successful [`verify`]: at least one verdict is Ok.
#[derive(Debug)]
pub struct Verified {
    pub image_digest: Digest,
    pub tag: String,
    pub verdicts: Vec<LayerVerdict>,
}

/// The `.sig` reference for `digest` beside `r`: same repository (or layout), tag `sha256-<hex>.sig`.
pub fn sig_ref(r: &ImageRef, digest: &Digest) -> ImageRef {
    let tag = Some(sign::sig_tag(digest.as_str()));
    match r {
        ImageRef::Registry { registry, repository, .. } => {
            ImageRef::Registry { registry: registry.clone(), repository: repository.clone(), tag, digest: None }
        }
        ImageRef::Layout { dir, .. } => ImageRef::Layout { dir: dir.clone(), tag, digest: None },
    }
}

/// `-a key=value` arguments as the payload's `optional` map (a later key replaces an earlier one).
pub fn parse_annotations(args: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for a in args {
        match a.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                out.insert(k.to_string(), v.to_string());
            }
            _ => bail!(Failure::Usage(format!("annotation `{a}` is not key=value"))),
        }
    }
    Ok(out)
}

/// Sign the image `r` names: its manifest, or for an index (OCI index / Docker manifest list)
/// every platform manifest and then the index. The result lists the digest `r` resolves to
/// first, then the manifests it lists.
pub async fn sign(
    ep: &Endpoint,
    r: &ImageRef,
    key: &SigningKey,
    annotations: &BTreeMap<String, String>,
    progress: &Progress,
) -> Result<Vec<Signed>> {
    let top = ep.manifest(r).await?;
    let mut children = Vec::new();
    collect_children(ep, r, &top, 0, &mut children).await?;
    children.retain(|d| *d != top.digest);
    let mut out = Vec::with_capacity(children.len() + 1);
    // Platform manifests first, the index last: a signed index means all of it was signed.
    for d in &children {
        out.push(sign_digest(ep, r, d, key, annotations, progress).await?);
    }
    out.insert(0, sign_digest(ep, r, &top.digest, key, annotations, progress).await?);
    Ok(out)
}

/// The manifests an index lists (depth first, nested indexes followed and included), deduplicated.
async fn collect_children(
    ep: &Endpoint,
    r: &ImageRef,
    m: &Manifest,
    depth: usize,
    out: &mut Vec<Digest>,
) -> Result<()> {
    if !image::is_index(&m.media_type) {
        return Ok(());
    }
    if depth >= MAX_INDEX_DEPTH {
        bail!("{}: indexes nested more than {MAX_INDEX_DEPTH} deep", r.by_digest(&m.digest));
    }
    let idx: Value = serde_json::from_slice(&m.bytes)
        .map_err(|e| anyhow!("{}: index is not valid JSON: {e}", r.by_digest(&m.digest)))?;
    let entries = idx["manifests"]
        .as_array()
        .ok_or_else(|| anyhow!("{}: index has no manifests list", r.by_digest(&m.digest)))?;
    for e in entries {
        let d = Digest::parse(e["digest"].as_str().unwrap_or(""))
            .map_err(|err| anyhow!("{}: index entry: {err}", r.by_digest(&m.digest)))?;
        if out.contains(&d) {
            continue;
        }
        if e["mediaType"].as_str().is_some_and(image::is_index) {
            let child = ep.manifest(&r.with_digest(&d)).await?;
            Box::pin(collect_children(ep, r, &child, depth + 1, out)).await?;
        }
        if !out.contains(&d) {
            out.push(d);
        }
    }
    Ok(())
}

/// Add a signature of `digest` (a manifest in `r`'s repository or layout) to its `.sig`
/// manifest: payload blob and config blob first, then the `.sig` manifest by tag.
pub async fn sign_digest(
    ep: &Endpoint,
    r: &ImageRef,
    digest: &Digest,
    key: &SigningKey,
    annotations: &BTreeMap<String, String>,
    progress: &Progress,
) -> Result<Signed> {
    let payload = sign::payload(&r.repository_name(), digest.as_str(), annotations);
    let payload_digest = Digest::of(&payload);
    let target = sig_ref(r, digest);
    let tag = sign::sig_tag(digest.as_str());
    let existing =
        ep.manifest_opt(&target).await.with_context(|| format!("reading the signatures of {}", r.by_digest(digest)))?;
    let existing_json: Option<Value> = match &existing {
        Some(m) => Some(serde_json::from_slice(&m.bytes).map_err(|e| {
            anyhow!("{target}: the existing signature manifest is not valid JSON ({e}); not replacing it")
        })?),
        None => None,
    };

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
    let config_digest = Digest::parse(&appended.config_digest).map_err(|e| anyhow!("signature config: {e}"))?;
    for (d, bytes) in [(&payload_digest, &payload), (&config_digest, &appended.config)] {
        if !ep.has_blob(d).await? {
            ep.put_blob_bytes(d, bytes).await?;
        }
        if !ep.has_blob(d).await? {
            bail!("{target}: blob {d} is not present after upload; signature manifest not pushed");
        }
    }
    let manifest = Manifest {
        digest: Digest::of(&appended.manifest_bytes),
        bytes: appended.manifest_bytes,
        media_type: sign::OCI_MANIFEST_MEDIA_TYPE.to_string(),
    };
    ep.put_manifest(&target, &manifest).await?;
    let layers = appended.manifest["layers"].as_array().map_or(0, Vec::len);
    progress.line(&format!(
        "signed {} ({tag}, {layers} signature{})",
        r.by_digest(digest),
        if layers == 1 { "" } else { "s" }
    ));
    Ok(Signed { image_digest: digest.clone(), tag, manifest_digest: manifest.digest, payload_digest, added: true })
}

/// Check that a signature by `key` over the digest `r` resolves to exists. `Err` with
/// [`Failure::Policy`] (exit 3) when there is no `.sig` manifest or none of its layers verifies,
/// naming each layer and why it failed; other errors (the image cannot be read) are plain.
pub async fn verify(ep: &Endpoint, r: &ImageRef, key: &VerifyingKey) -> Result<Verified> {
    let image = ep.manifest(r).await?;
    let pinned = r.by_digest(&image.digest);
    let target = sig_ref(r, &image.digest);
    let tag = sign::sig_tag(image.digest.as_str());
    let Some(sig) = ep.manifest_opt(&target).await.with_context(|| format!("reading the signatures of {pinned}"))?
    else {
        bail!(Failure::Policy(format!("{pinned}: no signatures (no {tag} manifest)")));
    };
    let json: Value = serde_json::from_slice(&sig.bytes)
        .map_err(|e| Failure::Policy(format!("{pinned}: no valid signature: {tag} is not valid JSON ({e})")))?;

    // verify_signature_manifest is synchronous: fetch every payload first.
    let mut payloads: HashMap<String, Result<Vec<u8>, String>> = HashMap::new();
    for l in json["layers"].as_array().into_iter().flatten() {
        let Some(d) = l["digest"].as_str() else {
            continue;
        };
        if payloads.contains_key(d) {
            continue;
        }
        let got = match Digest::parse(d) {
            Ok(dd) => ep.blob_bytes(&dd, MAX_PAYLOAD).await.map_err(|e| format!("{e:#}")),
            Err(e) => Err(e),
        };
        payloads.insert(d.to_string(), got);
    }
    let verdicts = sign::verify_signature_manifest(
        &json,
        |d| payloads.get(d).cloned().unwrap_or_else(|| Err("not fetched".to_string())),
        key,
        image.digest.as_str(),
    );
    if verdicts.iter().any(LayerVerdict::is_ok) {
        return Ok(Verified { image_digest: image.digest, tag, verdicts });
    }
    if verdicts.is_empty() {
        bail!(Failure::Policy(format!("{pinned}: no valid signature: {tag} holds no signature layers")));
    }
    let why: Vec<String> = verdicts
        .iter()
        .map(|v| {
            format!(
                "#{} {}: {}",
                v.index,
                if v.digest.is_empty() { "(no digest)" } else { &v.digest },
                v.result.as_ref().err().map(ToString::to_string).unwrap_or_default()
            )
        })
        .collect();
    bail!(Failure::Policy(format!(
        "{pinned}: no signature verifies with this key; {tag} holds {} signature{}: {}",
        verdicts.len(),
        if verdicts.len() == 1 { "" } else { "s" },
        why.join("; ")
    )))
}

// ------------------------------------------------------------------ key files and passwords

/// The password from the environment: `(variable, value)` of the first of [`PASSWORD_ENV`] set.
/// An empty value counts (it is how a key without password is used non-interactively).
fn env_password() -> Result<Option<(&'static str, String)>> {
    for name in PASSWORD_ENV {
        if let Some(v) = std::env::var_os(name) {
            let v = v.into_string().map_err(|_| anyhow!("{name} is not valid UTF-8"))?;
            return Ok(Some((name, v)));
        }
    }
    Ok(None)
}

fn prompt(msg: &str) -> Result<String> {
    rpassword::prompt_password(msg).context("cannot read the password from the terminal")
}

fn no_password() -> anyhow::Error {
    Failure::Usage(format!(
        "no password: set {} (or {}), or run on a terminal to be asked",
        PASSWORD_ENV[0], PASSWORD_ENV[1]
    ))
    .into()
}

/// The password for a new key: `--empty-password`, else the environment, else asked twice on the
/// terminal. An empty password is refused unless asked for with `--empty-password`.
pub fn keygen_password(empty_password: bool) -> Result<String> {
    choose_keygen_password(env_password()?, empty_password, std::io::stdin().is_terminal(), || {
        let a = prompt("Enter password for private key: ")?;
        let b = prompt("Enter password for private key again: ")?;
        if a != b {
            bail!(Failure::Usage("the passwords do not match".into()));
        }
        Ok(a)
    })
}

fn choose_keygen_password(
    env: Option<(&str, String)>,
    empty_password: bool,
    terminal: bool,
    ask: impl FnOnce() -> Result<String>,
) -> Result<String> {
    if empty_password {
        if let Some((name, v)) = &env {
            if !v.is_empty() {
                bail!(Failure::Usage(format!("--empty-password conflicts with {name}, which is set and not empty")));
            }
        }
        return Ok(String::new());
    }
    let pw = match env {
        Some((_, v)) => v,
        None if terminal => ask()?,
        None => return Err(no_password()),
    };
    if pw.is_empty() {
        bail!(Failure::Usage("empty password: pass --empty-password to write a private key without one".into()));
    }
    Ok(pw)
}

/// Write `PREFIX.key` (mode 0600) and `PREFIX.pub` as `cosign generate-key-pair` does. Existing
/// files are left alone unless `force`.
pub fn keygen(prefix: &str, force: bool, password: &str) -> Result<(PathBuf, PathBuf)> {
    use std::os::unix::fs::PermissionsExt;
    let key_path = PathBuf::from(format!("{prefix}.key"));
    let pub_path = PathBuf::from(format!("{prefix}.pub"));
    if !force {
        for p in [&key_path, &pub_path] {
            if p.symlink_metadata().is_ok() {
                bail!("{} already exists; --force overwrites it", p.display());
            }
        }
    }
    let (private_pem, public_pem) =
        sign::generate(password.as_bytes()).map_err(|e| anyhow!("generating a key pair: {e}"))?;
    // write_atomic goes through a temporary file created 0600, so the key is never readable by others.
    crate::transport::layout::write_atomic(&key_path, private_pem.as_bytes())
        .with_context(|| format!("writing {}", key_path.display()))?;
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600))?;
    crate::transport::layout::write_atomic(&pub_path, public_pem.as_bytes())
        .with_context(|| format!("writing {}", pub_path.display()))?;
    std::fs::set_permissions(&pub_path, std::fs::Permissions::from_mode(0o644))?;
    Ok((key_path, pub_path))
}

/// Load a cosign encrypted private key (harden's, cosign's or sigstore-rs's), with the password
/// from the environment (empty allowed) or the terminal. Wrong password, corrupt file and
/// unsupported key type each give one line naming the file.
pub fn load_signing_key(path: &Path) -> Result<SigningKey> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read the private key {}", path.display()))?;
    let pem = String::from_utf8_lossy(&bytes);
    let fail = |e: sign::SignError| anyhow!("{}: {e}", path.display());
    // Refuse what is not an encrypted cosign key before asking for a password for it.
    match keys::pem_decode(&pem) {
        Ok((label, _)) if label == keys::SIGSTORE_PRIVATE_KEY_LABEL || label == keys::COSIGN_PRIVATE_KEY_LABEL => {}
        // Not a cosign key: from_encrypted_pem names what is wrong without running the KDF.
        _ => return SigningKey::from_encrypted_pem(&pem, b"").map_err(fail),
    }
    let password = match env_password()? {
        Some((_, v)) => v,
        None if std::io::stdin().is_terminal() => {
            prompt(&format!("Enter password for private key {}: ", path.display()))?
        }
        None => return Err(no_password()),
    };
    SigningKey::from_encrypted_pem(&pem, password.as_bytes()).map_err(fail)
}

/// Load a cosign public key (`PUBLIC KEY` PEM, ECDSA P-256).
pub fn load_verifying_key(path: &Path) -> Result<VerifyingKey> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read the public key {}", path.display()))?;
    VerifyingKey::from_pem(&String::from_utf8_lossy(&bytes)).map_err(|e| anyhow!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::NetOptions;
    use serde_json::json;

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
        let ann = parse_annotations(&["team=infra".to_string()]).unwrap();
        let signed = block(sign(&s.ep, &s.r, &k, &ann, &Progress::Quiet)).unwrap();
        assert_eq!(signed.len(), 1);
        assert_eq!(signed[0].image_digest, s.digest);
        assert!(signed[0].added);
        assert_eq!(signed[0].tag, format!("sha256-{}.sig", s.digest.hex()));
        let v = block(verify(&s.ep, &s.r, &k.public_key())).unwrap();
        assert_eq!(v.image_digest, s.digest);
        let ok = v.verdicts[0].result.as_ref().unwrap();
        assert_eq!(ok.docker_reference, format!("oci:{}", s.dir.display()));
        assert_eq!(ok.optional, json!({"team": "infra"}));
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
        let first = block(sign_digest(&s.ep, &s.r, &s.digest, &k1, &none, &Progress::Quiet)).unwrap();
        let again = block(sign_digest(&s.ep, &s.r, &s.digest, &k1, &none, &Progress::Quiet)).unwrap();
        assert!(first.added && !again.added);
        assert_eq!(first.manifest_digest, again.manifest_digest);
        assert_eq!(sig_manifest(&s, &s.digest)["layers"].as_array().unwrap().len(), 1);
        // Another key adds its own layer; both verify.
        let other = block(sign_digest(&s.ep, &s.r, &s.digest, &k2, &none, &Progress::Quiet)).unwrap();
        assert!(other.added);
        assert_eq!(sig_manifest(&s, &s.digest)["layers"].as_array().unwrap().len(), 2);
        block(verify(&s.ep, &s.r, &k1.public_key())).unwrap();
        block(verify(&s.ep, &s.r, &k2.public_key())).unwrap();
        // Other annotations are another payload: another layer.
        let ann = parse_annotations(&["a=b".to_string()]).unwrap();
        assert!(block(sign_digest(&s.ep, &s.r, &s.digest, &k1, &ann, &Progress::Quiet)).unwrap().added);
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
        block(sign(&s.ep, &s.r, &key(), &BTreeMap::new(), &Progress::Quiet)).unwrap();
        expect_policy(block(verify(&s.ep, &s.r, &key().public_key())), "signature does not verify with the public key");
    }

    #[test]
    fn tampered_payload_blob_fails() {
        let s = setup();
        let k = key();
        let signed = block(sign(&s.ep, &s.r, &k, &BTreeMap::new(), &Progress::Quiet)).unwrap();
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
        block(sign(&s.ep, &s.r, &k, &BTreeMap::new(), &Progress::Quiet)).unwrap();
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
        block(sign(&s.ep, &s.r, &k, &BTreeMap::new(), &Progress::Quiet)).unwrap();
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
        block(sign(&s.ep, &s.r, &k, &BTreeMap::new(), &Progress::Quiet)).unwrap();
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
        let signed = block(sign(&s.ep, &ir, &k, &BTreeMap::new(), &Progress::Quiet)).unwrap();
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

    #[test]
    fn annotations_parse() {
        let a = parse_annotations(&["k=v".into(), "x=a=b".into(), "k=w".into()]).unwrap();
        assert_eq!(a.get("k").map(String::as_str), Some("w"));
        assert_eq!(a.get("x").map(String::as_str), Some("a=b"));
        assert!(parse_annotations(&["novalue".into()]).is_err());
        assert!(parse_annotations(&["=v".into()]).is_err());
    }

    #[test]
    fn keygen_password_rules() {
        let never = || -> Result<String> { panic!("must not prompt") };
        let env = |v: &str| Some(("HARDEN_PASSWORD", v.to_string()));
        assert_eq!(choose_keygen_password(env("pw"), false, false, never).unwrap(), "pw");
        assert!(choose_keygen_password(env(""), false, true, never).is_err(), "empty only with --empty-password");
        assert_eq!(choose_keygen_password(env(""), true, false, never).unwrap(), "");
        assert_eq!(choose_keygen_password(None, true, false, never).unwrap(), "");
        assert!(choose_keygen_password(env("pw"), true, false, never).is_err(), "--empty-password with a password set");
        assert!(choose_keygen_password(None, false, false, never).is_err(), "no terminal, no env");
        assert_eq!(choose_keygen_password(None, false, true, || Ok("typed".into())).unwrap(), "typed");
        assert!(choose_keygen_password(None, false, true, || Ok(String::new())).is_err());
    }

    #[test]
    fn keygen_writes_cosign_files_and_refuses_to_overwrite() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let prefix = tmp.path().join("k").display().to_string();
        let (kp, pp) = keygen(&prefix, false, "pw").unwrap();
        let pem = std::fs::read_to_string(&kp).unwrap();
        assert!(pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"), "{pem}");
        assert!(std::fs::read_to_string(&pp).unwrap().starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert_eq!(std::fs::metadata(&kp).unwrap().permissions().mode() & 0o777, 0o600);
        let k = SigningKey::from_encrypted_pem(&pem, b"pw").unwrap();
        assert_eq!(load_verifying_key(&pp).unwrap(), k.public_key());
        let e = keygen(&prefix, false, "pw").unwrap_err();
        assert!(e.to_string().contains("already exists"), "{e}");
        assert_eq!(std::fs::read_to_string(&kp).unwrap(), pem, "not overwritten");
        keygen(&prefix, true, "pw2").unwrap();
        assert_ne!(std::fs::read_to_string(&kp).unwrap(), pem, "--force overwrites");
    }

    #[test]
    fn load_signing_key_refuses_non_keys_before_asking() {
        let tmp = tempfile::tempdir().unwrap();
        let (_, public) = sign::generate(b"").unwrap();
        let p = tmp.path().join("x.pub");
        std::fs::write(&p, public).unwrap();
        let e = load_signing_key(&p).unwrap_err();
        assert!(e.to_string().contains("is not"), "{e}");
        assert!(load_signing_key(&tmp.path().join("missing.key")).unwrap_err().to_string().contains("cannot read"));
    }
}
