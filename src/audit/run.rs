//! `harden check`: fetch and scan the image through [`crate::source`] as `rebuild` does, look
//! for its cosign signature, audit, render. Reads only.

use super::format::{self, Format};
use super::ImageInfo;
use super::{audit, check_info, fails, AuditContext, Level, Signature, CHECKS};
use crate::digest::Digest;
use crate::fs::FinalFs;
use crate::profile;
use crate::progress::Progress;
use crate::reference::ImageRef;
use crate::source::{self, walk};
use crate::transport::{Endpoint, NetOptions};
use crate::Failure;
use anyhow::Result;

pub struct CheckOptions {
    pub image: ImageRef,
    pub profiles: Vec<String>,
    pub format: Format,
    pub fail_on: Level,
    pub ignore: Vec<String>,
    pub jobs: usize,
    pub net: NetOptions,
    /// What reading a layer may cost (as for rebuild).
    pub limits: crate::layer::Limits,
    pub progress: Progress,
}

/// What `check` prints, and whether something reached `--fail-on`.
pub struct CheckOutput {
    pub rendered: String,
    pub failed: bool,
}

/// Look for a cosign signature of `digest` beside `r`: the legacy `.sig`, else a cosign v3
/// bundle among its referrers. Never fails: a look-up that errors (other than "no such tag")
/// says so in the result.
pub async fn signature(ep: &Endpoint, r: &ImageRef, digest: &Digest) -> Signature {
    let unknown = |e: anyhow::Error| {
        let msg: Vec<String> = e.chain().map(ToString::to_string).collect();
        Signature::Unknown(msg.join(": ").replace('\n', " "))
    };
    let s = crate::sign::store::sig_ref(r, digest);
    match ep.manifest_opt(&s).await {
        Ok(Some(_)) => return Signature::Found(s.to_string()),
        Ok(None) => {}
        Err(e) => return unknown(e),
    }
    match crate::sign::referrers::list(ep, r, digest).await {
        Ok(list) => match list.iter().find(|d| d["artifactType"] == crate::sign::bundle::BUNDLE_MEDIA_TYPE) {
            Some(d) => {
                Signature::Found(format!("{} (bundle {})", r.by_digest(digest), d["digest"].as_str().unwrap_or("")))
            }
            None => Signature::Absent(s.to_string()),
        },
        Err(e) => unknown(e),
    }
}

pub async fn check(o: CheckOptions) -> Result<CheckOutput> {
    for id in &o.ignore {
        if check_info(&id.to_ascii_uppercase()).is_none() {
            let known: Vec<&str> = CHECKS.iter().map(|c| c.id.as_str()).collect();
            return Err(Failure::Usage(format!("--ignore {id}: no such check (known: {})", known.join(", "))).into());
        }
    }
    let profile = if o.profiles.is_empty() {
        None
    } else {
        Some(profile::load(&o.profiles).map_err(|e| Failure::Usage(e.to_string()))?)
    };
    let src = Endpoint::open(&o.image, &o.net)?;
    let share = source::ScanShare::new()?;
    // An index is audited image by image (attestation manifests are not images; nested
    // indexes are followed by the one walk).
    let w = walk::walk(&src, &o.image).await?;
    // Each with the platform its index entry states (SARIF keeps the platforms apart by it).
    let images: Vec<(ImageRef, crate::transport::Manifest, Option<serde_json::Value>)> = if w.index.is_some() {
        let mut out = Vec::new();
        for e in w.entries.iter().filter(|e| e.kind == walk::EntryKind::Image) {
            let r = o.image.with_digest(&e.digest);
            let m = e.fetch(&src, &o.image).await?;
            out.push((r, m, e.descriptor.get("platform").cloned()));
        }
        out
    } else {
        vec![(o.image.clone(), w.top, None)]
    };
    let mut rendered = Vec::new();
    let mut failed = false;
    for (r, manifest, platform) in images {
        let scanner = source::Scanner {
            src: &src,
            share: &share,
            jobs: o.jobs,
            progress: &o.progress,
            limits: &o.limits,
            mirror_to: None,
        };
        let (view, config, fs) = scanner.read(&r, &manifest).await?;
        for n in &fs.unpack_notes {
            o.progress.line(&format!("{r}: note: {n}"));
        }
        let sig = signature(&src, &o.image, &manifest.digest).await;
        if let Signature::Found(at) = &sig {
            o.progress.line(&format!("cosign signature found at {at} (not verified: harden verify --key does that)"));
        }
        let ctx = AuditContext {
            reference: Some(&o.image),
            layers: view.layers.iter().map(|l| Some(l.digest.to_string())).collect(),
            signature: sig,
            profile: profile.as_ref(),
            ignore: &o.ignore,
        };
        let findings = audit(&fs, &config, &ctx);
        let image = ImageInfo::new(r.to_string(), manifest.digest.to_string(), platform.as_ref().unwrap_or(&config));
        let this_failed = fails(&findings, o.fail_on);
        failed |= this_failed;
        let (n, f, w, i) = super::counts(&findings);
        o.progress.line(&format!(
            "{r}: {n} findings: {f} fatal, {w} warn, {i} info{}",
            if this_failed { format!(" (some at or above --fail-on {})", o.fail_on.as_str()) } else { String::new() }
        ));
        rendered.push(format::render(o.format, &findings, &image, o.fail_on));
    }
    drop(share);
    Ok(CheckOutput { rendered: format::combine(o.format, rendered), failed })
}

