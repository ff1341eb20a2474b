//! `harden sbom`: its flags, turned into [`SbomOptions`].
//!
//! Owns: sbom's flags and where its output goes. Must not: read images or build the SBOM
//! ([`harden::inspect::sbom`] does).

use super::args::ReadArgs;
use super::{block_on, out_to, usage};
use anyhow::Result;
use clap::Args;
use harden::inspect::sbom::SbomOptions;
use harden::reference::ImageRef;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
#[command(after_help = harden::reference::IMAGE_FORMS)]
pub struct SbomArgs {
    /// Image (forms below): one platform; for an index, name it by digest.
    image: String,
    /// Write the SBOM to FILE (replaced whole, atomically) instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    read: ReadArgs,
}

pub fn run(a: SbomArgs) -> Result<ExitCode> {
    let image = ImageRef::parse(&a.image).map_err(usage)?;
    let read = a.read.options()?;
    let progress = read.progress.clone();
    let bom = block_on(&progress, "interrupted", harden::inspect::sbom::sbom(SbomOptions { image, read }))?;
    out_to(a.output.as_deref(), &format!("{}\n", serde_json::to_string_pretty(&bom)?))?;
    Ok(ExitCode::SUCCESS)
}
