//! The command line: clap argument structs per command, turned into the library's options,
//! the run (one helper for the runtime, Ctrl-C and the progress line), and stdout. No pipeline
//! logic lives here; what a command prints on stdout is written only from these files.

mod args;
mod batch;
mod check;
mod contract;
mod files;
mod keyless;
mod keys;
mod learn;
mod profile;
mod rebuild;
mod sbom;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand};
use harden::error::exit;
use harden::progress::Progress;
use std::future::Future;
use std::io::Write;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "harden", version, about = "Harden existing container images: strip, chmod, set user, health check and labels, repack, push, sign", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Pull SRC, rewrite it per the profiles, push it to DST; print DST by digest.
    ///
    /// SRC and DST are registry references ([docker://]host[:port]/repo[:tag|@sha256:…]) or OCI
    /// layouts (oci:DIR[:TAG]). Loopback registries are spoken to over plain HTTP.
    Rebuild(Box<rebuild::RebuildArgs>),
    /// Write a cosign key pair: PREFIX.key (encrypted ECDSA P-256) and PREFIX.pub.
    ///
    /// The password comes from HARDEN_PASSWORD (or COSIGN_PASSWORD), else it is asked for on the
    /// terminal. The files are cosign's formats: cosign and sigstore tools read them.
    Keygen(keys::KeygenArgs),
    /// Sign IMAGE with a cosign key; print each signed manifest as NAME@sha256:…, one per line.
    ///
    /// The signature is cosign's (simple signing, stored under the tag sha256-<hex>.sig beside
    /// the image), so `cosign verify --key` accepts it. A tag is resolved to its digest first; for
    /// a multi-platform index every platform manifest and the index are signed (the index's line
    /// first). Signing again with the same key adds nothing.
    Sign(keys::SignArgs),
    /// Check IMAGE has a valid cosign signature by KEY over its digest; print it by digest.
    ///
    /// Legacy .sig signatures, cosign v3 bundles (OCI referrers, or the referrers tag
    /// sha256-<hex>) and .att attestations are each listed with the key that verified them or
    /// why none did. Without --attestation a signature must verify; with it, an attestation of
    /// each type whose subject is the image. Exit 0 when that holds, 3 when not, 1 when the
    /// image or key cannot be read.
    Verify(keys::VerifyArgs),
    /// Attest IMAGE: sign an in-toto statement (subject the image's digest, the predicate
    /// from FILE) in a DSSE envelope and add it to the image's sha256-<hex>.att, as
    /// `cosign attest --key` does; print the image by digest.
    Attest(keys::AttestArgs),
    /// Rebuild many images from a TOML job list; print one result line per job.
    ///
    /// The file has optional `[defaults]` (profiles, sign_key, compression, recompress,
    /// require_signature, attest, bundle) and `[[job]]` tables (source, destination, profiles,
    /// sign_key, require_signature, attest, bundle). All jobs share one rewrite cache, so a base
    /// layer common to many images is rewritten once. See samples/batch.toml.
    Batch(batch::BatchArgs),
    /// List, show and validate profiles.
    #[command(subcommand)]
    Profile(profile::ProfileCmd),
    /// Audit IMAGE: findings with stable IDs, levels, evidence and the profile rule that fixes each.
    ///
    /// Exit 0 when no finding is at or above --fail-on, 3 when one is, 1 on errors. The checks,
    /// the JSON format and what --profile suppresses are in docs/checks.md.
    Check(check::CheckArgs),
    /// Print IMAGE's runtime contract: a Kubernetes securityContext, volumes and `docker run` flags.
    ///
    /// Read-only root, a tmpfs for /tmp, each VOLUME and each `[runtime] writable` path, every
    /// capability dropped (NET_BIND_SERVICE back for a port below 1024), no-new-privileges when
    /// no setuid/setgid or capability file is left, the user as numbers. JSON, or YAML.
    Contract(contract::ContractArgs),
    /// List IMAGE's final filesystem as containerd unpacks it: path, type, mode, uid:gid, size,
    /// link target and layer, whiteouts and hardlinks applied; nothing is written to disk.
    ///
    /// `--format json` is the document harden-files/1 (docs/reports.md). What containerd would
    /// refuse or change (a hardlink to nothing, a setuid bit a hardlink clears) is noted.
    Files(files::FilesArgs),
    /// Print a CycloneDX 1.5 JSON SBOM of IMAGE's packages, read from its package databases
    /// (dpkg, apk, rpm): the same document `rebuild --sbom` writes for its result.
    Sbom(sbom::SbomArgs),
    /// Run IMAGE under runc over an overlay root, probe it, and print a profile snippet to
    /// review: `[runtime] writable` (what it wrote), `[verify]` (the probe that passed), `[config]
    /// user` when its entrypoint dropped privileges, and notes. Needs root, runc and umoci.
    Learn(learn::LearnArgs),
    /// Internal: list a plain tar stream's entries as harden's reader frames them, as JSON (the
    /// form integration/golist prints from Go's archive/tar; FILE `-` is stdin). Exit 1 when
    /// the archive is refused.
    #[command(hide = true)]
    TarList { file: std::path::PathBuf },
    /// Print shell completions.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

