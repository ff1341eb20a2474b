//! Typed, versioned reports: what `rebuild --report` (`harden-rebuild/1`) and `batch --report`
//! (`harden-batch/1`) write. The shapes are documented in docs/reports.md; `check`'s JSON
//! (`harden-check/1`) is the audit's ([`crate::audit::format`]).
//!
//! A field is added, never renamed or given another meaning, without bumping the schema.
//!
//! Owns: the report types and their serialisation. Must not: print, or compute anything
//! beyond converting what the stages found.

use crate::audit::{Finding, RebuildFindings};
use crate::config::ConfigChanges;
use crate::digest::Digest;
use crate::guard::Breakage;
use crate::plan::Plan;
use serde::Serialize;

/// The rebuild report's schema; bumped only on incompatible changes.
pub const REBUILD_SCHEMA: &str = "harden-rebuild/1";
/// The batch report's schema.
pub const BATCH_SCHEMA: &str = "harden-batch/1";

/// `rebuild --report`. For one image its plan, guard, findings, layers and config changes sit
/// at the top; for an index each platform's are under `images`.
#[derive(Serialize, Clone, Debug)]
pub struct RebuildReport {
    pub schema: &'static str,
    pub harden_version: &'static str,
    pub source: SourceRef,
    pub profile: ProfileRef,
    /// The output codec, e.g. `gzip:6`.
    pub compression: String,
    /// Whether changed gzip layers were spliced (false with `--recompress`).
    pub splice: bool,
    /// One image: its report, flattened into this one (without its `source`).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageReport>,
    /// An index: one report per platform rebuilt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub images: Option<Vec<ImageReport>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<ResultRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<SignatureReport>,
    /// The cosign v3 bundles `--bundle` stored (the result's first; for an index every
    /// platform's, then the index's).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bundles: Vec<BundleReport>,
    /// The attestations `--attest` stored.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attestations: Vec<AttestationReport>,
    /// What verified the source under `--require-signature`, one entry per digest checked.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source_signatures: Vec<SourceSignatureReport>,
    /// What described the source (signatures, attestations, referrers) and was not carried
    /// over to the result, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_carried_over: Vec<NotCarriedReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timings_ms: Option<Timings>,
    /// A rerun that found its result already at the destination (nothing planned or rewritten).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reused: Option<Reused>,
}

/// `reused`: the result record found, and the report of the run that made the result.
#[derive(Serialize, Clone, Debug)]
pub struct Reused {
    /// The record's key (a file under the cache directory's `results/`).
    pub record: String,
    pub made_by: serde_json::Value,
}

impl RebuildReport {
    pub fn new(source: SourceRef, profile: ProfileRef, compression: String, splice: bool) -> RebuildReport {
        RebuildReport {
            schema: REBUILD_SCHEMA,
            harden_version: env!("CARGO_PKG_VERSION"),
            source,
            profile,
            compression,
            splice,
            image: None,
            images: None,
            result: None,
            signature: None,
            bundles: Vec::new(),
            attestations: Vec::new(),
            source_signatures: Vec::new(),
            not_carried_over: Vec::new(),
            timings_ms: None,
            reused: None,
        }
    }
}

#[derive(Serialize, Clone, Debug)]
pub struct SourceRef {
    pub reference: String,
    pub digest: String,
}

#[derive(Serialize, Clone, Debug)]
pub struct ProfileRef {
    pub name: String,
    pub digest: String,
}

/// What was pushed: the manifest (or index) digest, and for one image its config's.
#[derive(Serialize, Clone, Debug, Default)]
pub struct ResultRef {
    pub digest: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_digest: Option<String>,
    /// `DST@sha256:…`, as printed on stdout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Set when a Docker schema 2 manifest (or manifest list) was converted to OCI media types
    /// because the destination (`oci:`, `oci-archive:`) holds OCI documents only; the digest
    /// is then not the one a registry destination gets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub converted_to_oci: Option<Conversion>,
}

/// A manifest's media types changed on the way to the destination: `from` → `to`.
#[derive(Serialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Conversion {
    pub from: String,
    pub to: String,
}

/// The report of one image (a platform of an index, or the whole run for one image).
#[derive(Serialize, Clone, Debug)]
pub struct ImageReport {
    /// Where this platform came from (absent when flattened into the run's report).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceRef>,
    pub plan: PlanReport,
    pub guard: GuardReport,
    pub findings: FindingsReport,
    /// For a platform of an index; for one image the run's `result` holds it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<ResultRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layers: Option<Vec<LayerReport>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_changes: Option<ConfigChanges>,
    /// For a platform of an index; for one image the run's `timings_ms` holds them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timings_ms: Option<Timings>,
    /// `--verify-run`: the probe and how the source and the result did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_run: Option<crate::verify_run::Verdict>,
}

