//! Pipeline: the order of the stages for `rebuild` — resolve ([`crate::source::walk`]) → scan,
//! plan, guard and audit every image ([`prepare`]) → for one image ([`single`]) or each
//! platform of an index and then the index ([`index`]): rewrite, config, push → sign.
//! Every image is planned and guarded before any layer is rewritten, so a refusal pushes
//! nothing.
//!
//! Owns: ordering, the run's shared state ([`Ctx`]: endpoints, the scan share, the rewrite
//! cache), the report's assembly. Must not: hold policy (the profile's and the plan's), print
//! to stdout (the CLI does), or prompt.

mod index;
mod prepare;
mod reuse;
mod single;
mod supply;
#[cfg(test)]
mod tests;

use crate::cache::RewriteCache;
use crate::cpu::Budget;
use crate::digest::Digest;
use crate::layer::codec::OutputCodec;
use crate::profile::{self, Profile};
use crate::progress::Progress;
use crate::reference::ImageRef;
use crate::report::{ProfileRef, RebuildReport, ResultRef, SourceRef, Timings};
use crate::source::{walk, ScanShare};
use crate::transport::locations::Locations;
use crate::transport::{Endpoint, NetOptions};
use crate::Failure;
use anyhow::{anyhow, bail, Context, Result};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

pub use prepare::Prepared;
pub use supply::TrustedKey;

/// How to rebuild; the two references are [`rebuild`]'s arguments. `Default` is `rebuild`'s
/// defaults (profile baseline, gzip:6 spliced, 4 layers at once, the whole machine).
#[derive(Clone)]
pub struct RebuildOptions {
    pub profiles: Vec<String>,
    pub report: Option<PathBuf>,
    /// Write a CycloneDX SBOM of the result's packages here (one image, not an index).
    pub sbom: Option<PathBuf>,
    pub digest_file: Option<PathBuf>,
    pub dry_run: bool,
    pub allow_broken: bool,
    pub codec: OutputCodec,
    /// Compress changed layers in full instead of splicing (`--recompress`).
    pub recompress: bool,
    /// Layers fetched, scanned and rewritten at once.
    pub jobs: usize,
    /// The threads this rebuild may keep busy (a batch gives each job a share).
    pub cpu: Budget,
    pub net: NetOptions,
    /// What reading a layer may cost (`--max-layer-size`, `--max-ratio`, `--max-entries`).
    pub limits: crate::layer::Limits,
    pub progress: Progress,
    /// Sign the pushed result with this key (cosign `.sig` beside it) and report the signature.
    pub sign_key: Option<Arc<crate::sign::SigningKey>>,
    /// With `sign_key`: a cosign v3 sigstore bundle (an OCI referrer) instead of the `.sig`.
    pub bundle: bool,
    /// With `sign_key`: attest the result (SLSA provenance, CycloneDX SBOM) in its `.att`.
    pub attest: bool,
    /// Refuse (exit 3) unless the source carries a signature verifying with one of these.
    pub require_signature: Vec<TrustedKey>,
    /// Recorded as org.opencontainers.image.base.name (see [`base_name`]).
    pub base_name: Option<String>,
    /// For an index: the platforms to rebuild (`os/arch[/variant]`); empty means all.
    pub platforms: Vec<String>,
    /// Write the result's runtime contract here (`--contract`); for an index, the first
    /// platform's.
    pub contract: Option<PathBuf>,
    pub contract_format: crate::contract::Format,
    /// Run the source and the result under runc before pushing, refusing (exit 3) when the
    /// source passes its probe and the result does not (`--verify-run`, [`crate::verify_run`]).
    pub verify_run: bool,
    /// The rewrite cache, shared by every image of a batch; None for a private in-memory one.
    pub cache: Option<Arc<RewriteCache>>,
    /// Fetched layers and their scans, shared by every image of a batch; None for this run's own.
    pub scans: Option<Arc<ScanShare>>,
    /// Known blob locations, shared by every image of a batch; None for this run's own (kept in
    /// the rewrite cache's directory).
    pub locations: Option<Arc<Locations>>,
    /// Rewrites shared with other processes through a registry repository (`--shared-cache`).
    pub shared_cache: Option<Arc<crate::shared_cache::SharedCache>>,
}

