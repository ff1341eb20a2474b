//! One image scanned, planned, guarded and audited: everything decided, nothing rewritten or
//! pushed yet.
//!
//! Owns: [`Prepared`] and the config edit a plan implies ([`EditFacts::edit`]). Must not: write
//! blobs or push.

use super::Ctx;
use crate::config::{self, ConfigEdit};
use crate::digest::Digest;
use crate::fs::FinalFs;
use crate::guard::Guard;
use crate::image::ManifestView;
use crate::plan;
use crate::reference::ImageRef;
use crate::report::{FindingsReport, GuardReport, ImageReport, PlanReport, SourceRef};
use crate::source::{self, Scanner};
use crate::transport::Manifest;
use anyhow::Result;
use serde_json::Value;
use std::time::{Duration, Instant};

/// One image scanned, planned and checked.
pub struct Prepared {
    pub src_ref: ImageRef,
    pub manifest: Manifest,
    pub view: ManifestView,
    pub config: Value,
    pub fs: FinalFs,
    pub plan: plan::Plan,
    pub user: config::UserPlan,
    /// What the config edit needs of this image besides the profile (see [`EditFacts::edit`]).
    pub edit: EditFacts,
    /// The guard's refusals, one line each.
    pub broken: Vec<String>,
    pub findings: crate::audit::RebuildFindings,
    /// The result's runtime contract, from the predicted filesystem and config; the config
    /// edit's error when it refuses (execute then fails with it, before rewriting anything).
    pub contract: Result<crate::contract::Contract>,
    pub report: ImageReport,
    pub t_scan: Duration,
}

/// Scan, plan, guard and audit one image.
pub async fn prepare(ctx: &Ctx<'_>, src_ref: ImageRef, manifest: Manifest) -> Result<Prepared> {
    let t0 = Instant::now();
    let (view, config, fs) = scan(ctx, &src_ref, &manifest).await?;
    let t_scan = t0.elapsed();
    let plan = plan_image(ctx, &src_ref, &view, &fs).await?;
    let (user, created) = plan_user(ctx, &fs, &plan, &config)?;
    let guard = check_guard(ctx, &fs, &plan, &config, &user);
    let edit = EditFacts {
        source_digest: manifest.digest.clone(),
        source_diff_ids: fs.layers.iter().map(|l| l.diff_id.clone()).collect(),
        user: user.config_user.clone(),
        added_layer: user.layer.is_some(),
        summary: summary(&plan, &view),
        created,
    };
    let planned = Planned { src_ref, manifest, view, config, fs, plan, user, edit };
    let (contract, findings) = predict(ctx, &planned).await;
    ctx.o.progress.line(&findings.summary());
    let Planned { src_ref, manifest, view, config, fs, plan, user, edit } = planned;
    let layer_digests: Vec<Digest> = view.layers.iter().map(|l| l.digest.clone()).collect();
    let report = ImageReport {
        source: Some(SourceRef { reference: src_ref.to_string(), digest: manifest.digest.to_string() }),
        plan: PlanReport::new(edit.summary.clone(), &plan, &layer_digests),
        guard: guard.report,
        findings: FindingsReport::from(&findings),
        result: None,
        layers: None,
        config_changes: None,
        timings_ms: None,
        verify_run: None,
    };
    Ok(Prepared {
        src_ref,
        manifest,
        view,
        config,
        fs,
        plan,
        user,
        edit,
        broken: guard.broken,
        findings,
        contract,
        report,
        t_scan,
    })
}

/// One image planned and guarded, not yet audited.
struct Planned {
    src_ref: ImageRef,
    manifest: Manifest,
    view: ManifestView,
    config: Value,
    fs: FinalFs,
    plan: plan::Plan,
    user: config::UserPlan,
    edit: EditFacts,
}

