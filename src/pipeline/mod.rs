//! Pipeline: the order of the stages for `rebuild`, read top-down in [`rebuild`] and [`run`]
//! as go-containerregistry's `crane.Copy` reads — validate the options → resolve
//! ([`crate::source::walk`]) and choose the platforms → the signature gate ([`supply`]) →
//! reuse a recorded result ([`reuse`]) or scan, plan, guard and audit every image
//! ([`prepare`]) → execute one image ([`single`]) or each platform and then the index
//! ([`index`]): rewrite, config, push → sign and attest ([`supply`]) → one report, written in
//! one place whatever the outcome. Every image is planned and guarded before any layer is
//! rewritten, so a refusal pushes nothing.
//!
//! Owns: ordering, the run's shared state ([`Ctx`]: endpoints, the scan share, the rewrite
//! cache), the report's assembly. Must not: hold policy (the profile's and the plan's), print
//! to stdout (the CLI does), or prompt.

mod index;
mod keyless_gate;
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
    /// Refuse (exit 3) unless the source carries a keyless signature for this identity and
    /// issuer (with `require_signature`: either passes).
    pub require_identity: Option<Arc<crate::sign::keyless::Gate>>,
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
            require_identity: None,
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

/// What the result records as its base name: `--base-name`, else the name a registry serves
/// the source by (its repository and tag; the digest is recorded separately), else nothing.
pub fn base_name(src: &ImageRef, o: &RebuildOptions) -> Option<String> {
    o.base_name.clone().or_else(|| src.pullable_name())
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
    /// What describes each source digest (`.sig`, `.att`, referrers), looked up once: the
    /// audit and the not-carried-over report both ask.
    described: tokio::sync::Mutex<std::collections::BTreeMap<Digest, Arc<crate::sign::discover::Described>>>,
}

