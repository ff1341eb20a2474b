//! Rebuilding one image manifest once it is [`Prepared`]: rewrite the layers the plan changes
//! (through the rewrite cache), build the new config and manifest, push (blobs first, the
//! manifest last). An index runs this once per platform ([`super::index`]).
//!
//! Owns: the new manifest's layer descriptors and annotations, the per-layer report. Must not:
//! decide what changes (that is the plan's) or how a push is ordered (that is
//! [`crate::transport::push`]'s).

use super::{Ctx, Prepared};
use crate::cache::{RewriteCache, Rewritten};
use crate::config;
use crate::digest::Digest;
use crate::progress::human;
use crate::reference::ImageRef;
use crate::report::{ImageReport, LayerAction, LayerReport, ResultRef, Timings};
use crate::rewrite::{self, LayerRewrite};
use crate::shared_cache::Lookup;
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

/// Rewrite, edit, push. The manifest is stored under `tag`, or by digest only when the image
/// is one platform of an index.
pub async fn execute(ctx: &Ctx<'_>, mut p: Prepared, tag: Option<&ImageRef>) -> Result<Done> {
    // The contract was derived in prepare, from the predicted filesystem and config.
    let contract = match p.contract.take() {
        Some(c) => c,
        None => {
            let mut predicted = p.config.clone();
            config::edit(
                &mut predicted,
                &super::prepare::config_edit(ctx, &p.manifest, &p.fs, &p.user, &p.summary, &p.created, None),
            )?;
            return Err(anyhow!("{}: no runtime contract could be derived", p.src_ref));
        }
    };
    // The scan's index goes before the rewrite: the layers stream through with only the plan
    // in memory (with the index, the 1 GiB strict rebuild peaked at the index plus the
    // rewrite's buffers).
    let layer_facts: Vec<LayerFacts> =
        p.fs.layers
            .iter()
            .map(|l| LayerFacts { codec: l.codec, diff_id: l.diff_id.clone(), uncompressed_size: l.uncompressed_size })
            .collect();
    p.fs = crate::fs::FinalFs::build(Vec::<crate::scan::LayerIndex>::new());
    crate::memory::give_back();

    // An OCI layout holds OCI media types only (containers/image finds a tag among those): a
    // Docker schema 2 source becomes an OCI manifest, its rewritten layers OCI layers.
    let converted = match ctx.dst.holds_oci_only() && p.view.docker {
        true => {
            p.view.json =
                crate::image::docker_manifest_to_oci(&p.view.json).map_err(|e| anyhow!("{}: {e}", ctx.dst_ref))?;
            p.view.docker = false;
            Some(crate::report::Conversion {
                from: p.manifest.media_type.clone(),
                to: crate::image::OCI_MANIFEST.to_string(),
            })
        }
        false => None,
    };

    let t1 = Instant::now();
    let rewrites = rewrite_layers(ctx, &p).await?;
    let t_rewrite = t1.elapsed();

    let (manifest_json, diff_ids, layer_reports) = new_layers(ctx, &p, &layer_facts, &rewrites)?;
    let mut new_config = p.config.clone();
    let changes = config::edit(
        &mut new_config,
        &super::prepare::config_edit(ctx, &p.manifest, &p.fs, &p.user, &p.summary, &p.created, Some(diff_ids)),
    )?;
    let config_bytes = serde_json::to_vec(&new_config)?;
    let config_digest = Digest::of(&config_bytes);
    let manifest_json = finish_manifest(ctx, &p, manifest_json, &config_digest, config_bytes.len(), &contract)?;
    let manifest_bytes = serde_json::to_vec(&manifest_json)?;
    let result = Manifest {
        digest: Digest::of(&manifest_bytes),
        bytes: manifest_bytes,
        media_type: match converted {
            Some(_) => crate::image::OCI_MANIFEST.to_string(),
            None => p.manifest.media_type.clone(),
        },
    };

    // Before anything is pushed: does the result start where the source does?
    let verify_run = match ctx.o.verify_run {
        true => verify_run(ctx, &p, &rewrites, &manifest_json, &config_bytes, &new_config, &contract).await?,
        false => None,
    };

    // Push: the layers (unchanged ones mountable from the source), the user layer, the config;
    // then the manifest.
    let t2 = Instant::now();
    let mut blobs: Vec<Blob> = p
        .view
        .layers
        .iter()
        .zip(&rewrites)
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
    blobs.push(Blob::bytes(config_digest.clone(), config_bytes));
    let push_ref = tag.cloned().unwrap_or_else(|| ctx.dst_ref.with_digest(&result.digest).without_tag());
    let push = Push {
        dst: &ctx.dst,
        mount_from: Some(&ctx.src),
        locations: Some(&ctx.locations),
        jobs: ctx.o.jobs,
        progress: &ctx.o.progress,
    };
    push.push(&blobs, &push_ref, &result, "manifest").await?;
    let t_push = t2.elapsed();

    p.findings.name_after_layers(&manifest_json["layers"]);
    let mut report = p.report;
    report.findings = (&p.findings).into();
    report.result = Some(ResultRef {
        digest: result.digest.to_string(),
        config_digest: Some(config_digest.to_string()),
        reference: None,
        converted_to_oci: converted,
    });
    report.layers = Some(layer_reports);
    report.verify_run = verify_run;
    report.config_changes = Some(changes);
    report.timings_ms = Some(Timings {
        scan: Some(p.t_scan.as_millis() as u64),
        rewrite: Some(t_rewrite.as_millis() as u64),
        push: Some(t_push.as_millis() as u64),
        total: None,
    });
    ctx.o.progress.line(&p.summary);
    Ok(Done { manifest: result, report, contract })
}

