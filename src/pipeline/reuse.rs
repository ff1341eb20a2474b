//! Results already made. A rebuild is a pure function of the source (its top manifest's digest
//! and the name the result records), the profile, the options that shape bytes and harden's
//! build: a finished one is recorded under that key in the cache directory (`results/`). A rerun
//! whose destination still holds that result re-tags it instead of planning and rewriting
//! again; its cost is the source's manifest, a HEAD per blob and the manifest's put — what a
//! mirror's rerun costs with skopeo.
//!
//! The record is input, not truth: the destination must hold every blob the recorded manifest
//! names (HEAD) — the manifest itself is kept in the record (checked against the recorded
//! digest) and put again under the tag, as skopeo puts its own; to a destination with no tag,
//! and for the platform manifests of an index, it is fetched from the destination by digest
//! — and the manifest must say it
//! was made from this source (`org.opencontainers.image.base.digest`; for an index, each
//! platform's manifest names one of the source index's entries). Anything else is a miss, and
//! the rebuild runs. The cache directory's own rules ([`crate::cache`]) apply: it is this
//! user's alone.
//!
//! Not reused (the run does the full work): dry runs, `--sign-key` (a signature is made per
//! run), `--sbom` and `--contract` (they need the scan), docker-archive destinations (a file
//! rewritten whole), and `--no-cache`.
//!
//! Owns: result keys and records. Must not: decide what a rebuild produces.

use super::{Ctx, RebuildOptions};
use crate::digest::Digest;
use crate::image::ManifestView;
use crate::reference::ImageRef;
use crate::transport::{Endpoint, Manifest};
use anyhow::Result;
use serde_json::{json, Value};
use std::path::PathBuf;

const SCHEMA: &str = "harden-result/1";
const BASE_DIGEST: &str = "org.opencontainers.image.base.digest";

/// Where a rebuild's result would be recorded, when reuse applies to this run.
pub struct ResultKey {
    path: PathBuf,
    key: String,
}

/// A result found at the destination: its manifest (verified) and the report of the run that
/// made it.
pub struct Found {
    pub manifest: Manifest,
    pub key: String,
    pub made_by: Value,
}

/// The key of this run's result, or None when reuse does not apply (see the module's doc).
pub fn key(ctx: &Ctx<'_>, top: &Digest) -> Option<ResultKey> {
    let o: &RebuildOptions = ctx.o;
    let dir = ctx.cache.dir()?;
    if o.dry_run || o.sign_key.is_some() || o.sbom.is_some() || o.contract.is_some() {
        return None;
    }
    if !ctx.dst.keeps_manifests() {
        return None;
    }
    let epoch = crate::config::source_date_epoch().ok()?.map(|(s, _)| s);
    let material = json!({
        "schema": SCHEMA,
        "build": crate::cache::build_id(),
        "source": top.as_str(),
        "base_name": super::base_name(ctx.src_ref, o),
        "profile": ctx.profile.digest().as_str(),
        "codec": o.codec.to_string(),
        "recompress": o.recompress,
        "platforms": o.platforms,
        "allow_broken": o.allow_broken,
        "source_date_epoch": epoch,
        "holds_index": ctx.dst.holds_index(),
    });
    let key = Digest::of(material.to_string().as_bytes()).hex().to_string();
    Some(ResultKey { path: dir.join("results").join(&key), key })
}

impl ResultKey {
    /// The recorded result, if the destination still holds it whole and it names this source.
    pub async fn find(&self, ctx: &Ctx<'_>, top: &Manifest) -> Option<Found> {
        let record: Value = serde_json::from_slice(&std::fs::read(&self.path).ok()?).ok()?;
        if record["schema"] != SCHEMA {
            return None;
        }
        let digest = Digest::parse(record["digest"].as_str()?).ok()?;
        let kept = kept_manifest(&record, &digest);
        // Under a tag, the kept manifest is put again (the caller does): its blobs are asked
        // for, not the manifest. Else it must be here already.
        let manifest = match kept.clone().filter(|_| ctx.dst_ref.tag().is_some()) {
            Some(m) => m,
            None => match ctx.dst.manifest(&ctx.dst_ref.with_digest(&digest)).await {
                Ok(m) => m,
                // Not here: in the repository of the same registry the record was made for, the
                // result is mounted from there (a mirror's re-mirror to a new repository).
                Err(_) => return self.mount_from_recorded(ctx, &record, &digest, top, kept).await,
            },
        };
        let fetched = kept.is_none() || ctx.dst_ref.tag().is_none();
        // A failure to look (a manifest that does not parse, a HEAD refused) is a miss too.
        let (from_top, present) = match images(&ctx.dst, ctx.dst_ref, &manifest).await {
            Ok(images) => (made_from(&images, top), all_present(&ctx.dst, &images).await.unwrap_or(false)),
            Err(_) => (true, false),
        };
        // What the kept manifest names is not all here: mounted from where it was recorded, if
        // that is another repository of this registry.
        if from_top && !present && !fetched {
            if let Some(found) = self.mount_from_recorded(ctx, &record, &digest, top, Some(manifest.clone())).await {
                return Some(found);
            }
        }
        if !(from_top && present) {
            ctx.o.progress.line(&format!(
                "note: the recorded result {} at {} is incomplete or not from this source: rebuilding",
                digest.short(),
                ctx.dst_ref
            ));
            return None;
        }
        Some(Found { manifest, key: self.key.clone(), made_by: record["report"].clone() })
    }

