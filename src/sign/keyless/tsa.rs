//! RFC 3161 timestamps: a timestamp authority's signed statement that a signature existed at a
//! time (`genTime`), the proof of time Rekor v2 entries do not carry and that private Sigstore
//! instances use instead of a log's signed entry timestamp. Checked as sigstore-go and sigstore-js
//! check it:
//! 1. the response was granted, its token is CMS `SignedData` over a `TSTInfo`;
//! 2. the `TSTInfo`'s message imprint is the hash of the signature being timestamped;
//! 3. the signed attributes' `contentType` is `id-ct-TSTInfo` and their `messageDigest` is the
//!    hash of the `TSTInfo`;
//! 4. the signer (issuer and serial) is the signing certificate of a TSA of the trusted root
//!    valid at `genTime`, that certificate chains to the TSA's root then and carries the
//!    time-stamping extended key usage, and its key signed the signed attributes.
//!
//! Certificates carried inside the token are not trusted (only the root's are).
//!
//! Why hand-written: no CMS crate is in the dependency tree (RustCrypto's `cms` is not available
//! to this build), and the part of CMS a timestamp needs is small: the DER is walked with the
//! `der` crate's reader (x509-cert's), so lengths and bounds are its, not ours; webpki checks the
//! chain, ring the signature.
//!
//! Owns: reading and verifying one timestamp. Must not: decide what the time is used for
//! ([`super`]).

use super::cert::{chains_to, show_time, TIME_STAMPING};
use super::key::{Hash, PublicKey, Time};
use super::root::Authority;
use pki_types::CertificateDer;
use x509_cert::der::asn1::{AnyRef, ObjectIdentifier as Oid};
use x509_cert::der::{Decode, Encode, Reader, SliceReader, Tag, TagNumber, Tagged};

const OID_SIGNED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.2");
const OID_TST_INFO: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.1.4");
const OID_CONTENT_TYPE: Oid = Oid::new_unwrap("1.2.840.113549.1.9.3");
const OID_MESSAGE_DIGEST: Oid = Oid::new_unwrap("1.2.840.113549.1.9.4");

/// Most elements read from one constructed value: a timestamp has a handful.
const MAX_ELEMENTS: usize = 64;

/// A verified timestamp: when, and by which TSA of the root.
#[derive(Debug, Clone)]
pub struct Stamp<'r> {
    pub time: Time,
    pub tsa: &'r Authority,
}

fn hash_of(oid: &Oid) -> Option<Hash> {
    match oid.to_string().as_str() {
        "2.16.840.1.101.3.4.2.1" => Some(Hash::Sha256),
        "2.16.840.1.101.3.4.2.2" => Some(Hash::Sha384),
        "2.16.840.1.101.3.4.2.3" => Some(Hash::Sha512),
        _ => None,
    }
}

/// The digest a CMS signature algorithm names (ECDSA or RSA with SHA-2), or `None` when the
/// algorithm is the bare key type (the digest algorithm field then says it).
fn signature_hash(oid: &Oid) -> Result<Option<Hash>, String> {
    Ok(match oid.to_string().as_str() {
        "1.2.840.10045.4.3.2" | "1.2.840.113549.1.1.11" => Some(Hash::Sha256),
        "1.2.840.10045.4.3.3" | "1.2.840.113549.1.1.12" => Some(Hash::Sha384),
        "1.2.840.10045.4.3.4" | "1.2.840.113549.1.1.13" => Some(Hash::Sha512),
        "1.2.840.10045.2.1" | "1.2.840.113549.1.1.1" | "1.3.101.112" => None,
        o => return Err(format!("signature algorithm {o} is not one harden checks")),
    })
}

fn malformed(what: &str) -> String {
    format!("malformed timestamp ({what})")
}

/// The elements of a DER value's contents, in order.
fn elements<'a>(what: &str, contents: &'a [u8]) -> Result<Vec<AnyRef<'a>>, String> {
    let mut r = SliceReader::new(contents).map_err(|_| malformed(what))?;
    let mut out = Vec::new();
    while !r.is_finished() {
        if out.len() == MAX_ELEMENTS {
            return Err(malformed(&format!("{what}: too many elements")));
        }
        out.push(AnyRef::decode(&mut r).map_err(|e| malformed(&format!("{what}: {e}")))?);
    }
    Ok(out)
}

