//! Rebuilding one image manifest once it is [`Prepared`]: rewrite the layers the plan changes
//! (through the rewrite cache; into a registry each rewritten layer goes up as it is written),
//! build the new config and manifest, push (blobs first and confirmed, the manifest last). An
//! index runs this once per platform ([`super::index`]).
//!
//! Owns: the new manifest's layer descriptors and annotations, the per-layer report. Must not:
//! decide what changes (that is the plan's) or how a push is ordered (that is
//! [`crate::transport::push`]'s).

use super::{Ctx, Prepared};
use crate::cache::{RewriteCache, Rewritten};
use crate::config;
use crate::digest::Digest;
use crate::image::LayerDesc;
use crate::plan::LayerPlan;
use crate::progress::human;
use crate::reference::ImageRef;
use crate::report::{ImageReport, LayerAction, LayerReport, ResultRef, Timings};
use crate::rewrite::{self, LayerRewrite};
use crate::shared_cache::Lookup;
use crate::transport::follow;
use crate::transport::push::{Blob, Push};
use crate::transport::Manifest;
use anyhow::{anyhow, Result};
use futures_util::{stream, StreamExt, TryStreamExt};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;

/// A pushed image and its finished report.
pub struct Done {
    pub manifest: Manifest,
    pub report: ImageReport,
    /// The result's runtime contract (also its `dev.harden.contract` annotation, OCI only).
    pub contract: crate::contract::Contract,
}

/// The result built, not yet pushed: its manifest (as JSON and stored), its config, and what
/// the report says of its layers and config.
struct Built {
    manifest_json: Value,
    manifest: Manifest,
    config: Value,
    config_bytes: Vec<u8>,
    config_digest: Digest,
    changes: crate::config::ConfigChanges,
    layers: Vec<LayerReport>,
}

/// Rewrite, edit, push. The manifest is stored under `tag`, or by digest only when the image
/// is one platform of an index.
pub async fn execute(ctx: &Ctx<'_>, mut p: Prepared, tag: Option<&ImageRef>) -> Result<Done> {
    // The contract was derived in prepare, from the predicted filesystem and config; a config
    // edit that refused there fails here, before anything is rewritten.
    let contract = std::mem::replace(&mut p.contract, Err(anyhow!("the contract was taken")))?;
    let layer_facts = drop_scan(&mut p);
    let converted = to_oci_where_needed(ctx, &mut p)?;

    let t1 = Instant::now();
    let rewrites = rewrite_layers(ctx, &p).await?;
    let t_rewrite = t1.elapsed();
    let built = build(ctx, &p, &layer_facts, &rewrites, &contract)?;

    // Before anything is pushed: does the result start where the source does?
    let verify_run = match ctx.o.verify_run {
        true => verify_run(ctx, &p, &rewrites, &built, &contract).await?,
        false => None,
    };
    let t2 = Instant::now();
    push(ctx, &p, &rewrites, &built, tag).await?;
    let t_push = t2.elapsed();

    p.findings.name_after_layers(&built.manifest_json["layers"]);
    let mut report = p.report;
    report.findings = (&p.findings).into();
    report.result = Some(ResultRef {
        digest: built.manifest.digest.to_string(),
        config_digest: Some(built.config_digest.to_string()),
        reference: None,
        converted_to_oci: converted,
    });
    report.layers = Some(built.layers);
    report.verify_run = verify_run;
    report.config_changes = Some(built.changes);
    report.timings_ms = Some(Timings {
        scan: Some(p.t_scan.as_millis() as u64),
        rewrite: Some(t_rewrite.as_millis() as u64),
        push: Some(t_push.as_millis() as u64),
        total: None,
    });
    ctx.o.progress.line(&p.edit.summary);
    Ok(Done { manifest: built.manifest, report, contract })
}

