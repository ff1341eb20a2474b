//! `harden sbom IMAGE`: fetch and scan one image through [`crate::source`] as `check` does, and
//! describe its packages as CycloneDX ([`crate::pkgdb::sbom`]) — the same document
//! `rebuild --sbom` writes for its result.
//!
//! Owns: the command's flow. Must not: change anything.

use crate::progress::Progress;
use crate::reference::ImageRef;
use crate::source::{self, walk};
use crate::transport::{Endpoint, NetOptions};
use crate::Failure;
use anyhow::{anyhow, Result};

pub struct SbomOptions {
    pub image: ImageRef,
    pub jobs: usize,
    pub net: NetOptions,
    pub limits: crate::layer::Limits,
    pub progress: Progress,
}

/// The SBOM of one image manifest (an index is refused: name a platform by digest).
pub async fn sbom(o: SbomOptions) -> Result<serde_json::Value> {
    let src = Endpoint::open(&o.image, &o.net)?;
    let share = source::ScanShare::new()?;
    let w = walk::walk(&src, &o.image).await?;
    if w.index.is_some() {
        let platforms: Vec<String> = w
            .entries
            .iter()
            .filter(|e| e.kind == walk::EntryKind::Image)
            .map(|e| o.image.with_digest(&e.digest).to_string())
            .collect();
        return Err(Failure::Usage(format!(
            "{} is a multi-platform index: name one platform by digest ({})",
            o.image,
            platforms.join(", ")
        ))
        .into());
    }
    let scanner = source::Scanner {
        src: &src,
        share: &share,
        jobs: o.jobs,
        progress: &o.progress,
        limits: &o.limits,
        mirror_to: None,
    };
    let (_, _, fs) = scanner.read(&o.image, &w.top).await?;
    let inv = crate::pkgdb::sbom::Inventory::of(&fs, &[]).map_err(|e| anyhow!("{}: {e}", o.image))?;
    for n in inv.notes() {
        o.progress.line(&format!("note: {n}"));
    }
    o.progress.line(&format!("{} packages", inv.count()));
    Ok(inv.cyclonedx(&o.image.without_tag().to_string(), w.top.digest.as_str()))
}
