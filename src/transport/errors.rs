//! The registry client's errors, mapped: which of oci-client's and reqwest's failures are
//! transient (worth a retry), and their one-line descriptions.
//!
//! Owns: classifying client errors for [`super::retry`]. Must not: retry or wait itself.

use super::retry::{Classify, Verdict, MIN_429_WAIT};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use std::fmt::Display;
use std::time::Duration;

/// A registry error in one line (oci-client's messages can carry a whole response body).
pub fn describe(e: &OciDistributionError) -> String {
    let s = e.to_string();
    s.lines().next().unwrap_or("").to_string()
}

/// What a server or a helper program answered, in one line for an error: its first non-empty
/// line, trimmed, at most 200 characters (a body can be a whole HTML page).
pub fn first_line(text: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(text);
    text.lines().map(str::trim).find(|l| !l.is_empty()).map(|l| l.chars().take(200).collect())
}

/// Whether a registry error means "no such manifest" (as opposed to auth, network or server trouble).
pub fn is_not_found(e: &OciDistributionError) -> bool {
    use oci_client::errors::OciErrorCode as C;
    match e {
        OciDistributionError::ImageManifestNotFoundError(_) | OciDistributionError::ServerError { code: 404, .. } => {
            true
        }
        OciDistributionError::RegistryError { envelope, .. } => {
            !envelope.errors.is_empty()
                && envelope.errors.iter().all(|x| matches!(x.code, C::ManifestUnknown | C::NotFound | C::NameUnknown))
        }
        _ => false,
    }
}

fn status_verdict(code: u16) -> Verdict {
    match code {
        429 => Verdict::Retry(Some(MIN_429_WAIT)),
        408 => Verdict::Retry(None),
        501 | 505 => Verdict::Fail,
        500..=599 => Verdict::Retry(None),
        _ => Verdict::Fail,
    }
}

fn reqwest_verdict(e: &reqwest::Error) -> Verdict {
    if let Some(s) = e.status() {
        return status_verdict(s.as_u16());
    }
    // A body cut short reads as a decode error ("error decoding response body"): transient.
    // oci-client parses JSON itself, so no decode error here is a malformed document. Builder
    // and redirect errors are ours or the server's for good.
    if e.is_connect() || e.is_timeout() || e.is_request() || e.is_body() || e.is_decode() {
        Verdict::Retry(None)
    } else {
        Verdict::Fail
    }
}

/// An I/O error seen while a transfer streams: transient when it is the network's.
pub fn io_verdict(e: &std::io::Error) -> Verdict {
    use std::io::ErrorKind as K;
    if let Some(inner) = e.get_ref() {
        if let Some(r) = inner.downcast_ref::<reqwest::Error>() {
            return reqwest_verdict(r);
        }
        if inner.downcast_ref::<oci_client::errors::DigestError>().is_some() {
            return Verdict::Fail;
        }
    }
    match e.kind() {
        K::ConnectionRefused
        | K::ConnectionReset
        | K::ConnectionAborted
        | K::NotConnected
        | K::BrokenPipe
        | K::TimedOut
        | K::UnexpectedEof
        | K::Interrupted => Verdict::Retry(None),
        _ => Verdict::Fail,
    }
}

impl Classify for OciDistributionError {
    fn verdict(&self) -> Verdict {
        match self {
            OciDistributionError::RequestError(e) => reqwest_verdict(e),
            OciDistributionError::IoError(e) => io_verdict(e),
            OciDistributionError::ServerError { code, .. } => status_verdict(*code),
            OciDistributionError::RegistryError { envelope, .. } => {
                if envelope.errors.iter().any(|e| matches!(e.code, OciErrorCode::Toomanyrequests)) {
                    Verdict::Retry(Some(MIN_429_WAIT))
                } else {
                    Verdict::Fail
                }
            }
            _ => Verdict::Fail,
        }
    }
    fn timed_out(after: Duration) -> Self {
        OciDistributionError::IoError(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer within {} s (--timeout)", after.as_secs_f64()),
        ))
    }
}

/// A failed attempt of a composite operation (a download into a file, an upload from one):
/// the message, and whether another attempt may help.
#[derive(Debug)]
pub struct AttemptError {
    pub error: anyhow::Error,
    pub verdict: Verdict,
}

