//! SARIF 2.1.0 output: one run, every check as a rule (so `ruleIndex` is stable), one result
//! per piece of evidence — a file is a physical location (its path relative to the image root,
//! under the `uriBaseId` `ROOTFS`), a config field a logical one.
//!
//! Owns: the SARIF rendering of findings and the rule table. Must not: decide findings, or print.

use super::{Evidence, Finding, ImageInfo, Level, CHECKS};
use serde_json::{json, Value};

pub const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

fn level(l: Level) -> &'static str {
    match l {
        Level::Fatal => "error",
        Level::Warn => "warning",
        Level::Info => "note",
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

fn rules() -> Vec<Value> {
    CHECKS
        .iter()
        .map(|c| {
            let mut tags = vec!["security".to_string(), "container".to_string()];
            tags.extend(c.cis.map(|x| format!("CIS-Docker-{x}")));
            tags.extend(c.dockle.map(str::to_string));
            json!({
                "id": c.id,
                "shortDescription": {"text": c.title},
                "help": {"text": format!("Fix: {}", c.fix)},
                "defaultConfiguration": {"level": level(c.level)},
                "properties": {"tags": tags, "harden-level": c.level, "cis": c.cis, "dockle": c.dockle},
            })
        })
        .collect()
}

fn result(f: &Finding, e: Option<&Evidence>) -> Value {
    let rule_index = f.id as usize;
    let mut text = f.title.to_string();
    let mut props = serde_json::Map::new();
    let mut r = json!({"ruleId": f.id, "ruleIndex": rule_index, "level": level(f.level)});
    if let Some(e) = e {
        if let Some(p) = &e.path {
            text.push_str(&format!(": {p}"));
            r["locations"] =
                json!([{"physicalLocation": {"artifactLocation": {"uri": uri_path(p), "uriBaseId": "ROOTFS"}}}]);
        }
        if let Some(field) = &e.field {
            text.push_str(&format!(": {field}"));
            r["locations"] = json!([{"logicalLocations": [{"fullyQualifiedName": field, "name": field}]}]);
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
    props.insert("fix".into(), json!(f.fix));
    r["message"] = json!({"text": text});
    r["properties"] = Value::Object(props);
    r
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
    json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "harden", "version": env!("CARGO_PKG_VERSION"), "rules": rules()}},
            "originalUriBaseIds": {"ROOTFS": {"description": {"text": "the root filesystem of the image (whiteouts applied)"}}},
            "results": results,
            "properties": {"image": image.reference, "digest": image.digest},
        }]
    })
}
