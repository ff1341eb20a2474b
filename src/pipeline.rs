//! Pipeline: the order of the stages — resolve → scan → plan + guard → rewrite → config → push
//! → sign — for one image or every platform of an index (all planned and guarded before any
//! layer is rewritten), with bounded concurrency, the rewrite cache, progress on stderr, and the
//! report.
//!
//! Owns: ordering, temp files (one directory, removed on every exit), reports. Must not: hold
//! policy (that is the profile's and the plan's).

use crate::cache::{RewriteCache, Rewritten};
use crate::config::{self, ConfigEdit};
use crate::digest::Digest;
use crate::fs::FinalFs;
use crate::guard::Guard;
use crate::image::{self, ManifestView};
use crate::layer::codec::OutputCodec;
use crate::plan;
use crate::profile::{self, Profile};
use crate::progress::Progress;
use crate::reference::ImageRef;
use crate::rewrite::{self, LayerRewrite};
use crate::scan::{self, LayerIndex};
use crate::transport::{Endpoint, Manifest, NetOptions, MAX_CONFIG};
use crate::Failure;
use anyhow::{anyhow, bail, Context, Result};
use futures_util::{stream, StreamExt, TryStreamExt};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

pub struct RebuildOptions {
    pub src: ImageRef,
    pub dst: ImageRef,
    pub profiles: Vec<String>,
    pub report: Option<PathBuf>,
    pub digest_file: Option<PathBuf>,
    pub dry_run: bool,
    pub allow_broken: bool,
    pub codec: OutputCodec,
    /// Compress changed layers in full instead of splicing (`--recompress`).
    pub recompress: bool,
    pub jobs: usize,
    pub net: NetOptions,
    /// What reading a layer may cost (`--max-layer-size`, `--max-ratio`, `--max-entries`).
    pub limits: crate::layer::Limits,
    pub progress: Progress,
    /// Sign the pushed result with this key (cosign `.sig` beside it) and report the signature.
    pub sign_key: Option<Arc<crate::sign::SigningKey>>,
    /// Recorded as org.opencontainers.image.base.name (see [`RebuildOptions::base_name`]).
    pub base_name: Option<String>,
    /// For an index: the platforms to rebuild (`os/arch[/variant]`); empty means all.
    pub platforms: Vec<String>,
    /// The rewrite cache, shared by every image of a batch; None for a private in-memory one.
    pub cache: Option<Arc<RewriteCache>>,
    /// Fetched layers and their scans, shared by every image of a batch; None for this run's own.
    pub scans: Option<Arc<ScanShare>>,
}

impl RebuildOptions {
    /// What the result records as its base name: `--base-name`, else a registry source's
    /// repository and tag (the digest is recorded separately), else nothing.
    pub fn base_name(&self) -> Option<String> {
        self.base_name.clone().or_else(|| match &self.src {
            ImageRef::Registry { tag, .. } => Some(format!(
                "{}{}",
                self.src.repository_name(),
                tag.as_ref().map(|t| format!(":{t}")).unwrap_or_default()
            )),
            ImageRef::Layout { .. } => None,
        })
    }
}

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
}

