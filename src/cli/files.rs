//! `harden files`: its flags, turned into [`FilesOptions`].

use super::args::ReadArgs;
use super::{block_on, out, usage};
use anyhow::Result;
use clap::Args;
use harden::listing::{FilesOptions, Format};
use harden::reference::ImageRef;
use std::process::ExitCode;

#[derive(Args)]
pub struct FilesArgs {
    /// Image: registry reference, oci:DIR[:TAG], docker-archive:FILE[:REF] or oci-archive:FILE[:TAG]
    /// (an index: its first image).
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
    let (progress, net, limits) = a.read.open()?;
    let opts = FilesOptions {
        image,
        format: a.format,
        setuid: a.setuid,
        executables: a.executables,
        glob: a.glob,
        jobs: a.read.jobs,
        net,
        limits,
        progress: progress.clone(),
    };
    let text = block_on(&progress, "interrupted", harden::listing::files(opts))?;
    out(&text)?;
    Ok(ExitCode::SUCCESS)
}