/// `rebuild`'s audit: the source as fetched, and the result predicted from the plan (see
/// [`super::after_view`]), the user layer and the edited config (`None` when the edit refuses).
/// The result's rewritten layers have no digest yet: [`super::RebuildFindings::name_after_layers`]
/// names them once the manifest is built.
#[allow(clippy::too_many_arguments)]
pub async fn rebuild_findings(
    src: &Endpoint,
    r: &ImageRef,
    manifest_digest: &Digest,
    view: &crate::image::ManifestView,
    fs: &FinalFs,
    config: &serde_json::Value,
    plan: &crate::plan::Plan,
    after: Option<(&FinalFs, &serde_json::Value)>,
    user_layer: Option<&Digest>,
    will_sign: bool,
) -> super::RebuildFindings {
    let before_ctx = AuditContext {
        reference: Some(r),
        layers: view.layers.iter().map(|l| Some(l.digest.to_string())).collect(),
        signature: signature(src, r, manifest_digest).await,
        ..Default::default()
    };
    let audit_after = |(view_after, cfg): (&FinalFs, &serde_json::Value)| {
        let mut layers: Vec<Option<String>> =
            view.layers.iter().zip(&plan.layers).map(|(l, p)| p.is_unchanged().then(|| l.digest.to_string())).collect();
        layers.extend(user_layer.map(|d| Some(d.to_string())));
        let ctx = AuditContext {
            // The result is printed, and best referred to, by digest.
            reference: None,
            layers,
            signature: if will_sign {
                Signature::Found("signed by this rebuild (--sign-key)".into())
            } else {
                Signature::Absent("the result (rebuild signs only with --sign-key)".into())
            },
            ..Default::default()
        };
        audit(view_after, cfg, &ctx)
    };
    // The two audits are independent and CPU-bound (a walk of every entry per check): side by
    // side, on a thread each, when a thread can be had.
    let (before, after) = std::thread::scope(|s| {
        let other = after.map(|after| {
            std::thread::Builder::new()
                .name("harden-audit".into())
                .spawn_scoped(s, move || audit_after(after))
                .map_err(|_| after)
        });
        let before = audit(fs, config, &before_ctx);
        let after = other.map(|h| match h {
            Ok(h) => h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
            Err(after) => audit_after(after),
        });
        (before, after)
    });
    super::RebuildFindings { before, after }
}

/// `harden contract IMAGE`: fetch and scan the image as `check` does and derive its runtime
/// contract (crate::contract) with the profiles' `[runtime]` rules (none without `-p`). For an
/// index, the first image's (platforms differ in binaries, not in users or setuid bits).
pub async fn contract(
    image: &ImageRef,
    profiles: &[String],
    jobs: usize,
    net: &NetOptions,
    limits: &crate::layer::Limits,
    progress: &Progress,
) -> Result<crate::contract::Contract> {
    let rules = if profiles.is_empty() {
        profile::RuntimeRules::default()
    } else {
        profile::load(profiles).map_err(|e| Failure::Usage(e.to_string()))?.runtime
    };
    let (_, _, config, fs) = source::read_first_image(image, net, jobs, limits, progress).await?;
    let (c, _) = crate::contract::derive(&fs, &config, &rules);
    Ok(c)
}