impl Default for RebuildOptions {
    fn default() -> Self {
        RebuildOptions {
            profiles: Vec::new(),
            report: None,
            sbom: None,
            digest_file: None,
            dry_run: false,
            allow_broken: false,
            codec: OutputCodec::Gzip(6),
            recompress: false,
            jobs: 4,
            cpu: Budget::machine(),
            net: NetOptions::default(),
            limits: crate::layer::Limits::default(),
            progress: Progress::default(),
            sign_key: None,
            bundle: false,
            attest: false,
            require_signature: Vec::new(),
            base_name: None,
            platforms: Vec::new(),
            contract: None,
            contract_format: crate::contract::Format::Json,
            verify_run: false,
            cache: None,
            scans: None,
            locations: None,
            shared_cache: None,
        }
    }
}

/// What the result records as its base name: `--base-name`, else a registry source's
/// repository and tag (the digest is recorded separately), else nothing.
pub fn base_name(src: &ImageRef, o: &RebuildOptions) -> Option<String> {
    o.base_name.clone().or_else(|| match src {
        ImageRef::Registry { tag, .. } => {
            Some(format!("{}{}", src.repository_name(), tag.as_ref().map(|t| format!(":{t}")).unwrap_or_default()))
        }
        ImageRef::Layout { .. } | ImageRef::DockerArchive { .. } | ImageRef::OciArchive { .. } => None,
    })
}

/// A finished (or dry) run: what to print and the report.
#[derive(Debug)]
pub struct Outcome {
    /// `DST@sha256:…`; None for a dry run.
    pub pushed: Option<String>,
    /// A dry run's listing, one per image (with the image's name first for an index).
    pub dry_run: Vec<PlanListing>,
    /// A dry run whose plan the guard refuses: the CLI prints the listing, then fails with this.
    pub refused: Option<Failure>,
    pub report: RebuildReport,
}

/// The dry-run listing of one image's plan.
#[derive(Debug)]
pub struct PlanListing {
    /// The image, for a platform of an index.
    pub image: Option<String>,
    pub lines: Vec<String>,
}

/// Everything a run shares across the images it rebuilds (one, or one per platform).
pub(crate) struct Ctx<'a> {
    pub o: &'a RebuildOptions,
    pub src_ref: &'a ImageRef,
    pub dst_ref: &'a ImageRef,
    pub profile: Profile,
    pub src: Endpoint,
    pub dst: Endpoint,
    pub share: Arc<ScanShare>,
    pub cache: Arc<RewriteCache>,
    pub locations: Arc<Locations>,
    pub shared: Option<Arc<crate::shared_cache::SharedCache>>,
}