impl ScanShare {
    pub fn new() -> Result<ScanShare> {
        Ok(ScanShare {
            spool: crate::spool::create().context("cannot create a temporary directory")?,
            memo: ScanMemo::default(),
        })
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

fn human(n: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut f = n as f64;
    let mut i = 0;
    while f >= 1024.0 && i < 4 {
        f /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{f:.1} {}", U[i])
    }
}

/// Everything a run shares across the images it rebuilds (one, or one per platform).
struct Ctx<'a> {
    o: &'a RebuildOptions,
    profile: Profile,
    src: Endpoint,
    dst: Endpoint,
    share: Arc<ScanShare>,
    cache: Arc<RewriteCache>,
}

/// One image scanned, planned and checked: nothing rewritten or pushed yet.
struct Prepared {
    src_ref: ImageRef,
    manifest: Manifest,
    view: ManifestView,
    config: Value,
    blobs: Vec<PathBuf>,
    fs: FinalFs,
    plan: plan::Plan,
    user: config::UserPlan,
    created: Option<String>,
    summary: String,
    broken: Vec<String>,
    findings: crate::audit::RebuildFindings,
    report: Value,
    t_scan: std::time::Duration,
}

/// Scan, plan, guard and audit one image.
async fn prepare(ctx: &Ctx<'_>, src_ref: ImageRef, manifest: Manifest) -> Result<Prepared> {
    let t0 = Instant::now();
    let o = ctx.o;
    let profile = &ctx.profile;
    let (view, config) = image_config(&ctx.src, &src_ref, &manifest).await?;
    let (blobs, indexes) = Scanner {
        src: &ctx.src,
        share: &ctx.share,
        jobs: o.jobs,
        progress: &o.progress,
        limits: &o.limits,
        mirror_to: (!ctx.profile.changes_files()).then_some(&ctx.dst),
    }
    .scan(&view, &config)
    .await?;
    let t_scan = t0.elapsed();

    let fs = FinalFs::build(indexes);
    let mut plan = plan::plan(&fs, profile);
    // Byte-identical copies of removed tools: the few candidates are hashed (their layers read again).
    let check = plan::copy_check(&fs, &plan, profile);
    if !check.is_empty() {
        let (b, l) = (blobs.clone(), o.limits.clone());
        let names: Vec<String> = view.layers.iter().map(|d| d.digest.to_string()).collect();
        let hashes = tokio::task::spawn_blocking(move || scan::hash_locs(&b, &names, &check, &l)).await??;
        plan = plan::plan_with(&fs, profile, &plan::copies(&fs, &plan, &hashes));
    }
    let epoch = config::source_date_epoch()?;
    let created = epoch.as_ref().map(|(_, s)| s.clone());
    let mtime =
        epoch.as_ref().map(|(s, _)| *s).unwrap_or_else(|| config::epoch_of(config["created"].as_str().unwrap_or("")));
    let user = config::plan_user(&fs, profile, mtime, o.codec)?;
    let mut effective = config.clone();
    if let Some(crate::profile::HealthRule::Set(h)) = &profile.config.healthcheck {
        effective["config"]["Healthcheck"] = h.clone();
    }
    let guard = Guard::check(&fs, &plan, &effective, user.config_user.as_deref().or(config["config"]["User"].as_str()));
    for p in &guard.preexisting {
        o.progress.line(&format!("note: {p} (already so in the source image)"));
    }
    for n in &guard.notes {
        o.progress.line(&format!("note: guard: {n}"));
    }
    for n in &plan.notes {
        o.progress.line(&format!("note: {n}"));
    }
    let changed_layers = plan.layers.iter().filter(|l| !l.is_unchanged()).count();
    let summary = format!(
        "removed {} paths, stripped setuid/setgid from {}, capabilities from {}, o+w from {}; {} of {} layers rewritten",
        plan.removed.len(),
        plan.setuid_stripped.len(),
        plan.caps_stripped.len(),
        plan.world_writable_fixed.len(),
        changed_layers,
        view.layers.len()
    );

    // Audit the source and the result as the plan and the config edit will make it.
    let mut predicted = config.clone();
    let predicted_ok =
        config::edit(&mut predicted, &config_edit(ctx, &manifest, &fs, &user, &summary, &created, None)).is_ok();
    let user_blob = user.layer.as_ref().map(|u| (u.blob.as_slice(), &u.digest));
    let findings = crate::audit::run::rebuild_findings(
        &ctx.src,
        &src_ref,
        &manifest.digest,
        &view,
        &fs,
        &config,
        &plan,
        predicted_ok.then_some(&predicted),
        user_blob,
        o.sign_key.is_some(),
    )
    .await;
    o.progress.line(&findings.summary());

    let report = json!({
        "source": {"reference": src_ref.to_string(), "digest": manifest.digest.as_str()},
        "plan": {
            "summary": summary,
            "removed": plan.removed.iter().map(|(p, r)| json!({"path": format!("/{p}"), "rule": r.pattern, "origin": r.origin})).collect::<Vec<_>>(),
            "setuid_stripped": plan.setuid_stripped.iter().map(|p| format!("/{p}")).collect::<Vec<_>>(),
            "capabilities_stripped": plan.caps_stripped.iter().map(|p| format!("/{p}")).collect::<Vec<_>>(),
            "world_writable_fixed": plan.world_writable_fixed.iter().map(|p| format!("/{p}")).collect::<Vec<_>>(),
            "notes": plan.notes,
            "layers": view.layers.iter().zip(&plan.layers).map(|(l, p)| json!({"digest": l.digest.as_str(), "changes": !p.is_unchanged(), "removed": p.removed(), "changed": p.changed()})).collect::<Vec<_>>(),
        },
        "guard": {"broken": guard.broken.iter().map(|b| json!({"needed_by": b.needed_by, "path": b.path, "removed": b.removed, "rule": b.rule, "origin": b.origin, "message": b.to_string()})).collect::<Vec<_>>(),
                  "preexisting": guard.preexisting.iter().map(ToString::to_string).collect::<Vec<_>>()},
        "findings": findings.to_json(),
    });
    let broken = guard.broken.iter().map(ToString::to_string).collect();
    Ok(Prepared {
        src_ref,
        manifest,
        view,
        config,
        blobs,
        fs,
        plan,
        user,
        created,
        summary,
        broken,
        findings,
        report,
        t_scan,
    })
}

fn config_edit<'c>(
    ctx: &'c Ctx<'_>,
    manifest: &Manifest,
    fs: &FinalFs,
    user: &config::UserPlan,
    summary: &str,
    created: &Option<String>,
    diff_ids: Option<Vec<Digest>>,
) -> ConfigEdit<'c> {
    ConfigEdit {
        profile: &ctx.profile,
        source_name: ctx.o.base_name(),
        source_digest: manifest.digest.clone(),
        diff_ids: diff_ids.unwrap_or_else(|| fs.layers.iter().map(|l| l.diff_id.clone()).collect()),
        user: user.config_user.clone(),
        added_layer: user.layer.is_some(),
        summary: summary.to_string(),
        created: created.clone(),
    }
}

