//! Image references: `[docker://]host[:port]/repo[:tag][@sha256:…]` and `oci:DIR[:TAG|@sha256:…]`.
//!
//! Owns: parsing and printing references. Must not: do I/O.

use crate::digest::Digest;
use std::fmt;
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageRef {
    Registry { registry: String, repository: String, tag: Option<String>, digest: Option<Digest> },
    Layout { dir: PathBuf, tag: Option<String>, digest: Option<Digest> },
}

impl ImageRef {
    pub fn parse(s: &str) -> Result<ImageRef, String> {
        if let Some(rest) = s.strip_prefix("oci:") {
            let (rest, digest) = split_digest(rest, s)?;
            // oci:DIR:TAG — the tag is after the last ':' when it holds no '/'.
            let (dir, tag) = match rest.rsplit_once(':') {
                Some((d, t)) if !t.contains('/') && !d.is_empty() => (d, Some(t.to_string())),
                _ => (rest, None),
            };
            if dir.is_empty() {
                return Err(format!("`{s}`: expected oci:DIR[:TAG]"));
            }
            return Ok(ImageRef::Layout { dir: PathBuf::from(dir), tag, digest });
        }
        let rest = s.strip_prefix("docker://").unwrap_or(s);
        let (rest, digest) = split_digest(rest, s)?;
        let (name, tag) = match rest.rsplit_once(':') {
            Some((n, t)) if !t.contains('/') => (n, Some(t.to_string())),
            _ => (rest, None),
        };
        let (registry, repository) = match name.split_once('/') {
            Some((h, r)) if h.contains('.') || h.contains(':') || h == "localhost" => (h.to_string(), r.to_string()),
            _ if name.contains('/') => ("docker.io".to_string(), name.to_string()),
            _ => ("docker.io".to_string(), format!("library/{name}")),
        };
        let valid_repo = !repository.is_empty()
            && repository.split('/').all(|c| {
                !c.is_empty() && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            });
        if !valid_repo {
            return Err(format!(
                "`{s}`: repository `{repository}` is not a valid name (lower-case letters, digits, `._-`, `/`)"
            ));
        }
        if let Some(t) = &tag {
            if t.is_empty() || t.len() > 128 || !t.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
                return Err(format!("`{s}`: tag `{t}` is not valid"));
            }
        }
        Ok(ImageRef::Registry { registry, repository, tag, digest })
    }

    /// The same image, named by digest.
    pub fn with_digest(&self, d: &Digest) -> ImageRef {
        match self.clone() {
            ImageRef::Registry { registry, repository, tag, .. } => {
                ImageRef::Registry { registry, repository, tag, digest: Some(d.clone()) }
            }
            ImageRef::Layout { dir, tag, .. } => ImageRef::Layout { dir, tag, digest: Some(d.clone()) },
        }
    }

    /// The same reference without its tag (a manifest pushed by digest only).
    pub fn without_tag(&self) -> ImageRef {
        match self.clone() {
            ImageRef::Registry { registry, repository, digest, .. } => {
                ImageRef::Registry { registry, repository, tag: None, digest }
            }
            ImageRef::Layout { dir, digest, .. } => ImageRef::Layout { dir, tag: None, digest },
        }
    }

    /// `host/repo@sha256:…` or `oci:DIR@sha256:…`: the one line `rebuild` prints.
    pub fn by_digest(&self, d: &Digest) -> String {
        match self {
            ImageRef::Registry { registry, repository, .. } => format!("{registry}/{repository}@{d}"),
            ImageRef::Layout { dir, .. } => format!("oci:{}@{d}", dir.display()),
        }
    }

    /// The repository without tag or digest (what cosign signs as docker-reference).
    pub fn repository_name(&self) -> String {
        match self {
            ImageRef::Registry { registry, repository, .. } => format!("{registry}/{repository}"),
            ImageRef::Layout { dir, .. } => format!("oci:{}", dir.display()),
        }
    }

    pub fn digest(&self) -> Option<&Digest> {
        match self {
            ImageRef::Registry { digest, .. } | ImageRef::Layout { digest, .. } => digest.as_ref(),
        }
    }

    pub fn tag(&self) -> Option<&str> {
        match self {
            ImageRef::Registry { tag, .. } | ImageRef::Layout { tag, .. } => tag.as_deref(),
        }
    }
}

fn split_digest<'a>(s: &'a str, whole: &str) -> Result<(&'a str, Option<Digest>), String> {
    match s.split_once('@') {
        Some((n, d)) => Ok((n, Some(Digest::parse(d).map_err(|e| format!("`{whole}`: {e}"))?))),
        None => Ok((s, None)),
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (base, tag, digest) = match self {
            ImageRef::Registry { registry, repository, tag, digest } => {
                (format!("{registry}/{repository}"), tag, digest)
            }
            ImageRef::Layout { dir, tag, digest } => (format!("oci:{}", dir.display()), tag, digest),
        };
        write!(f, "{base}")?;
        if let Some(t) = tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_registry_and_layout_references() {
        let r = ImageRef::parse("docker://127.0.0.1:5000/team/app:1.2").unwrap();
        assert_eq!(
            r,
            ImageRef::Registry {
                registry: "127.0.0.1:5000".into(),
                repository: "team/app".into(),
                tag: Some("1.2".into()),
                digest: None
            }
        );
        assert_eq!(r.to_string(), "127.0.0.1:5000/team/app:1.2");
        assert_eq!(ImageRef::parse("debian").unwrap().to_string(), "docker.io/library/debian");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = ImageRef::parse(&format!("localhost:5000/x@{d}")).unwrap();
        assert_eq!(r.digest().unwrap().as_str(), d);
        let l = ImageRef::parse("oci:/tmp/lay:v1").unwrap();
        assert_eq!(l, ImageRef::Layout { dir: "/tmp/lay".into(), tag: Some("v1".into()), digest: None });
        assert_eq!(ImageRef::parse("oci:./dir").unwrap().tag(), None);
        assert!(ImageRef::parse("host:5000/UPPER").is_err());
        assert!(ImageRef::parse("host:5000/x@sha256:zz").is_err());
        assert!(ImageRef::parse("oci:").is_err());
    }
}
