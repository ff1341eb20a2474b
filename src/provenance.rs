//! SLSA provenance v1 (`https://slsa.dev/provenance/v1`) of a rebuild: a post-build
//! transformation whose `buildType` is [`BUILD_TYPE`], `externalParameters` the source
//! reference and the profiles as given, `resolvedDependencies` the source image (by manifest
//! digest) and every profile file read (by digest), and `byproducts` what harden did (plan
//! summary, findings before → after, packages removed, which key verified the source).
//!
//! Deterministic: no wall-clock time; `runDetails.metadata.startedOn`/`finishedOn` only when
//! `SOURCE_DATE_EPOCH` gives one. The same run gives the same predicate, hence the same
//! statement bytes.
//!
//! Owns: the predicate's shape. Must not: do I/O, sign, or compute what it reports (the
//! pipeline hands the facts over).

use crate::profile::ProfileFile;
use serde_json::{json, Map, Value};

/// harden's build type: a rebuild of an existing image per profiles (stable across versions;
/// a change of meaning gets a new one).
pub const BUILD_TYPE: &str = "https://harden.dev/buildtypes/rebuild/v1";
/// The builder: harden itself (its version is in `builder.version`).
pub const BUILDER_ID: &str = "https://harden.dev/harden";

/// What a run knows about itself.
#[derive(Debug, Clone)]
pub struct Run {
    /// SRC as given.
    pub source_reference: String,
    /// The repository (or layout) SRC names, without tag or digest.
    pub source_repository: String,
    /// The manifest (or index) digest read.
    pub source_digest: String,
    /// `--profile` values as given (`baseline` when none).
    pub profiles: Vec<String>,
    /// Every profile file read (built-ins and `extends` included).
    pub profile_files: Vec<ProfileFile>,
    /// The resolved profile's digest.
    pub profile_digest: String,
    /// `--platform` values, when some were chosen.
    pub platforms: Vec<String>,
    pub compression: String,
    /// Which `--require-signature` key verified the source, and how (e.g.
    /// `vendor.pub (sha256:…): sha256-….sig #0`).
    pub source_verified_by: Vec<String>,
    /// `SOURCE_DATE_EPOCH` as RFC 3339, when set.
    pub time: Option<String>,
}

/// One image of the result: its platform (for an index), source and result digests, and what
/// harden did to it.
#[derive(Debug, Clone)]
pub struct Image {
    pub platform: Option<String>,
    pub source_digest: String,
    pub result_digest: String,
    /// The plan's one-line summary.
    pub plan: String,
    pub paths_removed: usize,
    /// `findings 23 → 1 (fatal 4 → 0)`.
    pub findings: String,
    pub findings_before: usize,
    /// None when the result's config could not be predicted.
    pub findings_after: Option<usize>,
    pub packages_removed: Vec<String>,
}

/// The SLSA provenance v1 predicate of `run` producing `images` (one, or every platform of an
/// index).
pub fn predicate(run: &Run, images: &[Image]) -> Value {
    let mut external = Map::new();
    external.insert("source".into(), json!(run.source_reference));
    external.insert("profiles".into(), json!(run.profiles));
    if !run.platforms.is_empty() {
        external.insert("platforms".into(), json!(run.platforms));
    }
    external.insert("compression".into(), json!(run.compression));

    let mut deps = vec![json!({
        "name": "source",
        "uri": run.source_repository,
        "digest": sha256(&run.source_digest),
        "annotations": { "reference": run.source_reference },
    })];
    for f in &run.profile_files {
        deps.push(json!({ "uri": f.uri, "digest": sha256(f.digest.as_str()) }));
    }

    let byproducts: Vec<Value> = images
        .iter()
        .map(|i| {
            let mut a = Map::new();
            if let Some(p) = &i.platform {
                a.insert("platform".into(), json!(p));
            }
            a.insert("source".into(), json!(i.source_digest));
            a.insert("plan".into(), json!(i.plan));
            a.insert("pathsRemoved".into(), json!(i.paths_removed));
            a.insert("findings".into(), json!(i.findings));
            a.insert("findingsBefore".into(), json!(i.findings_before));
            if let Some(after) = i.findings_after {
                a.insert("findingsAfter".into(), json!(after));
            }
            a.insert("packagesRemoved".into(), json!(i.packages_removed));
            json!({
                "name": match &i.platform { Some(p) => format!("harden plan {p}"), None => "harden plan".to_string() },
                "digest": sha256(&i.result_digest),
                "annotations": a,
            })
        })
        .collect();

    let mut metadata = Map::new();
    if let Some(t) = &run.time {
        metadata.insert("startedOn".into(), json!(t));
        metadata.insert("finishedOn".into(), json!(t));
    }
    let builder = json!({ "id": BUILDER_ID, "version": { "harden": env!("CARGO_PKG_VERSION") } });
    let mut run_details = json!({ "builder": builder, "byproducts": byproducts });
    if !metadata.is_empty() {
        run_details["metadata"] = Value::Object(metadata);
    }
    json!({
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": external,
            "internalParameters": {
                "profileDigest": run.profile_digest,
                "sourceVerifiedBy": run.source_verified_by,
            },
            "resolvedDependencies": deps,
        },
        "runDetails": run_details,
    })
}

