//! `harden check`: its flags, turned into [`CheckOptions`].

use super::args::ReadArgs;
use super::{block_on, out, usage};
use anyhow::Result;
use clap::Args;
use harden::audit::{format::Format, CheckOptions, Level};
use harden::error::exit;
use harden::reference::ImageRef;
use std::process::ExitCode;

#[derive(Args)]
pub struct CheckArgs {
    /// Image to audit: registry reference or oci:DIR[:TAG].
    image: String,
    /// Expected findings: paths this profile's `keep` rules match and setuid files its
    /// `setuid_allow` matches are not reported. Repeatable, merged like rebuild's.
    #[arg(long, short = 'p', value_name = "NAME|FILE")]
    profile: Vec<String>,
    /// Output on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
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
    let (progress, net, limits) = a.read.open()?;
    let opts = CheckOptions {
        image,
        profiles: a.profile,
        format: a.format,
        fail_on: a.fail_on,
        ignore: a.ignore,
        jobs: a.read.jobs,
        net,
        limits,
        progress: progress.clone(),
    };
    let result = block_on(&progress, "interrupted", harden::audit::check(opts))?;
    out(&result.rendered)?;
    Ok(ExitCode::from(if result.failed { exit::POLICY } else { exit::OK }))
}
