//! Shared cache (`--shared-cache REPO`): rewrites shared through the registry, for pods of an
//! indexed Job that each have their own disk. Each rewrite's key ([`crate::cache::RewriteCache::key`]:
//! input digest, layer plan, harden's build, codec) is recorded in REPO as a small OCI artifact
//! tagged `rw-<key>`: a manifest of artifact type [`ARTIFACT`] whose one layer is the rewritten
//! blob (so the registry keeps it, and any pod can mount it into its destination) and whose
//! annotations carry the key, the diff_id and the rewrite's counts. A pod that misses its own
//! caches looks the key up there before rewriting; a pod that rewrites publishes the record.
//! The registry is the only shared state.
//!
//! While one pod rewrites a key, it holds a claim (tag `rw-<key>-claim`, a manifest with no
//! layers saying until when): another pod that needs the same key waits for the record rather
//! than rewriting it too, until the claim runs out. Claims are best effort (two pods claiming
//! at the same moment may both rewrite — the same bytes, so nothing is wrong but the time).
//!
//! Trust: whoever can push to REPO can steer rewrites — a record names the blob every pod will
//! use for that key. REPO must be writable only by the pods (and readable by them). What is
//! found is checked for consistency before it is used — the blob is fetched and must have the
//! record's digest and size, and decompress to the record's diff_id; a record that fails is
//! ignored with a notice and the layer is rewritten here — but a consistent record of a
//! different rewrite cannot be told from a true one. Failing to read or write REPO fails no
//! job: it is said, and the rewrite happens locally.
//!
//! Owns: the record and claim formats, looking them up and publishing them. Must not: rewrite
//! layers or decide what a rewrite does.

