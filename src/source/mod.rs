//! Source: the fetch-and-scan stage shared by `rebuild`, the read-only commands ([`read`]:
//! `check`, `contract`, `sbom`, `files`) and `sign` — an image's
//! manifest, config and layers, each layer fetched once per run (or batch), verified (blob
//! digest and diff_id), and scanned into a [`LayerIndex`]; and the one walk over an index.
//! A layer whose scan the [`scan_cache`] knows is not fetched to plan; its blob is fetched
//! (once, verified) only when a later stage reads it ([`ScanShare::blob`]).
//!
//! Owns: resolving what a reference names ([`walk`]), fetching configs and layers, the spool of
//! fetched layers, the per-run memo of scans and the scan cache on disk, the hashes of
//! executables a scan took, reading chosen entries of fetched layers again ([`hash_locs`]). Must not: plan, rewrite or judge anything.

use crate::digest::Digest;
use crate::fs::{FinalFs, Loc};
use crate::image::{self, LayerDesc, ManifestView};
use crate::progress::Progress;
use crate::reference::ImageRef;
use crate::scan::{self, LayerIndex};
use crate::transport::{Endpoint, Manifest, MAX_CONFIG};
use anyhow::{anyhow, bail, Context, Result};
use futures_util::{stream, StreamExt, TryStreamExt};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub mod read;
pub mod scan_cache;
pub mod walk;

pub use read::{read_images, Choose, ReadImage, ReadOptions};

use scan_cache::ScanCache;

/// The manifest view and config of an image manifest already fetched.
pub async fn image_config(src: &Endpoint, r: &ImageRef, manifest: &Manifest) -> Result<(ManifestView, Value)> {
    if manifest.media_type != image::OCI_MANIFEST && manifest.media_type != image::DOCKER_MANIFEST {
        bail!("{r}: manifest media type {} is not an image manifest", manifest.media_type);
    }
    let view = ManifestView::parse(&manifest.bytes, &manifest.media_type).with_context(|| format!("{r}"))?;
    let config_bytes = src.blob_bytes(&view.config.digest, MAX_CONFIG).await.with_context(|| format!("{r}: config"))?;
    // Every descriptor's size is checked, the config's as the layers' are.
    if config_bytes.len() as u64 != view.config.size {
        bail!(
            "{r}: config {} is {} bytes, but the manifest says {}",
            view.config.digest,
            config_bytes.len(),
            view.config.size
        );
    }
    let config: Value = serde_json::from_slice(&config_bytes)
        .map_err(|e| anyhow!("{r}: config {} is not valid JSON: {e}", view.config.digest))?;
    if !config.is_object() {
        bail!("{r}: config {} is not a JSON object", view.config.digest);
    }
    Ok((view, config))
}

/// Layers scanned (or found in the scan cache) in this run, by input digest: platforms of an
/// index, and images of a batch, may share layers.
type ScanMemo = tokio::sync::Mutex<HashMap<Digest, Arc<tokio::sync::OnceCell<Arc<LayerIndex>>>>>;

/// Where fetched layers are spooled and what their scans found. One per rebuild, or one for a
/// whole batch so a base layer shared by many images is fetched and scanned once (the spool then
/// holds each distinct layer until the batch ends).
pub struct ScanShare {
    pub spool: crate::spool::Spool,
    memo: ScanMemo,
    /// Layer blobs fetched in this run, by digest: fetched once, whoever asks first.
    blobs: Mutex<HashMap<Digest, Arc<tokio::sync::OnceCell<PathBuf>>>>,
    /// Layers whose scan came from the scan cache.
    known: Mutex<HashSet<Digest>>,
    /// Content hashes of entries read again ([`ScanShare::hash_locs`]), by layer digest and
    /// entry index: a batch's images on one base read the base for them once.
    hashes: Mutex<HashMap<(Digest, usize), Digest>>,
    /// The hashes of each scanned layer's executables, taken during its scan
    /// ([`scan::ExecHashes`]): what [`ScanShare::hash_locs`] needs without reading it again.
    exec_hashes: Mutex<HashMap<Digest, Arc<scan::ExecHashes>>>,
    /// How many times [`ScanShare::hash_locs`] read layers again (for tests).
    rereads: std::sync::atomic::AtomicUsize,
    cache: Option<Arc<ScanCache>>,
}

