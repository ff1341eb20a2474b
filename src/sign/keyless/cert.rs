//! Fulcio certificates: the identity (SAN) and OIDC issuer they carry, their chain to a CA of the
//! trusted root at the signing time, and the SCT a CT log of the root embedded in them; and the
//! keys are [`super::key`]'s.
//!
//! Parsing is x509-cert's; chain building is webpki's (rustls's, bounded: a chain that loops runs
//! out of its budget); signatures are ring's. The SCT check is written here: webpki does not
//! check SCTs, and x509-cert cannot re-encode a certificate without one of its extensions, which
//! is what the CT log signed (RFC 6962 §3.2: the precertificate's TBS, i.e. this TBS without the
//! SCT list) — a small DER walk below does that.
//!
//! Owns: reading certificates and keys, chains, SCTs. Must not: decide policy (identity matching
//! is [`super`]'s), read files or the network.

pub use super::key::{PublicKey, Time};
use super::root::{Authority, LogKey, TrustedRoot};
use pki_types::{CertificateDer, UnixTime};
use sha2::{Digest as _, Sha256};
use std::time::Duration;
use x509_cert::der::asn1::ObjectIdentifier as Oid;
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;

const OID_SAN: Oid = Oid::new_unwrap("2.5.29.17");
/// Fulcio's OIDC issuer, v1 (raw bytes) and v2 (a DER UTF8String).
const OID_ISSUER_V1: Oid = Oid::new_unwrap("1.3.6.1.4.1.57264.1.1");
const OID_ISSUER_V2: Oid = Oid::new_unwrap("1.3.6.1.4.1.57264.1.8");
const OID_SCT: Oid = Oid::new_unwrap("1.3.6.1.4.1.11129.2.4.2");
/// id-kp-codeSigning (1.3.6.1.5.5.7.3.3), DER contents, as webpki takes it.
const CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];

/// What a Fulcio certificate says, read from its DER.
#[derive(Debug, Clone)]
pub struct Leaf {
    pub der: Vec<u8>,
    pub key: PublicKey,
    /// The first URI or e-mail SAN.
    pub identity: Option<String>,
    /// Extension .1.8, else .1.1.
    pub issuer: Option<String>,
    pub not_before: Time,
    pub not_after: Time,
    issuer_name: Vec<u8>,
    sct_list: Option<Vec<u8>>,
}

impl Leaf {
    pub fn parse(der: &[u8]) -> Result<Leaf, String> {
        let cert = x509_cert::Certificate::from_der(der).map_err(|e| format!("malformed certificate ({e})"))?;
        let tbs = cert.tbs_certificate();
        let spki = tbs.subject_public_key_info().to_der().map_err(|e| format!("malformed certificate key ({e})"))?;
        let key = PublicKey::from_spki_der(&spki).map_err(|e| format!("certificate key: {e}"))?;
        let (mut identity, mut v1, mut v2, mut sct_list) = (None, None, None, None);
        for ext in tbs.extensions().map(|e| e.as_slice()).unwrap_or_default() {
            let value = ext.extn_value.as_bytes();
            if ext.extn_id == OID_SAN {
                let san = SubjectAltName::from_der(value).map_err(|e| format!("malformed SAN ({e})"))?;
                identity = san.0.iter().find_map(|n| match n {
                    GeneralName::UniformResourceIdentifier(s) | GeneralName::Rfc822Name(s) => Some(s.to_string()),
                    _ => None,
                });
            } else if ext.extn_id == OID_ISSUER_V2 {
                v2 = Some(String::from_der(value).map_err(|e| format!("malformed issuer extension ({e})"))?);
            } else if ext.extn_id == OID_ISSUER_V1 {
                v1 = Some(String::from_utf8(value.to_vec()).map_err(|_| "issuer extension is not UTF-8".to_string())?);
            } else if ext.extn_id == OID_SCT {
                let inner = x509_cert::der::asn1::OctetString::from_der(value)
                    .map_err(|e| format!("malformed SCT list ({e})"))?;
                sct_list = Some(inner.as_bytes().to_vec());
            }
        }
        Ok(Leaf {
            der: der.to_vec(),
            key,
            identity,
            issuer: v2.or(v1),
            not_before: tbs.validity().not_before.to_unix_duration().as_secs() as Time,
            not_after: tbs.validity().not_after.to_unix_duration().as_secs() as Time,
            issuer_name: tbs.issuer().to_der().map_err(|e| format!("malformed issuer name ({e})"))?,
            sct_list,
        })
    }
}

