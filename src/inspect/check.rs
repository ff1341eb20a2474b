//! `harden check`: read the image (every image of an index) through the one read path, look
//! for its cosign signature ([`crate::audit::run::signature`]), audit, render.
//!
//! Owns: the command's flow and its options. Must not: change anything, or hold checks (they
//! are [`crate::audit`]'s).

use super::ReadOptions;
use crate::audit::format::{self, Format};
use crate::audit::run::signature;
use crate::audit::{audit, check_info, counts, fails, AuditContext, ImageInfo, Level, Signature, CHECKS};
use crate::profile;
use crate::reference::ImageRef;
use crate::source::{self, read::Choose, read::ReadImage};
use crate::Failure;
use anyhow::Result;

pub struct CheckOptions {
    pub image: ImageRef,
    pub profiles: Vec<String>,
    pub format: Format,
    pub fail_on: Level,
    pub ignore: Vec<String>,
    pub read: ReadOptions,
}

/// What `check` prints, and whether something reached `--fail-on`.
pub struct CheckOutput {
    pub rendered: String,
    pub failed: bool,
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
    let progress = &o.read.progress;
    // An index is audited image by image.
    let mut images = source::read_images(&o.image, Choose::Every, &o.read).await?;
    let mut rendered = Vec::new();
    let mut failed = false;
    while let Some(read) = images.next().await {
        let ReadImage { r, manifest, view, config, fs, platform } = read?;
        for n in &fs.unpack_notes {
            progress.line(&format!("{r}: note: {n}"));
        }
        let sig = signature(images.src(), &o.image, &manifest.digest).await;
        if let Signature::Found(at) = &sig {
            progress.line(&format!("cosign signature found at {at} (not verified: harden verify --key does that)"));
        }
        let ctx = AuditContext {
            reference: Some(&o.image),
            layers: view.layers.iter().map(|l| Some(l.digest.to_string())).collect(),
            signature: sig,
            profile: profile.as_ref(),
            ignore: &o.ignore,
        };
        let findings = audit(&fs, &config, &ctx);
        // The platform its index entry states, else its config's (SARIF keeps platforms apart by it).
        let image = ImageInfo::new(r.to_string(), manifest.digest.to_string(), platform.as_ref().unwrap_or(&config));
        let this_failed = fails(&findings, o.fail_on);
        failed |= this_failed;
        let (n, f, w, i) = counts(&findings);
        progress.line(&format!(
            "{r}: {n} findings: {f} fatal, {w} warn, {i} info{}",
            if this_failed { format!(" (some at or above --fail-on {})", o.fail_on.as_str()) } else { String::new() }
        ));
        rendered.push(format::render(o.format, &findings, &image, o.fail_on));
    }
    drop(images);
    Ok(CheckOutput { rendered: format::combine(o.format, rendered), failed })
}
