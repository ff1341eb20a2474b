//! Rewrite cache: rewriting a layer is a pure function of (input layer digest, that layer's plan,
//! harden's version, output codec), so its result is recorded under that key — on disk
//! (`--cache-dir`) and in flight (one rewrite per key even when platforms or batch jobs ask at
//! once). A base layer shared by many images is recompressed once; a rerun recompresses nothing.
//!
//! The key holds the layer's *plan*, not just the profile's digest: what a profile does to a layer
//! depends on the rest of the image (whiteouts above it, symlinks, hardlinks), and the plan is
//! exactly what the rewrite consumes.
//!
//! The cache is input, not truth. Its directory must be this user's alone — owned by the
//! effective uid and writable by no group or other user, checked for it and its subdirectories as
//! ssh checks key files — since whoever can write there decides what a later rewrite reuses (a
//! consistent forged entry cannot be told from a real one). Its parents are checked too, as ssh
//! checks a key file's: each directory above it (symlinks resolved, once, at start; the run
//! then uses the resolved path) must be owned by root or this user and not writable by group
//! or others unless sticky (`/tmp`), else another user could rename the cache away during the
//! run and put a directory of their own in its place. Within it, every blob is hashed
//! before use: a blob changed in place, truncated or lost is a miss (with a notice) and is
//! recomputed. The entry's record (diff_id, counts) is trusted as this user's own file.
//!
//! Owns: cache keys, the cache directory. Must not: decide what a rewrite does.

use crate::digest::Digest;
use crate::layer::codec::OutputCodec;
use crate::plan::LayerPlan;
use crate::rewrite::{LayerRewrite, RewriteStats};
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::{Mutex, OnceCell};

/// A finished rewrite: where its blob is, and what it is.
#[derive(Clone, Debug)]
pub struct Rewritten {
    pub blob: PathBuf,
    pub rw: LayerRewrite,
    /// Served from the cache directory rather than computed in this run.
    pub cached: bool,
    /// Found in the shared cache (`--shared-cache`) rather than computed in this run.
    pub shared: bool,
}

pub struct RewriteCache {
    dir: Option<PathBuf>,
    inflight: Mutex<HashMap<String, Arc<OnceCell<Rewritten>>>>,
    /// Where notices (a cached blob that fails its check) go.
    progress: crate::progress::Progress,
}

/// The version, and a digest of everything this binary is made from (sources, lock file,
/// compiler, build settings; `src/build_id.rs`, run by `build.rs`): development builds
/// share a version number, and a cache entry written by another build must never be taken for
/// this one's output. Known at compile time, so no run reads its own binary to learn it.
pub fn build_id() -> &'static str {
    concat!(env!("CARGO_PKG_VERSION"), "+", env!("HARDEN_BUILD_ID"))
}

/// The cache directory and what it holds: rewrites and their blobs, and beside them the scan
/// cache ([`crate::source::scan_cache`]) and known blob locations
/// ([`crate::transport::locations`]), all under the same permission rules.
const SUBDIRS: [&str; 7] = ["", "rewrites", "blobs", "blobs/sha256", "scans", "locations", "results"];

/// The default cache directory: `$XDG_CACHE_HOME/harden`, else `~/.cache/harden`.
pub fn default_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|d| d.join("harden"))
}

impl RewriteCache {
    /// `dir` None keeps the cache in memory only (this run).
    pub fn new(dir: Option<PathBuf>) -> Result<RewriteCache> {
        if let Some(d) = &dir {
            use std::os::unix::fs::DirBuilderExt;
            for sub in SUBDIRS.iter().filter(|s| !s.is_empty()) {
                // Created for this user alone (umask may only take more away).
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(d.join(sub))
                    .with_context(|| format!("--cache-dir {}: cannot create it", d.display()))?;
            }
            let euid = rustix::process::geteuid().as_raw();
            let real =
                std::fs::canonicalize(d).with_context(|| format!("--cache-dir {}: cannot resolve it", d.display()))?;
            check_parents(d, &real, euid)?;
            for sub in SUBDIRS {
                check_private(&real.join(sub), euid)?;
            }
            return Ok(RewriteCache {
                dir: Some(real),
                inflight: Mutex::new(HashMap::new()),
                progress: crate::progress::Progress::default(),
            });
        }
        Ok(RewriteCache { dir, inflight: Mutex::new(HashMap::new()), progress: crate::progress::Progress::default() })
    }

