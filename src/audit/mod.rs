//! Audit: the image checks of `harden check` (and of `rebuild`'s before/after report) — each
//! check a stable ID, a level, evidence (path and the layer digest holding it, or the config
//! field) and the profile rule that fixes it — plus the text, JSON and SARIF outputs.
//!
//! Files are judged on the final filesystem (whiteouts applied), except the escape check, which
//! looks at every layer's entries as stored. The named path groups of `profiles/groups.toml`
//! say what a shell, a package manager, a package cache and a secret file are, matched through
//! directory symlinks as the plan matches them, so a finding's fix removes exactly what it found.
//!
//! Owns: checks → findings, and how findings are printed. Must not: change anything (the image,
//! the plan, the config); the only I/O is [`run`]'s signature look-up (`harden check` itself is
//! [`crate::inspect::check`]).

mod checks;
pub mod format;
pub mod run;
pub mod sarif;

use crate::fs::FinalFs;
use crate::plan::Plan;
use crate::profile::Profile;
use crate::reference::ImageRef;
use crate::scan::LayerIndex;
use serde::Serialize;
use serde_json::{json, Value};

/// The image a run audited.
pub struct ImageInfo {
    pub reference: String,
    pub digest: String,
    /// `os/architecture[/variant]` from its config, when it says (SARIF keeps platforms apart).
    pub platform: Option<String>,
}

impl ImageInfo {
    /// The image named `reference`, its manifest `digest` and the platform `platform` states:
    /// an index entry's `platform`, else the image's config (both have `os`, `architecture`
    /// and `variant`).
    pub fn new(reference: String, digest: String, platform: &Value) -> ImageInfo {
        let s = |k: &str| platform.get(k).and_then(Value::as_str).filter(|v| !v.is_empty());
        let platform = match (s("os"), s("architecture")) {
            (Some(os), Some(arch)) => Some(match s("variant") {
                Some(v) => format!("{os}/{arch}/{v}"),
                None => format!("{os}/{arch}"),
            }),
            _ => None,
        };
        ImageInfo { reference, digest, platform }
    }
}

/// How bad a finding is; `--fail-on` compares against it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Warn,
    Fatal,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Fatal => "fatal",
        }
    }
}

/// A check's stable ID. The [`CHECKS`] table is indexed by it (checked at compile time), so
/// looking a check up cannot fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CheckId {
    UserRoot,
    HealthcheckMissing,
    FileSetuid,
    FileCapabilities,
    FileWorldWritable,
    Shells,
    PackageManagers,
    PackageCaches,
    SecretFile,
    SecretContent,
    SecretEnv,
    SecretHistory,
    ShadowEmptyPassword,
    AccountDuplicateId,
    ReferenceLatest,
    ReferenceUnpinned,
    SignatureMissing,
    VolumeSensitive,
    PortPrivileged,
    LayerPathEscape,
    ContractUnmet,
    PackageDatabaseStale,
}

