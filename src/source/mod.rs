//! Source: the fetch-and-scan stage shared by `rebuild`, `check` and `sign` — an image's
//! manifest, config and layers, each layer fetched once per run (or batch), verified (blob
//! digest and diff_id), and scanned into a [`LayerIndex`]; and the one walk over an index.
//!
//! Owns: resolving what a reference names ([`walk`]), fetching configs and layers, the spool of
//! fetched layers, the per-run memo of scans, reading chosen entries of fetched layers again
//! ([`hash_locs`]). Must not: plan, rewrite or judge anything.

use crate::digest::Digest;
use crate::fs::FinalFs;
use crate::image::{self, ManifestView};
use crate::progress::Progress;
use crate::reference::ImageRef;
use crate::scan::{self, LayerIndex};
use crate::transport::{Endpoint, Manifest, MAX_CONFIG};
use anyhow::{anyhow, bail, Context, Result};
use futures_util::{stream, StreamExt, TryStreamExt};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub mod walk;

/// The manifest view and config of an image manifest already fetched.
pub async fn image_config(src: &Endpoint, r: &ImageRef, manifest: &Manifest) -> Result<(ManifestView, Value)> {
    if manifest.media_type != image::OCI_MANIFEST && manifest.media_type != image::DOCKER_MANIFEST {
        bail!("{r}: manifest media type {} is not an image manifest", manifest.media_type);
    }
    let view = ManifestView::parse(&manifest.bytes, &manifest.media_type).with_context(|| format!("{r}"))?;
    let config_bytes = src.blob_bytes(&view.config.digest, MAX_CONFIG).await.with_context(|| format!("{r}: config"))?;
    let config: Value = serde_json::from_slice(&config_bytes)
        .map_err(|e| anyhow!("{r}: config {} is not valid JSON: {e}", view.config.digest))?;
    if !config.is_object() {
        bail!("{r}: config {} is not a JSON object", view.config.digest);
    }
    Ok((view, config))
}

/// Layers fetched and scanned in this run, by input digest: platforms of an index may share layers.
pub type ScanMemo = tokio::sync::Mutex<HashMap<Digest, Arc<tokio::sync::OnceCell<(PathBuf, Arc<LayerIndex>)>>>>;

/// Where fetched layers are spooled and what their scans found. One per rebuild, or one for a
/// whole batch so a base layer shared by many images is fetched and scanned once (the spool then
/// holds each distinct layer until the batch ends).
pub struct ScanShare {
    pub spool: crate::spool::Spool,
    pub memo: ScanMemo,
    /// Content hashes of entries read again ([`ScanShare::hash_locs`]), by layer digest and
    /// entry index: a batch's images on one base read the base for them once.
    hashes: std::sync::Mutex<HashMap<(Digest, usize), Digest>>,
}

impl ScanShare {
    pub fn new() -> Result<ScanShare> {
        Ok(ScanShare {
            spool: crate::spool::create().context("cannot create a temporary directory")?,
            memo: ScanMemo::default(),
            hashes: Default::default(),
        })
    }

    /// Let go of the memo's layer indexes (the spooled blobs stay where they are): for a run
    /// that will scan nothing more, so that an index is freed once no image holds it.
    pub async fn forget_scans(&self) {
        self.memo.lock().await.clear();
    }

