//! The build id's material, computed by `build.rs` when harden is compiled (this file is that
//! script's module too, `#[path]`-included): a digest of everything the binary is made from — the
//! sources and what they embed, the manifest and lock file (every dependency's version and
//! checksum), the compiler's version and the build's settings. [`crate::cache::build_id`] keys
//! the rewrite, scan and result caches with it.
//!
//! It replaces hashing the running binary (18 MB read and hashed on every run that touches a
//! cache, about 10 ms: all of a warm re-mirror's margin over skopeo). Two builds from the same
//! inputs make the same id, and are the same program; any change to an input changes it.
//!
//! Owns: walking the inputs in a fixed order and hashing them. Must not: depend on anything of
//! the crate (build.rs compiles it alone) or read anything but the given roots.

use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};

/// The directories and files, relative to the package root, whose bytes make the binary. Every
/// `include_str!`/`include_bytes!` of `src/` must name a file under one of these (a unit test
/// checks it).
pub const ROOTS: [&str; 7] = ["src", "profiles", "docs", "fuzz/seeds", "build.rs", "Cargo.toml", "Cargo.lock"];

/// Hashes the files under `roots` (relative to `base`; a missing root counts as absent, not as
/// an error: a packaged crate may lack `fuzz/`), each as its relative path, length and bytes, in
/// sorted order, then `settings` (compiler version, profile, target, flags). Returns 16 hex
/// digits. Symlinks are not followed (a loop cannot hang the build); their targets are hashed.
pub fn material(base: &Path, roots: &[&str], settings: &[(String, String)]) -> std::io::Result<String> {
    let mut files = Vec::new();
    for root in roots {
        collect(base, &base.join(root), &mut files)?;
    }
    files.sort();
    let mut h = Sha256::new();
    h.update(b"harden-build/1\0");
    for rel in &files {
        let full = base.join(rel);
        let meta = std::fs::symlink_metadata(&full)?;
        let bytes = if meta.file_type().is_symlink() {
            std::fs::read_link(&full)?.into_os_string().into_encoded_bytes()
        } else {
            std::fs::read(&full)?
        };
        h.update(rel.as_os_str().as_encoded_bytes());
        h.update([0]);
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    for (k, v) in settings {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    Ok(h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect())
}

fn collect(base: &Path, at: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let meta = match std::fs::symlink_metadata(at) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if meta.is_dir() {
        for entry in std::fs::read_dir(at)? {
            collect(base, &entry?.path(), out)?;
        }
    } else if let Ok(rel) = at.strip_prefix(base) {
        out.push(rel.to_path_buf());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(d.path().join("src/a")).expect("mkdir");
        std::fs::write(d.path().join("src/a/x.rs"), "fn x() {}").expect("write");
        std::fs::write(d.path().join("src/y.rs"), "fn y() {}").expect("write");
        std::fs::write(d.path().join("Cargo.toml"), "[package]").expect("write");
        d
    }

    fn id(d: &Path, settings: &[(String, String)]) -> String {
        material(d, &["src", "Cargo.toml", "fuzz/seeds"], settings).expect("material")
    }

    #[test]
    fn any_byte_name_or_setting_changes_the_id_and_nothing_else_does() {
        let d = tree();
        let none: &[(String, String)] = &[];
        let first = id(d.path(), none);
        assert_eq!(first.len(), 16);
        assert_eq!(id(d.path(), none), first, "the same inputs give the same id");
        // Touching a file (mtime) changes nothing.
        std::fs::write(d.path().join("src/y.rs"), "fn y() {}").expect("write");
        assert_eq!(id(d.path(), none), first);
        std::fs::write(d.path().join("src/y.rs"), "fn y() { }").expect("write");
        let edited = id(d.path(), none);
        assert_ne!(edited, first, "an edited source");
        std::fs::rename(d.path().join("src/y.rs"), d.path().join("src/z.rs")).expect("rename");
        assert_ne!(id(d.path(), none), edited, "a renamed source");
        let release = [("PROFILE".to_string(), "release".to_string())];
        assert_ne!(id(d.path(), &release), id(d.path(), none), "a build setting");
        // A file outside the roots is not an input.
        std::fs::write(d.path().join("README.md"), "words").expect("write");
        assert_eq!(id(d.path(), &release), id(d.path(), &release));
    }

    /// A file `src/` embeds is an input of the binary: it must lie under [`ROOTS`], or editing it
    /// would leave the id, and the caches it keys, as they were.
    #[test]
    fn every_file_the_sources_embed_is_under_the_hashed_roots() {
        let base = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut sources = Vec::new();
        collect(base, &base.join("src"), &mut sources).expect("walk src");
        let mut seen = 0;
        for rel in sources.iter().filter(|p| p.extension().is_some_and(|e| e == "rs")) {
            let text = std::fs::read_to_string(base.join(rel)).expect("read source");
            let embeds = ["include_str!(\"", "include_bytes!(\""].map(|m| text.split(m).skip(1));
            for quoted in embeds.into_iter().flatten() {
                let Some(arg) = quoted.split('"').next().filter(|a| !a.is_empty()) else { continue };
                let dir = rel.parent().unwrap_or(Path::new(""));
                let target = base.join(dir).join(arg);
                let target = target.canonicalize().unwrap_or_else(|e| panic!("{}: {arg}: {e}", rel.display()));
                let inside = ROOTS.iter().any(|r| base.join(r).canonicalize().is_ok_and(|r| target.starts_with(r)));
                assert!(inside, "{} embeds {arg}, outside {ROOTS:?}", rel.display());
                seen += 1;
            }
        }
        assert!(seen >= 10, "found only {seen} embedded files: the search is broken");
    }
}
