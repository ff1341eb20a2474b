//! Registry logins as podman, skopeo (containers-auth.json(5)) and docker keep them: which
//! credentials a registry repository gets, from `--creds`, an auth file's `auths` keys, or a
//! `docker-credential-*` helper (`credHelpers`, `credsStore`). Exchanging an `identitytoken` is
//! [`super::oauth`]'s; prompting for a password is the CLI's.
//!
//! The files, in containers/image's order (`pkg/docker/config`): `--authfile` or
//! `REGISTRY_AUTH_FILE` — and then *only* that file —, else `$XDG_RUNTIME_DIR/containers/auth.json`
//! (`/run/containers/UID/auth.json` without the variable), `$XDG_CONFIG_HOME/containers/auth.json`
//! (`~/.config`), `$DOCKER_CONFIG/config.json` (`~/.docker/config.json`), `~/.dockercfg`. A file
//! that does not exist is empty; the first file holding credentials for the repository wins.
//! Within a file: `credHelpers[host]`, then `auths` keys most specific first (`host/ns/repo`,
//! `host/ns`, `host`), then keys as docker once wrote them (`https://host/v1/`), then
//! `credsStore`. A helper that fails is an error naming it, never anonymous access.
//!
//! Owns: reading auth files, running credential helpers. Must not: prompt, or print a secret
//! (`Credentials`' `Debug` redacts them).

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

/// Largest auth file read (they are a few hundred bytes; this bounds memory on a wrong path).
const MAX_AUTH_FILE: u64 = 4 << 20;
/// Largest answer read from a credential helper.
const MAX_HELPER_OUTPUT: u64 = 1 << 20;
/// What docker-credential-helpers print when they hold nothing for the server.
const HELPER_NOT_FOUND: &str = "credentials not found in native keychain";

#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Anonymous,
    Basic(String, String),
    /// An OAuth2 refresh token (`identitytoken`, or a helper's `<token>` user), exchanged for an
    /// access token at the registry's token server.
    IdentityToken(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Anonymous => write!(f, "Anonymous"),
            Credentials::Basic(u, _) => write!(f, "Basic({u:?}, <redacted>)"),
            Credentials::IdentityToken(_) => write!(f, "IdentityToken(<redacted>)"),
        }
    }
}

/// A user and password given on the command line (`--creds USER[:PASS]`), the password resolved.
#[derive(Clone, PartialEq, Eq)]
pub struct UserPass {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for UserPass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UserPass({:?}, <redacted>)", self.user)
    }
}

/// Where credentials come from for the registries a run talks to.
#[derive(Clone, Debug, Default)]
pub struct Logins {
    /// `--authfile` or `REGISTRY_AUTH_FILE`: the only file read.
    pub authfile: Option<PathBuf>,
    /// `--creds`: every registry, unless `--src-creds`/`--dest-creds` is more specific.
    pub creds: Option<UserPass>,
    /// `--src-creds`: the image read (see [`super::NetOptions::for_source`]).
    pub src_creds: Option<UserPass>,
    /// `--dest-creds`: the image written and what goes beside it.
    pub dest_creds: Option<UserPass>,
    /// Lookups already made this run, by `host/repository` (a helper runs once).
    memo: Arc<Mutex<BTreeMap<String, (Credentials, String)>>>,
}

impl Logins {
    /// These logins for the source side: `--src-creds`, else `--creds`.
    pub fn for_source(&self) -> Logins {
        Logins { creds: self.src_creds.clone().or_else(|| self.creds.clone()), ..self.clone() }
    }

    /// These logins for the destination side: `--dest-creds`, else `--creds`.
    pub fn for_destination(&self) -> Logins {
        Logins { creds: self.dest_creds.clone().or_else(|| self.creds.clone()), ..self.clone() }
    }

