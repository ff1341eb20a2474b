//! Pipeline: the order of the stages for one image — resolve → scan → plan + guard →
//! rewrite → config → push — with bounded concurrency, progress on stderr, and the report.
//!
//! Owns: ordering, temp files (one directory, removed on every exit), reports. Must not: hold
//! policy (that is the profile's and the plan's).

use crate::config::{self, ConfigEdit};
use crate::digest::Digest;
use crate::fs::FinalFs;
use crate::guard::Guard;
use crate::image::{self, ManifestView};
use crate::layer::codec::OutputCodec;
use crate::plan::{self, LayerPlan};
use crate::profile::{self, Profile};
use crate::progress::Progress;
use crate::reference::ImageRef;
use crate::rewrite::{self, LayerRewrite};
use crate::scan::{self, LayerIndex};
use crate::transport::{Endpoint, LocalBlob, Manifest, NetOptions, MAX_CONFIG};
use crate::Failure;
use anyhow::{anyhow, bail, Context, Result};
use futures_util::{stream, StreamExt, TryStreamExt};
use serde_json::{json, Value};
use std::path::PathBuf;
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
    pub jobs: usize,
    pub net: NetOptions,
    pub progress: Progress,
    /// Sign the pushed result with this key (cosign `.sig` beside it) and report the signature.
    pub sign_key: Option<crate::sign::SigningKey>,
    /// Recorded as org.opencontainers.image.base.name (see [`RebuildOptions::base_name`]).
    pub base_name: Option<String>,
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

