//! `harden contract`: its flags, and the contract printed or written.
//!
//! Owns: contract's flags and where its output goes. Must not: read images or derive the
//! contract ([`harden::inspect::contract`], [`harden::contract`]).

use super::args::ReadArgs;
use super::{block_on, out_to, usage};
use anyhow::Result;
use clap::Args;
use harden::contract::Format;
use harden::reference::ImageRef;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
#[command(after_help = harden::reference::IMAGE_FORMS)]
pub struct ContractArgs {
    /// Image (forms below; an index: its first image).
    image: String,
    /// Profiles whose `[runtime]` rules (writable paths, capabilities) add to what is derived;
    /// none by default. Repeatable, merged like rebuild's.
    #[arg(long, short = 'p', value_name = "NAME|FILE")]
    profile: Vec<String>,
    /// Output format.
    #[arg(long = "contract-format", alias = "format", value_enum, default_value_t = Format::Json)]
    format: Format,
    /// Write to FILE (replaced whole, atomically) instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    read: ReadArgs,
}

pub fn run(a: ContractArgs) -> Result<ExitCode> {
    let image = ImageRef::parse(&a.image).map_err(usage)?;
    let read = a.read.options()?;
    let c = block_on(&read.progress, "interrupted", harden::inspect::contract::contract(&image, &a.profile, &read))?;
    out_to(a.output.as_deref(), &c.render(a.format))?;
    Ok(ExitCode::SUCCESS)
}
