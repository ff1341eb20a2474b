//! `harden files`: its flags, turned into [`FilesOptions`].
//!
//! Owns: files' flags and its stdout. Must not: read images or build the listing
//! ([`harden::inspect::listing`] does).

use super::args::ReadArgs;
use super::{block_on, out, usage};
use anyhow::Result;
use clap::Args;
use harden::inspect::listing::{FilesOptions, Format};
use harden::reference::ImageRef;
use std::process::ExitCode;

#[derive(Args)]
#[command(after_help = harden::reference::IMAGE_FORMS)]
pub struct FilesArgs {
    /// Image (forms below; an index: its first image).
    image: String,
    /// Only paths matching this glob (`/usr/bin/*`; `*` stays within a directory, `**` crosses).
    #[arg(value_name = "PATH-GLOB")]
    glob: Option<String>,
    /// Output on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Only setuid or setgid files.
    #[arg(long)]
    setuid: bool,
    /// Only regular files with an execute bit.
    #[arg(long)]
    executables: bool,
    #[command(flatten)]
    read: ReadArgs,
}

pub fn run(a: FilesArgs) -> Result<ExitCode> {
    let image = ImageRef::parse(&a.image).map_err(usage)?;
    let read = a.read.options()?;
    let progress = read.progress.clone();
    let opts =
        FilesOptions { image, format: a.format, setuid: a.setuid, executables: a.executables, glob: a.glob, read };
    let text = block_on(&progress, "interrupted", harden::inspect::listing::files(opts))?;
    out(&text)?;
    Ok(ExitCode::SUCCESS)
}
