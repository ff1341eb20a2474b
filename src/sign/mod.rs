//! Cosign-compatible signing: keys, "simple signing" signatures, DSSE attestations and cosign
//! v3's sigstore bundles. The pure formats ([`keys`], [`simple`], [`dsse`], [`attest`],
//! [`bundle`]) are apart from what touches the world: [`store`] reads and pushes `.sig`
//! manifests, [`publish`] pushes `.att` attestations and bundle referrers, [`referrers`] lists
//! and registers OCI 1.1 referrers (API or referrers tag), [`discover`] finds what describes a
//! digest (`.sig`, `.att`, referrers) once for every caller, [`check`] checks all three formats
//! for a digest, [`keyfile`] reads and writes key files (passwords come from the environment
//! or from the CLI's prompt).
//!
//! # What the format modules own
//! - **Cosign key files** ([`keys`]): generating an ECDSA P-256 key pair and writing it as cosign
//!   does (`ENCRYPTED SIGSTORE PRIVATE KEY`: scrypt + nacl/secretbox over PKCS#8, plus a
//!   `PUBLIC KEY` PKIX PEM), loading cosign/sigstore encrypted private keys and public keys, and
//!   the raw ECDSA P-256/SHA-256 (ASN.1 DER) sign and verify operations.
//! - **DSSE and in-toto** ([`dsse`]): statements, PAE, envelopes; **attestations** ([`attest`]):
//!   the `.att` manifest; **bundles** ([`bundle`]): sigstore bundle v0.3, its referrer manifest
//!   and the referrers tag's index.
//! - **Simple signing** ([`simple`]): the exact payload cosign signs, the `sha256-<hex>.sig` tag
//!   name, the signature layer and its annotations, the config blob and the `.sig` OCI manifest
//!   (appending signatures idempotently), and checking a `.sig` manifest's layers against a
//!   public key and an expected image digest.
//!
//! # What they must not touch
//! No image layers, no registries, no network, no filesystem. Everything here is a pure function
//! of its inputs (plus the OS random generator for key generation, salts, nonces and ECDSA
//! signing). Callers fetch and push blobs and manifests themselves: [`simple::append_signature`]
//! returns the manifest and config bytes to push, and [`simple::verify_signature_manifest`] takes
//! a closure that fetches a payload blob by digest. Key files on disk are [`keyfile`]'s; prompting
//! for passwords is the CLI's.
//!
//! The formats follow cosign and sigstore-rs; see `shared/reference/cosign-format.md`.
//!
//! Owns: the module map above, [`Rejected`] (why a signature, attestation or bundle does not
//! verify) and [`Signer`]. Must not: see the sections above (formats pure; I/O in the store
//! modules only).

/// Who signs and how: the key, the `org.opencontainers.image.created` time a bundle referrer
/// records (from `SOURCE_DATE_EPOCH`; none otherwise, so the same bundle gives the same
/// manifest), and where progress notes go.
#[derive(Clone, Copy)]
pub struct Signer<'a> {
    pub key: &'a SigningKey,
    pub created: Option<&'a str>,
    pub progress: &'a crate::progress::Progress,
}