impl ScanShare {
    pub fn new() -> Result<ScanShare> {
        Ok(ScanShare {
            spool: crate::spool::create().context("cannot create a temporary directory")?,
            memo: ScanMemo::default(),
            blobs: Default::default(),
            known: Default::default(),
            hashes: Default::default(),
            exec_hashes: Default::default(),
            rereads: Default::default(),
            cache: None,
        })
    }

    /// Let go of the memo's layer indexes (the spooled blobs stay where they are): for a run
    /// that will scan nothing more, so that an index is freed once no image holds it.
    pub async fn forget_scans(&self) {
        self.memo.lock().await.clear();
        if let Ok(mut h) = self.exec_hashes.lock() {
            h.clear();
        }
    }

    /// Keep scans on disk under `dir` (the cache directory's `scans/`), notices to `progress`.
    pub fn with_cache(mut self, dir: Option<&Path>, progress: &Progress) -> ScanShare {
        self.cache = dir.map(|d| Arc::new(ScanCache::new(d.join("scans"), progress.clone())));
        self
    }

    /// How many times entries were hashed by reading layers again (the copy check's second
    /// read), in this run.
    pub fn rereads(&self) -> usize {
        self.rereads.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether `layer`'s blob was fetched in this run.
    pub fn fetched(&self, layer: &Digest) -> bool {
        self.local(layer).is_some()
    }

    /// Whether `layer`'s scan came from the scan cache in this run.
    pub fn from_cache(&self, layer: &Digest) -> bool {
        self.known.lock().is_ok_and(|k| k.contains(layer))
    }

    /// `layer`'s blob, when fetched in this run already.
    pub fn local(&self, layer: &Digest) -> Option<PathBuf> {
        self.blobs.lock().ok()?.get(layer).and_then(|c| c.get().cloned())
    }

    fn blob_cell(&self, layer: &Digest) -> Result<Arc<tokio::sync::OnceCell<PathBuf>>> {
        let mut m = self.blobs.lock().map_err(|_| anyhow!("blob memo poisoned"))?;
        Ok(m.entry(layer.clone()).or_default().clone())
    }

    /// `layer`'s blob as a local file, verified: fetched in this run already, or fetched now
    /// (a layer whose scan came from the scan cache is fetched only when a stage reads it).
    pub async fn blob(&self, src: &Endpoint, layer: &LayerDesc) -> Result<PathBuf> {
        let cell = self.blob_cell(&layer.digest)?;
        let path = cell
            .get_or_try_init(|| async {
                let b = src.blob_local(&layer.digest, layer.size, self.spool.path(), None).await?;
                if !b.verified {
                    let (p, d) = (b.path.clone(), layer.digest.clone());
                    let got = tokio::task::spawn_blocking(move || crate::files::digest_of(&p)).await??;
                    if got != d {
                        bail!("blob {d}: content has digest {got} (corrupt or tampered)");
                    }
                }
                Ok::<_, anyhow::Error>(b.path)
            })
            .await?;
        Ok(path.clone())
    }

    /// The sha256 of chosen entries of an image's layers (`layers` in manifest order): from this
    /// run's memo, else the hashes the scan took of executables, else the scan cache, else read
    /// from the layers' blobs (fetched if need be), each only once.
    pub async fn hash_locs(
        &self,
        src: &Endpoint,
        layers: &[LayerDesc],
        locs: &[Loc],
        limits: &crate::layer::Limits,
    ) -> Result<HashMap<Loc, Digest>> {
        let key = |l: &Loc| layers.get(l.layer).map(|d| (d.digest.clone(), l.entry));
        let mut out = HashMap::new();
        let mut missing = Vec::new();
        {
            let memo = self.hashes.lock().map_err(|_| anyhow!("hash memo poisoned"))?;
            for l in locs {
                match key(l).and_then(|k| memo.get(&k).cloned()) {
                    Some(d) => {
                        out.insert(*l, d);
                    }
                    None => missing.push(*l),
                }
            }
        }
        // From the first scan's hashes of executables: recorded like those read again.
        let mut fresh = Vec::new();
        if !missing.is_empty() {
            let scanned = self.exec_hashes.lock().map_err(|_| anyhow!("hash memo poisoned"))?;
            missing.retain(|l| {
                let found = layers.get(l.layer).and_then(|d| scanned.get(&d.digest)).and_then(|hs| {
                    let i = hs.binary_search_by_key(&(l.entry as u64), |(n, _)| u64::from(*n)).ok()?;
                    Some(Digest::from_sha256(&hs[i].1))
                });
                match found {
                    Some(d) => {
                        fresh.push((*l, d));
                        false
                    }
                    None => true,
                }
            });
        }
        // From the scan cache, layer by layer.
        if let (Some(cache), false) = (&self.cache, missing.is_empty()) {
            let wanted: HashSet<usize> = missing.iter().map(|l| l.layer).collect();
            for li in wanted {
                let (c, d) = (Arc::clone(cache), layers[li].digest.clone());
                let known = tokio::task::spawn_blocking(move || c.hashes(&d)).await?;
                missing.retain(|l| match (l.layer == li).then(|| known.get(&l.entry)).flatten() {
                    Some(d) => {
                        out.insert(*l, d.clone());
                        false
                    }
                    None => true,
                });
            }
        }
        if !missing.is_empty() {
            self.rereads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut blobs = vec![PathBuf::new(); layers.len()];
            for li in missing.iter().map(|l| l.layer).collect::<HashSet<_>>() {
                blobs[li] = self.blob(src, &layers[li]).await?;
            }
            let names: Vec<String> = layers.iter().map(|l| l.digest.to_string()).collect();
            let (m, lim) = (missing.clone(), limits.clone());
            fresh.extend(tokio::task::spawn_blocking(move || hash_locs(&blobs, &names, &m, &lim)).await??);
        }
        if !fresh.is_empty() {
            if let Some(cache) = &self.cache {
                let mut per: HashMap<usize, Vec<(Loc, Digest)>> = HashMap::new();
                for (l, d) in &fresh {
                    per.entry(l.layer).or_default().push((*l, d.clone()));
                }
                for (li, list) in per {
                    let (c, d, p) = (Arc::clone(cache), layers[li].digest.clone(), cache.clone());
                    if let Err(e) = tokio::task::spawn_blocking(move || c.put_hashes(&d, &list)).await? {
                        p.note(&format!("cannot record entry hashes of layer {}: {e}", layers[li].digest));
                    }
                }
            }
            out.extend(fresh);
        }
        let mut memo = self.hashes.lock().map_err(|_| anyhow!("hash memo poisoned"))?;
        for (l, d) in &out {
            if let Some(k) = key(l) {
                memo.insert(k, d.clone());
            }
        }
        Ok(out)
    }
}

/// A fresh scan: the layer's index and its executables' hashes.
type Scanned = (LayerIndex, scan::ExecHashes);

/// Fetches and scans the layers of images from one source.
pub struct Scanner<'a> {
    pub src: &'a Endpoint,
    pub share: &'a ScanShare,
    pub jobs: usize,
    pub progress: &'a Progress,
    pub limits: &'a crate::layer::Limits,
    /// Upload each fetched layer here while it is scanned — for profiles that change no file
    /// (mirroring), where every layer will be pushed as it is, so the copy overlaps the scan
    /// (and, from a registry, the download too); and, with [`Scanner::stop_mirroring`], for a
    /// profile that may leave some layers as they are.
    pub mirror_to: Option<&'a Endpoint>,
    /// When set, the upload of a layer from a registry (as it downloads) is a guess that the
    /// plan will leave it as it is: a fresh watcher per layer sees each entry as the scan reads
    /// it, and the upload stops once it says true (the layer may change). What the guess
    /// uploads and the plan then changes stays unreferenced at the destination. A local source
    /// is not uploaded on a guess (its push reads the same file after the plan).
    pub stop_mirroring: Option<&'a LayerWatch>,
    /// Hash every executable's data during the scan ([`scan::ExecHashes`]), for a plan whose
    /// copy check may compare them ([`ScanShare::hash_locs`] then reads no layer again).
    pub hash_executables: bool,
}