/// Rebuild `src` into `dst`.
pub async fn rebuild(src: &ImageRef, dst: &ImageRef, o: &RebuildOptions) -> Result<Outcome> {
    let t0 = Instant::now();
    let profile: Profile = profile::load(&o.profiles).map_err(|e| Failure::Usage(e.to_string()))?;
    let cache = match &o.cache {
        Some(c) => Arc::clone(c),
        None => Arc::new(RewriteCache::new(None)?),
    };
    let share = match &o.scans {
        Some(s) => Arc::clone(s),
        None => Arc::new(ScanShare::new()?.with_cache(cache.dir(), &o.progress)),
    };
    let locations = match &o.locations {
        Some(l) => Arc::clone(l),
        None => Arc::new(Locations::new(cache.dir())),
    };
    let ctx = Ctx {
        o,
        src_ref: src,
        dst_ref: dst,
        src: Endpoint::open(src, &o.net)?,
        dst: Endpoint::open(dst, &o.net)?,
        profile,
        share,
        cache,
        locations,
        shared: o.shared_cache.clone(),
    };
    if (o.bundle || o.attest) && o.sign_key.is_none() {
        bail!(Failure::Usage("--bundle and --attest sign with --sign-key; give one".into()));
    }
    if o.sign_key.is_some() && matches!(dst, ImageRef::DockerArchive { .. }) {
        bail!(Failure::Usage(format!("{dst}: a docker-archive cannot hold a signature; sign after loading it")));
    }
    if !o.dry_run {
        ctx.dst.check_push().await.with_context(|| format!("{dst}: the destination does not accept a push"))?;
    }
    let w = walk::walk(&ctx.src, src).await?;
    let mut report = RebuildReport::new(
        SourceRef { reference: src.to_string(), digest: w.top.digest.to_string() },
        ProfileRef { name: ctx.profile.name(), digest: ctx.profile.digest().to_string() },
        o.codec.to_string(),
        !o.recompress,
    );

    if o.sbom.is_some() && w.index.is_some() {
        bail!(Failure::Usage(format!(
            "--sbom: {src} is a multi-platform index; rebuild one platform (by digest) to get its SBOM"
        )));
    }
    let chosen = match &w.index {
        Some(_) => index::select_platforms(&w, &o.platforms, &o.progress)?,
        None => Vec::new(),
    };
    // The source as read: the manifest (or index) and each chosen platform.
    let source_digests: Vec<Digest> =
        std::iter::once(w.top.digest.clone()).chain(chosen.iter().map(|e| e.digest.clone())).collect();
    // Before anything is fetched or rewritten: is the source signed as required?
    match supply::gate(&ctx, &source_digests).await {
        Ok(s) => report.source_signatures = s,
        Err(e) => {
            write_report(o, &report)?;
            return Err(e);
        }
    }
    report.not_carried_over = supply::not_carried(&ctx, &source_digests).await;
    // Plan every image before rewriting any: a refusal leaves nothing pushed.
    // A rerun whose result the destination still holds: re-tag it, no planning, no rewrite.
    // --verify-run runs what it pushes: a recorded result is not taken on trust.
    let result_key = if o.verify_run { None } else { reuse::key(&ctx, &w.top.digest) };
    if let Some(k) = &result_key {
        if let Some(found) = k.find(&ctx, &w.top).await {
            return reuse_result(&ctx, report, found, t0).await;
        }
    }
    let images = prepare_all(&ctx, &w, &chosen).await?;
    if o.scans.is_none() {
        // Nothing more is scanned in this run: each image's index now lives only as long as
        // the image needs it (single::execute drops it before the rewrite).
        ctx.share.forget_scans().await;
    }
    // A destination that holds no index (a docker-archive) takes one platform, as an image.
    let is_index = w.index.is_some() && (ctx.dst.holds_index() || chosen.len() > 1);
    if is_index && !ctx.dst.holds_index() {
        bail!(Failure::Usage(format!(
            "{dst}: holds one image, and the source has {} platforms; choose one with --platform",
            chosen.len()
        )));
    }
    let broken: Vec<String> = images.iter().flat_map(|p| p.broken.clone()).collect();
    let set_images = |report: &mut RebuildReport, images: &[Prepared]| {
        if is_index {
            report.images = Some(images.iter().map(|p| p.report.clone()).collect());
        } else if let Some(p) = images.first() {
            let mut r = p.report.clone();
            r.source = None;
            report.image = Some(r);
        }
    };
    if o.dry_run {
        let dry_run = images
            .iter()
            .map(|p| PlanListing { image: is_index.then(|| p.src_ref.to_string()), lines: p.listing() })
            .collect();
        set_images(&mut report, &images);
        write_report(o, &report)?;
        let refused = (!broken.is_empty() && !o.allow_broken)
            .then(|| Failure::Policy(format!("the plan would break the image: {}", broken[0])));
        return Ok(Outcome { pushed: None, dry_run, refused, report });
    }
    if !broken.is_empty() {
        for b in &broken {
            o.progress.line(&format!("guard: {b}"));
        }
        if !o.allow_broken {
            set_images(&mut report, &images);
            write_report(o, &report)?;
            bail!(Failure::Policy(format!(
                "refusing to produce an image that cannot start: {} (--allow-broken overrides)",
                broken[0]
            )));
        }
    }

    let (result_digest, result, mut timings, attest, platform_digests) = match w.index.as_ref().filter(|_| is_index) {
        None => {
            let p = images.into_iter().next().ok_or_else(|| anyhow!("no image to rebuild"))?;
            let inventory = match o.sbom.is_some() || o.attest {
                true => {
                    let inv = crate::pkgdb::sbom::Inventory::of(&p.fs, &p.plan.packages.removed)
                        .map_err(|e| anyhow!("--sbom/--attest: {e}"))?;
                    for n in inv.notes() {
                        o.progress.line(&format!("--sbom: note: {n}"));
                    }
                    Some(inv)
                }
                false => None,
            };
            let done = single::execute(&ctx, p, Some(dst)).await?;
            write_contract(o, &done.contract)?;
            let digest = done.manifest.digest;
            let bom = inventory.map(|inv| inv.cyclonedx(&dst.without_tag().to_string(), digest.as_str()));
            if let (Some(path), Some(bom)) = (&o.sbom, &bom) {
                crate::files::write_atomic(path, &serde_json::to_vec_pretty(bom)?)
                    .with_context(|| format!("--sbom {}", path.display()))?;
            }
            let attest = vec![supply::Attest {
                image: supply::prov_image(None, &w.top.digest, &digest, &done.report),
                sbom: bom.filter(|_| o.attest),
            }];
            let mut image = done.report;
            image.source = None;
            let timings = image.timings_ms.take().unwrap_or_default();
            let result = image.result.take().unwrap_or_default();
            report.image = Some(image);
            (digest, result, timings, attest, Vec::new())
        }
        Some(idx) => {
            let inventories = match o.attest {
                true => images
                    .iter()
                    .map(|p| {
                        crate::pkgdb::sbom::Inventory::of(&p.fs, &p.plan.packages.removed)
                            .map_err(|e| anyhow!("--attest: {}: {e}", p.src_ref))
                    })
                    .collect::<Result<Vec<_>>>()?,
                false => Vec::new(),
            };
            let (m, per, contract) = index::execute(&ctx, idx, &w.top, &chosen, images).await?;
            if let Some(c) = &contract {
                write_contract(o, c)?;
            }
            let mut attest = Vec::new();
            let mut platform_digests = Vec::new();
            for (i, (r, e)) in per.iter().zip(&chosen).enumerate() {
                let Some(out) = r.result.as_ref().and_then(|x| Digest::parse(&x.digest).ok()) else { continue };
                let sbom = inventories.get(i).map(|inv| inv.cyclonedx(&dst.without_tag().to_string(), out.as_str()));
                attest.push(supply::Attest { image: supply::prov_image(Some(e.platform()), &e.digest, &out, r), sbom });
                platform_digests.push(out);
            }
            report.images = Some(per);
            let converted_to_oci = (m.media_type != w.top.media_type)
                .then(|| crate::report::Conversion { from: w.top.media_type.clone(), to: m.media_type.clone() });
            let result = ResultRef { digest: m.digest.to_string(), converted_to_oci, ..Default::default() };
            (m.digest.clone(), result, Timings::default(), attest, platform_digests)
        }
    };
    // Where the blobs were seen, for the next push to this registry (a hint: failing to keep
    // it fails nothing).
    if let Err(e) = ctx.locations.save() {
        o.progress.line(&format!("note: cannot record known blob locations: {e}"));
    }
    // What readers of the destination see (a docker-archive keeps no manifest of its own).
    let result_digest = ctx.dst.stored_digest(&result_digest);
    let line = dst.by_digest(&result_digest);
    write_digest_file(o, &result_digest)?;
    report.result = Some(ResultRef { reference: Some(line.clone()), digest: result_digest.to_string(), ..result });
    if let Some(key) = &o.sign_key {
        match supply::sign_result(&ctx, &result_digest, &platform_digests, key).await {
            Ok((sig, bundles)) => (report.signature, report.bundles) = (sig, bundles),
            Err(e) => {
                write_report(o, &report)?;
                return Err(e.context(format!("{line} was pushed, but signing it failed")));
            }
        }
        if o.attest {
            let run = supply::provenance_run(&ctx, &w.top.digest, &report.source_signatures)?;
            match supply::attest_result(&ctx, key, &run, is_index.then_some(&result_digest), &attest).await {
                Ok(a) => report.attestations = a,
                Err(e) => {
                    write_report(o, &report)?;
                    return Err(e.context(format!("{line} was pushed and signed, but attesting it failed")));
                }
            }
        }
    }
    timings.total = Some(t0.elapsed().as_millis() as u64);
    report.timings_ms = Some(timings);
    write_report(o, &report)?;
    if let Some(k) = &result_key {
        k.store(dst, &result_digest, &report);
    }
    Ok(Outcome { pushed: Some(line), dry_run: Vec::new(), refused: None, report })
}