/// The dry-run listing of one image's plan.
fn print_plan(p: &Prepared) {
    println!("{}", p.summary);
    // Top-most removed paths only, with how much goes with them; the report lists all.
    for (path, r) in &p.plan.removed {
        let (parent, _) = crate::layer::tar::split_parent(path);
        if !parent.is_empty() && p.plan.is_removed(parent) {
            continue;
        }
        let under =
            p.plan.removed.range(format!("{path}/")..).take_while(|(q, _)| q.starts_with(&format!("{path}/"))).count();
        let extra = if under > 0 { format!(" (+{under} under it)") } else { String::new() };
        println!("remove /{path}{extra}  [{} from {}]", r.pattern, r.origin);
    }
    for path in &p.plan.setuid_stripped {
        println!("chmod a-s /{path}");
    }
    for path in &p.plan.caps_stripped {
        println!("strip security.capability /{path}");
    }
    for b in &p.broken {
        println!("guard: {b}");
    }
}

/// Rewrite the layers the plan changes, edit the config, push blobs then the manifest (under
/// `tag`, or by digest only when the image is one platform of an index).
async fn execute(ctx: &Ctx<'_>, mut p: Prepared, tag: Option<&ImageRef>) -> Result<(Manifest, Value)> {
    let o = ctx.o;
    let t1 = Instant::now();
    let n = p.view.layers.len();
    let rewrites: Vec<Option<Rewritten>> =
        stream::iter(p.view.layers.iter().zip(&p.blobs).zip(&p.plan.layers).enumerate())
            .map(|(i, ((layer, input), lp))| async move {
                if lp.is_unchanged() {
                    return Ok(None);
                }
                let splice = !o.recompress;
                let key = RewriteCache::key(&layer.digest, lp, o.codec, splice);
                let spooled = ctx.share.spool.path().join(format!("out-{key}"));
                let (input, lp2, codec, digest) = (input.clone(), Arc::new(lp.clone()), o.codec, layer.digest.clone());
                let limits = o.limits.clone();
                let r = ctx
                    .cache
                    .get_or_rewrite(&key, || async move {
                        let out = spooled.clone();
                        let rw = tokio::task::spawn_blocking(move || -> std::io::Result<LayerRewrite> {
                            let r: Arc<dyn crate::layer::splice::ReadAt> = Arc::new(std::fs::File::open(&input)?);
                            // Created (truncated) again if a splice has to be redone.
                            let open_out =
                                || Ok(std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&out)?));
                            let (mut w, rw) = rewrite::rewrite_layer(r, open_out, &lp2, codec, splice, &limits)?;
                            std::io::Write::flush(&mut w)?;
                            Ok(rw)
                        })
                        .await?
                        .map_err(|e| anyhow!("layer {digest}: rewrite failed: {e}"))?;
                        Ok((spooled, rw))
                    })
                    .await?;
                o.progress.line(&format!(
                    "{} layer {}/{n} {} → {} ({} → {}, {} removed, {} changed{})",
                    if r.cached { "cached" } else { "rewrote" },
                    i + 1,
                    layer.digest.short(),
                    r.rw.digest.short(),
                    human(layer.size),
                    human(r.rw.size),
                    r.rw.stats.removed,
                    r.rw.stats.changed,
                    match r.rw.stats.copied {
                        0 => String::new(),
                        c => format!(", {} of its tar spliced, not recompressed", human(c)),
                    }
                ));
                Ok::<_, anyhow::Error>(Some(r))
            })
            .buffered(o.jobs.max(1))
            .try_collect()
            .await?;
    let t_rewrite = t1.elapsed();

    // New manifest and config.
    let view = &p.view;
    let mut manifest_json = view.json.clone();
    let mut diff_ids = Vec::new();
    let mut layer_reports = Vec::new();
    for (i, (layer, rw)) in view.layers.iter().zip(&rewrites).enumerate() {
        let idx = &p.fs.layers[i];
        let codec_in = format!("{:?}", idx.codec).to_lowercase();
        match rw {
            Some(r) => {
                let d = &mut manifest_json["layers"][i];
                d["mediaType"] = json!(view.layer_media_type(o.codec));
                d["digest"] = json!(r.rw.digest.as_str());
                d["size"] = json!(r.rw.size);
                // Lazy-pull TOC annotations describe the source blob (unchanged layers keep theirs).
                let dropped = crate::image::drop_lazy_pull_annotations(d);
                diff_ids.push(r.rw.diff_id.clone());
                layer_reports.push(json!({"input_digest": layer.digest.as_str(), "output_digest": r.rw.digest.as_str(), "action": if r.cached { "rewritten (cached)" } else { "rewritten" }, "input_codec": codec_in, "uncompressed_bytes": idx.uncompressed_size, "bytes_in": layer.size, "bytes_out": r.rw.size, "entries_removed": r.rw.stats.removed, "entries_changed": r.rw.stats.changed, "bytes_spliced": r.rw.stats.copied, "dropped_annotations": dropped}));
            }
            None => {
                diff_ids.push(idx.diff_id.clone());
                layer_reports.push(json!({"input_digest": layer.digest.as_str(), "output_digest": layer.digest.as_str(), "action": "reused", "input_codec": codec_in, "uncompressed_bytes": idx.uncompressed_size, "bytes_in": layer.size, "bytes_out": layer.size, "entries_removed": 0, "entries_changed": 0}));
            }
        }
    }
    if let Some(ul) = &p.user.layer {
        diff_ids.push(ul.diff_id.clone());
        let layers = manifest_json["layers"].as_array_mut().ok_or_else(|| anyhow!("manifest has no layers list"))?;
        layers.push(
            json!({"mediaType": view.layer_media_type(o.codec), "digest": ul.digest.as_str(), "size": ul.blob.len()}),
        );
        layer_reports.push(json!({"input_digest": null, "output_digest": ul.digest.as_str(), "action": "added", "bytes_in": 0, "bytes_out": ul.blob.len(), "purpose": format!("adds user {}", ul.name)}));
    }
    let mut new_config = p.config.clone();
    let changes = config::edit(
        &mut new_config,
        &config_edit(ctx, &p.manifest, &p.fs, &p.user, &p.summary, &p.created, Some(diff_ids)),
    )?;
    let config_bytes = serde_json::to_vec(&new_config)?;
    let config_digest = Digest::of(&config_bytes);
    manifest_json["config"]["digest"] = json!(config_digest.as_str());
    manifest_json["config"]["size"] = json!(config_bytes.len());
    if !view.docker {
        let ann = manifest_json
            .as_object_mut()
            .expect("manifest is an object")
            .entry("annotations")
            .or_insert_with(|| json!({}));
        if let Some(a) = ann.as_object_mut() {
            match o.base_name() {
                Some(n) => a.insert("org.opencontainers.image.base.name".into(), json!(n)),
                None => a.remove("org.opencontainers.image.base.name"),
            };
            a.insert("org.opencontainers.image.base.digest".into(), json!(p.manifest.digest.as_str()));
            for k in &ctx.profile.config.remove_annotations {
                a.remove(k);
            }
            for (k, v) in &ctx.profile.config.annotations {
                a.insert(k.clone(), json!(v));
            }
        }
    }
    let manifest_bytes = serde_json::to_vec(&manifest_json)?;
    let result = Manifest {
        digest: Digest::of(&manifest_bytes),
        bytes: manifest_bytes,
        media_type: p.manifest.media_type.clone(),
    };

    // Push: blobs first, each confirmed; the manifest last.
    let t2 = Instant::now();
    let (src, dst) = (&ctx.src, &ctx.dst);
    stream::iter(view.layers.iter().zip(&rewrites).zip(&p.blobs))
        .map(|((layer, rw), input)| async move {
            let (digest, size, path) = match rw {
                Some(r) => (r.rw.digest.clone(), r.rw.size, r.blob.clone()),
                None => (layer.digest.clone(), layer.size, input.clone()),
            };
            if dst.has_blob(&digest).await? {
                o.progress.line(&format!("blob {} already present", digest.short()));
                return Ok(());
            }
            if rw.is_none() && dst.mount_from(src, &digest).await && dst.has_blob(&digest).await? {
                o.progress.line(&format!("mounted blob {}", digest.short()));
                return Ok(());
            }
            dst.put_blob(&digest, size, &path).await?;
            o.progress.line(&format!("pushed blob {} ({})", digest.short(), human(size)));
            Ok::<_, anyhow::Error>(())
        })
        .buffer_unordered(o.jobs.max(1))
        .try_collect::<Vec<_>>()
        .await?;
    if let Some(ul) = &p.user.layer {
        if !dst.has_blob(&ul.digest).await? {
            dst.put_blob_bytes(&ul.digest, &ul.blob).await?;
        }
    }
    if !dst.has_blob(&config_digest).await? {
        dst.put_blob_bytes(&config_digest, &config_bytes).await?;
    }
    let mut all: Vec<Digest> = rewrites
        .iter()
        .zip(&view.layers)
        .map(|(rw, l)| rw.as_ref().map(|r| r.rw.digest.clone()).unwrap_or_else(|| l.digest.clone()))
        .collect();
    all.extend(p.user.layer.as_ref().map(|u| u.digest.clone()));
    all.push(config_digest.clone());
    for d in &all {
        if !dst.has_blob(d).await? {
            bail!("{}: blob {d} is not present after upload; manifest not pushed", o.dst);
        }
    }
    let push_ref = tag.cloned().unwrap_or_else(|| o.dst.with_digest(&result.digest).without_tag());
    dst.put_manifest(&push_ref, &result).await?;
    let t_push = t2.elapsed();

    p.findings.name_after_layers(&manifest_json["layers"]);
    p.report["findings"] = p.findings.to_json();
    p.report["result"] = json!({"digest": result.digest.as_str(), "config_digest": config_digest.as_str()});
    p.report["layers"] = json!(layer_reports);
    p.report["config_changes"] = serde_json::to_value(&changes)?;
    p.report["timings_ms"] = json!({"scan": p.t_scan.as_millis() as u64, "rewrite": t_rewrite.as_millis() as u64, "push": t_push.as_millis() as u64});
    o.progress.line(&p.summary);
    Ok((result, p.report))
}