/// `--verify-run`: the source and the result run under runc and probed the same way
/// ([`crate::verify_run`]). The source passing and the result failing refuses (exit 3) before
/// anything is pushed; the source failing is said, and the rebuild goes on. An image of
/// another architecture than the host's is not run (said).
async fn verify_run(
    ctx: &Ctx<'_>,
    p: &Prepared,
    rewrites: &[Option<Rewritten>],
    manifest_json: &Value,
    config_bytes: &[u8],
    new_config: &Value,
    contract: &crate::contract::Contract,
) -> Result<Option<crate::verify_run::Verdict>> {
    use crate::verify_run::{self as vr, Bytes, Image, Layer};
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
    let mut source = Image { config: serde_json::to_vec(&p.config)?, layers: Vec::new() };
    let mut result = Image { config: config_bytes.to_vec(), layers: Vec::new() };
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
                media_type: manifest_json["layers"][i]["mediaType"].as_str().unwrap_or_default().to_string(),
                digest: r.rw.digest.clone(),
                size: r.rw.size,
                bytes: Bytes::File(r.blob.clone()),
            },
            None => src(input),
        });
    }
    if let Some(ul) = &p.user.layer {
        let n = p.view.layers.len();
        result.layers.push(Layer {
            media_type: manifest_json["layers"][n]["mediaType"].as_str().unwrap_or_default().to_string(),
            digest: ul.digest.clone(),
            size: ul.blob.len() as u64,
            bytes: Bytes::Memory(ul.blob.clone()),
        });
    }
    let volumes = crate::contract::persistent_volumes(new_config);
    let rules = ctx.profile.verify.clone();
    let dir = ctx.share.spool.path().join(format!("verify-{}", p.manifest.digest.short()));
    o.progress.line(&format!("verify-run: running the source and the result under runc ({})", p.src_ref));
    let (c, d) = (contract.clone(), dir.clone());
    let verdict = tokio::task::spawn_blocking(move || vr::verify(&d, &source, &result, &c, &volumes, &rules)).await??;
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
            let splice = !o.recompress;
            let key = RewriteCache::key(&layer.digest, lp, o.codec, splice);
            let spooled = ctx.share.spool.path().join(format!("out-{key}"));
            let (lp2, codec, digest) = (Arc::new(lp.clone()), o.codec, layer.digest.clone());
            let (limits, k) = (o.limits.clone(), key.clone());
            let media_type = p.view.layer_media_type(codec);
            let r = ctx
                .cache
                .get_or_rewrite(&key, || async move {
                    // Another pod's rewrite, when the shared cache has it (verified there).
                    if let Some(shared) = &ctx.shared {
                        if let Lookup::Found(f) = shared.lookup(&k, ctx.share.spool.path(), &limits).await {
                            if let Some((registry, repository)) = shared.registry_repository() {
                                ctx.locations.note(registry, repository, &f.rw.digest);
                            }
                            return Ok((f.blob, f.rw, true));
                        }
                    }
                    let rewritten = async {
                        // Only a rewrite reads the input: a layer known from the scan cache is fetched here.
                        let input = ctx.share.blob(&ctx.src, layer).await?;
                        let out = spooled.clone();
                        let bar = o.progress.transfer("rewrite", layer.digest.short(), layer.size);
                        tokio::task::spawn_blocking(move || -> std::io::Result<LayerRewrite> {
                            let file = std::fs::File::open(&input)?;
                            let r: Arc<dyn crate::layer::splice::ReadAt> = Arc::new(Watched { file, bar });
                            // Created (truncated) again if a splice has to be redone.
                            let open_out =
                                || Ok(std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&out)?));
                            let settings = rewrite::Settings { codec, splice, workers };
                            let (mut w, rw) = rewrite::rewrite_layer(r, open_out, &lp2, settings, &limits)?;
                            std::io::Write::flush(&mut w)?;
                            Ok(rw)
                        })
                        .await?
                        .map_err(|e| anyhow!("layer {digest}: rewrite failed: {e}"))
                    }
                    .await;
                    match (&ctx.shared, &rewritten) {
                        (Some(shared), Ok(rw)) => shared.publish(&k, &spooled, rw, &media_type, &ctx.locations).await,
                        (Some(shared), Err(_)) => shared.release(&k).await,
                        (None, _) => {}
                    }
                    Ok((spooled, rewritten?, false))
                })
                .await?;
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

