//! A registry through oci-client: Basic auth and the Bearer challenge are oci-client's; plain
//! HTTP is used for localhost and 127.0.0.0/8 (or with `--plain-http`). Layer uploads are
//! monolithic PUTs streamed from a local file with the digest known up front.
//!
//! Every request goes through the [`RetryPolicy`] (`--retries`, `--timeout`): a transient
//! failure is retried with backoff; a download restarts from scratch into the same spool file;
//! an upload is sent again whole (an interrupted upload session is abandoned, and the registry
//! discards it). Reads stall out after `--timeout` without data (reqwest's read timeout), and
//! uploads after `--timeout` without the registry taking data (a watchdog on the body stream).

use super::auth::{self, Credentials};
use super::retry::{AttemptError, Classify, RetryPolicy};
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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Registry {
    client: Client,
    auth: RegistryAuth,
    retry: RetryPolicy,
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
            read_timeout: Some(net.timeout),
            connect_timeout: Some(net.timeout.min(Duration::from_secs(30))),
            ..Default::default()
        };
        let retry = RetryPolicy { retries: net.retries, timeout: net.timeout, ..Default::default() };
        let client =
            Client::try_from(config).map_err(|e| anyhow!("{r}: cannot set up the HTTP client: {}", describe(&e)))?;
        let auth = match auth::lookup(registry)? {
            Credentials::Anonymous => RegistryAuth::Anonymous,
            Credentials::Basic(u, p) => RegistryAuth::Basic(u, p),
        };
        Ok(Registry { client, auth, retry, registry: registry.clone(), repository: repository.clone() })
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
            let what = format!("{}: authentication for push", self.name());
            self.retry
                .call(&what, || self.client.auth(&r, &self.auth, oci_client::RegistryOperation::Push))
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
        let what = format!("{r}: GET manifest");
        let pulled = self.retry.call(&what, || self.client.pull_manifest_raw(&reference, &self.auth, ACCEPT)).await;
        let bytes = match pulled {
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
        let what = format!("{}: blob {d}", self.name());
        let out = self
            .retry
            .stream(&what, || async {
                let mut stream =
                    self.client.pull_blob_stream(&r, d.as_str()).await.map_err(|e| AttemptError::oci(e, &what))?;
                let mut out = Vec::new();
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| AttemptError::io(e, &what))?;
                    if out.len() as u64 + chunk.len() as u64 > max {
                        return Err(AttemptError::fatal(anyhow!(
                            "{what} is larger than the {max}-byte limit for this kind of blob"
                        )));
                    }
                    out.extend_from_slice(&chunk);
                }
                Ok(out)
            })
            .await?;
        Ok(out)
    }

    /// Download a blob into `spool`, hashing on the way; a mismatch aborts naming the digest.
    /// `size` is the manifest's (which is verified): a registry sending more is refused as it
    /// happens, so a hostile one cannot fill the disk. A failed attempt starts over from byte 0.
    pub async fn download(&self, d: &Digest, size: u64, spool: &Path) -> Result<LocalBlob> {
        self.ensure_auth(false).await?;
        let r = self.reference(None);
        let path = spool.join(format!("in-{}", d.hex()));
        let what = format!("{}: blob {d}", self.name());
        let fatal = |e: std::io::Error| AttemptError::fatal(anyhow!("{}: {e}", path.display()));
        self.retry
            .stream(&what, || async {
                let mut stream =
                    self.client.pull_blob_stream(&r, d.as_str()).await.map_err(|e| AttemptError::oci(e, &what))?;
                // Truncates what an earlier attempt left.
                let file = std::fs::File::create(&path).map_err(fatal)?;
                let mut w = HashingWriter::new(std::io::BufWriter::with_capacity(1 << 20, file));
                let mut n = 0u64;
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| AttemptError::io(e, format!("{what}: download failed")))?;
                    n += chunk.len() as u64;
                    if n > size {
                        return Err(AttemptError::fatal(anyhow!(
                            "{what}: the registry sent more than the {size} bytes the manifest declares"
                        )));
                    }
                    w.write_all(&chunk).map_err(fatal)?;
                }
                let (mut inner, got, count) = w.finish();
                inner.flush().map_err(fatal)?;
                if count < size {
                    // Cut short without an error: the connection's fault, worth another try.
                    return Err(AttemptError {
                        error: anyhow!("{what}: download ended after {count} of {size} bytes"),
                        verdict: super::retry::Verdict::Retry(None),
                    });
                }
                if got != *d {
                    return Err(AttemptError::fatal(anyhow!("{what}: content has digest {got} (corrupt or tampered)")));
                }
                Ok(LocalBlob { path: path.clone(), verified: true })
            })
            .await
            .map_err(anyhow::Error::from)
    }

    pub async fn has_blob(&self, d: &Digest) -> Result<bool> {
        self.ensure_auth(false).await?;
        let r = self.reference(None);
        let what = format!("{}: HEAD blob {d}", self.name());
        self.retry
            .call(&what, || self.client.blob_exists(&r, d.as_str()))
            .await
            .map_err(|e| anyhow!("{what}: {}", describe(&e)))
    }

    pub async fn put_blob(&self, d: &Digest, size: u64, path: &Path) -> Result<()> {
        self.ensure_auth(true).await?;
        let r = self.reference(None);
        let what = format!("{}: upload of blob {d}", self.name());
        let timeout = self.retry.timeout;
        self.retry
            .stream(&what, || async {
                let file = tokio::fs::File::open(path)
                    .await
                    .map_err(|e| AttemptError::fatal(anyhow!("cannot open {}: {e}", path.display())))?;
                let watch = Watchdog::new();
                let body = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20);
                let body = watch.observe(body).map_err(OciDistributionError::from);
                let push = self.client.push_blob_stream(&r, body, d.as_str(), Some(size));
                tokio::select! {
                    res = push => res.map(|_| ()).map_err(|e| AttemptError::oci(e, format!("{what} failed"))),
                    stalled = watch.stalled(timeout) => Err(AttemptError { error: anyhow!("{what} failed: {stalled}"), ..AttemptError::timed_out(timeout) }),
                }
            })
            .await
            .map_err(anyhow::Error::from)
    }

    pub async fn put_blob_bytes(&self, d: &Digest, bytes: &[u8]) -> Result<()> {
        self.ensure_auth(true).await?;
        let r = self.reference(None);
        let what = format!("{}: upload of blob {d}", self.name());
        let bytes = bytes::Bytes::copy_from_slice(bytes);
        self.retry
            .call(&what, || self.client.push_blob(&r, bytes.clone(), d.as_str()))
            .await
            .map_err(|e| anyhow!("{what} failed: {}", describe(&e)))?;
        Ok(())
    }

    pub async fn mount(&self, src: &Registry, d: &Digest) -> bool {
        if self.ensure_auth(true).await.is_err() {
            return false;
        }
        let (to, from) = (self.reference(None), src.reference(None));
        let what = format!("{}: mount of blob {d} from {}", self.name(), src.name());
        self.retry.call(&what, || self.client.mount_blob(&to, &from, d.as_str())).await.is_ok()
    }

    pub async fn put_manifest(&self, r: &ImageRef, m: &Manifest) -> Result<()> {
        self.ensure_auth(true).await?;
        let key = r.tag().map(str::to_string).unwrap_or_else(|| m.digest.as_str().to_string());
        let ct: reqwest::header::HeaderValue =
            m.media_type.parse().map_err(|_| anyhow!("media type {} is not a valid header", m.media_type))?;
        let target = self.reference(Some(&key));
        let body = bytes::Bytes::from(m.bytes.clone());
        let what = format!("{r}: manifest push");
        self.retry
            .call(&what, || self.client.push_manifest_raw(&target, body.clone(), ct.clone()))
            .await
            .map_err(|e| anyhow!("{r}: manifest push failed: {}", describe(&e)))?;
        Ok(())
    }
}

