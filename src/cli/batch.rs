//! `harden batch`: its flags, and a line on stdout per job as it ends.
//!
//! Owns: batch's flags and its stdout lines. Must not: run jobs itself (the library's
//! [`harden::batch`] does).

use super::args::{CacheArgs, CopyLogin, Net};
use super::block_on;
use anyhow::Result;
use clap::Args;
use harden::batch::{self, BatchOptions, Shard};
use harden::pipeline::RebuildOptions;
use harden::progress::Progress;
use harden::report::{JobReport, JobStatus};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct BatchArgs {
    /// The job list (TOML).
    file: PathBuf,
    /// Images rebuilt at once (they share the machine's cores).
    #[arg(long, short = 'j', default_value_t = 2)]
    jobs: usize,
    /// Take only share I of N of the list (stable under edits: by hash of source and
    /// destination), e.g. --shard $JOB_COMPLETION_INDEX/4 in a Kubernetes indexed Job.
    #[arg(long, value_name = "I/N")]
    shard: Option<Shard>,
    /// Run every job even after one fails (default: stop starting new ones).
    #[arg(long)]
    keep_going: bool,
    /// Write a JSON report of every job (schema harden-batch/1: status, result, the job's
    /// rebuild report).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    #[command(flatten)]
    cache: CacheArgs,
    /// No progress on stderr.
    #[arg(long, short = 'q')]
    quiet: bool,
    #[command(flatten)]
    net: Net,
    #[command(flatten)]
    login: CopyLogin,
}

/// The line a job's end prints on stdout.
fn job_line(r: &JobReport) -> String {
    match r.status {
        JobStatus::Ok => format!("ok {} {}", r.source, r.result.as_deref().unwrap_or("")),
        JobStatus::Skipped => format!("skipped {} (an earlier job failed; --keep-going runs the rest)", r.source),
        JobStatus::Refused | JobStatus::Failed => {
            format!("failed {} {}", r.source, r.error.as_deref().unwrap_or(""))
        }
    }
}

pub fn run(a: BatchArgs) -> Result<ExitCode> {
    let progress = Progress::new(a.quiet);
    let net = a.login.apply(a.net.options(&progress)?)?;
    let opts = BatchOptions {
        file: a.file,
        jobs: a.jobs,
        shard: a.shard,
        keep_going: a.keep_going,
        report: a.report,
        cache: a.cache.open(&progress)?,
        net: net.clone(),
        progress: progress.clone(),
        rebuild: RebuildOptions {
            limits: harden::layer::Limits::default().with_cancel(&harden::spool::INTERRUPTED),
            shared_cache: a.cache.shared(&net, &progress)?,
            ..RebuildOptions::default()
        },
    };
    // Keys are loaded (and their passwords asked for) once, before any work.
    let keys = batch::signing_keys(&opts, super::keys::ask_key_password)?;
    // Lines go out as jobs end; a closed stdout fails the batch's end, not a job.
    let print = |r: &JobReport| {
        let _ = writeln!(std::io::stdout().lock(), "{}", job_line(r));
    };
    block_on(&progress, "interrupted; jobs under way pushed no manifest", batch::run(opts, keys, print))?;
    super::out("")?;
    Ok(ExitCode::SUCCESS)
}
