//! The one cosign look-up: what a registry (or layout) holds beside an image that describes one
//! of its digests — the legacy `.sig` manifest, the `.att` manifest, and the OCI 1.1 referrers
//! (API or referrers tag), among them cosign v3's bundles — found once, typed, unchecked.
//! `harden verify` and the rebuild's gate check what it found ([`super::check`]), `check`
//! reports whether a signature is there, and the rebuild says what it does not carry over.
//!
//! Owns: where cosign's artefacts are looked for and what a failed look-up is
//! ([`Unreadable`]). Must not: verify anything (that is [`super::check`]'s), decide whether
//! what was found is enough, or push anything.

use super::store::{beside, sig_ref};
use super::{attest, bundle, referrers, simple, Rejected};
use crate::digest::Digest;
use crate::reference::ImageRef;
use crate::transport::{Endpoint, Manifest};
use serde_json::Value;

/// A manifest found under one of cosign's tags.
#[derive(Debug)]
pub struct Stored {
    /// The tag it is under: `sha256-<hex>.sig` or `sha256-<hex>.att`.
    pub tag: String,
    pub manifest: Manifest,
}

impl Stored {
    /// Its layers and the distinct predicate types they are annotated with (in order).
    fn layers(&self) -> (usize, Vec<String>) {
        let v: Value = serde_json::from_slice(&self.manifest.bytes).unwrap_or(Value::Null);
        let ls = v["layers"].as_array().cloned().unwrap_or_default();
        let mut types: Vec<String> = ls
            .iter()
            .filter_map(|l| l["annotations"][attest::PREDICATE_TYPE_ANNOTATION].as_str().map(str::to_string))
            .collect();
        types.dedup();
        (ls.len(), types)
    }
}

/// A place that could not be read. Whatever is there names the digest, but nobody can say
/// what it is.
#[derive(Debug, thiserror::Error)]
pub enum Unreadable {
    /// The `.sig` tag (the look-up failed other than "no such tag").
    #[error("{tag} unreadable: {error:#}")]
    Sig { tag: String, error: anyhow::Error },
    /// The `.att` tag.
    #[error("{tag} unreadable: {error:#}")]
    Att { tag: String, error: anyhow::Error },
    /// The referrers API or the referrers tag (one that is not an index, say).
    #[error("referrers unreadable: {error:#}")]
    Referrers { error: anyhow::Error },
}

impl Unreadable {
    /// The look-up's own error (for a caller to whom an unreadable store is fatal).
    pub fn into_error(self) -> anyhow::Error {
        match self {
            Unreadable::Sig { error, .. } | Unreadable::Att { error, .. } | Unreadable::Referrers { error } => error,
        }
    }
}

/// Everything found beside an image that describes `digest`.
#[derive(Debug)]
pub struct Described {
    pub digest: Digest,
    /// The `.sig` manifest, when the tag exists.
    pub sig: Option<Stored>,
    /// The `.att` manifest, when the tag exists.
    pub att: Option<Stored>,
    /// Every referrer's descriptor (API, then the referrers tag; each digest once), in order;
    /// [`Described::bundles`] are those of cosign v3's bundles.
    pub referrers: Vec<Value>,
    /// What could not be read, in the order looked at (`.sig`, `.att`, referrers).
    pub unreadable: Vec<Unreadable>,
}

/// One line of [`Described::lines`]: a thing found, or a place that could not be read.
#[derive(Debug)]
pub enum Description<'a> {
    Found(String),
    Unreadable(&'a Unreadable),
}

impl std::fmt::Display for Description<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Description::Found(s) => f.write_str(s),
            Description::Unreadable(u) => write!(f, "{u}"),
        }
    }
}

impl Described {
    /// The referrers that are sigstore bundles (signatures or attestations).
    pub fn bundles(&self) -> impl Iterator<Item = &Value> {
        self.referrers.iter().filter(|d| d["artifactType"] == bundle::BUNDLE_MEDIA_TYPE)
    }

    /// The error of the `.sig` look-up, if it failed.
    pub fn sig_unreadable(&self) -> Option<&anyhow::Error> {
        self.unreadable.iter().find_map(|u| match u {
            Unreadable::Sig { error, .. } => Some(error),
            _ => None,
        })
    }