    /// The credentials for `repository` of `registry` and where they came from (for messages:
    /// never the secret), looked up once per run.
    pub fn lookup(&self, registry: &str, repository: &str) -> Result<(Credentials, String)> {
        if let Some(c) = &self.creds {
            return Ok((Credentials::Basic(c.user.clone(), c.password.clone()), "--creds".into()));
        }
        let key = format!("{registry}/{repository}");
        if let Some(hit) = self.memo.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(hit);
        }
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let files = auth_files(self.authfile.as_deref(), &env, rustix::process::geteuid().as_raw());
        let found = lookup_in(&files, registry, repository, &run_helper)?;
        if let Ok(mut m) = self.memo.lock() {
            m.insert(key, found.clone());
        }
        Ok(found)
    }
}

/// One auth file and whether it is docker's legacy `.dockercfg` (a bare `auths` map, keyed by
/// registry URL).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthFile {
    pub path: PathBuf,
    pub legacy: bool,
}

/// The files searched, in order (see the module documentation). `env` reads a variable (unset
/// and empty are alike).
pub fn auth_files(authfile: Option<&Path>, env: &dyn Fn(&str) -> Option<String>, uid: u32) -> Vec<AuthFile> {
    let file = |path: PathBuf| AuthFile { path, legacy: false };
    if let Some(p) = authfile {
        return vec![file(p.to_path_buf())];
    }
    if let Some(p) = env("REGISTRY_AUTH_FILE") {
        return vec![file(PathBuf::from(p))];
    }
    let home = env("HOME").map(PathBuf::from);
    let mut out = Vec::new();
    match env("XDG_RUNTIME_DIR") {
        // containers/image warns and goes on without it when the directory does not exist.
        Some(d) if !Path::new(&d).is_dir() => {}
        Some(d) => out.push(file(Path::new(&d).join("containers/auth.json"))),
        None => out.push(file(PathBuf::from(format!("/run/containers/{uid}/auth.json")))),
    }
    if let Some(cfg) = env("XDG_CONFIG_HOME").map(PathBuf::from).or_else(|| home.as_ref().map(|h| h.join(".config"))) {
        out.push(file(cfg.join("containers/auth.json")));
    }
    match (env("DOCKER_CONFIG"), &home) {
        (Some(d), _) => out.push(file(Path::new(&d).join("config.json"))),
        (None, Some(h)) => out.push(file(h.join(".docker/config.json"))),
        (None, None) => {}
    }
    if let Some(h) = &home {
        out.push(AuthFile { path: h.join(".dockercfg"), legacy: true });
    }
    out
}

/// What a credential helper answered.
#[derive(Debug, PartialEq, Eq)]
pub enum HelperAnswer {
    Found(Credentials),
    NotFound,
}

/// Runs `docker-credential-NAME get` for a server URL (tests pass a stand-in).
pub type Helper = dyn Fn(&str, &str) -> Result<HelperAnswer>;

/// The first credentials `files` hold for `registry`/`repository`, and where they came from;
/// Anonymous when none does.
pub fn lookup_in(
    files: &[AuthFile],
    registry: &str,
    repository: &str,
    helper: &Helper,
) -> Result<(Credentials, String)> {
    for f in files {
        let Some(doc) = read_auth_file(&f.path)? else { continue };
        if let Some(found) = find_in_file(&doc, f, registry, repository, helper)? {
            return Ok(found);
        }
    }
    Ok((Credentials::Anonymous, "no login found".into()))
}

/// The file as JSON, or None when it does not exist.
fn read_auth_file(path: &Path) -> Result<Option<serde_json::Value>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => bail!("auth file {}: cannot read: {e}", path.display()),
    };
    let mut text = Vec::new();
    file.take(MAX_AUTH_FILE + 1)
        .read_to_end(&mut text)
        .with_context(|| format!("auth file {}: cannot read", path.display()))?;
    if text.len() as u64 > MAX_AUTH_FILE {
        bail!("auth file {}: larger than {} bytes", path.display(), MAX_AUTH_FILE);
    }
    let doc: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| anyhow!("auth file {}: not valid JSON ({e})", path.display()))?;
    if !doc.is_object() {
        bail!("auth file {}: not a JSON object", path.display());
    }
    Ok(Some(doc))
}