    /// The recorded result, mounted into the destination from the repository of the same
    /// registry it was recorded for, when its manifests there say they were made from `top`
    /// and every blob mounts (the registry's 201 Created confirms each). The platform manifests of an index are stored
    /// by digest here; the caller tags the top one.
    async fn mount_from_recorded(
        &self,
        ctx: &Ctx<'_>,
        record: &Value,
        digest: &Digest,
        top: &Manifest,
        kept: Option<Manifest>,
    ) -> Option<Found> {
        let (Some((registry, repository)), Some(at_registry), Some(at_repository)) =
            (ctx.dst.registry_repository(), record["registry"].as_str(), record["repository"].as_str())
        else {
            return None;
        };
        if at_registry != registry || at_repository == repository {
            return None;
        }
        let there = ctx.dst_ref.in_repository(at_repository, digest)?;
        let ep = Endpoint::open(&there, &ctx.o.net.for_destination()).ok()?;
        // The kept manifest needs no fetch: each blob's mount (201 Created) says it is there.
        let manifest = match kept {
            Some(m) => m,
            None => ep.manifest(&there).await.ok()?,
        };
        let images = images(&ep, &there, &manifest).await.ok()?;
        if !made_from(&images, top) {
            return None;
        }
        // A blob the recorded repository lacks does not mount: a mount is taken only when the
        // registry answers 201 Created, which says the destination now holds the blob (so no
        // HEAD follows it). One it refuses may still be here already: a HEAD says.
        for (_, view) in &images {
            for b in blobs(view) {
                let mounted = ctx.dst.mount(at_repository, b).await || ctx.dst.has_blob(b).await.ok()?;
                if !mounted {
                    return None;
                }
            }
        }
        // Every blob is in: the platform manifests, then (untagged destinations) the top one.
        for (child, _) in &images {
            if child.digest != manifest.digest {
                ctx.dst.put_manifest(&ctx.dst_ref.with_digest(&child.digest).without_tag(), child).await.ok()?;
            }
        }
        if ctx.dst_ref.tag().is_none() {
            ctx.dst.put_manifest(&ctx.dst_ref.with_digest(&manifest.digest).without_tag(), &manifest).await.ok()?;
        }
        ctx.o.progress.line(&format!("mounted the recorded result {} from {registry}/{at_repository}", digest.short()));
        Some(Found { manifest, key: self.key.clone(), made_by: record["report"].clone() })
    }

    /// Record `digest` (and the report that made it) for the next run. A record that cannot be
    /// written only costs that run its reuse.
    pub fn store(&self, ctx: &Ctx<'_>, manifest: &Manifest, report: &crate::report::RebuildReport) {
        let mut record = json!({"schema": SCHEMA, "digest": manifest.digest.as_str(), "report": report});
        // The manifest itself (JSON, so text): a rerun puts it again without fetching it.
        if let Ok(text) = std::str::from_utf8(&manifest.bytes) {
            record["manifest"] = json!(text);
        }
        // Where it was pushed: a run to another repository of that registry mounts it from there.
        if let Some((registry, repository)) = ctx.dst.registry_repository() {
            record["registry"] = json!(registry);
            record["repository"] = json!(repository);
        }
        // `results/` exists: the cache directory is made with it (crate::cache).
        let _ = serde_json::to_vec(&record).map(|b| crate::files::write_atomic(&self.path, &b));
    }
}

/// The manifest a record keeps, when its bytes have the recorded digest and are a manifest.
fn kept_manifest(record: &Value, digest: &Digest) -> Option<Manifest> {
    let bytes = record["manifest"].as_str()?.as_bytes().to_vec();
    if Digest::of(&bytes) != *digest || bytes.len() > crate::transport::MAX_MANIFEST {
        return None;
    }
    let media_type = crate::transport::media_type_of(&bytes)?;
    Some(Manifest { bytes, media_type, digest: digest.clone() })
}

/// `m` parsed and, for an index, each platform manifest it lists (fetched from `ep` by digest,
/// so each is checked against it), with its view.
async fn images(ep: &Endpoint, at: &ImageRef, m: &Manifest) -> Result<Vec<(Manifest, ManifestView)>> {
    let json: Value = serde_json::from_slice(&m.bytes)?;
    let Some(list) = json["manifests"].as_array() else {
        return Ok(vec![(m.clone(), ManifestView::parse(&m.bytes, &m.media_type)?)]);
    };
    let mut out = Vec::new();
    for d in list {
        let d = Digest::parse(d["digest"].as_str().unwrap_or_default()).map_err(anyhow::Error::msg)?;
        let child = ep.manifest(&at.with_digest(&d)).await?;
        let view = ManifestView::parse(&child.bytes, &child.media_type)?;
        out.push((child, view));
    }
    Ok(out)
}

/// Whether every image says it was made from `top`: the top manifest itself, or one of its
/// index's entries.
fn made_from(images: &[(Manifest, ManifestView)], top: &Manifest) -> bool {
    let mut sources = vec![top.digest.to_string()];
    if let Ok(v) = serde_json::from_slice::<Value>(&top.bytes) {
        let entries = v["manifests"].as_array().into_iter().flatten();
        sources.extend(entries.filter_map(|e| e["digest"].as_str().map(str::to_string)));
    }
    images.iter().all(|(_, view)| {
        view.json["annotations"][BASE_DIGEST].as_str().is_some_and(|base| sources.iter().any(|s| s == base))
    })
}

/// The config and layers an image names.
fn blobs(view: &ManifestView) -> impl Iterator<Item = &Digest> {
    std::iter::once(&view.config.digest).chain(view.layers.iter().map(|l| &l.digest))
}

/// Whether `ep` holds every blob of `images` (a HEAD each).
async fn all_present(ep: &Endpoint, images: &[(Manifest, ManifestView)]) -> Result<bool> {
    for (_, view) in images {
        for b in blobs(view) {
            if !ep.has_blob(b).await? {
                return Ok(false);
            }
        }
    }
    Ok(true)
}