    /// [`hash_locs`] through this share's memo: only entries not hashed before are read.
    pub fn hash_locs(
        &self,
        blobs: &[PathBuf],
        layers: &[Digest],
        locs: &[crate::fs::Loc],
        limits: &crate::layer::Limits,
    ) -> std::io::Result<HashMap<crate::fs::Loc, Digest>> {
        let key = |l: &crate::fs::Loc| layers.get(l.layer).map(|d| (d.clone(), l.entry));
        let mut out = HashMap::new();
        let mut missing = Vec::new();
        {
            let memo = self.hashes.lock().map_err(|_| std::io::Error::other("hash memo poisoned"))?;
            for l in locs {
                match key(l).and_then(|k| memo.get(&k).cloned()) {
                    Some(d) => {
                        out.insert(*l, d);
                    }
                    None => missing.push(*l),
                }
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        let names: Vec<String> = layers.iter().map(ToString::to_string).collect();
        let fresh = hash_locs(blobs, &names, &missing, limits)?;
        let mut memo = self.hashes.lock().map_err(|_| std::io::Error::other("hash memo poisoned"))?;
        for (l, d) in fresh {
            if let Some(k) = key(&l) {
                memo.insert(k, d.clone());
            }
            out.insert(l, d);
        }
        Ok(out)
    }
}

/// Fetches and scans the layers of images from one source.
pub struct Scanner<'a> {
    pub src: &'a Endpoint,
    pub share: &'a ScanShare,
    pub jobs: usize,
    pub progress: &'a Progress,
    pub limits: &'a crate::layer::Limits,
    /// Upload each fetched layer here while it is scanned — for profiles that change no file
    /// (mirroring), where every layer will be pushed as it is, so the copy overlaps the scan
    /// (and, from a registry, the download too).
    pub mirror_to: Option<&'a Endpoint>,
}

impl Scanner<'_> {
    /// Materialise and scan every layer (bounded concurrency, each layer once per share),
    /// verifying digests and diff_ids, within the limits.
    pub async fn scan(&self, view: &ManifestView, config: &Value) -> Result<(Vec<PathBuf>, Vec<Arc<LayerIndex>>)> {
        let diff_ids = image::diff_ids(config, view.layers.len())?;
        let n = view.layers.len();
        let results: Vec<(PathBuf, Arc<LayerIndex>)> = stream::iter(view.layers.iter().zip(diff_ids).enumerate())
            .map(|(i, (layer, diff_id))| async move {
                if layer.is_foreign() {
                    bail!("layer {}: foreign (non-distributable) layers are not supported", layer.digest);
                }
                let cell = self.share.memo.lock().await.entry(layer.digest.clone()).or_default().clone();
                let r = cell
                    .get_or_try_init(|| async {
                        let (path, index) = if self.src.is_registry() {
                            self.fetch_following(layer, diff_id).await?
                        } else {
                            self.fetch_then_scan(layer, diff_id).await?
                        };
                        self.progress.line(&format!(
                            "scanned layer {}/{n} {} ({} entries)",
                            i + 1,
                            layer.digest.short(),
                            index.entries.len()
                        ));
                        Ok::<_, anyhow::Error>((path, Arc::new(index)))
                    })
                    .await?;
                Ok(r.clone())
            })
            .buffered(self.jobs.max(1))
            .try_collect()
            .await?;
        Ok(results.into_iter().unzip())
    }
}

impl Scanner<'_> {
    /// What `check`, `sbom` and `contract` read of one image: its manifest view, its config,
    /// the fetched layer blobs and the final filesystem of their scans.
    pub async fn read(
        &self,
        r: &ImageRef,
        manifest: &Manifest,
    ) -> Result<(ManifestView, Value, Vec<PathBuf>, FinalFs)> {
        let (view, config) = image_config(self.src, r, manifest).await?;
        let (blobs, indexes) = self.scan(&view, &config).await?;
        Ok((view, config, blobs, FinalFs::build(indexes)))
    }
}

