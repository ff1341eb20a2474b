//! SARIF 2.1.0 output, shaped for GitHub code scanning (and checked with Microsoft's SARIF
//! multitool, `validate --rule-kind "Sarif;Gh"`, in integration/ci.rs): one run per image, every
//! check as a rule (so `ruleIndex` is stable) with `fullDescription`, `help`, `properties.tags`
//! and `security-severity`; one result per piece of evidence, each with a physical location and a
//! region — a file by its path relative to the image root (`uriBaseId` `ROOTFS`), a config field
//! by the image's config (`config.json` under `uriBaseId` `IMAGE`, the field as a logical
//! location), both at line 1 — and `partialFingerprints` that depend on what was found, not on
//! layer digests, so the same finding keeps its alert across rebuilds. `automationDetails.id` is
//! `harden/IMAGE/OS/ARCH[/VARIANT]/MANIFEST-DIGEST`: the category (up to the last `/`) names the
//! image and platform, so the runs of an index stay apart and a new scan of the same image
//! replaces the last one.
//!
//! Owns: the SARIF rendering of findings and the rule table. Must not: decide findings or
//! levels, or print.

use super::{Evidence, Finding, ImageInfo, Level, CHECKS};
use crate::reference::ImageRef;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

pub const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// Where harden is described: Cargo.toml's `repository`, when it names one (SARIF's
/// `informationUri` and the rules' `helpUri` then point there; without it they are left out).
const INFORMATION_URI: &str = env!("CARGO_PKG_REPOSITORY");

/// The key of our `partialFingerprints`; bump the suffix if what it hashes ever changes.
pub const FINGERPRINT_KEY: &str = "hardenFinding/v1";

fn level(l: Level) -> &'static str {
    match l {
        Level::Fatal => "error",
        Level::Warn => "warning",
        Level::Info => "note",
    }
}

/// GitHub's `security-severity` (a CVSS-like score as a string): fatal is critical (≥ 9.0), warn
/// medium (4.0–6.9), info low (0.1–3.9).
fn security_severity(l: Level) -> &'static str {
    match l {
        Level::Fatal => "9.0",
        Level::Warn => "5.0",
        Level::Info => "2.0",
    }
}

/// Percent-encode a path for a URI reference (RFC 3986 unreserved characters and `/` stay).
fn uri_path(p: &str) -> String {
    let mut s = String::new();
    for b in p.trim_start_matches('/').bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// `HARDEN-FILE-SETUID` → `FileSetuid`: the rule's `name` (an identifier, as SARIF asks).
fn rule_name(id: &str) -> String {
    id.trim_start_matches("HARDEN-")
        .split('-')
        .map(|w| {
            let mut cs = w.chars();
            cs.next()
                .map(|c| c.to_ascii_uppercase().to_string() + &cs.as_str().to_ascii_lowercase())
                .unwrap_or_default()
        })
        .collect()
}

fn rules() -> Vec<Value> {
    CHECKS
        .iter()
        .map(|c| {
            let mut tags = vec!["security".to_string(), "container".to_string()];
            tags.extend(c.cis.map(|x| format!("CIS-Docker-{x}")));
            tags.extend(c.dockle.map(str::to_string));
            let mut refs = Vec::new();
            refs.extend(c.cis.map(|x| format!("CIS Docker Benchmark {x}")));
            refs.extend(c.dockle.map(|x| format!("Dockle {x}")));
            let refs = if refs.is_empty() { String::new() } else { format!(" ({})", refs.join(", ")) };
            let full = format!(
                "{}{refs}. harden check reports this at level {} on the image's final filesystem \
                 (whiteouts applied) or its config.",
                c.title,
                c.level.as_str()
            );
            json!({
                "id": c.id,
                "name": rule_name(c.id.as_str()),
                "shortDescription": {"text": c.title},
                "fullDescription": {"text": full},
                "help": {
                    "text": format!("{full} Fix: {}", c.fix),
                    "markdown": format!("**{}**{refs}\n\nFix: `{}`", c.title, c.fix.replace('`', "'")),
                },
                "defaultConfiguration": {"level": level(c.level)},
                "properties": {
                    "tags": tags,
                    "security-severity": security_severity(c.level),
                    "precision": "high",
                    "problem.severity": level(c.level),
                    "harden-level": c.level,
                    "cis": c.cis,
                    "dockle": c.dockle,
                },
            })
        })
        .map(|mut r: Value| {
            if !INFORMATION_URI.is_empty() {
                r["helpUri"] = json!(format!("{INFORMATION_URI}/blob/main/docs/checks.md"));
            }
            r
        })
        .collect()
}

/// The whole artifact, as GitHub wants a region: its first line.
fn region() -> Value {
    json!({"startLine": 1, "startColumn": 1, "endLine": 1, "endColumn": 1})
}

/// A config finding (or one without a path): the image's config, with the field as a logical
/// location when there is one.
fn config_location(field: Option<&str>) -> Value {
    let mut l = json!({
        "physicalLocation": {
            "artifactLocation": {"uri": "config.json", "uriBaseId": "IMAGE"},
            "region": region(),
        }
    });
    if let Some(f) = field {
        l["logicalLocations"] = json!([{"fullyQualifiedName": f, "name": f, "kind": "member"}]);
    }
    l
}

/// Stable across runs: the rule, where (path or field) and what about it — never a layer digest.
fn fingerprint(f: &Finding, e: Option<&Evidence>) -> String {
    let mut h = Sha256::new();
    for part in [
        f.id.as_str(),
        e.and_then(|e| e.path.as_deref()).unwrap_or(""),
        e.and_then(|e| e.field.as_deref()).unwrap_or(""),
        e.and_then(|e| e.detail.as_deref()).unwrap_or(""),
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..16])
}

