//! A registry through oci-client: Basic auth and the Bearer challenge are oci-client's; plain
//! HTTP is used for localhost and 127.0.0.0/8 (or with `--plain-http`). Layer uploads are
//! monolithic PUTs streamed from a local file with the digest known up front.

use super::auth::{self, Credentials};
use super::{LocalBlob, Manifest, NetOptions};
use crate::digest::{Digest, HashingWriter};
use crate::reference::ImageRef;
use anyhow::{anyhow, bail, Context, Result};
use futures_util::{StreamExt, TryStreamExt};
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use std::io::Write;
use std::path::Path;

pub struct Registry {
    client: Client,
    auth: RegistryAuth,
    pub registry: String,
    pub repository: String,
}

const ACCEPT: &[&str] =
    &[crate::image::OCI_MANIFEST, crate::image::OCI_INDEX, crate::image::DOCKER_MANIFEST, crate::image::DOCKER_LIST];

fn is_loopback(registry: &str) -> bool {
    let host = registry.rsplit_once(':').map(|(h, _)| h).unwrap_or(registry);
    host == "localhost" || host.starts_with("127.") || host == "[::1]"
}

/// One line for a registry error: the status and the registry's own message.
pub fn describe(e: &OciDistributionError) -> String {
    let s = e.to_string();
    s.lines().next().unwrap_or("").to_string()
}