    /// The cache directory; None for an in-memory cache (`--no-cache`).
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    pub fn key(input: &Digest, plan: &LayerPlan, codec: OutputCodec, splice: bool) -> String {
        let plan_json = serde_json::to_vec(plan).unwrap_or_default();
        let method = if splice { "splice" } else { "full" };
        let mut material = format!("harden-rewrite/1\0{}\0{input}\0{codec}\0{method}\0", build_id()).into_bytes();
        material.extend_from_slice(&plan_json);
        Digest::of(&material).hex().to_string()
    }

    fn lookup(dir: &Path, key: &str, progress: &crate::progress::Progress) -> Option<Rewritten> {
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("rewrites").join(key)).ok()?).ok()?;
        let digest = Digest::parse(meta["digest"].as_str()?).ok()?;
        let diff_id = Digest::parse(meta["diff_id"].as_str()?).ok()?;
        let size = meta["size"].as_u64()?;
        let blob = dir.join("blobs/sha256").join(digest.hex());
        // A blob evicted or truncated by hand is a miss, never a wrong answer; so is one whose
        // bytes changed in place (hashed: the size alone cannot tell).
        if std::fs::metadata(&blob).ok()?.len() != size {
            return None;
        }
        match crate::files::digest_of(&blob) {
            Ok(actual) if actual == digest => {}
            Ok(actual) => {
                progress.line(&format!(
                    "cached blob {} has digest {actual}, not its name's: ignoring it and rewriting the layer again",
                    blob.display()
                ));
                return None;
            }
            Err(_) => return None,
        }
        let stats = RewriteStats {
            removed: meta["removed"].as_u64()?,
            changed: meta["changed"].as_u64()?,
            copied: meta["copied"].as_u64().unwrap_or(0),
        };
        Some(Rewritten { blob, rw: LayerRewrite { digest, size, diff_id, stats }, cached: true, shared: false })
    }

    fn store(&self, key: &str, spooled: &Path, rw: &LayerRewrite) -> Result<PathBuf> {
        let Some(dir) = &self.dir else { return Ok(spooled.to_path_buf()) };
        let blob = dir.join("blobs/sha256").join(rw.digest.hex());
        if std::fs::rename(spooled, &blob).is_err() {
            let tmp = tempfile::NamedTempFile::new_in(dir.join("blobs/sha256"))?;
            std::fs::copy(spooled, tmp.path()).with_context(|| format!("caching blob {}", rw.digest))?;
            tmp.persist(&blob).map_err(|e| anyhow::anyhow!("caching blob {}: {}", rw.digest, e.error))?;
        }
        let meta = serde_json::json!({"digest": rw.digest.as_str(), "diff_id": rw.diff_id.as_str(), "size": rw.size,
            "removed": rw.stats.removed, "changed": rw.stats.changed, "copied": rw.stats.copied});
        crate::files::write_atomic(&dir.join("rewrites").join(key), &serde_json::to_vec(&meta)?)?;
        Ok(blob)
    }

    /// Notices go to `progress` (the default is plain stderr lines).
    pub fn with_progress(mut self, progress: crate::progress::Progress) -> RewriteCache {
        self.progress = progress;
        self
    }

    /// The rewrite for `key`: from this run, from the cache directory, or computed by `compute`
    /// (which returns the spooled blob, its description, and whether it came from the shared
    /// cache rather than being rewritten) — once per key.
    pub async fn get_or_rewrite<F, Fut>(&self, key: &str, compute: F) -> Result<Rewritten>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(PathBuf, LayerRewrite, bool)>>,
    {
        let cell = self.inflight.lock().await.entry(key.to_string()).or_default().clone();
        // Done earlier in this run (another platform or batch job): reused, not recomputed.
        if let Some(done) = cell.get() {
            return Ok(Rewritten { cached: true, ..done.clone() });
        }
        let r = cell
            .get_or_try_init(|| async {
                if let Some(dir) = self.dir.clone() {
                    // Hashing a cached blob is blocking work: off the async workers.
                    let (k, progress) = (key.to_string(), self.progress.clone());
                    if let Some(hit) = tokio::task::spawn_blocking(move || Self::lookup(&dir, &k, &progress)).await? {
                        return Ok(hit);
                    }
                }
                let (spooled, rw, shared) = compute().await?;
                let blob = self.store(key, &spooled, &rw)?;
                Ok::<_, anyhow::Error>(Rewritten { blob, rw, cached: false, shared })
            })
            .await?;
        Ok(r.clone())
    }
}