use crate::digest::Digest;
use crate::image;
use crate::progress::Progress;
use crate::reference::ImageRef;
use crate::rewrite::{LayerRewrite, RewriteStats};
use crate::transport::locations::Locations;
use crate::transport::push::{Blob, Push};
use crate::transport::{Endpoint, Manifest, NetOptions};
use anyhow::{anyhow, bail, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The artifact type of a rewrite record.
pub const ARTIFACT: &str = "application/vnd.dev.harden.rewrite.v1";
/// The artifact type of a claim.
pub const CLAIM: &str = "application/vnd.dev.harden.rewrite-claim.v1";
const EMPTY: &[u8] = b"{}";
const EMPTY_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// How long a claim holds off other pods.
const CLAIM_FOR: Duration = Duration::from_secs(300);
/// How long a claim is left to settle before it is read back.
const CLAIM_SETTLE: Duration = Duration::from_millis(300);
/// How often a waiting pod looks for the record.
const POLL: Duration = Duration::from_millis(500);

/// A rewrite found in the shared cache, verified, its blob fetched into the spool.
pub struct Found {
    pub blob: PathBuf,
    pub rw: LayerRewrite,
}

/// What a lookup tells the rewriter to do.
pub enum Lookup {
    Found(Found),
    /// Rewrite, then [`SharedCache::publish`] (this pod holds the claim, or nobody could get it).
    Rewrite,
}

pub struct SharedCache {
    repo: ImageRef,
    ep: Endpoint,
    progress: Progress,
    /// This process, in claims.
    owner: String,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A rewritten layer blob on disk, what it is and the media type it is pushed as.
#[derive(Clone, Copy)]
pub struct SpooledLayer<'a> {
    pub blob: &'a Path,
    pub rw: &'a LayerRewrite,
    pub media_type: &'a str,
}

impl SharedCache {
    /// REPO must be a registry repository (`host/repo`, no tag or digest).
    pub fn open(repo: &str, net: &NetOptions, progress: &Progress) -> Result<SharedCache> {
        let r = ImageRef::parse(repo).map_err(|e| crate::Failure::Usage(format!("--shared-cache: {e}")))?;
        if !r.is_registry() || r.tag().is_some() || r.digest().is_some() {
            bail!(crate::Failure::Usage(format!(
                "--shared-cache {repo}: expected a registry repository (host/name), without tag or digest"
            )));
        }
        let ep = Endpoint::open(&r, net)?;
        let owner =
            format!("{}-{}", std::process::id(), Digest::of(format!("{:?}", SystemTime::now()).as_bytes()).short());
        Ok(SharedCache { repo: r, ep, progress: progress.clone(), owner })
    }

    /// The registry and repository records are kept in (for mounts from it).
    pub fn registry_repository(&self) -> Option<(&str, &str)> {
        self.ep.registry_repository()
    }

    fn tag(key: &str, claim: bool) -> String {
        let k = &key[..key.len().min(64)];
        if claim {
            format!("rw-{k}-claim")
        } else {
            format!("rw-{k}")
        }
    }

    fn at(&self, tag: &str) -> ImageRef {
        self.repo.with_tag(tag)
    }

    fn note(&self, msg: &str) {
        self.progress.line(&format!("shared cache {}: {msg}", self.repo));
    }

    /// The rewrite recorded for `key`, verified (fetched into `spool`); else whether to rewrite
    /// here. Waits while another pod's claim on the key holds.
    pub async fn lookup(&self, key: &str, spool: &Path, limits: &crate::layer::Limits) -> Lookup {
        let mut claimed = false;
        loop {
            match self.find(key, spool, limits).await {
                Ok(Some(f)) => return Lookup::Found(f),
                Ok(None) => {}
                Err(e) => {
                    self.note(&format!("record {}: {e}; ignoring it", Self::tag(key, false)));
                    return Lookup::Rewrite;
                }
            }
            if claimed {
                return Lookup::Rewrite;
            }
            match self.claim_holder(key).await {
                Some(until) if until > now() => {
                    tokio::time::sleep(POLL).await;
                    continue;
                }
                _ => {}
            }
            // Nobody holds it: claim it. Two pods may claim at once (the tag keeps the last):
            // after a pause for the other's write to land, only the one the tag names goes on,
            // the other waits for its record. Then look again once (a record may have landed).
            if let Err(e) = self.claim(key, now() + CLAIM_FOR.as_secs()).await {
                self.note(&format!("cannot claim {}: {e}", Self::tag(key, true)));
                return Lookup::Rewrite;
            }
            tokio::time::sleep(CLAIM_SETTLE).await;
            claimed = true;
            if self.claim_holder(key).await.is_some_and(|until| until > now()) {
                claimed = false;
            }
        }
    }

    /// Until when another process claims `key` (None: no claim, or ours).
    async fn claim_holder(&self, key: &str) -> Option<u64> {
        let m = self.ep.manifest_opt(&self.at(&Self::tag(key, true))).await.ok()??;
        let v: Value = serde_json::from_slice(&m.bytes).ok()?;
        let a = &v["annotations"];
        if v["artifactType"] != CLAIM || a["dev.harden.rewrite.key"] != key || a["dev.harden.claim.owner"] == self.owner
        {
            return None;
        }
        a["dev.harden.claim.until"].as_str()?.parse().ok()
    }

    /// Claim `key` until `until` (unix seconds; 0 gives a claim up).
    async fn claim(&self, key: &str, until: u64) -> Result<()> {
        let doc = json!({
            "schemaVersion": 2, "mediaType": image::OCI_MANIFEST, "artifactType": CLAIM,
            "config": {"mediaType": EMPTY_TYPE, "digest": Digest::of(EMPTY).as_str(), "size": EMPTY.len()},
            "layers": [],
            "annotations": {"dev.harden.rewrite.key": key, "dev.harden.claim.owner": self.owner, "dev.harden.claim.until": until.to_string()},
        });
        self.put(&Self::tag(key, true), &doc, Vec::new(), None).await
    }

    /// Give up a claim on `key` (the rewrite failed here): others stop waiting for it.
    pub async fn release(&self, key: &str) {
        let _ = self.claim(key, 0).await;
    }

    async fn put(&self, tag: &str, doc: &Value, mut blobs: Vec<Blob>, locations: Option<&Locations>) -> Result<()> {
        let bytes = serde_json::to_vec(doc)?;
        let m = Manifest { digest: Digest::of(&bytes), bytes, media_type: image::OCI_MANIFEST.into() };
        blobs.push(Blob::bytes(Digest::of(EMPTY), EMPTY.to_vec()));
        let push = Push { dst: &self.ep, mount_from: None, locations, jobs: 2, progress: &Progress::Quiet };
        push.push(&blobs, &self.at(tag), &m, "shared-cache record").await
    }

    /// The record for `key`: None when there is none; an error when there is one that fails
    /// its checks (the caller ignores it, with a notice).
    async fn find(&self, key: &str, spool: &Path, limits: &crate::layer::Limits) -> Result<Option<Found>> {
        let Some(m) = self.ep.manifest_opt(&self.at(&Self::tag(key, false))).await? else { return Ok(None) };
        let v: Value = serde_json::from_slice(&m.bytes).map_err(|e| anyhow!("not JSON: {e}"))?;
        let a = &v["annotations"];
        if v["artifactType"] != ARTIFACT || a["dev.harden.rewrite.key"] != key {
            bail!("not a rewrite record for this key");
        }
        let layer = &v["layers"][0];
        let digest = Digest::parse(layer["digest"].as_str().unwrap_or_default()).map_err(|e| anyhow!(e))?;
        let size = layer["size"].as_u64().ok_or_else(|| anyhow!("its layer has no size"))?;
        let diff_id =
            Digest::parse(a["dev.harden.rewrite.diff_id"].as_str().unwrap_or_default()).map_err(|e| anyhow!(e))?;
        let count = |k: &str| a[k].as_str().and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        let stats = RewriteStats {
            removed: count("dev.harden.rewrite.removed"),
            changed: count("dev.harden.rewrite.changed"),
            copied: count("dev.harden.rewrite.copied"),
        };
        // Fetched and checked like any source blob (digest and size), then its diff_id.
        let blob = self.ep.blob_local(&digest, size, spool, None).await.map_err(|e| anyhow!("blob {digest}: {e:#}"))?;
        let (path, lim) = (blob.path.clone(), limits.clone());
        let got = tokio::task::spawn_blocking(move || -> std::io::Result<Digest> {
            let f = std::io::BufReader::new(std::fs::File::open(&path)?);
            let (_, mut plain) = crate::layer::codec::limited_decoder(f, &lim)?;
            let mut h = crate::digest::HashingWriter::new(std::io::sink());
            std::io::copy(&mut plain, &mut h)?;
            Ok(h.finish().1)
        })
        .await?
        .map_err(|e| anyhow!("blob {digest} cannot be read: {e}"))?;
        if got != diff_id {
            bail!("blob {digest} decompresses to {got}, not the recorded diff_id {diff_id}");
        }
        Ok(Some(Found { blob: blob.path, rw: LayerRewrite { digest, size, diff_id, stats } }))
    }

    /// Record the rewrite of `key` (its blob pushed to REPO, mounted when a known location in
    /// the same registry holds it). Failing is said, not fatal.
    pub async fn publish(&self, key: &str, layer: SpooledLayer<'_>, locations: &Locations) {
        let SpooledLayer { blob, rw, media_type } = layer;
        let doc = json!({
            "schemaVersion": 2, "mediaType": image::OCI_MANIFEST, "artifactType": ARTIFACT,
            "config": {"mediaType": EMPTY_TYPE, "digest": Digest::of(EMPTY).as_str(), "size": EMPTY.len()},
            "layers": [{"mediaType": media_type, "digest": rw.digest.as_str(), "size": rw.size}],
            "annotations": {
                "dev.harden.rewrite.key": key,
                "dev.harden.rewrite.diff_id": rw.diff_id.as_str(),
                "dev.harden.rewrite.removed": rw.stats.removed.to_string(),
                "dev.harden.rewrite.changed": rw.stats.changed.to_string(),
                "dev.harden.rewrite.copied": rw.stats.copied.to_string(),
            },
        });
        let layer = Blob { announce: false, ..Blob::file(rw.digest.clone(), rw.size, blob.to_path_buf()) };
        match self.put(&Self::tag(key, false), &doc, vec![layer], Some(locations)).await {
            Ok(()) => self.progress.line(&format!("shared cache: recorded rewrite {}", rw.digest.short())),
            Err(e) => self.note(&format!("cannot record rewrite {}: {e:#}", rw.digest)),
        }
    }
}
