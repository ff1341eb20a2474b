//! The public keys Sigstore's certificates, logs and timestamp authorities use: ECDSA P-256,
//! P-384, Ed25519 and RSA (PKCS #1 v1.5, 2048–8192 bits, which some TSAs still sign with), read
//! from DER SPKI, verified with ring.
//!
//! Owns: keys and raw signature checks. Must not: know what is signed.

use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use x509_cert::der::asn1::ObjectIdentifier as Oid;
use x509_cert::der::Decode;
use x509_cert::spki::SubjectPublicKeyInfoOwned;

const OID_EC: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
const OID_P256: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: Oid = Oid::new_unwrap("1.3.132.0.34");
const OID_ED25519: Oid = Oid::new_unwrap("1.3.101.112");
const OID_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");

/// Unix seconds.
pub type Time = i64;

/// The digest a signature is made over (what a CMS signer names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        use sha2::Digest as _;
        match self {
            Hash::Sha256 => sha2::Sha256::digest(data).to_vec(),
            Hash::Sha384 => sha2::Sha384::digest(data).to_vec(),
            Hash::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    P256,
    P384,
    Ed25519,
    Rsa,
}

/// A verification key: ECDSA P-256, P-384, Ed25519 or RSA.
#[derive(Debug, Clone)]
pub struct PublicKey {
    kind: Kind,
    point: Vec<u8>,
}

impl PublicKey {
    pub fn from_spki_der(der: &[u8]) -> Result<PublicKey, String> {
        let spki = SubjectPublicKeyInfoOwned::from_der(der).map_err(|e| format!("not a public key ({e})"))?;
        let point = spki.subject_public_key.raw_bytes().to_vec();
        let kind = if spki.algorithm.oid == OID_ED25519 {
            Kind::Ed25519
        } else if spki.algorithm.oid == OID_RSA {
            Kind::Rsa
        } else if spki.algorithm.oid == OID_EC {
            let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.decode_as::<Oid>().ok());
            match curve {
                Some(c) if c == OID_P256 => Kind::P256,
                Some(c) if c == OID_P384 => Kind::P384,
                _ => return Err("an EC key on a curve other than P-256 or P-384".into()),
            }
        } else {
            return Err(format!("unsupported key algorithm {}", spki.algorithm.oid));
        };
        Ok(PublicKey { kind, point })
    }

    /// With the key's usual digest: SHA-256 for P-256 and RSA, SHA-384 for P-384.
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        let hash = if self.kind == Kind::P384 { Hash::Sha384 } else { Hash::Sha256 };
        self.verify_with(hash, message, sig)
    }

    /// Over `hash` of `message` (Ed25519 ignores `hash`: it has its own).
    pub fn verify_with(&self, hash: Hash, message: &[u8], sig: &[u8]) -> bool {
        use signature as s;
        let alg: &'static dyn VerificationAlgorithm = match (self.kind, hash) {
            (Kind::Ed25519, _) => &s::ED25519,
            (Kind::P256, Hash::Sha256) => &s::ECDSA_P256_SHA256_ASN1,
            (Kind::P256, Hash::Sha384) => &s::ECDSA_P256_SHA384_ASN1,
            (Kind::P384, Hash::Sha256) => &s::ECDSA_P384_SHA256_ASN1,
            (Kind::P384, Hash::Sha384) => &s::ECDSA_P384_SHA384_ASN1,
            (Kind::P256 | Kind::P384, Hash::Sha512) => return false,
            (Kind::Rsa, Hash::Sha256) => &s::RSA_PKCS1_2048_8192_SHA256,
            (Kind::Rsa, Hash::Sha384) => &s::RSA_PKCS1_2048_8192_SHA384,
            (Kind::Rsa, Hash::Sha512) => &s::RSA_PKCS1_2048_8192_SHA512,
        };
        UnparsedPublicKey::new(alg, &self.point).verify(message, sig).is_ok()
    }
}
