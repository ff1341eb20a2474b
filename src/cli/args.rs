//! Argument groups several commands share: registry access, reading limits, the rewrite cache.
//!
//! Owns: those shared flag groups and their mapping to library options. Must not: hold logic
//! beyond turning flags into options.

use anyhow::Result;
use clap::Args;
use harden::cache::{self, RewriteCache};
use harden::progress::Progress;
use harden::transport::NetOptions;
use std::path::PathBuf;

#[derive(Args, Clone)]
pub struct Net {
    /// Use plain HTTP for registries that are not on loopback (loopback always is).
    #[arg(long, global = true)]
    pub plain_http: bool,
    /// Do not verify registry TLS certificates.
    #[arg(long, global = true)]
    insecure: bool,
    /// Trust this PEM CA certificate for registry TLS.
    #[arg(long, global = true, value_name = "FILE")]
    ca_cert: Option<PathBuf>,
    /// Retries of a registry request after a transient failure (connection reset or refused,
    /// timeout, HTTP 5xx, 429), with exponential backoff and jitter.
    #[arg(long, global = true, value_name = "N", default_value_t = harden::transport::retry::DEFAULT_RETRIES)]
    retries: u32,
    /// Seconds a registry request may take (a blob transfer: may go without progress) before it
    /// counts as failed and is retried.
    #[arg(long, global = true, value_name = "SECS", default_value_t = harden::transport::retry::DEFAULT_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=86400))]
    timeout: u64,
}

impl Net {
    /// The transport settings, reporting retries to `progress`.
    pub fn options(&self, progress: &Progress) -> NetOptions {
        NetOptions {
            max_blob: harden::layer::DEFAULT_MAX_LAYER_SIZE,
            plain_http: self.plain_http,
            insecure: self.insecure,
            ca_cert: self.ca_cert.clone(),
            retries: self.retries,
            timeout: std::time::Duration::from_secs(self.timeout),
            progress: progress.clone(),
        }
    }
}

/// Bounds on reading layers (see `harden::layer::Limits`).
#[derive(Args, Clone)]
pub struct LimitArgs {
    /// Refuse a layer larger than this uncompressed; K, M, G and T suffixes are powers of 1024.
    #[arg(long, value_name = "BYTES", default_value = "64G", value_parser = parse_size)]
    max_layer_size: u64,
    /// Refuse a layer that decompresses to more than RATIO times its compressed size (judged
    /// once it has produced 64 MiB). 0 (the default) is off: --max-layer-size bounds the work,
    /// and a ratio would also refuse legitimate, very compressible files.
    #[arg(long, value_name = "RATIO", default_value_t = harden::layer::DEFAULT_MAX_RATIO)]
    max_ratio: u64,
    /// Refuse an image with more entries than this in its layers (each is kept in memory).
    #[arg(long, value_name = "N", default_value_t = harden::layer::DEFAULT_MAX_ENTRIES)]
    max_entries: u64,
}

impl LimitArgs {
    pub fn limits(&self) -> harden::layer::Limits {
        harden::layer::Limits::new(self.max_layer_size, self.max_ratio, self.max_entries)
            .with_cancel(&harden::spool::INTERRUPTED)
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
pub struct CacheArgs {
    /// Where rewritten layers are kept, keyed by (input digest, layer plan, harden version,
    /// codec). Default: $XDG_CACHE_HOME/harden or ~/.cache/harden.
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Keep rewrites in memory for this run only.
    #[arg(long, conflicts_with = "cache_dir")]
    no_cache: bool,
    /// Share rewrites with other processes (the pods of an indexed Job) through this registry
    /// repository (host/name, ideally in the destination registry): each rewrite is recorded
    /// there as a small artifact, found and verified by the others. Whoever can push to it can
    /// steer rewrites: keep it writable by the pods only.
    #[arg(long, value_name = "REPO")]
    shared_cache: Option<String>,
}

impl CacheArgs {
    /// The cache, its notices going to `progress`.
    pub fn open(&self, progress: &Progress) -> Result<std::sync::Arc<RewriteCache>> {
        let dir = if self.no_cache { None } else { self.cache_dir.clone().or_else(cache::default_dir) };
        Ok(std::sync::Arc::new(RewriteCache::new(dir)?.with_progress(progress.clone())))
    }

    /// The shared cache (`--shared-cache`), when asked for.
    pub fn shared(
        &self,
        net: &NetOptions,
        progress: &Progress,
    ) -> Result<Option<std::sync::Arc<harden::shared_cache::SharedCache>>> {
        self.shared_cache
            .as_deref()
            .map(|r| harden::shared_cache::SharedCache::open(r, net, progress).map(std::sync::Arc::new))
            .transpose()
    }
}

/// What the commands that only read an image (`check`, `contract`, `sbom`) take besides it.
#[derive(Args)]
pub struct ReadArgs {
    /// Layers scanned at once.
    #[arg(long, short = 'j', default_value_t = 4)]
    pub jobs: usize,
    /// No progress on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    #[command(flatten)]
    pub net: Net,
    #[command(flatten)]
    pub limits: LimitArgs,
}

impl ReadArgs {
    /// What the one read path of the read-only commands needs.
    pub fn options(&self) -> harden::source::ReadOptions {
        let (progress, net, limits) = self.open();
        harden::source::ReadOptions { jobs: self.jobs, net, limits, progress }
    }

    /// The progress line, the transport settings reporting to it, and the reading limits.
    pub fn open(&self) -> (Progress, NetOptions, harden::layer::Limits) {
        let progress = Progress::new(self.quiet);
        let limits = self.limits.limits();
        let net = NetOptions { max_blob: limits.max_layer_size, ..self.net.options(&progress) };
        (progress, net, limits)
    }
}
