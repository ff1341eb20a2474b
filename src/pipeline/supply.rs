//! The supply-chain steps around a rebuild. Before anything is rewritten: the gate on the
//! source's signatures (`--require-signature`: every digest of the source must carry a
//! signature, `.sig` or bundle, that verifies with one of the keys) and the list of what
//! describes the source and is not carried over (it names the old digests). After the push:
//! the result's signatures (`.sig`, and a cosign v3 bundle with `--bundle`) and attestations
//! (`--attest`: SLSA provenance and the CycloneDX SBOM, per image and for an index).
//!
//! Owns: which digests each step covers and what the report says of them. Must not: hold the
//! formats (they are [`crate::sign`]'s and [`crate::provenance`]'s) or print to stdout.

use super::Ctx;
use crate::digest::Digest;
use crate::provenance;
use crate::report::{AttestationReport, BundleReport, NotCarriedReport, SignatureReport, SourceSignatureReport};
use crate::sign::{bundle, check, discover, dsse, publish, store, Signer, SigningKey, VerifyingKey};
use crate::Failure;
use anyhow::{bail, Result};
use serde_json::Value;

/// A public key `--require-signature` trusts, with the name it was given by.
#[derive(Clone, Debug)]
pub struct TrustedKey {
    /// The file, as given.
    pub name: String,
    pub key: VerifyingKey,
}

/// Refuse (exit 3) unless every digest in `digests` (the source, and each platform of an
/// index) carries a signature that verifies with one of the trusted keys. Each signature found
/// gets a line on stderr saying why it passed or failed.
pub(crate) async fn gate(ctx: &Ctx<'_>, digests: &[Digest]) -> Result<Vec<SourceSignatureReport>> {
    let trusted = &ctx.o.require_signature;
    let keyless = ctx.o.require_identity.as_deref();
    if trusted.is_empty() && keyless.is_none() {
        return Ok(Vec::new());
    }
    let src = ctx.src_ref;
    if !ctx.src.holds_signatures() {
        bail!(Failure::Policy(format!(
            "{src}: a docker-archive carries no signatures, and --require-signature needs one"
        )));
    }
    let keys: Vec<VerifyingKey> = trusted.iter().map(|t| t.key.clone()).collect();
    let names: Vec<&str> = trusted.iter().map(|t| t.name.as_str()).collect();
    let mut out = Vec::new();
    for d in digests {
        let pinned = src.by_digest(d);
        // Keyless first (--require-identity): a verified signature is enough; else its reason
        // joins the keyed one's.
        let keyless_why = match keyless {
            None => None,
            Some(g) => match super::keyless_gate::check(ctx, g, d).await? {
                Ok(report) => {
                    out.push(report);
                    continue;
                }
                Err(why) if trusted.is_empty() => bail!(Failure::Policy(format!(
                    "refusing {pinned}: no keyless signature verifies for {}: {why}; nothing was rewritten or pushed",
                    g.policy.describe()
                ))),
                Err(why) => Some(why),
            },
        };
        let keyless_why = keyless_why.map(|w| format!("; nor keyless: {w}")).unwrap_or_default();
        let ex = check::examine(&ctx.src, src, d, &keys).await?;
        let sigs: Vec<&check::Line> = ex.lines.iter().filter(|l| l.kind == check::Kind::Signature).collect();
        for l in &sigs {
            ctx.o.progress.line(&format!("source {pinned}: {}", l.describe(&names)));
        }
        let Some((line, k)) = sigs.iter().find_map(|l| l.result.as_ref().ok().map(|k| (l, *k))) else {
            let why = if sigs.is_empty() {
                "it carries no signature (no .sig, no bundle)".to_string()
            } else {
                sigs.iter().map(|l| l.describe(&names)).collect::<Vec<_>>().join("; ")
            };
            bail!(Failure::Policy(format!(
                "refusing {pinned}: no signature verifies with --require-signature {}: {why}{keyless_why}; nothing was rewritten or pushed",
                names.join(", ")
            )));
        };
        out.push(SourceSignatureReport {
            digest: d.to_string(),
            key: trusted[k].name.clone(),
            key_hint: bundle::key_hint(&trusted[k].key),
            signature: line.what.clone(),
            keyless: None,
        });
    }
    Ok(out)
}

