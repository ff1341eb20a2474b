//! `harden check`: its flags, turned into [`CheckOptions`].
//!
//! Owns: check's flags and where its output goes. Must not: read or judge images
//! ([`harden::inspect::check`] does).

use super::args::ReadArgs;
use super::{block_on, out_to, usage};
use anyhow::Result;
use clap::Args;
use harden::audit::{format::Format, Level};
use harden::error::exit;
use harden::inspect::check::CheckOptions;
use harden::reference::ImageRef;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
#[command(after_help = harden::reference::IMAGE_FORMS)]
pub struct CheckArgs {
    /// Image to audit (forms below; an index: each of its images).
    image: String,
    /// Expected findings: paths this profile's `keep` rules match and setuid files its
    /// `setuid_allow` matches are not reported. Repeatable, merged like rebuild's.
    #[arg(long, short = 'p', value_name = "NAME|FILE")]
    profile: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Write the output to FILE (replaced whole, atomically) instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// Exit 3 when a finding is at or above this level.
    #[arg(long, value_enum, default_value_t = Level::Fatal)]
    fail_on: Level,
    /// Do not report this check ID (e.g. HARDEN-HEALTHCHECK-MISSING); repeatable.
    #[arg(long, value_name = "ID")]
    ignore: Vec<String>,
    #[command(flatten)]
    read: ReadArgs,
}

pub fn run(a: CheckArgs) -> Result<ExitCode> {
    let image = ImageRef::parse(&a.image).map_err(usage)?;
    let read = a.read.options()?;
    let progress = read.progress.clone();
    let opts =
        CheckOptions { image, profiles: a.profile, format: a.format, fail_on: a.fail_on, ignore: a.ignore, read };
    let result = block_on(&progress, "interrupted", harden::inspect::check::check(opts))?;
    out_to(a.output.as_deref(), &result.rendered)?;
    Ok(ExitCode::from(if result.failed { exit::POLICY } else { exit::OK }))
}
