//! `harden keygen`, `sign`, `attest` and `verify`, and where harden asks for a key password on
//! the terminal (the library takes passwords from the environment or from these prompts; the
//! prompt itself is [`super::prompt`]).
//!
//! Owns: these commands' flags and their stdout. Must not: hold the formats or the policy (they
//! are [`harden::sign`]'s).

use super::args::Net;
use super::{block_on, outln, prompt, terminal, usage};
use anyhow::{bail, Context, Result};
use clap::Args;
use harden::digest::Digest;
use harden::progress::Progress;
use harden::reference::ImageRef;
use harden::sign::{check, dsse, keyfile, keyless, publish, store};
use harden::sign::{Signer, SigningKey};
use harden::source::walk;
use harden::transport::Endpoint;
use harden::Failure;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args)]
pub struct KeygenArgs {
    /// Write PREFIX.key and PREFIX.pub.
    #[arg(long, default_value = "cosign", value_name = "PREFIX")]
    output: String,
    /// Overwrite existing files.
    #[arg(long)]
    force: bool,
    /// Encrypt the private key with an empty password (refused otherwise).
    #[arg(long)]
    empty_password: bool,
}

#[derive(Args)]
#[command(after_help = harden::reference::SIGNABLE_FORMS)]
pub struct SignArgs {
    /// Image to sign (forms below).
    image: String,
    /// Encrypted cosign private key; its password comes from HARDEN_PASSWORD (or
    /// COSIGN_PASSWORD), else the terminal.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Add KEY=VALUE to the signed payload's optional annotations; repeatable.
    #[arg(long = "annotation", short = 'a', value_name = "KEY=VALUE")]
    annotations: Vec<String>,
    /// Sign in cosign v3's format instead of the legacy .sig: a sigstore bundle (DSSE, no
    /// transparency log) stored as an OCI referrer of each manifest signed (the referrers tag
    /// sha256-<hex> where the registry has no referrers API).
    #[arg(long)]
    bundle: bool,
    /// No progress on stderr.
    #[arg(long, short = 'q')]
    quiet: bool,
    #[command(flatten)]
    net: Net,
}

#[derive(Args)]
#[command(after_help = harden::reference::SIGNABLE_FORMS)]
pub struct AttestArgs {
    /// Image to attest (forms below; a tag is resolved to its digest).
    image: String,
    /// Encrypted cosign private key (password as for `sign`).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// The predicate: a JSON object.
    #[arg(long, value_name = "FILE")]
    predicate: PathBuf,
    /// Its type: a URI, or slsaprovenance1, cyclonedx, spdxjson, openvex, vuln.
    #[arg(long = "type", value_name = "URI|NAME")]
    predicate_type: String,
    /// Store it in cosign v3's format instead of the legacy .att: a sigstore bundle referrer
    /// of the image (without it, a bundle is written too when the image has one already,
    /// since cosign v3 then reads bundles only).
    #[arg(long)]
    bundle: bool,
    /// No progress on stderr.
    #[arg(long, short = 'q')]
    quiet: bool,
    #[command(flatten)]
    net: Net,
}

#[derive(Args)]
#[command(after_help = harden::reference::SIGNABLE_FORMS)]
pub struct VerifyArgs {
    /// Image to check (forms below).
    image: String,
    /// Cosign public key (PEM `PUBLIC KEY`, ECDSA P-256); repeatable: any of them may verify.
    /// Or keyless (below), or both: any accepted signer passes.
    #[arg(long, value_name = "FILE")]
    key: Vec<PathBuf>,
    /// Require a verifying attestation of this predicate type (URI or cosign's name, e.g.
    /// slsaprovenance1, cyclonedx) whose subject is the image, instead of a signature;
    /// repeatable.
    #[arg(long, value_name = "TYPE")]
    attestation: Vec<String>,
    #[command(flatten)]
    keyless: super::keyless::VerifyKeyless,
    /// No details on stderr.
    #[arg(long, short = 'q')]
    quiet: bool,
    #[command(flatten)]
    net: Net,
}

