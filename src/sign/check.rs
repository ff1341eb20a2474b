//! Everything that vouches for one manifest digest, checked against a set of public keys: the
//! legacy `.sig` layers, cosign v3 bundles among its referrers, the `.att` attestations. One
//! line per signature or attestation found, saying which key verified it or why none did.
//! `harden verify` and the rebuild's `--require-signature` gate both read this; what is
//! checked is what [`super::discover`] found.
//!
//! Owns: checking what describes a digest. Must not: decide whether that is
//! enough (the caller's policy), or push anything.

use super::discover::{discover, referrer_manifest, Stored, Unreadable};
use super::{attest, bundle, dsse, simple, Rejected, VerifyingKey};
use crate::digest::Digest;
use crate::reference::ImageRef;
use crate::transport::Endpoint;
use crate::Failure;
use anyhow::Result;
use serde_json::Value;
use std::collections::HashMap;

/// Largest blob read back: a simple-signing payload, an envelope or a bundle.
const MAX_BLOB: u64 = super::MAX_ENVELOPE;

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
    pub result: Result<usize, Rejected>,
    /// The verified statement's payload (attestations and bundles).
    pub statement: Option<Vec<u8>>,
}

impl Line {
    /// The line, the verifying key named by `names[k]` (or `key #k` past the names).
    pub fn describe(&self, names: &[&str]) -> String {
        let pt = self.predicate_type.as_deref().map(|p| format!(" ({p})")).unwrap_or_default();
        match &self.result {
            Ok(k) => match names.get(*k) {
                Some(n) => format!("{}{pt}: verified with {n}", self.what),
                None => format!("{}{pt}: verified with key #{k}", self.what),
            },
            Err(e) => format!("{}{pt}: FAILED: {e}", self.what),
        }
    }
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe(&[]))
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
fn pick<T>(per_key: impl Iterator<Item = Result<T, Rejected>>) -> Result<(usize, T), Rejected> {
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
    let why = first_err.unwrap_or(Rejected::NoKey);
    Err(if n > 1 { Rejected::NoneOfKeys { n, first: Box::new(why) } } else { why })
}