/// Watches an upload body: when the registry stops taking data for `--timeout`, the attempt
/// fails (a read timeout cannot see a stalled upload: nothing is being read).
struct Watchdog {
    start: Instant,
    /// Milliseconds since `start` at the last chunk handed to the connection.
    last: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
}

impl Watchdog {
    fn new() -> Watchdog {
        Watchdog { start: Instant::now(), last: Arc::new(AtomicU64::new(0)), done: Arc::new(AtomicBool::new(false)) }
    }

    fn observe<S: futures_util::Stream + Unpin>(&self, body: S) -> impl futures_util::Stream<Item = S::Item> {
        let (start, last, done) = (self.start, Arc::clone(&self.last), Arc::clone(&self.done));
        futures_util::stream::unfold(body, move |mut body| {
            let (last, done) = (Arc::clone(&last), Arc::clone(&done));
            async move {
                let item = body.next().await;
                last.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
                if item.is_none() {
                    // All sent: waiting for the answer is the read timeout's job.
                    done.store(true, Ordering::Relaxed);
                }
                item.map(|i| (i, body))
            }
        })
    }

    /// Resolves when the body has made no progress for `limit` (never once it is all sent).
    async fn stalled(&self, limit: Duration) -> String {
        let tick = (limit / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        loop {
            tokio::time::sleep(tick).await;
            if self.done.load(Ordering::Relaxed) {
                std::future::pending::<()>().await;
            }
            let idle = self.start.elapsed().saturating_sub(Duration::from_millis(self.last.load(Ordering::Relaxed)));
            if idle >= limit {
                return format!("the registry took no data for {} s (--timeout)", idle.as_secs());
            }
        }
    }
}
