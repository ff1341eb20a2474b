//! harden's own upload of a blob whose digest is known only once it is all written (a
//! rewrite's output, sent while the rewrite writes it), over harden's HTTP client: `POST
//! /v2/<repo>/blobs/uploads/` (202 and a Location), ONE `PATCH <location>` whose body streams
//! as the blob is produced (chunked transfer encoding), then `PUT <location>?digest=sha256:…`
//! (201) — three requests a blob, whatever its size. oci-client's upload of such a blob cuts it
//! into 4 MiB PATCHes, a request each, and hashes it again; here the digest is the writer's.
//! Each step goes where the step before said (its Location: absolute, or relative to that
//! request), keeping its query — distribution's `_state` records the offset the next step
//! resumes at, so the PUT goes to the PATCH's Location, not the POST's.
//!
//! Owns: the three requests, the URLs they go to, and which of them carry the login (the
//! registry's own scheme, host and port only, as oci-client does since CVE-2020-15157). Must
//! not: retry, watch for stalls, get tokens, or decide what to upload (that is
//! [`super::registry`]'s).

use super::errors::{first_line, AttemptError};
use crate::digest::Digest;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION, RANGE};
use reqwest::{Method, StatusCode, Url};
use std::time::Duration;

/// The PATCH's own deadline: none worth the name. It lasts as long as the writer takes to
/// produce the blob; the caller's watchdog fails it when the registry stops taking data.
const PATCH_DEADLINE: Duration = Duration::from_secs(30 * 24 * 3600);

/// What the requests of an upload authenticate with.
#[derive(Clone)]
pub enum Login {
    None,
    Basic(String, String),
    Bearer(String),
}

/// Why a step failed.
pub enum Failed {
    /// HTTP 401 (the message says where): the token in use has expired or lacks push scope;
    /// a new one may do.
    Unauthorized(String),
    Other(AttemptError),
}

impl From<Failed> for AttemptError {
    /// A 401 that a new token did not cure is for good.
    fn from(f: Failed) -> AttemptError {
        match f {
            Failed::Unauthorized(message) => AttemptError::fatal(anyhow::anyhow!("{message}")),
            Failed::Other(e) => e,
        }
    }
}

/// The requests of one upload session.
pub struct Session<'a> {
    pub http: &'a reqwest::Client,
    /// The registry's base URL (`http[s]://host[:port]`): the only origin the login goes to.
    pub base: &'a Url,
    pub login: Login,
    /// What is uploaded, first in every error ("host/repo: upload of …").
    pub what: &'a str,
}

impl Session<'_> {
    /// `POST /v2/<repository>/blobs/uploads/`: a new session, where its data goes.
    pub async fn start(&self, repository: &str) -> Result<Url, Failed> {
        let url = start_url(self.base, repository).map_err(|e| self.fatal(e))?;
        let sent = self.request(Method::POST, &url).header(CONTENT_LENGTH, 0).send().await;
        let res = self.answer("POST", sent, StatusCode::ACCEPTED).await?;
        self.next(&url, &res, "POST")
    }

    /// `PATCH <at>` with the whole blob as `body` (of unknown length: chunked). Where the PUT
    /// goes, and how many bytes the registry says it holds (its `Range` header), when it says.
    pub async fn send(&self, at: &Url, body: reqwest::Body) -> Result<(Url, Option<u64>), Failed> {
        let req = self.request(Method::PATCH, at).header(CONTENT_TYPE, "application/octet-stream");
        let sent = req.timeout(PATCH_DEADLINE).body(body).send().await;
        let res = self.answer("PATCH", sent, StatusCode::ACCEPTED).await?;
        let held = res.headers().get(RANGE).and_then(|v| v.to_str().ok()).and_then(stored_length);
        Ok((self.next(at, &res, "PATCH")?, held))
    }

    /// `PUT <at>?digest=…` with no body: what the session holds is stored as `digest` (the
    /// registry checks that it is).
    pub async fn commit(&self, at: &Url, digest: &Digest) -> Result<(), Failed> {
        let url = commit_url(at, digest);
        let sent = self.request(Method::PUT, &url).header(CONTENT_LENGTH, 0).send().await;
        let res = self.answer("PUT", sent, StatusCode::CREATED).await?;
        let said = res.headers().get("Docker-Content-Digest").and_then(|v| v.to_str().ok());
        match said {
            Some(d) if d != digest.as_str() => {
                Err(self.fatal(format!("the registry stored {d} where {digest} was committed")))
            }
            _ => Ok(()),
        }
    }

    fn request(&self, method: Method, url: &Url) -> reqwest::RequestBuilder {
        let req = self.http.request(method, url.clone());
        if url.origin() != self.base.origin() {
            return req;
        }
        match &self.login {
            Login::None => req,
            Login::Basic(user, password) => req.basic_auth(user, Some(password)),
            Login::Bearer(token) => req.bearer_auth(token),
        }
    }

    /// The response to `step` if it has the status wanted; else the failure, in one line with
    /// the start of what the registry said.
    async fn answer(
        &self,
        step: &str,
        sent: reqwest::Result<reqwest::Response>,
        want: StatusCode,
    ) -> Result<reqwest::Response, Failed> {
        let what = self.what;
        let mut res = sent.map_err(|e| Failed::Other(AttemptError::http(e, format!("{what}: {step}"))))?;
        let code = res.status();
        if code == want {
            return Ok(res);
        }
        let mut body = Vec::new();
        while body.len() < 512 {
            match res.chunk().await {
                Ok(Some(c)) => body.extend_from_slice(&c),
                Ok(None) | Err(_) => break,
            }
        }
        let said = first_line(&body).map(|l| format!(": {l}")).unwrap_or_default();
        let message = format!("{what}: {step} answered HTTP {code}{said}");
        Err(match code {
            StatusCode::UNAUTHORIZED => Failed::Unauthorized(message),
            _ => Failed::Other(AttemptError::status(code.as_u16(), message)),
        })
    }

    /// Where the step after `step` (sent to `url`) goes: its answer's Location.
    fn next(&self, url: &Url, res: &reqwest::Response, step: &str) -> Result<Url, Failed> {
        let location = res.headers().get(LOCATION).and_then(|v| v.to_str().ok());
        let location = location.ok_or_else(|| self.fatal(format!("{step} answered without a Location")))?;
        next_url(url, location).map_err(|e| self.fatal(format!("{step} answered Location {location}: {e}")))
    }

    fn fatal(&self, e: impl std::fmt::Display) -> Failed {
        Failed::Other(AttemptError::fatal(anyhow::anyhow!("{}: {e}", self.what)))
    }
}