/// Check everything beside `r` that describes `digest` ([`discover`]) against `keys`. A `.sig`
/// or `.att` tag that cannot be read is an error; unreadable referrers, and a document that is
/// there but wrong, are failed lines.
pub async fn examine(ep: &Endpoint, r: &ImageRef, digest: &Digest, keys: &[VerifyingKey]) -> Result<Examined> {
    let mut found = discover(ep, r, digest).await;
    if let Some(i) = found.unreadable.iter().position(|u| !matches!(u, Unreadable::Referrers { .. })) {
        return Err(found.unreadable.swap_remove(i).into_error());
    }
    let mut lines = Vec::new();
    let mut blobs: HashMap<String, Result<Vec<u8>, String>> = HashMap::new();

    // Legacy .sig.
    if let Some(Stored { tag: sig_tag, manifest: m }) = &found.sig {
        match serde_json::from_slice::<Value>(&m.bytes) {
            Err(e) => {
                lines.push(failed(Kind::Signature, sig_tag, None, Rejected::NotJson(format!("not valid JSON ({e})"))))
            }
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
                    lines.push(failed(Kind::Signature, sig_tag, None, Rejected::NoSignatureLayers));
                }
                for i in 0..n {
                    let layer = &per_key[0][i];
                    let result = pick(
                        per_key
                            .iter()
                            .map(|vs| vs[i].result.as_ref().map(drop).map_err(|e| Rejected::Layer(e.clone()))),
                    )
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
    if let Some(e) = found.referrers_unreadable() {
        lines.push(failed(Kind::Signature, "referrers", None, Rejected::Unreadable(format!("{e:#}"))));
    }
    for d in found.bundles() {
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
        let mv = match referrer_manifest(ep, r, &md).await {
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

    // Attestations.
    if let Some(Stored { tag: att_tag, manifest: m }) = found.att.take() {
        match serde_json::from_slice::<Value>(&m.bytes) {
            Err(e) => lines.push(failed(
                Kind::Attestation,
                &att_tag,
                None,
                Rejected::NotJson(format!("not valid JSON ({e})")),
            )),
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

/// The policy of `harden verify` (and of `store::verify`): with no `attestations`, some
/// signature (`.sig` or bundle) verifies; with some, each predicate type has a verified
/// attestation (`.att` or bundle) whose subject is the digest. Else a [`Failure::Policy`]
/// naming the image and, for each signature found, why it failed.
pub fn require(r: &ImageRef, ex: &Examined, names: &[&str], attestations: &[String]) -> Result<(), Failure> {
    let pinned = r.by_digest(&ex.digest);
    let why = |kind: Kind| {
        let failed: Vec<String> =
            ex.lines.iter().filter(|l| l.kind == kind && l.result.is_err()).map(|l| l.describe(names)).collect();
        failed.join("; ")
    };
    if attestations.is_empty() {
        if ex.signed_by().is_some() {
            return Ok(());
        }
        if !ex.lines.iter().any(|l| l.kind == Kind::Signature) {
            return Err(Failure::Policy(format!(
                "{pinned}: no signatures (no {} manifest, no bundle among its referrers)",
                simple::sig_tag(ex.digest.as_str())
            )));
        }
        return Err(Failure::Policy(format!(
            "{pinned}: no signature verifies with {}: {}",
            keys_named(names),
            why(Kind::Signature)
        )));
    }
    for t in attestations {
        if ex.attested(t).is_none() {
            let found = why(Kind::Attestation);
            return Err(Failure::Policy(format!(
                "{pinned}: no {t} attestation about this digest verifies with {}{}",
                keys_named(names),
                if found.is_empty() { " (none found)".to_string() } else { format!(": {found}") }
            )));
        }
    }
    Ok(())
}

fn keys_named(names: &[&str]) -> String {
    match names {
        [] => "this key".to_string(),
        [one] => one.to_string(),
        more => format!("any of {}", more.join(", ")),
    }
}

/// The outcome of a successful [`verify`]: at least one signature line is Ok.
#[derive(Debug)]
pub struct Verified {
    pub image_digest: Digest,
    pub tag: String,
    pub lines: Vec<Line>,
}

/// Check that a signature by `key` (`.sig` or cosign v3 bundle) over the digest `r` resolves
/// to exists. `Err` with [`Failure::Policy`] (exit 3) when there is none or none verifies,
/// naming each one and why it failed; other errors (the image cannot be read) are plain.
pub async fn verify(ep: &Endpoint, r: &ImageRef, key: &VerifyingKey) -> Result<Verified> {
    let image = ep.manifest(r).await?;
    let ex = examine(ep, r, &image.digest, std::slice::from_ref(key)).await?;
    require(r, &ex, &[], &[])?;
    Ok(Verified { tag: simple::sig_tag(image.digest.as_str()), image_digest: image.digest, lines: ex.lines })
}

fn failed(kind: Kind, what: &str, predicate_type: Option<String>, why: Rejected) -> Line {
    Line { kind, what: what.to_string(), predicate_type, result: Err(why), statement: None }
}

/// Fetch (verified) every layer blob of `manifest` not fetched yet.
pub(crate) async fn fetch_layers(
    ep: &Endpoint,
    manifest: &Value,
    blobs: &mut HashMap<String, Result<Vec<u8>, String>>,
) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image;
    use crate::sign::dsse::tests::test_key;
    use crate::sign::{publish, referrers, store, Signer};
    use crate::transport::{Manifest, NetOptions};
    use serde_json::json;
    use std::collections::BTreeMap;

    fn block<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
    }

    struct Setup {
        _tmp: tempfile::TempDir,
        ep: Endpoint,
        r: ImageRef,
        digest: Digest,
    }

    fn setup() -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let r = ImageRef::Layout { dir: tmp.path().join("lay"), tag: Some("v1".into()), digest: None };
        let ep = Endpoint::open(&r, &NetOptions::default()).unwrap();
        let digest = block(async {
            let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
            let cd = Digest::of(config);
            ep.put_blob_bytes(&cd, config).await.unwrap();
            let m = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": image::OCI_MANIFEST, "config": {"mediaType": image::OCI_CONFIG, "digest": cd.as_str(), "size": config.len()}, "layers": []})).unwrap();
            let man = Manifest { digest: Digest::of(&m), bytes: m, media_type: image::OCI_MANIFEST.into() };
            ep.put_manifest(&r, &man).await.unwrap();
            man.digest
        });
        Setup { _tmp: tmp, ep, r, digest }
    }

    fn claim<'a>(digest: &'a Digest, predicate_type: &'a str, statement: &'a [u8]) -> publish::Claim<'a> {
        publish::Claim { digest, predicate_type, statement }
    }

    fn statement(d: &Digest, pt: &str) -> Vec<u8> {
        let s = dsse::Subject { name: "x".into(), digest: d.to_string(), annotations: BTreeMap::new() };
        dsse::statement(&s, pt, &json!({"n": 1}))
    }

    #[test]
    fn every_format_is_found_and_checked() {
        let s = setup();
        let (k1, k2) = (test_key(), test_key());
        let none = BTreeMap::new();
        // Nothing yet.
        let e = block(examine(&s.ep, &s.r, &s.digest, &[k1.public_key()])).unwrap();
        assert!(e.lines.is_empty() && e.signed_by().is_none());

        // A bundle: pushed by digest, registered in the referrers tag (a layout has no API).
        let b1 = block(publish::bundle_digest(&s.ep, &s.r, &s.digest, Signer::quiet(&k1), &none)).unwrap();
        assert!(b1.added);
        assert_eq!(b1.referrers_tag.as_deref(), Some(bundle::fallback_tag(s.digest.as_str()).as_str()));
        // The same key again adds nothing; another key adds a second referrer to the same index.
        assert!(!block(publish::bundle_digest(&s.ep, &s.r, &s.digest, Signer::quiet(&k1), &none)).unwrap().added);
        let b2 = block(publish::bundle_digest(&s.ep, &s.r, &s.digest, Signer::quiet(&k2), &none)).unwrap();
        assert!(b2.added && b2.manifest_digest != b1.manifest_digest);
        let idx = block(s.ep.manifest(&referrers::tag_ref(&s.r, &s.digest))).unwrap();
        let idx: Value = serde_json::from_slice(&idx.bytes).unwrap();
        let listed: Vec<&str> =
            idx["manifests"].as_array().unwrap().iter().map(|d| d["digest"].as_str().unwrap()).collect();
        assert_eq!(listed, vec![b1.manifest_digest.as_str(), b2.manifest_digest.as_str()]);
        assert_eq!(idx["manifests"][0]["artifactType"], bundle::BUNDLE_MEDIA_TYPE);

        // An attestation and a legacy signature.
        let st = statement(&s.digest, dsse::SLSA_PROVENANCE_V1);
        let a = block(publish::attest_digest(
            &s.ep,
            &s.r,
            claim(&s.digest, dsse::SLSA_PROVENANCE_V1, &st),
            Signer::quiet(&k1),
        ))
        .unwrap();
        assert!(a.added);
        let again = block(publish::attest_digest(
            &s.ep,
            &s.r,
            claim(&s.digest, dsse::SLSA_PROVENANCE_V1, &st),
            Signer::quiet(&k1),
        ))
        .unwrap();
        assert!(!again.added && again.manifest_digest == a.manifest_digest);
        let sbom = statement(&s.digest, dsse::CYCLONEDX);
        block(publish::attest_digest(&s.ep, &s.r, claim(&s.digest, dsse::CYCLONEDX, &sbom), Signer::quiet(&k1)))
            .unwrap();
        block(store::sign_digest(&s.ep, &s.r, &s.digest, Signer::quiet(&k2), &none)).unwrap();

        let e = block(examine(&s.ep, &s.r, &s.digest, &[k1.public_key()])).unwrap();
        let text: Vec<String> = e.lines.iter().map(ToString::to_string).collect();
        assert_eq!(e.lines.len(), 5, "{text:#?}");
        assert_eq!(e.signed_by(), Some(0));
        assert!(e.attested(dsse::SLSA_PROVENANCE_V1).is_some());
        assert_eq!(e.attested(dsse::CYCLONEDX).unwrap().statement.as_deref(), Some(sbom.as_slice()));
        assert!(text[0].contains(".sig #0") && text[0].contains("FAILED"), "{text:#?}");
        // With both keys, everything verifies and says which key.
        let e = block(examine(&s.ep, &s.r, &s.digest, &[k1.public_key(), k2.public_key()])).unwrap();
        assert!(e.lines.iter().all(|l| l.result.is_ok()), "{:#?}", e.lines);
        assert_eq!(e.lines[0].result, Ok(1));
        // Only the other key: .att fails with the reason, the bundle of k2 verifies.
        let e = block(examine(&s.ep, &s.r, &s.digest, &[k2.public_key()])).unwrap();
        assert!(e.attested(dsse::SLSA_PROVENANCE_V1).is_none());
        assert!(e
            .lines
            .iter()
            .any(|l| l.to_string().contains(".att #0")
                && l.to_string().contains("no signature of the envelope verifies")));
    }

    #[test]
    fn a_referrers_tag_that_is_not_an_index_is_refused_not_overwritten() {
        let s = setup();
        let k = test_key();
        // The referrers tag holds an image manifest (the image itself).
        let image = block(s.ep.manifest(&s.r)).unwrap();
        let tag = referrers::tag_ref(&s.r, &s.digest);
        block(s.ep.put_manifest(&tag, &image)).unwrap();
        let e = block(publish::bundle_digest(&s.ep, &s.r, &s.digest, Signer::quiet(&k), &BTreeMap::new())).unwrap_err();
        assert!(format!("{e:#}").contains("never overwritten"), "{e:#}");
        assert!(format!("{e:#}").contains("not an OCI image index"), "{e:#}");
        assert_eq!(block(s.ep.manifest(&tag)).unwrap().digest, image.digest, "the tag was overwritten");
        // Examining says so in a line; it does not fail the whole look.
        let ex = block(examine(&s.ep, &s.r, &s.digest, &[k.public_key()])).unwrap();
        assert_eq!(ex.lines.len(), 1);
        assert!(ex.lines[0].to_string().contains("not an OCI image index"), "{}", ex.lines[0]);
    }

    #[test]
    fn a_bundle_whose_manifest_subject_lies_fails() {
        let s = setup();
        let k = test_key();
        let b = block(publish::bundle_digest(&s.ep, &s.r, &s.digest, Signer::quiet(&k), &BTreeMap::new())).unwrap();
        // Rewrite the referrer so its subject names another digest, and list that one instead.
        let m = block(s.ep.manifest(&s.r.without_tag().with_digest(&b.manifest_digest))).unwrap();
        let mut v: Value = serde_json::from_slice(&m.bytes).unwrap();
        v["subject"]["digest"] = json!("sha256:3333333333333333333333333333333333333333333333333333333333333333");
        let bytes = serde_json::to_vec(&v).unwrap();
        let lie = Manifest { digest: Digest::of(&bytes), bytes, media_type: image::OCI_MANIFEST.into() };
        block(s.ep.put_manifest(&s.r.without_tag(), &lie)).unwrap();
        let index = bundle::add_referrer(None, &bundle::referrer_descriptor(&lie.bytes).unwrap()).unwrap().unwrap();
        let im = Manifest { digest: Digest::of(&index), bytes: index, media_type: image::OCI_INDEX.into() };
        block(s.ep.put_manifest(&referrers::tag_ref(&s.r, &s.digest), &im)).unwrap();
        let ex = block(examine(&s.ep, &s.r, &s.digest, &[k.public_key()])).unwrap();
        assert!(ex.signed_by().is_none());
        assert!(ex.lines[0].to_string().contains("names subject sha256:3333"), "{}", ex.lines[0]);
    }
}
