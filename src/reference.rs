//! Image references: `[docker://]host[:port]/repo[:tag][@sha256:…]`, `oci:DIR[:TAG|@sha256:…]`,
//! `docker-archive:FILE[:REF|:@N]` and `oci-archive:FILE[:TAG]` (skopeo's spelling: FILE ends at
//! the first `:`).
//!
//! Owns: parsing and printing references, the names a reference's form implies (a tag
//! beside it, another repository of its registry, its pullable name), and the list of their
//! forms that `--help` shows ([`IMAGE_FORMS`]). Must not: do I/O.

use crate::digest::Digest;
use std::fmt;
use std::path::PathBuf;

/// The image forms a reference takes, as every command's `--help` names them (the one place
/// they are listed for users; [`ImageRef::parse`] is what accepts them).
macro_rules! image_forms {
    () => {
        "  [docker://]host[:port]/repo[:tag|@sha256:…]   a registry (loopback ones over plain HTTP)\n  \
         oci:DIR[:TAG|@sha256:…]                       an OCI layout directory\n  \
         oci-archive:FILE[:TAG]                        an OCI layout in a tar (skopeo, buildah)\n  \
         docker-archive:FILE[:REF|:@N]                 a `docker save` archive (:REF or :@N picks one image)"
    };
}

/// `--help` of a command whose images may take every form.
pub const IMAGE_FORMS: &str = concat!("Image forms:\n", image_forms!());

/// `--help` of a command that reads or writes signatures beside an image: a docker-archive
/// holds images only, so it is refused there.
pub const SIGNABLE_FORMS: &str = concat!(
    "Image forms:\n",
    image_forms!(),
    "\n(a docker-archive holds images only, never signatures or attestations: it is refused here)"
);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageRef {
    Registry {
        registry: String,
        repository: String,
        tag: Option<String>,
        digest: Option<Digest>,
    },
    Layout {
        dir: PathBuf,
        tag: Option<String>,
        digest: Option<Digest>,
    },
    /// `docker save`'s format. `name` picks an image of a multi-image archive when reading and
    /// is the image's `RepoTags` entry when writing.
    DockerArchive {
        file: PathBuf,
        name: Option<ArchiveName>,
        digest: Option<Digest>,
    },
    /// An OCI layout in a tar (skopeo's and buildah's `oci-archive:`).
    OciArchive {
        file: PathBuf,
        tag: Option<String>,
        digest: Option<Digest>,
    },
}

/// Which image of a docker-archive: by `RepoTags` entry, or by position (`@N`, from 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArchiveName {
    Ref(String),
    Index(usize),
}

impl fmt::Display for ArchiveName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArchiveName::Ref(r) => write!(f, "{r}"),
            ArchiveName::Index(i) => write!(f, "@{i}"),
        }
    }
}

/// `FILE[:REST][@sha256:…]` of an archive reference: the file, what follows its first `:`, and a
/// trailing digest (which harden itself appends to name a platform or print a result).
fn split_archive<'a>(rest: &'a str, whole: &str) -> Result<(PathBuf, Option<&'a str>, Option<Digest>), String> {
    let (rest, digest) = match rest.rsplit_once('@') {
        Some((r, d)) if d.starts_with("sha256:") => (r, Some(Digest::parse(d).map_err(|e| format!("`{whole}`: {e}"))?)),
        _ => (rest, None),
    };
    let (file, name) = match rest.split_once(':') {
        Some((f, n)) => (f, Some(n).filter(|n| !n.is_empty())),
        None => (rest, None),
    };
    if file.is_empty() {
        return Err(format!("`{whole}`: expected a file name after the transport"));
    }
    Ok((PathBuf::from(file), name, digest))
}