    /// The error of the `.att` look-up, if it failed.
    pub fn att_unreadable(&self) -> Option<&anyhow::Error> {
        self.unreadable.iter().find_map(|u| match u {
            Unreadable::Att { error, .. } => Some(error),
            _ => None,
        })
    }

    /// The error of the referrers look-up, if it failed.
    pub fn referrers_unreadable(&self) -> Option<&anyhow::Error> {
        self.unreadable.iter().find_map(|u| match u {
            Unreadable::Referrers { error } => Some(error),
            _ => None,
        })
    }

    /// One line per thing found or place unreadable, unchecked: `sha256-<hex>.sig (1
    /// signature)`, `sha256-<hex>.att (2 attestations: …)`, `referrer sha256:… (artifactType)`.
    pub fn lines(&self) -> Vec<Description<'_>> {
        let mut out = Vec::new();
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        if let Some(s) = &self.sig {
            let (n, _) = s.layers();
            out.push(Description::Found(format!("{} ({n} signature{})", s.tag, plural(n))));
        }
        out.extend(self.unreadable.iter().filter(|u| matches!(u, Unreadable::Sig { .. })).map(Description::Unreadable));
        if let Some(s) = &self.att {
            let (n, types) = s.layers();
            out.push(Description::Found(format!("{} ({n} attestation{}: {})", s.tag, plural(n), types.join(", "))));
        }
        out.extend(self.unreadable.iter().filter(|u| matches!(u, Unreadable::Att { .. })).map(Description::Unreadable));
        for d in &self.referrers {
            out.push(Description::Found(format!(
                "referrer {} ({})",
                d["digest"].as_str().unwrap_or("(no digest)"),
                d["artifactType"].as_str().unwrap_or("no artifactType")
            )));
        }
        out.extend(
            self.unreadable.iter().filter(|u| matches!(u, Unreadable::Referrers { .. })).map(Description::Unreadable),
        );
        out
    }
}

/// Look beside `r` (same repository or layout) for what describes `digest`: the `.sig` and
/// `.att` tags and the referrers. Never fails: a look-up that errors (other than "no such
/// tag") is an [`Unreadable`] — a registry that answers oddly for a tag that does not exist
/// must not stop a rebuild that only reports these.
pub async fn discover(ep: &Endpoint, r: &ImageRef, digest: &Digest) -> Described {
    let mut unreadable = Vec::new();
    let sig_tag = simple::sig_tag(digest.as_str());
    let sig = match ep.manifest_opt(&sig_ref(r, digest)).await {
        Ok(m) => m.map(|manifest| Stored { tag: sig_tag, manifest }),
        Err(error) => {
            unreadable.push(Unreadable::Sig { tag: sig_tag, error });
            None
        }
    };
    let att_tag = attest::att_tag(digest.as_str());
    let att = match ep.manifest_opt(&beside(r, att_tag.clone())).await {
        Ok(m) => m.map(|manifest| Stored { tag: att_tag, manifest }),
        Err(error) => {
            unreadable.push(Unreadable::Att { tag: att_tag, error });
            None
        }
    };
    let referrers = match referrers::list(ep, r, digest).await {
        Ok(list) => list,
        Err(error) => {
            unreadable.push(Unreadable::Referrers { error });
            Vec::new()
        }
    };
    Described { digest: digest.clone(), sig, att, referrers, unreadable }
}

/// The manifest of the referrer whose digest is `md` (one of [`Described::referrers`]), read by
/// digest beside `r` and parsed; `Err` says why it cannot be used (unreadable, not JSON).
pub async fn referrer_manifest(ep: &Endpoint, r: &ImageRef, md: &str) -> Result<Value, Rejected> {
    let digest = Digest::parse(md).map_err(Rejected::Unreadable)?;
    let m =
        ep.manifest(&r.without_tag().with_digest(&digest)).await.map_err(|e| Rejected::Unreadable(format!("{e:#}")))?;
    serde_json::from_slice::<Value>(&m.bytes).map_err(|e| Rejected::NotJson(format!("the referrer is not JSON ({e})")))
}
