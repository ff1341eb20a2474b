//! `harden sbom`: its flags, turned into [`SbomOptions`].

use super::args::ReadArgs;
use super::{block_on, out, usage};
use anyhow::Result;
use clap::Args;
use harden::reference::ImageRef;
use harden::sbom::SbomOptions;
use std::process::ExitCode;

#[derive(Args)]
pub struct SbomArgs {
    /// Image: registry reference or oci:DIR[:TAG] (one platform; for an index, by digest).
    image: String,
    #[command(flatten)]
    read: ReadArgs,
}

pub fn run(a: SbomArgs) -> Result<ExitCode> {
    let image = ImageRef::parse(&a.image).map_err(usage)?;
    let (progress, net, limits) = a.read.open()?;
    let opts = SbomOptions { image, jobs: a.read.jobs, net, limits, progress: progress.clone() };
    let bom = block_on(&progress, "interrupted", harden::sbom::sbom(opts))?;
    out(&format!("{}\n", serde_json::to_string_pretty(&bom)?))?;
    Ok(ExitCode::SUCCESS)
}
