//! One image scanned, planned, guarded and audited: everything decided, nothing rewritten or
//! pushed yet.
//!
//! Owns: [`Prepared`] and the config edit a plan implies ([`config_edit`]). Must not: write
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
    /// `SOURCE_DATE_EPOCH`'s time, when set.
    pub created: Option<String>,
    pub summary: String,
    /// The guard's refusals, one line each.
    pub broken: Vec<String>,
    pub findings: crate::audit::RebuildFindings,
    /// The result's runtime contract, from the predicted filesystem and config; None when the
    /// config edit refuses (execute then reports why).
    pub contract: Option<crate::contract::Contract>,
    pub report: ImageReport,
    pub t_scan: Duration,
}

/// Scan, plan, guard and audit one image.
pub async fn prepare(ctx: &Ctx<'_>, src_ref: ImageRef, manifest: Manifest) -> Result<Prepared> {
    let t0 = Instant::now();
    let o = ctx.o;
    let profile = &ctx.profile;
    let (view, config) = source::image_config(&ctx.src, &src_ref, &manifest).await?;
    // The source's repository holds its blobs: a push elsewhere in its registry may mount them.
    if let Some((registry, repository)) = ctx.src.registry_repository() {
        for d in view.layers.iter().map(|l| &l.digest).chain([&view.config.digest]) {
            ctx.locations.note(registry, repository, d);
        }
    }
    let indexes = Scanner {
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
        let hashes = ctx.share.hash_locs(&ctx.src, &view.layers, &check, &o.limits).await?;
        plan = plan::plan_with(&fs, profile, &plan::copies(&fs, &plan, &hashes));
    }
    if let Some(f) = plan.failures.first() {
        anyhow::bail!("{}: {f}", src_ref);
    }
    let epoch = config::source_date_epoch()?;
    let created = epoch.as_ref().map(|(_, s)| s.clone());
    let mtime =
        epoch.as_ref().map(|(s, _)| *s).unwrap_or_else(|| config::epoch_of(config["created"].as_str().unwrap_or("")));
    let new_dirs: Vec<&str> = plan.handed_over.iter().filter(|h| h.created).map(|h| h.path.as_str()).collect();
    let user = config::plan_user(&fs, profile, &new_dirs, mtime, o.codec)?;
    for h in &plan.handed_over {
        o.progress.line(&format!(
            "handed /{} to {}:{}{}",
            h.path,
            h.uid,
            h.gid,
            if h.created { " (created in the user layer)" } else { "" }
        ));
    }
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
    ) + &package_summary(&plan.packages);

    // Audit the source and the result as the plan and the config edit will make it.
    let mut predicted = config.clone();
    let predicted_ok =
        config::edit(&mut predicted, &config_edit(ctx, &manifest, &fs, &user, &summary, &created, None)).is_ok();
    // The predicted result's filesystem: audited here, and the source of the result's runtime
    // contract (the diff_ids the edit will get later are not part of it). Dropped at the end
    // of this function, so it never coexists with a rewrite's buffers.
    let after =
        predicted_ok.then(|| crate::audit::after_view(&fs, &plan, user.layer.as_ref().map(|l| l.blob.as_slice())));
    let contract = after.as_ref().map(|a| crate::contract::derive(a, &predicted, &profile.runtime).0);
    let findings = crate::audit::run::rebuild_findings(
        &ctx.src,
        &src_ref,
        &manifest.digest,
        &view,
        &fs,
        &config,
        &plan,
        after.as_ref().map(|a| (a, &predicted)),
        user.layer.as_ref().map(|u| &u.digest),
        o.sign_key.is_some(),
    )
    .await;
    o.progress.line(&findings.summary());

    let layer_digests: Vec<Digest> = view.layers.iter().map(|l| l.digest.clone()).collect();
    let report = ImageReport {
        source: Some(SourceRef { reference: src_ref.to_string(), digest: manifest.digest.to_string() }),
        plan: PlanReport::new(summary.clone(), &plan, &layer_digests),
        guard: GuardReport::new(&guard.broken, &guard.preexisting),
        findings: FindingsReport::from(&findings),
        result: None,
        layers: None,
        config_changes: None,
        timings_ms: None,
        verify_run: None,
    };
    drop(after);
    let broken = guard.broken.iter().map(ToString::to_string).collect();
    Ok(Prepared {
        src_ref,
        manifest,
        view,
        config,
        fs,
        plan,
        user,
        created,
        summary,
        broken,
        findings,
        contract,
        report,
        t_scan,
    })
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

/// The config edit for this image: with the result's `diff_ids` once known, else the source's
/// (for the predicted audit).
pub fn config_edit<'c>(
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
        source_name: super::base_name(ctx.src_ref, ctx.o),
        source_digest: manifest.digest.clone(),
        diff_ids: diff_ids.unwrap_or_else(|| fs.layers.iter().map(|l| l.diff_id.clone()).collect()),
        user: user.config_user.clone(),
        added_layer: user.layer.is_some(),
        summary: summary.to_string(),
        created: created.clone(),
    }
}

impl Prepared {
    /// The dry-run listing: the summary, the top-most removed paths (with how much goes with
    /// them; the report lists all), mode and capability changes, the guard's refusals.
    pub fn listing(&self) -> Vec<String> {
        let mut out = vec![self.summary.clone()];
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