/// Finish a rerun from a recorded result: the destination's tag points at it again, the
/// report says so and carries the report of the run that made it.
async fn reuse_result(ctx: &Ctx<'_>, mut report: RebuildReport, found: reuse::Found, t0: Instant) -> Result<Outcome> {
    let (o, dst) = (ctx.o, ctx.dst_ref);
    if dst.tag().is_some() {
        ctx.dst.put_manifest(dst, &found.manifest).await?;
    }
    let digest = found.manifest.digest.clone();
    let line = dst.by_digest(&digest);
    o.progress.line(&format!(
        "{dst} holds the result {} of this source and profile (recorded by an earlier run): nothing rebuilt",
        digest.short()
    ));
    write_digest_file(o, &digest)?;
    report.result = Some(ResultRef { reference: Some(line.clone()), digest: digest.to_string(), ..Default::default() });
    report.reused = Some(crate::report::Reused { record: found.key, made_by: found.made_by });
    report.timings_ms = Some(Timings { total: Some(t0.elapsed().as_millis() as u64), ..Default::default() });
    write_report(o, &report)?;
    Ok(Outcome { pushed: Some(line), dry_run: Vec::new(), refused: None, report })
}

/// Scan, plan, guard and audit every image `w` names: the one image, or the `chosen`
/// platforms of an index.
async fn prepare_all(ctx: &Ctx<'_>, w: &walk::Walk, chosen: &[walk::Entry]) -> Result<Vec<Prepared>> {
    if w.index.is_none() {
        return Ok(vec![prepare::prepare(ctx, ctx.src_ref.clone(), w.top.clone()).await?]);
    }
    let mut images = Vec::new();
    for e in chosen {
        let r = ctx.src_ref.with_digest(&e.digest);
        let m = e.fetch(&ctx.src, ctx.src_ref).await?;
        images.push(prepare::prepare(ctx, r, m).await?);
    }
    Ok(images)
}

fn write_contract(o: &RebuildOptions, c: &crate::contract::Contract) -> Result<()> {
    if let Some(p) = &o.contract {
        crate::files::write_atomic(p, c.render(o.contract_format).as_bytes())
            .with_context(|| format!("--contract {}", p.display()))?;
    }
    Ok(())
}

fn write_digest_file(o: &RebuildOptions, digest: &Digest) -> Result<()> {
    if let Some(p) = &o.digest_file {
        crate::files::write_atomic(p, format!("{digest}\n").as_bytes())
            .with_context(|| format!("--digest-file {}", p.display()))?;
    }
    Ok(())
}

fn write_report(o: &RebuildOptions, report: &RebuildReport) -> Result<()> {
    if let Some(p) = &o.report {
        crate::files::write_atomic(p, &serde_json::to_vec_pretty(report)?)
            .with_context(|| format!("--report {}", p.display()))?;
    }
    Ok(())
}