/// Which index entries to rebuild: images of the chosen platforms, attestations dropped.
fn select_platforms(index: &Value, wanted: &[String], progress: &Progress) -> Result<Vec<usize>> {
    let entries = index["manifests"].as_array().ok_or_else(|| anyhow!("index has no manifests list"))?;
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let os = e["platform"]["os"].as_str().unwrap_or("unknown");
        let arch = e["platform"]["architecture"].as_str().unwrap_or("unknown");
        let variant = e["platform"]["variant"].as_str();
        let name = match variant {
            Some(v) => format!("{os}/{arch}/{v}"),
            None => format!("{os}/{arch}"),
        };
        if image::is_attestation(e) {
            progress.line(&format!(
                "note: dropping attestation manifest {} (it describes the source's digests)",
                e["digest"].as_str().unwrap_or("?")
            ));
            continue;
        }
        let mt = e["mediaType"].as_str().unwrap_or_default();
        if image::is_index(mt) {
            bail!("index entry {i} ({name}) is itself an index; nested indexes are not supported");
        }
        if wanted.is_empty() || wanted.iter().any(|w| *w == name || (variant.is_some() && *w == format!("{os}/{arch}")))
        {
            out.push(i);
        }
    }
    if out.is_empty() {
        bail!(Failure::Usage(format!("no platform of the index matches --platform {}", wanted.join(", "))));
    }
    Ok(out)
}

