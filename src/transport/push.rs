//! The push protocol, the one way anything reaches a destination: for each blob, already
//! present? mountable from another repository of the same registry (the source's, then those
//! [`super::locations`] knows to hold it; a mount counts once the registry answers 201 Created,
//! a refused one is forgotten)? else upload; a blob the run has already stored into this
//! repository is neither asked for nor stored again (see `Registry::store_once`); then every blob confirmed present; the manifest last. A manifest is
//! never stored before all that it names is, so an interrupted or failed push leaves nothing
//! that points at a missing blob.
//! Used by the rebuild, by signing, and by whatever pushes next (attestations, referrers).
//!
//! Owns: the order of a push and its checks. Must not: build blobs or manifests.

use super::{Endpoint, Manifest};
use crate::digest::Digest;
use crate::progress::Progress;
use crate::reference::ImageRef;
use anyhow::{anyhow, bail, Result};
use futures_util::{stream, StreamExt, TryStreamExt};
use std::path::PathBuf;

/// Where a blob's bytes are.
#[derive(Clone, Debug)]
pub enum BlobData {
    File(PathBuf),
    Bytes(Vec<u8>),
    /// At the push's `mount_from` endpoint, not fetched yet: fetched (verified, into this spool
    /// directory) only when the destination lacks it and no mount serves it.
    AtSource(PathBuf),
}

/// A blob to store, with its known digest and size.
#[derive(Clone, Debug)]
pub struct Blob {
    pub digest: Digest,
    pub size: u64,
    pub data: BlobData,
    /// Try a cross-repository mount from the push's `mount_from` before uploading (for a blob
    /// the source registry already holds).
    pub mountable: bool,
    /// Say on the progress what happened to it (layers); configs and payloads go quietly.
    pub announce: bool,
}

impl Blob {
    pub fn bytes(digest: Digest, bytes: Vec<u8>) -> Blob {
        Blob { digest, size: bytes.len() as u64, data: BlobData::Bytes(bytes), mountable: false, announce: false }
    }
    pub fn file(digest: Digest, size: u64, path: PathBuf) -> Blob {
        Blob { digest, size, data: BlobData::File(path), mountable: false, announce: true }
    }
    /// A layer of the source, fetched into `spool` only if it has to be uploaded.
    pub fn at_source(digest: Digest, size: u64, spool: PathBuf) -> Blob {
        Blob { digest, size, data: BlobData::AtSource(spool), mountable: true, announce: true }
    }
}

/// One push to `dst`.
pub struct Push<'a> {
    pub dst: &'a Endpoint,
    /// The source endpoint mounts may come from (the same registry, another repository).
    pub mount_from: Option<&'a Endpoint>,
    /// Where blobs were seen: mounts are tried from these too, and what this push finds or
    /// stores is added.
    pub locations: Option<&'a super::locations::Locations>,
    /// Blobs stored at once.
    pub jobs: usize,
    pub progress: &'a Progress,
}

impl Push<'_> {
    /// Store `blobs` (at most `jobs` at once), confirm each is present, then store `manifest`
    /// under `target` (its tag, or by digest only when it has none). `what` names the manifest
    /// in the error when a blob is missing (e.g. "manifest", "signature manifest").
    pub async fn push(&self, blobs: &[Blob], target: &ImageRef, manifest: &Manifest, what: &str) -> Result<()> {
        self.blobs(blobs).await?;
        self.confirm(blobs.iter().map(|b| &b.digest), target, what).await?;
        self.dst.put_manifest(target, manifest).await
    }

    /// Store each blob that is not there yet.
    pub async fn blobs(&self, blobs: &[Blob]) -> Result<()> {
        stream::iter(blobs)
            .map(|b| self.blob(b))
            .buffer_unordered(self.jobs.max(1))
            .try_collect::<Vec<()>>()
            .await
            .map(drop)
    }

    async fn blob(&self, b: &Blob) -> Result<()> {
        let dst = self.dst;
        let say = |msg: String| {
            if b.announce {
                self.progress.line(&msg);
            }
        };
        let here = dst.registry_repository();
        // This repository holds the blob now (for later pushes elsewhere in the registry).
        let note_here = || {
            if let (Some(l), Some((registry, repository))) = (self.locations, here) {
                l.note(registry, repository, &b.digest);
            }
        };
        let src_repo = self.mount_from.filter(|_| b.mountable).and_then(|src| dst.mount_source(src));
        if dst.has_blob(&b.digest).await? {
            say(format!("blob {} already present", b.digest.short()));
            note_here();
            return Ok(());
        }
        let known = match (self.locations, here) {
            (Some(l), Some((registry, repo))) => {
                l.candidates(registry, &b.digest, &[repo, src_repo.unwrap_or_default()])
            }
            _ => Vec::new(),
        };
        for from in src_repo.map(str::to_string).into_iter().chain(known) {
            if dst.mount(&from, &b.digest).await && dst.has_blob(&b.digest).await? {
                say(format!("mounted blob {} from {from}", b.digest.short()));
                note_here();
                return Ok(());
            }
            say(format!("mount of blob {} from {from} refused; trying the next way", b.digest.short()));
            if let (Some(l), Some((registry, _))) = (self.locations, here) {
                l.forget(registry, &from, &b.digest);
            }
        }
        match &b.data {
            BlobData::File(path) => dst.put_blob(&b.digest, b.size, path).await?,
            BlobData::Bytes(bytes) => dst.put_blob_bytes(&b.digest, bytes).await?,
            BlobData::AtSource(spool) => {
                let src = self.mount_from.ok_or_else(|| anyhow!("blob {}: no source to fetch it from", b.digest))?;
                let local = src.blob_local(&b.digest, b.size, spool, None).await?;
                if !local.verified {
                    let (p, d) = (local.path.clone(), b.digest.clone());
                    let got = tokio::task::spawn_blocking(move || crate::files::digest_of(&p)).await??;
                    if got != d {
                        bail!("blob {d}: content has digest {got} (corrupt or tampered)");
                    }
                }
                dst.put_blob(&b.digest, b.size, &local.path).await?
            }
        }
        say(format!("pushed blob {} ({})", b.digest.short(), crate::progress::human(b.size)));
        note_here();
        Ok(())
    }

    /// Every digest present at the destination, or an error naming the first one missing.
    pub async fn confirm<'d>(
        &self,
        digests: impl IntoIterator<Item = &'d Digest>,
        target: &ImageRef,
        what: &str,
    ) -> Result<()> {
        for d in digests {
            if !self.dst.has_blob(d).await? {
                bail!("{target}: blob {d} is not present after upload; {what} not pushed");
            }
        }
        Ok(())
    }
}