/// Whether a registry error means "no such manifest" (as opposed to auth, network or server trouble).
fn is_not_found(e: &OciDistributionError) -> bool {
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

impl Registry {
    pub fn open(r: &ImageRef, net: &NetOptions) -> Result<Registry> {
        let ImageRef::Registry { registry, repository, .. } = r else { bail!("{r} is not a registry reference") };
        let protocol =
            if net.plain_http || is_loopback(registry) { ClientProtocol::Http } else { ClientProtocol::Https };
        let mut extra = Vec::new();
        if let Some(ca) = &net.ca_cert {
            let data = std::fs::read(ca).with_context(|| format!("--ca-cert {}: cannot read", ca.display()))?;
            extra.push(Certificate { encoding: CertificateEncoding::Pem, data });
        }
        let config = ClientConfig {
            protocol,
            accept_invalid_certificates: net.insecure,
            extra_root_certificates: extra,
            use_monolithic_push: true,
            read_timeout: Some(std::time::Duration::from_secs(300)),
            connect_timeout: Some(std::time::Duration::from_secs(30)),
            ..Default::default()
        };
        let client =
            Client::try_from(config).map_err(|e| anyhow!("{r}: cannot set up the HTTP client: {}", describe(&e)))?;
        let auth = match auth::lookup(registry)? {
            Credentials::Anonymous => RegistryAuth::Anonymous,
            Credentials::Basic(u, p) => RegistryAuth::Basic(u, p),
        };
        Ok(Registry { client, auth, registry: registry.clone(), repository: repository.clone() })
    }

    fn reference(&self, tag_or_digest: Option<&str>) -> Reference {
        match tag_or_digest {
            Some(d) if d.starts_with("sha256:") => {
                Reference::with_digest(self.registry.clone(), self.repository.clone(), d.to_string())
            }
            Some(t) => Reference::with_tag(self.registry.clone(), self.repository.clone(), t.to_string()),
            None => Reference::with_tag(self.registry.clone(), self.repository.clone(), "latest".to_string()),
        }
    }

    fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    async fn ensure_auth(&self, push: bool) -> Result<()> {
        let r = self.reference(None);
        self.client.store_auth_if_needed(&self.registry, &self.auth).await;
        if push {
            self.client
                .auth(&r, &self.auth, oci_client::RegistryOperation::Push)
                .await
                .map_err(|e| anyhow!("{}: authentication for push failed: {}", self.name(), describe(&e)))?;
        }
        Ok(())
    }

    pub async fn manifest(&self, r: &ImageRef) -> Result<Manifest> {
        self.fetch_manifest(r).await?.map_err(|e| anyhow!("{r}: {}", describe(&e)))
    }

    /// Like [`Registry::manifest`], but `None` when the registry says the tag or digest does not
    /// exist (404, or MANIFEST_UNKNOWN / NOT_FOUND / NAME_UNKNOWN); every other failure is an error.
    pub async fn manifest_opt(&self, r: &ImageRef) -> Result<Option<Manifest>> {
        match self.fetch_manifest(r).await? {
            Ok(m) => Ok(Some(m)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(anyhow!("{r}: {}", describe(&e))),
        }
    }

    /// The outer error is ours (auth, size, shape); the inner one is the registry's answer.
    async fn fetch_manifest(&self, r: &ImageRef) -> Result<std::result::Result<Manifest, OciDistributionError>> {
        self.ensure_auth(false).await?;
        let key = r.digest().map(|d| d.as_str().to_string()).or_else(|| r.tag().map(str::to_string));
        let reference = self.reference(key.as_deref());
        let bytes = match self.client.pull_manifest_raw(&reference, &self.auth, ACCEPT).await {
            Ok((bytes, _)) => bytes,
            Err(e) => return Ok(Err(e)),
        };
        if bytes.len() > super::MAX_MANIFEST {
            bail!("{r}: manifest of {} bytes exceeds the {}-byte limit", bytes.len(), super::MAX_MANIFEST);
        }
        let digest = Digest::of(&bytes);
        let media_type = super::media_type_of(&bytes)
            .ok_or_else(|| anyhow!("{r}: the registry answered with something that is not a manifest"))?;
        Ok(Ok(Manifest { bytes: bytes.to_vec(), media_type, digest }))
    }

    pub async fn blob_bytes(&self, d: &Digest, max: u64) -> Result<Vec<u8>> {
        self.ensure_auth(false).await?;
        let r = self.reference(None);
        let mut stream = self
            .client
            .pull_blob_stream(&r, d.as_str())
            .await
            .map_err(|e| anyhow!("{}: blob {d}: {}", self.name(), describe(&e)))?;
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| anyhow!("{}: blob {d}: {e}", self.name()))?;
            if out.len() as u64 + chunk.len() as u64 > max {
                bail!("{}: blob {d} is larger than the {max}-byte limit for this kind of blob", self.name());
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// Download a blob into `spool`, hashing on the way; a mismatch aborts naming the digest.
    pub async fn download(&self, d: &Digest, spool: &Path) -> Result<LocalBlob> {
        self.ensure_auth(false).await?;
        let r = self.reference(None);
        let mut stream = self
            .client
            .pull_blob_stream(&r, d.as_str())
            .await
            .map_err(|e| anyhow!("{}: blob {d}: {}", self.name(), describe(&e)))?;
        let path = spool.join(format!("in-{}", d.hex()));
        let file = std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut w = HashingWriter::new(std::io::BufWriter::with_capacity(1 << 20, file));
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| anyhow!("{}: blob {d}: download failed: {e}", self.name()))?;
            w.write_all(&chunk)?;
        }
        let (mut inner, got, _) = w.finish();
        inner.flush()?;
        if got != *d {
            bail!("{}: blob {d}: content has digest {got} (corrupt or tampered)", self.name());
        }
        Ok(LocalBlob { path, verified: true })
    }

    pub async fn has_blob(&self, d: &Digest) -> Result<bool> {
        self.ensure_auth(false).await?;
        self.client
            .blob_exists(&self.reference(None), d.as_str())
            .await
            .map_err(|e| anyhow!("{}: HEAD blob {d}: {}", self.name(), describe(&e)))
    }

    pub async fn put_blob(&self, d: &Digest, size: u64, path: &Path) -> Result<()> {
        self.ensure_auth(true).await?;
        let file = tokio::fs::File::open(path).await.with_context(|| format!("cannot open {}", path.display()))?;
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20).map_err(OciDistributionError::from);
        self.client
            .push_blob_stream(&self.reference(None), stream, d.as_str(), Some(size))
            .await
            .map_err(|e| anyhow!("{}: upload of blob {d} failed: {}", self.name(), describe(&e)))?;
        Ok(())
    }

    pub async fn put_blob_bytes(&self, d: &Digest, bytes: &[u8]) -> Result<()> {
        self.ensure_auth(true).await?;
        self.client
            .push_blob(&self.reference(None), bytes.to_vec(), d.as_str())
            .await
            .map_err(|e| anyhow!("{}: upload of blob {d} failed: {}", self.name(), describe(&e)))?;
        Ok(())
    }

    pub async fn mount(&self, src: &Registry, d: &Digest) -> bool {
        if self.ensure_auth(true).await.is_err() {
            return false;
        }
        let from = src.reference(None);
        self.client.mount_blob(&self.reference(None), &from, d.as_str()).await.is_ok()
    }

    pub async fn put_manifest(&self, r: &ImageRef, m: &Manifest) -> Result<()> {
        self.ensure_auth(true).await?;
        let key = r.tag().map(str::to_string).unwrap_or_else(|| m.digest.as_str().to_string());
        let ct = m.media_type.parse().map_err(|_| anyhow!("media type {} is not a valid header", m.media_type))?;
        self.client
            .push_manifest_raw(&self.reference(Some(&key)), m.bytes.clone(), ct)
            .await
            .map_err(|e| anyhow!("{r}: manifest push failed: {}", describe(&e)))?;
        Ok(())
    }
}