/// Why a chain did not verify.
#[derive(Debug)]
pub enum ChainError {
    /// The leaf (or a CA) was not valid at the signing time.
    OutsideValidity(String),
    /// No CA of the root valid at that time issued it.
    Untrusted(String),
    /// webpki cannot read the certificate.
    Malformed(String),
}

/// The CA of `root` that issued `leaf`, valid (with its chain) at `t`, and the issuing
/// certificate's SPKI DER (what the SCT's issuer key hash is over).
pub fn verify_chain<'r>(leaf: &Leaf, root: &'r TrustedRoot, t: Time) -> Result<(&'r Authority, Vec<u8>), ChainError> {
    let ee_der = CertificateDer::from(leaf.der.as_slice());
    let ee = webpki::EndEntityCert::try_from(&ee_der)
        .map_err(|e| ChainError::Malformed(format!("malformed certificate ({e:?})")))?;
    if t < leaf.not_before || t > leaf.not_after {
        return Err(ChainError::OutsideValidity(format!(
            "signed at {} but the certificate is valid from {} to {}",
            show_time(t),
            show_time(leaf.not_before),
            show_time(leaf.not_after)
        )));
    }
    let mut why = Vec::new();
    let mut valid_cas = 0;
    for ca in &root.authorities {
        if !ca.valid.covers(t) {
            continue;
        }
        valid_cas += 1;
        match chains_to(&ee, &ca.chain, t, CODE_SIGNING) {
            Ok(_) => {
                // The issuer: the certificate of this chain whose subject is the leaf's issuer.
                for c in &ca.chain {
                    if let Ok(cert) = x509_cert::Certificate::from_der(c) {
                        let subject = cert.tbs_certificate().subject().to_der().unwrap_or_default();
                        if subject == leaf.issuer_name {
                            if let Ok(spki) = cert.tbs_certificate().subject_public_key_info().to_der() {
                                return Ok((ca, spki));
                            }
                        }
                    }
                }
                why.push(format!("{}: verified, but its issuer is not in the chain", ca.name));
            }
            Err(e) => why.push(format!("{}: {e}", ca.name)),
        }
    }
    if valid_cas == 0 {
        return Err(ChainError::Untrusted(format!(
            "the trusted root has no certificate authority valid at {}",
            show_time(t)
        )));
    }
    Err(ChainError::Untrusted(format!("does not chain to a CA of the trusted root ({})", why.join("; "))))
}

/// id-kp-timeStamping (1.3.6.1.5.5.7.3.8), DER contents: what a TSA's certificate must carry.
pub const TIME_STAMPING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x08];

/// webpki: `ee` chains through `chain` (intermediates, the last one the anchor) at `t`, for the
/// extended key usage `eku`. One place for both Fulcio leaves and TSA certificates.
pub fn chains_to(ee: &webpki::EndEntityCert, chain: &[Vec<u8>], t: Time, eku: &'static [u8]) -> Result<(), String> {
    let Some((anchor_der, inter)) = chain.split_last() else { return Err("an empty chain".into()) };
    let anchor_der = CertificateDer::from(anchor_der.as_slice());
    let anchor = webpki::anchor_from_trusted_cert(&anchor_der)
        .map_err(|e| format!("its root certificate is unreadable ({e})"))?;
    let inter: Vec<CertificateDer> = inter.iter().map(|c| CertificateDer::from(c.as_slice())).collect();
    let time = UnixTime::since_unix_epoch(Duration::from_secs(t.max(0) as u64));
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        std::slice::from_ref(&anchor),
        &inter,
        time,
        webpki::KeyUsage::required(eku),
        None,
        None,
    )
    .map(|_| ())
    .map_err(|e| format!("{e:?}"))
}

/// A time for messages: RFC 3339, UTC.
pub fn show_time(t: Time) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| t.to_string())
}