#[derive(Serialize, Clone, Debug)]
pub struct PlanReport {
    /// `removed 12 paths, stripped setuid/setgid from 3, …; 2 of 5 layers rewritten`.
    pub summary: String,
    pub removed: Vec<RemovedPath>,
    pub setuid_stripped: Vec<String>,
    pub capabilities_stripped: Vec<String>,
    pub world_writable_fixed: Vec<String>,
    pub notes: Vec<String>,
    pub layers: Vec<LayerPlanReport>,
    /// The package databases before and after (absent when no package lost a file and no
    /// database was left as it was).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packages: Option<crate::plan::PackageChanges>,
    /// `[runtime] writable` directories given to the profile's user (absent when none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub handed_over: Vec<HandedOver>,
}

/// A writable directory given to the user: `/var/cache/nginx`, `65532:65532`, created or not,
/// how many entries changed owner.
#[derive(Serialize, Clone, Debug)]
pub struct HandedOver {
    pub path: String,
    pub owner: String,
    pub created: bool,
    pub entries: usize,
}

impl PlanReport {
    /// The plan, paths absolute; `layer_digests` are the source's, in manifest order.
    pub fn new(summary: String, plan: &Plan, layer_digests: &[Digest]) -> PlanReport {
        let abs = |v: &[String]| v.iter().map(|p| format!("/{p}")).collect();
        PlanReport {
            summary,
            removed: plan
                .removed
                .iter()
                .map(|(p, r)| RemovedPath {
                    path: format!("/{p}"),
                    rule: r.pattern.clone(),
                    origin: r.origin.clone(),
                    copy_of: plan.copy_of.get(p).map(|o| Followed {
                        path: format!("/{o}"),
                        rule: plan.removed.get(o).map(|r| r.pattern.clone()).unwrap_or_default(),
                        origin: plan.removed.get(o).map(|r| r.origin.clone()).unwrap_or_default(),
                    }),
                })
                .collect(),
            setuid_stripped: abs(&plan.setuid_stripped),
            capabilities_stripped: abs(&plan.caps_stripped),
            world_writable_fixed: abs(&plan.world_writable_fixed),
            notes: plan.notes.clone(),
            layers: layer_digests
                .iter()
                .zip(&plan.layers)
                .map(|(d, p)| LayerPlanReport {
                    digest: d.to_string(),
                    changes: !p.is_unchanged(),
                    removed: p.removed(),
                    changed: p.changed(),
                })
                .collect(),
            packages: (!plan.packages.is_empty()).then(|| plan.packages.clone()),
            handed_over: plan
                .handed_over
                .iter()
                .map(|h| HandedOver {
                    path: format!("/{}", h.path),
                    owner: format!("{}:{}", h.uid, h.gid),
                    created: h.created,
                    entries: h.entries,
                })
                .collect(),
        }
    }
}

#[derive(Serialize, Clone, Debug)]
pub struct RemovedPath {
    pub path: String,
    /// The glob that matched, as written (after group expansion).
    pub rule: String,
    /// Where the rule came from, e.g. `@shells (strict)`.
    pub origin: String,
    /// For a copy (`rule` is `copy of /…`): the removal it followed — the original's path and
    /// the rule that removed it. Absent for any other removal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copy_of: Option<Followed>,
}

/// The removal a copy followed (see [`RemovedPath::copy_of`]).
#[derive(Serialize, Clone, Debug)]
pub struct Followed {
    pub path: String,
    pub rule: String,
    pub origin: String,
}

#[derive(Serialize, Clone, Debug)]
pub struct LayerPlanReport {
    pub digest: String,
    pub changes: bool,
    pub removed: usize,
    pub changed: usize,
}

#[derive(Serialize, Clone, Debug)]
pub struct GuardReport {
    pub broken: Vec<BreakageReport>,
    pub preexisting: Vec<String>,
}

impl GuardReport {
    pub fn new(broken: &[Breakage], preexisting: &[Breakage]) -> GuardReport {
        GuardReport {
            broken: broken.iter().map(|b| BreakageReport { message: b.to_string(), breakage: b.clone() }).collect(),
            preexisting: preexisting.iter().map(ToString::to_string).collect(),
        }
    }
}

/// A refusal: the guard's [`Breakage`] and its one-line message.
#[derive(Serialize, Clone, Debug)]
pub struct BreakageReport {
    #[serde(flatten)]
    pub breakage: Breakage,
    pub message: String,
}

/// The audit of the source and of the result.
#[derive(Serialize, Clone, Debug)]
pub struct FindingsReport {
    pub before: Vec<Finding>,
    /// None when the result's config could not be predicted (the config edit refuses).
    pub after: Option<Vec<Finding>>,
    pub summary: String,
}

impl From<&RebuildFindings> for FindingsReport {
    fn from(f: &RebuildFindings) -> FindingsReport {
        FindingsReport { before: f.before.clone(), after: f.after.clone(), summary: f.summary() }
    }
}

