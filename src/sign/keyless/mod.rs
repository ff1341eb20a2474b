//! Keyless (Sigstore) verification, offline: a signature made with a short-lived Fulcio
//! certificate is accepted for a digest when, as cosign and sigstore-go check it,
//! 1. a transparency log of the trusted root holds it: a Rekor v1 entry with its signed entry
//!    timestamp (and the inclusion proof with its signed checkpoint when the bundle has one), or a
//!    Rekor v2 entry with its inclusion proof and signed checkpoint; the entry is of this
//!    signature, certificate and payload;
//! 2. something of the root proves when it was signed: the v1 entry's integrated time, and/or an
//!    RFC 3161 timestamp over the signature from a timestamp authority of the root ([`tsa`]);
//!    the certificate was valid at every such time, and chains to a CA of the root valid then;
//! 3. it carries an SCT from a CT log of the root;
//! 4. its identity (SAN) and OIDC issuer (Fulcio extension .1.8, else .1.1) match the policy;
//! 5. the signature verifies with its key over the payload, and the payload names the digest
//!    (a simple-signing payload's `docker-manifest-digest`, or a DSSE statement's subject).
//!
//! Both cosign formats: a sigstore bundle (v0.1–v0.3; [`verify_bundle`]) and a legacy `.sig`
//! layer with the `dev.sigstore.cosign/certificate` and `/bundle` annotations ([`verify_legacy`]).
//! A chain carried beside the certificate is not trusted (sigstore-go ignores it too): only the
//! root's chains are. A Rekor v2 entry without a timestamp is refused as having no proof of time;
//! a timestamp without a log entry is refused as not logged (cosign's default; its
//! `--insecure-ignore-tlog` has no counterpart here).
//!
//! Why hand-written: the sigstore crate (0.15) verifies the chain and SCT but neither the SET, the
//! checkpoint nor a TSA timestamp against the root, and it brings an OpenSSL/reqwest tree; webpki
//! (chains), x509-cert (parsing) and ring (signatures), all small and well kept, do the work here.
//!
//! Owns: deciding whether one keyless signature verifies, with a typed reason. Must not: fetch
//! anything (callers pass bytes), or decide whether a verified signature is enough (the caller).

pub mod cert;
pub mod find;
pub mod key;
pub mod root;
pub mod tlog;
pub mod tsa;

use base64::Engine;
use cert::{ChainError, Leaf};
use regex::Regex;
pub use root::TrustedRoot;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// One accepted value: exact, or a regular expression (unanchored, as cosign's Go `regexp`).
#[derive(Debug, Clone)]
pub enum Match {
    Exact(String),
    Regex(Regex),
}

impl Match {
    pub fn regex(s: &str) -> Result<Match, String> {
        Regex::new(s).map(Match::Regex).map_err(|e| format!("invalid regular expression {s:?}: {e}"))
    }
    fn matches(&self, s: &str) -> bool {
        match self {
            Match::Exact(x) => x == s,
            Match::Regex(r) => r.is_match(s),
        }
    }
}

impl std::fmt::Display for Match {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Match::Exact(s) => write!(f, "{s}"),
            Match::Regex(r) => write!(f, "/{}/", r.as_str()),
        }
    }
}

/// Who may have signed: some identity and some issuer of these (each list: alternatives).
#[derive(Debug, Clone)]
pub struct Policy {
    pub identities: Vec<Match>,
    pub issuers: Vec<Match>,
}

impl Policy {
    /// From flag values: exact and regexp identities and issuers (each list: alternatives).
    /// `Err` names an invalid regular expression, or a list left empty.
    pub fn new(
        identities: &[String],
        identity_regexps: &[String],
        issuers: &[String],
        issuer_regexps: &[String],
    ) -> Result<Policy, String> {
        let ms = |exact: &[String], res: &[String]| -> Result<Vec<Match>, String> {
            let mut v: Vec<Match> = exact.iter().map(|s| Match::Exact(s.clone())).collect();
            for r in res {
                v.push(Match::regex(r)?);
            }
            Ok(v)
        };
        Ok(Policy { identities: ms(identities, identity_regexps)?, issuers: ms(issuers, issuer_regexps)? })
    }