/// The manifest with its layer descriptors updated (and the user layer appended), the
/// result's diff_ids, and the per-layer report.
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
        let input_codec = Some(format!("{:?}", idx.codec).to_lowercase());
        let scan = Some(if ctx.share.from_cache(&layer.digest) { "scan-cache" } else { "scanned" });
        match rw {
            Some(r) => {
                let d = &mut manifest_json["layers"][i];
                d["mediaType"] = json!(view.layer_media_type(codec));
                d["digest"] = json!(r.rw.digest.as_str());
                d["size"] = json!(r.rw.size);
                // Lazy-pull TOC annotations describe the source blob (unchanged layers keep theirs).
                let dropped = crate::image::drop_lazy_pull_annotations(d);
                diff_ids.push(r.rw.diff_id.clone());
                reports.push(LayerReport {
                    input_digest: Some(layer.digest.to_string()),
                    output_digest: r.rw.digest.to_string(),
                    action: match (r.cached, r.shared) {
                        (true, _) => LayerAction::RewrittenCached,
                        (false, true) => LayerAction::RewrittenShared,
                        (false, false) => LayerAction::Rewritten,
                    },
                    input_codec,
                    uncompressed_bytes: Some(idx.uncompressed_size),
                    scan,
                    bytes_in: layer.size,
                    bytes_out: r.rw.size,
                    entries_removed: Some(r.rw.stats.removed),
                    entries_changed: Some(r.rw.stats.changed),
                    bytes_spliced: Some(r.rw.stats.copied),
                    dropped_annotations: Some(dropped),
                    purpose: None,
                });
            }
            None => {
                diff_ids.push(idx.diff_id.clone());
                reports.push(LayerReport {
                    input_digest: Some(layer.digest.to_string()),
                    output_digest: layer.digest.to_string(),
                    action: LayerAction::Reused,
                    input_codec,
                    uncompressed_bytes: Some(idx.uncompressed_size),
                    scan,
                    bytes_in: layer.size,
                    bytes_out: layer.size,
                    entries_removed: Some(0),
                    entries_changed: Some(0),
                    bytes_spliced: None,
                    dropped_annotations: None,
                    purpose: None,
                });
            }
        }
    }
    if let Some(ul) = &p.user.layer {
        diff_ids.push(ul.diff_id.clone());
        let layers = manifest_json["layers"].as_array_mut().ok_or_else(|| anyhow!("manifest has no layers list"))?;
        layers.push(
            json!({"mediaType": view.layer_media_type(codec), "digest": ul.digest.as_str(), "size": ul.blob.len()}),
        );
        reports.push(LayerReport {
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
        });
    }
    Ok((manifest_json, diff_ids, reports))
}

/// Point the manifest at the new config and set its annotations (OCI manifests only: Docker
/// schema 2 has none): the base image's name and digest, the runtime contract, then the
/// profile's removals and values.
fn finish_manifest(
    ctx: &Ctx<'_>,
    p: &Prepared,
    mut manifest: Value,
    config_digest: &Digest,
    config_len: usize,
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
