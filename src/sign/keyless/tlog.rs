//! Rekor (transparency log) evidence: the signed entry timestamp (SET) over an entry, the Merkle
//! inclusion proof and its signed checkpoint, and the entry's body agreeing with what it is
//! claimed to log (the same signature, certificate and payload hash — CVE-2022-36056's lesson).
//!
//! Owns: log evidence. Must not: decide what the signing time is used for ([`super`]).

use super::key::{PublicKey, Time};
use super::root::{LogKey, TrustedRoot};
use base64::Engine;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// A log entry as both formats carry it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub body: Vec<u8>,
    pub integrated_time: Time,
    pub log_index: i64,
    pub log_id: Vec<u8>,
    pub set: Option<Vec<u8>>,
    pub proof: Option<Proof>,
}

#[derive(Debug, Clone)]
pub struct Proof {
    pub log_index: u64,
    pub tree_size: u64,
    pub root_hash: Vec<u8>,
    pub hashes: Vec<Vec<u8>>,
    pub checkpoint: Option<String>,
}

fn json_str(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// A log entry proven to be in a log of the root.
#[derive(Debug)]
pub struct Logged<'r> {
    pub log: &'r LogKey,
    /// The integrated time, when a signed entry timestamp proves it (Rekor v1). A Rekor v2 entry
    /// proves inclusion (its checkpoint) but not time: a timestamp authority must.
    pub time: Option<Time>,
}

/// Check the entry with the log's key from the root: its SET (signed entry timestamp), and its
/// inclusion proof with the signed checkpoint when there is one. An entry with a SET is logged at
/// its integrated time; one without (Rekor v2) is accepted as logged only with an inclusion proof
/// and a checkpoint signed by the log.
pub fn verify_entry<'r>(e: &Entry, tlogs: &'r [LogKey]) -> Result<Logged<'r>, String> {
    let log = TrustedRoot::log(tlogs, &e.log_id)
        .ok_or_else(|| format!("log entry from a log not in the trusted root ({})", hex::encode(&e.log_id)))?;
    let Some(set) = &e.set else {
        match &e.proof {
            Some(p) if p.checkpoint.is_some() => {
                verify_proof(&e.body, p, &log.key, &log.id)?;
                return Ok(Logged { log, time: None });
            }
            _ => {
                return Err(
                    "log entry has neither a signed entry timestamp nor an inclusion proof with a checkpoint".into()
                )
            }
        }
    };
    if !log.valid.covers(e.integrated_time) {
        return Err("log entry integrated when the log's key was not valid".into());
    }
    let body_b64 = base64::engine::general_purpose::STANDARD.encode(&e.body);
    let canonical = format!(
        "{{\"body\":{},\"integratedTime\":{},\"logID\":{},\"logIndex\":{}}}",
        json_str(&body_b64),
        e.integrated_time,
        json_str(&hex::encode(&e.log_id)),
        e.log_index
    );
    if !log.key.verify(canonical.as_bytes(), set) {
        return Err("the signed entry timestamp does not verify with the log's key".into());
    }
    if let Some(p) = &e.proof {
        verify_proof(&e.body, p, &log.key, &log.id)?;
    }
    Ok(Logged { log, time: Some(e.integrated_time) })
}

fn hash_children(l: &[u8], r: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(l);
    h.update(r);
    h.finalize().to_vec()
}