    /// `identity X or /re/, issuer Y`: for messages.
    pub fn describe(&self) -> String {
        format!("identity {}, issuer {}", list(&self.identities), list(&self.issuers))
    }
}

/// A keyless policy with the trust material it is checked against (`--trusted-root`).
#[derive(Debug, Clone)]
pub struct Gate {
    pub policy: Policy,
    pub root: TrustedRoot,
}

impl Gate {
    /// From flag (or batch file) values — `[identities, identity regexps, issuers, issuer
    /// regexps]` — and the trusted root's path; `names` are the identity and issuer flags, for
    /// messages. `None` when nothing keyless is asked. Missing halves and bad regexps are
    /// [`crate::Failure::Usage`] (exit 2); a root that cannot be read is a plain error (exit 1).
    pub fn from_flags(
        v: [&[String]; 4],
        root: Option<&std::path::Path>,
        names: [&str; 2],
    ) -> anyhow::Result<Option<Gate>> {
        use crate::Failure::Usage;
        let [ids, id_res, isss, iss_res] = v;
        let any_id = !ids.is_empty() || !id_res.is_empty();
        let any_iss = !isss.is_empty() || !iss_res.is_empty();
        if !any_id && !any_iss && root.is_none() {
            return Ok(None);
        }
        if !any_id {
            return Err(Usage(format!("keyless verification needs {} (and {})", names[0], names[1])).into());
        }
        if !any_iss {
            return Err(Usage(format!(
                "{} needs {} too: an identity is only as good as its issuer",
                names[0], names[1]
            ))
            .into());
        }
        let Some(root) = root else {
            return Err(Usage(format!(
                "{} needs --trusted-root FILE (Sigstore's trusted_root.json; `cosign trusted-root create` or TUF, see README \"Keyless\")",
                names[0]
            ))
            .into());
        };
        let policy = Policy::new(ids, id_res, isss, iss_res).map_err(Usage)?;
        Ok(Some(Gate { policy, root: TrustedRoot::load(root)? }))
    }
}

fn list(ms: &[Match]) -> String {
    ms.iter().map(ToString::to_string).collect::<Vec<_>>().join(" or ")
}

/// Why a keyless signature was refused: one line each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("unreadable: {0}")]
    Malformed(String),
    #[error("wrong identity: the certificate names {found}, not {want}")]
    WrongIdentity { found: String, want: String },
    #[error("wrong issuer: the certificate names {found}, not {want}")]
    WrongIssuer { found: String, want: String },
    #[error("untrusted chain: {0}")]
    UntrustedChain(String),
    #[error("no valid SCT: {0}")]
    NoSct(String),
    #[error("no log proof: {0}")]
    NoLogProof(String),
    #[error("no proof of time: {0}")]
    NoTimeProof(String),
    #[error("certificate outside its validity: {0}")]
    OutsideValidity(String),
    #[error("tampered: {0}")]
    Tampered(String),
}

/// What verified: who, the log entry that holds it, and what proves when it was signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub identity: String,
    pub issuer: String,
    pub log_index: i64,
    pub log_id: String,
    /// The proven signing time: the log's integrated time, else the earliest TSA timestamp.
    pub integrated_time: i64,
    /// The timestamp authority whose RFC 3161 timestamp proves the time, when one does.
    pub timestamp_authority: Option<String>,
    /// The verified DSSE statement (bundles) or simple-signing payload.
    pub payload: Vec<u8>,
    pub predicate_type: Option<String>,
}

impl Verified {
    /// `identity (issuer), log entry N at TIME` (`, timestamped by TSA` when a TSA proves it).
    pub fn describe(&self) -> String {
        let by = self.timestamp_authority.as_deref().map(|t| format!(", timestamped by {t}")).unwrap_or_default();
        format!(
            "{} ({}), log entry {} at {}{by}",
            self.identity,
            self.issuer,
            self.log_index,
            cert::show_time(self.integrated_time)
        )
    }
}

fn b64(what: &str, s: &str) -> Result<Vec<u8>, Refusal> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|_| Refusal::Malformed(format!("{what} is not base64")))
}

