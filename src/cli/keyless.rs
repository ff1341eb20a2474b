//! The keyless flags: `verify`'s (cosign's names: `--certificate-identity[-regexp]`,
//! `--certificate-oidc-issuer[-regexp]`) and `rebuild`'s gate (`--require-identity[-regexp]`,
//! `--require-issuer[-regexp]`), both with `--trusted-root FILE`, turned into a
//! [`keyless::Gate`]; and the lines `verify` prints for keyless signatures.
//!
//! Owns: those flags and their usage errors. Must not: verify anything (sign::keyless's).

use anyhow::Result;
use clap::Args;
use harden::sign::keyless::{self, Gate, Policy};
use harden::Failure;
use std::path::{Path, PathBuf};

/// `harden verify`'s keyless flags.
#[derive(Args, Default)]
pub struct VerifyKeyless {
    /// Keyless: accept a certificate naming this identity (SAN: workflow URI, e-mail);
    /// repeatable, any may match. Needs an issuer and --trusted-root.
    #[arg(long, value_name = "IDENTITY")]
    certificate_identity: Vec<String>,
    /// Keyless: accept an identity this regular expression matches (unanchored, as cosign's).
    #[arg(long, value_name = "REGEXP")]
    certificate_identity_regexp: Vec<String>,
    /// Keyless: accept a certificate whose OIDC issuer is this; repeatable.
    #[arg(long, value_name = "ISSUER")]
    certificate_oidc_issuer: Vec<String>,
    /// Keyless: accept an OIDC issuer this regular expression matches.
    #[arg(long, value_name = "REGEXP")]
    certificate_oidc_issuer_regexp: Vec<String>,
    /// Sigstore trust material (trusted_root.json: Fulcio CAs, Rekor and CT log keys), e.g.
    /// from `cosign trusted-root create` or Sigstore's TUF repository.
    #[arg(long, value_name = "FILE")]
    trusted_root: Option<PathBuf>,
}

impl VerifyKeyless {
    pub fn gate(&self) -> Result<Option<Gate>> {
        gate(
            [
                &self.certificate_identity,
                &self.certificate_identity_regexp,
                &self.certificate_oidc_issuer,
                &self.certificate_oidc_issuer_regexp,
            ],
            self.trusted_root.as_deref(),
            ["--certificate-identity[-regexp]", "--certificate-oidc-issuer[-regexp]"],
        )
    }
}

/// `rebuild`'s keyless gate flags.
#[derive(Args, Default, Clone)]
pub struct RequireKeyless {
    /// Refuse the source unless it (each platform and the index) carries a keyless signature
    /// for this identity; repeatable (alternatives). With --require-signature, either passes.
    #[arg(long, value_name = "IDENTITY")]
    pub require_identity: Vec<String>,
    /// As --require-identity, a regular expression.
    #[arg(long, value_name = "REGEXP")]
    pub require_identity_regexp: Vec<String>,
    /// The OIDC issuer the identity must come from; repeatable.
    #[arg(long, value_name = "ISSUER")]
    pub require_issuer: Vec<String>,
    /// As --require-issuer, a regular expression.
    #[arg(long, value_name = "REGEXP")]
    pub require_issuer_regexp: Vec<String>,
    /// Sigstore trust material (trusted_root.json) for --require-identity.
    #[arg(long, value_name = "FILE")]
    pub trusted_root: Option<PathBuf>,
}

impl RequireKeyless {
    pub fn gate(&self) -> Result<Option<Gate>> {
        gate(
            [&self.require_identity, &self.require_identity_regexp, &self.require_issuer, &self.require_issuer_regexp],
            self.trusted_root.as_deref(),
            ["--require-identity[-regexp]", "--require-issuer[-regexp]"],
        )
    }
}

fn gate(v: [&Vec<String>; 4], root: Option<&Path>, names: [&str; 2]) -> Result<Option<Gate>> {
    Gate::from_flags(v.map(Vec::as_slice), root, names)
}

/// `verify`'s rule for keyless lines: some signature verifies (or, with `--attestation`, each
/// type has a verified bundle), else a policy failure (exit 3) naming why each one failed.
pub fn require(pinned: &str, lines: &[keyless::find::Line], policy: &Policy, types: &[String]) -> Result<(), Failure> {
    if types.is_empty() {
        return match keyless::find::signed(lines) {
            Ok(_) => Ok(()),
            Err(None) => Err(Failure::Policy(format!(
                "{pinned}: no keyless signatures (no .sig layer with a certificate, no keyless bundle among its referrers)"
            ))),
            Err(Some(why)) => {
                Err(Failure::Policy(format!("{pinned}: no keyless signature verifies for {}: {why}", policy.describe())))
            }
        };
    }
    for t in types {
        if keyless::find::attested(lines, t).is_none() {
            return Err(Failure::Policy(format!(
                "{pinned}: no keyless {t} attestation verifies for {}",
                policy.describe()
            )));
        }
    }
    Ok(())
}
