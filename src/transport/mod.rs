//! Transport: fetch and store manifests and blobs, from and to a registry, an OCI layout or an
//! archive ([`archive`]: `docker-archive:`, `oci-archive:`).
//! Every blob and manifest read is checked against its digest; stores are blobs first, the
//! manifest (or `index.json`) last.
//!
//! Owns: I/O with image stores, credentials, digest verification, and what each kind of store
//! can hold ([`Endpoint::holds_index`], [`Endpoint::holds_signatures`], …: the code above asks
//! these and matches no variant). Must not: know about profiles or layer contents.

pub mod archive;
pub mod auth;
pub mod errors;
pub mod follow;
pub mod layout;
pub mod locations;
pub mod oauth;
pub mod push;
pub mod registry;
pub mod retry;
#[cfg(test)]
mod tests;
pub mod upload;

use crate::digest::Digest;
use crate::reference::ImageRef;
use anyhow::Result;
use std::path::{Path, PathBuf};

/// Largest manifest or config accepted (the distribution spec's recommended manifest limit is 4 MiB).
pub const MAX_MANIFEST: usize = 4 << 20;
pub const MAX_CONFIG: u64 = 16 << 20;

#[derive(Clone, Debug)]
pub struct Manifest {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: Digest,
}

/// Network settings shared by every registry a run talks to.
#[derive(Clone, Debug)]
pub struct NetOptions {
    /// Hosts spoken to over plain HTTP besides localhost and 127.0.0.0/8.
    pub plain_http: bool,
    pub insecure: bool,
    pub ca_cert: Option<PathBuf>,
    /// Retries per request after a transient failure (`--retries`).
    pub retries: u32,
    /// Per-request deadline, and the longest a transfer may stall (`--timeout`).
    pub timeout: std::time::Duration,
    /// Where the transport's own notes (retries) go.
    pub progress: crate::progress::Progress,
    /// The largest blob an archive may unpack (`--max-layer-size`: a layer blob is at most a
    /// layer; see [`archive`]).
    pub max_blob: u64,
    /// Where registry credentials come from (`--authfile`, `--creds`, the auth files).
    pub logins: auth::Logins,
    /// The registry connections opened with these settings, shared by every clone: one per
    /// registry and login for a whole run or batch ([`registry::Clients`]).
    pub clients: registry::Clients,
}

impl NetOptions {
    /// These settings for reading the source image: `--src-creds` before `--creds`.
    pub fn for_source(&self) -> NetOptions {
        NetOptions { logins: self.logins.for_source(), ..self.clone() }
    }

    /// These settings for writing the destination (and what goes beside it: signatures,
    /// attestations, the shared cache): `--dest-creds` before `--creds`.
    pub fn for_destination(&self) -> NetOptions {
        NetOptions { logins: self.logins.for_destination(), ..self.clone() }
    }
}

impl Default for NetOptions {
    fn default() -> Self {
        NetOptions {
            plain_http: false,
            insecure: false,
            ca_cert: None,
            retries: retry::DEFAULT_RETRIES,
            timeout: retry::DEFAULT_TIMEOUT,
            progress: crate::progress::Progress::default(),
            max_blob: crate::layer::DEFAULT_MAX_LAYER_SIZE,
            logins: auth::Logins::default(),
            clients: registry::Clients::default(),
        }
    }
}

/// A blob available as a local file: the layout's own blob, or a verified download.
pub struct LocalBlob {
    pub path: PathBuf,
    /// Whether its digest has been checked already (downloads are checked on the way).
    pub verified: bool,
}

pub enum Endpoint {
    Registry(Box<registry::Registry>),
    Layout(layout::Layout),
    Archive(Box<archive::Archive>),
}

impl Endpoint {
    pub fn open(r: &ImageRef, net: &NetOptions) -> Result<Endpoint> {
        Ok(match r {
            ImageRef::Registry { .. } => Endpoint::Registry(Box::new(registry::Registry::open(r, net)?)),
            ImageRef::Layout { dir, .. } => Endpoint::Layout(layout::Layout::new(dir.clone())),
            ImageRef::DockerArchive { .. } | ImageRef::OciArchive { .. } => {
                Endpoint::Archive(Box::new(archive::Archive::open(r, net.max_blob)?))
            }
        })
    }

    /// The manifest `r` names (by digest when it has one, else by tag).
    pub async fn manifest(&self, r: &ImageRef) -> Result<Manifest> {
        let m = match self {
            Endpoint::Registry(x) => x.manifest(r).await?,
            Endpoint::Layout(x) => x.manifest(r)?,
            Endpoint::Archive(x) => x.manifest(r)?,
        };
        if let Some(want) = r.digest() {
            if *want != m.digest {
                anyhow::bail!("{r}: manifest has digest {}, not the {want} asked for", m.digest);
            }
        }
        Ok(m)
    }