#[cfg(test)]
impl<'a> Signer<'a> {
    /// The tests' signer: `key`, no creation time, no progress.
    pub fn quiet(key: &'a SigningKey) -> Signer<'a> {
        static QUIET: crate::progress::Progress = crate::progress::Progress::Quiet;
        Signer { key, created: None, progress: &QUIET }
    }
}

pub mod attest;
pub mod bundle;
pub mod check;
pub mod discover;
pub mod dsse;
pub mod keyfile;
pub mod keyless;
pub mod keys;
pub mod publish;
pub mod referrers;
pub mod simple;
pub mod store;

// What the store and the pipeline use; the rest is reached through the submodules.
pub use keys::{generate, SigningKey, VerifyingKey};
pub use simple::{
    append_signature, payload, sig_tag, verify_signature_manifest, LayerVerdict, SignatureLayer,
    OCI_MANIFEST_MEDIA_TYPE,
};

/// Largest envelope, bundle or payload blob read back (an SBOM of a big image is a few MiB).
pub const MAX_ENVELOPE: u64 = 64 << 20;

/// Why a signature, attestation or bundle found beside an image does not verify with a key, or
/// could not be checked at all: one line each, as `harden verify` and the source gate print
/// them. Callers match on the variant, never on the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// A `.sig` layer ([`simple`]).
    #[error(transparent)]
    Layer(#[from] simple::LayerFailure),
    /// A DSSE envelope ([`dsse`]): payload type, signature, statement, subject, predicate type.
    #[error(transparent)]
    Dsse(#[from] dsse::DsseFailure),
    /// A DSSE envelope signed by another key than the one tried, as the bundle's hint says.
    #[error("{failure} (the bundle names key {named}, this key is {this})")]
    OtherKey { failure: dsse::DsseFailure, named: String, this: String },
    /// A `.att` layer of another media type.
    #[error("media type {0:?} is not {dsse_media}", dsse_media = attest::DSSE_MEDIA_TYPE)]
    AttMediaType(String),
    #[error("layer descriptor has no digest")]
    NoDigest,
    /// A blob (`envelope`, `bundle`) could not be fetched.
    #[error("cannot fetch the {what}: {why}")]
    Fetch { what: &'static str, why: String },
    #[error("envelope digest is {found}, layer says {expected}")]
    EnvelopeDigest { found: String, expected: String },
    #[error("the referrer's manifest names subject {found}, not {expected}")]
    ReferrerSubject { found: String, expected: String },
    #[error("the referrer has no bundle layer")]
    NoBundleLayer,
    /// A bundle referrer not shaped as cosign's `ociremote.Bundle` reads one.
    #[error("{0}")]
    ReferrerShape(String),
    /// A bundle cosign v3 would not accept ([`bundle::bundle_shape`]): its version, an
    /// unknown field, not exactly one key material, envelope or signature.
    #[error("{0}")]
    BundleShape(String),
    #[error("the bundle layer has no digest")]
    NoBundleDigest,
    #[error("the bundle's content is not {0}")]
    BundleContent(String),
    #[error("the bundle is not JSON ({0})")]
    BundleJson(String),
    #[error("the bundle's media type {0:?} is not a sigstore bundle's")]
    BundleMediaType(String),
    #[error("the bundle holds no DSSE envelope (a message signature?)")]
    NoEnvelope,
    /// A manifest (`.sig`, `.att`, a referrer) that is not JSON.
    #[error("{0}")]
    NotJson(String),
    #[error("holds no signature layers")]
    NoSignatureLayers,
    /// A manifest or the referrers that could not be read (the look-up's error, one line).
    #[error("{0}")]
    Unreadable(String),
    #[error("no key given")]
    NoKey,
    /// Tried with several keys: the first key's reason.
    #[error("with none of the {n} keys: {first}")]
    NoneOfKeys { n: usize, first: Box<Rejected> },
}

/// Everything that can go wrong with keys and signatures. Messages are one line each.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The secretbox did not open: the password is wrong (or the ciphertext was altered).
    #[error("wrong password for the encrypted private key (or the key file was modified)")]
    WrongPassword,
    /// The key file is not a readable cosign key: bad PEM, base64, JSON or DER.
    #[error("corrupt key file: {0}")]
    CorruptKey(String),
    /// The key is well formed but not ECDSA P-256, the only type harden signs with.
    #[error("unsupported key type: {0} (harden supports only ECDSA P-256 keys)")]
    UnsupportedKey(String),
    /// The key file uses a KDF, KDF parameters or cipher that harden refuses to run.
    #[error("unsupported key encryption: {0}")]
    UnsupportedEncryption(String),
    /// The public key file could not be read as a PEM `PUBLIC KEY`.
    #[error("invalid public key: {0}")]
    InvalidPublicKey(String),
    /// The signature does not verify against the payload with this key.
    #[error("signature verification failed")]
    BadSignature,
    /// The OS random generator or a cryptographic primitive failed.
    #[error("cryptographic failure: {0}")]
    Crypto(String),
}