fn result(f: &Finding, e: Option<&Evidence>) -> Value {
    let rule_index = f.id as usize;
    let mut text = f.title.to_string();
    let mut props = serde_json::Map::new();
    let mut r = json!({"ruleId": f.id, "ruleIndex": rule_index, "level": level(f.level)});
    let mut location = None;
    if let Some(e) = e {
        if let Some(p) = &e.path {
            text.push_str(&format!(": {p}"));
            location = Some(json!({
                "physicalLocation": {
                    "artifactLocation": {"uri": uri_path(p), "uriBaseId": "ROOTFS"},
                    "region": region(),
                }
            }));
        }
        if let Some(field) = &e.field {
            text.push_str(&format!(": {field}"));
            if location.is_none() {
                location = Some(config_location(Some(field)));
            }
        }
        if let Some(d) = &e.detail {
            text.push_str(&format!(" ({d})"));
        }
        if let Some(l) = &e.layer {
            props.insert("layer".into(), json!(l));
        }
        if let Some(i) = e.layer_index {
            props.insert("layer_index".into(), json!(i));
        }
    }
    r["locations"] = json!([location.unwrap_or_else(|| config_location(None))]);
    r["partialFingerprints"] = json!({ FINGERPRINT_KEY: fingerprint(f, e) });
    props.insert("fix".into(), json!(f.fix));
    r["message"] = json!({"text": text});
    r["properties"] = Value::Object(props);
    r
}

/// The image's name without what changes from build to build: a registry image by its
/// repository (no tag, no digest), a layout or archive by what was named, less the digest.
fn image_name(reference: &str) -> String {
    ImageRef::parse(reference).map(|r| r.stable_name()).unwrap_or_else(|_| reference.to_string())
}

/// `harden/IMAGE/PLATFORM/DIGEST`: GitHub takes what precedes the last `/` as the category.
fn automation_id(image: &ImageInfo) -> String {
    let platform = image.platform.as_deref().unwrap_or("unknown");
    format!("harden/{}/{platform}/{}", image_name(&image.reference), image.digest)
}

pub fn sarif(findings: &[Finding], image: &ImageInfo) -> Value {
    let mut results = Vec::new();
    for f in findings {
        if f.evidence.is_empty() {
            results.push(result(f, None));
        }
        for e in &f.evidence {
            results.push(result(f, Some(e)));
        }
    }
    let mut driver = json!({
        "name": "harden",
        "version": env!("CARGO_PKG_VERSION"),
        "semanticVersion": env!("CARGO_PKG_VERSION"),
        "rules": rules(),
    });
    if !INFORMATION_URI.is_empty() {
        driver["informationUri"] = json!(INFORMATION_URI);
    }
    json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": driver},
            "automationDetails": {
                "id": automation_id(image),
                "description": {"text": format!("harden check of {} ({})", image.reference, image.platform.as_deref().unwrap_or("platform unknown"))},
            },
            "originalUriBaseIds": {
                "ROOTFS": {"description": {"text": "the root filesystem of the image (whiteouts applied)"}},
                "IMAGE": {"description": {"text": "the image: config.json is its config (the field is the result's logical location)"}},
            },
            "columnKind": "unicodeCodePoints",
            "results": results,
            "properties": {"image": image.reference, "digest": image.digest, "platform": image.platform},
        }]
    })
}