/// What happened to a layer.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerAction {
    /// Unchanged: the source's blob and descriptor, as they were.
    #[serde(rename = "reused")]
    Reused,
    #[serde(rename = "rewritten")]
    Rewritten,
    /// Rewritten by an earlier run (or job): served from the rewrite cache.
    #[serde(rename = "rewritten (cached)")]
    RewrittenCached,
    /// Rewritten by another process (a pod): found in the shared cache (`--shared-cache`).
    #[serde(rename = "rewritten (shared cache)")]
    RewrittenShared,
    /// A layer harden adds (the user layer).
    #[serde(rename = "added")]
    Added,
}

/// One layer of the result.
#[derive(Serialize, Clone, Debug)]
pub struct LayerReport {
    /// The source layer (null for an added one).
    pub input_digest: Option<String>,
    pub output_digest: String,
    pub action: LayerAction,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_codec: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uncompressed_bytes: Option<u64>,
    /// Where the source layer's scan came from: `scanned` (fetched and scanned in this run) or
    /// `scan-cache` (known from the scan cache: not fetched to plan).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scan: Option<&'static str>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entries_removed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entries_changed: Option<u64>,
    /// Bytes of the tar copied as source deflate blocks rather than recompressed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_spliced: Option<u64>,
    /// Descriptor annotations a rewritten layer lost because they describe the source blob
    /// (eStargz / zstd:chunked TOC digests); rewritten layers only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropped_annotations: Option<Vec<String>>,
    /// Why an added layer is there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
}

/// Milliseconds per stage; `total` for the whole run.
#[derive(Serialize, Clone, Debug, Default)]
pub struct Timings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scan: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// The cosign signature `--sign-key` added (or found).
#[derive(Serialize, Clone, Debug)]
pub struct SignatureReport {
    pub tag: String,
    pub manifest_digest: String,
    pub payload_digest: String,
    /// False when an equivalent signature was already there.
    pub added: bool,
}

/// A cosign v3 bundle stored as a referrer of `subject`.
#[derive(Serialize, Clone, Debug)]
pub struct BundleReport {
    pub subject: String,
    pub manifest_digest: String,
    /// The referrers tag written (registries without the referrers API).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referrers_tag: Option<String>,
    pub added: bool,
}

/// One attestation stored in `subject`'s `.att` manifest.
#[derive(Serialize, Clone, Debug)]
pub struct AttestationReport {
    pub subject: String,
    pub predicate_type: String,
    pub tag: String,
    pub manifest_digest: String,
    pub envelope_digest: String,
    /// sha256 of the in-toto statement: the same run gives the same.
    pub statement_digest: String,
    pub added: bool,
    /// With `--bundle`: the bundle referrer holding the same statement (cosign v3 reads those).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
}

/// A source digest and the signature that verified it under `--require-signature`.
#[derive(Serialize, Clone, Debug)]
pub struct SourceSignatureReport {
    pub digest: String,
    /// The key file, as given.
    pub key: String,
    /// Its sigstore hint: base64 of sha256 over the public key's DER.
    pub key_hint: String,
    /// Where the signature is (`sha256-<hex>.sig #0 sha256:…`, `bundle sha256:…`).
    pub signature: String,
    /// Keyless (`--require-identity`): the certificate's identity, issuer and the log entry.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub keyless: Option<KeylessReport>,
}

/// Who signed keylessly, and the transparency log entry that proves when.
#[derive(Serialize, Clone, Debug)]
pub struct KeylessReport {
    pub identity: String,
    pub issuer: String,
    pub log_index: i64,
    /// The log's id (hex SHA-256 of its key).
    pub log_id: String,
    /// The proven signing time, RFC 3339: the log's integrated time, else the TSA's.
    pub integrated_time: String,
    /// The RFC 3161 timestamp authority (of the trusted root) whose timestamp proves the time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp_authority: Option<String>,
}

/// Something that described the source and was left behind (read back from a result record
/// by a rerun that reuses it).
#[derive(Serialize, serde::Deserialize, Clone, Debug)]
pub struct NotCarriedReport {
    /// The source digest it describes.
    pub subject: String,
    /// `sha256-<hex>.sig (2 layers)`, `referrer sha256:… (application/vnd.…)`, …
    pub what: String,
    pub reason: String,
}

/// `batch --report`.
#[derive(Serialize, Clone, Debug)]
pub struct BatchReport {
    pub schema: &'static str,
    pub harden_version: &'static str,
    pub file: String,
    /// `I/N` with `--shard`.
    pub shard: Option<String>,
    /// Every job of this shard, in file order.
    pub jobs: Vec<JobReport>,
}

/// How a job ended.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Ok,
    /// A policy result: the guard refused (exit 3 on its own).
    Refused,
    Failed,
    /// Not started: an earlier job failed and `--keep-going` was not given.
    Skipped,
}

#[derive(Serialize, Clone, Debug)]
pub struct JobReport {
    /// 1-based position in the job file.
    pub job: usize,
    pub source: String,
    pub destination: String,
    pub status: JobStatus,
    /// `DST@sha256:…` when ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<Box<RebuildReport>>,
    /// The one-line error when refused or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