/// The `auths` keys that match `host/repository`, best first: the repository, each namespace
/// above it, the host (a legacy file: the host only).
pub fn key_order(registry: &str, repository: &str, legacy: bool) -> Vec<String> {
    if legacy {
        return vec![registry.to_string()];
    }
    let mut key = format!("{registry}/{repository}");
    let mut out = vec![key.clone()];
    while let Some(i) = key.rfind('/') {
        key.truncate(i);
        out.push(key.clone());
    }
    out
}

/// docker.io's other names, as containers/image folds them.
fn normalize_registry(r: &str) -> &str {
    match r {
        "registry-1.docker.io" | "docker.io" => "index.docker.io",
        _ => r,
    }
}

/// The host a key names when written as a URL (`https://host/v1/`) or in a legacy file.
fn normalize_key(key: &str, legacy: bool) -> String {
    let stripped = key.strip_prefix("http://").or_else(|| key.strip_prefix("https://"));
    let host = match stripped {
        Some(s) => s.split('/').next().unwrap_or(s),
        None if legacy => key.split('/').next().unwrap_or(key),
        None => key,
    };
    normalize_registry(host).to_string()
}

fn find_in_file(
    doc: &serde_json::Value,
    f: &AuthFile,
    registry: &str,
    repository: &str,
    helper: &Helper,
) -> Result<Option<(Credentials, String)>> {
    let shown = f.path.display();
    let auths = if f.legacy { doc } else { &doc["auths"] };
    if !f.legacy {
        if let Some(name) = doc["credHelpers"][registry].as_str() {
            let from = format!("credential helper docker-credential-{name} (credHelpers in {shown})");
            return ask_helper(helper, name, registry, &from);
        }
    }
    for key in key_order(registry, repository, f.legacy) {
        if let Some(c) = decode_entry(&auths[&key], &shown, &key)? {
            return Ok(Some((c, format!("{shown}, key {key}"))));
        }
    }
    if let Some(map) = auths.as_object() {
        let want = normalize_registry(registry);
        for (key, entry) in map {
            if normalize_key(key, f.legacy) == want {
                if let Some(c) = decode_entry(entry, &shown, key)? {
                    return Ok(Some((c, format!("{shown}, key {key}"))));
                }
            }
        }
    }
    if !f.legacy {
        if let Some(name) = doc["credsStore"].as_str() {
            let from = format!("credential helper docker-credential-{name} (credsStore in {shown})");
            return ask_helper(helper, name, registry, &from);
        }
    }
    Ok(None)
}

fn ask_helper(helper: &Helper, name: &str, registry: &str, from: &str) -> Result<Option<(Credentials, String)>> {
    match helper(name, &server_url(registry)).with_context(|| format!("{registry}: {from}"))? {
        HelperAnswer::Found(c) => Ok(Some((c, from.to_string()))),
        HelperAnswer::NotFound => Ok(None),
    }
}

/// The server URL a helper is asked about: the host, docker's `https://index.docker.io/v1/` for
/// Docker Hub (where `docker login` stores it).
fn server_url(registry: &str) -> String {
    if normalize_registry(registry) == "index.docker.io" {
        "https://index.docker.io/v1/".into()
    } else {
        registry.to_string()
    }
}

/// An `auths` entry's credentials: `identitytoken` first, then `auth` (base64 `user:password`),
/// then `username`/`password`. An entry with none (`{}`, docker's marker when a `credsStore`
/// holds them) matches nothing.
fn decode_entry(entry: &serde_json::Value, file: &dyn std::fmt::Display, key: &str) -> Result<Option<Credentials>> {
    if !entry.is_object() {
        return Ok(None);
    }
    if let Some(t) = entry["identitytoken"].as_str().filter(|t| !t.is_empty()) {
        return Ok(Some(Credentials::IdentityToken(t.to_string())));
    }
    if let Some(auth) = entry["auth"].as_str().filter(|a| !a.trim().is_empty()) {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| anyhow!("auth file {file}: auths.{key}.auth is not base64"))?;
        let s = String::from_utf8(raw).map_err(|_| anyhow!("auth file {file}: auths.{key}.auth is not UTF-8"))?;
        let (u, p) =
            s.split_once(':').ok_or_else(|| anyhow!("auth file {file}: auths.{key}.auth is not user:password"))?;
        return Ok(Some(Credentials::Basic(u.into(), p.trim_matches('\0').into())));
    }
    if let (Some(u), Some(p)) = (entry["username"].as_str(), entry["password"].as_str()) {
        return Ok(Some(Credentials::Basic(u.into(), p.into())));
    }
    Ok(None)
}