/// What one signature consists of, whichever format it came in.
struct Material {
    leaf_der: Vec<u8>,
    signature: Vec<u8>,
    /// What the signature is over (the PAE for DSSE) and what the log hashes (the payload).
    signed: Vec<u8>,
    payload: Vec<u8>,
    entries: Vec<tlog::Entry>,
    /// RFC 3161 timestamp responses (DER) over `stamped`: the signature, or for cosign 2's
    /// `.att` layers the envelope.
    timestamps: Vec<Vec<u8>>,
    stamped: Vec<u8>,
    dsse: bool,
}

fn check(m: Material, root: &TrustedRoot, policy: &Policy, digest: &str) -> Result<Verified, Refusal> {
    let leaf = Leaf::parse(&m.leaf_der).map_err(Refusal::Malformed)?;
    // 1. Logged, and when.
    if m.entries.is_empty() {
        return Err(Refusal::NoLogProof(format!(
            "no transparency log entry, so nothing proves it was signed while the certificate was valid ({} to {})",
            cert::show_time(leaf.not_before),
            cert::show_time(leaf.not_after)
        )));
    }
    let claim = tlog::Claim {
        signature: &m.signature,
        cert_der: &m.leaf_der,
        payload_sha256: Sha256::digest(&m.payload).into(),
    };
    let mut why = Vec::new();
    let mut logged = None;
    for e in &m.entries {
        match tlog::verify_entry(e, &root.tlogs) {
            Err(w) => why.push(Refusal::NoLogProof(w)),
            Ok(l) => match tlog::body_matches(&e.body, &claim) {
                Err(w) => why.push(Refusal::Tampered(w)),
                // An entry that also proves the time is preferred.
                Ok(()) if l.time.is_some() => {
                    logged = Some((e, l));
                    break;
                }
                Ok(()) => logged = logged.or(Some((e, l))),
            },
        }
    }
    let Some((entry, logged)) = logged else {
        return Err(why.into_iter().next().unwrap_or_else(|| Refusal::NoLogProof("no log entry".into())));
    };
    // Every proven time: the log's, and each timestamp's (all must verify, as in sigstore-go).
    let mut times: Vec<(i64, Option<&str>)> = logged.time.map(|t| (t, None)).into_iter().collect();
    for ts in &m.timestamps {
        let stamp = tsa::verify(ts, &m.stamped, &root.tsas).map_err(Refusal::NoTimeProof)?;
        times.push((stamp.time, Some(stamp.tsa.name.as_str())));
    }
    let tsa_name = times.iter().find_map(|(_, n)| *n);
    let Some(&(t, _)) = times.iter().min_by_key(|(t, _)| *t) else {
        return Err(Refusal::NoTimeProof(
            "the log entry (Rekor v2) proves inclusion but not time, and no RFC 3161 timestamp comes with it".into(),
        ));
    };
    // 2. Chain at each proven time.
    let mut issuer_spki = Vec::new();
    for &(when, _) in &times {
        let (_, spki) = cert::verify_chain(&leaf, root, when).map_err(|e| match e {
            ChainError::OutsideValidity(w) => Refusal::OutsideValidity(w),
            ChainError::Untrusted(w) => Refusal::UntrustedChain(w),
            ChainError::Malformed(w) => Refusal::Malformed(w),
        })?;
        issuer_spki = spki;
    }
    let log = logged.log;
    // 3. SCT.
    cert::verify_sct(&leaf, &issuer_spki, &root.ctlogs).map_err(Refusal::NoSct)?;
    // 4. Identity and issuer.
    let identity = leaf.identity.clone().unwrap_or_default();
    if !policy.identities.iter().any(|p| p.matches(&identity)) {
        return Err(Refusal::WrongIdentity {
            found: if identity.is_empty() { "no identity".into() } else { identity },
            want: list(&policy.identities),
        });
    }
    let issuer = leaf.issuer.clone().unwrap_or_default();
    if !policy.issuers.iter().any(|p| p.matches(&issuer)) {
        return Err(Refusal::WrongIssuer {
            found: if issuer.is_empty() { "no issuer".into() } else { issuer },
            want: list(&policy.issuers),
        });
    }
    // 5. Signature, and what it names.
    if !leaf.key.verify(&m.signed, &m.signature) {
        return Err(Refusal::Tampered("the signature does not verify with the certificate's key".into()));
    }
    let want_hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    let payload: Value =
        serde_json::from_slice(&m.payload).map_err(|_| Refusal::Malformed("the signed payload is not JSON".into()))?;
    let predicate_type = if m.dsse {
        let subjects = payload["subject"].as_array().map(Vec::as_slice).unwrap_or_default();
        if !subjects.iter().any(|s| s["digest"]["sha256"].as_str() == Some(want_hex)) {
            return Err(Refusal::Tampered(format!("the statement's subject does not name {digest}")));
        }
        payload["predicateType"].as_str().map(str::to_string)
    } else {
        if payload["critical"]["image"]["docker-manifest-digest"].as_str() != Some(digest) {
            return Err(Refusal::Tampered(format!("the payload does not name {digest}")));
        }
        if payload["critical"]["type"].as_str() != Some("cosign container image signature") {
            return Err(Refusal::Malformed("the payload is not a cosign container image signature".into()));
        }
        None
    };
    Ok(Verified {
        identity,
        issuer,
        log_index: entry.log_index,
        log_id: hex::encode(&log.id),
        integrated_time: t,
        timestamp_authority: tsa_name.map(str::to_string),
        payload: m.payload,
        predicate_type,
    })
}