/// RFC 6962/9162 inclusion proof of `body` at `p.log_index` in a tree of `p.tree_size`, and the
/// checkpoint (signed note) naming that size and root.
pub(super) fn verify_proof(body: &[u8], p: &Proof, key: &PublicKey, log_id: &[u8]) -> Result<(), String> {
    if p.log_index >= p.tree_size {
        return Err("inclusion proof: index past the tree size".into());
    }
    let inner = (64 - (p.log_index ^ (p.tree_size - 1)).leading_zeros()) as usize;
    // `inner` reaches 64 for an index with its top bit set: shift without overflowing.
    let border = p.log_index.checked_shr(inner as u32).unwrap_or(0).count_ones() as usize;
    if p.hashes.len() != inner + border {
        return Err(format!("inclusion proof: {} hashes where {} are needed", p.hashes.len(), inner + border));
    }
    let mut seed = {
        let mut h = Sha256::new();
        h.update([0u8]);
        h.update(body);
        h.finalize().to_vec()
    };
    for (i, h) in p.hashes[..inner].iter().enumerate() {
        seed = if p.log_index.checked_shr(i as u32).unwrap_or(0) & 1 == 0 {
            hash_children(&seed, h)
        } else {
            hash_children(h, &seed)
        };
    }
    for h in &p.hashes[inner..] {
        seed = hash_children(h, &seed);
    }
    if seed != p.root_hash {
        return Err("inclusion proof does not lead to its root hash".into());
    }
    let Some(cp) = &p.checkpoint else { return Ok(()) };
    let split = cp.find("\n\n").ok_or("checkpoint has no signature block")?;
    let note = &cp[..split + 1];
    let lines: Vec<&str> = note.lines().collect();
    let (size, root) = match lines.as_slice() {
        [_origin, size, root, ..] => (*size, *root),
        _ => return Err("checkpoint has too few lines".into()),
    };
    if size.parse::<u64>().ok() != Some(p.tree_size) {
        return Err("checkpoint names another tree size than the proof".into());
    }
    if base64::engine::general_purpose::STANDARD.decode(root).ok().as_deref() != Some(p.root_hash.as_slice()) {
        return Err("checkpoint names another root hash than the proof".into());
    }
    let signed = cp[split + 2..].lines().filter_map(|l| l.strip_prefix("\u{2014} ")).any(|l| {
        let sig = l.rsplit(' ').next().and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok());
        matches!(sig, Some(s) if s.len() > 4 && s[..4] == log_id[..4.min(log_id.len())] && key.verify(note.as_bytes(), &s[4..]))
    });
    if !signed {
        return Err("the checkpoint's signature does not verify with the log's key".into());
    }
    Ok(())
}

/// The PEM (or base64 PEM) in a Rekor body, as DER.
fn pem_der(b64_pem: &str) -> Option<Vec<u8>> {
    let pem = base64::engine::general_purpose::STANDARD.decode(b64_pem).ok()?;
    let text = String::from_utf8(pem).ok()?;
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body.trim()).ok()
}

/// What the entry must log: the signature, the certificate and the hash of the signed payload.
pub struct Claim<'a> {
    pub signature: &'a [u8],
    pub cert_der: &'a [u8],
    pub payload_sha256: [u8; 32],
}

/// A Rekor v2 `HashOutput` (`{"algorithm": "SHA2_256", "digest": base64}`) is this SHA-256.
fn v2_hash_is(h: &Value, sha256: &[u8]) -> bool {
    h["algorithm"].as_str() == Some("SHA2_256")
        && h["digest"]
            .as_str()
            .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
            .is_some_and(|d| d == sha256)
}

/// A Rekor v2 verifier names this certificate (`x509Certificate.rawBytes`, DER).
fn v2_verifier_is(verifier: &Value, cert_der: &[u8]) -> bool {
    verifier["x509Certificate"]["rawBytes"]
        .as_str()
        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .is_some_and(|d| d == cert_der)
}

/// A Rekor v1 entry of an envelope (dsse 0.0.1, intoto 0.0.2) agrees with `claim`: its payload
/// hash (`{"value": hex}`) is the claim's, and one of its `signatures` is the claim's signature
/// with the claim's certificate, as `sig_and_key` reads the two from a signature object (each
/// kind stores them its own way).
fn envelope_holds(
    claim: &Claim,
    want_hash: &str,
    hash: &Value,
    signatures: &Value,
    sig_and_key: impl Fn(&Value) -> (Option<Vec<u8>>, Option<Vec<u8>>),
) -> Result<(), String> {
    if hash["value"].as_str() != Some(want_hash) {
        return Err("the log entry is for another artifact (payload hash differs)".into());
    }
    let sigs = signatures.as_array().map(Vec::as_slice).unwrap_or_default();
    let found = sigs.iter().any(|s| {
        let (sig, key) = sig_and_key(s);
        sig.as_deref() == Some(claim.signature) && key.as_deref() == Some(claim.cert_der)
    });
    if !found {
        return Err("the log entry holds another signature or certificate".into());
    }
    Ok(())
}

