//! The keyless half of the source gate (`--require-identity`/`--require-issuer` with
//! `--trusted-root`): one source digest's keyless signatures, each said on stderr, and the
//! report entry of the one that verified (identity, issuer, the log entry).
//!
//! Owns: turning [`crate::sign::keyless`]'s lines into the gate's verdict for one digest. Must
//! not: decide how keyed and keyless combine (supply's gate).

use super::Ctx;
use crate::digest::Digest;
use crate::report::{KeylessReport, SourceSignatureReport};
use crate::sign::keyless::{cert::show_time, find, Gate};
use anyhow::Result;

/// `Ok(Ok(report))` when a keyless signature of `d` verifies for the gate's policy;
/// `Ok(Err(why))` when none does; `Err` when the source cannot be read.
pub(crate) async fn check(ctx: &Ctx<'_>, g: &Gate, d: &Digest) -> Result<Result<SourceSignatureReport, String>> {
    let src = ctx.src_ref;
    let pinned = src.by_digest(d);
    let lines = find::examine(&ctx.src, src, d, &g.root, &g.policy).await?;
    for l in &lines {
        ctx.o.progress.line(&format!("source {pinned}: {l}"));
    }
    Ok(match find::signed(&lines) {
        Ok(line) => match &line.result {
            Ok(v) => Ok(SourceSignatureReport {
                digest: d.to_string(),
                key: "keyless".into(),
                key_hint: String::new(),
                signature: line.what.clone(),
                keyless: Some(KeylessReport {
                    identity: v.identity.clone(),
                    issuer: v.issuer.clone(),
                    log_index: v.log_index,
                    log_id: v.log_id.clone(),
                    integrated_time: show_time(v.integrated_time),
                    timestamp_authority: v.timestamp_authority.clone(),
                }),
            }),
            Err(e) => Err(e.to_string()),
        },
        Err(None) => {
            Err("it carries no keyless signature (no .sig layer with a certificate, no keyless bundle)".into())
        }
        Err(Some(why)) => Err(why),
    })
}