/// What describes each source digest (signatures, attestations, referrers): none of it is
/// copied, since it names the source's digests; each is said on stderr and reported. A
/// look-up that fails is reported too, never fatal.
pub(crate) async fn not_carried(ctx: &Ctx<'_>, digests: &[Digest]) -> Vec<NotCarriedReport> {
    let src = ctx.src_ref;
    if !ctx.src.holds_signatures() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for d in digests {
        let found = ctx.describe(d).await;
        for line in found.lines() {
            let reason = match line {
                discover::Description::Unreadable(_) => {
                    "it could not be read; whatever is there names the source digest and was not carried over"
                }
                discover::Description::Found(_) => {
                    "it describes the source digest; the result has its own (sign or attest it anew)"
                }
            }
            .to_string();
            let what = line.to_string();
            ctx.o.progress.line(&format!("not carried over: {what} of {} ({reason})", src.by_digest(d)));
            out.push(NotCarriedReport { subject: d.to_string(), what, reason });
        }
    }
    out
}

/// Sign the pushed result (for an index every platform and then the index): the legacy
/// `.sig`, or with `--bundle` cosign v3's sigstore bundle as a referrer instead. The reports
/// are of what `DST@digest` names first.
pub(crate) async fn sign_result(
    ctx: &Ctx<'_>,
    digest: &Digest,
    platforms: &[Digest],
    key: &SigningKey,
) -> Result<(Option<SignatureReport>, Vec<BundleReport>)> {
    let (dst, progress) = (ctx.dst_ref, &ctx.o.progress);
    let none = Default::default();
    let mut signature = None;
    let mut bundles = Vec::new();
    let created = crate::config::source_date_epoch()?.map(|(_, s)| s);
    let signer = Signer { key, created: created.as_deref(), progress };
    // Platforms first, the index last: a signed index means all of it was signed.
    for d in platforms.iter().chain([digest]) {
        if ctx.o.bundle {
            let b = publish::bundle_digest(&ctx.dst, dst, d, signer, &none).await?;
            bundles.push(BundleReport {
                subject: d.to_string(),
                manifest_digest: b.manifest_digest.to_string(),
                referrers_tag: b.referrers_tag,
                added: b.added,
            });
            continue;
        }
        let s = store::sign_digest(&ctx.dst, dst, d, signer, &none).await?;
        if d == digest {
            signature = Some(SignatureReport {
                tag: s.tag,
                manifest_digest: s.manifest_digest.to_string(),
                payload_digest: s.payload_digest.to_string(),
                added: s.added,
            });
        }
    }
    // The result's own first.
    if !bundles.is_empty() {
        bundles.rotate_right(1);
    }
    Ok((signature, bundles))
}

/// One image of the result to attest: its provenance facts and its SBOM.
pub(crate) struct Attest {
    pub image: provenance::Image,
    pub sbom: Option<Value>,
}