/// The password of the private key at `path`, asked on the terminal (when there is one).
pub fn ask_key_password(path: &Path) -> Result<String> {
    if !terminal() {
        return Err(keyfile::no_password());
    }
    prompt(&format!("Enter password for private key {}: ", path.display()))
}

/// Load a private key, asking its password on the terminal when the environment has none.
pub fn load_signing_key(path: &Path) -> Result<SigningKey> {
    keyfile::load_signing_key(path, || ask_key_password(path))
}

/// `-a key=value` arguments as the payload's `optional` map (a later key replaces an earlier one).
fn parse_annotations(args: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for a in args {
        match a.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                out.insert(k.to_string(), v.to_string());
            }
            _ => bail!(Failure::Usage(format!("annotation `{a}` is not key=value"))),
        }
    }
    Ok(out)
}

pub fn keygen(a: KeygenArgs) -> Result<ExitCode> {
    let password = keyfile::keygen_password(a.empty_password, terminal(), || {
        let first = prompt("Enter password for private key: ")?;
        let again = prompt("Enter password for private key again: ")?;
        if first != again {
            bail!(Failure::Usage("the passwords do not match".into()));
        }
        Ok(first)
    })?;
    let (k, p) = keyfile::keygen(&a.output, a.force, &password)?;
    eprintln!("Private key written to {}", k.display());
    eprintln!("Public key written to {}", p.display());
    Ok(ExitCode::SUCCESS)
}