/// An OCI layout holds OCI media types only (containers/image finds a tag among those): a
/// Docker schema 2 source becomes an OCI manifest, its layers OCI layers, before the rewrite
/// (so the new descriptors are written as OCI ones). What changed, for the report.
fn to_oci_where_needed(ctx: &Ctx<'_>, p: &mut Prepared) -> Result<Option<crate::report::Conversion>> {
    if !(ctx.dst.holds_oci_only() && p.view.docker) {
        return Ok(None);
    }
    p.view.json = crate::image::docker_manifest_to_oci(&p.view.json).map_err(|e| anyhow!("{}: {e}", ctx.dst_ref))?;
    p.view.docker = false;
    Ok(Some(crate::report::Conversion {
        from: p.manifest.media_type.clone(),
        to: crate::image::OCI_MANIFEST.to_string(),
    }))
}

/// Drop the scan's index before the rewrite, keeping what the report needs of each layer: the
/// layers stream through with only the plan in memory (with the index, the 1 GiB strict
/// rebuild peaked at the index plus the rewrite's buffers).
fn drop_scan(p: &mut Prepared) -> Vec<LayerFacts> {
    let facts =
        p.fs.layers
            .iter()
            .map(|l| LayerFacts { codec: l.codec, diff_id: l.diff_id.clone(), uncompressed_size: l.uncompressed_size })
            .collect();
    p.fs = crate::fs::FinalFs::build(Vec::<crate::scan::LayerIndex>::new());
    crate::memory::give_back();
    facts
}

/// The new manifest and config: the layers' descriptors and diff_ids, the config edit with
/// them, the manifest's annotations.
fn build(
    ctx: &Ctx<'_>,
    p: &Prepared,
    facts: &[LayerFacts],
    rewrites: &[Option<Rewritten>],
    contract: &crate::contract::Contract,
) -> Result<Built> {
    let (manifest_json, diff_ids, layers) = new_layers(ctx, p, facts, rewrites)?;
    let mut config = p.config.clone();
    let changes = config::edit(&mut config, &p.edit.edit(ctx, Some(diff_ids)))?;
    let config_bytes = serde_json::to_vec(&config)?;
    let config_digest = Digest::of(&config_bytes);
    let manifest_json = finish_manifest(ctx, p, manifest_json, (&config_digest, config_bytes.len()), contract)?;
    let manifest_bytes = serde_json::to_vec(&manifest_json)?;
    let manifest = Manifest {
        digest: Digest::of(&manifest_bytes),
        bytes: manifest_bytes,
        // The source's, or OCI's when it was converted ([`to_oci_where_needed`]).
        media_type: manifest_json["mediaType"].as_str().unwrap_or(&p.manifest.media_type).to_string(),
    };
    Ok(Built { manifest_json, manifest, config, config_bytes, config_digest, changes, layers })
}

/// Push the layers (unchanged ones mountable from the source), the user layer, the config;
/// then the manifest.
async fn push(
    ctx: &Ctx<'_>,
    p: &Prepared,
    rewrites: &[Option<Rewritten>],
    built: &Built,
    tag: Option<&ImageRef>,
) -> Result<()> {
    let mut blobs: Vec<Blob> = p
        .view
        .layers
        .iter()
        .zip(rewrites)
        .map(|(layer, rw)| match (rw, ctx.share.local(&layer.digest)) {
            (Some(r), _) => Blob::file(r.rw.digest.clone(), r.rw.size, r.blob.clone()),
            (None, Some(input)) => Blob { mountable: true, ..Blob::file(layer.digest.clone(), layer.size, input) },
            // Known from the scan cache and never fetched: fetched only if it must be uploaded.
            (None, None) => Blob::at_source(layer.digest.clone(), layer.size, ctx.share.spool.path().to_path_buf()),
        })
        .collect();
    if let Some(ul) = &p.user.layer {
        blobs.push(Blob::bytes(ul.digest.clone(), ul.blob.clone()));
    }
    blobs.push(Blob::bytes(built.config_digest.clone(), built.config_bytes.clone()));
    let push_ref = tag.cloned().unwrap_or_else(|| ctx.dst_ref.with_digest(&built.manifest.digest).without_tag());
    let push = Push {
        dst: &ctx.dst,
        mount_from: Some(&ctx.src),
        locations: Some(&ctx.locations),
        jobs: ctx.o.jobs,
        progress: &ctx.o.progress,
    };
    push.push(&blobs, &push_ref, &built.manifest, "manifest").await
}