/// The elements of `a`, which must be a SEQUENCE or SET as `tag` says.
fn inner<'a>(what: &str, a: &AnyRef<'a>, tag: Tag) -> Result<Vec<AnyRef<'a>>, String> {
    if a.tag() != tag {
        return Err(malformed(&format!("{what} is not a {tag}")));
    }
    elements(what, a.value())
}

fn seq<'a>(what: &str, a: &AnyRef<'a>) -> Result<Vec<AnyRef<'a>>, String> {
    inner(what, a, Tag::Sequence)
}

fn at<'a, 'b>(what: &str, v: &'b [AnyRef<'a>], i: usize) -> Result<&'b AnyRef<'a>, String> {
    v.get(i).ok_or_else(|| malformed(&format!("{what} is too short")))
}

fn oid(what: &str, a: &AnyRef) -> Result<Oid, String> {
    a.decode_as::<Oid>().map_err(|_| malformed(&format!("{what} is not an object identifier")))
}

fn octets<'a>(what: &str, a: &AnyRef<'a>) -> Result<&'a [u8], String> {
    if a.tag() != Tag::OctetString {
        return Err(malformed(&format!("{what} is not an OCTET STRING")));
    }
    Ok(a.value())
}

/// `[n]` EXPLICIT: the one element inside.
fn explicit<'a>(what: &str, a: &AnyRef<'a>, n: u8) -> Result<AnyRef<'a>, String> {
    if a.tag() != (Tag::ContextSpecific { constructed: true, number: TagNumber(n as u32) }) {
        return Err(malformed(&format!("{what} is not [{n}]")));
    }
    let mut v = elements(what, a.value())?;
    if v.len() != 1 {
        return Err(malformed(&format!("{what} holds {} elements", v.len())));
    }
    Ok(v.remove(0))
}

/// An AlgorithmIdentifier's OID.
fn algorithm(what: &str, a: &AnyRef) -> Result<Oid, String> {
    oid(what, at(what, &seq(what, a)?, 0)?)
}

/// GeneralizedTime `YYYYMMDDHHMMSS[.f*]Z` (a TSA may give fractions; der's type refuses them).
fn gen_time(a: &AnyRef) -> Result<Time, String> {
    if a.tag() != Tag::GeneralizedTime {
        return Err(malformed("genTime is not a GeneralizedTime"));
    }
    let s = std::str::from_utf8(a.value()).map_err(|_| malformed("genTime"))?;
    let body = s.strip_suffix('Z').ok_or_else(|| malformed("genTime is not in UTC"))?;
    let (whole, frac) = body.split_once('.').unwrap_or((body, "0"));
    if whole.len() != 14 || !frac.bytes().all(|b| b.is_ascii_digit()) || frac.is_empty() {
        return Err(malformed(&format!("genTime {s:?}")));
    }
    chrono::NaiveDateTime::parse_from_str(whole, "%Y%m%d%H%M%S")
        .map(|t| t.and_utc().timestamp())
        .map_err(|_| malformed(&format!("genTime {s:?}")))
}

/// What a timestamp response says, read but not yet trusted.
struct Token<'a> {
    tst_info: &'a [u8],
    imprint_hash: Hash,
    imprint: &'a [u8],
    time: Time,
    digest_hash: Hash,
    content_type: Option<Oid>,
    message_digest: &'a [u8],
    /// The signed attributes as a DER SET: what the signature is over.
    signed_attrs: Vec<u8>,
    signature_hash: Hash,
    signature: &'a [u8],
    /// The signer's issuer (a DER Name) and serial number (INTEGER contents).
    issuer: Vec<u8>,
    serial: &'a [u8],
}

