//! A registry through oci-client: Basic auth and the Bearer challenge are oci-client's (an
//! identity token is exchanged by [`super::oauth`] and handed to it as a Bearer token); plain
//! HTTP is used for localhost and 127.0.0.0/8 (or with `--plain-http`). Layer uploads are
//! monolithic PUTs with the digest known up front, streamed from a local file or from behind a
//! download still under way (see [`super::follow`]), which downloads publish their progress to.
//! A blob whose digest is known only once it is written (a rewrite's output) goes up behind its
//! writer by harden's own upload ([`super::upload`]: a POST, one streamed PATCH, the digest in
//! the PUT), with the push token oci-client was given for the repository, or the Basic login.
//!
//! Every request goes through the [`RetryPolicy`] (`--retries`, `--timeout`): a transient
//! failure is retried with backoff; a download restarts from scratch into the same spool file;
//! an upload is sent again whole (an interrupted upload session is abandoned, and the registry
//! discards it). A transfer fails when it makes no progress for `--timeout`: a download that
//! receives nothing, an upload the registry takes nothing of, or no answer once it is all sent.
//! (reqwest's read timeout is not used: hyper keeps reading while it sends a body, so it would
//! cut every upload longer than the timeout, however steady.)
//!
//! One connection per registry and login ([`Clients`], carried by [`NetOptions`]) serves every
//! endpoint a run opens on it — a batch's jobs, a rebuild's source and destination — so a TLS
//! set-up, a `/v2/` handshake and a push authentication per repository are paid once per run,
//! not per job.
//!
//! Owns: requests to one registry and their retries, timeouts and progress. Must not: know
//! about profiles, or decide what to push (the push protocol does).

use super::auth::Credentials;
use super::errors::{describe, is_not_found, AttemptError};
use super::follow::{End, Follow, Tap};
use super::retry::{Classify, RetryPolicy};
use super::upload;
use super::{LocalBlob, Manifest, NetOptions};
use crate::digest::Digest;
use crate::reference::ImageRef;
use anyhow::{anyhow, bail, Context, Result};
use futures_util::{StreamExt, TryStreamExt};
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol, SizedStream};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest chunk of an upload body read behind a download: progress for the watchdog stays
/// fine-grained, and few hand-offs to the blocking pool.
const UPLOAD_CHUNK: usize = 256 << 10;

pub struct Registry {
    /// The connection to this registry under this login, shared with every endpoint opened
    /// from the same [`NetOptions`] (see [`Clients`]).
    conn: Arc<Conn>,
    /// What this repository shares with the other endpoints on it through `conn`.
    repo: Arc<RepoState>,
    auth: RegistryAuth,
    /// An identity token to exchange and the access token in use (whether it has push scope).
    identity: Option<Identity>,
    /// Where the login came from (`--creds`, a file and key, a helper), for messages.
    login: String,
    base: String,
    retry: RetryPolicy,
    /// Bars for downloads and uploads (on a terminal).
    progress: crate::progress::Progress,
    pub registry: String,
    pub repository: String,
}

/// The registry connections a run has opened, one per (registry, protocol, TLS settings,
/// login), handed out again to every endpoint opened on the same: the jobs of a batch, and a
/// rebuild's source, destination and what goes beside them. Each costs a TLS set-up (reading
/// the system's CA certificates), its connections, its `/v2/` probe and its tokens: per
/// registry, not per job. Cloned with the [`NetOptions`] that carry it; bounded by the
/// registries and logins a run names.
#[derive(Clone, Default)]
pub struct Clients(Arc<std::sync::Mutex<HashMap<Digest, Arc<Conn>>>>);

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.lock().map(|m| m.len()).unwrap_or(0);
        write!(f, "Clients({n} open)")
    }
}

/// One registry under one login: oci-client's client (its connections, stored login and
/// tokens, per repository), the `/v2/` probe, and what each repository has settled.
struct Conn {
    client: Client,
    /// A client with no login stored, for a registry that has shown no login applies (an
    /// anonymous run, and /v2/ sent no Bearer challenge: no token can come of it): oci-client asks /v2/ again before every
    /// request while a login is stored and no token comes of it, so this one is used instead.
    /// Made on first use from the config kept here.
    bare: std::sync::OnceLock<Client>,
    bare_config: std::sync::Mutex<Option<ClientConfig>>,
    /// Whether /v2/ was asked once (None: not yet, or it failed) and no token came of it.
    open: tokio::sync::Mutex<Option<bool>>,
    /// A plain HTTP client to the registry at `base` (`https://host`), for what oci-client does
    /// not do: token requests of our own. Built on first use (an identity token, a mount under
    /// Bearer authentication), not for every endpoint opened.
    http: std::sync::OnceLock<reqwest::Client>,
    http_settings: HttpSettings,
    repos: std::sync::Mutex<HashMap<String, Arc<RepoState>>>,
}

/// What a repository has settled with the registry, for every endpoint on it: oci-client files
/// tokens per repository, so two endpoints asking for them apart would replace each other's.
#[derive(Default)]
struct RepoState {
    /// The push-scoped authentication is done: oci-client keeps its token (and fetches a new
    /// one when it expires), so it is not asked for again before each push-side request.
    push_ready: std::sync::atomic::AtomicBool,
    /// That token (a Bearer challenge's), for harden's own uploads ([`super::upload`]): the
    /// same one, not a token request more. Renewed when the registry answers one of them 401.
    push_token: std::sync::Mutex<Option<String>>,
    /// Repositories this one's push token also reads (for cross-repository mounts), or None
    /// once the registry showed it wants no Bearer token.
    mount_scopes: tokio::sync::Mutex<Option<std::collections::BTreeSet<String>>>,
    /// Blobs this run has seen the repository hold (a HEAD's 200, an upload's or a mount's
    /// 201), and one lock per blob being stored: see [`Registry::store_once`].
    blobs: std::sync::Mutex<HashMap<Digest, BlobState>>,
}

/// A blob of a repository, as this run knows it.
enum BlobState {
    /// Held: confirmed by the registry during this run.
    Held,
    /// Being stored by one endpoint (or was, and the registry refused it); the others wait on
    /// this lock.
    Storing(Arc<tokio::sync::Mutex<()>>),
}

impl RepoState {
    fn new() -> RepoState {
        RepoState { mount_scopes: tokio::sync::Mutex::new(Some(Default::default())), ..Default::default() }
    }

    fn holds(&self, d: &Digest) -> bool {
        self.blobs.lock().is_ok_and(|b| matches!(b.get(d), Some(BlobState::Held)))
    }

    fn note_held(&self, d: &Digest) {
        if let Ok(mut b) = self.blobs.lock() {
            b.insert(d.clone(), BlobState::Held);
        }
    }

    /// The lock an endpoint holds while it stores `d` here (None once `d` is held).
    fn store_lock(&self, d: &Digest) -> Option<Arc<tokio::sync::Mutex<()>>> {
        let mut b = self.blobs.lock().ok()?;
        match b.entry(d.clone()).or_insert_with(|| BlobState::Storing(Default::default())) {
            BlobState::Held => None,
            BlobState::Storing(lock) => Some(Arc::clone(lock)),
        }
    }
}

/// What [`Registry::http`] is built with: the same TLS and timeout settings as oci-client's.
struct HttpSettings {
    insecure: bool,
    timeout: Duration,
    ca: Option<reqwest::Certificate>,
}