/// Makes a watcher for one layer's entries (see [`Scanner::stop_mirroring`]).
pub type LayerWatch = dyn Fn() -> Box<dyn FnMut(scan::Entry<'_>) -> bool + Send> + Send + Sync;

impl Scanner<'_> {
    /// The scan of every layer (bounded concurrency, each layer once per share): from the scan
    /// cache when it knows the layer, else fetched and scanned, verifying digests and diff_ids,
    /// within the limits.
    pub async fn scan(&self, view: &ManifestView, config: &Value) -> Result<Vec<Arc<LayerIndex>>> {
        let diff_ids = image::diff_ids(config, view.layers.len())?;
        let n = view.layers.len();
        stream::iter(view.layers.iter().zip(diff_ids).enumerate())
            .map(|(i, (layer, diff_id))| async move {
                if layer.is_foreign() {
                    bail!("layer {}: foreign (non-distributable) layers are not supported", layer.digest);
                }
                let cell = self.share.memo.lock().await.entry(layer.digest.clone()).or_default().clone();
                let index = cell
                    .get_or_try_init(|| async {
                        if let Some(index) = self.known(layer, &diff_id).await? {
                            self.progress.line(&format!(
                                "scan of layer {}/{n} {} known ({} entries, scan cache)",
                                i + 1,
                                layer.digest.short(),
                                index.entries.len()
                            ));
                            return Ok(Arc::new(index));
                        }
                        let (path, (index, hashes)) = if self.src.is_registry() {
                            self.fetch_following(layer, diff_id.clone()).await?
                        } else {
                            self.fetch_then_scan(layer, diff_id.clone()).await?
                        };
                        let _ = self.share.blob_cell(&layer.digest)?.set(path);
                        if let Ok(mut h) = self.share.exec_hashes.lock() {
                            h.insert(layer.digest.clone(), Arc::new(hashes));
                        }
                        self.progress.line(&format!(
                            "scanned layer {}/{n} {} ({} entries)",
                            i + 1,
                            layer.digest.short(),
                            index.entries.len()
                        ));
                        let index = Arc::new(index);
                        if let Some(cache) = &self.share.cache {
                            let (c, d, x) = (Arc::clone(cache), layer.digest.clone(), Arc::clone(&index));
                            if let Err(e) = tokio::task::spawn_blocking(move || c.put_index(&d, &x)).await? {
                                cache.note(&format!("cannot record the scan of layer {}: {e}", layer.digest));
                            }
                        }
                        Ok::<_, anyhow::Error>(index)
                    })
                    .await?;
                Ok(Arc::clone(index))
            })
            .buffered(self.jobs.max(1))
            .try_collect()
            .await
    }

    /// The scan cache's entry for `layer`, held to what a fresh scan is held to: the config's
    /// diff_id and the reading limits (the entries it keeps count as if scanned).
    async fn known(&self, layer: &LayerDesc, diff_id: &Digest) -> Result<Option<LayerIndex>> {
        let Some(cache) = &self.share.cache else { return Ok(None) };
        let (c, d) = (Arc::clone(cache), layer.digest.clone());
        let Some(index) = tokio::task::spawn_blocking(move || c.index(&d)).await? else { return Ok(None) };
        let digest = &layer.digest;
        if index.diff_id != *diff_id {
            bail!(
                "layer {digest}: uncompressed content has digest {}, but the config's diff_id says {diff_id}",
                index.diff_id
            );
        }
        if index.uncompressed_size > self.limits.max_layer_size {
            bail!(
                "layer {digest}: more than {} bytes uncompressed (--max-layer-size; a decompression bomb?)",
                self.limits.max_layer_size
            );
        }
        let mut taken = (0u64, 0u64);
        for e in index.entries.iter() {
            let kept = e.kept_bytes();
            if let Err(err) = self.limits.take_entry(kept) {
                self.limits.give_back(taken.0, taken.1);
                bail!("layer {digest}: {err}");
            }
            taken = (taken.0 + 1, taken.1 + kept);
        }
        if let Ok(mut k) = self.share.known.lock() {
            k.insert(digest.clone());
        }
        Ok(Some(index))
    }
}