/// Read a `TimeStampResp` (or a bare `TimeStampToken`) as DER.
fn read(der: &[u8]) -> Result<Token<'_>, String> {
    let top = AnyRef::from_der(der).map_err(|e| malformed(&e.to_string()))?;
    let items = seq("the response", &top)?;
    // TimeStampResp ::= SEQUENCE { status PKIStatusInfo, timeStampToken ContentInfo OPTIONAL }
    let content_info = if at("the response", &items, 0)?.tag() == Tag::Sequence {
        let status = seq("status", &items[0])?;
        let code = at("status", &status, 0)?.value();
        if code != [0] && code != [1] {
            return Err(format!("the timestamp authority did not grant the timestamp (status {code:?})"));
        }
        seq("timeStampToken", at("the response", &items, 1)?)?
    } else {
        items
    };
    if oid("contentType", at("timeStampToken", &content_info, 0)?)? != OID_SIGNED_DATA {
        return Err(malformed("the token is not CMS SignedData"));
    }
    let signed_data = seq("SignedData", &explicit("content", at("timeStampToken", &content_info, 1)?, 0)?)?;
    // SignedData ::= SEQUENCE { version, digestAlgorithms, encapContentInfo, [0] certificates
    //   OPTIONAL, [1] crls OPTIONAL, signerInfos }
    let encap = seq("encapContentInfo", at("SignedData", &signed_data, 2)?)?;
    if oid("eContentType", at("encapContentInfo", &encap, 0)?)? != OID_TST_INFO {
        return Err(malformed("the signed content is not a TSTInfo"));
    }
    let tst_info = octets("eContent", &explicit("eContent", at("encapContentInfo", &encap, 1)?, 0)?)?;
    let signer_infos = inner("signerInfos", signed_data.last().ok_or_else(|| malformed("SignedData"))?, Tag::Set)?;
    let [signer] = signer_infos.as_slice() else {
        return Err(malformed(&format!("{} signer infos (one expected)", signer_infos.len())));
    };
    // SignerInfo ::= SEQUENCE { version, sid, digestAlgorithm, [0] signedAttrs, signatureAlgorithm,
    //   signature, [1] unsignedAttrs OPTIONAL }
    let si = seq("SignerInfo", signer)?;
    let sid = seq("the signer's IssuerAndSerialNumber", at("SignerInfo", &si, 1)?)?;
    let issuer = at("sid", &sid, 0)?.to_der().map_err(|_| malformed("sid"))?;
    let serial_any = at("sid", &sid, 1)?;
    if serial_any.tag() != Tag::Integer {
        return Err(malformed("the signer's serial number"));
    }
    let digest_hash = hash_of(&algorithm("digestAlgorithm", at("SignerInfo", &si, 2)?)?)
        .ok_or_else(|| "the timestamp's digest algorithm is not SHA-256, -384 or -512".to_string())?;
    let attrs_any = at("SignerInfo", &si, 3)?;
    if attrs_any.tag() != (Tag::ContextSpecific { constructed: true, number: TagNumber(0) }) {
        return Err(malformed("the signer has no signed attributes"));
    }
    let signed_attrs = AnyRef::new(Tag::Set, attrs_any.value())
        .and_then(|a| a.to_der())
        .map_err(|_| malformed("signed attributes"))?;
    let (mut content_type, mut message_digest) = (None, None);
    for attr in elements("signedAttrs", attrs_any.value())? {
        let a = seq("an attribute", &attr)?;
        let kind = oid("an attribute's type", at("an attribute", &a, 0)?)?;
        let values = inner("an attribute's values", at("an attribute", &a, 1)?, Tag::Set)?;
        let [value] = values.as_slice() else { return Err(malformed("an attribute with other than one value")) };
        if kind == OID_CONTENT_TYPE {
            content_type = Some(oid("contentType", value)?);
        } else if kind == OID_MESSAGE_DIGEST {
            message_digest = Some(octets("messageDigest", value)?);
        }
    }
    let signature_hash =
        signature_hash(&algorithm("signatureAlgorithm", at("SignerInfo", &si, 4)?)?)?.unwrap_or(digest_hash);
    let signature = octets("signature", at("SignerInfo", &si, 5)?)?;
    // TSTInfo ::= SEQUENCE { version, policy, messageImprint, serialNumber, genTime, ... }
    let tst = seq("TSTInfo", &AnyRef::from_der(tst_info).map_err(|e| malformed(&format!("TSTInfo: {e}")))?)?;
    let imprint = seq("messageImprint", at("TSTInfo", &tst, 2)?)?;
    let imprint_hash = hash_of(&algorithm("messageImprint", at("messageImprint", &imprint, 0)?)?)
        .ok_or_else(|| "the timestamp's message imprint is not SHA-256, -384 or -512".to_string())?;
    Ok(Token {
        tst_info,
        imprint_hash,
        imprint: octets("hashedMessage", at("messageImprint", &imprint, 1)?)?,
        time: gen_time(at("TSTInfo", &tst, 4)?)?,
        digest_hash,
        content_type,
        message_digest: message_digest.ok_or_else(|| malformed("no messageDigest attribute"))?,
        signed_attrs,
        signature_hash,
        signature,
        issuer,
        serial: serial_any.value(),
    })
}