impl CheckId {
    /// Every ID, in [`CHECKS`] order.
    pub const ALL: [CheckId; 22] = [
        CheckId::UserRoot,
        CheckId::HealthcheckMissing,
        CheckId::FileSetuid,
        CheckId::FileCapabilities,
        CheckId::FileWorldWritable,
        CheckId::Shells,
        CheckId::PackageManagers,
        CheckId::PackageCaches,
        CheckId::SecretFile,
        CheckId::SecretContent,
        CheckId::SecretEnv,
        CheckId::SecretHistory,
        CheckId::ShadowEmptyPassword,
        CheckId::AccountDuplicateId,
        CheckId::ReferenceLatest,
        CheckId::ReferenceUnpinned,
        CheckId::SignatureMissing,
        CheckId::VolumeSensitive,
        CheckId::PortPrivileged,
        CheckId::LayerPathEscape,
        CheckId::ContractUnmet,
        CheckId::PackageDatabaseStale,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CheckId::UserRoot => "HARDEN-USER-ROOT",
            CheckId::HealthcheckMissing => "HARDEN-HEALTHCHECK-MISSING",
            CheckId::FileSetuid => "HARDEN-FILE-SETUID",
            CheckId::FileCapabilities => "HARDEN-FILE-CAPABILITIES",
            CheckId::FileWorldWritable => "HARDEN-FILE-WORLD-WRITABLE",
            CheckId::Shells => "HARDEN-SHELLS",
            CheckId::PackageManagers => "HARDEN-PACKAGE-MANAGERS",
            CheckId::PackageCaches => "HARDEN-PACKAGE-CACHES",
            CheckId::SecretFile => "HARDEN-SECRET-FILE",
            CheckId::SecretContent => "HARDEN-SECRET-CONTENT",
            CheckId::SecretEnv => "HARDEN-SECRET-ENV",
            CheckId::SecretHistory => "HARDEN-SECRET-HISTORY",
            CheckId::ShadowEmptyPassword => "HARDEN-SHADOW-EMPTY-PASSWORD",
            CheckId::AccountDuplicateId => "HARDEN-ACCOUNT-DUPLICATE-ID",
            CheckId::ReferenceLatest => "HARDEN-REFERENCE-LATEST",
            CheckId::ReferenceUnpinned => "HARDEN-REFERENCE-UNPINNED",
            CheckId::SignatureMissing => "HARDEN-SIGNATURE-MISSING",
            CheckId::VolumeSensitive => "HARDEN-VOLUME-SENSITIVE",
            CheckId::PortPrivileged => "HARDEN-PORT-PRIVILEGED",
            CheckId::LayerPathEscape => "HARDEN-LAYER-PATH-ESCAPE",
            CheckId::ContractUnmet => "HARDEN-CONTRACT-UNMET",
            CheckId::PackageDatabaseStale => "HARDEN-PACKAGE-DB-STALE",
        }
    }

    /// The check's row of [`CHECKS`].
    pub fn info(self) -> &'static Check {
        &CHECKS[self as usize]
    }

    /// The ID named `s` (case-insensitive), as `--ignore` takes it.
    pub fn parse(s: &str) -> Option<CheckId> {
        CheckId::ALL.into_iter().find(|c| c.as_str().eq_ignore_ascii_case(s))
    }
}