/// `<base>/v2/<repository>/blobs/uploads/`.
pub fn start_url(base: &Url, repository: &str) -> Result<Url, String> {
    base.join(&format!("/v2/{repository}/blobs/uploads/")).map_err(|e| format!("no upload URL for {repository}: {e}"))
}

/// A Location answered to a request sent to `request`: absolute, or relative to that request
/// (a path, or even a bare name), with its query as it is.
pub fn next_url(request: &Url, location: &str) -> Result<Url, String> {
    let url = request.join(location.trim()).map_err(|e| e.to_string())?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(format!("a {other}: URL, not HTTP")),
    }
}

/// `at` with `digest=` added to its query, which keeps every parameter it had (`_state`).
pub fn commit_url(at: &Url, digest: &Digest) -> Url {
    let mut url = at.clone();
    url.set_fragment(None);
    url.query_pairs_mut().append_pair("digest", digest.as_str());
    url
}

/// The bytes a `Range: 0-<last>` (or `bytes=0-<last>`) header says a session holds.
pub fn stored_length(range: &str) -> Option<u64> {
    let range = range.trim();
    let range = range.strip_prefix("bytes=").unwrap_or(range);
    let (first, last) = range.split_once('-')?;
    match (first.trim().parse::<u64>().ok()?, last.trim().parse::<u64>().ok()?) {
        (0, last) => last.checked_add(1),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn the_session_starts_under_the_repository() {
        let base = url("https://reg.example:5000");
        assert_eq!(start_url(&base, "ns/app").unwrap().as_str(), "https://reg.example:5000/v2/ns/app/blobs/uploads/");
    }

    #[test]
    fn a_location_is_absolute_or_relative_to_the_request_and_keeps_its_query() {
        let post = url("http://127.0.0.1:5000/v2/app/blobs/uploads/");
        // distribution 2.8: absolute, its state in the query.
        let abs = "http://127.0.0.1:5000/v2/app/blobs/uploads/5a7c?_state=ab%2Bc%3D%3D";
        assert_eq!(next_url(&post, abs).unwrap().as_str(), abs);
        // A path: on the request's scheme, host and port.
        let got = next_url(&post, "/v2/app/blobs/uploads/5a7c?_state=x").unwrap();
        assert_eq!(got.as_str(), "http://127.0.0.1:5000/v2/app/blobs/uploads/5a7c?_state=x");
        // A bare name: beside the request's path (RFC 3986 resolution).
        let got = next_url(&post, "5a7c?_state=x").unwrap();
        assert_eq!(got.as_str(), "http://127.0.0.1:5000/v2/app/blobs/uploads/5a7c?_state=x");
        // Another host is followed (and gets no login, see `Session::request`).
        let got = next_url(&post, "https://storage.example/up/1?sig=s").unwrap();
        assert_eq!(got.origin(), url("https://storage.example").origin());
        assert!(next_url(&post, "file:///etc/passwd").is_err());
        assert!(next_url(&post, "http://[::1").is_err());
    }

    #[test]
    fn the_digest_is_added_to_the_query_the_location_has() {
        let d = Digest::parse(D).unwrap();
        let at = url("http://r:5000/v2/app/blobs/uploads/u?_state=ab%2Bc%3D%3D");
        let put = commit_url(&at, &d);
        assert_eq!(put.query(), Some(format!("_state=ab%2Bc%3D%3D&digest={}", D.replace(':', "%3A")).as_str()));
        let pairs: Vec<(String, String)> = put.query_pairs().map(|(k, v)| (k.into(), v.into())).collect();
        assert_eq!(pairs, [("_state".into(), "ab+c==".into()), ("digest".into(), D.into())]);
        let bare = commit_url(&url("http://r/v2/app/blobs/uploads/u"), &d);
        assert_eq!(bare.query_pairs().collect::<Vec<_>>(), [("digest".into(), D.into())]);
        assert_eq!(bare.path(), "/v2/app/blobs/uploads/u");
        let frag = commit_url(&url("http://r/v2/app/blobs/uploads/u?a=1#x"), &d);
        assert_eq!(frag.as_str(), format!("http://r/v2/app/blobs/uploads/u?a=1&digest={}", D.replace(':', "%3A")));
    }

    #[test]
    fn the_range_header_says_how_much_the_session_holds() {
        assert_eq!(stored_length("0-1023"), Some(1024));
        assert_eq!(stored_length("bytes=0-0"), Some(1));
        assert_eq!(stored_length(" 0-99 "), Some(100));
        assert_eq!(stored_length("5-99"), None);
        assert_eq!(stored_length("0-"), None);
        assert_eq!(stored_length("garbage"), None);
        assert_eq!(stored_length(&format!("0-{}", u64::MAX)), None);
    }
}