/// Rebuild `o.src` into `o.dst`; returns the result by digest (empty for a dry run) and the report.
pub async fn rebuild(o: &RebuildOptions) -> Result<(String, Value)> {
    let t0 = Instant::now();
    let profile: Profile = profile::load(&o.profiles).map_err(|e| Failure::Usage(e.to_string()))?;
    let share = match &o.scans {
        Some(s) => Arc::clone(s),
        None => Arc::new(ScanShare::new()?),
    };
    let cache = match &o.cache {
        Some(c) => Arc::clone(c),
        None => Arc::new(RewriteCache::new(None)?),
    };
    let ctx =
        Ctx { o, src: Endpoint::open(&o.src, &o.net)?, dst: Endpoint::open(&o.dst, &o.net)?, profile, share, cache };
    let top = ctx.src.manifest(&o.src).await?;
    let write_report = |report: &Value| -> Result<()> {
        if let Some(p) = &o.report {
            crate::transport::layout::write_atomic(p, &serde_json::to_vec_pretty(report)?)
                .with_context(|| format!("--report {}", p.display()))?;
        }
        Ok(())
    };
    let mut report = json!({
        "harden_version": env!("CARGO_PKG_VERSION"),
        "source": {"reference": o.src.to_string(), "digest": top.digest.as_str()},
        "profile": {"name": ctx.profile.name(), "digest": ctx.profile.digest().as_str()},
        "compression": o.codec.to_string(),
        "splice": !o.recompress,
    });

    // Plan every image before rewriting any: a refusal leaves nothing pushed.
    let (index, chosen, images) = if image::is_index(&top.media_type) {
        let index: Value =
            serde_json::from_slice(&top.bytes).map_err(|e| anyhow!("{}: index is not JSON: {e}", o.src))?;
        let chosen = select_platforms(&index, &o.platforms, &o.progress)?;
        let mut images = Vec::new();
        for &i in &chosen {
            let d = Digest::parse(index["manifests"][i]["digest"].as_str().unwrap_or(""))
                .map_err(|e| anyhow!("{}: index entry {i}: {e}", o.src))?;
            if d == top.digest {
                bail!("{}: index entry {i} points at the index itself", o.src);
            }
            let r = o.src.with_digest(&d);
            let m = ctx.src.manifest(&r).await?;
            images.push(prepare(&ctx, r, m).await?);
        }
        (Some(index), chosen, images)
    } else {
        (None, Vec::new(), vec![prepare(&ctx, o.src.clone(), top.clone()).await?])
    };
    let broken: Vec<String> = images.iter().flat_map(|p| p.broken.clone()).collect();
    // Where a completed run's report has them: per-image reports under `images` for an index;
    // plan, guard and findings at the top for one image.
    let add_reports = |report: &mut Value, images: &[Prepared]| {
        if index.is_some() {
            report["images"] = json!(images.iter().map(|p| p.report.clone()).collect::<Vec<_>>());
        } else if let Value::Object(m) = &images[0].report {
            for (k, v) in m.iter().filter(|(k, _)| *k != "source") {
                report[k.as_str()] = v.clone();
            }
        }
    };
    if o.dry_run {
        for p in &images {
            if index.is_some() {
                println!("{}:", p.src_ref);
            }
            print_plan(p);
        }
        add_reports(&mut report, &images);
        write_report(&report)?;
        if !broken.is_empty() && !o.allow_broken {
            bail!(Failure::Policy(format!("the plan would break the image: {}", broken[0])));
        }
        return Ok((String::new(), report));
    }
    if !broken.is_empty() {
        for b in &broken {
            o.progress.line(&format!("guard: {b}"));
        }
        if !o.allow_broken {
            add_reports(&mut report, &images);
            write_report(&report)?;
            bail!(Failure::Policy(format!(
                "refusing to produce an image that cannot start: {} (--allow-broken overrides)",
                broken[0]
            )));
        }
    }

    let (result, details) = match index {
        None => {
            let p = images.into_iter().next().ok_or_else(|| anyhow!("no image to rebuild"))?;
            execute(&ctx, p, Some(&o.dst)).await?
        }
        Some(mut index) => {
            let mut per = Vec::new();
            let mut new_entries = Vec::new();
            for (p, &i) in images.into_iter().zip(&chosen) {
                let (m, r) = execute(&ctx, p, None).await?;
                let mut e = index["manifests"][i].clone();
                e["digest"] = json!(m.digest.as_str());
                e["size"] = json!(m.bytes.len());
                e["mediaType"] = json!(m.media_type);
                new_entries.push(e);
                per.push(r);
            }
            index["manifests"] = json!(new_entries);
            let bytes = serde_json::to_vec(&index)?;
            let m = Manifest { digest: Digest::of(&bytes), bytes, media_type: top.media_type.clone() };
            ctx.dst.put_manifest(&o.dst, &m).await?;
            (m, json!(per))
        }
    };

    let line = o.dst.by_digest(&result.digest);
    if let Some(p) = &o.digest_file {
        crate::transport::layout::write_atomic(p, format!("{}\n", result.digest).as_bytes())
            .with_context(|| format!("--digest-file {}", p.display()))?;
    }
    if image::is_index(&result.media_type) {
        report["images"] = details;
    } else if let Value::Object(m) = details {
        for (k, v) in m {
            if k != "source" {
                report[k] = v;
            }
        }
    }
    report["result"]["reference"] = json!(line);
    report["result"]["digest"] = json!(result.digest.as_str());
    if let Some(key) = &o.sign_key {
        let signed = if image::is_index(&result.media_type) {
            crate::signing::sign(&ctx.dst, &o.dst.with_digest(&result.digest), key, &Default::default(), &o.progress)
                .await
                .map(|v| v.into_iter().last())
        } else {
            crate::signing::sign_digest(&ctx.dst, &o.dst, &result.digest, key, &Default::default(), &o.progress)
                .await
                .map(Some)
        };
        match signed {
            Ok(Some(s)) => {
                report["signature"] = json!({"tag": s.tag, "manifest_digest": s.manifest_digest.as_str(), "payload_digest": s.payload_digest.as_str(), "added": s.added})
            }
            Ok(None) => {}
            Err(e) => {
                write_report(&report)?;
                return Err(e.context(format!("{line} was pushed, but signing it failed")));
            }
        }
    }
    report["timings_ms"]["total"] = json!(t0.elapsed().as_millis() as u64);
    write_report(&report)?;
    Ok((line, report))
}
