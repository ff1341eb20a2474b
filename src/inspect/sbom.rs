//! `harden sbom IMAGE`: read one image manifest through the one read path and describe its
//! packages as CycloneDX ([`crate::pkgdb::sbom`]) — the same document `rebuild --sbom` writes
//! for its result.
//!
//! Owns: the command's flow. Must not: change anything.

use super::ReadOptions;
use crate::reference::ImageRef;
use crate::source;
use anyhow::{anyhow, Result};

pub struct SbomOptions {
    pub image: ImageRef,
    pub read: ReadOptions,
}

/// The SBOM of one image manifest (an index is refused: name a platform by digest).
pub async fn sbom(o: SbomOptions) -> Result<serde_json::Value> {
    let read = source::read::read_one(&o.image, &o.read).await?;
    let inv = crate::pkgdb::sbom::Inventory::of(&read.fs, &[]).map_err(|e| anyhow!("{}: {e}", o.image))?;
    for n in inv.notes() {
        o.read.progress.line(&format!("note: {n}"));
    }
    o.read.progress.line(&format!("{} packages", inv.count()));
    Ok(inv.cyclonedx(&o.image.without_tag().to_string(), read.manifest.digest.as_str()))
}
