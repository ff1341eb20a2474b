//! `harden learn`: its flags, turned into [`LearnOptions`]; the snippet goes to stdout.
//!
//! Owns: learn's flags and its stdout. Must not: run or observe anything ([`harden::learn`] does).

use super::args::ReadArgs;
use super::{block_on, out, usage};
use anyhow::Result;
use clap::Args;
use harden::learn::LearnOptions;
use harden::reference::ImageRef;
use std::process::ExitCode;

#[derive(Args)]
#[command(after_help = harden::reference::IMAGE_FORMS)]
pub struct LearnArgs {
    /// Image (forms below): one platform; for an index, name it by digest.
    image: String,
    /// Profiles whose `[verify]` names the probe (else the health check, the exposed ports, or
    /// the process staying up).
    #[arg(long, short = 'p', value_name = "NAME|FILE")]
    profile: Vec<String>,
    #[command(flatten)]
    read: ReadArgs,
}

pub fn run(a: LearnArgs) -> Result<ExitCode> {
    let image = ImageRef::parse(&a.image).map_err(usage)?;
    let (progress, net, _) = a.read.open()?;
    let opts = LearnOptions { image, profiles: a.profile, net, progress: progress.clone() };
    let text = block_on(&progress, "interrupted", harden::learn::learn(opts))?;
    out(&text)?;
    Ok(ExitCode::SUCCESS)
}
