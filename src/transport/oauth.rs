//! An `identitytoken` (an OAuth2 refresh token: ACR, some Harbor setups) exchanged for an access
//! token, as docker and containers/image do: the registry's `/v2/` answers with a Bearer
//! challenge, and its realm gets a form POST `grant_type=refresh_token`, `refresh_token`,
//! `service`, `scope` (each), `client_id` (the distribution token spec's OAuth2 flow). The
//! answer's `access_token` (or `token`) lasts `expires_in` seconds, at least 60.
//!
//! Written here because oci-client 0.18 has no refresh-token grant: its token request is a GET
//! with Basic credentials, and a `RegistryAuth::Bearer` it is given is used as it is. So the
//! registry exchanges the refresh token with this and hands oci-client the access token.
//!
//! The same token servers also grant one token for several repositories (docker's GET with
//! Basic credentials and a `scope` per repository): a cross-repository mount needs `pull` on
//! the source repository in the destination's token, which oci-client never asks for (one
//! repository per token), so distribution answers the mount with an upload instead.
//! [`token_for`] gets that token.
//!
//! Owns: the exchange, and tokens for several repositories. Must not: look credentials up (that is [`super::auth`]) or log a token.

use anyhow::{anyhow, bail, Result};
use std::time::{Duration, Instant};

/// The client id sent with the grant (docker sends `docker`, containers/image its own name).
const CLIENT_ID: &str = "harden";
/// Largest token server answer read.
const MAX_ANSWER: usize = 1 << 20;
/// Shortest lifetime assumed for an access token, as containers/image does.
const MIN_LIFETIME: u64 = 60;

/// An access token and when to stop using it.
#[derive(Clone)]
pub struct AccessToken {
    pub token: String,
    pub expires: Instant,
}

/// A Bearer challenge's parameters.
#[derive(Debug, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub service: Option<String>,
}

impl Challenge {
    /// A token request's parameters for `scopes`: the challenge's `service`, then a `scope`
    /// each (a POST's form, a GET's query).
    fn params<'a>(&'a self, scopes: &'a [String]) -> Vec<(&'a str, &'a str)> {
        let service = self.service.as_deref().filter(|s| !s.is_empty()).map(|s| ("service", s));
        service.into_iter().chain(scopes.iter().map(|s| ("scope", s.as_str()))).collect()
    }
}

/// The Bearer challenge in a `WWW-Authenticate` header value, if it has one.
pub fn bearer_challenge(header: &str) -> Option<Challenge> {
    for c in http_auth::parser::ChallengeParser::new(header) {
        let Ok(c) = c else { return None };
        if !c.scheme.eq_ignore_ascii_case("bearer") {
            continue;
        }
        let param =
            |name: &str| c.params.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.to_unescaped());
        return Some(Challenge { realm: param("realm")?, service: param("service") });
    }
    None
}

/// Exchange `refresh` for an access token with `scopes` (`repository:NAME:pull,push`) at the
/// token server `registry_base` (`https://host`) points to. None when the registry asks for no
/// authentication at all.
pub async fn exchange(
    http: &reqwest::Client,
    registry: &str,
    registry_base: &str,
    refresh: &str,
    scopes: &[String],
) -> Result<Option<AccessToken>> {
    let challenge = match challenge(http, registry, registry_base).await? {
        Asked::Nothing => return Ok(None),
        Asked::Bearer(c) => c,
        Asked::Other(header) => bail!(
            "{registry}: the login is an identity token, but the registry asks for no Bearer token ({header}); an identity token is only exchanged at a token server"
        ),
    };
    let mut form = challenge.params(scopes);
    form.extend([("grant_type", "refresh_token"), ("refresh_token", refresh), ("client_id", CLIENT_ID)]);
    let started = Instant::now();
    let res = http
        .post(&challenge.realm)
        .form(&form)
        .send()
        .await
        .map_err(|e| anyhow!("{registry}: token server {}: {e}", challenge.realm))?;
    let status = res.status();
    let body = read_bounded(res).await.map_err(|e| anyhow!("{registry}: token server {}: {e}", challenge.realm))?;
    if !status.is_success() {
        let said = super::errors::first_line(&body).unwrap_or_default();
        bail!("{registry}: token server {} refused the identity token (HTTP {status}): {said}", challenge.realm);
    }
    parse_answer(&body, started).map(Some).map_err(|e| anyhow!("{registry}: token server {}: {e}", challenge.realm))
}

/// What a registry's `/v2/` asks of a client.
pub enum Asked {
    /// Nothing: it answered.
    Nothing,
    /// A Bearer token from this token server.
    Bearer(Challenge),
    /// Something else (Basic authentication): the `WWW-Authenticate` header, or that there is none.
    Other(String),
}