/// `--verify-run`: the source and the result run under runc and probed the same way
/// ([`crate::verify_run`]). The source passing and the result failing refuses (exit 3) before
/// anything is pushed; the source failing is said, and the rebuild goes on. An image of
/// another architecture than the host's is not run (said).
async fn verify_run(
    ctx: &Ctx<'_>,
    p: &Prepared,
    rewrites: &[Option<Rewritten>],
    built: &Built,
    contract: &crate::contract::Contract,
) -> Result<Option<crate::verify_run::Verdict>> {
    use crate::verify_run as vr;
    let o = ctx.o;
    let arch = p.config["architecture"].as_str().unwrap_or("");
    if !arch.is_empty() && arch != vr::host_architecture() {
        o.progress.line(&format!(
            "verify-run: {} is {arch}, this host {}: not run",
            p.src_ref,
            vr::host_architecture()
        ));
        return Ok(None);
    }
    let (source, result) = run_images(ctx, p, rewrites, built).await?;
    let volumes = crate::contract::persistent_volumes(&built.config);
    let rules = ctx.profile.verify.clone();
    let dir = ctx.share.spool.path().join(format!("verify-{}", p.manifest.digest.short()));
    o.progress.line(&format!("verify-run: running the source and the result under runc ({})", p.src_ref));
    let (c, d) = (contract.clone(), dir.clone());
    let verdict = tokio::task::spawn_blocking(move || {
        vr::verify(&d, &source, &result, &vr::bundle::How::Contract { contract: &c, volumes: &volumes }, &rules)
    })
    .await??;
    let _ = std::fs::remove_dir_all(&dir);
    let say = |who: &str, v: &vr::RunVerdict| {
        o.progress.line(&format!("verify-run: {who} {}: {}", if v.passed { "passes" } else { "fails" }, v.detail))
    };
    say("source", &verdict.source);
    say("result", &verdict.result);
    if !verdict.source.passed {
        o.progress.line(&format!(
            "verify-run: the source itself fails {} — the result is not held to it; going on",
            verdict.probe
        ));
    }
    if verdict.refuses() {
        for l in &verdict.result.last_lines {
            o.progress.line(&format!("verify-run: result | {l}"));
        }
        let last = verdict.result.last_lines.iter().rev().find(|l| !l.trim().is_empty()).cloned().unwrap_or_default();
        return Err(crate::Failure::Policy(format!(
            "--verify-run: the source passes {} and the result does not ({}){}; nothing was pushed",
            verdict.probe,
            verdict.result.detail,
            if last.is_empty() { String::new() } else { format!("; its last line: {last}") }
        ))
        .into());
    }
    Ok(Some(verdict))
}

/// The source and the result as `--verify-run` runs them: configs and layer files.
async fn run_images(
    ctx: &Ctx<'_>,
    p: &Prepared,
    rewrites: &[Option<Rewritten>],
    built: &Built,
) -> Result<(crate::verify_run::Image, crate::verify_run::Image)> {
    use crate::verify_run::{Bytes, Image, Layer};
    let media_type = |i: usize| built.manifest_json["layers"][i]["mediaType"].as_str().unwrap_or_default().to_string();
    let mut source = Image { config: serde_json::to_vec(&p.config)?, layers: Vec::new() };
    let mut result = Image { config: built.config_bytes.clone(), layers: Vec::new() };
    for (i, (layer, rw)) in p.view.layers.iter().zip(rewrites).enumerate() {
        let input = ctx.share.blob(&ctx.src, layer).await?;
        let src = |path: std::path::PathBuf| Layer {
            media_type: layer.media_type.clone(),
            digest: layer.digest.clone(),
            size: layer.size,
            bytes: Bytes::File(path),
        };
        source.layers.push(src(input.clone()));
        result.layers.push(match rw {
            Some(r) => Layer {
                media_type: media_type(i),
                digest: r.rw.digest.clone(),
                size: r.rw.size,
                bytes: Bytes::File(r.blob.clone()),
            },
            None => src(input),
        });
    }
    if let Some(ul) = &p.user.layer {
        result.layers.push(Layer {
            media_type: media_type(p.view.layers.len()),
            digest: ul.digest.clone(),
            size: ul.blob.len() as u64,
            bytes: Bytes::Memory(ul.blob.clone()),
        });
    }
    Ok((source, result))
}