struct Identity {
    refresh: String,
    current: tokio::sync::Mutex<Option<(bool, super::oauth::AccessToken)>>,
}

const ACCEPT: &[&str] =
    &[crate::image::OCI_MANIFEST, crate::image::OCI_INDEX, crate::image::DOCKER_MANIFEST, crate::image::DOCKER_LIST];

fn is_loopback(registry: &str) -> bool {
    let host = registry.rsplit_once(':').map(|(h, _)| h).unwrap_or(registry);
    host == "localhost" || host.starts_with("127.") || host == "[::1]"
}

impl Clients {
    /// The connection to `registry` under `creds` with `net`'s settings: the one already open,
    /// else a new one.
    fn get(
        &self,
        r: &ImageRef,
        registry: &str,
        plain: bool,
        net: &NetOptions,
        creds: &Credentials,
    ) -> Result<Arc<Conn>> {
        let login = match creds {
            Credentials::Anonymous => String::new(),
            Credentials::Basic(u, p) => format!("basic\0{u}\0{p}"),
            Credentials::IdentityToken(t) => format!("identity\0{t}"),
        };
        let ca = net.ca_cert.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        let key = Digest::of(
            format!("{registry}\0{plain}\0{}\0{ca}\0{}\0{login}", net.insecure, net.timeout.as_millis()).as_bytes(),
        );
        if let Some(c) = self.0.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(c);
        }
        let conn = Arc::new(Conn::new(r, plain, net)?);
        if let Ok(mut m) = self.0.lock() {
            // Two opened at once: the first one kept serves both from now on.
            return Ok(Arc::clone(m.entry(key).or_insert(conn)));
        }
        Ok(conn)
    }
}

impl Conn {
    fn new(r: &ImageRef, plain: bool, net: &NetOptions) -> Result<Conn> {
        let protocol = if plain { ClientProtocol::Http } else { ClientProtocol::Https };
        let mut extra = Vec::new();
        let mut ca = None;
        if let Some(path) = &net.ca_cert {
            let data = std::fs::read(path).with_context(|| format!("--ca-cert {}: cannot read", path.display()))?;
            let cert = reqwest::Certificate::from_pem(&data)
                .map_err(|e| anyhow!("--ca-cert {}: not a PEM certificate: {e}", path.display()))?;
            ca = Some(cert);
            extra.push(Certificate { encoding: CertificateEncoding::Pem, data });
        }
        let config = |extra: Vec<Certificate>| ClientConfig {
            protocol: protocol.clone(),
            accept_invalid_certificates: net.insecure,
            extra_root_certificates: extra,
            use_monolithic_push: true,
            read_timeout: None,
            connect_timeout: Some(net.timeout.min(Duration::from_secs(30))),
            ..Default::default()
        };
        let bare_config = config(extra.clone());
        let client = Client::try_from(config(extra))
            .map_err(|e| anyhow!("{r}: cannot set up the HTTP client: {}", describe(&e)))?;
        Ok(Conn {
            client,
            bare: std::sync::OnceLock::new(),
            bare_config: std::sync::Mutex::new(Some(bare_config)),
            open: tokio::sync::Mutex::new(None),
            http: std::sync::OnceLock::new(),
            http_settings: HttpSettings { insecure: net.insecure, timeout: net.timeout, ca },
            repos: Default::default(),
        })
    }
}

impl Registry {
    pub fn open(r: &ImageRef, net: &NetOptions) -> Result<Registry> {
        let ImageRef::Registry { registry, repository, .. } = r else { bail!("{r} is not a registry reference") };
        let plain = net.plain_http || is_loopback(registry);
        let retry = RetryPolicy {
            retries: net.retries,
            timeout: net.timeout,
            progress: net.progress.clone(),
            ..Default::default()
        };
        let (creds, login) = net.logins.lookup(registry, repository)?;
        let conn = net.clients.get(r, registry, plain, net, &creds)?;
        let repo = match conn.repos.lock() {
            Ok(mut repos) => Arc::clone(repos.entry(repository.clone()).or_insert_with(|| Arc::new(RepoState::new()))),
            Err(_) => Arc::new(RepoState::new()),
        };
        let base = format!("{}://{registry}", if plain { "http" } else { "https" });
        let (auth, identity) = match creds {
            Credentials::Anonymous => (RegistryAuth::Anonymous, None),
            Credentials::Basic(u, p) => (RegistryAuth::Basic(u, p), None),
            Credentials::IdentityToken(refresh) => {
                (RegistryAuth::Anonymous, Some(Identity { refresh, current: tokio::sync::Mutex::new(None) }))
            }
        };
        Ok(Registry {
            conn,
            repo,
            auth,
            identity,
            login,
            base,
            retry,
            progress: net.progress.clone(),
            registry: registry.clone(),
            repository: repository.clone(),
        })
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
        if let Some(id) = &self.identity {
            return self.ensure_identity(id, &r, push).await;
        }
        self.conn.client.store_auth_if_needed(&self.registry, &self.auth).await;
        if matches!(self.auth, RegistryAuth::Anonymous) {
            self.probe_open(&r).await;
        }
        if push && !self.repo.push_ready.load(std::sync::atomic::Ordering::Acquire) {
            // Anonymous, and /v2/ asked for nothing: there is no push token to get.
            if matches!(self.auth, RegistryAuth::Anonymous) && *self.conn.open.lock().await == Some(true) {
                self.repo.push_ready.store(true, std::sync::atomic::Ordering::Release);
                return Ok(());
            }
            let what = format!("{}: authentication for push", self.name());
            let token = self
                .retry
                .call(&what, || self.conn.client.auth(&r, &self.auth, oci_client::RegistryOperation::Push))
                .await
                .map_err(|e| {
                    anyhow!("{}: authentication for push failed ({}): {}", self.name(), self.login, describe(&e))
                })?;
            if let Ok(mut kept) = self.repo.push_token.lock() {
                *kept = token;
            }
            self.repo.push_ready.store(true, std::sync::atomic::Ordering::Release);
        }
        Ok(())
    }

    /// Ask /v2/ once, for an anonymous run: no Bearer challenge means no request will ever carry
    /// a login (an anonymous run answers no Basic challenge), and [`Self::c`] hands out the client that does not ask /v2/ before each. A probe
    /// that fails decides nothing (the request that follows says what is wrong).
    async fn probe_open(&self, r: &Reference) {
        let mut open = self.conn.open.lock().await;
        if open.is_some() {
            return;
        }
        let asked = self.conn.client.auth(r, &RegistryAuth::Anonymous, oci_client::RegistryOperation::Pull);
        if let Ok(Ok(token)) = tokio::time::timeout(self.retry.timeout, asked).await {
            *open = Some(token.is_none());
        }
    }

    /// The client for requests that do not store a login themselves (all but manifest pulls).
    async fn c(&self) -> &Client {
        if *self.conn.open.lock().await != Some(true) {
            return &self.conn.client;
        }
        self.conn.bare.get_or_init(|| {
            let made = self.conn.bare_config.lock().ok().and_then(|mut c| c.take()).map(Client::try_from);
            match made {
                Some(Ok(c)) => c,
                // Cannot happen (the same config made `client`); that client is as good, only chattier.
                _ => self.conn.client.clone(),
            }
        })
    }