/// Refuse a cache directory (`given`, resolved to `real`) under a parent another user could
/// change: each directory above `real` must be owned by root or `euid`, and not group- or
/// world-writable unless sticky (as ssh's `safe_path`, with `/tmp`'s sticky bit allowed).
fn check_parents(given: &Path, real: &Path, euid: u32) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    for parent in real.ancestors().skip(1) {
        let m = std::fs::metadata(parent)
            .with_context(|| format!("--cache-dir {}: cannot read its parent {}", given.display(), parent.display()))?;
        let (mode, uid) = (m.mode(), m.uid());
        if uid != 0 && uid != euid {
            anyhow::bail!(
                "--cache-dir {}: its parent {} is owned by uid {uid}, neither root nor this user (uid {euid}), who could swap the cache for their own; use a directory under one of your own",
                given.display(),
                parent.display()
            );
        }
        if mode & 0o022 != 0 && mode & 0o1000 == 0 {
            anyhow::bail!(
                "--cache-dir {}: its parent {} is writable by other users (mode {:04o}) and not sticky, who could swap the cache for their own; run `chmod go-w {}` (or `chmod +t`)",
                given.display(),
                parent.display(),
                mode & 0o7777,
                parent.display()
            );
        }
    }
    Ok(())
}

/// Refuse a cache directory another user could write to: group- or world-writable, or owned by
/// another uid than `euid` (as ssh refuses such key files).
fn check_private(dir: &Path, euid: u32) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(dir).with_context(|| format!("--cache-dir {}: cannot read it", dir.display()))?;
    if m.mode() & 0o022 != 0 {
        anyhow::bail!(
            "--cache-dir {}: writable by other users (mode {:04o}), who could change what harden reuses; run `chmod go-w {}`",
            dir.display(),
            m.mode() & 0o7777,
            dir.display()
        );
    }
    if m.uid() != euid {
        anyhow::bail!(
            "--cache-dir {}: owned by uid {}, not by this user (uid {euid}), who could change what harden reuses; use a directory of your own",
            dir.display(),
            m.uid()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn computes_once_and_serves_from_disk_afterwards() {
        let dir = tempfile::tempdir().unwrap();
        let spool = tempfile::tempdir().unwrap();
        let plan = LayerPlan::default();
        let input = Digest::of(b"in");
        let key = RewriteCache::key(&input, &plan, OutputCodec::Gzip(6), true);
        assert_ne!(key, RewriteCache::key(&input, &plan, OutputCodec::Gzip(9), true));
        assert_ne!(key, RewriteCache::key(&input, &plan, OutputCodec::Gzip(6), false));
        let make = |n: &str| {
            let p = spool.path().join(n);
            std::fs::write(&p, b"blob").unwrap();
            let rw = LayerRewrite {
                digest: Digest::of(b"blob"),
                size: 4,
                diff_id: Digest::of(b"tar"),
                stats: Default::default(),
            };
            (p, rw, false)
        };
        let cache = RewriteCache::new(Some(dir.path().to_path_buf())).unwrap();
        let calls = std::sync::atomic::AtomicUsize::new(0);
        for _ in 0..2 {
            let r = cache
                .get_or_rewrite(&key, || async {
                    calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    Ok(make("a"))
                })
                .await
                .unwrap();
            assert_eq!(std::fs::read(&r.blob).unwrap(), b"blob");
        }
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        // A new process (new cache object) finds it on disk without computing.
        let again = RewriteCache::new(Some(dir.path().to_path_buf())).unwrap();
        let r = again.get_or_rewrite(&key, || async { panic!("must not recompute") }).await.unwrap();
        assert!(r.cached);
        // A truncated blob is a miss.
        std::fs::write(&r.blob, b"x").unwrap();
        let third = RewriteCache::new(Some(dir.path().to_path_buf())).unwrap();
        let r = third.get_or_rewrite(&key, || async { Ok(make("b")) }).await.unwrap();
        assert!(!r.cached);
        // A blob changed in place (same size, other bytes) is a miss too, and is rewritten.
        std::fs::write(&r.blob, b"BLOB").unwrap();
        let fourth = RewriteCache::new(Some(dir.path().to_path_buf())).unwrap();
        let r = fourth.get_or_rewrite(&key, || async { Ok(make("c")) }).await.unwrap();
        assert!(!r.cached, "a tampered blob must not be served");
        assert_eq!(std::fs::read(&r.blob).unwrap(), b"blob", "and the good bytes replace it");
        let fifth = RewriteCache::new(Some(dir.path().to_path_buf())).unwrap();
        assert!(fifth.get_or_rewrite(&key, || async { panic!("must not recompute") }).await.unwrap().cached);
    }

    #[test]
    fn a_cache_directory_other_users_can_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("c");
        RewriteCache::new(Some(d.clone())).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&d.join("blobs/sha256")) & 0o077, 0, "created private");
        for (sub, m) in [("", 0o777), ("", 0o775), ("blobs/sha256", 0o757)] {
            let p = d.join(sub);
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).unwrap();
            let e = RewriteCache::new(Some(d.clone())).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains(&format!("chmod go-w {}", p.display())) && e.contains("writable"), "{e}");
            assert_eq!(e.lines().count(), 1, "{e}");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        RewriteCache::new(Some(d.clone())).unwrap();
        // Owned by someone else (checked against another uid than the directory's).
        use std::os::unix::fs::MetadataExt;
        let owner = std::fs::metadata(&d).unwrap().uid();
        let e = check_private(&d, owner + 1).unwrap_err().to_string();
        assert!(e.contains(&format!("owned by uid {owner}")), "{e}");
    }

    #[test]
    fn a_cache_under_a_parent_other_users_can_change_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let top = tempfile::tempdir().unwrap();
        let parent = top.path().join("shared");
        std::fs::create_dir(&parent).unwrap();
        let d = parent.join("harden");
        RewriteCache::new(Some(d.clone())).unwrap();
        // Writable by others, not sticky: another user could rename `harden` away mid-run.
        for m in [0o777, 0o775, 0o2775] {
            std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(m)).unwrap();
            let e = RewriteCache::new(Some(d.clone())).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains(&format!("its parent {} is writable", parent.display())), "{m:o}: {e}");
            assert_eq!(e.lines().count(), 1);
        }
        // Sticky (as /tmp, or a pod's volume root made sticky): others cannot rename our entries.
        for m in [0o1777, 0o3775] {
            std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(m)).unwrap();
            RewriteCache::new(Some(d.clone())).unwrap();
        }
        std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o755)).unwrap();
        // Reached through a symlink: the resolved path is checked, and used.
        let link = top.path().join("link");
        std::os::unix::fs::symlink(&parent, &link).unwrap();
        let c = RewriteCache::new(Some(link.join("harden"))).unwrap();
        assert_eq!(c.dir().unwrap(), std::fs::canonicalize(&d).unwrap());
        // A parent owned by someone else: as root, given away; otherwise checked against
        // another uid than its owner's.
        use std::os::unix::fs::MetadataExt;
        let owner = std::fs::metadata(&parent).unwrap().uid();
        let e = if owner == 0 {
            std::os::unix::fs::chown(&parent, Some(65534), None).unwrap();
            RewriteCache::new(Some(d.clone())).err().map(|e| e.to_string()).unwrap_or_default()
        } else {
            check_parents(&d, &d, owner + 1).unwrap_err().to_string()
        };
        assert!(e.contains("neither root nor this user"), "{e}");
        let e = check_parents(&d, &parent.join("x/harden"), 0);
        assert!(e.is_err(), "a parent that cannot be read is refused");
    }
}
