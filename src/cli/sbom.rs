//! `harden sbom`: its flags, turned into [`SbomOptions`].

use super::args::{LimitArgs, Net};
use super::{block_on, out, usage};
use anyhow::Result;
use clap::Args;
use harden::progress::Progress;
use harden::reference::ImageRef;
use harden::sbom::SbomOptions;
use std::process::ExitCode;

#[derive(Args)]
pub struct SbomArgs {
    /// Image: registry reference or oci:DIR[:TAG] (one platform; for an index, by digest).
    image: String,
    /// Layers scanned at once.
    #[arg(long, short = 'j', default_value_t = 4)]
    jobs: usize,
    /// No progress on stderr.
    #[arg(long, short = 'q')]
    quiet: bool,
    #[command(flatten)]
    net: Net,
    #[command(flatten)]
    limits: LimitArgs,
}

pub fn run(a: SbomArgs) -> Result<ExitCode> {
    let image = ImageRef::parse(&a.image).map_err(usage)?;
    let progress = Progress::new(a.quiet);
    let opts = SbomOptions {
        image,
        jobs: a.jobs,
        net: a.net.options(&progress),
        limits: a.limits.limits(),
        progress: progress.clone(),
    };
    let bom = block_on(&progress, "interrupted", harden::sbom::sbom(opts))?;
    out(&format!("{}\n", serde_json::to_string_pretty(&bom)?))?;
    Ok(ExitCode::SUCCESS)
}
