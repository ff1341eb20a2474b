//! Files harden writes outside image stores' own formats: reports, digests, keys, cache
//! records — each written whole or not at all.
//!
//! Owns: atomic replacement of a file, the digest of a file. Must not: know what the bytes are.

use anyhow::{anyhow, Context, Result};
use std::io::Write;
use std::path::Path;

/// Write via a temporary file in the same directory and rename: readers see old or new, never half.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |w| Ok(w.write_all(bytes)?))
}

/// [`write_atomic`] of what `write` produces, for a file too big to build in memory first
/// (a batch's report): all of it or, on any error, nothing (the temporary file is removed).
pub fn write_atomic_with(path: &Path, write: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).with_context(|| format!("cannot write in {}", dir.display()))?;
    {
        let mut w = std::io::BufWriter::new(tmp.as_file_mut());
        write(&mut w)?;
        w.flush()?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| anyhow!("cannot replace {}: {}", path.display(), e.error))?;
    Ok(())
}

/// The sha256 of a file, streamed.
pub fn digest_of(path: &Path) -> std::io::Result<crate::digest::Digest> {
    let mut h = crate::digest::HashingWriter::new(std::io::sink());
    std::io::copy(&mut std::fs::File::open(path)?, &mut h)?;
    Ok(h.finish().1)
}