impl std::fmt::Display for CheckId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for CheckId {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for CheckId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

// CHECKS[id as usize] is the row of `id`: proven here, at compile time.
const _: () = {
    assert!(CHECKS.len() == CheckId::ALL.len());
    let mut i = 0;
    while i < CHECKS.len() {
        assert!(CHECKS[i].id as usize == i && CheckId::ALL[i] as usize == i);
        i += 1;
    }
};

/// One check: the row of the table in docs/checks.md.
pub struct Check {
    pub id: CheckId,
    pub level: Level,
    pub title: &'static str,
    /// CIS Docker Benchmark (v1.6.0) section 4 recommendation.
    pub cis: Option<&'static str>,
    /// Dockle checkpoint.
    pub dockle: Option<&'static str>,
    /// The profile rule that addresses it.
    pub fix: &'static str,
}

const fn c(
    id: CheckId,
    level: Level,
    title: &'static str,
    cis: Option<&'static str>,
    dockle: Option<&'static str>,
    fix: &'static str,
) -> Check {
    Check { id, level, title, cis, dockle, fix }
}

/// Every check, in report order within a level. IDs never change meaning; new checks get new IDs.
pub const CHECKS: &[Check] = &[
    c(CheckId::UserRoot, Level::Warn, "Runs as root", Some("4.1"), Some("CIS-DI-0001"), "[config] user = \"nonroot\" (a numeric uid:gid, 65532 by default)"),
    c(CheckId::HealthcheckMissing, Level::Info, "No HEALTHCHECK", Some("4.6"), Some("CIS-DI-0006"), "[config.healthcheck] test = [\"/path/to/check\"]"),
    c(CheckId::FileSetuid, Level::Warn, "Setuid/setgid files", Some("4.8"), Some("CIS-DI-0008"), "[files] strip_setuid = true (setuid_allow lists the ones to keep)"),
    c(CheckId::FileCapabilities, Level::Warn, "Files with capabilities (security.capability)", None, None, "[files] strip_capabilities = true"),
    c(CheckId::FileWorldWritable, Level::Warn, "World-writable files or directories (not sticky)", None, None, "[files] fix_world_writable = true"),
    c(CheckId::Shells, Level::Info, "Shells present", Some("4.3"), None, "[files] remove = [\"@shells\"] (profile strict)"),
    c(CheckId::PackageManagers, Level::Info, "Package managers present", Some("4.3"), None, "[files] remove = [\"@package-managers\"] (profile strict)"),
    c(CheckId::PackageCaches, Level::Warn, "Package caches present", Some("4.3"), Some("DKL-DI-0005"), "[files] remove = [\"@package-caches\"] (profile baseline)"),
    c(CheckId::SecretFile, Level::Fatal, "Secret files (by name)", Some("4.10"), Some("CIS-DI-0010"), "[files] remove = [\"@secrets\"] (profile baseline)"),
    c(CheckId::SecretContent, Level::Fatal, "Private keys or AWS access keys in files", Some("4.10"), Some("CIS-DI-0010"), "[files] remove = [\"/each/path/listed\"]"),
    c(CheckId::SecretEnv, Level::Fatal, "Secrets in Env", Some("4.10"), Some("CIS-DI-0010"), "[config] env_secrets = \"remove\" (profile baseline)"),
    c(CheckId::SecretHistory, Level::Fatal, "Secrets in history (created_by)", Some("4.10"), Some("CIS-DI-0010"), "[config] env_secrets = \"remove\" also scrubs those values from history; others need a rebuild from source"),
    c(CheckId::ShadowEmptyPassword, Level::Fatal, "Accounts with an empty password in /etc/shadow", None, Some("DKL-LI-0001"), "no profile rule: lock the account in the source image (passwd -l NAME); profile strict removes the login tools"),
    c(CheckId::AccountDuplicateId, Level::Fatal, "Duplicate uids or gids", None, Some("DKL-LI-0002"), "no profile rule: fix /etc/passwd and /etc/group in the source image"),
    c(CheckId::ReferenceLatest, Level::Warn, "Referenced by the latest tag", None, Some("DKL-DI-0006"), "refer to the image by digest (rebuild prints DST@sha256:…)"),
    c(CheckId::ReferenceUnpinned, Level::Info, "Referenced without a digest", None, None, "refer to the image by digest (rebuild prints DST@sha256:…)"),
    c(CheckId::SignatureMissing, Level::Info, "No cosign signature found", Some("4.5"), Some("CIS-DI-0005"), "rebuild --sign-key KEY, or harden sign --key KEY IMAGE"),
    c(CheckId::VolumeSensitive, Level::Fatal, "Volume on /proc, /sys or /dev", None, Some("DKL-DI-0002"), "[config] volumes = [...] (replaces the image's list)"),
    c(CheckId::PortPrivileged, Level::Warn, "Privileged port (below 1024) exposed", None, None, "[config] exposed_ports = [\"8080/tcp\"] (replaces the image's list)"),
    c(CheckId::LayerPathEscape, Level::Fatal, "Layer entries whose path leaves the root (../ or absolute)", None, None, "no profile rule: rebuild the layer; harden normalises the names of the entries it rewrites"),
    c(CheckId::ContractUnmet, Level::Warn, "The least-privilege runtime contract cannot be met (root user, unknown user, setuid/setgid or capability files)", None, None, "[config] user = \"nonroot\"; [files] strip_setuid = true, strip_capabilities = true (harden contract IMAGE shows the contract)"),
    c(CheckId::PackageDatabaseStale, Level::Warn, "Package database lists packages or files the image does not have", None, None, "rebuild with harden (any profile removing files): a dpkg or apk database follows the files (drop [packages] keep_database = true); an rpm database is never edited, so it names the packages whose files are gone"),
];

pub fn check_info(id: &str) -> Option<&'static Check> {
    CheckId::parse(id).map(CheckId::info)
}