/// Fetch the manifest and config of `r`, refusing indexes with a clear message.
pub async fn resolve(src: &Endpoint, r: &ImageRef) -> Result<(Manifest, ManifestView, Value)> {
    let manifest = src.manifest(r).await?;
    if image::is_index(&manifest.media_type) {
        let idx: Value = serde_json::from_slice(&manifest.bytes).unwrap_or_default();
        let platforms: Vec<String> = idx["manifests"]
            .as_array()
            .map(|m| {
                m.iter()
                    .map(|e| {
                        format!(
                            "{}/{} {}",
                            e["platform"]["os"].as_str().unwrap_or("?"),
                            e["platform"]["architecture"].as_str().unwrap_or("?"),
                            e["digest"].as_str().unwrap_or("?")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        bail!(
            "{r} is a multi-platform index ({}); rebuild one platform by digest, e.g. {}",
            platforms.join(", "),
            r.with_digest(
                &Digest::parse(idx["manifests"][0]["digest"].as_str().unwrap_or(""))
                    .unwrap_or_else(|_| manifest.digest.clone())
            )
        );
    }
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
    Ok((manifest, view, config))
}

/// Materialise and scan every layer (bounded concurrency), verifying digests and diff_ids.
pub async fn scan_all(
    src: &Endpoint,
    view: &ManifestView,
    config: &Value,
    spool: &std::path::Path,
    jobs: usize,
    progress: &Progress,
) -> Result<(Vec<LocalBlob>, Vec<LayerIndex>)> {
    let diff_ids = image::diff_ids(config, view.layers.len())?;
    let results: Vec<(LocalBlob, LayerIndex)> = stream::iter(view.layers.iter().zip(diff_ids).enumerate())
        .map(|(i, (layer, diff_id))| async move {
            if layer.is_foreign() {
                bail!("layer {}: foreign (non-distributable) layers are not supported", layer.digest);
            }
            let blob = src.blob_local(&layer.digest, spool).await?;
            let path = blob.path.clone();
            let digest = layer.digest.clone();
            let verify = (!blob.verified).then(|| digest.clone());
            let index = tokio::task::spawn_blocking(move || {
                let f = std::fs::File::open(&path)?;
                scan::scan_layer(std::io::BufReader::with_capacity(1 << 20, f), verify.as_ref(), Some(&diff_id))
            })
            .await?
            .map_err(|e| anyhow!("layer {digest}: {e}"))?;
            progress.line(&format!(
                "scanned layer {}/{} {} ({} entries)",
                i + 1,
                view.layers.len(),
                digest.short(),
                index.entries.len()
            ));
            Ok((blob, index))
        })
        .buffered(jobs.max(1))
        .try_collect()
        .await?;
    Ok(results.into_iter().unzip())
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

pub async fn rebuild(o: RebuildOptions) -> Result<String> {
    let t0 = Instant::now();
    let profile: Profile = profile::load(&o.profiles).map_err(|e| Failure::Usage(e.to_string()))?;
    let src = Endpoint::open(&o.src, &o.net)?;
    let dst = Endpoint::open(&o.dst, &o.net)?;
    let spool = tempfile::Builder::new().prefix("harden-").tempdir().context("cannot create a temporary directory")?;

    let (manifest, view, config) = resolve(&src, &o.src).await?;
    let (blobs, indexes) = scan_all(&src, &view, &config, spool.path(), o.jobs, &o.progress).await?;
    let t_scan = t0.elapsed();

    let fs = FinalFs::build(indexes);
    let plan = plan::plan(&fs, &profile);
    let epoch = config::source_date_epoch()?;
    let created = epoch.as_ref().map(|(_, s)| s.clone());
    let mtime =
        epoch.as_ref().map(|(s, _)| *s).unwrap_or_else(|| config::epoch_of(config["created"].as_str().unwrap_or("")));
    let user = config::plan_user(&fs, &profile, mtime, o.codec)?;
    let mut effective = config.clone();
    if let Some(crate::profile::HealthRule::Set(h)) = &profile.config.healthcheck {
        effective["config"]["Healthcheck"] = h.clone();
    }
    let guard = Guard::check(&fs, &plan, &effective, user.config_user.as_deref().or(config["config"]["User"].as_str()));
    for p in &guard.preexisting {
        o.progress.line(&format!("note: {p} (already so in the source image)"));
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
    let predicted_ok = config::edit(
        &mut predicted,
        &ConfigEdit {
            profile: &profile,
            source_name: o.base_name(),
            source_digest: manifest.digest.clone(),
            diff_ids: fs.layers.iter().map(|l| l.diff_id.clone()).collect(),
            user: user.config_user.clone(),
            added_layer: user.layer.is_some(),
            summary: summary.clone(),
            created: created.clone(),
        },
    )
    .is_ok();
    let user_blob = user.layer.as_ref().map(|u| (u.blob.as_slice(), &u.digest));
    let mut findings = crate::audit::run::rebuild_findings(
        &src,
        &o.src,
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

    let mut report = json!({
        "harden_version": env!("CARGO_PKG_VERSION"),
        "source": {"reference": o.src.to_string(), "digest": manifest.digest.as_str()},
        "profile": {"name": profile.name(), "digest": profile.digest().as_str()},
        "compression": o.codec.to_string(),
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
    });
    report["findings"] = findings.to_json();
    let write_report = |report: &Value| -> Result<()> {
        if let Some(p) = &o.report {
            crate::transport::layout::write_atomic(p, &serde_json::to_vec_pretty(report)?)
                .with_context(|| format!("--report {}", p.display()))?;
        }
        Ok(())
    };

    if o.dry_run {
        println!("{summary}");
        // Top-most removed paths only, with how much goes with them; the report lists all.
        for (p, r) in &plan.removed {
            let (parent, _) = crate::layer::tar::split_parent(p);
            if !parent.is_empty() && plan.is_removed(parent) {
                continue;
            }
            let under =
                plan.removed.range(format!("{p}/")..).take_while(|(q, _)| q.starts_with(&format!("{p}/"))).count();
            let extra = if under > 0 { format!(" (+{under} under it)") } else { String::new() };
            println!("remove /{p}{extra}  [{} from {}]", r.pattern, r.origin);
        }
        for p in &plan.setuid_stripped {
            println!("chmod a-s /{p}");
        }
        for p in &plan.caps_stripped {
            println!("strip security.capability /{p}");
        }
        for b in &guard.broken {
            println!("guard: {b}");
        }
        write_report(&report)?;
        if !guard.broken.is_empty() && !o.allow_broken {
            bail!(Failure::Policy(format!("the plan would break the image: {}", guard.broken[0])));
        }
        return Ok(String::new());
    }
    if !guard.broken.is_empty() {
        for b in &guard.broken {
            o.progress.line(&format!("guard: {b}"));
        }
        if !o.allow_broken {
            write_report(&report)?;
            bail!(Failure::Policy(format!(
                "refusing to produce an image that cannot start: {} (--allow-broken overrides)",
                guard.broken[0]
            )));
        }
    }

    // Rewrite the layers the plan changes.
    let t1 = Instant::now();
    let plans: Vec<Arc<LayerPlan>> = plan.layers.iter().cloned().map(Arc::new).collect();
    let spool_path = spool.path().to_path_buf();
    let codec = o.codec;
    let rewrites: Vec<Option<(PathBuf, LayerRewrite)>> =
        stream::iter(view.layers.iter().zip(&blobs).zip(&plans).enumerate())
            .map(|(i, ((layer, blob), lp))| {
                let input = blob.path.clone();
                let out = spool_path.join(format!("out-{i}"));
                let lp = Arc::clone(lp);
                let digest = layer.digest.clone();
                let progress = &o.progress;
                let n = view.layers.len();
                async move {
                    if lp.is_unchanged() {
                        return Ok(None);
                    }
                    let out2 = out.clone();
                    let rw = tokio::task::spawn_blocking(move || -> std::io::Result<LayerRewrite> {
                        let r = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&input)?);
                        let w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&out2)?);
                        let (mut w, rw) = rewrite::rewrite_layer(r, w, &lp, codec)?;
                        std::io::Write::flush(&mut w)?;
                        Ok(rw)
                    })
                    .await?
                    .map_err(|e| anyhow!("layer {digest}: rewrite failed: {e}"))?;
                    progress.line(&format!(
                        "rewrote layer {}/{n} {} → {} ({} → {}, {} removed, {} changed)",
                        i + 1,
                        digest.short(),
                        rw.digest.short(),
                        human(layer.size),
                        human(rw.size),
                        rw.stats.removed,
                        rw.stats.changed
                    ));
                    Ok::<_, anyhow::Error>(Some((out, rw)))
                }
            })
            .buffered(o.jobs.max(1))
            .try_collect()
            .await?;
    let t_rewrite = t1.elapsed();

    // New manifest and config.
    let mut manifest_json = view.json.clone();
    let mut diff_ids = Vec::new();
    let mut layer_reports = Vec::new();
    for (i, (layer, rw)) in view.layers.iter().zip(&rewrites).enumerate() {
        match rw {
            Some((_, rw)) => {
                let d = &mut manifest_json["layers"][i];
                d["mediaType"] = json!(view.layer_media_type(o.codec));
                d["digest"] = json!(rw.digest.as_str());
                d["size"] = json!(rw.size);
                diff_ids.push(rw.diff_id.clone());
                layer_reports.push(json!({"input_digest": layer.digest.as_str(), "output_digest": rw.digest.as_str(), "action": "rewritten", "input_codec": format!("{:?}", fs.layers[i].codec).to_lowercase(), "uncompressed_bytes": fs.layers[i].uncompressed_size, "bytes_in": layer.size, "bytes_out": rw.size, "entries_removed": rw.stats.removed, "entries_changed": rw.stats.changed}));
            }
            None => {
                diff_ids.push(fs.layers[i].diff_id.clone());
                layer_reports.push(json!({"input_digest": layer.digest.as_str(), "output_digest": layer.digest.as_str(), "action": "reused", "input_codec": format!("{:?}", fs.layers[i].codec).to_lowercase(), "uncompressed_bytes": fs.layers[i].uncompressed_size, "bytes_in": layer.size, "bytes_out": layer.size, "entries_removed": 0, "entries_changed": 0}));
            }
        }
    }
    if let Some(ul) = &user.layer {
        diff_ids.push(ul.diff_id.clone());
        let layers = manifest_json["layers"].as_array_mut().ok_or_else(|| anyhow!("manifest has no layers list"))?;
        layers.push(
            json!({"mediaType": view.layer_media_type(o.codec), "digest": ul.digest.as_str(), "size": ul.blob.len()}),
        );
        layer_reports.push(json!({"input_digest": null, "output_digest": ul.digest.as_str(), "action": "added", "bytes_in": 0, "bytes_out": ul.blob.len(), "purpose": format!("adds user {}", ul.name)}));
    }
    let mut new_config = config.clone();
    let changes = config::edit(
        &mut new_config,
        &ConfigEdit {
            profile: &profile,
            source_name: o.base_name(),
            source_digest: manifest.digest.clone(),
            diff_ids,
            user: user.config_user.clone(),
            added_layer: user.layer.is_some(),
            summary: summary.clone(),
            created,
        },
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
            a.insert("org.opencontainers.image.base.digest".into(), json!(manifest.digest.as_str()));
            for k in &profile.config.remove_annotations {
                a.remove(k);
            }
            for (k, v) in &profile.config.annotations {
                a.insert(k.clone(), json!(v));
            }
        }
    }
    let manifest_bytes = serde_json::to_vec(&manifest_json)?;
    let result = Manifest {
        digest: Digest::of(&manifest_bytes),
        bytes: manifest_bytes,
        media_type: manifest.media_type.clone(),
    };

    // Push: blobs first, each confirmed; the manifest last.
    let t2 = Instant::now();
    stream::iter(view.layers.iter().zip(&rewrites).zip(&blobs))
        .map(|((layer, rw), blob)| {
            let (src, dst, progress) = (&src, &dst, &o.progress);
            async move {
                let (digest, size, path) = match rw {
                    Some((p, rw)) => (rw.digest.clone(), rw.size, p.clone()),
                    None => (layer.digest.clone(), layer.size, blob.path.clone()),
                };
                if dst.has_blob(&digest).await? {
                    progress.line(&format!("blob {} already present", digest.short()));
                    return Ok(());
                }
                if rw.is_none() && dst.mount_from(src, &digest).await && dst.has_blob(&digest).await? {
                    progress.line(&format!("mounted blob {}", digest.short()));
                    return Ok(());
                }
                dst.put_blob(&digest, size, &path).await?;
                progress.line(&format!("pushed blob {} ({})", digest.short(), human(size)));
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(o.jobs.max(1))
        .try_collect::<Vec<_>>()
        .await?;
    if let Some(ul) = &user.layer {
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
        .map(|(rw, l)| rw.as_ref().map(|(_, r)| r.digest.clone()).unwrap_or_else(|| l.digest.clone()))
        .collect();
    all.extend(user.layer.as_ref().map(|u| u.digest.clone()));
    all.push(config_digest.clone());
    for d in &all {
        if !dst.has_blob(d).await? {
            bail!("{}: blob {d} is not present after upload; manifest not pushed", o.dst);
        }
    }
    dst.put_manifest(&o.dst, &result).await?;
    let t_push = t2.elapsed();

    let line = o.dst.by_digest(&result.digest);
    if let Some(p) = &o.digest_file {
        crate::transport::layout::write_atomic(p, format!("{}\n", result.digest).as_bytes())
            .with_context(|| format!("--digest-file {}", p.display()))?;
    }
    report["result"] =
        json!({"reference": line, "digest": result.digest.as_str(), "config_digest": config_digest.as_str()});
    report["layers"] = json!(layer_reports);
    report["config_changes"] = serde_json::to_value(&changes)?;
    if let Some(key) = &o.sign_key {
        match crate::signing::sign_digest(&dst, &o.dst, &result.digest, key, &Default::default(), &o.progress).await {
            Ok(s) => {
                report["signature"] = json!({"tag": s.tag, "manifest_digest": s.manifest_digest.as_str(), "payload_digest": s.payload_digest.as_str(), "added": s.added})
            }
            Err(e) => {
                write_report(&report)?;
                return Err(e.context(format!("{line} was pushed, but signing it failed")));
            }
        }
    }
    findings.name_after_layers(&manifest_json["layers"]);
    report["findings"] = findings.to_json();
    report["timings_ms"] = json!({"scan": t_scan.as_millis() as u64, "rewrite": t_rewrite.as_millis() as u64, "push": t_push.as_millis() as u64, "total": t0.elapsed().as_millis() as u64});
    write_report(&report)?;
    o.progress.line(&summary);
    drop(spool);
    Ok(line)
}
