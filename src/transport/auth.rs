//! Registry credentials as docker, podman and skopeo find them: `REGISTRY_AUTH_FILE`,
//! `$DOCKER_CONFIG/config.json`, `~/.docker/config.json`; `auths` entries, `credHelpers` and
//! `credsStore` (docker-credential-* programs).
//!
//! Owns: finding credentials for a registry host. Must not: speak to registries (the client
//! does the challenge) or print secrets.

use anyhow::{anyhow, Context, Result};
use base64::Engine;
use std::path::PathBuf;
use std::process::{Command, Stdio};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    Anonymous,
    Basic(String, String),
}

fn config_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(f) = std::env::var("REGISTRY_AUTH_FILE") {
        out.push(PathBuf::from(f));
    }
    if let Ok(d) = std::env::var("DOCKER_CONFIG") {
        out.push(PathBuf::from(d).join("config.json"));
    } else if let Ok(h) = std::env::var("HOME") {
        out.push(PathBuf::from(h).join(".docker/config.json"));
    }
    out
}

/// Credentials for `registry` (host[:port]), or Anonymous when none are configured.
pub fn lookup(registry: &str) -> Result<Credentials> {
    let keys = [
        registry.to_string(),
        format!("https://{registry}"),
        format!("http://{registry}"),
        if registry == "docker.io" { "https://index.docker.io/v1/".to_string() } else { registry.to_string() },
    ];
    for file in config_files() {
        let Ok(text) = std::fs::read_to_string(&file) else { continue };
        let cfg: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", file.display()))?;
        if let Some(helper) = keys.iter().find_map(|k| cfg["credHelpers"][k].as_str()) {
            return helper_get(helper, registry);
        }
        for k in &keys {
            let entry = &cfg["auths"][k];
            if let Some(auth) = entry["auth"].as_str() {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(auth.trim())
                    .with_context(|| format!("{}: auths.{k}.auth is not base64", file.display()))?;
                let s = String::from_utf8(raw)
                    .with_context(|| format!("{}: auths.{k}.auth is not UTF-8", file.display()))?;
                let (u, p) = s
                    .split_once(':')
                    .ok_or_else(|| anyhow!("{}: auths.{k}.auth is not user:password", file.display()))?;
                return Ok(Credentials::Basic(u.into(), p.into()));
            }
            if let (Some(u), Some(p)) = (entry["username"].as_str(), entry["password"].as_str()) {
                return Ok(Credentials::Basic(u.into(), p.into()));
            }
        }
        if let Some(store) = cfg["credsStore"].as_str() {
            match helper_get(store, registry) {
                Ok(c) => return Ok(c),
                Err(_) => continue,
            }
        }
    }
    Ok(Credentials::Anonymous)
}

fn helper_get(helper: &str, registry: &str) -> Result<Credentials> {
    let prog = format!("docker-credential-{helper}");
    let mut child = Command::new(&prog)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run credential helper {prog}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        stdin.write_all(registry.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(anyhow!("credential helper {prog} found no credentials for {registry}"));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).with_context(|| format!("{prog} printed something that is not JSON"))?;
    match (v["Username"].as_str(), v["Secret"].as_str()) {
        (Some(u), Some(s)) => Ok(Credentials::Basic(u.into(), s.into())),
        _ => Err(anyhow!("{prog}: answer lacks Username/Secret")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_auths_from_docker_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"auths":{"127.0.0.1:5000":{"auth":"aGFyZGVuOnNlY3JldC1wdw=="}}}"#,
        )
        .unwrap();
        // Environment is process-wide: this test owns DOCKER_CONFIG and REGISTRY_AUTH_FILE.
        std::env::remove_var("REGISTRY_AUTH_FILE");
        std::env::set_var("DOCKER_CONFIG", dir.path());
        assert_eq!(lookup("127.0.0.1:5000").unwrap(), Credentials::Basic("harden".into(), "secret-pw".into()));
        assert_eq!(lookup("other:1").unwrap(), Credentials::Anonymous);
        std::env::remove_var("DOCKER_CONFIG");
    }
}