/// Parse the command line and run the command.
pub fn run() -> Result<ExitCode> {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { exit::USAGE } else { exit::OK };
            let _ = e.print();
            return Ok(ExitCode::from(code));
        }
    };
    match cli.command {
        Command::Rebuild(a) => rebuild::run(*a),
        Command::Keygen(a) => keys::keygen(a),
        Command::Sign(a) => keys::sign(a),
        Command::Verify(a) => keys::verify(a),
        Command::Attest(a) => keys::attest(a),
        Command::Batch(a) => batch::run(a),
        Command::Profile(c) => profile::run(c),
        Command::Check(a) => check::run(a),
        Command::Contract(a) => contract::run(a),
        Command::Files(a) => files::run(a),
        Command::Sbom(a) => sbom::run(a),
        Command::Learn(a) => learn::run(a),
        Command::TarList { file } => {
            let doc = if file.as_os_str() == "-" {
                harden::layer::tarlist::listing(std::io::stdin().lock())
            } else {
                let f = std::fs::File::open(&file).with_context(|| format!("opening {}", file.display()))?;
                harden::layer::tarlist::listing(std::io::BufReader::new(f))
            };
            outln(&doc.to_string())?;
            Ok(if doc["error"].is_null() { ExitCode::SUCCESS } else { ExitCode::from(exit::RUNTIME) })
        }
        Command::Completions { shell } => {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "harden", &mut buf);
            out(&String::from_utf8_lossy(&buf))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A usage error (exit 2) from a message.
fn usage(e: impl std::fmt::Display) -> anyhow::Error {
    harden::Failure::Usage(e.to_string()).into()
}

/// Write to stdout: the only way the CLI prints results. A closed pipe comes back as an error
/// whose chain holds the `BrokenPipe` (main exits 141, quietly).
fn out(text: &str) -> Result<()> {
    let mut so = std::io::stdout().lock();
    so.write_all(text.as_bytes()).and_then(|()| so.flush()).context("writing to stdout")
}

/// `out` with a newline.
fn outln(line: &str) -> Result<()> {
    out(&format!("{line}\n"))
}

/// Run `work` on a multi-threaded runtime until it ends or SIGINT, SIGTERM or SIGHUP (then
/// `interrupted` is the error, exiting 128 + the signal), and clear the progress line either
/// way before anything is printed.
fn block_on<T>(progress: &Progress, interrupted: &str, work: impl Future<Output = Result<T>>) -> Result<T> {
    let stop = harden::spool::stop_signal();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = rt.block_on(async {
        tokio::select! {
            biased;
            n = stop => Err(anyhow::Error::from(harden::Failure::Signal(n)).context(interrupted.to_string())),
            r = work => r,
        }
    });
    // Work that was stopped by the signal may have ended first, with an error of its own.
    let result = match (result, harden::spool::stopped_by()) {
        (Err(_), Some(n)) => Err(anyhow::Error::from(harden::Failure::Signal(n)).context(interrupted.to_string())),
        (r, _) => r,
    };
    progress.finish();
    result
}