impl<'a> Ctx<'a> {
    /// The run's shared state: the profile, the caches (a batch's, or this run's own), both
    /// endpoints.
    fn open(src: &'a ImageRef, dst: &'a ImageRef, o: &'a RebuildOptions) -> Result<Ctx<'a>> {
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
        Ok(Ctx {
            o,
            src_ref: src,
            dst_ref: dst,
            src: Endpoint::open(src, &o.net.for_source())?,
            dst: Endpoint::open(dst, &o.net.for_destination())?,
            profile,
            share,
            cache,
            locations,
            shared: o.shared_cache.clone(),
            described: Default::default(),
        })
    }

    /// What describes the source digest `d` beside the source ([`crate::sign::discover`]),
    /// looked up on first ask.
    pub async fn describe(&self, d: &Digest) -> Arc<crate::sign::discover::Described> {
        let mut memo = self.described.lock().await;
        if let Some(found) = memo.get(d) {
            return Arc::clone(found);
        }
        let found = Arc::new(crate::sign::discover::discover(&self.src, self.src_ref, d).await);
        memo.insert(d.clone(), Arc::clone(&found));
        found
    }
}

/// Rebuild `src` into `dst`, in the order `crane.Copy` reads: the options checked against the
/// endpoints, the source resolved and its images chosen; then the signature gate, a recorded
/// result reused or every image prepared, executed (one image or an index), signed and
/// attested. Once the source is resolved, the report is written here, once, whatever the
/// outcome (success, refusal, error).
pub async fn rebuild(src: &ImageRef, dst: &ImageRef, o: &RebuildOptions) -> Result<Outcome> {
    let t0 = Instant::now();
    let ctx = Ctx::open(src, dst, o)?;
    validate(&ctx)?;
    let w = walk::walk(&ctx.src, src).await?;
    let chosen = choose(&ctx, &w)?;
    let mut report = RebuildReport::new(
        SourceRef { reference: src.to_string(), digest: w.top.digest.to_string() },
        ProfileRef { name: ctx.profile.name(), digest: ctx.profile.digest().to_string() },
        o.codec.to_string(),
        !o.recompress,
    );
    let ended = run(&ctx, &w, &chosen, &mut report, t0).await;
    let written = write_report(o, &report);
    let ended = match (ended, written) {
        (Ok(e), written) => written.map(|()| e)?,
        (Err(e), Ok(())) => return Err(e),
        (Err(e), Err(w)) => {
            o.progress.line(&format!("note: {w:#}"));
            return Err(e);
        }
    };
    if let Some((k, manifest)) = &ended.record {
        k.store(&ctx, manifest, &report);
    }
    Ok(Outcome { pushed: ended.pushed, dry_run: ended.dry_run, refused: ended.refused, report })
}

/// The options that contradict each other or the endpoints (usage errors, before any I/O).
fn validate(ctx: &Ctx<'_>) -> Result<()> {
    let o = ctx.o;
    if (o.bundle || o.attest) && o.sign_key.is_none() {
        bail!(Failure::Usage("--bundle and --attest sign with --sign-key; give one".into()));
    }
    if o.sign_key.is_some() && !ctx.dst.holds_signatures() {
        bail!(Failure::Usage(format!(
            "{}: a docker-archive cannot hold a signature; sign after loading it",
            ctx.dst_ref
        )));
    }
    Ok(())
}

/// What of the source is rebuilt: its one image, or the chosen platforms of its index.
struct Chosen {
    platforms: Vec<walk::Entry>,
    /// Whether the result is an index (a destination that holds none takes one platform, as
    /// an image).
    index: bool,
}

/// The platforms to rebuild (none for an image), refusing what the destination or the
/// options cannot take.
fn choose(ctx: &Ctx<'_>, w: &walk::Walk) -> Result<Chosen> {
    let (o, src, dst) = (ctx.o, ctx.src_ref, ctx.dst_ref);
    if w.index.is_none() {
        return Ok(Chosen { platforms: Vec::new(), index: false });
    }
    if o.sbom.is_some() {
        bail!(Failure::Usage(format!(
            "--sbom: {src} is a multi-platform index; rebuild one platform (by digest) to get its SBOM"
        )));
    }
    let platforms = index::select_platforms(w, &o.platforms, &o.progress)?;
    if !ctx.dst.holds_index() && platforms.len() > 1 {
        bail!(Failure::Usage(format!(
            "{dst}: holds one image, and the source has {} platforms; choose one with --platform",
            platforms.len()
        )));
    }
    Ok(Chosen { index: ctx.dst.holds_index(), platforms })
}

/// How a run ended, besides its report (which [`rebuild`] writes and hands back).
struct Ending {
    pushed: Option<String>,
    dry_run: Vec<PlanListing>,
    refused: Option<Failure>,
    /// The result to record for the next run's reuse, once the report is written.
    record: Option<(reuse::ResultKey, crate::transport::Manifest)>,
}

/// Everything after the source is resolved, filling `report` as it goes: gate, reuse or
/// prepare, execute, sign and attest.
async fn run(
    ctx: &Ctx<'_>,
    w: &walk::Walk,
    chosen: &Chosen,
    report: &mut RebuildReport,
    t0: Instant,
) -> Result<Ending> {
    let o = ctx.o;
    // The source as read: the manifest (or index) and each chosen platform.
    let source_digests: Vec<Digest> =
        std::iter::once(w.top.digest.clone()).chain(chosen.platforms.iter().map(|e| e.digest.clone())).collect();
    // Before anything is fetched or rewritten: is the source signed as required?
    report.source_signatures = supply::gate(ctx, &source_digests).await?;
    // A rerun whose result the destination still holds: re-tag it, no planning, no rewrite.
    // --verify-run runs what it pushes: a recorded result is not taken on trust.
    let result_key = if o.verify_run { None } else { reuse::key(ctx, &w.top.digest) };
    if let Some(k) = &result_key {
        if let Some(found) = k.find(ctx, &w.top).await {
            return reuse_result(ctx, report, found, t0).await;
        }
    }
    // Fail fast, before anything is fetched or rewritten: refused credentials cost a second,
    // not a rebuild. A reuse needs no such check: its only push (the manifest, or mounts)
    // says it, and a rerun of a batch costs what skopeo's does without one.
    if !o.dry_run {
        ctx.dst
            .check_push()
            .await
            .with_context(|| format!("{}: the destination does not accept a push", ctx.dst_ref))?;
    }
    // Only once no reuse applies: a reused result says what its run left behind (the same
    // source digests), so a rerun looks up no signatures or referrers of the source.
    report.not_carried_over = supply::not_carried(ctx, &source_digests).await;
    // Plan every image before rewriting any: a refusal leaves nothing pushed.
    let images = prepare_all(ctx, w, &chosen.platforms).await?;
    if o.scans.is_none() {
        // Nothing more is scanned in this run: each image's index now lives only as long as
        // the image needs it (single::execute drops it before the rewrite).
        ctx.share.forget_scans().await;
    }
    if let Some(stop) = stop_before_rewrite(ctx, report, &images, chosen.index)? {
        return Ok(stop);
    }
    let mut x = match chosen.index {
        false => execute_single(ctx, w, images, report).await?,
        true => execute_index(ctx, w, &chosen.platforms, images, report).await?,
    };
    // Where the blobs were seen, for the next push to this registry (a hint: failing to keep
    // it fails nothing).
    if let Err(e) = ctx.locations.save() {
        o.progress.line(&format!("note: cannot record known blob locations: {e}"));
    }
    // What readers of the destination see (a docker-archive keeps no manifest of its own).
    x.digest = ctx.dst.stored_digest(&x.digest);
    let line = ctx.dst_ref.by_digest(&x.digest);
    write_digest_file(o, &x.digest)?;
    report.result = Some(ResultRef { reference: Some(line.clone()), digest: x.digest.to_string(), ..x.result.clone() });
    sign_and_attest(ctx, w, report, &x, &line).await?;
    x.timings.total = Some(t0.elapsed().as_millis() as u64);
    report.timings_ms = Some(x.timings);
    let record = result_key.map(|k| (k, x.manifest));
    Ok(Ending { pushed: Some(line), dry_run: Vec::new(), refused: None, record })
}

/// A dry run ends after the plan (its listing, and the guard's refusal if any); a plan the
/// guard refuses ends the run (exit 3) unless `--allow-broken`. None: go on and rewrite.
fn stop_before_rewrite(
    ctx: &Ctx<'_>,
    report: &mut RebuildReport,
    images: &[Prepared],
    is_index: bool,
) -> Result<Option<Ending>> {
    let o = ctx.o;
    let broken: Vec<&String> = images.iter().flat_map(|p| &p.broken).collect();
    if o.dry_run {
        let dry_run = images
            .iter()
            .map(|p| PlanListing { image: is_index.then(|| p.src_ref.to_string()), lines: p.listing() })
            .collect();
        set_images(report, images, is_index);
        let refused = (!broken.is_empty() && !o.allow_broken)
            .then(|| Failure::Policy(format!("the plan would break the image: {}", broken[0])));
        return Ok(Some(Ending { pushed: None, dry_run, refused, record: None }));
    }
    for b in &broken {
        o.progress.line(&format!("guard: {b}"));
    }
    if broken.is_empty() || o.allow_broken {
        return Ok(None);
    }
    set_images(report, images, is_index);
    bail!(Failure::Policy(format!(
        "refusing to produce an image that cannot start: {} (--allow-broken overrides)",
        broken[0]
    )))
}

/// The planned images in the report of a run that stops before rewriting.
fn set_images(report: &mut RebuildReport, images: &[Prepared], is_index: bool) {
    if is_index {
        report.images = Some(images.iter().map(|p| p.report.clone()).collect());
    } else if let Some(p) = images.first() {
        let mut r = p.report.clone();
        r.source = None;
        report.image = Some(r);
    }
}

/// The result pushed: its digest, what the report says of it, what to attest.
struct Executed {
    /// The manifest (or index) pushed: recorded for a rerun's reuse.
    manifest: crate::transport::Manifest,
    digest: Digest,
    result: ResultRef,
    timings: Timings,
    attest: Vec<supply::Attest>,
    /// For an index, each platform's result (signed before the index).
    platforms: Vec<Digest>,
    index: bool,
}

/// Rebuild the one image, writing its contract and SBOM (`--contract`, `--sbom`).
async fn execute_single(
    ctx: &Ctx<'_>,
    w: &walk::Walk,
    images: Vec<Prepared>,
    report: &mut RebuildReport,
) -> Result<Executed> {
    let (o, dst) = (ctx.o, ctx.dst_ref);
    let p = images.into_iter().next().ok_or_else(|| anyhow!("no image to rebuild"))?;
    let inventory = match o.sbom.is_some() || o.attest {
        true => Some(inventory(o, &p).map_err(|e| anyhow!("--sbom/--attest: {e}"))?),
        false => None,
    };
    let done = single::execute(ctx, p, Some(dst)).await?;
    write_contract(o, &done.contract)?;
    let digest = done.manifest.digest.clone();
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
    Ok(Executed { digest, manifest: done.manifest, result, timings, attest, platforms: Vec::new(), index: false })
}

/// The packages of a prepared image's result, its notes said.
fn inventory(o: &RebuildOptions, p: &Prepared) -> Result<crate::pkgdb::sbom::Inventory> {
    let inv = crate::pkgdb::sbom::Inventory::of(&p.fs, &p.plan.packages.removed)?;
    for n in inv.notes() {
        o.progress.line(&format!("--sbom: note: {n}"));
    }
    Ok(inv)
}

/// Rebuild each chosen platform, then the index listing them.
async fn execute_index(
    ctx: &Ctx<'_>,
    w: &walk::Walk,
    chosen: &[walk::Entry],
    images: Vec<Prepared>,
    report: &mut RebuildReport,
) -> Result<Executed> {
    let (o, dst) = (ctx.o, ctx.dst_ref);
    let idx = w.index.as_ref().ok_or_else(|| anyhow!("{}: not an index", ctx.src_ref))?;
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
    let done = index::execute(ctx, idx, &w.top, chosen, images).await?;
    if let Some(c) = &done.contract {
        write_contract(o, c)?;
    }
    let mut attest = Vec::new();
    let mut platforms = Vec::new();
    for (i, (r, e)) in done.images.iter().zip(chosen).enumerate() {
        let Some(out) = r.result.as_ref().and_then(|x| Digest::parse(&x.digest).ok()) else { continue };
        let sbom = inventories.get(i).map(|inv| inv.cyclonedx(&dst.without_tag().to_string(), out.as_str()));
        attest.push(supply::Attest { image: supply::prov_image(Some(e.platform()), &e.digest, &out, r), sbom });
        platforms.push(out);
    }
    report.images = Some(done.images);
    // A Docker manifest list stored where only OCI is held became an OCI index.
    let converted_to_oci = (done.manifest.media_type != w.top.media_type)
        .then(|| crate::report::Conversion { from: w.top.media_type.clone(), to: done.manifest.media_type.clone() });
    let result = ResultRef { digest: done.manifest.digest.to_string(), converted_to_oci, ..Default::default() };
    Ok(Executed {
        digest: done.manifest.digest.clone(),
        manifest: done.manifest,
        result,
        timings: Timings::default(),
        attest,
        platforms,
        index: true,
    })
}

/// With `--sign-key`: sign the pushed result (`line`), and with `--attest` attest it.
async fn sign_and_attest(
    ctx: &Ctx<'_>,
    w: &walk::Walk,
    report: &mut RebuildReport,
    x: &Executed,
    line: &str,
) -> Result<()> {
    let Some(key) = &ctx.o.sign_key else { return Ok(()) };
    let (sig, bundles) = supply::sign_result(ctx, &x.digest, &x.platforms, key)
        .await
        .map_err(|e| e.context(format!("{line} was pushed, but signing it failed")))?;
    (report.signature, report.bundles) = (sig, bundles);
    if ctx.o.attest {
        let run = supply::provenance_run(ctx, &w.top.digest, &report.source_signatures)?;
        report.attestations = supply::attest_result(ctx, key, &run, x.index.then_some(&x.digest), &x.attest)
            .await
            .map_err(|e| e.context(format!("{line} was pushed and signed, but attesting it failed")))?;
    }
    Ok(())
}

/// Finish a rerun from a recorded result: the destination's tag points at it again, the
/// report says so and carries the report of the run that made it.
async fn reuse_result(ctx: &Ctx<'_>, report: &mut RebuildReport, found: reuse::Found, t0: Instant) -> Result<Ending> {
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
    // What the run that made it left behind of this same source (its lines were said then).
    report.not_carried_over = serde_json::from_value(found.made_by["not_carried_over"].clone()).unwrap_or_default();
    report.reused = Some(crate::report::Reused { record: found.key, made_by: found.made_by });
    report.timings_ms = Some(Timings { total: Some(t0.elapsed().as_millis() as u64), ..Default::default() });
    Ok(Ending { pushed: Some(line), dry_run: Vec::new(), refused: None, record: None })
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
