//! Known blob locations: per registry, which repositories are known to hold which blobs (blobs
//! seen present, mounted or pushed there by the push protocol), remembered in the cache
//! directory's `locations/` (one small JSON file a registry) so that a push to another
//! repository of the same registry can try a cross-repository mount from one of them before
//! uploading — as skopeo's blob-info cache does.
//!
//! A location is a hint, never trusted: [`super::push`] confirms every mount with a HEAD, and a
//! refused mount is forgotten and falls back to an upload. A file that cannot be read, or that
//! names another registry, is ignored (and replaced on the next save). Files are replaced whole
//! ([`crate::files::write_atomic`]); a save merges with what another process saved meanwhile.
//!
//! Owns: the location records and their files. Must not: talk to a registry.

use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const FORMAT: &str = "harden-locations/1";
/// Repositories remembered per blob (the most recent first).
const PER_BLOB: usize = 8;
/// Blobs remembered per registry.
const MAX_BLOBS: usize = 200_000;
/// Known locations tried per blob before uploading.
pub const TRIES: usize = 3;

#[derive(Serialize, Deserialize, Default)]
struct File {
    format: String,
    registry: String,
    /// Blob digest → repositories, the most recent first.
    blobs: BTreeMap<String, Vec<String>>,
}

#[derive(Default)]
struct Known {
    blobs: BTreeMap<String, Vec<String>>,
    /// Blobs whose locations changed since loaded or saved (what a save writes over the file's).
    touched: HashSet<String>,
    /// Locations found wrong since, not to be merged back from the file.
    forgotten: HashSet<(String, String)>,
}

/// Blob locations, by registry; `dir` None keeps them for this run only.
#[derive(Default)]
pub struct Locations {
    dir: Option<PathBuf>,
    registries: Mutex<HashMap<String, Known>>,
}

impl Locations {
    /// Locations kept under `cache_dir`/locations (created and checked private by
    /// [`crate::cache::RewriteCache::new`]); None: in memory only.
    pub fn new(cache_dir: Option<&Path>) -> Locations {
        Locations { dir: cache_dir.map(|d| d.join("locations")), registries: Mutex::default() }
    }

    fn path(&self, registry: &str) -> Option<PathBuf> {
        let d = self.dir.as_ref()?;
        Some(d.join(format!("{}.json", &crate::digest::Digest::of(registry.as_bytes()).hex()[..32])))
    }

    /// What the file for `registry` holds (empty when absent, unreadable or another registry's).
    fn load(&self, registry: &str) -> BTreeMap<String, Vec<String>> {
        let Some(bytes) = self.path(registry).and_then(|p| std::fs::read(p).ok()) else { return BTreeMap::new() };
        match serde_json::from_slice::<File>(&bytes) {
            Ok(f) if f.format == FORMAT && f.registry == registry => f.blobs,
            _ => BTreeMap::new(),
        }
    }

    fn with<T>(&self, registry: &str, f: impl FnOnce(&mut Known) -> T) -> Option<T> {
        let mut all = self.registries.lock().ok()?;
        if !all.contains_key(registry) {
            let blobs = self.load(registry);
            all.insert(registry.to_string(), Known { blobs, ..Known::default() });
        }
        all.get_mut(registry).map(f)
    }

    /// `repository` of `registry` holds `digest`.
    pub fn note(&self, registry: &str, repository: &str, digest: &crate::digest::Digest) {
        self.with(registry, |k| {
            let repos = k.blobs.entry(digest.to_string()).or_default();
            if repos.first().map(String::as_str) == Some(repository) {
                return;
            }
            repos.retain(|r| r != repository);
            repos.insert(0, repository.to_string());
            repos.truncate(PER_BLOB);
            k.forgotten.remove(&(digest.to_string(), repository.to_string()));
            k.touched.insert(digest.to_string());
        });
    }