impl Scanner<'_> {
    /// What `check`, `sbom` and `contract` read of one image: its manifest view, its config
    /// and the final filesystem of its layers' scans.
    pub async fn read(&self, r: &ImageRef, manifest: &Manifest) -> Result<(ManifestView, Value, FinalFs)> {
        let (view, config) = image_config(self.src, r, manifest).await?;
        let indexes = self.scan(&view, &config).await?;
        Ok((view, config, FinalFs::build(indexes)))
    }
}

impl Scanner<'_> {
    /// A local blob (an OCI layout's): scan it, verifying its digest on the way, and upload it
    /// (when mirroring) only once the scan has checked it.
    async fn fetch_then_scan(&self, layer: &LayerDesc, diff_id: Digest) -> Result<(PathBuf, Scanned)> {
        let blob = self.src.blob_local(&layer.digest, layer.size, self.share.spool.path(), None).await?;
        let verify = (!blob.verified).then(|| layer.digest.clone());
        let index = self.scan_file(&blob.path, verify, diff_id, &layer.digest).await?;
        if let (Some(dst), None) = (self.mirror_to, self.stop_mirroring) {
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
    async fn fetch_following(&self, layer: &LayerDesc, diff_id: Digest) -> Result<(PathBuf, Scanned)> {
        let digest = &layer.digest;
        let spool = self.share.spool.path();
        let (tap, follow) = crate::transport::follow::tap(format!("blob {digest}"), layer.size);
        let download = self.src.blob_local(digest, layer.size, spool, Some(tap));
        // Set once the watcher says the plan may change the layer: its upload stops.
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let scan = {
            let (reader, limits, diff_id) = (follow.reader(), self.limits.clone(), diff_id.clone());
            let (mut watcher, hash) = (self.stop_mirroring.map(|w| w()), self.hash_executables);
            tokio::task::spawn_blocking(move || {
                scan::scan_layer_hashing(reader, (None, Some(&diff_id)), &limits, hash, &mut |e| {
                    if watcher.as_mut().is_some_and(|w| w(e)) {
                        watcher = None;
                        let _ = stop.send(true);
                    }
                })
            })
        };
        let upload = async {
            match self.mirror_to {
                Some(dst) if !dst.has_blob(digest).await? => {
                    let stop = async {
                        // A watcher that ended without stopping it lets the upload finish.
                        if stopped.wait_for(|s| *s).await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    };
                    tokio::select! {
                        res = dst.put_blob_following(digest, layer.size, &follow) => res,
                        () = stop => {
                            self.progress.line(&format!(
                                "upload of layer {} stopped: the profile may change it",
                                digest.short()
                            ));
                            Ok(())
                        }
                    }
                }
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
    ) -> Result<Scanned> {
        let (path, limits, hash) = (path.to_path_buf(), self.limits.clone(), self.hash_executables);
        let index = tokio::task::spawn_blocking(move || {
            let f = std::fs::File::open(&path)?;
            let f = std::io::BufReader::with_capacity(1 << 20, f);
            scan::scan_layer_hashing(f, (verify.as_ref(), Some(&diff_id)), &limits, hash, &mut |_| {})
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
