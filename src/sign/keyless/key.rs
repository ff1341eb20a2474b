//! The public keys Sigstore's certificates and logs use: ECDSA P-256 (SHA-256), P-384
//! (SHA-384) and Ed25519, read from DER SPKI, verified with ring.
//!
//! Owns: keys and raw signature checks. Must not: know what is signed.

use ring::signature::{self, UnparsedPublicKey};
use x509_cert::der::asn1::ObjectIdentifier as Oid;
use x509_cert::der::Decode;
use x509_cert::spki::SubjectPublicKeyInfoOwned;

const OID_EC: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
const OID_P256: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: Oid = Oid::new_unwrap("1.3.132.0.34");
const OID_ED25519: Oid = Oid::new_unwrap("1.3.101.112");

/// Unix seconds.
pub type Time = i64;

/// A verification key: ECDSA P-256 (SHA-256), P-384 (SHA-384) or Ed25519.
#[derive(Debug, Clone)]
pub struct PublicKey {
    alg: &'static dyn signature::VerificationAlgorithm,
    point: Vec<u8>,
}

impl PublicKey {
    pub fn from_spki_der(der: &[u8]) -> Result<PublicKey, String> {
        let spki = SubjectPublicKeyInfoOwned::from_der(der).map_err(|e| format!("not a public key ({e})"))?;
        let point = spki.subject_public_key.raw_bytes().to_vec();
        let alg: &'static dyn signature::VerificationAlgorithm = if spki.algorithm.oid == OID_ED25519 {
            &signature::ED25519
        } else if spki.algorithm.oid == OID_EC {
            let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.decode_as::<Oid>().ok());
            match curve {
                Some(c) if c == OID_P256 => &signature::ECDSA_P256_SHA256_ASN1,
                Some(c) if c == OID_P384 => &signature::ECDSA_P384_SHA384_ASN1,
                _ => return Err("an EC key on a curve other than P-256 or P-384".into()),
            }
        } else {
            return Err(format!("unsupported key algorithm {}", spki.algorithm.oid));
        };
        Ok(PublicKey { alg, point })
    }

    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        UnparsedPublicKey::new(self.alg, &self.point).verify(message, sig).is_ok()
    }
}