/// The TSA's signing certificate's issuer (DER) and serial (INTEGER contents).
fn issuer_and_serial(c: &x509_cert::Certificate) -> Option<(Vec<u8>, Vec<u8>)> {
    let tbs = c.tbs_certificate();
    let serial = tbs.serial_number().to_der().ok()?;
    let serial = AnyRef::from_der(&serial).ok()?.value().to_vec();
    Some((tbs.issuer().to_der().ok()?, serial))
}

/// Verify a timestamp response (DER) over `signed` (the signature's bytes) against `tsas`.
pub fn verify<'r>(der: &[u8], signed: &[u8], tsas: &'r [Authority]) -> Result<Stamp<'r>, String> {
    let t = read(der)?;
    if t.imprint_hash.digest(signed) != t.imprint {
        return Err("the timestamp is over another signature (its message imprint differs)".into());
    }
    if t.content_type != Some(OID_TST_INFO) {
        return Err(malformed("the signed attributes' contentType is not id-ct-TSTInfo"));
    }
    if t.digest_hash.digest(t.tst_info) != t.message_digest {
        return Err("the timestamp is tampered: its signed attributes do not match its TSTInfo".into());
    }
    let mut why = Vec::new();
    let mut signers = 0;
    for tsa in tsas {
        let Some(leaf) = tsa.chain.first() else { continue };
        let Ok(cert) = x509_cert::Certificate::from_der(leaf) else { continue };
        if issuer_and_serial(&cert).is_none_or(|(i, s)| i != t.issuer || s != t.serial) {
            continue;
        }
        signers += 1;
        if !tsa.valid.covers(t.time) {
            why.push(format!("{}: not valid at {}", tsa.name, show_time(t.time)));
            continue;
        }
        match verify_with(&t, &cert, leaf, &tsa.chain[1..]) {
            Ok(()) => return Ok(Stamp { time: t.time, tsa }),
            Err(w) => why.push(format!("{}: {w}", tsa.name)),
        }
    }
    if signers == 0 {
        return Err("the timestamp is signed by a TSA not in the trusted root".into());
    }
    Err(format!("the timestamp does not verify ({})", why.join("; ")))
}

/// The signature by `leaf`'s key, and `leaf` chaining through `chain` at the timestamp's time.
fn verify_with(t: &Token, cert: &x509_cert::Certificate, leaf: &[u8], chain: &[Vec<u8>]) -> Result<(), String> {
    let spki =
        cert.tbs_certificate().subject_public_key_info().to_der().map_err(|e| format!("unreadable key ({e})"))?;
    let key = PublicKey::from_spki_der(&spki)?;
    if !key.verify_with(t.signature_hash, &t.signed_attrs, t.signature) {
        return Err("its signature does not verify with the TSA's key".into());
    }
    let ee_der = CertificateDer::from(leaf);
    let ee = webpki::EndEntityCert::try_from(&ee_der).map_err(|e| format!("unreadable certificate ({e:?})"))?;
    if chain.is_empty() {
        // A TSA certificate trusted on its own: its validity and usage are still checked.
        return chains_to(&ee, &[leaf.to_vec()], t.time, TIME_STAMPING);
    }
    chains_to(&ee, chain, t.time, TIME_STAMPING)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let seeds: [&[u8]; 4] = [b"", b"\x30\x00", b"\x30\x03\x30\x01\x02", b"\x30\x84\xff\xff\xff\xff"];
        for s in seeds {
            assert!(verify(s, b"sig", &[]).is_err());
        }
        let mut deep = Vec::new();
        for _ in 0..2000 {
            deep = [vec![0x30, 0x82, (deep.len() >> 8) as u8, deep.len() as u8], deep].concat();
        }
        assert!(verify(&deep, b"sig", &[]).is_err());
    }

    #[test]
    fn gen_time_takes_fractions_and_refuses_local_times() {
        let t = |s: &str| gen_time(&AnyRef::new(Tag::GeneralizedTime, s.as_bytes()).unwrap());
        assert_eq!(t("20240501120000Z").unwrap(), 1714564800);
        assert_eq!(t("20240501120000.123Z").unwrap(), 1714564800);
        assert!(t("20240501120000").is_err());
        assert!(t("20240501120000.Z").is_err());
        assert!(t("2024050112Z").is_err());
    }
}
