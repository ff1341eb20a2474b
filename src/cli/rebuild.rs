//! `harden rebuild`: its flags, turned into [`RebuildOptions`].
//!
//! Owns: rebuild's flags and their defaults, and the one line it prints. Must not: hold any
//! step of the rebuild ([`harden::pipeline`] does).

use super::args::{CacheArgs, CopyLogin, LimitArgs, Net};
use super::{block_on, outln, usage};
use anyhow::Result;
use clap::Args;
use harden::layer::codec::OutputCodec;
use harden::pipeline::{self, RebuildOptions, TrustedKey};
use harden::progress::Progress;
use harden::reference::ImageRef;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Args)]
#[command(after_help = harden::reference::IMAGE_FORMS)]
pub struct RebuildArgs {
    /// Source image (forms below).
    src: String,
    /// Destination image (forms below; a docker-archive holds one image and no signature).
    dst: String,
    /// Built-in profile name or TOML file; repeatable, later ones override. Default: baseline.
    #[arg(long, short = 'p', value_name = "NAME|FILE")]
    profile: Vec<String>,
    /// Write a JSON report (schema harden-rebuild/1, docs/reports.md): digests, per-layer
    /// results, plan, guard, timings.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Write the result's runtime contract to FILE (see `harden contract`); it is also recorded
    /// as the manifest annotation dev.harden.contract (OCI manifests).
    #[arg(long, value_name = "FILE")]
    contract: Option<PathBuf>,
    /// The contract file's format.
    #[arg(long, value_enum, default_value_t = harden::contract::Format::Json, requires = "contract")]
    contract_format: harden::contract::Format,
    /// Write a CycloneDX 1.5 JSON SBOM of the result's packages (from its package databases)
    /// to FILE; reproducible (no timestamp, serial number from the digest).
    #[arg(long, value_name = "FILE")]
    sbom: Option<PathBuf>,
    /// Write the result's digest to FILE.
    #[arg(long, value_name = "FILE")]
    digest_file: Option<PathBuf>,
    /// Scan and plan only: print what would change, push nothing.
    #[arg(long)]
    dry_run: bool,
    /// Push even when the guard finds the result cannot start.
    #[arg(long)]
    allow_broken: bool,
    /// Before pushing, run the source (as it asks) and the result (as its contract says) under
    /// runc and probe both the same way (`[verify]`, else the health check, else each exposed
    /// TCP port, else the process staying up); refuse (exit 3) when the source passes and the
    /// result does not. Needs root, runc and umoci.
    #[arg(long)]
    verify_run: bool,
    /// After the push, sign the result with this cosign private key (see `harden sign`);
    /// the report records the signature.
    #[arg(long, value_name = "KEY")]
    sign_key: Option<PathBuf>,
    /// With --sign-key: sign as cosign v3 does instead of the legacy .sig — a sigstore bundle
    /// stored as an OCI referrer of the result (the referrers tag sha256-<hex> on registries
    /// without the referrers API).
    #[arg(long, requires = "sign_key")]
    bundle: bool,
    /// With --sign-key: attest the result in its sha256-<hex>.att (DSSE, as `cosign attest`):
    /// SLSA provenance v1 (source digest, profiles, plan, findings) and the CycloneDX SBOM; for
    /// an index, each platform and the index.
    #[arg(long, requires = "sign_key")]
    attest: bool,
    /// Refuse (exit 3, nothing rewritten or pushed) unless the source — and each platform of
    /// an index — carries a cosign signature (.sig or bundle) verifying with this public key;
    /// repeatable (any of them). The provenance records which key verified it.
    #[arg(long, value_name = "PUB")]
    require_signature: Vec<PathBuf>,
    #[command(flatten)]
    keyless: super::keyless::RequireKeyless,
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
    login: CopyLogin,
    #[command(flatten)]
    limits: LimitArgs,
}

impl RebuildArgs {
    /// The references and options; loads (and asks the password of) the signing key now,
    /// before any work rather than after the push.
    fn options(self) -> Result<(ImageRef, ImageRef, RebuildOptions)> {
        let src = ImageRef::parse(&self.src).map_err(usage)?;
        let dst = ImageRef::parse(&self.dst).map_err(usage)?;
        let codec: OutputCodec = self.compression.parse().map_err(usage)?;
        let sign_key = self.sign_key.as_deref().map(super::keys::load_signing_key).transpose()?.map(Arc::new);
        let progress = Progress::new(self.quiet);
        let limits = self.limits.limits();
        let net = self.login.apply(self.net.options(&progress)?)?;
        let net = harden::transport::NetOptions { max_blob: limits.max_layer_size, ..net };
        let opts = RebuildOptions {
            profiles: self.profile,
            report: self.report,
            sbom: self.sbom,
            digest_file: self.digest_file,
            contract: self.contract,
            contract_format: self.contract_format,
            dry_run: self.dry_run,
            allow_broken: self.allow_broken,
            verify_run: self.verify_run,
            codec,
            recompress: self.recompress,
            jobs: self.jobs,
            net: net.clone(),
            limits,
            sign_key,
            bundle: self.bundle,
            attest: self.attest,
            require_signature: trusted_keys(&self.require_signature)?,
            require_identity: self.keyless.gate()?.map(Arc::new),
            base_name: self.base_name,
            platforms: self.platform,
            cache: Some(self.cache.open(&progress)?),
            shared_cache: self.cache.shared(&net, &progress)?,
            progress,
            ..RebuildOptions::default()
        };
        Ok((src, dst, opts))
    }
}

/// `--require-signature` files as trusted keys, each named as given.
pub fn trusted_keys(paths: &[PathBuf]) -> Result<Vec<TrustedKey>> {
    paths
        .iter()
        .map(|p| {
            let key = harden::sign::keyfile::load_verifying_key(p)?;
            Ok(TrustedKey { name: p.display().to_string(), key })
        })
        .collect()
}

pub fn run(a: RebuildArgs) -> Result<ExitCode> {
    let (src, dst, opts) = a.options()?;
    let outcome = block_on(
        &opts.progress,
        "interrupted; nothing was pushed after the last completed blob, and no manifest",
        pipeline::rebuild(&src, &dst, &opts),
    )?;
    for listing in &outcome.dry_run {
        if let Some(image) = &listing.image {
            outln(&format!("{image}:"))?;
        }
        for l in &listing.lines {
            outln(l)?;
        }
    }
    if let Some(refused) = outcome.refused {
        return Err(refused.into());
    }
    if let Some(line) = &outcome.pushed {
        outln(line)?;
    }
    Ok(ExitCode::SUCCESS)
}
