//! Cosign key files on disk: writing a new pair, loading a private key (with a password the
//! caller supplies) or a public key, and where a password may come from in the environment.
//!
//! Owns: key files and their modes, [`PASSWORD_ENV`]. Must not: prompt on a terminal (the CLI
//! does, through the `ask` closures), or do the cryptography (that is [`super::keys`]).

use crate::sign::{self, keys, SigningKey, VerifyingKey};
use crate::Failure;
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};

/// Environment variables holding the key password, in the order they are read.
pub const PASSWORD_ENV: [&str; 2] = ["HARDEN_PASSWORD", "COSIGN_PASSWORD"];

/// The password from the environment: `(variable, value)` of the first of [`PASSWORD_ENV`] set.
/// An empty value counts (it is how a key without password is used non-interactively).
pub fn env_password() -> Result<Option<(&'static str, String)>> {
    for name in PASSWORD_ENV {
        if let Some(v) = std::env::var_os(name) {
            let v = v.into_string().map_err(|_| anyhow!("{name} is not valid UTF-8"))?;
            return Ok(Some((name, v)));
        }
    }
    Ok(None)
}

pub fn no_password() -> anyhow::Error {
    Failure::Usage(format!(
        "no password: set {} (or {}), or run on a terminal to be asked",
        PASSWORD_ENV[0], PASSWORD_ENV[1]
    ))
    .into()
}

/// The password for a new key: `--empty-password`, else the environment, else `ask` (on a
/// terminal only). An empty password is refused unless asked for with `--empty-password`.
pub fn keygen_password(empty_password: bool, terminal: bool, ask: impl FnOnce() -> Result<String>) -> Result<String> {
    choose_keygen_password(env_password()?, empty_password, terminal, ask)
}

fn choose_keygen_password(
    env: Option<(&str, String)>,
    empty_password: bool,
    terminal: bool,
    ask: impl FnOnce() -> Result<String>,
) -> Result<String> {
    if empty_password {
        if let Some((name, v)) = &env {
            if !v.is_empty() {
                bail!(Failure::Usage(format!("--empty-password conflicts with {name}, which is set and not empty")));
            }
        }
        return Ok(String::new());
    }
    let pw = match env {
        Some((_, v)) => v,
        None if terminal => ask()?,
        None => return Err(no_password()),
    };
    if pw.is_empty() {
        bail!(Failure::Usage("empty password: pass --empty-password to write a private key without one".into()));
    }
    Ok(pw)
}

/// Write `PREFIX.key` (mode 0600) and `PREFIX.pub` as `cosign generate-key-pair` does. Existing
/// files are left alone unless `force`.
pub fn keygen(prefix: &str, force: bool, password: &str) -> Result<(PathBuf, PathBuf)> {
    use std::os::unix::fs::PermissionsExt;
    let key_path = PathBuf::from(format!("{prefix}.key"));
    let pub_path = PathBuf::from(format!("{prefix}.pub"));
    if !force {
        for p in [&key_path, &pub_path] {
            if p.symlink_metadata().is_ok() {
                bail!("{} already exists; --force overwrites it", p.display());
            }
        }
    }
    let (private_pem, public_pem) =
        sign::generate(password.as_bytes()).map_err(|e| anyhow!("generating a key pair: {e}"))?;
    // write_atomic goes through a temporary file created 0600, so the key is never readable by others.
    crate::files::write_atomic(&key_path, private_pem.as_bytes())
        .with_context(|| format!("writing {}", key_path.display()))?;
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600))?;
    crate::files::write_atomic(&pub_path, public_pem.as_bytes())
        .with_context(|| format!("writing {}", pub_path.display()))?;
    std::fs::set_permissions(&pub_path, std::fs::Permissions::from_mode(0o644))?;
    Ok((key_path, pub_path))
}

/// Load a cosign encrypted private key (harden's, cosign's or sigstore-rs's), with the password
/// from the environment (empty allowed) or else from `ask` (called only for an encrypted cosign
/// key). Wrong password, corrupt file and
/// unsupported key type each give one line naming the file.
pub fn load_signing_key(path: &Path, ask: impl FnOnce() -> Result<String>) -> Result<SigningKey> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read the private key {}", path.display()))?;
    let pem = String::from_utf8_lossy(&bytes);
    let fail = |e: sign::SignError| anyhow!("{}: {e}", path.display());
    // Refuse what is not an encrypted cosign key before asking for a password for it.
    match keys::pem_decode(&pem) {
        Ok((label, _)) if label == keys::SIGSTORE_PRIVATE_KEY_LABEL || label == keys::COSIGN_PRIVATE_KEY_LABEL => {}
        // Not a cosign key: from_encrypted_pem names what is wrong without running the KDF.
        _ => return SigningKey::from_encrypted_pem(&pem, b"").map_err(fail),
    }
    let password = match env_password()? {
        Some((_, v)) => v,
        None => ask()?,
    };
    SigningKey::from_encrypted_pem(&pem, password.as_bytes()).map_err(fail)
}