impl ImageRef {
    pub fn parse(s: &str) -> Result<ImageRef, String> {
        if let Some(rest) = s.strip_prefix("docker-archive:") {
            let (file, name, digest) = split_archive(rest, s)?;
            let name = match name {
                None => None,
                Some(n) => match n.strip_prefix('@') {
                    Some(i) => Some(ArchiveName::Index(
                        i.parse().map_err(|_| format!("`{s}`: `@{i}` is not an image number (@0, @1, …)"))?,
                    )),
                    None => {
                        // Checked as a registry reference would be; stored as written.
                        ImageRef::parse(n).map_err(|e| format!("`{s}`: image name {e}"))?;
                        if n.contains('@') {
                            return Err(format!("`{s}`: the image name in a docker-archive cannot have a digest"));
                        }
                        Some(ArchiveName::Ref(n.to_string()))
                    }
                },
            };
            return Ok(ImageRef::DockerArchive { file, name, digest });
        }
        if let Some(rest) = s.strip_prefix("oci-archive:") {
            let (file, tag, digest) = split_archive(rest, s)?;
            if let Some(t) = tag {
                if t.contains(['/', ':', '@']) {
                    return Err(format!("`{s}`: `{t}` is not a valid tag"));
                }
            }
            return Ok(ImageRef::OciArchive { file, tag: tag.map(str::to_string), digest });
        }
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
            ImageRef::DockerArchive { file, name, .. } => {
                ImageRef::DockerArchive { file, name, digest: Some(d.clone()) }
            }
            ImageRef::OciArchive { file, tag, .. } => ImageRef::OciArchive { file, tag, digest: Some(d.clone()) },
        }
    }

    /// The same reference without its tag (a manifest pushed by digest only).
    pub fn without_tag(&self) -> ImageRef {
        match self.clone() {
            ImageRef::Registry { registry, repository, digest, .. } => {
                ImageRef::Registry { registry, repository, tag: None, digest }
            }
            ImageRef::Layout { dir, digest, .. } => ImageRef::Layout { dir, tag: None, digest },
            ImageRef::DockerArchive { file, digest, .. } => ImageRef::DockerArchive { file, name: None, digest },
            ImageRef::OciArchive { file, digest, .. } => ImageRef::OciArchive { file, tag: None, digest },
        }
    }

    /// The tag `tag` beside this image: same repository (or layout, or archive), no digest.
    /// Where cosign keeps what describes an image (`.sig`, `.att`, the referrers tag). A
    /// docker-archive has no tags: the archive itself (storing a signature there fails,
    /// naming it).
    pub fn with_tag(&self, tag: &str) -> ImageRef {
        let tag = Some(tag.to_string());
        match self.clone() {
            ImageRef::Registry { registry, repository, .. } => {
                ImageRef::Registry { registry, repository, tag, digest: None }
            }
            ImageRef::Layout { dir, .. } => ImageRef::Layout { dir, tag, digest: None },
            ImageRef::OciArchive { file, .. } => ImageRef::OciArchive { file, tag, digest: None },
            ImageRef::DockerArchive { file, .. } => ImageRef::DockerArchive { file, name: None, digest: None },
        }
    }

    /// The image `d` in `repository` of this reference's registry; None when it names no
    /// registry.
    pub fn in_repository(&self, repository: &str, d: &Digest) -> Option<ImageRef> {
        match self {
            ImageRef::Registry { registry, .. } => Some(ImageRef::Registry {
                registry: registry.clone(),
                repository: repository.to_string(),
                tag: None,
                digest: Some(d.clone()),
            }),
            ImageRef::Layout { .. } | ImageRef::DockerArchive { .. } | ImageRef::OciArchive { .. } => None,
        }
    }

    /// Whether it names an image in a registry (not a file).
    pub fn is_registry(&self) -> bool {
        match self {
            ImageRef::Registry { .. } => true,
            ImageRef::Layout { .. } | ImageRef::DockerArchive { .. } | ImageRef::OciArchive { .. } => false,
        }
    }

    /// The name a registry serves this image by, `host/repo[:tag]` (the digest apart); None for
    /// files (a local path is nobody's name).
    pub fn pullable_name(&self) -> Option<String> {
        match self {
            ImageRef::Registry { tag, .. } => {
                Some(format!("{}{}", self.repository_name(), tag.as_ref().map(|t| format!(":{t}")).unwrap_or_default()))
            }
            ImageRef::Layout { .. } | ImageRef::DockerArchive { .. } | ImageRef::OciArchive { .. } => None,
        }
    }

    /// Whether it names the tag `latest`: written, or (a registry reference without tag or
    /// digest) by default.
    pub fn names_latest(&self) -> bool {
        match self {
            ImageRef::Registry { tag, digest, .. } => match tag {
                Some(t) => t == "latest",
                None => digest.is_none(),
            },
            ImageRef::Layout { tag, .. } | ImageRef::OciArchive { tag, .. } => tag.as_deref() == Some("latest"),
            ImageRef::DockerArchive { name, .. } => matches!(name, Some(ArchiveName::Ref(n)) if n.ends_with(":latest")),
        }
    }

    /// `host/repo@sha256:…`, `oci:DIR@sha256:…`, `docker-archive:FILE@sha256:…`: the one line
    /// `rebuild` prints.
    pub fn by_digest(&self, d: &Digest) -> String {
        format!("{}@{d}", self.repository_name())
    }

    /// The repository without tag or digest (what cosign signs as docker-reference).
    pub fn repository_name(&self) -> String {
        match self {
            ImageRef::Registry { registry, repository, .. } => format!("{registry}/{repository}"),
            ImageRef::Layout { dir, .. } => format!("oci:{}", dir.display()),
            ImageRef::DockerArchive { file, .. } => format!("docker-archive:{}", file.display()),
            ImageRef::OciArchive { file, .. } => format!("oci-archive:{}", file.display()),
        }
    }

    /// Its name without what changes from build to build: a registry image by its repository
    /// (no tag, no digest), a layout or archive as named, less the digest.
    pub fn stable_name(&self) -> String {
        match self {
            ImageRef::Registry { .. } => self.repository_name(),
            ImageRef::Layout { .. } | ImageRef::DockerArchive { .. } | ImageRef::OciArchive { .. } => {
                let s = self.to_string();
                match self.digest() {
                    Some(d) => s.trim_end_matches(&format!("@{d}")).to_string(),
                    None => s,
                }
            }
        }
    }

    pub fn digest(&self) -> Option<&Digest> {
        match self {
            ImageRef::Registry { digest, .. }
            | ImageRef::Layout { digest, .. }
            | ImageRef::DockerArchive { digest, .. }
            | ImageRef::OciArchive { digest, .. } => digest.as_ref(),
        }
    }

    pub fn tag(&self) -> Option<&str> {
        match self {
            ImageRef::Registry { tag, .. } | ImageRef::Layout { tag, .. } | ImageRef::OciArchive { tag, .. } => {
                tag.as_deref()
            }
            ImageRef::DockerArchive { .. } => None,
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
        let tag = match self {
            ImageRef::DockerArchive { name, .. } => name.as_ref().map(|n| n.to_string()),
            ImageRef::Registry { .. } | ImageRef::Layout { .. } | ImageRef::OciArchive { .. } => {
                self.tag().map(str::to_string)
            }
        };
        write!(f, "{}", self.repository_name())?;
        if let Some(t) = tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = self.digest() {
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

    #[test]
    fn parses_archive_references() {
        let r = ImageRef::parse("docker-archive:/tmp/a.tar:localhost/app:1.0").unwrap();
        assert_eq!(
            r,
            ImageRef::DockerArchive {
                file: "/tmp/a.tar".into(),
                name: Some(ArchiveName::Ref("localhost/app:1.0".into())),
                digest: None
            }
        );
        assert_eq!(r.to_string(), "docker-archive:/tmp/a.tar:localhost/app:1.0");
        let r = ImageRef::parse("docker-archive:a.tar:@2").unwrap();
        assert!(matches!(&r, ImageRef::DockerArchive { name: Some(ArchiveName::Index(2)), .. }));
        assert_eq!(r.to_string(), "docker-archive:a.tar:@2");
        assert!(matches!(ImageRef::parse("docker-archive:a.tar").unwrap(), ImageRef::DockerArchive { name: None, .. }));
        assert!(ImageRef::parse("docker-archive:a.tar:@x").is_err());
        assert!(ImageRef::parse("docker-archive:a.tar:UPPER/x").is_err());
        assert!(ImageRef::parse("docker-archive:").is_err());
        assert!(ImageRef::parse("oci-archive::v1").is_err());
        let d = Digest::of(b"x");
        // What rebuild prints parses back to the same image.
        let printed = ImageRef::parse("docker-archive:a.tar:app:1").unwrap().by_digest(&d);
        assert_eq!(printed, format!("docker-archive:a.tar@{d}"));
        assert_eq!(ImageRef::parse(&printed).unwrap().digest(), Some(&d));
        let o = ImageRef::parse("oci-archive:./o.tar:v1").unwrap();
        assert_eq!(o, ImageRef::OciArchive { file: "./o.tar".into(), tag: Some("v1".into()), digest: None });
        assert_eq!(o.with_digest(&d).to_string(), format!("oci-archive:./o.tar:v1@{d}"));
        assert!(ImageRef::parse("oci-archive:o.tar:a/b").is_err());
    }
}
