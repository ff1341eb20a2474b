//! Secrets: what names a secret (Env names) and what looks like one by content: PEM private key blocks and AWS access key ids, found in the bytes the
//! scan kept of a file (its first KiB for executables, 4 KiB for secret-looking names), in Env
//! values and in history lines. Library code, tests, examples, locales and Markdown are skipped
//! as real scanners skip them, so that certificates, test keys shipped by packages and
//! `settings.py` in site-packages are not reported.
//!
//! Owns: the patterns. Must not: read images or decide what to do about a secret (the audit
//! reports, the config edit removes).

/// Env names that look like secrets (Dockle's pattern and Trivy's list).
pub fn env_name(name: &str) -> bool {
    let up = name.to_ascii_uppercase();
    if up == "GPG_KEY" || up == "GPG_KEYS" {
        return false;
    }
    ["PASS", "PASSWD", "PASSWORD", "SECRET", "KEY", "ACCESS", "TOKEN", "CREDENTIAL", "PRIVATE"]
        .iter()
        .any(|w| up.contains(w))
}

/// Paths whose contents are never judged: library code, headers, shared data, tests, examples,
/// locales and Markdown. The scan keeps no content prefix for them either.
pub fn library_path(path: &str) -> bool {
    const PREFIXES: [&str; 11] = [
        "usr/share/",
        "usr/include/",
        "usr/lib/",
        "usr/lib32/",
        "usr/lib64/",
        "usr/libexec/",
        "lib/",
        "lib64/",
        "usr/local/lib/",
        "usr/local/include/",
        "usr/local/share/",
    ];
    const COMPONENTS: [&str; 13] = [
        "site-packages",
        "dist-packages",
        "node_modules",
        "vendor",
        "test",
        "tests",
        "testdata",
        "__tests__",
        "example",
        "examples",
        "locale",
        "locales",
        "__pycache__",
    ];
    if PREFIXES.iter().any(|p| path.starts_with(p)) {
        return true;
    }
    let lower = path.to_ascii_lowercase();
    if lower.ends_with(".md") {
        return true;
    }
    let mut parts: Vec<&str> = path.split('/').collect();
    parts.pop();
    parts.iter().any(|c| COMPONENTS.contains(c))
}

/// What was found, for evidence (never the secret itself).
pub fn find(data: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(label) = private_key(data) {
        out.push(format!("PEM block `{label}`"));
    }
    for id in aws_key_ids(data) {
        out.push(format!("AWS access key id {}", mask(&id)));
    }
    out
}

/// `AKIA…MPLE`: enough to recognise, not enough to use.
fn mask(id: &str) -> String {
    format!("{}…{}", &id[..4], &id[id.len() - 4..])
}

fn position(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

/// The label of the first real private key block: `-----BEGIN <label>-----` alone on its line,
/// the label ending in `PRIVATE KEY` (or `PGP PRIVATE KEY BLOCK`), then optional `Key: value`
/// headers and a base64 line. A string constant holding only the marker (PEM parsers, docs)
/// is not a key.
fn private_key(data: &[u8]) -> Option<String> {
    const BEGIN: &[u8] = b"-----BEGIN ";
    let mut i = 0;
    while let Some(p) = position(&data[i..], BEGIN) {
        let start = i + p + BEGIN.len();
        i = start;
        let rest = &data[start..];
        let Some(end) = position(rest, b"-----") else {
            break;
        };
        let label = &rest[..end];
        if end > 64 || !label.iter().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b' ') {
            continue;
        }
        if !(label.ends_with(b"PRIVATE KEY") || label == b"PGP PRIVATE KEY BLOCK") {
            continue;
        }
        if body_follows(&rest[end + 5..]) {
            return Some(String::from_utf8_lossy(label).into_owned());
        }
    }
    None
}

fn body_follows(after_marker: &[u8]) -> bool {
    let text = String::from_utf8_lossy(after_marker);
    let mut lines = text.split('\n');
    // The marker must end its line.
    if lines.next().map(|l| l.trim_end_matches('\r')) != Some("") {
        return false;
    }
    for line in lines {
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.contains(':') {
            continue;
        }
        return line.len() >= 16
            && line.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=');
    }
    false
}

