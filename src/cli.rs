//! The command line: clap definitions and exit codes. No logic lives here.

use crate::batch;
use crate::cache::{self, RewriteCache};
use crate::layer::codec::OutputCodec;
use crate::pipeline::{self, RebuildOptions};
use crate::profile;
use crate::progress::Progress;
use crate::reference::ImageRef;
use crate::signing;
use crate::transport::{Endpoint, NetOptions};
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
    /// Retries of a registry request after a transient failure (connection reset or refused,
    /// timeout, HTTP 5xx, 429), with exponential backoff and jitter.
    #[arg(long, global = true, value_name = "N", default_value_t = crate::transport::retry::DEFAULT_RETRIES)]
    retries: u32,
    /// Seconds a registry request may take (a blob transfer: may go without progress) before it
    /// counts as failed and is retried.
    #[arg(long, global = true, value_name = "SECS", default_value_t = crate::transport::retry::DEFAULT_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=86400))]
    timeout: u64,
}

impl Net {
    fn options(&self) -> NetOptions {
        NetOptions {
            plain_http: self.plain_http,
            insecure: self.insecure,
            ca_cert: self.ca_cert.clone(),
            retries: self.retries,
            timeout: std::time::Duration::from_secs(self.timeout),
        }
    }
}

/// Bounds on reading layers (see `crate::layer::Limits`).
#[derive(Args, Clone)]
struct LimitArgs {
    /// Refuse a layer larger than this uncompressed; K, M, G and T suffixes are powers of 1024.
    #[arg(long, value_name = "BYTES", default_value = "64G", value_parser = parse_size)]
    max_layer_size: u64,
    /// Refuse a layer that decompresses to more than RATIO times its compressed size (judged
    /// once it has produced 64 MiB). 0 (the default) is off: --max-layer-size bounds the work,
    /// and a ratio would also refuse legitimate, very compressible files.
    #[arg(long, value_name = "RATIO", default_value_t = crate::layer::DEFAULT_MAX_RATIO)]
    max_ratio: u64,
    /// Refuse an image with more entries than this in its layers (each is kept in memory).
    #[arg(long, value_name = "N", default_value_t = crate::layer::DEFAULT_MAX_ENTRIES)]
    max_entries: u64,
}

impl LimitArgs {
    fn limits(&self) -> crate::layer::Limits {
        crate::layer::Limits::new(self.max_layer_size, self.max_ratio, self.max_entries)
            .with_cancel(&crate::spool::INTERRUPTED)
    }
}

/// `64G`, `512M`, `1T`, `1000` (bytes).
fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let (num, shift) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(format!("`{s}`: expected a number of bytes with an optional K, M, G or T")),
            };
            (&t[..i], shift)
        }
        _ => (t, 0),
    };
    let n: u64 = num.trim().parse().map_err(|_| format!("`{s}`: expected a number of bytes, e.g. 64G"))?;
    n.checked_mul(1u64 << shift).filter(|&v| v > 0).ok_or_else(|| format!("`{s}`: out of range"))
}

#[derive(Args, Clone)]
struct CacheArgs {
    /// Where rewritten layers are kept, keyed by (input digest, layer plan, harden version,
    /// codec). Default: $XDG_CACHE_HOME/harden or ~/.cache/harden.
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Keep rewrites in memory for this run only.
    #[arg(long, conflicts_with = "cache_dir")]
    no_cache: bool,
}