pub fn sign(a: SignArgs) -> Result<ExitCode> {
    let r = ImageRef::parse(&a.image).map_err(usage)?;
    let annotations = parse_annotations(&a.annotations)?;
    let key = load_signing_key(&a.key)?;
    let progress = Progress::new(a.quiet);
    let net = a.net.options(&progress)?;
    let created = harden::config::source_date_epoch()?.map(|(_, s)| s);
    let signer = Signer { key: &key, created: created.as_deref(), progress: &progress };
    let signed = block_on(&progress, "interrupted", async {
        let ep = Endpoint::open(&r, &net)?;
        if !a.bundle {
            return Ok(store::sign(&ep, &r, signer, &annotations).await?.into_iter().map(|s| s.image_digest).collect());
        }
        // cosign v3's format: a bundle per manifest (the index's line first, signed last).
        let w = walk::walk(&ep, &r).await?;
        let mut digests: Vec<Digest> = w.digests().into_iter().filter(|d| **d != w.top.digest).cloned().collect();
        digests.push(w.top.digest.clone());
        for d in &digests {
            publish::bundle_digest(&ep, &r, d, signer, &annotations).await?;
        }
        digests.rotate_right(1);
        Ok::<Vec<Digest>, anyhow::Error>(digests)
    })?;
    for d in signed {
        outln(&r.by_digest(&d).to_string())?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn attest(a: AttestArgs) -> Result<ExitCode> {
    let r = ImageRef::parse(&a.image).map_err(usage)?;
    let predicate_type = dsse::predicate_type(&a.predicate_type).map_err(usage)?;
    let text =
        std::fs::read(&a.predicate).with_context(|| format!("--predicate {}: cannot read", a.predicate.display()))?;
    let predicate: serde_json::Value = serde_json::from_slice(&text)
        .with_context(|| format!("--predicate {}: not valid JSON", a.predicate.display()))?;
    if !predicate.is_object() {
        bail!("--predicate {}: a predicate is a JSON object", a.predicate.display());
    }
    let key = load_signing_key(&a.key)?;
    let progress = Progress::new(a.quiet);
    let net = a.net.options(&progress)?;
    let created = harden::config::source_date_epoch()?.map(|(_, s)| s);
    let signer = Signer { key: &key, created: created.as_deref(), progress: &progress };
    let (pinned, _) = block_on(&progress, "interrupted", async {
        let ep = Endpoint::open(&r, &net)?;
        let image = ep.manifest(&r).await?;
        let subject =
            dsse::Subject { name: r.repository_name(), digest: image.digest.to_string(), annotations: BTreeMap::new() };
        let statement = dsse::statement(&subject, &predicate_type, &predicate);
        let claim = publish::Claim { digest: &image.digest, predicate_type: &predicate_type, statement: &statement };
        // cosign v3 reads only the bundles of a digest that has any: a legacy .att beside
        // them would not be seen, so one goes there too.
        if a.bundle || publish::has_bundle(&ep, &r, &image.digest).await? {
            publish::bundle_statement(&ep, &r, claim, signer).await?;
        }
        if !a.bundle {
            publish::attest_digest(&ep, &r, claim, signer).await?;
        }
        Ok((r.by_digest(&image.digest), ()))
    })?;
    outln(&pinned)?;
    Ok(ExitCode::SUCCESS)
}

pub fn verify(a: VerifyArgs) -> Result<ExitCode> {
    let r = ImageRef::parse(&a.image).map_err(usage)?;
    let keys = a.key.iter().map(|k| keyfile::load_verifying_key(k)).collect::<Result<Vec<_>>>()?;
    let types = a.attestation.iter().map(|t| dsse::predicate_type(t)).collect::<Result<Vec<_>, _>>().map_err(usage)?;
    let names: Vec<String> = a.key.iter().map(|k| k.display().to_string()).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let progress = if a.quiet { Progress::Quiet } else { Progress::Plain };
    let net = a.net.options(&progress)?;
    let gate = a.keyless.gate()?;
    if keys.is_empty() && gate.is_none() {
        return Err(usage("verify needs --key FILE or keyless flags (--certificate-identity, --certificate-oidc-issuer, --trusted-root)"));
    }
    let (digest, ex, keyless) = block_on(&progress, "interrupted", async {
        let ep = Endpoint::open(&r, &net)?;
        let image = ep.manifest(&r).await?;
        let ex = if keys.is_empty() { None } else { Some(check::examine(&ep, &r, &image.digest, &keys).await?) };
        let keyless = match &gate {
            Some(g) => Some(keyless::find::examine(&ep, &r, &image.digest, &g.root, &g.policy).await?),
            None => None,
        };
        Ok((image.digest, ex, keyless))
    })?;
    if !a.quiet {
        for l in ex.iter().flat_map(|ex| &ex.lines) {
            eprintln!("harden: {}", l.describe(&names));
        }
        for l in keyless.iter().flatten() {
            eprintln!("harden: {l}");
        }
    }
    // Any accepted signer passes: a key, or a keyless identity.
    let keyed = ex.as_ref().map(|ex| check::require(&r, ex, &names, &types));
    let keyless_ok = match (&gate, &keyless) {
        (Some(g), Some(lines)) => {
            Some(super::keyless::require(&r.by_digest(&digest).to_string(), lines, &g.policy, &types))
        }
        _ => None,
    };
    match (keyed, keyless_ok) {
        (Some(Ok(())), _) | (_, Some(Ok(()))) => {}
        (Some(Err(e)), None) | (None, Some(Err(e))) => return Err(e.into()),
        (Some(Err(k)), Some(Err(kl))) => return Err(Failure::Policy(format!("{k}; and keyless: {kl}")).into()),
        (None, None) => return Err(usage("verify needs --key FILE or keyless flags")),
    }
    outln(&r.by_digest(&digest).to_string())?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations_parse() {
        let a = parse_annotations(&["k=v".into(), "x=a=b".into(), "k=w".into()]).unwrap();
        assert_eq!(a.get("k").map(String::as_str), Some("w"));
        assert_eq!(a.get("x").map(String::as_str), Some("a=b"));
        assert!(parse_annotations(&["novalue".into()]).is_err());
        assert!(parse_annotations(&["=v".into()]).is_err());
    }
}