/// Where a finding was seen: a file (path and the layer holding it) or a config field.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Evidence {
    /// Absolute path in the image, e.g. `/usr/bin/su`.
    pub path: Option<String>,
    /// Digest of the layer (blob) that holds the entry, when known.
    pub layer: Option<String>,
    /// Index of that layer in the manifest (0 = base).
    pub layer_index: Option<usize>,
    /// Config field, e.g. `config.User`, `history[3].created_by`, `reference`.
    pub field: Option<String>,
    /// What about it: mode bits, the account, the secret's kind (never the secret).
    pub detail: Option<String>,
}

impl Evidence {
    pub fn field(field: impl Into<String>, detail: impl Into<String>) -> Evidence {
        Evidence { field: Some(field.into()), detail: Some(detail.into()), ..Default::default() }
    }
    pub fn with_detail(mut self, detail: impl Into<String>) -> Evidence {
        self.detail = Some(detail.into());
        self
    }
}

/// One check's result: every path or field it found, under one ID.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub id: CheckId,
    pub level: Level,
    pub title: &'static str,
    pub evidence: Vec<Evidence>,
    pub fix: String,
    pub cis: Option<&'static str>,
    pub dockle: Option<&'static str>,
}

impl Finding {
    fn new(id: CheckId, evidence: Vec<Evidence>) -> Finding {
        let c = id.info();
        Finding { id, level: c.level, title: c.title, evidence, fix: c.fix.to_string(), cis: c.cis, dockle: c.dockle }
    }
}

/// Whether a cosign signature was looked for, and what came of it.
#[derive(Clone, Debug, Default)]
pub enum Signature {
    #[default]
    NotChecked,
    /// Found at this reference.
    Found(String),
    /// Looked for here; nothing.
    Absent(String),
    /// The look-up failed; the note says why.
    Unknown(String),
}

/// What the audit knows besides the filesystem and the config.
#[derive(Default)]
pub struct AuditContext<'a> {
    /// How the image was named (for the latest / no-digest checks); None skips them.
    pub reference: Option<&'a ImageRef>,
    /// Layer digests by index, for evidence; None where unknown.
    pub layers: Vec<Option<String>>,
    pub signature: Signature,
    /// `check --profile`: paths its `keep` rules match and setuid files its `setuid_allow`
    /// matches are expected, not reported.
    pub profile: Option<&'a Profile>,
    /// Check IDs not to report (`--ignore`).
    pub ignore: &'a [String],
}

/// Run every check. Findings come fatal first, then in [`CHECKS`] order; `ctx.ignore` drops IDs.
pub fn audit(fs: &FinalFs, config: &Value, ctx: &AuditContext) -> Vec<Finding> {
    let mut out = checks::run(fs, config, ctx);
    out.retain(|f| !f.evidence.is_empty() && !ctx.ignore.iter().any(|i| i.eq_ignore_ascii_case(f.id.as_str())));
    out.sort_by_key(|f| (std::cmp::Reverse(f.level), f.id as usize));
    out
}

/// `(total, fatal, warn, info)`.
pub fn counts(findings: &[Finding]) -> (usize, usize, usize, usize) {
    let n = |l: Level| findings.iter().filter(|f| f.level == l).count();
    (findings.len(), n(Level::Fatal), n(Level::Warn), n(Level::Info))
}

/// True when a finding is at or above `fail_on`.
pub fn fails(findings: &[Finding], fail_on: Level) -> bool {
    findings.iter().any(|f| f.level >= fail_on)
}