impl AttemptError {
    /// A registry error, classified, with `what` in front of its one-line description.
    pub fn oci(e: OciDistributionError, what: impl Display) -> Self {
        let verdict = e.verdict();
        AttemptError { error: anyhow::anyhow!("{what}: {}", describe(&e)), verdict }
    }
    /// An I/O error from the network side of a transfer, classified.
    pub fn io(e: std::io::Error, what: impl Display) -> Self {
        let verdict = io_verdict(&e);
        AttemptError { error: anyhow::anyhow!("{what}: {e}"), verdict }
    }
    /// A request of harden's own HTTP client that got no answer, classified as oci-client's are.
    pub fn http(e: reqwest::Error, what: impl Display) -> Self {
        let verdict = reqwest_verdict(&e);
        AttemptError { error: anyhow::anyhow!("{what}: {e}"), verdict }
    }
    /// An answer with an unexpected HTTP status, classified by it; `message` is already one line.
    pub fn status(code: u16, message: impl Display) -> Self {
        AttemptError { error: anyhow::anyhow!("{message}"), verdict: status_verdict(code) }
    }
    /// A failure no retry can help (local I/O, a digest mismatch).
    pub fn fatal(error: anyhow::Error) -> Self {
        AttemptError { error, verdict: Verdict::Fail }
    }
}

impl Display for AttemptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.error)
    }
}

impl Classify for AttemptError {
    fn verdict(&self) -> Verdict {
        self.verdict
    }
    fn timed_out(after: Duration) -> Self {
        AttemptError {
            error: anyhow::anyhow!("no progress for {} s (--timeout)", after.as_secs_f64()),
            verdict: Verdict::Retry(None),
        }
    }
}

impl From<AttemptError> for anyhow::Error {
    fn from(e: AttemptError) -> Self {
        e.error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: u16) -> OciDistributionError {
        OciDistributionError::ServerError { code, url: "http://r/v2/".into(), message: String::new() }
    }

    fn envelope(code: &str) -> OciDistributionError {
        let envelope = serde_json::from_str(&format!(r#"{{"errors":[{{"code":"{code}","message":"m"}}]}}"#)).unwrap();
        OciDistributionError::RegistryError { envelope, url: "http://r/v2/".into() }
    }

    #[test]
    fn classifies_registry_errors() {
        use std::io::{Error, ErrorKind};
        for code in [500, 502, 503, 504, 408] {
            assert_eq!(server(code).verdict(), Verdict::Retry(None), "{code}");
        }
        assert_eq!(server(429).verdict(), Verdict::Retry(Some(MIN_429_WAIT)));
        assert_eq!(envelope("TOOMANYREQUESTS").verdict(), Verdict::Retry(Some(MIN_429_WAIT)));
        for code in [400, 401, 403, 404, 405, 409, 413, 501, 505] {
            assert_eq!(server(code).verdict(), Verdict::Fail, "{code}");
        }
        assert_eq!(envelope("MANIFEST_UNKNOWN").verdict(), Verdict::Fail);
        assert_eq!(envelope("DENIED").verdict(), Verdict::Fail);
        assert_eq!(OciDistributionError::UnauthorizedError { url: "u".into() }.verdict(), Verdict::Fail);
        for kind in
            [ErrorKind::ConnectionReset, ErrorKind::ConnectionRefused, ErrorKind::TimedOut, ErrorKind::UnexpectedEof]
        {
            assert_eq!(OciDistributionError::IoError(Error::from(kind)).verdict(), Verdict::Retry(None), "{kind:?}");
        }
        assert_eq!(OciDistributionError::IoError(Error::from(ErrorKind::PermissionDenied)).verdict(), Verdict::Fail);
        let digest = oci_client::errors::DigestError::VerificationError { expected: "a".into(), actual: "b".into() };
        assert_eq!(io_verdict(&Error::other(digest)), Verdict::Fail, "a digest mismatch is not the network's fault");
        assert_eq!(OciDistributionError::timed_out(Duration::from_secs(1)).verdict(), Verdict::Retry(None));
    }

    #[tokio::test]
    async fn classifies_real_connection_failures() {
        // A port nothing listens on: connection refused, which is transient.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let _ = rustls::crypto::ring::default_provider().install_default();
        let e = reqwest::Client::new().get(format!("http://127.0.0.1:{port}/v2/")).send().await.unwrap_err();
        assert_eq!(OciDistributionError::from(e).verdict(), Verdict::Retry(None));
    }

    #[tokio::test]
    async fn a_body_cut_short_is_transient() {
        use futures_util::StreamExt;
        use std::io::{Read, Write};
        let _ = rustls::crypto::ring::default_provider().install_default();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut req = [0u8; 1024];
            let _ = c.read(&mut req);
            let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nonly a little");
        });
        let resp = reqwest::Client::new().get(format!("http://127.0.0.1:{port}/blob")).send().await.unwrap();
        let mut body = resp.bytes_stream();
        let mut failed = None;
        while let Some(chunk) = body.next().await {
            if let Err(e) = chunk {
                failed = Some(e);
                break;
            }
        }
        let e = failed.expect("a body cut short must be an error");
        assert_eq!(reqwest_verdict(&e), Verdict::Retry(None), "{e}");
        assert_eq!(io_verdict(&std::io::Error::other(e)), Verdict::Retry(None), "as oci-client's stream wraps it");
    }
}
