//! `rebuild --verify-run`: before the push, run the source and the result under runc and probe
//! both the same way ([`probe::choose`]). The source runs as it asks (its user, a writable
//! root, Docker's default capabilities); the result as its runtime contract says (numeric
//! user, read-only root with the contract's tmpfs mounts, its capabilities, no-new-privileges)
//! with each `VOLUME` on a fresh directory. Each run has a private network namespace with
//! loopback only. The bundles live under the run's temporary directory; containers are killed
//! and deleted when a run ends, and at exit if it was abandoned ([`cleanup_at_exit`]).
//!
//! Owns: the two runs and their verdict. Must not: decide whether the verdict refuses the
//! push (the pipeline does), or touch the images' blobs (it reads them).

pub mod bundle;
pub mod container;
pub mod observe;
pub mod probe;

use crate::profile::VerifyRules;
use anyhow::Result;
use serde::Serialize;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

pub use bundle::{Bytes, Image, Layer};
pub use container::cleanup_at_exit;

/// How one image did.
#[derive(Clone, Debug, Serialize)]
pub struct RunVerdict {
    pub passed: bool,
    /// What passed, or why it failed.
    pub detail: String,
    /// The container's last lines of output (stdout, then stderr).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub last_lines: Vec<String>,
}

/// Both runs.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    /// The probe, as said (`TCP connect to 80/tcp`).
    pub probe: String,
    pub source: RunVerdict,
    pub result: RunVerdict,
}

impl Verdict {
    /// The source passes and the result does not: the result would not start where the source does.
    pub fn refuses(&self) -> bool {
        self.source.passed && !self.result.passed
    }
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// Run `image` in `dir` as `how` and probe it. Err only for what keeps it from being run at all
/// (runc or umoci missing, not permitted, an unpack that fails).
pub fn run_one(
    runc: &Path,
    image: &Image,
    dir: &Path,
    how: &bundle::How,
    probing: &probe::Probing,
) -> Result<RunVerdict> {
    std::fs::create_dir_all(dir)?;
    let bundle = bundle::make(image, dir, how)?;
    let id = format!("harden-verify-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::SeqCst));
    let mut c = container::Container::start(runc, &bundle, dir, &id)?;
    let outcome = probe::wait(&mut c, probing);
    c.stop();
    let last_lines = c.last_lines(20);
    let _ = std::fs::remove_dir_all(&bundle);
    Ok(match outcome {
        Ok(what) => RunVerdict { passed: true, detail: what, last_lines },
        Err(probe::NoPass::Interrupted) => anyhow::bail!("interrupted"),
        Err(probe::NoPass::Failed(why)) => RunVerdict { passed: false, detail: why, last_lines },
    })
}

/// Run `source` as it asks and `result` as `how` says (as its contract: its volumes on fresh
/// directories), in `dir`, probing both as `rules` and the source's config choose.
pub fn verify(dir: &Path, source: &Image, result: &Image, how: &bundle::How, rules: &VerifyRules) -> Result<Verdict> {
    let runc = container::find_runc()?;
    let config: serde_json::Value = serde_json::from_slice(&source.config)?;
    let probing = probe::choose(rules, &config);
    let names: Vec<String> = probing.probes.iter().map(ToString::to_string).collect();
    let s = run_one(&runc, source, &dir.join("source"), &bundle::How::AsItAsks, &probing)?;
    let r = run_one(&runc, result, &dir.join("result"), how, &probing)?;
    let _ = std::fs::remove_dir_all(dir);
    Ok(Verdict { probe: names.join(" and "), source: s, result: r })
}

/// The host's architecture as OCI names it (`amd64`, `arm64`, …).
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "arm" => "arm",
        other => other,
    }
}