    /// Like [`Endpoint::manifest`], but `None` when the tag or digest does not exist, so callers
    /// can tell "not there" (e.g. an image with no `.sig` yet) from a failure to look.
    pub async fn manifest_opt(&self, r: &ImageRef) -> Result<Option<Manifest>> {
        let m = match self {
            Endpoint::Registry(x) => x.manifest_opt(r).await?,
            Endpoint::Layout(x) => x.manifest_opt(r)?,
            Endpoint::Archive(x) => x.manifest_opt(r)?,
        };
        if let (Some(want), Some(m)) = (r.digest(), &m) {
            if *want != m.digest {
                anyhow::bail!("{r}: manifest has digest {}, not the {want} asked for", m.digest);
            }
        }
        Ok(m)
    }

    /// A small blob (a config), read whole and verified.
    pub async fn blob_bytes(&self, d: &Digest, max: u64) -> Result<Vec<u8>> {
        let bytes = match self {
            Endpoint::Registry(x) => x.blob_bytes(d, max).await?,
            Endpoint::Layout(x) => x.blob_bytes(d, max)?,
            Endpoint::Archive(x) => x.blob_bytes(d, max)?,
        };
        let got = Digest::of(&bytes);
        if got != *d {
            anyhow::bail!("blob {d}: content has digest {got} (corrupt or tampered)");
        }
        Ok(bytes)
    }

    /// A blob as a local file: the layout's own, or downloaded into `spool` and verified on the
    /// way. `size` is the (verified) manifest's: a blob of another size is refused — a download
    /// as soon as it runs over, so a hostile registry cannot fill the disk. A download publishes
    /// its progress to `tap` (see [`follow`]); a layout's blob is already whole, and its `tap`
    /// ends verified only if the layout checked it, which it does not ([`LocalBlob::verified`]).
    pub async fn blob_local(&self, d: &Digest, size: u64, spool: &Path, tap: Option<follow::Tap>) -> Result<LocalBlob> {
        let blob = match self {
            Endpoint::Registry(x) => return x.download(d, size, spool, tap).await,
            Endpoint::Layout(x) => x.blob_local(d, size),
            Endpoint::Archive(x) => x.blob_local(d, size),
        };
        if let Some(tap) = tap {
            match &blob {
                Ok(_) => tap.failed(&anyhow::anyhow!("{d}: a local blob is not downloaded, nothing to follow")),
                Err(e) => tap.failed(e),
            }
        }
        blob
    }

    /// Whether blobs come from the network (and so can be followed while they download).
    pub fn is_registry(&self) -> bool {
        match self {
            Endpoint::Registry(_) => true,
            Endpoint::Layout(_) | Endpoint::Archive(_) => false,
        }
    }

    /// Whether what describes an image (cosign's `.sig` and `.att`, referrers: manifests beside
    /// it) can be stored and found here; a docker-archive holds images only.
    pub fn holds_signatures(&self) -> bool {
        match self {
            Endpoint::Registry(_) | Endpoint::Layout(_) => true,
            Endpoint::Archive(x) => x.holds_signatures(),
        }
    }

    /// Whether a manifest stored here is kept as given, to be fetched again by its digest; a
    /// docker-archive keeps none (see [`Endpoint::stored_digest`]).
    pub fn keeps_manifests(&self) -> bool {
        match self {
            Endpoint::Registry(_) | Endpoint::Layout(_) => true,
            Endpoint::Archive(x) => x.keeps_manifests(),
        }
    }

    /// Fail fast: whether a push here would be accepted (a registry: credentials with push
    /// scope and a HEAD; a layout: its directory writable), checked before anything is fetched
    /// or rewritten, so refused credentials cost a second rather than a rebuild.
    pub async fn check_push(&self) -> Result<()> {
        match self {
            Endpoint::Registry(x) => x.check_push().await,
            Endpoint::Layout(x) => x.check_writable(),
            Endpoint::Archive(x) => x.check_writable(),
        }
    }

    pub async fn has_blob(&self, d: &Digest) -> Result<bool> {
        match self {
            Endpoint::Registry(x) => x.has_blob(d).await,
            Endpoint::Layout(x) => Ok(x.has_blob(d)),
            Endpoint::Archive(x) => Ok(x.has_blob(d)),
        }
    }

    /// Store a blob while it downloads (see [`follow`]): streamed behind the download into a
    /// registry, which checks the digest itself; copied into a layout once the download is
    /// verified. Fails when the download does (the caller reports the download's error).
    pub async fn put_blob_following(&self, d: &Digest, size: u64, follow: &follow::Follow) -> Result<()> {
        match self {
            Endpoint::Registry(x) => x.put_blob_following(d, size, follow).await,
            Endpoint::Layout(_) | Endpoint::Archive(_) => match (follow.finished().await, follow.path()) {
                (follow::End::Verified, Some(path)) => self.put_blob(d, size, &path).await,
                (end, _) => anyhow::bail!("blob {d}: not stored, its download did not complete ({end:?})"),
            },
        }
    }