    /// The plain HTTP client for token requests, built on first use.
    fn http(&self) -> Result<&reqwest::Client> {
        if let Some(c) = self.conn.http.get() {
            return Ok(c);
        }
        let HttpSettings { insecure, timeout, ca } = &self.conn.http_settings;
        let mut b = reqwest::Client::builder()
            .danger_accept_invalid_certs(*insecure)
            .connect_timeout((*timeout).min(Duration::from_secs(30)))
            .timeout(*timeout);
        if let Some(cert) = ca {
            b = b.tls_certs_merge([cert.clone()]);
        }
        let built = b.build().map_err(|e| anyhow!("{}: cannot set up the HTTP client: {e}", self.registry))?;
        Ok(self.conn.http.get_or_init(|| built))
    }

    /// An access token for this repository (with push scope when `push`), exchanged again when
    /// the one in use has not that scope or expires within 10 s, given to oci-client for the
    /// operations that follow.
    async fn ensure_identity(&self, id: &Identity, r: &Reference, push: bool) -> Result<()> {
        let mut current = id.current.lock().await;
        if super::oauth::needs_exchange(current.as_ref(), push, Instant::now()) {
            let actions = if push { "pull,push" } else { "pull" };
            let scopes = [format!("repository:{}:{actions}", self.repository)];
            let exchanged = super::oauth::exchange(self.http()?, &self.registry, &self.base, &id.refresh, &scopes)
                .await
                .with_context(|| format!("login from {}", self.login))?;
            match exchanged {
                Some(t) => *current = Some((push, t)),
                // The registry wants no authentication: anonymous it is.
                None => return Ok(()),
            }
        }
        let Some((scoped_push, t)) = current.as_ref() else { return Ok(()) };
        let bearer = RegistryAuth::Bearer(t.token.clone());
        let ops: &[oci_client::RegistryOperation] = if *scoped_push {
            &[oci_client::RegistryOperation::Pull, oci_client::RegistryOperation::Push]
        } else {
            &[oci_client::RegistryOperation::Pull]
        };
        for op in ops {
            // With a Bearer token oci-client sends no request here: it files the token for `op`.
            self.conn
                .client
                .auth(r, &bearer, *op)
                .await
                .map_err(|e| anyhow!("{}: authentication failed: {}", self.name(), describe(&e)))?;
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
        let open = self.identity.is_none()
            && matches!(self.auth, RegistryAuth::Anonymous)
            && *self.conn.open.lock().await == Some(true);
        let pulled = match open {
            true => self.retry.call(&what, || self.pull_manifest_open(key.as_deref().unwrap_or("latest"))).await,
            false => self
                .retry
                .call(&what, || self.conn.client.pull_manifest_raw(&reference, &self.auth, ACCEPT))
                .await
                .map(|(bytes, _)| bytes.to_vec()),
        };
        let bytes = match pulled {
            Ok(bytes) => bytes,
            Err(e) => return Ok(Err(e)),
        };
        if bytes.len() > super::MAX_MANIFEST {
            bail!("{r}: manifest of {} bytes exceeds the {}-byte limit", bytes.len(), super::MAX_MANIFEST);
        }
        let digest = Digest::of(&bytes);
        let media_type = super::media_type_of(&bytes)
            .ok_or_else(|| anyhow!("{r}: the registry answered with something that is not a manifest"))?;
        Ok(Ok(Manifest { bytes, media_type, digest }))
    }

    /// A manifest pull from an open registry (anonymous, and its /v2/ asked for nothing): one
    /// GET, read to at most [`super::MAX_MANIFEST`] + 1 bytes. oci-client's pull stores the
    /// anonymous login and then asks /v2/ again before every pull, since no token comes of it.
    async fn pull_manifest_open(&self, key: &str) -> std::result::Result<Vec<u8>, OciDistributionError> {
        let http = self.http().map_err(|e| OciDistributionError::GenericError(Some(format!("{e:#}"))))?;
        let url = format!("{}/v2/{}/manifests/{key}", self.base, self.repository);
        let mut res = http.get(&url).header(reqwest::header::ACCEPT, ACCEPT.join(", ")).send().await?;
        let code = res.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await? {
            body.extend_from_slice(&chunk[..chunk.len().min(super::MAX_MANIFEST + 1 - body.len())]);
            if body.len() > super::MAX_MANIFEST {
                break;
            }
        }
        match code {
            200 => Ok(body),
            404 => Err(OciDistributionError::ImageManifestNotFoundError(url)),
            _ => {
                let message = String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned();
                Err(OciDistributionError::ServerError { code, url, message })
            }
        }
    }

    pub async fn blob_bytes(&self, d: &Digest, max: u64) -> Result<Vec<u8>> {
        self.ensure_auth(false).await?;
        let r = self.reference(None);
        let what = format!("{}: blob {d}", self.name());
        let out = self
            .retry
            .stream(&what, || async {
                let mut stream = self.open_blob(&r, d, &what).await?;
                let mut out = Vec::new();
                while let Some(chunk) = self.next_chunk(&mut stream, &what).await? {
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

    /// Download a blob into `spool`, verified on the way (by oci-client's stream); a mismatch
    /// aborts naming the digest received.
    /// `size` is the manifest's (which is verified): a registry sending more is refused as it
    /// happens, so a hostile one cannot fill the disk. A failed attempt starts over from byte 0.
    /// Progress goes to `tap` as it happens (each chunk is written straight to the file), so
    /// followers can read the blob while it arrives; dropping this future marks it abandoned.
    pub async fn download(&self, d: &Digest, size: u64, spool: &Path, tap: Option<Tap>) -> Result<LocalBlob> {
        let res = self.download_into(d, size, spool, tap.as_ref()).await;
        if let Some(tap) = tap {
            match &res {
                Ok(_) => tap.verified(),
                Err(e) => tap.failed(e),
            }
        }
        res
    }

    async fn download_into(&self, d: &Digest, size: u64, spool: &Path, tap: Option<&Tap>) -> Result<LocalBlob> {
        self.ensure_auth(false).await?;
        let r = self.reference(None);
        let path = spool.join(format!("in-{}", d.hex()));
        let what = format!("{}: blob {d}", self.name());
        let fatal = |e: std::io::Error| AttemptError::fatal(anyhow!("{}: {e}", path.display()));
        self.retry
            .stream(&what, || async {
                let res = async {
                    let mut stream = self.open_blob(&r, d, &what).await?;
                    // Truncates what an earlier attempt left.
                    let mut file = std::fs::File::create(&path).map_err(fatal)?;
                    if let Some(tap) = tap {
                        tap.begin(&path).map_err(fatal)?;
                    }
                    // Unbuffered: a chunk is in the file (the page cache) before followers hear
                    // of it. Not hashed here: oci-client's stream checks the digest and fails at
                    // its end on a mismatch (`a_registry_sending_other_bytes_is_refused` holds it
                    // to that).
                    let bar = self.progress.transfer("download", d.short(), size);
                    let mut n = 0u64;
                    while let Some(chunk) = self.next_chunk(&mut stream, &what).await? {
                        let chunk = chunk.map_err(|e| chunk_error(e, n, size, &what))?;
                        n += chunk.len() as u64;
                        if n > size {
                            return Err(AttemptError::fatal(anyhow!(
                                "{what}: the registry sent more than the {size} bytes the manifest declares"
                            )));
                        }
                        file.write_all(&chunk).map_err(fatal)?;
                        bar.inc(chunk.len() as u64);
                        if let Some(tap) = tap {
                            tap.wrote(chunk.len() as u64);
                        }
                    }
                    if n < size {
                        // Cut short without an error: the connection's fault, worth another try.
                        return Err(short(n, size, &what));
                    }
                    Ok(LocalBlob { path: path.clone(), verified: true })
                }
                .await;
                // Only an attempt that may be tried again voids what it wrote: after a failure
                // for good the bytes stay the download's last, readable up to the failure.
                if let (Err(AttemptError { verdict: super::retry::Verdict::Retry(_), .. }), Some(tap)) = (&res, tap) {
                    tap.void();
                }
                res
            })
            .await
            .map_err(anyhow::Error::from)
    }

    /// Start a blob download: the response's headers within --timeout.
    async fn open_blob(&self, r: &Reference, d: &Digest, what: &str) -> Result<SizedStream, AttemptError> {
        match tokio::time::timeout(self.retry.timeout, self.c().await.pull_blob_stream(r, d.as_str())).await {
            Ok(res) => res.map_err(|e| AttemptError::oci(e, what)),
            Err(_) => Err(AttemptError::timed_out(self.retry.timeout)),
        }
    }

    /// The next chunk of a download, or a (transient) failure after --timeout without one.
    async fn next_chunk(
        &self,
        stream: &mut SizedStream,
        what: &str,
    ) -> Result<Option<std::io::Result<bytes::Bytes>>, AttemptError> {
        match tokio::time::timeout(self.retry.timeout, stream.next()).await {
            Ok(chunk) => Ok(chunk),
            Err(_) => Err(AttemptError {
                error: anyhow!("{what}: no data for {} s (--timeout)", self.retry.timeout.as_secs()),
                ..AttemptError::timed_out(self.retry.timeout)
            }),
        }
    }

    /// Whether this repository will take a push with these credentials, at the cost of a
    /// push-scoped authentication and one HEAD: refused credentials show here, before any work.
    pub async fn check_push(&self) -> Result<()> {
        self.ensure_auth(true).await?;
        let probe = Digest::of(b"");
        // A registry with basic auth accepts any login until the first request: say which
        // login it refused.
        self.has_blob(&probe).await.map(drop).with_context(|| format!("login from {}", self.login))
    }

    /// Whether the repository holds `d`: a HEAD, unless this run has already seen it hold it.
    pub async fn has_blob(&self, d: &Digest) -> Result<bool> {
        if self.repo.holds(d) {
            return Ok(true);
        }
        self.ensure_auth(false).await?;
        let r = self.reference(None);
        let what = format!("{}: HEAD blob {d}", self.name());
        let held = self
            .retry
            .call(&what, || async { self.c().await.blob_exists(&r, d.as_str()).await })
            .await
            .map_err(|e| anyhow!("{what}: {}", describe(&e)))?;
        if held {
            self.repo.note_held(d);
        }
        Ok(held)
    }

    /// Store `d` into this repository with `store` (an upload or a mount; true when the registry
    /// took it), at most one endpoint of this run at a time, and not at all once the run has
    /// seen the repository hold it. distribution (2.8, its filesystem driver) rewrites a blob's
    /// link file in place on every upload or mount of it — truncate, then write — so a manifest
    /// put that reads the link meanwhile fails with `MANIFEST_BLOB_UNKNOWN`: two jobs of a batch
    /// storing a shared base layer into one repository did that (1 job in 90 of a cold batch,
    /// every run). Storing each blob once per repository per run removes the rewrite.
    async fn store_once<F, Fut, E>(&self, d: &Digest, store: F) -> Result<bool, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<bool, E>>,
    {
        let Some(lock) = self.repo.store_lock(d) else { return Ok(true) };
        let _one = lock.lock().await;
        if self.repo.holds(d) {
            return Ok(true);
        }
        let stored = store().await?;
        if stored {
            self.repo.note_held(d);
        }
        Ok(stored)
    }

    pub async fn put_blob(&self, d: &Digest, size: u64, path: &Path) -> Result<()> {
        self.store_once(d, || async {
            self.ensure_auth(true).await?;
            let what = format!("{}: upload of blob {d}", self.name());
            self.retry
                .stream(&what, || async {
                    let file = tokio::fs::File::open(path)
                        .await
                        .map_err(|e| AttemptError::fatal(anyhow!("cannot open {}: {e}", path.display())))?;
                    // Small chunks: the watchdog sees progress chunk by chunk, so even a slow link
                    // moves one well within --timeout.
                    let body = tokio_util::io::ReaderStream::with_capacity(file, 64 << 10);
                    self.push_watched(d, size, body, &what).await
                })
                .await
                .map_err(anyhow::Error::from)
                .map(|()| true)
        })
        .await
        .map(drop)
    }

    /// Store a blob while it is being downloaded, the body read behind the download (see
    /// [`super::follow`]). The registry checks the digest (`PUT ?digest=`), so sending bytes not
    /// yet verified is safe. An upload attempt reads from byte 0 of the download's current
    /// attempt; when the download restarts, the upload starts over with its retries afresh
    /// (this ends: the download's attempts are bounded). When the download fails, so does this,
    /// at once; the caller reports the download's error.
    pub async fn put_blob_following(&self, d: &Digest, size: u64, follow: &Follow) -> Result<()> {
        self.store_once(d, || async { self.put_following(d, size, follow).await.map(|()| true) }).await.map(drop)
    }

    async fn put_following(&self, d: &Digest, size: u64, follow: &Follow) -> Result<()> {
        let what = format!("{}: upload of blob {d}", self.name());
        self.upload_following(follow, &what, |body| self.push_watched(d, size, body, &what)).await
    }

    /// Store a blob while it is written, of unknown digest and length until its end: a
    /// rewrite's output, read behind the rewrite as [`Self::put_blob_following`] reads behind a
    /// download, from byte 0 of the writer's current attempt (a splice redone as a
    /// recompression starts the upload over). harden's own upload ([`super::upload`]): a POST,
    /// ONE PATCH whose body is the file as it is written, then, with the digest and length the
    /// writer computed ([`Follow::completed`]; not hashed again here), the `PUT ?digest=` — the
    /// one step that needs them. The PUT stores the blob as every store does, once per
    /// repository and run ([`Self::store_once`]): when another endpoint has stored it
    /// meanwhile, the session is left uncommitted. The registry checks the digest. `label`
    /// names the blob on the progress bar; `estimate` is the bar's length. A failure stores
    /// nothing; the caller's push uploads the finished file then.
    pub async fn put_blob_growing(&self, follow: &Follow, label: &str, estimate: u64) -> Result<()> {
        let what = format!("{}: upload of {label}", self.name());
        let base = reqwest::Url::parse(&self.base).map_err(|e| anyhow!("{what}: {}: {e}", self.base))?;
        let send = |body: super::follow::BodyStream| async {
            let http = self.http().map_err(AttemptError::fatal)?;
            let session = |login| upload::Session { http, base: &base, login, what: &what };
            let at = self.authorized(|login| async move { session(login).start(&self.repository).await }).await?;
            let bar = Arc::new(self.progress.transfer("upload", label, estimate));
            let watch = Watchdog::new();
            let sent = Arc::clone(&bar);
            let body = watch.observe(body).inspect_ok(move |chunk| sent.inc(chunk.len() as u64));
            let patch = async {
                match session(self.push_login().await).send(&at, reqwest::Body::wrap_stream(body)).await {
                    // Its token expired since the POST: a new one for the next attempt.
                    Err(upload::Failed::Unauthorized(said)) => {
                        self.renew_push_login().await;
                        Err(AttemptError { error: anyhow!("{said}"), verdict: super::retry::Verdict::Retry(None) })
                    }
                    sent => sent.map_err(AttemptError::from),
                }
            };
            let (at, held) = watch.guard(patch, self.retry.timeout, &what).await?;
            bar.complete();
            let no_digest = || AttemptError::fatal(anyhow!("{what}: the writer ended without its digest"));
            let (d, size) = follow.completed().ok_or_else(no_digest)?;
            if let Some(held) = held.filter(|&h| h != size) {
                return Err(AttemptError::fatal(anyhow!("{what}: the registry holds {held} bytes of the {size} sent")));
            }
            let (at, d) = (&at, &d);
            // Not retried: a PUT whose answer was lost may have stored the blob, and another
            // session would store it again. The push asks (HEAD) before it uploads.
            let commit = || async move {
                let committed = self.authorized(|login| async move { session(login).commit(at, d).await }).await;
                committed.map(|()| true).map_err(|e| AttemptError::fatal(e.error))
            };
            self.store_once(d, commit).await.map(drop)
        };
        self.upload_following(follow, &what, send).await
    }

    /// `step` with the push login; once more with a new one when the registry answers 401 (a
    /// token that expired during a long upload).
    async fn authorized<T, F, Fut>(&self, step: F) -> Result<T, AttemptError>
    where
        F: Fn(upload::Login) -> Fut,
        Fut: std::future::Future<Output = Result<T, upload::Failed>>,
    {
        match step(self.push_login().await).await {
            Err(upload::Failed::Unauthorized(_)) => {}
            done => return done.map_err(AttemptError::from),
        }
        self.renew_push_login().await;
        step(self.push_login().await).await.map_err(AttemptError::from)
    }

    /// What harden's own uploads authenticate with once [`Self::ensure_auth`] has run for a
    /// push: the push token (an identity token's exchange, or the one oci-client got), else the
    /// Basic login, else nothing.
    async fn push_login(&self) -> upload::Login {
        if let Some(id) = &self.identity {
            return match &*id.current.lock().await {
                Some((true, t)) => upload::Login::Bearer(t.token.clone()),
                _ => upload::Login::None,
            };
        }
        match (self.repo.push_token.lock().ok().and_then(|t| t.clone()), &self.auth) {
            (Some(token), _) => upload::Login::Bearer(token),
            (None, RegistryAuth::Basic(user, password)) => upload::Login::Basic(user.clone(), password.clone()),
            (None, _) => upload::Login::None,
        }
    }

    /// After a 401: the push authentication is done again (a token request). A failure shows
    /// as the next 401.
    async fn renew_push_login(&self) {
        match &self.identity {
            Some(id) => *id.current.lock().await = None,
            None => {
                self.repo.push_ready.store(false, Ordering::Release);
                if let Ok(mut kept) = self.repo.push_token.lock() {
                    *kept = None;
                }
            }
        }
        let _ = self.ensure_auth(true).await;
    }

    /// An upload of what `follow` reads, by `send` (given the body from byte 0 of the writer's
    /// current attempt), retried; started over, retries afresh, when the writer restarts; failed
    /// at once when the writer fails.
    async fn upload_following<T, F, Fut>(&self, follow: &Follow, what: &str, send: F) -> Result<T>
    where
        F: Fn(super::follow::BodyStream) -> Fut,
        Fut: std::future::Future<Output = Result<T, AttemptError>>,
    {
        self.ensure_auth(true).await?;
        let writer_gone = || matches!(follow.end(), End::Failed(_) | End::Abandoned);
        loop {
            let attempt = follow.attempts();
            let res = self
                .retry
                .stream(&what, || async {
                    // No upload session (and no watchdog) while the writer has nothing to give.
                    follow.ready().await;
                    if follow.attempts() != attempt || writer_gone() {
                        return Err(AttemptError::fatal(anyhow!(
                            "{what}: the download or rewrite it follows started over or stopped"
                        )));
                    }
                    match send(Box::pin(follow.stream(UPLOAD_CHUNK))).await {
                        // The writer's doing (a download or a rewrite), not the destination's: no retry here.
                        Err(e) if follow.attempts() != attempt || writer_gone() => Err(AttemptError::fatal(e.error)),
                        res => res,
                    }
                })
                .await;
            match res {
                Err(_) if follow.attempts() != attempt && !writer_gone() => continue,
                res => return res.map_err(anyhow::Error::from),
            }
        }
    }

    /// One monolithic upload of `body`, failed when the registry stops taking data or
    /// answering for --timeout.
    async fn push_watched<S>(&self, d: &Digest, size: u64, body: S, what: &str) -> Result<(), AttemptError>
    where
        S: futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Unpin + Send + 'static,
    {
        let r = self.reference(None);
        let timeout = self.retry.timeout;
        let watch = Watchdog::new();
        let bar = self.progress.transfer("upload", d.short(), size);
        let body = watch
            .observe(body)
            .inspect_ok(move |chunk| bar.inc(chunk.len() as u64))
            .map_err(OciDistributionError::from);
        let push = async {
            let pushed = self.c().await.push_blob_stream(&r, body, d.as_str(), Some(size)).await;
            pushed.map_err(|e| AttemptError::oci(e, format!("{what} failed")))
        };
        watch.guard(push, timeout, what).await.map(drop)
    }

    pub async fn put_blob_bytes(&self, d: &Digest, bytes: &[u8]) -> Result<()> {
        self.store_once(d, || async {
            self.ensure_auth(true).await?;
            let r = self.reference(None);
            let what = format!("{}: upload of blob {d}", self.name());
            let bytes = bytes::Bytes::copy_from_slice(bytes);
            self.retry
                .call(&what, || async { self.c().await.push_blob(&r, bytes.clone(), d.as_str()).await })
                .await
                .map_err(|e| anyhow!("{what} failed: {}", describe(&e)))?;
            Ok(true)
        })
        .await
        .map(drop)
    }

    /// Mount `d` from another repository of this registry; false when the registry refuses.
    /// True at once when this run has seen this repository hold it (see [`Self::store_once`]).
    pub async fn mount(&self, repository: &str, d: &Digest) -> bool {
        let mount = || async {
            self.ensure_auth(true).await?;
            let to = self.reference(None);
            self.read_scope_for_mounts(repository, &to).await;
            let from = Reference::with_tag(self.registry.clone(), repository.to_string(), "latest".to_string());
            let what = format!("{}: mount of blob {d} from {repository}", self.name());
            Ok::<_, anyhow::Error>(
                self.retry
                    .call(&what, || async { self.c().await.mount_blob(&to, &from, d.as_str()).await })
                    .await
                    .is_ok(),
            )
        };
        self.store_once(d, mount).await.unwrap_or(false)
    }

    /// Before a mount from `from` under Bearer authentication: a push token that also reads
    /// `from` (docker asks for both scopes at once), filed with oci-client for `to`, once per
    /// source repository. Without it, distribution answers the mount with an upload session
    /// and every blob is uploaded again. A failure here only costs that upload. An identity
    /// token keeps its own exchange.
    async fn read_scope_for_mounts(&self, from: &str, to: &Reference) {
        let mut scopes = self.repo.mount_scopes.lock().await;
        let Some(known) = scopes.as_mut() else { return };
        if self.identity.is_some() || known.contains(from) {
            return;
        }
        // An anonymous endpoint whose /v2/ asked for nothing has no token server to ask.
        if *self.conn.open.lock().await == Some(true) {
            return *scopes = None;
        }
        let Ok(http) = self.http() else { return };
        let challenge = match super::oauth::challenge(http, &self.registry, &self.base).await {
            Ok(super::oauth::Asked::Bearer(c)) => c,
            // No token server: nothing to ask for (or asking fails the same way every time).
            _ => return *scopes = None,
        };
        known.insert(from.to_string());
        let mut wanted = vec![format!("repository:{}:pull,push", self.repository)];
        wanted.extend(known.iter().map(|r| format!("repository:{r}:pull")));
        let basic = match &self.auth {
            RegistryAuth::Basic(u, p) => Some((u.as_str(), p.as_str())),
            _ => None,
        };
        let Ok(t) = super::oauth::token_for(http, &challenge, basic, &wanted).await else { return };
        let bearer = RegistryAuth::Bearer(t.token);
        // oci-client files a Bearer token it is given without a request.
        let _ = self.conn.client.auth(to, &bearer, oci_client::RegistryOperation::Push).await;
    }

    /// The referrers of `d` as the registry lists them (its referrers API, or oci-client's
    /// reading of the referrers tag schema on a 404), each descriptor as JSON.
    pub async fn referrers(&self, d: &Digest) -> Result<Vec<serde_json::Value>> {
        self.ensure_auth(false).await?;
        let r = self.reference(Some(d.as_str()));
        let what = format!("{}: referrers of {d}", self.name());
        let index = self
            .retry
            .call(&what, || async { self.c().await.pull_referrers(&r, None).await })
            .await
            .map_err(|e| anyhow!("{what}: {}", describe(&e)))?;
        index.manifests.iter().map(|e| serde_json::to_value(e).map_err(|e| anyhow!("{what}: {e}"))).collect()
    }

    pub async fn put_manifest(&self, r: &ImageRef, m: &Manifest) -> Result<()> {
        self.ensure_auth(true).await?;
        let key = r.tag().map(str::to_string).unwrap_or_else(|| m.digest.as_str().to_string());
        let ct: reqwest::header::HeaderValue =
            m.media_type.parse().map_err(|_| anyhow!("media type {} is not a valid header", m.media_type))?;
        let target = self.reference(Some(&key));
        let body = bytes::Bytes::from(m.bytes.clone());
        let what = format!("{r}: manifest push");
        // Every blob was confirmed present before the put (transport::push), so a blob the
        // registry calls unknown is one another client (another pod) is storing again at that
        // moment: distribution rewrites its link in place (see `store_once`). Asked again, a
        // little later, at most twice.
        let (mut pause, mut again) = (Duration::from_millis(250), 2);
        loop {
            let res = self
                .retry
                .call(&what, || async { self.c().await.push_manifest_raw(&target, body.clone(), ct.clone()).await })
                .await;
            match res {
                Ok(_) => return Ok(()),
                Err(e) if again > 0 && describe(&e).contains("MANIFEST_BLOB_UNKNOWN") => {
                    again -= 1;
                    self.progress.line(&format!(
                        "{r}: the registry did not find a blob it had confirmed; putting the manifest again"
                    ));
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                Err(e) => bail!("{r}: manifest push failed: {}", describe(&e)),
            }
        }
    }
}

/// A download cut short after `n` of `size` bytes: the connection's fault, worth another try.
fn short(n: u64, size: u64, what: &str) -> AttemptError {
    AttemptError {
        error: anyhow!("{what}: download ended after {n} of {size} bytes"),
        verdict: super::retry::Verdict::Retry(None),
    }
}

/// A download's stream failed after `n` bytes: a digest mismatch once all `size` are in is the
/// content's fault (for good); before that the body was cut short; anything else is the
/// network's, classified.
fn chunk_error(e: std::io::Error, n: u64, size: u64, what: &str) -> AttemptError {
    use oci_client::errors::DigestError;
    match e.get_ref().and_then(|i| i.downcast_ref::<DigestError>()) {
        Some(DigestError::VerificationError { actual, .. }) if n >= size => {
            AttemptError::fatal(anyhow!("{what}: content has digest {actual} (corrupt or tampered)"))
        }
        Some(DigestError::VerificationError { .. }) => short(n, size, what),
        _ => AttemptError::io(e, format!("{what}: download failed")),
    }
}

/// Watches an upload body: when the registry stops taking data for `--timeout`, the attempt
/// fails; once it is all sent, the registry has --timeout to answer.
struct Watchdog {
    start: Instant,
    /// Milliseconds since `start` at the last chunk handed to the connection.
    last: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    /// The connection asked for the next chunk and the body has none yet: a writer behind the
    /// body is slow (a rewrite between two runs it copies), not the registry.
    pulling: Arc<AtomicBool>,
}

impl Watchdog {
    fn new() -> Watchdog {
        Watchdog {
            start: Instant::now(),
            last: Arc::new(AtomicU64::new(0)),
            done: Arc::new(AtomicBool::new(false)),
            pulling: Arc::new(AtomicBool::new(false)),
        }
    }

    fn observe<S: futures_util::Stream + Unpin>(&self, body: S) -> impl futures_util::Stream<Item = S::Item> {
        let (start, last, done, pulling) =
            (self.start, Arc::clone(&self.last), Arc::clone(&self.done), Arc::clone(&self.pulling));
        futures_util::stream::unfold(body, move |mut body| {
            let (last, done, pulling) = (Arc::clone(&last), Arc::clone(&done), Arc::clone(&pulling));
            async move {
                pulling.store(true, Ordering::Relaxed);
                let item = body.next().await;
                last.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
                pulling.store(false, Ordering::Relaxed);
                if item.is_none() {
                    // All sent: from now on the clock runs for the answer.
                    done.store(true, Ordering::Relaxed);
                }
                item.map(|i| (i, body))
            }
        })
    }

    /// `push`, failed as a timeout when [`Self::stalled`] resolves first.
    async fn guard<T>(
        &self,
        push: impl std::future::Future<Output = Result<T, AttemptError>>,
        timeout: Duration,
        what: &str,
    ) -> Result<T, AttemptError> {
        tokio::select! {
            res = push => res,
            stalled = self.stalled(timeout) => Err(AttemptError { error: anyhow!("{what} failed: {stalled}"), ..AttemptError::timed_out(timeout) }),
        }
    }

    /// Resolves when the body has made no progress for `limit`, or — once it is all sent — the
    /// registry has not answered for `limit`.
    async fn stalled(&self, limit: Duration) -> String {
        let tick = (limit / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        loop {
            tokio::time::sleep(tick).await;
            if self.pulling.load(Ordering::Relaxed) {
                continue;
            }
            let idle = self.start.elapsed().saturating_sub(Duration::from_millis(self.last.load(Ordering::Relaxed)));
            if idle >= limit {
                return if self.done.load(Ordering::Relaxed) {
                    format!("no answer {} s after the upload (--timeout)", idle.as_secs())
                } else {
                    format!("the registry took no data for {} s (--timeout)", idle.as_secs())
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    const BLOB: usize = 24 << 20;

    /// A fake HTTP/1.1 registry on a free port: for each request (its head read up to the blank
    /// line) `answer` replies on the connection, or returns false to drop it. At most 20
    /// connections.
    fn serve(answer: impl Fn(&[u8], &mut std::net::TcpStream) -> bool + Send + Sync + 'static) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let answer = Arc::new(answer);
        std::thread::spawn(move || {
            for c in l.incoming().take(20) {
                let Ok(mut c) = c else { break };
                let answer = Arc::clone(&answer);
                std::thread::spawn(move || loop {
                    let mut head = Vec::new();
                    let mut b = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        match c.read(&mut b) {
                            Ok(1) => head.push(b[0]),
                            _ => return,
                        }
                    }
                    if !answer(&head, &mut c) {
                        return;
                    }
                });
            }
        });
        port
    }

    /// harden's client for the fake registry on `port`.
    fn client(port: u16, retries: u32, timeout: Duration) -> Registry {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let r = ImageRef::parse(&format!("127.0.0.1:{port}/r:1")).unwrap();
        Registry::open(&r, &NetOptions { retries, timeout, ..Default::default() }).unwrap()
    }

    /// A registry that opens upload sessions and then, for the body of a PUT, either never
    /// reads it (`steady: false`) or reads it slowly but steadily (about 6 MiB/s) and answers.
    /// Returns its port and the number of PUTs seen.
    fn fake_registry(steady: bool) -> (u16, Arc<AtomicU64>) {
        let puts = Arc::new(AtomicU64::new(0));
        let p2 = Arc::clone(&puts);
        let port = serve(move |head, c| {
            let answer = if head.starts_with(b"POST") {
                "HTTP/1.1 202 Accepted\r\nLocation: /v2/r/blobs/uploads/u\r\nContent-Length: 0\r\n\r\n"
            } else if head.starts_with(b"PUT") {
                p2.fetch_add(1, Ordering::SeqCst);
                if !steady {
                    std::thread::sleep(Duration::from_secs(20));
                    return false;
                }
                let mut buf = vec![0u8; 256 << 10];
                let mut got = 0;
                while got < BLOB {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => return false,
                        Ok(n) => got += n,
                    }
                    std::thread::sleep(Duration::from_millis(40));
                }
                "HTTP/1.1 201 Created\r\nLocation: /v2/r/blobs/x\r\nContent-Length: 0\r\n\r\n"
            } else {
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
            };
            c.write_all(answer.as_bytes()).is_ok()
        });
        (port, puts)
    }

    fn upload(port: u16, timeout: Duration) -> (Result<()>, Duration) {
        let reg = client(port, 1, timeout);
        // Larger than what the kernel's socket buffers absorb without the server reading.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        std::fs::write(&path, vec![7u8; BLOB]).unwrap();
        let d = Digest::of(&[7u8; 1]);
        let t = Instant::now();
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        let res = rt.block_on(reg.put_blob(&d, BLOB as u64, &path));
        (res, t.elapsed())
    }

    /// A registry that answers every blob GET with `body` (and anything else with an empty
    /// 200). Returns its port and the number of blob GETs seen.
    fn blob_server(body: Vec<u8>) -> (u16, Arc<AtomicU64>) {
        let gets = Arc::new(AtomicU64::new(0));
        let g2 = Arc::clone(&gets);
        let port = serve(move |head, c| {
            let blob = head.starts_with(b"GET") && String::from_utf8_lossy(head).contains("/blobs/");
            let sent = if blob {
                g2.fetch_add(1, Ordering::SeqCst);
                let h = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                c.write_all(h.as_bytes()).and_then(|_| c.write_all(&body))
            } else {
                c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            };
            sent.is_ok()
        });
        (port, gets)
    }

    fn download_from(port: u16, d: &Digest, size: u64) -> (Result<LocalBlob>, Follow, Vec<u8>, std::io::Result<()>) {
        let reg = client(port, 2, Duration::from_secs(5));
        let dir = tempfile::tempdir().unwrap();
        let (tap, follow) = super::super::follow::tap(format!("blob {d}"), size);
        let mut reader = follow.reader();
        let scan = std::thread::spawn(move || {
            let mut out = Vec::new();
            let res = reader.read_to_end(&mut out).map(|_| ());
            (out, res)
        });
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        let res = rt.block_on(reg.download(d, size, dir.path(), Some(tap)));
        let (read, read_res) = scan.join().unwrap();
        (res, follow, read, read_res)
    }

    /// oci-client's stream checks the digest (the download does not hash again): hold it to
    /// that. Other bytes of the right size fail for good, naming their digest; a follower read
    /// them all, and learns the download failed.
    #[test]
    fn a_registry_sending_other_bytes_is_refused() {
        let sent = vec![7u8; 100_000];
        let (port, gets) = blob_server(sent.clone());
        let want = Digest::of(&[8u8; 100_000]);
        let (res, follow, read, _) = download_from(port, &want, sent.len() as u64);
        let e = res.err().expect("other bytes must be refused").to_string();
        assert!(e.contains("corrupt or tampered") && e.contains(Digest::of(&sent).as_str()), "{e}");
        assert_eq!(gets.load(Ordering::SeqCst), 1, "a digest mismatch is not retried");
        assert!(matches!(follow.end(), super::super::follow::End::Failed(m) if m.contains("tampered")));
        assert_eq!(read, sent, "the follower read what the registry sent");
    }

    /// A body shorter than the manifest's size is retried (a connection cut short), and each
    /// retry is a new attempt for followers; a right one is verified after one attempt.
    #[test]
    fn a_short_body_is_retried_and_a_right_one_verified() {
        let sent = vec![7u8; 100_000];
        let (port, gets) = blob_server(sent[..50_000].to_vec());
        let (res, follow, _, read_res) = download_from(port, &Digest::of(&sent), sent.len() as u64);
        let e = res.err().expect("a short body must fail").to_string();
        assert!(e.contains("ended after 50000 of 100000 bytes"), "{e}");
        assert_eq!(gets.load(Ordering::SeqCst), 3, "the first try and 2 retries");
        assert_eq!(follow.attempts(), 4, "each failed attempt voided its bytes");
        assert!(read_res.unwrap_err().to_string().contains("restarted"));

        let (port, gets) = blob_server(sent.clone());
        let (res, follow, read, read_res) = download_from(port, &Digest::of(&sent), sent.len() as u64);
        let blob = res.unwrap();
        assert!(blob.verified);
        assert_eq!(std::fs::read(&blob.path).ok(), None, "the spool directory went with the test");
        assert_eq!((gets.load(Ordering::SeqCst), follow.attempts()), (1, 1));
        assert_eq!(follow.end(), super::super::follow::End::Verified);
        read_res.unwrap();
        assert_eq!(read, sent);
    }

    #[test]
    fn a_stalled_upload_fails_after_the_timeout_and_is_retried() {
        let (port, puts) = fake_registry(false);
        let (res, took) = upload(port, Duration::from_secs(1));
        let e = res.unwrap_err().to_string();
        assert!(e.contains("took no data"), "{e}");
        assert_eq!(puts.load(Ordering::SeqCst), 2, "the first try and one retry");
        assert!(took < Duration::from_secs(15), "{took:?}");
    }

    /// An upload that takes several times --timeout but keeps moving is not cut.
    #[test]
    fn a_slow_but_steady_upload_is_not_cut() {
        let (port, puts) = fake_registry(true);
        let (res, took) = upload(port, Duration::from_secs(2));
        res.unwrap();
        assert_eq!(puts.load(Ordering::SeqCst), 1);
        assert!(took > Duration::from_secs(3), "the test's upload was not slower than --timeout: {took:?}");
    }

    /// Reads a chunked request body (the head already read).
    fn read_chunked(c: &mut std::net::TcpStream) -> std::io::Result<Vec<u8>> {
        let line = |c: &mut std::net::TcpStream| -> std::io::Result<String> {
            let mut l = Vec::new();
            let mut b = [0u8; 1];
            while !l.ends_with(b"\r\n") {
                c.read_exact(&mut b)?;
                l.push(b[0]);
            }
            Ok(String::from_utf8_lossy(&l).trim().to_string())
        };
        let mut out = Vec::new();
        loop {
            let size = line(c)?;
            let n = usize::from_str_radix(size.split(';').next().unwrap_or(""), 16)
                .map_err(|_| std::io::Error::other(format!("chunk size {size:?}")))?;
            if n == 0 {
                line(c)?;
                return Ok(out);
            }
            let start = out.len();
            out.resize(start + n, 0);
            c.read_exact(&mut out[start..])?;
            line(c)?;
        }
    }

    type Shared<T> = Arc<std::sync::Mutex<T>>;

    /// A registry taking uploads as harden's own upload sends them: the POST answered 202 with
    /// a Location path, the PATCH (its chunked body kept) with `patch` — 202, a bare relative
    /// Location and a new `_state` — and the PUT with 201. Returns its port, the request lines
    /// seen ("METHOD URI", and "chunked" after a chunked PATCH's) and the PATCH's body.
    fn upload_registry(patch: u16) -> (u16, Shared<Vec<String>>, Shared<Vec<u8>>) {
        let (seen, body) = (Arc::new(std::sync::Mutex::new(Vec::new())), Arc::new(std::sync::Mutex::new(Vec::new())));
        let (s2, b2) = (Arc::clone(&seen), Arc::clone(&body));
        let port = serve(move |head, c| {
            let head = String::from_utf8_lossy(head).to_string();
            let first = head.lines().next().unwrap_or("").rsplit_once(' ').map(|(l, _)| l.to_string());
            s2.lock().unwrap().push(first.unwrap_or_default());
            let answer = if head.starts_with("POST") {
                "HTTP/1.1 202 Accepted\r\nLocation: /v2/r/blobs/uploads/u1?_state=s%2B1\r\nContent-Length: 0\r\n\r\n"
                    .to_string()
            } else if head.starts_with("PATCH") {
                if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
                    s2.lock().unwrap().push("chunked".into());
                }
                let Ok(got) = read_chunked(c) else { return false };
                let n = got.len();
                b2.lock().unwrap().extend_from_slice(&got);
                match patch {
                    202 => format!(
                        "HTTP/1.1 202 Accepted\r\nLocation: u1?_state=s2\r\nRange: 0-{}\r\nContent-Length: 0\r\n\r\n",
                        n - 1
                    ),
                    code => format!("HTTP/1.1 {code} No\r\nContent-Length: 22\r\n\r\nchunked bodies refused"),
                }
            } else if head.starts_with("PUT") {
                "HTTP/1.1 201 Created\r\nLocation: /v2/r/blobs/x\r\nContent-Length: 0\r\n\r\n".to_string()
            } else {
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_string()
            };
            c.write_all(answer.as_bytes()).is_ok()
        });
        (port, seen, body)
    }

    /// Writes `data` through a growing tap a piece at a time, as a rewrite does, and completes
    /// it with its digest; meanwhile `reg` uploads it. The upload's result.
    fn upload_while_written(reg: &Registry, data: &[u8]) -> Result<()> {
        let dir = tempfile::tempdir().unwrap();
        let (tap, follow) = super::super::follow::tap_growing("rewrite x");
        let (path, data) = (dir.path().join("out"), data.to_vec());
        let writer = std::thread::spawn(move || {
            let mut f = std::fs::File::create(&path).unwrap();
            tap.begin(&path).unwrap();
            for piece in data.chunks(100_000) {
                f.write_all(piece).unwrap();
                tap.wrote(piece.len() as u64);
                std::thread::sleep(Duration::from_millis(5));
            }
            tap.complete(Digest::of(&data), data.len() as u64);
        });
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        let res = rt.block_on(reg.put_blob_growing(&follow, "layer x", 1));
        writer.join().unwrap();
        res
    }

    /// A blob of unknown digest goes up while it is written as three requests: the POST, ONE
    /// chunked PATCH carrying all of it (what the writer wrote, byte for byte), and the PUT to
    /// where the PATCH's Location says — relative, its `_state` kept — with the writer's digest
    /// added. The blob is then held: the push's HEAD is not sent.
    #[test]
    fn a_growing_blob_goes_up_as_one_streamed_patch() {
        let (port, seen, body) = upload_registry(202);
        let reg = client(port, 1, Duration::from_secs(5));
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
        upload_while_written(&reg, &data).unwrap();
        let d = Digest::of(&data);
        assert_eq!(body.lock().unwrap().as_slice(), data.as_slice(), "the PATCH carried the blob");
        let sent =
            || -> Vec<String> { seen.lock().unwrap().iter().filter(|l| !l.starts_with("GET")).cloned().collect() };
        let put = format!("PUT /v2/r/blobs/uploads/u1?_state=s2&digest=sha256%3A{}", d.hex());
        let patch = "PATCH /v2/r/blobs/uploads/u1?_state=s%2B1";
        assert_eq!(sent(), ["POST /v2/r/blobs/uploads/", patch, "chunked", put.as_str()]);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        assert!(rt.block_on(reg.has_blob(&d)).unwrap());
        assert_eq!(sent().len(), 4, "a blob just stored is known held: no HEAD");
    }

    /// A registry that refuses the chunked PATCH (411 Length Required, as some do) fails the
    /// upload at once, naming the step and what the registry said; not retried (the push
    /// uploads the finished file instead), and nothing committed.
    #[test]
    fn a_refused_patch_fails_the_upload_at_once() {
        let (port, seen, _) = upload_registry(411);
        let reg = client(port, 3, Duration::from_secs(5));
        let data = vec![5u8; 300_000];
        let e = upload_while_written(&reg, &data).unwrap_err().to_string();
        assert!(e.contains("PATCH answered HTTP 411") && e.contains("chunked bodies refused"), "{e}");
        assert!(e.contains("upload of layer x"), "{e}");
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.iter().filter(|l| l.starts_with("POST")).count(), 1, "not retried: {seen:?}");
        assert!(!seen.iter().any(|l| l.starts_with("PUT")), "nothing committed: {seen:?}");
    }
}