/// The image a rebuild would produce, as the audit sees it: every layer with the plan's
/// changes applied the way the rewrite applies them (removed entries dropped, modes and
/// capabilities changed, hardlink targets promoted, changed entries' names normalised), plus
/// the user layer when one is added. Costs a copy of the headers of the layers the plan
/// changes (the others are shared), no layer reads.
pub fn after_view(fs: &FinalFs, plan: &Plan, user_layer: Option<&[u8]>) -> FinalFs {
    let mut layers: Vec<std::sync::Arc<LayerIndex>> = Vec::with_capacity(fs.layers.len() + 1);
    // The source's layer packed within 4 GiB of names and prefixes; an entry past them (a
    // changed prefix larger than the file was) is left out of this prediction.
    let push = |entries: &mut crate::scan::Entries, e| {
        let _ = entries.push(e);
    };
    for (li, layer) in fs.layers.iter().enumerate() {
        let lp = plan.layers.get(li);
        // A layer the plan leaves alone is the source's, shared: no copy of its headers.
        if lp.is_none_or(|lp| lp.is_unchanged()) {
            layers.push(layer.clone());
            continue;
        }
        let mut entries = crate::scan::Entries::default();
        for e in layer.entries.iter() {
            let Some(c) = lp.and_then(|lp| lp.changes.get(e.path)) else {
                push(&mut entries, e.to_owned());
                continue;
            };
            if c.remove && c.promote_to.is_none() {
                continue;
            }
            let mut n = e.to_owned();
            let mut mode = c.mode;
            let mut strip_caps = c.strip_caps;
            if let Some(to) = &c.promote_to {
                n.path = to.as_str().into();
                if let Some(lc) = lp.and_then(|lp| lp.changes.get(to)) {
                    mode = lc.mode.or(mode);
                    strip_caps |= lc.strip_caps;
                }
            }
            if let Some(to) = &c.relink_to {
                n.set_link(Some(to.as_str()));
            }
            if let Some(m) = mode {
                n.mode = m;
            }
            if let Some(new) = &c.content {
                n.size = new.data.len() as u64;
                n.set_prefix(Some(new.data.to_vec().into_boxed_slice()));
            }
            if strip_caps {
                n.caps = false;
            }
            if let Some((uid, gid)) = c.owner {
                (n.uid, n.gid) = (uid, gid);
            }
            n.escapes = false;
            push(&mut entries, n);
        }
        layers.push(std::sync::Arc::new(LayerIndex {
            entries,
            codec: layer.codec,
            diff_id: layer.diff_id.clone(),
            uncompressed_size: layer.uncompressed_size,
        }));
    }
    if let Some(blob) = user_layer {
        if let Ok(l) = crate::scan::scan_layer(blob, None, None, &crate::layer::Limits::default()) {
            layers.push(l.into());
        }
    }
    FinalFs::build(layers)
}

/// `rebuild`'s audit: the source and the predicted result, for the report and the summary line.
pub struct RebuildFindings {
    pub before: Vec<Finding>,
    pub after: Option<Vec<Finding>>,
}

impl RebuildFindings {
    /// `findings 23 → 1 (fatal 4 → 0)`.
    pub fn summary(&self) -> String {
        let (n, f, _, _) = counts(&self.before);
        match &self.after {
            Some(a) => {
                let (m, g, _, _) = counts(a);
                format!("findings {n} → {m} (fatal {f} → {g})")
            }
            None => format!("findings {n} (fatal {f}); the result's config could not be predicted"),
        }
    }

    /// Name the result's layers once their digests are known (the manifest's `layers` list).
    pub fn name_after_layers(&mut self, manifest_layers: &Value) {
        for f in self.after.iter_mut().flatten() {
            for e in &mut f.evidence {
                if let Some(i) = e.layer_index {
                    e.layer = manifest_layers[i]["digest"].as_str().map(str::to_string).or(e.layer.take());
                }
            }
        }
    }

    /// `{"before": [...], "after": [...], "summary": "..."}` for the report.
    pub fn to_json(&self) -> Value {
        json!({"before": self.before, "after": self.after, "summary": self.summary()})
    }
}

#[cfg(test)]
mod tests;