/// The entry's body agrees with `claim` (hashedrekord or dsse, Rekor v1's 0.0.1 or v2's 0.0.2;
/// intoto 0.0.2, cosign 2's attestations).
pub fn body_matches(body: &[u8], claim: &Claim) -> Result<(), String> {
    let v: Value = serde_json::from_slice(body).map_err(|_| "the log entry's body is not JSON")?;
    let want_hash = hex::encode(claim.payload_sha256);
    let b64 = |s: &Value| s.as_str().and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok());
    match (v["kind"].as_str(), v["apiVersion"].as_str()) {
        (Some("hashedrekord"), Some("0.0.1")) => {
            let spec = &v["spec"];
            if spec["data"]["hash"]["value"].as_str() != Some(want_hash.as_str()) {
                return Err("the log entry is for another artifact (payload hash differs)".into());
            }
            if b64(&spec["signature"]["content"]).as_deref() != Some(claim.signature) {
                return Err("the log entry holds another signature".into());
            }
            if spec["signature"]["publicKey"]["content"].as_str().and_then(pem_der).as_deref() != Some(claim.cert_der) {
                return Err("the log entry holds another certificate".into());
            }
            Ok(())
        }
        (Some("dsse"), Some("0.0.1")) => {
            let spec = &v["spec"];
            envelope_holds(claim, &want_hash, &spec["payloadHash"], &spec["signatures"], |s| {
                (b64(&s["signature"]), s["verifier"].as_str().and_then(pem_der))
            })
        }
        (Some("intoto"), Some("0.0.2")) => {
            // cosign 2's keyless `.att`: the envelope's signatures hold base64 of the base64
            // signature, and the key as base64 PEM (sigstore-js reads them the same way).
            let content = &v["spec"]["content"];
            envelope_holds(claim, &want_hash, &content["payloadHash"], &content["envelope"]["signatures"], |s| {
                let sig = b64(&s["sig"]).and_then(|inner| base64::engine::general_purpose::STANDARD.decode(inner).ok());
                (sig, s["publicKey"].as_str().and_then(pem_der))
            })
        }
        (Some("hashedrekord"), Some("0.0.2")) => {
            let spec = &v["spec"]["hashedRekordV002"];
            if !v2_hash_is(&spec["data"], &claim.payload_sha256) {
                return Err("the log entry is for another artifact (payload hash differs)".into());
            }
            if b64(&spec["signature"]["content"]).as_deref() != Some(claim.signature) {
                return Err("the log entry holds another signature".into());
            }
            if !v2_verifier_is(&spec["signature"]["verifier"], claim.cert_der) {
                return Err("the log entry holds another certificate".into());
            }
            Ok(())
        }
        (Some("dsse"), Some("0.0.2")) => {
            let spec = &v["spec"]["dsseV002"];
            if !v2_hash_is(&spec["payloadHash"], &claim.payload_sha256) {
                return Err("the log entry is for another artifact (payload hash differs)".into());
            }
            let sigs = spec["signatures"].as_array().map(Vec::as_slice).unwrap_or_default();
            let found = sigs.iter().any(|s| {
                b64(&s["content"]).as_deref() == Some(claim.signature) && v2_verifier_is(&s["verifier"], claim.cert_der)
            });
            if !found {
                return Err("the log entry holds another signature or certificate".into());
            }
            Ok(())
        }
        (k, a) => Err(format!(
            "log entry kind {} {} is not one harden checks (hashedrekord and dsse 0.0.1 and 0.0.2, intoto 0.0.2)",
            k.unwrap_or("?"),
            a.unwrap_or("?")
        )),
    }
}