/// Rewrite every layer the plan changes (at most `jobs` at once), each through the cache;
/// None for an unchanged layer.
async fn rewrite_layers(ctx: &Ctx<'_>, p: &Prepared) -> Result<Vec<Option<Rewritten>>> {
    let o = ctx.o;
    let n = p.view.layers.len();
    // The budget is shared by the layers rewritten at once: no more of them than change.
    let changing = p.plan.layers.iter().filter(|l| !l.is_unchanged()).count();
    let workers = o.cpu.layer_workers(o.jobs.min(changing).max(1));
    stream::iter(p.view.layers.iter().zip(&p.plan.layers).enumerate())
        .map(|(i, (layer, lp))| async move {
            if lp.is_unchanged() {
                return Ok(None);
            }
            let r = rewrite_one(ctx, p, layer, lp, workers).await?;
            o.progress.line(&format!(
                "{} layer {}/{n} {} → {} ({} → {}, {} removed, {} changed{})",
                match (r.cached, r.shared) {
                    (true, _) => "cached",
                    (false, true) => "shared",
                    (false, false) => "rewrote",
                },
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
        .await
}

/// One changed layer through the rewrite cache: found there, else another pod's rewrite when
/// the shared cache has it (verified there), else rewritten here (and shared).
async fn rewrite_one(
    ctx: &Ctx<'_>,
    p: &Prepared,
    layer: &LayerDesc,
    lp: &LayerPlan,
    workers: usize,
) -> Result<Rewritten> {
    let o = ctx.o;
    let key = RewriteCache::key(&layer.digest, lp, o.codec, !o.recompress);
    let media_type = p.view.layer_media_type(o.codec);
    let k = key.clone();
    ctx.cache
        .get_or_rewrite(&key, || async move {
            if let Some(shared) = &ctx.shared {
                if let Lookup::Found(f) = shared.lookup(&k, ctx.share.spool.path(), &o.limits).await {
                    if let Some((registry, repository)) = shared.registry_repository() {
                        ctx.locations.note(registry, repository, &f.rw.digest);
                    }
                    return Ok((f.blob, f.rw, true));
                }
            }
            let spooled = ctx.share.spool.path().join(format!("out-{k}"));
            let rewritten = rewrite_here(ctx, layer, lp, &spooled, workers).await;
            match (&ctx.shared, &rewritten) {
                (Some(shared), Ok(rw)) => {
                    let layer = crate::shared_cache::SpooledLayer { blob: &spooled, rw, media_type: &media_type };
                    shared.publish(&k, layer, &ctx.locations).await
                }
                (Some(shared), Err(_)) => shared.release(&k).await,
                (None, _) => {}
            }
            Ok((spooled, rewritten?, false))
        })
        .await
}

/// Rewrite one layer into `out` on a blocking thread. Only a rewrite reads the input: a layer
/// known from the scan cache is fetched here. Into a registry, when nothing waits for a later
/// verdict (a dry run, `--verify-run`), the output is uploaded while it is written
/// ([`stream_up`]); the push finds it there.
async fn rewrite_here(
    ctx: &Ctx<'_>,
    layer: &LayerDesc,
    lp: &LayerPlan,
    out: &std::path::Path,
    workers: usize,
) -> Result<LayerRewrite> {
    let o = ctx.o;
    let input = ctx.share.blob(&ctx.src, layer).await?;
    let (out, lp, codec, splice, limits) =
        (out.to_path_buf(), Arc::new(lp.clone()), o.codec, !o.recompress, o.limits.clone());
    let bar = o.progress.transfer("rewrite", layer.digest.short(), layer.size);
    let streamed = !o.dry_run && !o.verify_run && ctx.dst.is_registry();
    let (tap, follow) = follow::tap_growing(format!("rewrite of layer {}", layer.digest));
    let rewrite = tokio::task::spawn_blocking(move || -> std::io::Result<LayerRewrite> {
        let file = std::fs::File::open(&input)?;
        let r: Arc<dyn crate::layer::splice::ReadAt> = Arc::new(Watched { file, bar });
        // Created (truncated) again if a splice has to be redone: its followers start over.
        let mut begun = false;
        let mut open_out = || {
            if std::mem::replace(&mut begun, true) {
                tap.void();
            }
            let file = std::fs::File::create(&out)?;
            tap.begin(&out)?;
            Ok(std::io::BufWriter::with_capacity(1 << 20, Published { file, tap: &tap }))
        };
        let settings = rewrite::Settings { codec, splice, workers };
        let done = rewrite::rewrite_layer(r, &mut open_out, &lp, settings, &limits).and_then(|(mut w, rw)| {
            std::io::Write::flush(&mut w)?;
            Ok(rw)
        });
        match &done {
            // Every byte is published (flushed through `Published`): the followers may end,
            // and the upload commits them under the digest the rewrite computed.
            Ok(rw) => tap.complete(rw.digest.clone(), rw.size),
            Err(e) => tap.failed(&anyhow!("{e}")),
        }
        done
    });
    let (rewritten, uploaded) = tokio::join!(
        async { rewrite.await?.map_err(|e| anyhow!("layer {}: rewrite failed: {e}", layer.digest)) },
        async {
            match streamed {
                true => Some(
                    ctx.dst
                        .put_blob_growing(&follow, &format!("layer {} as rewritten", layer.digest.short()), layer.size)
                        .await,
                ),
                false => None,
            }
        }
    );
    let rw = rewritten?;
    stream_up(ctx, layer, uploaded);
    Ok(rw)
}

/// What came of a rewritten layer's upload while it was written: the registry holds it under
/// the rewrite's digest (the push finds it held), or the push uploads it from the spool file
/// as any blob (said here, with why).
fn stream_up(ctx: &Ctx<'_>, layer: &LayerDesc, uploaded: Option<Result<()>>) {
    let why = match uploaded {
        None | Some(Ok(())) => return,
        Some(Err(e)) => format!("{e:#}"),
    };
    let first = why.lines().next().unwrap_or("");
    ctx.o.progress.line(&format!(
        "upload of layer {} as it was rewritten did not finish ({first}): it goes up with the push",
        layer.digest.short()
    ));
}

/// The rewrite's output file, telling its followers of every byte once it is in the file.
struct Published<'a> {
    file: std::fs::File,
    tap: &'a follow::Tap,
}

impl std::io::Write for Published<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.tap.wrote(n as u64);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// A rewrite's input, moving its progress bar to the furthest byte read (a splice that is
/// redone reads again).
struct Watched {
    file: std::fs::File,
    bar: crate::progress::Transfer,
}

impl crate::layer::splice::ReadAt for Watched {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        let n = crate::layer::splice::ReadAt::read_at(&self.file, buf, offset)?;
        self.bar.reach(offset + n as u64);
        Ok(n)
    }
}

/// What the report needs of each source layer's scan, kept when the index is dropped.
struct LayerFacts {
    codec: crate::layer::codec::Codec,
    diff_id: Digest,
    uncompressed_size: u64,
}

/// The manifest with its layer descriptors updated (and the user layer appended), the
/// result's diff_ids, and the per-layer report.
fn new_layers(
    ctx: &Ctx<'_>,
    p: &Prepared,
    facts: &[LayerFacts],
    rewrites: &[Option<Rewritten>],
) -> Result<(Value, Vec<Digest>, Vec<LayerReport>)> {
    let codec = ctx.o.codec;
    let view = &p.view;
    let mut manifest_json = view.json.clone();
    let mut diff_ids = Vec::new();
    let mut reports = Vec::new();
    for (i, (layer, rw)) in view.layers.iter().zip(rewrites).enumerate() {
        let idx = facts.get(i).ok_or_else(|| anyhow!("layer {i}: no scan"))?;
        let scan = if ctx.share.from_cache(&layer.digest) { "scan-cache" } else { "scanned" };
        let mut report = LayerReport {
            input_digest: Some(layer.digest.to_string()),
            output_digest: layer.digest.to_string(),
            action: LayerAction::Reused,
            input_codec: Some(format!("{:?}", idx.codec).to_lowercase()),
            uncompressed_bytes: Some(idx.uncompressed_size),
            scan: Some(scan),
            bytes_in: layer.size,
            bytes_out: layer.size,
            entries_removed: Some(0),
            entries_changed: Some(0),
            bytes_spliced: None,
            dropped_annotations: None,
            purpose: None,
        };
        match rw {
            Some(r) => {
                let d = &mut manifest_json["layers"][i];
                d["mediaType"] = json!(view.layer_media_type(codec));
                d["digest"] = json!(r.rw.digest.as_str());
                d["size"] = json!(r.rw.size);
                // Lazy-pull TOC annotations describe the source blob (unchanged layers keep theirs).
                report.dropped_annotations = Some(crate::image::drop_lazy_pull_annotations(d));
                diff_ids.push(r.rw.diff_id.clone());
                rewritten(&mut report, r);
            }
            None => diff_ids.push(idx.diff_id.clone()),
        }
        reports.push(report);
    }
    if let Some(ul) = &p.user.layer {
        diff_ids.push(ul.diff_id.clone());
        let layers = manifest_json["layers"].as_array_mut().ok_or_else(|| anyhow!("manifest has no layers list"))?;
        layers.push(
            json!({"mediaType": view.layer_media_type(codec), "digest": ul.digest.as_str(), "size": ul.blob.len()}),
        );
        reports.push(added(ul));
    }
    Ok((manifest_json, diff_ids, reports))
}

/// The report of the layer that adds the user.
fn added(ul: &config::UserLayer) -> LayerReport {
    LayerReport {
        input_digest: None,
        output_digest: ul.digest.to_string(),
        action: LayerAction::Added,
        input_codec: None,
        uncompressed_bytes: None,
        scan: None,
        bytes_in: 0,
        bytes_out: ul.blob.len() as u64,
        entries_removed: None,
        entries_changed: None,
        bytes_spliced: None,
        dropped_annotations: None,
        purpose: Some(format!("adds user {}", ul.name)),
    }
}

/// A reused layer's report made the report of its rewrite `r`.
fn rewritten(report: &mut LayerReport, r: &Rewritten) {
    report.output_digest = r.rw.digest.to_string();
    report.action = match (r.cached, r.shared) {
        (true, _) => LayerAction::RewrittenCached,
        (false, true) => LayerAction::RewrittenShared,
        (false, false) => LayerAction::Rewritten,
    };
    report.bytes_out = r.rw.size;
    report.entries_removed = Some(r.rw.stats.removed);
    report.entries_changed = Some(r.rw.stats.changed);
    report.bytes_spliced = Some(r.rw.stats.copied);
}

/// Point the manifest at the new config (its digest and size) and set its annotations (OCI manifests only: Docker
/// schema 2 has none): the base image's name and digest, the runtime contract, then the
/// profile's removals and values.
fn finish_manifest(
    ctx: &Ctx<'_>,
    p: &Prepared,
    mut manifest: Value,
    (config_digest, config_len): (&Digest, usize),
    contract: &crate::contract::Contract,
) -> Result<Value> {
    manifest["config"]["digest"] = json!(config_digest.as_str());
    manifest["config"]["size"] = json!(config_len);
    if p.view.docker {
        return Ok(manifest);
    }
    let obj = manifest.as_object_mut().ok_or_else(|| anyhow!("{}: manifest is not a JSON object", p.src_ref))?;
    if let Some(a) = obj.entry("annotations").or_insert_with(|| json!({})).as_object_mut() {
        match super::base_name(ctx.src_ref, ctx.o) {
            Some(n) => a.insert("org.opencontainers.image.base.name".into(), json!(n)),
            None => a.remove("org.opencontainers.image.base.name"),
        };
        a.insert("org.opencontainers.image.base.digest".into(), json!(p.manifest.digest.as_str()));
        // For admission tooling: how to run it, without the contract file.
        a.insert(crate::contract::ANNOTATION.into(), json!(contract.to_json_compact()));
        for k in &ctx.profile.config.remove_annotations {
            a.remove(k);
        }
        for (k, v) in &ctx.profile.config.annotations {
            a.insert(k.clone(), json!(v));
        }
    }
    Ok(manifest)
}