/// `{"sha256": "<hex>"}` of `sha256:<hex>`.
fn sha256(digest: &str) -> Value {
    json!({ "sha256": digest.strip_prefix("sha256:").unwrap_or(digest) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    const SRC: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const OUT: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn run(time: Option<&str>) -> Run {
        Run {
            source_reference: "vendor.example/app:1".into(),
            source_repository: "vendor.example/app".into(),
            source_digest: SRC.into(),
            profiles: vec!["strict".into(), "./app.toml".into()],
            profile_files: vec![ProfileFile { uri: "harden:profiles/strict.toml".into(), digest: Digest::of(b"x") }],
            profile_digest: Digest::of(b"rules").to_string(),
            platforms: Vec::new(),
            compression: "gzip:6".into(),
            source_verified_by: vec!["vendor.pub".into()],
            time: time.map(str::to_string),
        }
    }

    fn image() -> Image {
        Image {
            platform: None,
            source_digest: SRC.into(),
            result_digest: OUT.into(),
            plan: "removed 3 paths".into(),
            paths_removed: 3,
            findings: "findings 5 → 1 (fatal 1 → 0)".into(),
            findings_before: 5,
            findings_after: Some(1),
            packages_removed: vec!["curl".into()],
        }
    }

    #[test]
    fn names_the_source_the_profiles_and_what_was_done() {
        let p = predicate(&run(None), &[image()]);
        let d = &p["buildDefinition"];
        assert_eq!(d["buildType"], BUILD_TYPE);
        assert_eq!(d["externalParameters"]["source"], "vendor.example/app:1");
        assert_eq!(d["externalParameters"]["profiles"][1], "./app.toml");
        assert_eq!(d["resolvedDependencies"][0]["digest"]["sha256"], &SRC[7..]);
        assert_eq!(d["resolvedDependencies"][1]["uri"], "harden:profiles/strict.toml");
        assert_eq!(d["resolvedDependencies"][1]["digest"]["sha256"], Digest::of(b"x").hex());
        assert_eq!(d["internalParameters"]["sourceVerifiedBy"][0], "vendor.pub");
        let b = &p["runDetails"]["byproducts"][0];
        assert_eq!(b["digest"]["sha256"], &OUT[7..]);
        assert_eq!(b["annotations"]["findingsBefore"], 5);
        assert_eq!(b["annotations"]["findingsAfter"], 1);
        assert_eq!(b["annotations"]["packagesRemoved"][0], "curl");
        assert_eq!(p["runDetails"]["builder"]["version"]["harden"], env!("CARGO_PKG_VERSION"));
        // No time unless asked; the same run gives the same bytes.
        assert!(p["runDetails"].get("metadata").is_none());
        let bytes = |p: &Value| serde_json::to_vec(p).unwrap();
        assert_eq!(bytes(&p), bytes(&predicate(&run(None), &[image()])));
        let t = predicate(&run(Some("2024-01-01T00:00:00Z")), &[image()]);
        assert_eq!(t["runDetails"]["metadata"]["startedOn"], "2024-01-01T00:00:00Z");
    }
}