    /// `repository` turned out not to hold `digest` (a mount it was named for was refused).
    pub fn forget(&self, registry: &str, repository: &str, digest: &crate::digest::Digest) {
        self.with(registry, |k| {
            if let Some(repos) = k.blobs.get_mut(digest.as_str()) {
                repos.retain(|r| r != repository);
            }
            k.forgotten.insert((digest.to_string(), repository.to_string()));
            k.touched.insert(digest.to_string());
        });
    }

    /// Repositories of `registry` known to hold `digest`, but `except`, the most recent first
    /// (at most [`TRIES`]).
    pub fn candidates(&self, registry: &str, digest: &crate::digest::Digest, except: &[&str]) -> Vec<String> {
        self.with(registry, |k| {
            k.blobs
                .get(digest.as_str())
                .map(|repos| repos.iter().filter(|r| !except.contains(&r.as_str())).take(TRIES).cloned().collect())
                .unwrap_or_default()
        })
        .unwrap_or_default()
    }

    /// Write what changed, merged with what the files hold now (another process may have saved
    /// since they were read).
    pub fn save(&self) -> Result<()> {
        let Ok(mut all) = self.registries.lock() else { return Ok(()) };
        for (registry, k) in all.iter_mut().filter(|(_, k)| !k.touched.is_empty()) {
            let Some(path) = self.path(registry) else { continue };
            let mut merged = self.load(registry);
            for d in &k.touched {
                let ours = k.blobs.get(d).cloned().unwrap_or_default();
                let theirs = merged.remove(d).unwrap_or_default();
                let mut list = ours.clone();
                list.extend(
                    theirs.into_iter().filter(|r| !ours.contains(r) && !k.forgotten.contains(&(d.clone(), r.clone()))),
                );
                list.truncate(PER_BLOB);
                merged.insert(d.clone(), list);
            }
            merged.retain(|_, repos| !repos.is_empty());
            while merged.len() > MAX_BLOBS {
                merged.pop_first();
            }
            let f = File { format: FORMAT.into(), registry: registry.clone(), blobs: merged };
            crate::files::write_atomic(&path, &serde_json::to_vec(&f)?)?;
            k.blobs = f.blobs;
            k.touched.clear();
            k.forgotten.clear();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    #[test]
    fn locations_are_remembered_per_registry_merged_and_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("locations")).unwrap();
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        let l = Locations::new(Some(dir.path()));
        l.note("r:5000", "x/one", &a);
        l.note("r:5000", "x/two", &a);
        l.note("other:5000", "y", &b);
        assert_eq!(l.candidates("r:5000", &a, &[]), ["x/two", "x/one"], "the most recent first");
        assert_eq!(l.candidates("r:5000", &a, &["x/two"]), ["x/one"]);
        assert!(l.candidates("r:5000", &b, &[]).is_empty(), "per registry");
        l.save().unwrap();

        // Another process adds one and finds one wrong; the two saves merge.
        let m = Locations::new(Some(dir.path()));
        assert_eq!(m.candidates("r:5000", &a, &[]), ["x/two", "x/one"]);
        m.note("r:5000", "x/three", &a);
        m.forget("r:5000", "x/one", &a);
        l.note("r:5000", "x/four", &b);
        m.save().unwrap();
        l.save().unwrap();
        let n = Locations::new(Some(dir.path()));
        assert_eq!(n.candidates("r:5000", &a, &[]), ["x/three", "x/two"]);
        assert_eq!(n.candidates("r:5000", &b, &[]), ["x/four"]);
        assert_eq!(n.candidates("other:5000", &b, &[]), ["y"]);

        // A file of another registry under this one's name, or not JSON: ignored.
        let p = n.path("r:5000").unwrap();
        std::fs::copy(n.path("other:5000").unwrap(), &p).unwrap();
        assert!(Locations::new(Some(dir.path())).candidates("r:5000", &a, &[]).is_empty());
        std::fs::write(&p, b"{").unwrap();
        assert!(Locations::new(Some(dir.path())).candidates("r:5000", &a, &[]).is_empty());
        assert!(Locations::new(None).candidates("r:5000", &a, &[]).is_empty());
    }
}