/// Check the embedded SCTs: some SCT signed by a CT log of the root (valid at the SCT's time)
/// over this certificate's precertificate entry. `Ok(log id hex)` or why not.
pub fn verify_sct(leaf: &Leaf, issuer_spki: &[u8], ctlogs: &[LogKey]) -> Result<String, String> {
    let list = leaf.sct_list.as_deref().ok_or("the certificate has no embedded SCT")?;
    let tbs = precert_tbs(&leaf.der).ok_or("cannot rebuild the precertificate the SCT is over")?;
    let issuer_key_hash = Sha256::digest(issuer_spki);
    let mut r = Reader(list);
    let mut all = Reader(r.vec16().ok_or("malformed SCT list")?);
    let mut why = Vec::new();
    while !all.0.is_empty() {
        let mut sct = Reader(all.vec16().ok_or("malformed SCT list")?);
        let parsed = (|| {
            let version = sct.take(1)?[0];
            let log_id = sct.take(32)?;
            let ts = sct.take(8)?;
            let ext = sct.vec16()?;
            let _hash_sig = sct.take(2)?;
            let sig = sct.vec16()?;
            Some((version, log_id, ts, ext, sig))
        })();
        let Some((version, log_id, ts, ext, sig)) = parsed else {
            why.push("malformed SCT".to_string());
            continue;
        };
        if version != 0 {
            why.push(format!("SCT version {version}"));
            continue;
        }
        let Some(log) = TrustedRoot::log(ctlogs, log_id) else {
            why.push(format!("SCT from unknown CT log {}", hex::encode(log_id)));
            continue;
        };
        let ms = u64::from_be_bytes(ts.try_into().unwrap_or([0; 8]));
        if !log.valid.covers((ms / 1000) as Time) {
            why.push("SCT from a CT log key not valid at its time".into());
            continue;
        }
        let mut signed = vec![0u8, 0u8];
        signed.extend_from_slice(ts);
        signed.extend_from_slice(&[0, 1]);
        signed.extend_from_slice(&issuer_key_hash);
        let n = tbs.len();
        signed.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8]);
        signed.extend_from_slice(&tbs);
        signed.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        signed.extend_from_slice(ext);
        if log.key.verify(&signed, sig) {
            return Ok(hex::encode(log_id));
        }
        why.push(format!("SCT signature does not verify with CT log {}", hex::encode(log_id)));
    }
    Err(if why.is_empty() { "the SCT list is empty".into() } else { why.join("; ") })
}

/// TLS-style reader over a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.take(2)?;
        self.take(u16::from_be_bytes([n[0], n[1]]) as usize)
    }
}

/// One DER element: tag, the whole element, its contents, what follows.
type Tlv<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

/// One DER element at the start of `input`.
fn tlv(input: &[u8]) -> Option<Tlv<'_>> {
    let tag = *input.first()?;
    let first = *input.get(1)? as usize;
    let (len, hdr) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *input.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = hdr.checked_add(len)?;
    if input.len() < end {
        return None;
    }
    Some((tag, &input[..end], &input[hdr..end], &input[end..]))
}

fn encode(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = contents.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n.to_be_bytes().iter().copied().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(contents);
    out
}

/// The certificate's TBS without its SCT-list extension: what the CT log signed.
fn precert_tbs(cert_der: &[u8]) -> Option<Vec<u8>> {
    let sct_oid = OID_SCT.as_bytes();
    let (_, _, cert, _) = tlv(cert_der)?;
    let (tag, _, mut tbs, _) = tlv(cert)?;
    if tag != 0x30 {
        return None;
    }
    let mut out = Vec::new();
    while !tbs.is_empty() {
        let (tag, whole, contents, rest) = tlv(tbs)?;
        tbs = rest;
        if tag != 0xa3 {
            out.extend_from_slice(whole);
            continue;
        }
        let (_, _, mut exts, _) = tlv(contents)?;
        let mut kept = Vec::new();
        while !exts.is_empty() {
            let (_, ext, ext_contents, rest) = tlv(exts)?;
            exts = rest;
            let (oid_tag, _, oid, _) = tlv(ext_contents)?;
            if !(oid_tag == 0x06 && oid == sct_oid) {
                kept.extend_from_slice(ext);
            }
        }
        out.extend(encode(0xa3, &encode(0x30, &kept)));
    }
    Some(encode(0x30, &out))
}
