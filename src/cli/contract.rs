//! `harden contract`: its flags, and the contract printed or written.

use super::args::ReadArgs;
use super::{block_on, out, usage};
use anyhow::{Context, Result};
use clap::Args;
use harden::contract::Format;
use harden::reference::ImageRef;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct ContractArgs {
    /// Image: registry reference, oci:DIR[:TAG], docker-archive:FILE[:REF] or oci-archive:FILE[:TAG].
    image: String,
    /// Profiles whose `[runtime]` rules (writable paths, capabilities) add to what is derived;
    /// none by default. Repeatable, merged like rebuild's.
    #[arg(long, short = 'p', value_name = "NAME|FILE")]
    profile: Vec<String>,
    /// Output format.
    #[arg(long = "contract-format", alias = "format", value_enum, default_value_t = Format::Json)]
    format: Format,
    /// Write to FILE (replaced whole) instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    read: ReadArgs,
}

pub fn run(a: ContractArgs) -> Result<ExitCode> {
    let image = ImageRef::parse(&a.image).map_err(usage)?;
    let (progress, net, limits) = a.read.open()?;
    let c = block_on(
        &progress,
        "interrupted",
        harden::audit::run::contract(&image, &a.profile, a.read.jobs, &net, &limits, &progress),
    )?;
    let text = c.render(a.format);
    match &a.output {
        Some(p) => {
            harden::files::write_atomic(p, text.as_bytes()).with_context(|| format!("--output {}", p.display()))?
        }
        None => out(&text)?,
    }
    Ok(ExitCode::SUCCESS)
}
