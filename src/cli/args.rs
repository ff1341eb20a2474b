//! Argument groups several commands share: registry access and logins, reading limits, the
//! rewrite cache. Common flags also come from `HARDEN_*` environment variables (clap's `env`).
//!
//! Owns: those shared flag groups and their mapping to library options. Must not: hold logic
//! beyond turning flags into options.

use anyhow::Result;
use clap::Args;
use harden::cache::{self, RewriteCache};
use harden::progress::Progress;
use harden::transport::auth::{Logins, UserPass};
use harden::transport::NetOptions;
use std::path::PathBuf;

#[derive(Args, Clone)]
pub struct Net {
    /// Use plain HTTP for registries that are not on loopback (loopback always is).
    #[arg(long, global = true, env = "HARDEN_PLAIN_HTTP")]
    pub plain_http: bool,
    /// Do not verify registry TLS certificates.
    #[arg(long, global = true, env = "HARDEN_INSECURE")]
    insecure: bool,
    /// Trust this PEM CA certificate for registry TLS.
    #[arg(long, global = true, value_name = "FILE", env = "HARDEN_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// Retries of a registry request after a transient failure (connection reset or refused,
    /// timeout, HTTP 5xx, 429), with exponential backoff and jitter.
    #[arg(long, global = true, value_name = "N", env = "HARDEN_RETRIES", default_value_t = harden::transport::retry::DEFAULT_RETRIES)]
    retries: u32,
    /// Seconds a registry request may take (a blob transfer: may go without progress) before it
    /// counts as failed and is retried.
    #[arg(long, global = true, value_name = "SECS", env = "HARDEN_TIMEOUT", default_value_t = harden::transport::retry::DEFAULT_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=86400))]
    timeout: u64,
    #[command(flatten)]
    login: Login,
}

/// Registry logins (README "Logins"): every command that touches a registry takes these.
#[derive(Args, Clone)]
pub struct Login {
    /// Read registry logins from this file alone (containers-auth.json(5) or docker's
    /// config.json), instead of $XDG_RUNTIME_DIR/containers/auth.json,
    /// ~/.config/containers/auth.json and ~/.docker/config.json.
    #[arg(long, global = true, value_name = "FILE", env = "REGISTRY_AUTH_FILE")]
    authfile: Option<PathBuf>,
    /// Log in to every registry as USER; without :PASS the password comes from
    /// $HARDEN_REGISTRY_PASSWORD, else a prompt on the terminal. Beats the auth files.
    #[arg(long, global = true, value_name = "USER[:PASS]", env = "HARDEN_CREDS", hide_env_values = true)]
    creds: Option<String>,
}

/// `rebuild` and `batch`: a login for each side of the copy, as skopeo's.
#[derive(Args, Clone)]
pub struct CopyLogin {
    /// Log in to the source's registry as USER (password from :PASS, $HARDEN_SRC_PASSWORD or a
    /// prompt); beats --creds there.
    #[arg(long, value_name = "USER[:PASS]", env = "HARDEN_SRC_CREDS", hide_env_values = true)]
    src_creds: Option<String>,
    /// Log in to the destination's registry as USER (password from :PASS, $HARDEN_DEST_PASSWORD
    /// or a prompt) — also for what goes beside the result: signatures, attestations, the
    /// shared cache; beats --creds there.
    #[arg(long, value_name = "USER[:PASS]", env = "HARDEN_DEST_CREDS", hide_env_values = true)]
    dest_creds: Option<String>,
}

impl CopyLogin {
    /// `net` with these logins added.
    pub fn apply(&self, mut net: NetOptions) -> Result<NetOptions> {
        net.logins.src_creds = user_pass("--src-creds", self.src_creds.as_deref(), "HARDEN_SRC_PASSWORD")?;
        net.logins.dest_creds = user_pass("--dest-creds", self.dest_creds.as_deref(), "HARDEN_DEST_PASSWORD")?;
        Ok(net)
    }
}

/// `USER:PASS` split at its first colon; `USER` alone takes its password from `env`, else from a
/// prompt on the terminal (never echoed), else it is a usage error.
fn user_pass(flag: &str, value: Option<&str>, env: &str) -> Result<Option<UserPass>> {
    let Some(value) = value else { return Ok(None) };
    let (user, password) = match value.split_once(':') {
        Some((u, p)) => (u, Some(p.to_string())),
        None => (value, None),
    };
    if user.is_empty() {
        return Err(super::usage(format!("{flag}: the user name is empty (USER[:PASS])")));
    }
    let password = match password {
        Some(p) => p,
        None => match std::env::var(env) {
            Ok(p) => p,
            Err(std::env::VarError::NotUnicode(_)) => return Err(super::usage(format!("{env} is not valid UTF-8"))),
            Err(std::env::VarError::NotPresent) if super::terminal() => {
                super::prompt(&format!("Password for {user} ({flag}): "))?
            }
            Err(std::env::VarError::NotPresent) => {
                return Err(super::usage(format!(
                    "{flag} {user}: no password: give {user}:PASS, set {env}, or run on a terminal to be asked"
                )))
            }
        },
    };
    Ok(Some(UserPass { user: user.to_string(), password }))
}

impl Net {
    /// The transport settings, reporting retries to `progress`; a `--creds` password is asked
    /// for here when it is neither given nor in the environment.
    pub fn options(&self, progress: &Progress) -> Result<NetOptions> {
        let mut logins = Logins::default();
        logins.authfile = self.login.authfile.clone();
        logins.creds = user_pass("--creds", self.login.creds.as_deref(), "HARDEN_REGISTRY_PASSWORD")?;
        Ok(NetOptions {
            max_blob: harden::layer::DEFAULT_MAX_LAYER_SIZE,
            plain_http: self.plain_http,
            insecure: self.insecure,
            ca_cert: self.ca_cert.clone(),
            retries: self.retries,
            timeout: std::time::Duration::from_secs(self.timeout),
            progress: progress.clone(),
            logins,
            clients: Default::default(),
        })
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
    #[arg(long, value_name = "DIR", env = "HARDEN_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Keep rewrites in memory for this run only.
    #[arg(long, conflicts_with = "cache_dir")]
    no_cache: bool,
    /// Share rewrites with other processes (the pods of an indexed Job) through this registry
    /// repository (host/name, ideally in the destination registry): each rewrite is recorded
    /// there as a small artifact, found and verified by the others. Whoever can push to it can
    /// steer rewrites: keep it writable by the pods only.
    #[arg(long, value_name = "REPO", env = "HARDEN_SHARED_CACHE")]
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
            .map(|r| {
                harden::shared_cache::SharedCache::open(r, &net.for_destination(), progress).map(std::sync::Arc::new)
            })
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
    pub fn options(&self) -> Result<harden::source::ReadOptions> {
        let (progress, net, limits) = self.open()?;
        Ok(harden::source::ReadOptions { jobs: self.jobs, net, limits, progress })
    }

    /// The progress line, the transport settings reporting to it, and the reading limits.
    pub fn open(&self) -> Result<(Progress, NetOptions, harden::layer::Limits)> {
        let progress = Progress::new(self.quiet);
        let limits = self.limits.limits();
        let net = NetOptions { max_blob: limits.max_layer_size, ..self.net.options(&progress)? };
        Ok((progress, net, limits))
    }
}