impl CacheArgs {
    fn open(&self) -> Result<std::sync::Arc<RewriteCache>> {
        let dir = if self.no_cache { None } else { self.cache_dir.clone().or_else(cache::default_dir) };
        Ok(std::sync::Arc::new(RewriteCache::new(dir)?))
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
        /// After the push, sign the result with this cosign private key (see `harden sign`);
        /// the report records the signature.
        #[arg(long, value_name = "KEY")]
        sign_key: Option<PathBuf>,
        /// The source's pullable name to record as org.opencontainers.image.base.name
        /// (default: a registry source's repository:tag; an OCI layout source records none).
        #[arg(long, value_name = "NAME")]
        base_name: Option<String>,
        /// For a multi-platform source, rebuild only these platforms (os/arch[/variant]);
        /// repeatable. Default: all (attestation manifests are dropped).
        #[arg(long, value_name = "OS/ARCH")]
        platform: Vec<String>,
        #[command(flatten)]
        cache: CacheArgs,
        /// Output layer compression: gzip[:LEVEL] or zstd[:LEVEL].
        #[arg(long, default_value = "gzip:6", value_name = "CODEC")]
        compression: String,
        /// Compress every changed layer in full. By default a gzip layer is spliced: the source's
        /// deflate blocks the changes do not reach are kept, only the rest is compressed at
        /// LEVEL — much faster, a few percent larger than a full recompression.
        #[arg(long)]
        recompress: bool,
        /// Layers processed at once.
        #[arg(long, short = 'j', default_value_t = 4)]
        jobs: usize,
        /// No progress on stderr.
        #[arg(long, short = 'q')]
        quiet: bool,
        #[command(flatten)]
        net: Net,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Write a cosign key pair: PREFIX.key (encrypted ECDSA P-256) and PREFIX.pub.
    ///
    /// The password comes from HARDEN_PASSWORD (or COSIGN_PASSWORD), else it is asked for on the
    /// terminal. The files are cosign's formats: cosign and sigstore tools read them.
    Keygen {
        /// Write PREFIX.key and PREFIX.pub.
        #[arg(long, default_value = "cosign", value_name = "PREFIX")]
        output: String,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
        /// Encrypt the private key with an empty password (refused otherwise).
        #[arg(long)]
        empty_password: bool,
    },
    /// Sign IMAGE with a cosign key; print each signed manifest as NAME@sha256:…, one per line.
    ///
    /// The signature is cosign's (simple signing, stored under the tag sha256-<hex>.sig beside
    /// the image), so `cosign verify --key` accepts it. A tag is resolved to its digest first; for
    /// a multi-platform index every platform manifest and the index are signed (the index's line
    /// first). Signing again with the same key adds nothing.
    Sign {
        /// Image to sign: registry reference or oci:DIR[:TAG].
        image: String,
        /// Encrypted cosign private key; its password comes from HARDEN_PASSWORD (or
        /// COSIGN_PASSWORD), else the terminal.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Add KEY=VALUE to the signed payload's optional annotations; repeatable.
        #[arg(long = "annotation", short = 'a', value_name = "KEY=VALUE")]
        annotations: Vec<String>,
        /// No progress on stderr.
        #[arg(long, short = 'q')]
        quiet: bool,
        #[command(flatten)]
        net: Net,
    },
    /// Check IMAGE has a valid cosign signature by KEY over its digest; print it by digest.
    ///
    /// Exit 0 when a signature verifies, 3 when none does (each one found is listed with why it
    /// failed), 1 when the image or key cannot be read.
    Verify {
        /// Image to check: registry reference or oci:DIR[:TAG].
        image: String,
        /// Cosign public key (PEM `PUBLIC KEY`, ECDSA P-256).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// No details on stderr.
        #[arg(long, short = 'q')]
        quiet: bool,
        #[command(flatten)]
        net: Net,
    },
    /// Rebuild many images from a TOML job list; print one result line per job.
    ///
    /// The file has optional `[defaults]` (profiles, sign_key, compression, recompress) and `[[job]]` tables
    /// (source, destination, profiles, sign_key). All jobs share one rewrite cache, so a base
    /// layer common to many images is rewritten once. See samples/batch.toml.
    Batch {
        /// The job list (TOML).
        file: PathBuf,
        /// Images rebuilt at once.
        #[arg(long, short = 'j', default_value_t = 2)]
        jobs: usize,
        /// Take only share I of N of the list (stable under edits: by hash of source and
        /// destination), e.g. --shard $JOB_COMPLETION_INDEX/4 in a Kubernetes indexed Job.
        #[arg(long, value_name = "I/N")]
        shard: Option<batch::Shard>,
        /// Run every job even after one fails (default: stop starting new ones).
        #[arg(long)]
        keep_going: bool,
        /// Write a JSON report of every job (status, result, the job's rebuild report).
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
        #[command(flatten)]
        cache: CacheArgs,
        /// No progress on stderr.
        #[arg(long, short = 'q')]
        quiet: bool,
        #[command(flatten)]
        net: Net,
    },
    /// List, show and validate profiles.
    #[command(subcommand)]
    Profile(ProfileCmd),
    /// Audit IMAGE: findings with stable IDs, levels, evidence and the profile rule that fixes each.
    ///
    /// Exit 0 when no finding is at or above --fail-on, 3 when one is, 1 on errors. The checks,
    /// the JSON format and what --profile suppresses are in docs/checks.md.
    Check {
        /// Image to audit: registry reference or oci:DIR[:TAG].
        image: String,
        /// Expected findings: paths this profile's `keep` rules match and setuid files its
        /// `setuid_allow` matches are not reported. Repeatable, merged like rebuild's.
        #[arg(long, short = 'p', value_name = "NAME|FILE")]
        profile: Vec<String>,
        /// Output on stdout.
        #[arg(long, value_enum, default_value_t = crate::audit::format::Format::Text)]
        format: crate::audit::format::Format,
        /// Exit 3 when a finding is at or above this level.
        #[arg(long, value_enum, default_value_t = crate::audit::Level::Fatal)]
        fail_on: crate::audit::Level,
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
    },
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
        Command::Rebuild {
            src,
            dst,
            profile,
            report,
            digest_file,
            dry_run,
            allow_broken,
            sign_key,
            base_name,
            platform,
            cache,
            compression,
            recompress,
            jobs,
            quiet,
            net,
            limits,
        } => {
            let src = ImageRef::parse(&src).map_err(usage)?;
            let dst = ImageRef::parse(&dst).map_err(usage)?;
            let codec: OutputCodec = compression.parse().map_err(usage)?;
            // Load (and ask for the password of) the key before any work, not after the push.
            let sign_key = sign_key.as_deref().map(signing::load_signing_key).transpose()?.map(std::sync::Arc::new);
            let progress = Progress::new(quiet);
            let bar = progress.clone_bar();
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let opts = RebuildOptions {
                src,
                dst,
                profiles: profile,
                report,
                digest_file,
                dry_run,
                allow_broken,
                codec,
                recompress,
                jobs,
                net: net.options(),
                limits: limits.limits(),
                progress,
                sign_key,
                base_name,
                platforms: platform,
                cache: Some(cache.open()?),
                scans: None,
            };
            let result = rt.block_on(async {
                tokio::select! {
                    r = pipeline::rebuild(&opts) => r.map(|(line, _)| line),
                    _ = crate::spool::ctrl_c() => Err(anyhow::anyhow!("interrupted; nothing was pushed after the last completed blob, and no manifest")),
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
        Command::Batch { file, jobs, shard, keep_going, report, cache, quiet, net } => {
            let opts = batch::BatchOptions {
                file,
                jobs,
                shard,
                keep_going,
                report,
                cache: cache.open()?,
                net: net.options(),
                quiet,
            };
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(async {
                tokio::select! {
                    r = batch::run(opts) => r,
                    _ = crate::spool::ctrl_c() => Err(anyhow::anyhow!("interrupted; jobs under way pushed no manifest")),
                }
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Keygen { output, force, empty_password } => {
            let password = signing::keygen_password(empty_password)?;
            let (k, p) = signing::keygen(&output, force, &password)?;
            eprintln!("Private key written to {}", k.display());
            eprintln!("Public key written to {}", p.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Sign { image, key, annotations, quiet, net } => {
            let r = ImageRef::parse(&image).map_err(usage)?;
            let annotations = signing::parse_annotations(&annotations)?;
            let key = signing::load_signing_key(&key)?;
            let progress = Progress::new(quiet);
            let bar = progress.clone_bar();
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let result = rt.block_on(async {
                let ep = Endpoint::open(&r, &net.options())?;
                signing::sign(&ep, &r, &key, &annotations, &progress).await
            });
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            for s in result? {
                println!("{}", r.by_digest(&s.image_digest));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { image, key, quiet, net } => {
            let r = ImageRef::parse(&image).map_err(usage)?;
            let key = signing::load_verifying_key(&key)?;
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let v = rt.block_on(async {
                let ep = Endpoint::open(&r, &net.options())?;
                signing::verify(&ep, &r, &key).await
            })?;
            if !quiet {
                for l in &v.verdicts {
                    match &l.result {
                        Ok(p) => eprintln!(
                            "harden: {} #{} {}: verified (docker-reference {})",
                            v.tag, l.index, l.digest, p.docker_reference
                        ),
                        Err(e) => eprintln!("harden: {} #{} {}: {e}", v.tag, l.index, l.digest),
                    }
                }
            }
            println!("{}", r.by_digest(&v.image_digest));
            Ok(ExitCode::SUCCESS)
        }
        Command::Profile(ProfileCmd::List) => {
            for (name, text) in profile::BUILTINS {
                let desc =
                    text.lines().find_map(|l| l.strip_prefix("description = ")).unwrap_or("\"\"").trim_matches('"');
                println!("{name:<12} {desc}");
            }
            println!();
            println!(
                "groups: {}",
                profile::group_names().iter().map(|g| format!("@{g}")).collect::<Vec<_>>().join(" ")
            );
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
        Command::Check { image, profile, format, fail_on, ignore, jobs, quiet, net, limits } => {
            let image = ImageRef::parse(&image).map_err(usage)?;
            let progress = Progress::new(quiet);
            let bar = progress.clone_bar();
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let opts = crate::audit::CheckOptions {
                image,
                profiles: profile,
                format,
                fail_on,
                ignore,
                jobs,
                net: net.options(),
                limits: limits.limits(),
                progress,
            };
            let result = rt.block_on(async {
                tokio::select! {
                    r = crate::audit::check(opts) => r,
                    _ = crate::spool::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
                }
            });
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            let out = result?;
            print!("{}", out.rendered);
            Ok(if out.failed { ExitCode::from(3) } else { ExitCode::SUCCESS })
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "harden", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
    }
}
