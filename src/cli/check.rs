//! `harden check`: its flags, turned into [`CheckOptions`].

use super::args::{LimitArgs, Net};
use super::{block_on, out, usage};
use anyhow::Result;
use clap::Args;
use harden::audit::{format::Format, CheckOptions, Level};
use harden::error::exit;
use harden::progress::Progress;
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

pub fn run(a: CheckArgs) -> Result<ExitCode> {
    let image = ImageRef::parse(&a.image).map_err(usage)?;
    let progress = Progress::new(a.quiet);
    let opts = CheckOptions {
        image,
        profiles: a.profile,
        format: a.format,
        fail_on: a.fail_on,
        ignore: a.ignore,
        jobs: a.jobs,
        net: a.net.options(&progress),
        limits: a.limits.limits(),
        progress: progress.clone(),
    };
    let result = block_on(&progress, "interrupted", harden::audit::check(opts))?;
    out(&result.rendered)?;
    Ok(ExitCode::from(if result.failed { exit::POLICY } else { exit::OK }))
}