    /// Store a blob while it is written, its digest known only at its end (a rewrite's output,
    /// followed through a [`follow::tap_growing`]; see
    /// [`registry::Registry::put_blob_growing`]). A registry only: a layout or archive takes
    /// the finished file.
    pub async fn put_blob_growing(&self, follow: &follow::Follow, label: &str, estimate: u64) -> Result<()> {
        match self {
            Endpoint::Registry(x) => x.put_blob_growing(follow, label, estimate).await,
            Endpoint::Layout(_) | Endpoint::Archive(_) => {
                anyhow::bail!("{label}: only a registry takes a blob as it is written")
            }
        }
    }

    /// Store a blob from a local file whose digest and size are known.
    pub async fn put_blob(&self, d: &Digest, size: u64, path: &Path) -> Result<()> {
        match self {
            Endpoint::Registry(x) => x.put_blob(d, size, path).await,
            Endpoint::Layout(x) => x.put_blob(d, path),
            Endpoint::Archive(x) => x.put_blob(d, path),
        }
    }

    pub async fn put_blob_bytes(&self, d: &Digest, bytes: &[u8]) -> Result<()> {
        match self {
            Endpoint::Registry(x) => x.put_blob_bytes(d, bytes).await,
            Endpoint::Layout(x) => x.put_blob_bytes(d, bytes),
            Endpoint::Archive(x) => x.put_blob_bytes(d, bytes),
        }
    }

    /// A registry's name and this endpoint's repository in it (None for files).
    pub fn registry_repository(&self) -> Option<(&str, &str)> {
        match self {
            Endpoint::Registry(x) => Some((&x.registry, &x.repository)),
            Endpoint::Layout(_) | Endpoint::Archive(_) => None,
        }
    }

    /// The repository of this registry that a mount into this endpoint could come from: `src`'s,
    /// when it is another repository of the same registry.
    pub fn mount_source<'s>(&self, src: &'s Endpoint) -> Option<&'s str> {
        match (self.registry_repository(), src.registry_repository()) {
            (Some((registry, repository)), Some((s_registry, s_repository)))
                if registry == s_registry && repository != s_repository =>
            {
                Some(s_repository)
            }
            _ => None,
        }
    }

    /// Cross-repository mount from `repository` of this endpoint's registry; false when not
    /// possible (not a registry, or refused).
    pub async fn mount(&self, repository: &str, d: &Digest) -> bool {
        match self {
            Endpoint::Registry(dst) => dst.repository != repository && dst.mount(repository, d).await,
            Endpoint::Layout(_) | Endpoint::Archive(_) => false,
        }
    }

    /// Store the manifest last, under `r`'s tag (or only by digest when it has none).
    pub async fn put_manifest(&self, r: &ImageRef, m: &Manifest) -> Result<()> {
        match self {
            Endpoint::Registry(x) => x.put_manifest(r, m).await,
            Endpoint::Layout(x) => x.put_manifest(r, m),
            Endpoint::Archive(x) => x.put_manifest(r, m),
        }
    }

    /// The referrers of `d` a registry reports (its referrers API, else its referrers tag);
    /// `None` for a layout or an archive, which have no API (their referrers tag is read like
    /// any tag).
    pub async fn referrers_api(&self, d: &Digest) -> Result<Option<Vec<serde_json::Value>>> {
        match self {
            Endpoint::Registry(x) => x.referrers(d).await.map(Some),
            Endpoint::Layout(_) | Endpoint::Archive(_) => Ok(None),
        }
    }

    /// Whether this store holds OCI media types only (`oci:`, `oci-archive:`): containers/image
    /// looks up a tag of an OCI layout among OCI manifests and indexes only, so a Docker
    /// schema 2 result is converted before it is stored ([`crate::image::docker_manifest_to_oci`]).
    pub fn holds_oci_only(&self) -> bool {
        match self {
            Endpoint::Layout(_) => true,
            Endpoint::Archive(x) => x.kind == archive::Kind::Oci,
            Endpoint::Registry(_) => false,
        }
    }

    /// Whether an index (a multi-platform image) can be stored here; a docker-archive cannot.
    pub fn holds_index(&self) -> bool {
        match self {
            Endpoint::Registry(_) | Endpoint::Layout(_) => true,
            Endpoint::Archive(x) => x.holds_index(),
        }
    }

    /// The digest readers of this store see for the manifest stored as `d`: `d`, except in a
    /// docker-archive, which keeps no manifest (see [`archive::Archive::stored_digest`]).
    pub fn stored_digest(&self, d: &Digest) -> Digest {
        match self {
            Endpoint::Registry(_) | Endpoint::Layout(_) => d.clone(),
            Endpoint::Archive(x) => x.stored_digest(d),
        }
    }
}

/// The media type a manifest declares, or the one its shape implies.
pub fn media_type_of(bytes: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    if let Some(mt) = v["mediaType"].as_str() {
        return Some(mt.to_string());
    }
    if v.get("manifests").is_some() {
        Some(crate::image::OCI_INDEX.to_string())
    } else if v.get("layers").is_some() {
        Some(crate::image::OCI_MANIFEST.to_string())
    } else {
        None
    }
}