/// Load a cosign public key (`PUBLIC KEY` PEM, ECDSA P-256).
pub fn load_verifying_key(path: &Path) -> Result<VerifyingKey> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read the public key {}", path.display()))?;
    VerifyingKey::from_pem(&String::from_utf8_lossy(&bytes)).map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// Read a Sigstore `trusted_root.json` (bounded by [`super::keyless::root::MAX_ROOT`]). Errors
/// name the file and its fault (exit 1).
pub fn load_trusted_root(path: &Path) -> Result<super::keyless::TrustedRoot> {
    use std::io::Read;
    let max = super::keyless::root::MAX_ROOT;
    let f = std::fs::File::open(path).with_context(|| format!("trusted root {}: cannot open", path.display()))?;
    let mut bytes = Vec::new();
    f.take(max + 1).read_to_end(&mut bytes).with_context(|| format!("trusted root {}: cannot read", path.display()))?;
    if bytes.len() as u64 > max {
        anyhow::bail!("trusted root {}: larger than {max} bytes", path.display());
    }
    super::keyless::TrustedRoot::parse(&bytes).map_err(|e| anyhow::anyhow!("trusted root {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_password_rules() {
        let never = || -> Result<String> { panic!("must not prompt") };
        let env = |v: &str| Some(("HARDEN_PASSWORD", v.to_string()));
        assert_eq!(choose_keygen_password(env("pw"), false, false, never).unwrap(), "pw");
        assert!(choose_keygen_password(env(""), false, true, never).is_err(), "empty only with --empty-password");
        assert_eq!(choose_keygen_password(env(""), true, false, never).unwrap(), "");
        assert_eq!(choose_keygen_password(None, true, false, never).unwrap(), "");
        assert!(choose_keygen_password(env("pw"), true, false, never).is_err(), "--empty-password with a password set");
        assert!(choose_keygen_password(None, false, false, never).is_err(), "no terminal, no env");
        assert_eq!(choose_keygen_password(None, false, true, || Ok("typed".into())).unwrap(), "typed");
        assert!(choose_keygen_password(None, false, true, || Ok(String::new())).is_err());
    }

    #[test]
    fn keygen_writes_cosign_files_and_refuses_to_overwrite() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let prefix = tmp.path().join("k").display().to_string();
        let (kp, pp) = keygen(&prefix, false, "pw").unwrap();
        let pem = std::fs::read_to_string(&kp).unwrap();
        assert!(pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"), "{pem}");
        assert!(std::fs::read_to_string(&pp).unwrap().starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert_eq!(std::fs::metadata(&kp).unwrap().permissions().mode() & 0o777, 0o600);
        let k = SigningKey::from_encrypted_pem(&pem, b"pw").unwrap();
        assert_eq!(load_verifying_key(&pp).unwrap(), k.public_key());
        let e = keygen(&prefix, false, "pw").unwrap_err();
        assert!(e.to_string().contains("already exists"), "{e}");
        assert_eq!(std::fs::read_to_string(&kp).unwrap(), pem, "not overwritten");
        keygen(&prefix, true, "pw2").unwrap();
        assert_ne!(std::fs::read_to_string(&kp).unwrap(), pem, "--force overwrites");
    }

    #[test]
    fn load_signing_key_refuses_non_keys_before_asking() {
        let tmp = tempfile::tempdir().unwrap();
        let (_, public) = sign::generate(b"").unwrap();
        let p = tmp.path().join("x.pub");
        std::fs::write(&p, public).unwrap();
        let e = load_signing_key(&p, || panic!("must not ask")).unwrap_err();
        assert!(e.to_string().contains("is not"), "{e}");
        assert!(load_signing_key(&tmp.path().join("missing.key"), || panic!("must not ask"))
            .unwrap_err()
            .to_string()
            .contains("cannot read"));
    }
}
