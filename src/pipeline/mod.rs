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
mod single;
#[cfg(test)]
mod tests;

use crate::cache::RewriteCache;
use crate::cpu::Budget;
use crate::layer::codec::OutputCodec;
use crate::profile::{self, Profile};
use crate::progress::Progress;
use crate::reference::ImageRef;
use crate::report::{ProfileRef, RebuildReport, ResultRef, SignatureReport, SourceRef, Timings};
use crate::source::{walk, ScanShare};
use crate::transport::{Endpoint, NetOptions};
use crate::Failure;
use anyhow::{anyhow, bail, Context, Result};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

pub use prepare::Prepared;

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
    /// Recorded as org.opencontainers.image.base.name (see [`base_name`]).
    pub base_name: Option<String>,
    /// For an index: the platforms to rebuild (`os/arch[/variant]`); empty means all.
    pub platforms: Vec<String>,
    /// Write the result's runtime contract here (`--contract`); for an index, the first
    /// platform's.
    pub contract: Option<PathBuf>,
    pub contract_format: crate::contract::Format,
    /// The rewrite cache, shared by every image of a batch; None for a private in-memory one.
    pub cache: Option<Arc<RewriteCache>>,
    /// Fetched layers and their scans, shared by every image of a batch; None for this run's own.
    pub scans: Option<Arc<ScanShare>>,
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
            base_name: None,
            platforms: Vec::new(),
            contract: None,
            contract_format: crate::contract::Format::Json,
            cache: None,
            scans: None,
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
}

/// Rebuild `src` into `dst`.
pub async fn rebuild(src: &ImageRef, dst: &ImageRef, o: &RebuildOptions) -> Result<Outcome> {
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
    let ctx = Ctx {
        o,
        src_ref: src,
        dst_ref: dst,
        src: Endpoint::open(src, &o.net)?,
        dst: Endpoint::open(dst, &o.net)?,
        profile,
        share,
        cache,
    };
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
    // Plan every image before rewriting any: a refusal leaves nothing pushed.
    let (chosen, images) = prepare_all(&ctx, &w).await?;
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

    let (result_digest, result, mut timings) = match w.index.as_ref().filter(|_| is_index) {
        None => {
            let p = images.into_iter().next().ok_or_else(|| anyhow!("no image to rebuild"))?;
            let inventory = match &o.sbom {
                Some(_) => {
                    let inv = crate::pkgdb::sbom::Inventory::of(&p.fs, &p.plan.packages.removed)
                        .map_err(|e| anyhow!("--sbom: {e}"))?;
                    for n in inv.notes() {
                        o.progress.line(&format!("--sbom: note: {n}"));
                    }
                    Some(inv)
                }
                None => None,
            };
            let done = single::execute(&ctx, p, Some(dst)).await?;
            write_contract(o, &done.contract)?;
            let digest = done.manifest.digest;
            if let (Some(path), Some(inv)) = (&o.sbom, inventory) {
                let bom = inv.cyclonedx(&dst.without_tag().to_string(), digest.as_str());
                crate::files::write_atomic(path, &serde_json::to_vec_pretty(&bom)?)
                    .with_context(|| format!("--sbom {}", path.display()))?;
            }
            let mut image = done.report;
            image.source = None;
            let timings = image.timings_ms.take().unwrap_or_default();
            let result = image.result.take().unwrap_or_default();
            report.image = Some(image);
            (digest, result, timings)
        }
        Some(idx) => {
            let (m, per, contract) = index::execute(&ctx, idx, &w.top, &chosen, images).await?;
            if let Some(c) = &contract {
                write_contract(o, c)?;
            }
            report.images = Some(per);
            (m.digest.clone(), ResultRef { digest: m.digest.to_string(), ..Default::default() }, Timings::default())
        }
    };
    // What readers of the destination see (a docker-archive keeps no manifest of its own).
    let result_digest = ctx.dst.stored_digest(&result_digest);
    let line = dst.by_digest(&result_digest);
    if let Some(p) = &o.digest_file {
        crate::files::write_atomic(p, format!("{result_digest}\n").as_bytes())
            .with_context(|| format!("--digest-file {}", p.display()))?;
    }
    report.result = Some(ResultRef { reference: Some(line.clone()), digest: result_digest.to_string(), ..result });
    if let Some(key) = &o.sign_key {
        match sign_result(&ctx, &result_digest, is_index, key).await {
            Ok(sig) => report.signature = sig,
            Err(e) => {
                write_report(o, &report)?;
                return Err(e.context(format!("{line} was pushed, but signing it failed")));
            }
        }
    }
    timings.total = Some(t0.elapsed().as_millis() as u64);
    report.timings_ms = Some(timings);
    write_report(o, &report)?;
    Ok(Outcome { pushed: Some(line), dry_run: Vec::new(), refused: None, report })
}

/// Scan, plan, guard and audit every image `w` names: the one image, or the chosen platforms
/// of an index (with the entries chosen).
async fn prepare_all(ctx: &Ctx<'_>, w: &walk::Walk) -> Result<(Vec<walk::Entry>, Vec<Prepared>)> {
    let o = ctx.o;
    if w.index.is_none() {
        return Ok((Vec::new(), vec![prepare::prepare(ctx, ctx.src_ref.clone(), w.top.clone()).await?]));
    }
    let chosen = index::select_platforms(w, &o.platforms, &o.progress)?;
    let mut images = Vec::new();
    for e in &chosen {
        let r = ctx.src_ref.with_digest(&e.digest);
        let m = ctx.src.manifest(&r).await?;
        images.push(prepare::prepare(ctx, r, m).await?);
    }
    Ok((chosen, images))
}

/// Sign the pushed result (for an index every platform and then the index); the report entry
/// is the signature of what `DST@digest` names.
async fn sign_result(
    ctx: &Ctx<'_>,
    digest: &crate::digest::Digest,
    is_index: bool,
    key: &crate::sign::SigningKey,
) -> Result<Option<SignatureReport>> {
    let (dst, progress) = (ctx.dst_ref, &ctx.o.progress);
    let signed = if is_index {
        crate::sign::store::sign(&ctx.dst, &dst.with_digest(digest), key, &Default::default(), progress)
            .await?
            .into_iter()
            .last()
    } else {
        Some(crate::sign::store::sign_digest(&ctx.dst, dst, digest, key, &Default::default(), progress).await?)
    };
    Ok(signed.map(|s| SignatureReport {
        tag: s.tag,
        manifest_digest: s.manifest_digest.to_string(),
        payload_digest: s.payload_digest.to_string(),
        added: s.added,
    }))
}

fn write_contract(o: &RebuildOptions, c: &crate::contract::Contract) -> Result<()> {
    if let Some(p) = &o.contract {
        crate::files::write_atomic(p, c.render(o.contract_format).as_bytes())
            .with_context(|| format!("--contract {}", p.display()))?;
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