/// AWS access key ids: AKIA/ASIA/ABIA/ACCA and 16 base32 characters, standing alone.
fn aws_key_ids(data: &[u8]) -> Vec<String> {
    const PREFIXES: [&[u8]; 4] = [b"AKIA", b"ASIA", b"ABIA", b"ACCA"];
    let word = |b: u8| b.is_ascii_alphanumeric();
    let mut out: Vec<String> = Vec::new();
    // Every id starts with `A`: only those positions are tried, and none inside an id found.
    let mut next = 0;
    for i in memchr::memchr_iter(b'A', data) {
        if i + 20 > data.len() {
            break;
        }
        if i < next {
            continue;
        }
        let here = &data[i..i + 20];
        let standalone = (i == 0 || !word(data[i - 1])) && data.get(i + 20).is_none_or(|b| !word(*b));
        if standalone
            && PREFIXES.iter().any(|p| here.starts_with(p))
            && here[4..].iter().all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(b))
        {
            let id = String::from_utf8_lossy(here).into_owned();
            if !out.contains(&id) {
                out.push(id);
            }
            next = i + 20;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn env_names() {
        assert!(env_name("AWS_SECRET_ACCESS_KEY"));
        assert!(env_name("db_password"));
        assert!(!env_name("GPG_KEY"));
        assert!(!env_name("PATH"));
    }
    use super::*;

    const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END OPENSSH PRIVATE KEY-----\n";

    #[test]
    fn finds_private_keys_but_not_certificates_or_markers_in_code() {
        assert_eq!(find(KEY.as_bytes()), vec!["PEM block `OPENSSH PRIVATE KEY`"]);
        let enc = "-----BEGIN RSA PRIVATE KEY-----\r\nProc-Type: 4,ENCRYPTED\r\nDEK-Info: AES-128-CBC,00\r\n\r\nMIIEpAIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo\r\n";
        assert_eq!(find(enc.as_bytes()).len(), 1);
        let cert = "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBaMQswCQYDVQQGEwJJ\n-----END CERTIFICATE-----\n";
        assert!(find(cert.as_bytes()).is_empty());
        let code = "PEM_HEADER = \"-----BEGIN PRIVATE KEY-----\\n\"\nif line.startswith(PEM_HEADER):\n    pass\n";
        assert!(find(code.as_bytes()).is_empty());
        let truncated = "-----BEGIN PRIVATE KEY-----\n";
        assert!(find(truncated.as_bytes()).is_empty());
    }

    #[test]
    fn finds_aws_key_ids_standing_alone() {
        assert_eq!(find(b"AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\n"), vec!["AWS access key id AKIA…MPLE"]);
        assert!(find(b"XAKIAIOSFODNN7EXAMPLE").is_empty());
        assert!(find(b"AKIAIOSFODNN7EXAMPLEX").is_empty());
        assert!(find(b"AKIAiosfodnn7example").is_empty());
        assert_eq!(find(b"ASIAIOSFODNN7EXAMPLE ASIAIOSFODNN7EXAMPLE").len(), 1);
    }

    #[test]
    fn library_paths_are_skipped() {
        assert!(library_path("usr/lib/python3/dist-packages/django/conf/settings.py"));
        assert!(library_path("usr/local/lib/python3.12/site-packages/x/key.pem"));
        assert!(library_path("app/node_modules/x/test.key"));
        assert!(library_path("app/tests/fixture.pem"));
        assert!(library_path("app/README.md"));
        assert!(library_path("usr/share/ca-certificates/mozilla/ISRG_Root_X1.crt"));
        assert!(!library_path("app/settings.py"));
        assert!(!library_path("etc/ssl/private/server.key"));
        assert!(!library_path("root/.ssh/id_rsa"));
        assert!(!library_path("app/test"));
    }
}
