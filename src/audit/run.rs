//! The audit as the rebuild runs it — the source as fetched and the result predicted from the
//! plan, side by side — and the cosign signature look-up both it and `harden check`
//! ([`crate::inspect::check`]) report.
//!
//! Owns: [`rebuild_findings`] and [`signature`]. Must not: change anything, or read images
//! (callers hand over what they read).

use super::{audit, AuditContext, Signature};
use crate::digest::Digest;
use crate::fs::FinalFs;
use crate::reference::ImageRef;
use crate::transport::Endpoint;

/// Look for a cosign signature of `digest` beside `r` ([`crate::sign::discover`]): the legacy
/// `.sig`, else a cosign v3 bundle among its referrers. Never fails: a look-up that errors
/// (other than "no such tag") says so in the result.
pub async fn signature(ep: &Endpoint, r: &ImageRef, digest: &Digest) -> Signature {
    signature_in(&crate::sign::discover::discover(ep, r, digest).await, r, digest)
}

/// [`signature`] from what was already found beside `r` for `digest`.
pub fn signature_in(found: &crate::sign::discover::Described, r: &ImageRef, digest: &Digest) -> Signature {
    let sig = crate::sign::store::sig_ref(r, digest);
    if found.sig.is_some() {
        return Signature::Found(sig.to_string());
    }
    if let Some(e) = found.sig_unreadable().or(found.referrers_unreadable()) {
        return Signature::Unknown(crate::error::one_line(e));
    }
    let bundle = found.bundles().next().map(|d| d["digest"].as_str().unwrap_or("").to_string());
    match bundle {
        Some(b) => Signature::Found(format!("{} (bundle {b})", r.by_digest(digest))),
        None => Signature::Absent(sig.to_string()),
    }
}

/// `rebuild`'s audit: the source as fetched, and the result predicted from the plan (see
/// [`super::after_view`]), the user layer and the edited config (`None` when the edit refuses).
/// The result's rewritten layers have no digest yet: [`super::RebuildFindings::name_after_layers`]
/// names them once the manifest is built.
pub struct RebuildAudit<'a> {
    /// What describes the source's digest beside it (its signatures: looked up once per run).
    pub described: &'a crate::sign::discover::Described,
    pub reference: &'a ImageRef,
    pub manifest_digest: &'a Digest,
    pub view: &'a crate::image::ManifestView,
    pub fs: &'a FinalFs,
    pub config: &'a serde_json::Value,
    pub plan: &'a crate::plan::Plan,
    /// The predicted result's filesystem and config; None when the config edit refuses.
    pub after: Option<(&'a FinalFs, &'a serde_json::Value)>,
    pub user_layer: Option<&'a Digest>,
    /// Whether the rebuild signs its result (`--sign-key`).
    pub will_sign: bool,
}

/// See [`RebuildAudit`].
pub async fn rebuild_findings(a: RebuildAudit<'_>) -> super::RebuildFindings {
    let RebuildAudit { described, reference: r, manifest_digest, view, fs, config, plan, after, user_layer, will_sign } =
        a;
    let before_ctx = AuditContext {
        reference: Some(r),
        layers: view.layers.iter().map(|l| Some(l.digest.to_string())).collect(),
        signature: signature_in(described, r, manifest_digest),
        ..Default::default()
    };
    let audit_after = |(view_after, cfg): (&FinalFs, &serde_json::Value)| {
        let mut layers: Vec<Option<String>> =
            view.layers.iter().zip(&plan.layers).map(|(l, p)| p.is_unchanged().then(|| l.digest.to_string())).collect();
        layers.extend(user_layer.map(|d| Some(d.to_string())));
        let ctx = AuditContext {
            // The result is printed, and best referred to, by digest.
            reference: None,
            layers,
            signature: if will_sign {
                Signature::Found("signed by this rebuild (--sign-key)".into())
            } else {
                Signature::Absent("the result (rebuild signs only with --sign-key)".into())
            },
            ..Default::default()
        };
        audit(view_after, cfg, &ctx)
    };
    // The two audits are independent and CPU-bound (a walk of every entry per check): side by
    // side, on a thread each, when a thread can be had.
    let (before, after) = std::thread::scope(|s| {
        let other = after.map(|after| {
            std::thread::Builder::new()
                .name("harden-audit".into())
                .spawn_scoped(s, move || audit_after(after))
                .map_err(|_| after)
        });
        let before = audit(fs, config, &before_ctx);
        let after = other.map(|h| match h {
            Ok(h) => h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
            Err(after) => audit_after(after),
        });
        (before, after)
    });
    super::RebuildFindings { before, after }
}