/// The image's manifest view, config and scanned filesystem. The source's repository holds
/// its blobs: they are noted, so a push elsewhere in its registry may mount them.
async fn scan(ctx: &Ctx<'_>, src_ref: &ImageRef, manifest: &Manifest) -> Result<(ManifestView, Value, FinalFs)> {
    let o = ctx.o;
    let (view, config) = source::image_config(&ctx.src, src_ref, manifest).await?;
    if let Some((registry, repository)) = ctx.src.registry_repository() {
        for d in view.layers.iter().map(|l| &l.digest).chain([&view.config.digest]) {
            ctx.locations.note(registry, repository, d);
        }
    }
    // Each layer's upload starts as it downloads: for a profile that changes no file every
    // layer goes as it is; for one that does, a guess that the plan leaves the layer alone,
    // stopped once the scan sees an entry the profile may change (not into a layout, whose
    // refusal leaves it untouched, nor where a mount from the source serves). Neither where
    // nothing may go up before a verdict that comes later: a dry run, --verify-run.
    let early = !o.dry_run && !o.verify_run;
    let guess =
        early && ctx.profile.changes_files() && ctx.dst.is_registry() && ctx.dst.mount_source(&ctx.src).is_none();
    let may_change = crate::plan::MayChange::new(&ctx.profile);
    let watch = move || Box::new(may_change.watcher()) as Box<dyn FnMut(crate::scan::Entry<'_>) -> bool + Send>;
    let indexes = Scanner {
        src: &ctx.src,
        share: &ctx.share,
        jobs: o.jobs,
        progress: &o.progress,
        limits: &o.limits,
        mirror_to: ((early && !ctx.profile.changes_files()) || guess).then_some(&ctx.dst),
        stop_mirroring: guess.then_some(&watch as &source::LayerWatch),
        hash_executables: ctx.profile.remove.iter().any(|r| r.follow_copies != crate::profile::FollowCopies::None),
    }
    .scan(&view, &config)
    .await?;
    Ok((view, config, FinalFs::build(indexes)))
}

/// The profile's plan for `fs`, with the byte-identical copies of removed tools (the few
/// candidates hashed: executables by the scan already, others by reading their layers again).
async fn plan_image(ctx: &Ctx<'_>, src_ref: &ImageRef, view: &ManifestView, fs: &FinalFs) -> Result<plan::Plan> {
    let profile = &ctx.profile;
    let mut plan = plan::plan(fs, profile);
    let check = plan::copy_check(fs, &plan, profile);
    if !check.is_empty() {
        let hashes = ctx.share.hash_locs(&ctx.src, &view.layers, &check, &ctx.o.limits).await?;
        plan = plan::plan_with(fs, profile, &plan::copies(fs, &plan, &hashes));
    }
    if let Some(f) = plan.failures.first() {
        anyhow::bail!("{}: {f}", src_ref);
    }
    Ok(plan)
}

/// The user the result runs as (and its layer, when the plan hands directories over), and
/// `SOURCE_DATE_EPOCH`'s time when set.
fn plan_user(
    ctx: &Ctx<'_>,
    fs: &FinalFs,
    plan: &plan::Plan,
    config: &Value,
) -> Result<(config::UserPlan, Option<String>)> {
    let o = ctx.o;
    let epoch = config::source_date_epoch()?;
    let created = epoch.as_ref().map(|(_, s)| s.clone());
    let mtime =
        epoch.as_ref().map(|(s, _)| *s).unwrap_or_else(|| config::epoch_of(config["created"].as_str().unwrap_or("")));
    let new_dirs: Vec<&str> = plan.handed_over.iter().filter(|h| h.created).map(|h| h.path.as_str()).collect();
    let user = config::plan_user(fs, &ctx.profile, &new_dirs, mtime, o.codec)?;
    for h in &plan.handed_over {
        o.progress.line(&format!(
            "handed /{} to {}:{}{}",
            h.path,
            h.uid,
            h.gid,
            if h.created { " (created in the user layer)" } else { "" }
        ));
    }
    Ok((user, created))
}

/// The guard's verdict on the plan: its refusals, one line each, and its report.
struct Verdict {
    broken: Vec<String>,
    report: GuardReport,
}

/// Will the result start? The guard follows the config as the profile leaves it (its health
/// check) and the user the plan sets; what it notes is said.
fn check_guard(ctx: &Ctx<'_>, fs: &FinalFs, plan: &plan::Plan, config: &Value, user: &config::UserPlan) -> Verdict {
    let o = ctx.o;
    let mut effective = config.clone();
    if let Some(crate::profile::HealthRule::Set(h)) = &ctx.profile.config.healthcheck {
        effective["config"]["Healthcheck"] = h.clone();
    }
    let guard = Guard::check(fs, plan, &effective, user.config_user.as_deref().or(config["config"]["User"].as_str()));
    for p in &guard.preexisting {
        o.progress.line(&format!("note: {p} (already so in the source image)"));
    }
    for n in &guard.notes {
        o.progress.line(&format!("note: guard: {n}"));
    }
    for n in &plan.notes {
        o.progress.line(&format!("note: {n}"));
    }
    Verdict {
        broken: guard.broken.iter().map(ToString::to_string).collect(),
        report: GuardReport::new(&guard.broken, &guard.preexisting),
    }
}

/// `removed 12 paths, stripped setuid/setgid from 3, …; 2 of 5 layers rewritten` and the
/// packages' line.
fn summary(plan: &plan::Plan, view: &ManifestView) -> String {
    let changed_layers = plan.layers.iter().filter(|l| !l.is_unchanged()).count();
    format!(
        "removed {} paths, stripped setuid/setgid from {}, capabilities from {}, o+w from {}; {} of {} layers rewritten",
        plan.removed.len(),
        plan.setuid_stripped.len(),
        plan.caps_stripped.len(),
        plan.world_writable_fixed.len(),
        changed_layers,
        view.layers.len()
    ) + &package_summary(&plan.packages)
}

/// Audit the source and the result as the plan and the config edit will make it, and derive
/// the result's runtime contract from the same prediction (or keep the edit's error).
async fn predict(ctx: &Ctx<'_>, p: &Planned) -> (Result<crate::contract::Contract>, crate::audit::RebuildFindings) {
    let mut predicted = p.config.clone();
    let predicted_edit = config::edit(&mut predicted, &p.edit.edit(ctx, None));
    // The predicted result's filesystem: audited here, and the source of the result's runtime
    // contract (the diff_ids the edit will get later are not part of it). Dropped at the end
    // of this function, so it never coexists with a rewrite's buffers.
    // A plan that changes no layer and adds none (a mirror) leaves the source's filesystem: that
    // is the prediction, not a second unpack simulation of the same layers.
    let same = p.user.layer.is_none() && p.plan.layers.iter().all(|l| l.is_unchanged());
    let built = (predicted_edit.is_ok() && !same)
        .then(|| crate::audit::after_view(&p.fs, &p.plan, p.user.layer.as_ref().map(|l| l.blob.as_slice())));
    let after = predicted_edit.is_ok().then(|| built.as_ref().unwrap_or(&p.fs));
    let contract = match (after, predicted_edit) {
        (Some(a), _) => Ok(crate::contract::derive(a, &predicted, &ctx.profile.runtime).0),
        (_, Err(e)) => Err(e),
        (None, Ok(_)) => Err(anyhow::anyhow!("{}: no runtime contract could be derived", p.src_ref)),
    };
    let described = ctx.describe(&p.manifest.digest).await;
    let findings = crate::audit::run::rebuild_findings(crate::audit::run::RebuildAudit {
        described: &described,
        reference: &p.src_ref,
        manifest_digest: &p.manifest.digest,
        view: &p.view,
        fs: &p.fs,
        config: &p.config,
        plan: &p.plan,
        after: after.map(|a| (a, &predicted)),
        user_layer: p.user.layer.as_ref().map(|u| &u.digest),
        will_sign: ctx.o.sign_key.is_some(),
    })
    .await;
    (contract, findings)
}

/// `; packages 131 → 117 (14 removed, 60 trimmed)` when a database changed, with `, 3 lost
/// files (database not edited)` for an rpm database's packages; else nothing.
pub fn package_summary(p: &plan::PackageChanges) -> String {
    if p.removed.is_empty() && p.trimmed.is_empty() && p.lost_files.is_empty() {
        return String::new();
    }
    let lost = if p.lost_files.is_empty() {
        String::new()
    } else {
        format!(", {} lost files (database not edited)", p.lost_files.len())
    };
    format!("; packages {} → {} ({} removed, {} trimmed{lost})", p.before, p.after, p.removed.len(), p.trimmed.len())
}

/// What the config edit needs of one image besides the profile: the source's digest and
/// diff_ids, the user the plan sets, the plan's summary, `SOURCE_DATE_EPOCH`'s time.
pub struct EditFacts {
    pub source_digest: Digest,
    /// The source's diff_ids: the predicted edit's (the result's are known after the rewrite).
    pub source_diff_ids: Vec<Digest>,
    pub user: Option<String>,
    pub added_layer: bool,
    pub summary: String,
    /// `SOURCE_DATE_EPOCH`'s time, when set.
    pub created: Option<String>,
}

impl EditFacts {
    /// The config edit for this image: with the result's `diff_ids` once known, else the
    /// source's (for the predicted audit and contract).
    pub(crate) fn edit<'c>(&self, ctx: &'c Ctx<'_>, diff_ids: Option<Vec<Digest>>) -> ConfigEdit<'c> {
        ConfigEdit {
            profile: &ctx.profile,
            source_name: super::base_name(ctx.src_ref, ctx.o),
            source_digest: self.source_digest.clone(),
            diff_ids: diff_ids.unwrap_or_else(|| self.source_diff_ids.clone()),
            user: self.user.clone(),
            added_layer: self.added_layer,
            summary: self.summary.clone(),
            created: self.created.clone(),
        }
    }
}

impl Prepared {
    /// The dry-run listing: the summary, the top-most removed paths (with how much goes with
    /// them; the report lists all), mode and capability changes, the guard's refusals.
    pub fn listing(&self) -> Vec<String> {
        let mut out = vec![self.edit.summary.clone()];
        for (path, r) in &self.plan.removed {
            let (parent, _) = crate::layer::path::split_parent(path);
            if !parent.is_empty() && self.plan.is_removed(parent) {
                continue;
            }
            let prefix = format!("{path}/");
            let under = self.plan.removed.range(prefix.clone()..).take_while(|(q, _)| q.starts_with(&prefix)).count();
            let extra = if under > 0 { format!(" (+{under} under it)") } else { String::new() };
            out.push(format!("remove /{path}{extra}  [{} from {}]", r.pattern, r.origin));
        }
        out.extend(self.plan.setuid_stripped.iter().map(|p| format!("chmod a-s /{p}")));
        out.extend(self.plan.caps_stripped.iter().map(|p| format!("strip security.capability /{p}")));
        out.extend(self.broken.iter().map(|b| format!("guard: {b}")));
        out
    }
}
