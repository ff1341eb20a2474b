//! The command line: clap definitions and exit codes. No logic lives here.

use crate::layer::codec::OutputCodec;
use crate::pipeline::{self, RebuildOptions};
use crate::profile;
use crate::progress::Progress;
use crate::reference::ImageRef;
use crate::transport::NetOptions;
use crate::Failure;
use anyhow::Result;
use clap::{Args, CommandFactory, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "harden", version, about = "Harden existing container images: strip, chmod, set user, health check and labels, repack, push, sign", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Net {
    /// Use plain HTTP for registries that are not on loopback (loopback always is).
    #[arg(long, global = true)]
    plain_http: bool,
    /// Do not verify registry TLS certificates.
    #[arg(long, global = true)]
    insecure: bool,
    /// Trust this PEM CA certificate for registry TLS.
    #[arg(long, global = true, value_name = "FILE")]
    ca_cert: Option<PathBuf>,
}

impl Net {
    fn options(&self) -> NetOptions {
        NetOptions { plain_http: self.plain_http, insecure: self.insecure, ca_cert: self.ca_cert.clone() }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Pull SRC, rewrite it per the profiles, push it to DST; print DST by digest.
    ///
    /// SRC and DST are registry references ([docker://]host[:port]/repo[:tag|@sha256:…]) or OCI
    /// layouts (oci:DIR[:TAG]). Loopback registries are spoken to over plain HTTP.
    Rebuild {
        /// Source image.
        src: String,
        /// Destination image.
        dst: String,
        /// Built-in profile name or TOML file; repeatable, later ones override. Default: baseline.
        #[arg(long, short = 'p', value_name = "NAME|FILE")]
        profile: Vec<String>,
        /// Write a JSON report: digests, per-layer results, plan, guard, timings.
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
        /// Write the result's digest to FILE.
        #[arg(long, value_name = "FILE")]
        digest_file: Option<PathBuf>,
        /// Scan and plan only: print what would change, push nothing.
        #[arg(long)]
        dry_run: bool,
        /// Push even when the guard finds the result cannot start.
        #[arg(long)]
        allow_broken: bool,
        /// Output layer compression: gzip[:LEVEL] or zstd[:LEVEL].
        #[arg(long, default_value = "gzip:6", value_name = "CODEC")]
        compression: String,
        /// Layers processed at once.
        #[arg(long, short = 'j', default_value_t = 4)]
        jobs: usize,
        /// No progress on stderr.
        #[arg(long, short = 'q')]
        quiet: bool,
        #[command(flatten)]
        net: Net,
    },
    /// List, show and validate profiles.
    #[command(subcommand)]
    Profile(ProfileCmd),
    /// Print shell completions.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand)]
enum ProfileCmd {
    /// The built-in profiles and path groups.
    List,
    /// The fully resolved profile (extends and groups expanded) as JSON.
    Show {
        /// Built-in names or files, merged in order.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Check a profile file; errors name file:line:column.
    Validate { file: String },
}

fn usage(e: impl std::fmt::Display) -> anyhow::Error {
    Failure::Usage(e.to_string()).into()
}

pub fn run() -> Result<ExitCode> {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return Ok(ExitCode::from(code));
        }
    };
    match cli.command {
        Command::Rebuild { src, dst, profile, report, digest_file, dry_run, allow_broken, compression, jobs, quiet, net } => {
            let src = ImageRef::parse(&src).map_err(usage)?;
            let dst = ImageRef::parse(&dst).map_err(usage)?;
            let codec: OutputCodec = compression.parse().map_err(usage)?;
            let progress = Progress::new(quiet);
            let bar = progress.clone_bar();
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let opts = RebuildOptions { src, dst, profiles: profile, report, digest_file, dry_run, allow_broken, codec, jobs, net: net.options(), progress };
            let result = rt.block_on(async {
                tokio::select! {
                    r = pipeline::rebuild(opts) => r,
                    _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted; nothing was pushed after the last completed blob, and no manifest")),
                }
            });
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            let line = result?;
            if !line.is_empty() {
                println!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Profile(ProfileCmd::List) => {
            for (name, text) in profile::BUILTINS {
                let desc = text.lines().find_map(|l| l.strip_prefix("description = ")).unwrap_or("\"\"").trim_matches('"');
                println!("{name:<12} {desc}");
            }
            println!();
            println!("groups: {}", profile::group_names().iter().map(|g| format!("@{g}")).collect::<Vec<_>>().join(" "));
            Ok(ExitCode::SUCCESS)
        }
        Command::Profile(ProfileCmd::Show { names }) => {
            let p = profile::load(&names).map_err(usage)?;
            let mut v = serde_json::to_value(&p)?;
            v["digest"] = serde_json::json!(p.digest().as_str());
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Profile(ProfileCmd::Validate { file }) => {
            profile::validate_file(&file).map_err(usage)?;
            println!("{file}: ok");
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "harden", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
    }
}
