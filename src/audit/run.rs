//! `harden check`: fetch and scan the image as `rebuild` does (same temp-dir handling), look for
//! its cosign signature, audit, render. Reads only.

use super::format::{self, Format, ImageInfo};
use super::{audit, check_info, fails, AuditContext, Level, Signature, CHECKS};
use crate::digest::Digest;
use crate::fs::FinalFs;
use crate::pipeline;
use crate::profile;
use crate::progress::Progress;
use crate::reference::ImageRef;
use crate::transport::{Endpoint, NetOptions};
use crate::Failure;
use anyhow::{Context, Result};

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

/// The `.sig` tag cosign uses for a manifest digest, beside the image (same repository or layout).
fn sig_ref(r: &ImageRef, d: &Digest) -> ImageRef {
    let tag = Some(format!("sha256-{}.sig", d.hex()));
    match r {
        ImageRef::Registry { registry, repository, .. } => {
            ImageRef::Registry { registry: registry.clone(), repository: repository.clone(), tag, digest: None }
        }
        ImageRef::Layout { dir, .. } => ImageRef::Layout { dir: dir.clone(), tag, digest: None },
    }
}

/// Look for a cosign signature of `digest` beside `r`. Never fails: a look-up that errors
/// (other than "no such tag") says so in the result.
pub async fn signature(ep: &Endpoint, r: &ImageRef, digest: &Digest) -> Signature {
    let s = sig_ref(r, digest);
    match ep.manifest(&s).await {
        Ok(_) => Signature::Found(s.to_string()),
        Err(e) => {
            let msg: Vec<String> = e.chain().map(ToString::to_string).collect();
            let msg = msg.join(": ");
            let lower = msg.to_ascii_lowercase();
            let absent = [
                "manifest_unknown",
                "manifest unknown",
                "not found",
                "code: 404",
                "name_unknown",
                "no image with that tag",
            ]
            .iter()
            .any(|n| lower.contains(n));
            if absent {
                Signature::Absent(s.to_string())
            } else {
                Signature::Unknown(msg.replace('\n', " "))
            }
        }
    }
}

pub async fn check(o: CheckOptions) -> Result<CheckOutput> {
    for id in &o.ignore {
        if check_info(&id.to_ascii_uppercase()).is_none() {
            let known: Vec<&str> = CHECKS.iter().map(|c| c.id).collect();
            return Err(Failure::Usage(format!("--ignore {id}: no such check (known: {})", known.join(", "))).into());
        }
    }
    let profile = if o.profiles.is_empty() {
        None
    } else {
        Some(profile::load(&o.profiles).map_err(|e| Failure::Usage(e.to_string()))?)
    };
    let src = Endpoint::open(&o.image, &o.net)?;
    let spool = crate::spool::create().context("cannot create a temporary directory")?;
    let (manifest, view, config) = pipeline::resolve(&src, &o.image).await?;
    let memo = pipeline::ScanMemo::default();
    let (_blobs, indexes) =
        pipeline::scan_all(&src, &view, &config, spool.path(), o.jobs, &o.progress, &memo, &o.limits).await?;
    let fs = FinalFs::build(indexes);
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
    drop(spool);
    let image = ImageInfo { reference: o.image.to_string(), digest: manifest.digest.to_string() };
    let failed = fails(&findings, o.fail_on);
    let (n, f, w, i) = super::counts(&findings);
    o.progress.line(&format!(
        "{n} findings: {f} fatal, {w} warn, {i} info{}",
        if failed { format!(" (some at or above --fail-on {})", o.fail_on.as_str()) } else { String::new() }
    ));
    Ok(CheckOutput { rendered: format::render(o.format, &findings, &image, o.fail_on), failed })
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
    new_config: Option<&serde_json::Value>,
    user_layer: Option<(&[u8], &Digest)>,
    will_sign: bool,
) -> super::RebuildFindings {
    let before_ctx = AuditContext {
        reference: Some(r),
        layers: view.layers.iter().map(|l| Some(l.digest.to_string())).collect(),
        signature: signature(src, r, manifest_digest).await,
        ..Default::default()
    };
    let before = audit(fs, config, &before_ctx);
    let after = new_config.map(|cfg| {
        let view_after = super::after_view(fs, plan, user_layer.map(|(b, _)| b));
        let mut layers: Vec<Option<String>> =
            view.layers.iter().zip(&plan.layers).map(|(l, p)| p.is_unchanged().then(|| l.digest.to_string())).collect();
        layers.extend(user_layer.map(|(_, d)| Some(d.to_string())));
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
        audit(&view_after, cfg, &ctx)
    });
    super::RebuildFindings { before, after }
}