impl Scanner<'_> {
    /// A local blob (an OCI layout's): scan it, verifying its digest on the way, and upload it
    /// (when mirroring) only once the scan has checked it.
    async fn fetch_then_scan(&self, layer: &image::LayerDesc, diff_id: Digest) -> Result<(PathBuf, LayerIndex)> {
        let blob = self.src.blob_local(&layer.digest, layer.size, self.share.spool.path(), None).await?;
        let verify = (!blob.verified).then(|| layer.digest.clone());
        let index = self.scan_file(&blob.path, verify, diff_id, &layer.digest).await?;
        if let Some(dst) = self.mirror_to {
            if !dst.has_blob(&layer.digest).await? {
                dst.put_blob(&layer.digest, layer.size, &blob.path).await?;
            }
        }
        Ok((blob.path, index))
    }

    /// A registry's blob: download it, scan it and (when mirroring) upload it all at once, the
    /// scan and the upload reading the spool file behind the download (see
    /// [`crate::transport::follow`]). The scan trusts the download's verification only when
    /// the download verified exactly the bytes it read — one attempt, file written once — and
    /// scans the finished file again otherwise. A failed download is the error, whatever the
    /// scan and the upload made of its bytes.
    async fn fetch_following(&self, layer: &image::LayerDesc, diff_id: Digest) -> Result<(PathBuf, LayerIndex)> {
        let digest = &layer.digest;
        let spool = self.share.spool.path();
        let (tap, follow) = crate::transport::follow::tap(format!("blob {digest}"), layer.size);
        let download = self.src.blob_local(digest, layer.size, spool, Some(tap));
        let scan = {
            let (reader, limits, diff_id) = (follow.reader(), self.limits.clone(), diff_id.clone());
            tokio::task::spawn_blocking(move || scan::scan_layer(reader, None, Some(&diff_id), &limits))
        };
        let upload = async {
            match self.mirror_to {
                Some(dst) if !dst.has_blob(digest).await? => dst.put_blob_following(digest, layer.size, &follow).await,
                _ => Ok(()),
            }
        };
        let (blob, scanned, uploaded) = tokio::join!(download, scan, upload);
        let blob = blob?;
        let index = match scanned {
            Ok(Ok(index)) if follow.attempts() == 1 => index,
            _ => self.scan_file(&blob.path, None, diff_id, digest).await?,
        };
        uploaded?;
        Ok((blob.path, index))
    }

    /// Scan a whole local blob; `verify` its digest when it is not known good.
    async fn scan_file(
        &self,
        path: &Path,
        verify: Option<Digest>,
        diff_id: Digest,
        digest: &Digest,
    ) -> Result<LayerIndex> {
        let (path, limits) = (path.to_path_buf(), self.limits.clone());
        let index = tokio::task::spawn_blocking(move || {
            let f = std::fs::File::open(&path)?;
            let f = std::io::BufReader::with_capacity(1 << 20, f);
            scan::scan_layer(f, verify.as_ref(), Some(&diff_id), &limits)
        })
        .await?;
        index.map_err(|e| anyhow!("layer {digest}: {e}"))
    }
}

/// The sha256 of the data of chosen entries of an image's fetched layers (a second read of the
/// spooled blobs, for the few candidates that matter: [`crate::plan::copy_check`]):
/// [`scan::hash_entries`] for entries spread over layers: `blobs[i]` is layer `i`'s blob file and
/// `names[i]` names it in errors.
pub fn hash_locs(
    blobs: &[std::path::PathBuf],
    names: &[String],
    locs: &[crate::fs::Loc],
    limits: &crate::layer::Limits,
) -> std::io::Result<std::collections::HashMap<crate::fs::Loc, Digest>> {
    let mut per_layer: std::collections::BTreeMap<usize, std::collections::BTreeSet<usize>> = Default::default();
    for l in locs {
        per_layer.entry(l.layer).or_default().insert(l.entry);
    }
    let mut out = std::collections::HashMap::new();
    for (layer, wanted) in per_layer {
        let name = names.get(layer).map_or("?", String::as_str);
        let path = blobs.get(layer).ok_or_else(|| std::io::Error::other(format!("layer {name}: no local blob")))?;
        let file =
            std::fs::File::open(path).map_err(|e| std::io::Error::new(e.kind(), format!("layer {name}: {e}")))?;
        let hashes = scan::hash_entries(std::io::BufReader::new(file), &wanted, limits)
            .map_err(|e| std::io::Error::new(e.kind(), format!("layer {name}: {e}")))?;
        out.extend(hashes.into_iter().map(|(entry, d)| (crate::fs::Loc { layer, entry }, d)));
    }
    Ok(out)
}