/// `docker-credential-NAME get` with `server` on stdin, as docker and containers/image run it.
pub fn run_helper(name: &str, server: &str) -> Result<HelperAnswer> {
    let prog = format!("docker-credential-{name}");
    let mut child = Command::new(&prog)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow!("cannot run {prog}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        // A helper that does not read its stdin is its own business: its exit status tells.
        let _ = stdin.write_all(server.as_bytes());
    }
    let mut stdout = Vec::new();
    if let Some(o) = child.stdout.take() {
        o.take(MAX_HELPER_OUTPUT).read_to_end(&mut stdout).map_err(|e| anyhow!("{prog}: reading its answer: {e}"))?;
    }
    let mut stderr = Vec::new();
    if let Some(e) = child.stderr.take() {
        let _ = e.take(MAX_HELPER_OUTPUT).read_to_end(&mut stderr);
    }
    let status = child.wait().map_err(|e| anyhow!("{prog}: {e}"))?;
    if !status.success() {
        if super::errors::first_line(&stdout).as_deref() == Some(HELPER_NOT_FOUND) {
            return Ok(HelperAnswer::NotFound);
        }
        let why = super::errors::first_line(&stdout)
            .or_else(|| super::errors::first_line(&stderr))
            .unwrap_or_else(|| "no message".into());
        bail!("{prog} get failed ({status}): {why}");
    }
    let v: serde_json::Value =
        serde_json::from_slice(&stdout).map_err(|_| anyhow!("{prog} get printed something that is not JSON"))?;
    match (v["Username"].as_str(), v["Secret"].as_str()) {
        (Some("<token>"), Some(s)) => Ok(HelperAnswer::Found(Credentials::IdentityToken(s.into()))),
        (Some(u), Some(s)) => Ok(HelperAnswer::Found(Credentials::Basic(u.into(), s.into()))),
        _ => bail!("{prog} get: its answer lacks Username or Secret"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn no_helper(_: &str, _: &str) -> Result<HelperAnswer> {
        panic!("no helper expected")
    }

    fn basic(u: &str, p: &str) -> Credentials {
        Credentials::Basic(u.into(), p.into())
    }

    fn write(dir: &Path, name: &str, doc: serde_json::Value) -> AuthFile {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, doc.to_string()).unwrap();
        AuthFile { path, legacy: name.ends_with(".dockercfg") }
    }

    #[test]
    fn keys_go_from_the_repository_up_to_the_host() {
        assert_eq!(
            key_order("r.example:5000", "team/sub/app", false),
            ["r.example:5000/team/sub/app", "r.example:5000/team/sub", "r.example:5000/team", "r.example:5000"]
        );
        assert_eq!(key_order("r.example", "team/app", true), ["r.example"]);
    }

    #[test]
    fn files_in_containers_image_order() {
        let d = tempfile::tempdir().unwrap();
        let run = d.path().to_str().unwrap().to_string();
        let env = |k: &str| match k {
            "HOME" => Some("/home/u".to_string()),
            "XDG_RUNTIME_DIR" => Some(run.clone()),
            _ => None,
        };
        let paths: Vec<_> = auth_files(None, &env, 1000).into_iter().map(|f| (f.path, f.legacy)).collect();
        assert_eq!(
            paths,
            [
                (d.path().join("containers/auth.json"), false),
                (PathBuf::from("/home/u/.config/containers/auth.json"), false),
                (PathBuf::from("/home/u/.docker/config.json"), false),
                (PathBuf::from("/home/u/.dockercfg"), true),
            ]
        );
        // Without XDG_RUNTIME_DIR: the per-uid file; XDG_CONFIG_HOME and DOCKER_CONFIG move theirs.
        let env2 = |k: &str| match k {
            "HOME" => Some("/home/u".to_string()),
            "XDG_CONFIG_HOME" => Some("/cfg".to_string()),
            "DOCKER_CONFIG" => Some("/dc".to_string()),
            _ => None,
        };
        let paths: Vec<_> = auth_files(None, &env2, 7).into_iter().map(|f| f.path).collect();
        assert_eq!(
            paths,
            [
                PathBuf::from("/run/containers/7/auth.json"),
                PathBuf::from("/cfg/containers/auth.json"),
                PathBuf::from("/dc/config.json"),
                PathBuf::from("/home/u/.dockercfg")
            ]
        );
        // An XDG_RUNTIME_DIR that does not exist is skipped.
        let env3 = |k: &str| (k == "XDG_RUNTIME_DIR").then(|| "/nonexistent/run".to_string());
        assert!(auth_files(None, &env3, 7).is_empty());
        // --authfile, else REGISTRY_AUTH_FILE: that file alone.
        let env4 = |k: &str| match k {
            "REGISTRY_AUTH_FILE" => Some("/a.json".to_string()),
            "HOME" => Some("/home/u".to_string()),
            _ => None,
        };
        assert_eq!(auth_files(None, &env4, 7), [AuthFile { path: "/a.json".into(), legacy: false }]);
        assert_eq!(
            auth_files(Some(Path::new("/flag.json")), &env4, 7),
            [AuthFile { path: "/flag.json".into(), legacy: false }]
        );
    }

    #[test]
    fn the_most_specific_key_wins_and_docker_url_keys_still_match() {
        let d = tempfile::tempdir().unwrap();
        let f = write(
            d.path(),
            "auth.json",
            serde_json::json!({"auths": {
                "r:5000": {"auth": b64("host:h")},
                "r:5000/team": {"auth": b64("team:t")},
                "r:5000/team/app": {"auth": b64("app:a")},
                "https://old:5000/v1/": {"auth": b64("old:o")},
                "https://index.docker.io/v1/": {"auth": b64("hub:x")},
            }}),
        );
        let files = [f];
        let get = |repo: &str| lookup_in(&files, "r:5000", repo, &no_helper).unwrap().0;
        assert_eq!(get("team/app"), basic("app", "a"));
        assert_eq!(get("team/other"), basic("team", "t"));
        assert_eq!(get("teamx/app"), basic("host", "h"));
        assert_eq!(lookup_in(&files, "old:5000", "x", &no_helper).unwrap().0, basic("old", "o"));
        assert_eq!(lookup_in(&files, "docker.io", "library/debian", &no_helper).unwrap().0, basic("hub", "x"));
        assert_eq!(lookup_in(&files, "other:1", "x", &no_helper).unwrap().0, Credentials::Anonymous);
    }

    #[test]
    fn the_first_file_with_a_match_wins() {
        let d = tempfile::tempdir().unwrap();
        let first = write(d.path(), "a/auth.json", serde_json::json!({"auths": {"other:1": {"auth": b64("o:o")}}}));
        let second = write(d.path(), "b/auth.json", serde_json::json!({"auths": {"r:1": {"auth": b64("b:b")}}}));
        let third = write(d.path(), "c/config.json", serde_json::json!({"auths": {"r:1/app": {"auth": b64("c:c")}}}));
        let missing = AuthFile { path: d.path().join("none.json"), legacy: false };
        let (c, from) = lookup_in(&[missing, first, second, third], "r:1", "app", &no_helper).unwrap();
        // The second file's host key beats the third file's repository key: files first.
        assert_eq!(c, basic("b", "b"));
        assert!(from.contains("b/auth.json") && from.contains("key r:1"), "{from}");
    }

    #[test]
    fn identity_tokens_and_legacy_files() {
        let d = tempfile::tempdir().unwrap();
        let f = write(
            d.path(),
            "auth.json",
            serde_json::json!({"auths": {"r:1": {"auth": b64("<token>:"), "identitytoken": "refresh-me"}}}),
        );
        let legacy = write(d.path(), ".dockercfg", serde_json::json!({"https://l:1/v1/": {"auth": b64("l:p")}}));
        let (c, _) = lookup_in(&[f], "r:1", "app", &no_helper).unwrap();
        assert_eq!(c, Credentials::IdentityToken("refresh-me".into()));
        assert!(!format!("{c:?}").contains("refresh-me"), "Debug must not show the token");
        assert_eq!(lookup_in(&[legacy], "l:1", "app", &no_helper).unwrap().0, basic("l", "p"));
    }

    #[test]
    fn helpers_are_asked_in_docker_order_and_their_failures_are_errors() {
        let d = tempfile::tempdir().unwrap();
        let f = write(
            d.path(),
            "config.json",
            serde_json::json!({
                "auths": {"r:1": {}, "s:1": {"auth": b64("file:f")}},
                "credHelpers": {"h:1": "pass"},
                "credsStore": "store",
            }),
        );
        let helper = |name: &str, server: &str| -> Result<HelperAnswer> {
            match (name, server) {
                ("pass", "h:1") => Ok(HelperAnswer::Found(basic("fromhelper", "x"))),
                ("store", "r:1") => Ok(HelperAnswer::Found(Credentials::IdentityToken("t".into()))),
                ("store", "gone:1") => Ok(HelperAnswer::NotFound),
                ("store", _) => bail!("docker-credential-store get failed: locked"),
                _ => panic!("unexpected helper {name} {server}"),
            }
        };
        let files = [f];
        let (c, from) = lookup_in(&files, "h:1", "app", &helper).unwrap();
        assert_eq!(c, basic("fromhelper", "x"));
        assert!(from.contains("docker-credential-pass") && from.contains("credHelpers"), "{from}");
        // An empty auths entry falls through to credsStore; an entry with credentials does not.
        assert_eq!(lookup_in(&files, "r:1", "app", &helper).unwrap().0, Credentials::IdentityToken("t".into()));
        assert_eq!(lookup_in(&files, "s:1", "app", &helper).unwrap().0, basic("file", "f"));
        assert_eq!(lookup_in(&files, "gone:1", "app", &helper).unwrap().0, Credentials::Anonymous);
        let e = format!("{:#}", lookup_in(&files, "x:1", "app", &helper).unwrap_err());
        assert!(e.contains("docker-credential-store") && e.contains("credsStore") && e.contains("locked"), "{e}");
    }

    #[test]
    fn broken_files_are_errors_naming_them() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("auth.json");
        std::fs::write(&path, "{not json").unwrap();
        let files = [AuthFile { path: path.clone(), legacy: false }];
        let e = lookup_in(&files, "r:1", "a", &no_helper).unwrap_err().to_string();
        assert!(e.contains(&path.display().to_string()) && e.contains("not valid JSON"), "{e}");
        std::fs::write(&path, r#"{"auths":{"r:1":{"auth":"%%%"}}}"#).unwrap();
        let e = lookup_in(&files, "r:1", "a", &no_helper).unwrap_err().to_string();
        assert!(e.contains("auths.r:1.auth is not base64"), "{e}");
    }

    #[test]
    fn explicit_creds_beat_every_file_and_sides_pick_their_own() {
        let up = |u: &str| Some(UserPass { user: u.into(), password: "p".into() });
        let l = Logins { creds: up("all"), dest_creds: up("dest"), ..Default::default() };
        assert_eq!(l.for_source().lookup("r:1", "a").unwrap().0, basic("all", "p"));
        assert_eq!(l.for_destination().lookup("r:1", "a").unwrap().0, basic("dest", "p"));
        assert!(!format!("{l:?}").contains("\"p\""), "Debug must not show a password: {l:?}");
    }
}
