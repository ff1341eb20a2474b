//! `check`'s text and JSON outputs (SARIF is in [`super::sarif`]). The JSON shape is documented
//! in docs/checks.md and versioned by its `schema` field.
//!
//! Owns: the text and JSON renderings of findings. Must not: decide findings or levels, or print
//! (the CLI writes what this returns).

use super::{counts, fails, Evidence, Finding, ImageInfo, Level};
use serde_json::{json, Value};
use std::fmt::Write;

/// The output formats of `harden check`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Sarif,
}

/// The JSON format's version; bumped only on incompatible changes.
pub const JSON_SCHEMA: &str = "harden-check/1";

pub fn render(format: Format, findings: &[Finding], image: &ImageInfo, fail_on: Level) -> String {
    match format {
        Format::Text => text(findings, image, fail_on),
        Format::Json => {
            format!("{}\n", serde_json::to_string_pretty(&json(findings, image, fail_on)).unwrap_or_default())
        }
        Format::Sarif => {
            format!("{}\n", serde_json::to_string_pretty(&super::sarif::sarif(findings, image)).unwrap_or_default())
        }
    }
}

/// One document for several images (the platforms of an index): text sections one after the
/// other; JSON `{"format": "harden-check-index/1", "images": [...]}`; one SARIF log whose `runs`
/// hold one run per image.
pub fn combine(format: Format, mut docs: Vec<String>) -> String {
    if docs.len() == 1 {
        return docs.pop().unwrap_or_default();
    }
    let parsed = || docs.iter().filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok()).collect::<Vec<_>>();
    match format {
        Format::Text => docs.join("\n"),
        Format::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(&serde_json::json!({"format": "harden-check-index/1", "images": parsed()}))
                .unwrap_or_default()
        ),
        Format::Sarif => {
            let mut all = parsed();
            let runs: Vec<serde_json::Value> =
                all.iter().flat_map(|d| d["runs"].as_array().cloned().unwrap_or_default()).collect();
            let Some(mut first) = all.drain(..).next() else { return String::new() };
            first["runs"] = serde_json::json!(runs);
            format!("{}\n", serde_json::to_string_pretty(&first).unwrap_or_default())
        }
    }
}

fn short_layer(d: &str) -> &str {
    // `sha256:` and 12 hex digits, as progress lines show digests.
    d.get(..19).unwrap_or(d)
}

fn evidence_line(e: &Evidence) -> String {
    let mut s = String::new();
    if let Some(p) = &e.path {
        s.push_str(p);
    }
    if let Some(f) = &e.field {
        s.push_str(f);
        s.push(':');
    }
    if let Some(d) = &e.detail {
        s.push_str(if e.path.is_some() { "  " } else { " " });
        s.push_str(d);
    }
    match (&e.layer, e.layer_index) {
        (Some(l), _) => {
            let _ = write!(s, "  (layer {})", short_layer(l));
        }
        (None, Some(i)) => {
            let _ = write!(s, "  (layer #{i})");
        }
        _ => {}
    }
    s
}

pub fn text(findings: &[Finding], image: &ImageInfo, fail_on: Level) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{} {}", image.reference, image.digest);
    for f in findings {
        let refs: Vec<String> =
            f.cis.map(|c| format!("CIS {c}")).into_iter().chain(f.dockle.map(|d| format!("Dockle {d}"))).collect();
        let refs = if refs.is_empty() { String::new() } else { format!(" [{}]", refs.join(", ")) };
        let _ = writeln!(s, "\n{:<5} {}: {}{}", f.level.as_str().to_uppercase(), f.id, f.title, refs);
        for e in &f.evidence {
            let _ = writeln!(s, "  {}", evidence_line(e));
        }
        let _ = writeln!(s, "  fix: {}", f.fix);
    }
    let (n, fa, w, i) = counts(findings);
    let verdict = if fails(findings, fail_on) { "at or above" } else { "nothing at or above" };
    let _ = writeln!(
        s,
        "\n{n} finding{}: {fa} fatal, {w} warn, {i} info ({verdict} --fail-on {})",
        if n == 1 { "" } else { "s" },
        fail_on.as_str()
    );
    s
}

pub fn json(findings: &[Finding], image: &ImageInfo, fail_on: Level) -> Value {
    let (n, fa, w, i) = counts(findings);
    json!({
        "schema": JSON_SCHEMA,
        "harden_version": env!("CARGO_PKG_VERSION"),
        "image": {"reference": image.reference, "digest": image.digest},
        "fail_on": fail_on,
        "failed": fails(findings, fail_on),
        "summary": {"total": n, "fatal": fa, "warn": w, "info": i},
        "findings": findings,
    })
}