/// Attest the pushed result: per image its SLSA provenance and SBOM; for an index (`index`
/// is its digest) also the provenance of the whole. Each goes into the `.att`, and with
/// `--bundle` also as a bundle referrer.
pub(crate) async fn attest_result(
    ctx: &Ctx<'_>,
    key: &SigningKey,
    run: &provenance::Run,
    index: Option<&Digest>,
    images: &[Attest],
) -> Result<Vec<AttestationReport>> {
    let name = ctx.dst_ref.repository_name();
    let mut todo: Vec<(String, String, Value)> = Vec::new();
    for a in images {
        let one = std::slice::from_ref(&a.image);
        todo.push((a.image.result_digest.clone(), dsse::SLSA_PROVENANCE_V1.into(), provenance::predicate(run, one)));
        if let Some(bom) = &a.sbom {
            todo.push((a.image.result_digest.clone(), dsse::CYCLONEDX.into(), bom.clone()));
        }
    }
    if let Some(i) = index {
        let all: Vec<provenance::Image> = images.iter().map(|a| a.image.clone()).collect();
        todo.push((i.to_string(), dsse::SLSA_PROVENANCE_V1.into(), provenance::predicate(run, &all)));
    }
    let created = crate::config::source_date_epoch()?.map(|(_, s)| s);
    let signer = Signer { key, created: created.as_deref(), progress: &ctx.o.progress };
    let mut out = Vec::new();
    for (subject, predicate_type, predicate) in todo {
        let digest = Digest::parse(&subject).map_err(|e| anyhow::anyhow!("attesting {subject}: {e}"))?;
        let s = dsse::Subject { name: name.clone(), digest: subject.clone(), annotations: Default::default() };
        let statement = dsse::statement(&s, &predicate_type, &predicate);
        let claim = publish::Claim { digest: &digest, predicate_type: &predicate_type, statement: &statement };
        let a = publish::attest_digest(&ctx.dst, ctx.dst_ref, claim, signer).await?;
        // With --bundle the result is signed in cosign v3's format, whose verify-attestation
        // reads only the bundle referrers of a digest that has any: the statement goes there
        // too — and so it does when the subject already has a bundle (a rerun's result).
        let bundled = ctx.o.bundle || publish::has_bundle(&ctx.dst, ctx.dst_ref, &digest).await?;
        let bundle = match bundled {
            true => {
                let b = publish::bundle_statement(&ctx.dst, ctx.dst_ref, claim, signer);
                Some(b.await?.manifest_digest.to_string())
            }
            false => None,
        };
        out.push(AttestationReport {
            subject,
            predicate_type,
            tag: a.tag,
            manifest_digest: a.manifest_digest.to_string(),
            envelope_digest: a.envelope_digest.to_string(),
            statement_digest: a.statement_digest.to_string(),
            added: a.added,
            bundle,
        });
    }
    Ok(out)
}

/// The provenance facts of one image of the result, from its report.
pub(crate) fn prov_image(
    platform: Option<String>,
    source: &Digest,
    result: &Digest,
    r: &crate::report::ImageReport,
) -> provenance::Image {
    provenance::Image {
        platform,
        source_digest: source.to_string(),
        result_digest: result.to_string(),
        plan: r.plan.summary.clone(),
        paths_removed: r.plan.removed.len(),
        findings: r.findings.summary.clone(),
        findings_before: r.findings.before.len(),
        findings_after: r.findings.after.as_ref().map(Vec::len),
        packages_removed: r.plan.packages.iter().flat_map(|p| p.removed.clone()).collect(),
    }
}

/// What the run knows of itself, for the provenance.
pub(crate) fn provenance_run(
    ctx: &Ctx<'_>,
    source: &Digest,
    verified: &[SourceSignatureReport],
) -> Result<provenance::Run> {
    let o = ctx.o;
    Ok(provenance::Run {
        source_reference: ctx.src_ref.to_string(),
        source_repository: ctx.src_ref.repository_name(),
        source_digest: source.to_string(),
        profiles: if o.profiles.is_empty() { vec!["baseline".to_string()] } else { o.profiles.clone() },
        profile_files: ctx.profile.files.clone(),
        profile_digest: ctx.profile.digest().to_string(),
        platforms: o.platforms.clone(),
        compression: o.codec.to_string(),
        source_verified_by: verified
            .iter()
            .map(|v| match &v.keyless {
                Some(k) => format!(
                    "{} verified {} keylessly: {} ({}), log entry {} of log {} at {}{}",
                    v.signature,
                    v.digest,
                    k.identity,
                    k.issuer,
                    k.log_index,
                    k.log_id,
                    k.integrated_time,
                    k.timestamp_authority.as_deref().map(|t| format!(", timestamped by {t}")).unwrap_or_default()
                ),
                None => format!("{} verified {} with {} ({})", v.signature, v.digest, v.key, v.key_hint),
            })
            .collect(),
        time: crate::config::source_date_epoch()?.map(|(_, s)| s),
    })
}
