//! The command line: clap argument structs per command, turned into the library's options,
//! the run (one helper for the runtime, Ctrl-C and the progress line), and stdout. No pipeline
//! logic lives here; what a command prints on stdout is written only from these files.
//!
//! Owns: the command tree, `--help` and `--version`, stdout and `-o FILE`, the runtime and
//! Ctrl-C. Must not: hold pipeline logic or decide exit codes beyond what errors ask for.

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
use std::io::{IsTerminal, Write};
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
    /// SRC and DST take any image form, in any combination (listed at the end).
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

/// The command line's definition. `harden --version` prints the build id that keys the
/// caches ([`harden::cache::build_id`]: the version and a digest of what the binary is built
/// from, fixed when it is compiled).
fn command() -> clap::Command {
    Cli::command().version(harden::cache::build_id())
}

/// Parse the command line and run the command.
pub fn run() -> Result<ExitCode> {
    let parsed = command().try_get_matches().and_then(|m| <Cli as clap::FromArgMatches>::from_arg_matches(&m));
    let cli = match parsed {
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

/// Ask for a password on the terminal (`/dev/tty`), without echo.
fn prompt(msg: &str) -> Result<String> {
    rpassword::prompt_password(msg).context("cannot read the password from the terminal")
}

/// Whether a person can be asked: stdin is a terminal.
fn terminal() -> bool {
    std::io::stdin().is_terminal()
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

/// `text` to FILE (written beside it, renamed over it when complete) or, without one, to
/// stdout: what `-o FILE` means on every command that has it.
fn out_to(file: Option<&std::path::Path>, text: &str) -> Result<()> {
    match file {
        Some(p) => harden::files::write_atomic(p, text.as_bytes()).with_context(|| format!("--output {}", p.display())),
        None => out(text),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The subcommands with an image argument, and their long help.
    fn image_commands() -> Vec<(String, String)> {
        let mut cmd = Cli::command();
        let names: Vec<String> = cmd.get_subcommands().map(|c| c.get_name().to_string()).collect();
        let mut out = Vec::new();
        for name in names {
            let Some(sub) = cmd.find_subcommand_mut(&name) else { continue };
            let takes_image = sub.get_positionals().any(|a| ["image", "src", "dst"].contains(&a.get_id().as_str()));
            if takes_image {
                out.push((name, sub.render_long_help().to_string()));
            }
        }
        out
    }

    #[test]
    fn every_image_command_names_the_four_image_forms() {
        let cmds = image_commands();
        let names: Vec<&str> = cmds.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["rebuild", "sign", "verify", "attest", "check", "contract", "files", "sbom", "learn"]);
        for (name, help) in &cmds {
            for form in ["[docker://]host[:port]/repo", "oci:DIR[:TAG", "oci-archive:FILE[:TAG]", "docker-archive:FILE"]
            {
                assert!(help.contains(form), "harden {name} --help does not name {form}:\n{help}");
            }
            // No argument line lists fewer forms than the footer (the old "registry reference or
            // oci:DIR[:TAG]").
            assert!(!help.contains("registry reference or oci:DIR"), "harden {name} --help:\n{help}");
        }
        let signing: Vec<&str> = cmds
            .iter()
            .filter(|(_, h)| h.contains("holds images only, never signatures"))
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(signing, ["sign", "verify", "attest"]);
    }

    #[test]
    fn check_and_sbom_take_an_output_file() {
        for cmd in ["check", "sbom", "contract"] {
            let cli = Cli::try_parse_from(["harden", cmd, "oci:x", "-o", "out.txt"]);
            assert!(cli.is_ok(), "harden {cmd} -o: {:?}", cli.err().map(|e| e.to_string()));
        }
        let Ok(Cli { command: Command::Check(_) }) = Cli::try_parse_from(["harden", "check", "oci:x", "--output", "f"])
        else {
            panic!("check --output does not parse");
        };
    }

    #[test]
    fn version_is_the_build_id_that_keys_the_caches() {
        let v = command().render_version();
        let id = harden::cache::build_id();
        assert_eq!(v.trim(), format!("harden {id}"));
        let (version, hash) = id.split_once('+').unwrap_or_default();
        assert_eq!(version, env!("CARGO_PKG_VERSION"));
        assert!(hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    }
}