// -- Sigstore bundles (protobuf JSON; unknown fields refused, as sigstore-go's protojson does). --

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Bundle {
    media_type: String,
    verification_material: VerificationMaterial,
    dsse_envelope: Option<Envelope>,
    message_signature: Option<MessageSignature>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct VerificationMaterial {
    certificate: Option<RawBytes>,
    x509_certificate_chain: Option<Chain>,
    public_key: Option<Value>,
    #[serde(default)]
    tlog_entries: Vec<TlogEntry>,
    timestamp_verification_data: Option<TimestampData>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TimestampData {
    #[serde(default)]
    rfc3161_timestamps: Vec<Rfc3161>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Rfc3161 {
    signed_timestamp: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawBytes {
    raw_bytes: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Chain {
    certificates: Vec<RawBytes>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TlogEntry {
    log_index: Value,
    log_id: LogId,
    kind_version: Option<Value>,
    integrated_time: Value,
    inclusion_promise: Option<Promise>,
    inclusion_proof: Option<InclusionProof>,
    canonicalized_body: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LogId {
    key_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Promise {
    signed_entry_timestamp: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct InclusionProof {
    log_index: Value,
    root_hash: String,
    tree_size: Value,
    #[serde(default)]
    hashes: Vec<String>,
    checkpoint: Option<Checkpoint>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Checkpoint {
    envelope: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Envelope {
    payload: String,
    payload_type: String,
    signatures: Vec<EnvSig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvSig {
    sig: String,
    #[serde(default)]
    #[allow(dead_code)]
    keyid: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MessageSignature {
    #[allow(dead_code)]
    message_digest: Option<Value>,
    #[allow(dead_code)]
    signature: String,
}

/// A protobuf-JSON int64: a string or a number.
fn int(what: &str, v: &Value) -> Result<i64, Refusal> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
    .ok_or_else(|| Refusal::Malformed(format!("{what} is not an integer")))
}

fn entry(e: &TlogEntry) -> Result<tlog::Entry, Refusal> {
    let proof = match &e.inclusion_proof {
        None => None,
        Some(p) => Some(tlog::Proof {
            log_index: int("inclusionProof.logIndex", &p.log_index)?.max(0) as u64,
            tree_size: int("inclusionProof.treeSize", &p.tree_size)?.max(0) as u64,
            root_hash: b64("inclusionProof.rootHash", &p.root_hash)?,
            hashes: p.hashes.iter().map(|h| b64("inclusionProof.hashes", h)).collect::<Result<_, _>>()?,
            checkpoint: p.checkpoint.as_ref().map(|c| c.envelope.clone()),
        }),
    };
    let _ = &e.kind_version;
    Ok(tlog::Entry {
        body: b64("canonicalizedBody", &e.canonicalized_body)?,
        integrated_time: int("integratedTime", &e.integrated_time)?,
        log_index: int("logIndex", &e.log_index)?,
        log_id: b64("logId.keyId", &e.log_id.key_id)?,
        set: e
            .inclusion_promise
            .as_ref()
            .map(|p| b64("signedEntryTimestamp", &p.signed_entry_timestamp))
            .transpose()?,
        proof,
    })
}

/// A signature, what it is over, and the payload that names the digest.
struct Signed {
    signature: Vec<u8>,
    signed: Vec<u8>,
    payload: Vec<u8>,
}

/// A DSSE envelope's one signature, its payload, and the PAE the signature is over.
fn dsse_parts(env: &Envelope) -> Result<Signed, Refusal> {
    if env.payload_type != "application/vnd.in-toto+json" {
        return Err(Refusal::Malformed(format!("DSSE payload type {:?}", env.payload_type)));
    }
    let [sig] = env.signatures.as_slice() else {
        return Err(Refusal::Malformed(format!("{} DSSE signatures (one expected)", env.signatures.len())));
    };
    let payload = b64("the DSSE payload", &env.payload)?;
    let signed = crate::sign::dsse::pae(&env.payload_type, &payload);
    Ok(Signed { signature: b64("the DSSE signature", &sig.sig)?, signed, payload })
}

/// Verify a sigstore bundle (JSON) for `digest` (`sha256:<hex>`).
pub fn verify_bundle(bytes: &[u8], root: &TrustedRoot, policy: &Policy, digest: &str) -> Result<Verified, Refusal> {
    let b: Bundle =
        serde_json::from_slice(bytes).map_err(|e| Refusal::Malformed(format!("not a sigstore bundle ({e})")))?;
    if !b.media_type.starts_with("application/vnd.dev.sigstore.bundle") {
        return Err(Refusal::Malformed(format!("mediaType {:?} is not a sigstore bundle", b.media_type)));
    }
    let vm = &b.verification_material;
    let timestamps = vm
        .timestamp_verification_data
        .iter()
        .flat_map(|t| &t.rfc3161_timestamps)
        .map(|t| b64("rfc3161Timestamps.signedTimestamp", &t.signed_timestamp))
        .collect::<Result<Vec<_>, _>>()?;
    let leaf_der = match (&vm.certificate, &vm.x509_certificate_chain, &vm.public_key) {
        (Some(c), _, _) => b64("certificate.rawBytes", &c.raw_bytes)?,
        (None, Some(ch), _) => match ch.certificates.first() {
            Some(c) => b64("x509CertificateChain", &c.raw_bytes)?,
            None => return Err(Refusal::Malformed("empty x509CertificateChain".into())),
        },
        (None, None, Some(_)) => {
            return Err(Refusal::Malformed("signed with a key, not keyless (no certificate)".into()))
        }
        (None, None, None) => return Err(Refusal::Malformed("no verification material".into())),
    };
    let entries = vm.tlog_entries.iter().map(entry).collect::<Result<Vec<_>, _>>()?;
    let m = match (&b.dsse_envelope, &b.message_signature) {
        (Some(env), None) => {
            let s = dsse_parts(env)?;
            Material {
                leaf_der,
                stamped: s.signature.clone(),
                signature: s.signature,
                signed: s.signed,
                payload: s.payload,
                entries,
                timestamps,
                dsse: true,
            }
        }
        _ => return Err(Refusal::Malformed(
            "an image signature bundle holds a DSSE envelope (a message signature has no payload to name the image)"
                .into(),
        )),
    };
    check(m, root, policy, digest)
}

/// The legacy `.sig` layer's annotations harden reads.
pub const CERT_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
pub const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// cosign 2's RFC 3161 timestamp: `{"SignedRFC3161Timestamp": base64 DER}`, over the signature.
pub const TIMESTAMP_ANNOTATION: &str = "dev.sigstore.cosign/rfc3161timestamp";

fn pem_to_der(pem: &str) -> Result<Vec<u8>, Refusal> {
    let start = pem
        .find("-----BEGIN CERTIFICATE-----")
        .ok_or(Refusal::Malformed("the certificate annotation is not PEM".into()))?;
    let body: String =
        pem[start..].lines().skip(1).take_while(|l| !l.starts_with("-----END")).collect::<Vec<_>>().concat();
    b64("the certificate annotation", &body)
}

/// What cosign 2 puts beside a legacy `.sig` or `.att` layer: the certificate (DER), the Rekor
/// entry (`/bundle`) and the RFC 3161 timestamp (`/rfc3161timestamp`), when there.
struct LegacyMaterial {
    leaf_der: Vec<u8>,
    entries: Vec<tlog::Entry>,
    timestamps: Vec<Vec<u8>>,
}

fn legacy_material(annotations: &serde_json::Map<String, Value>) -> Result<LegacyMaterial, Refusal> {
    let get = |k: &str| annotations.get(k).and_then(Value::as_str);
    let cert =
        get(CERT_ANNOTATION).ok_or(Refusal::Malformed("no certificate annotation (signed with a key?)".into()))?;
    let leaf_der = pem_to_der(cert)?;
    let mut entries = Vec::new();
    if let Some(b) = get(BUNDLE_ANNOTATION) {
        let v: Value =
            serde_json::from_str(b).map_err(|_| Refusal::Malformed("the bundle annotation is not JSON".into()))?;
        let p = &v["Payload"];
        let body = match &p["body"] {
            Value::String(s) => b64("the bundle annotation's body", s)?,
            _ => return Err(Refusal::Malformed("the bundle annotation has no body".into())),
        };
        entries.push(tlog::Entry {
            body,
            integrated_time: int("integratedTime", &p["integratedTime"])?,
            log_index: int("logIndex", &p["logIndex"])?,
            log_id: hex::decode(p["logID"].as_str().unwrap_or_default())
                .map_err(|_| Refusal::Malformed("the bundle annotation's logID is not hex".into()))?,
            set: v["SignedEntryTimestamp"].as_str().map(|s| b64("SignedEntryTimestamp", s)).transpose()?,
            proof: None,
        });
    }
    let mut timestamps = Vec::new();
    if let Some(t) = get(TIMESTAMP_ANNOTATION) {
        let v: Value =
            serde_json::from_str(t).map_err(|_| Refusal::Malformed("the timestamp annotation is not JSON".into()))?;
        let Some(ts) = v["SignedRFC3161Timestamp"].as_str() else {
            return Err(Refusal::Malformed("the timestamp annotation has no SignedRFC3161Timestamp".into()));
        };
        timestamps.push(b64("the timestamp annotation", ts)?);
    }
    Ok(LegacyMaterial { leaf_der, entries, timestamps })
}

impl LegacyMaterial {
    /// With what was signed; `stamped` is what its timestamp is over.
    fn material(self, s: Signed, stamped: Vec<u8>, dsse: bool) -> Material {
        Material {
            leaf_der: self.leaf_der,
            signature: s.signature,
            signed: s.signed,
            payload: s.payload,
            entries: self.entries,
            timestamps: self.timestamps,
            stamped,
            dsse,
        }
    }
}

/// Verify a legacy `.sig` layer: its payload blob and its annotations.
pub fn verify_legacy(
    payload: &[u8],
    annotations: &serde_json::Map<String, Value>,
    root: &TrustedRoot,
    policy: &Policy,
    digest: &str,
) -> Result<Verified, Refusal> {
    let l = legacy_material(annotations)?;
    let signature = b64(
        "the signature annotation",
        annotations.get(SIGNATURE_ANNOTATION).and_then(Value::as_str).unwrap_or_default(),
    )?;
    let s = Signed { signature: signature.clone(), signed: payload.to_vec(), payload: payload.to_vec() };
    check(l.material(s, signature, false), root, policy, digest)
}

/// Verify a legacy keyless `.att` layer (cosign 2's `attest`): a DSSE envelope whose statement
/// names the digest, the certificate and the Rekor `intoto` entry in its annotations. cosign 2
/// timestamps the envelope itself here (there is no signature annotation to timestamp).
pub fn verify_legacy_attestation(
    envelope: &[u8],
    annotations: &serde_json::Map<String, Value>,
    root: &TrustedRoot,
    policy: &Policy,
    digest: &str,
) -> Result<Verified, Refusal> {
    let l = legacy_material(annotations)?;
    let env: Envelope = serde_json::from_slice(envelope)
        .map_err(|e| Refusal::Malformed(format!("the attestation is not a DSSE envelope ({e})")))?;
    check(l.material(dsse_parts(&env)?, envelope.to_vec(), true), root, policy, digest)
}

#[cfg(test)]
mod tests;
