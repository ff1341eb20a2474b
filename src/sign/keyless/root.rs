//! Sigstore's `trusted_root.json` (the format cosign, sigstore-go, sigstore-python and sigstore-js
//! take): the Fulcio CAs and the timestamp authorities (certificate chains, each valid for a time
//! range), the transparency logs' and CT logs' keys (each with its log id and validity). Read once, bounded; unknown fields are
//! ignored here (the root is the user's own trust material, newer versions add fields).
//!
//! Owns: reading the root file (bounded) and parsing it, and answering "which CA / log key was
//! valid at time t". Must not: verify anything (that is [`super`]'s), or fetch it from the
//! network.

use super::key::{PublicKey, Time};
use base64::Engine;
use serde::Deserialize;

/// Largest trusted root read (the public-good one is about 10 KiB).
pub const MAX_ROOT: u64 = 4 << 20;

const MEDIA_TYPE_PREFIX: &str = "application/vnd.dev.sigstore.trustedroot";

/// A certificate authority (or a TSA: its signing certificate first): its chain (leaf-most
/// first, the root last), DER.
#[derive(Debug, Clone)]
pub struct Authority {
    pub name: String,
    pub chain: Vec<Vec<u8>>,
    pub valid: Validity,
}

/// A log (transparency or CT): its id (SHA-256 of the key's DER SPKI) and key.
#[derive(Debug, Clone)]
pub struct LogKey {
    pub id: Vec<u8>,
    pub base_url: String,
    pub key: PublicKey,
    pub valid: Validity,
}

/// A `validFor` range, in Unix seconds; `end` absent means still valid.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    pub start: Option<Time>,
    pub end: Option<Time>,
}

impl Validity {
    pub fn covers(&self, t: Time) -> bool {
        self.start.is_none_or(|s| t >= s) && self.end.is_none_or(|e| t <= e)
    }
}

/// The trust material.
#[derive(Debug, Clone)]
pub struct TrustedRoot {
    pub authorities: Vec<Authority>,
    pub tlogs: Vec<LogKey>,
    pub ctlogs: Vec<LogKey>,
    /// RFC 3161 timestamp authorities: each chain starts with the TSA's signing certificate.
    pub tsas: Vec<Authority>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRoot {
    media_type: Option<String>,
    #[serde(default)]
    tlogs: Vec<RawLog>,
    #[serde(default)]
    certificate_authorities: Vec<RawCa>,
    #[serde(default)]
    ctlogs: Vec<RawLog>,
    #[serde(default)]
    timestamp_authorities: Vec<RawCa>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLog {
    #[serde(default)]
    base_url: String,
    public_key: RawKey,
    log_id: RawLogId,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawKey {
    raw_bytes: String,
    valid_for: Option<RawValid>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLogId {
    key_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawValid {
    start: Option<String>,
    end: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCa {
    #[serde(default)]
    uri: String,
    cert_chain: RawChain,
    valid_for: Option<RawValid>,
}

#[derive(Deserialize)]
struct RawChain {
    certificates: Vec<RawCert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCert {
    raw_bytes: String,
}

fn b64(what: &str, s: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD.decode(s.trim()).map_err(|e| format!("{what}: not base64 ({e})"))
}

/// An RFC 3339 time as Unix seconds.
pub fn rfc3339(what: &str, s: &str) -> Result<Time, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp())
        .map_err(|e| format!("{what}: not an RFC 3339 time {s:?} ({e})"))
}

fn validity(what: &str, v: &Option<RawValid>) -> Result<Validity, String> {
    let Some(v) = v else { return Ok(Validity { start: None, end: None }) };
    Ok(Validity {
        start: v.start.as_deref().map(|s| rfc3339(what, s)).transpose()?,
        end: v.end.as_deref().map(|s| rfc3339(what, s)).transpose()?,
    })
}

fn logs(kind: &str, raw: Vec<RawLog>) -> Result<Vec<LogKey>, String> {
    raw.into_iter()
        .enumerate()
        .map(|(i, l)| {
            let what = format!("{kind}[{i}]");
            let der = b64(&format!("{what}.publicKey.rawBytes"), &l.public_key.raw_bytes)?;
            Ok(LogKey {
                id: b64(&format!("{what}.logId.keyId"), &l.log_id.key_id)?,
                key: PublicKey::from_spki_der(&der).map_err(|e| format!("{what}.publicKey: {e}"))?,
                valid: validity(&what, &l.public_key.valid_for)?,
                base_url: l.base_url,
            })
        })
        .collect()
}

fn authorities(kind: &str, raw: Vec<RawCa>) -> Result<Vec<Authority>, String> {
    raw.into_iter()
        .enumerate()
        .map(|(i, ca)| {
            let what = format!("{kind}[{i}]");
            let chain = ca
                .cert_chain
                .certificates
                .iter()
                .map(|c| b64(&format!("{what}.certChain"), &c.raw_bytes))
                .collect::<Result<Vec<_>, _>>()?;
            if chain.is_empty() {
                return Err(format!("{what}: empty certChain"));
            }
            Ok(Authority {
                name: if ca.uri.is_empty() { what.clone() } else { ca.uri },
                chain,
                valid: validity(&what, &ca.valid_for)?,
            })
        })
        .collect()
}

impl TrustedRoot {
    /// Parse `trusted_root.json`. Errors name the field at fault.
    pub fn parse(bytes: &[u8]) -> Result<TrustedRoot, String> {
        let raw: RawRoot = serde_json::from_slice(bytes).map_err(|e| format!("not a trusted root ({e})"))?;
        if let Some(mt) = &raw.media_type {
            if !mt.starts_with(MEDIA_TYPE_PREFIX) {
                return Err(format!("mediaType {mt:?} is not a Sigstore trusted root"));
            }
        }
        Ok(TrustedRoot {
            authorities: authorities("certificateAuthorities", raw.certificate_authorities)?,
            tlogs: logs("tlogs", raw.tlogs)?,
            ctlogs: logs("ctlogs", raw.ctlogs)?,
            tsas: authorities("timestampAuthorities", raw.timestamp_authorities)?,
        })
    }

    /// The log of `logs` whose id is `id`.
    pub fn log<'a>(logs: &'a [LogKey], id: &[u8]) -> Option<&'a LogKey> {
        logs.iter().find(|l| l.id == id)
    }
}

impl TrustedRoot {
    /// Read a Sigstore `trusted_root.json` from `path` (at most [`MAX_ROOT`] bytes). Errors name
    /// the file and its fault (exit 1).
    pub fn load(path: &std::path::Path) -> anyhow::Result<TrustedRoot> {
        use anyhow::Context;
        use std::io::Read;
        let f = std::fs::File::open(path).with_context(|| format!("trusted root {}: cannot open", path.display()))?;
        let mut bytes = Vec::new();
        f.take(MAX_ROOT + 1)
            .read_to_end(&mut bytes)
            .with_context(|| format!("trusted root {}: cannot read", path.display()))?;
        if bytes.len() as u64 > MAX_ROOT {
            anyhow::bail!("trusted root {}: larger than {MAX_ROOT} bytes", path.display());
        }
        TrustedRoot::parse(&bytes).map_err(|e| anyhow::anyhow!("trusted root {}: {e}", path.display()))
    }
}