/// Ask the registry at `registry_base` (`https://host`) what authentication it wants.
pub async fn challenge(http: &reqwest::Client, registry: &str, registry_base: &str) -> Result<Asked> {
    let ping = http
        .get(format!("{registry_base}/v2/"))
        .send()
        .await
        .map_err(|e| anyhow!("{registry}: cannot reach /v2/ to find its token server: {e}"))?;
    if ping.status().is_success() {
        return Ok(Asked::Nothing);
    }
    let header = ping.headers().get(reqwest::header::WWW_AUTHENTICATE).and_then(|v| v.to_str().ok());
    Ok(match header.and_then(bearer_challenge) {
        Some(c) => Asked::Bearer(c),
        None => Asked::Other(header.unwrap_or("no WWW-Authenticate header").to_string()),
    })
}

/// A token for `scopes` (`repository:NAME:ACTIONS`, several repositories at once) from the
/// token server of `challenge`, as docker asks for one: a GET with the user's Basic
/// credentials (none for anonymous access).
pub async fn token_for(
    http: &reqwest::Client,
    challenge: &Challenge,
    basic: Option<(&str, &str)>,
    scopes: &[String],
) -> Result<AccessToken> {
    let mut req = http.get(&challenge.realm).query(&challenge.params(scopes));
    if let Some((user, password)) = basic {
        req = req.basic_auth(user, Some(password));
    }
    let started = Instant::now();
    let res = req.send().await.map_err(|e| anyhow!("token server {}: {e}", challenge.realm))?;
    let status = res.status();
    let body = read_bounded(res).await.map_err(|e| anyhow!("token server {}: {e}", challenge.realm))?;
    if !status.is_success() {
        bail!("token server {} refused (HTTP {status})", challenge.realm);
    }
    parse_answer(&body, started).map_err(|e| anyhow!("token server {}: {e}", challenge.realm))
}

/// Whether the access token in use (and whether it has push scope) must be exchanged again
/// before an operation (`push`: one that writes) at `now`: none yet, no push scope for a push,
/// or 10 s or less left.
pub fn needs_exchange(current: Option<&(bool, AccessToken)>, push: bool, now: Instant) -> bool {
    match current {
        Some((scoped_push, t)) => (push && !scoped_push) || t.expires <= now + Duration::from_secs(10),
        None => true,
    }
}

async fn read_bounded(mut res: reqwest::Response) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await? {
        if body.len() + chunk.len() > MAX_ANSWER {
            bail!("answer larger than {MAX_ANSWER} bytes");
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The token server's JSON answer: `access_token` (or `token`) and `expires_in`.
pub fn parse_answer(body: &[u8], issued: Instant) -> Result<AccessToken> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|_| anyhow!("its answer is not JSON"))?;
    let token = v["access_token"]
        .as_str()
        .or_else(|| v["token"].as_str())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| anyhow!("its answer has no access_token"))?;
    let lifetime = v["expires_in"].as_u64().unwrap_or(0).clamp(MIN_LIFETIME, 24 * 3600);
    Ok(AccessToken { token: token.to_string(), expires: issued + Duration::from_secs(lifetime) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_bearer_challenge() {
        let h = r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a:pull""#;
        assert_eq!(
            bearer_challenge(h),
            Some(Challenge { realm: "https://auth.example/token".into(), service: Some("registry.example".into()) })
        );
        assert_eq!(bearer_challenge(r#"Basic realm="x""#), None);
        assert_eq!(bearer_challenge("garbage ,,, ="), None);
    }

    #[test]
    fn exchanges_again_for_push_scope_and_before_expiry() {
        let t0 = Instant::now();
        let pull = (false, AccessToken { token: "p".into(), expires: t0 + Duration::from_secs(60) });
        let push = (true, AccessToken { token: "w".into(), expires: t0 + Duration::from_secs(60) });
        assert!(needs_exchange(None, false, t0));
        assert!(!needs_exchange(Some(&pull), false, t0));
        assert!(needs_exchange(Some(&pull), true, t0), "a pull token does not push");
        assert!(!needs_exchange(Some(&push), false, t0), "a push token also pulls");
        assert!(!needs_exchange(Some(&push), true, t0 + Duration::from_secs(49)));
        assert!(needs_exchange(Some(&push), true, t0 + Duration::from_secs(50)), "10 s before expiry");
    }

    #[test]
    fn parses_the_answer_with_a_minimum_lifetime() {
        let t0 = Instant::now();
        let a = parse_answer(br#"{"access_token":"abc","expires_in":5}"#, t0).unwrap();
        assert_eq!(a.token, "abc");
        assert_eq!(a.expires, t0 + Duration::from_secs(60));
        let a = parse_answer(br#"{"token":"t","expires_in":300}"#, t0).unwrap();
        assert_eq!((a.token.as_str(), a.expires), ("t", t0 + Duration::from_secs(300)));
        assert!(parse_answer(b"{}", t0).is_err());
        assert!(parse_answer(b"nope", t0).is_err());
    }
}
