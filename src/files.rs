//! Files harden writes outside image stores' own formats: reports, digests, keys, cache
//! records — each written whole or not at all.
//!
//! Also the one way harden reads a small document it did not write (an OCI layout's
//! `index.json`, manifests and configs): [`read_regular`], bounded, regular files only.
//!
//! Owns: atomic replacement of a file, the digest of a file, bounded reads of input files.
//! Must not: know what the bytes are.

use anyhow::{anyhow, bail, Context, Result};
use std::io::{Read, Write};
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

/// Open `path` for reading only if it is a regular file and not a symlink: `O_NOFOLLOW` (a
/// symlink fails to open), `O_NONBLOCK` (a FIFO cannot hang the open), and the opened file's own
/// metadata must say regular (a device, FIFO or socket is refused before a byte is read). The
/// error names the path only: nothing of what a refused file holds (its size, its digest).
pub fn open_regular(path: &Path) -> Result<(std::fs::File, u64)> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => anyhow!("{} is a symlink; only regular files are read", path.display()),
            _ => anyhow!("cannot read {}: {e}", path.display()),
        })?;
    let m = f.metadata().with_context(|| format!("cannot read {}", path.display()))?;
    if !m.is_file() {
        bail!(
            "{} is not a regular file (a device, FIFO, socket or directory); only regular files are read",
            path.display()
        );
    }
    Ok((f, m.len()))
}

/// The bytes of the regular file `path` ([`open_regular`]), at most `max` of them: more is an
/// error, found by reading at most `max + 1` bytes (a file growing while read, or lying about
/// its size, costs no more).
pub fn read_regular(path: &Path, max: u64) -> Result<Vec<u8>> {
    let (f, len) = open_regular(path)?;
    if len > max {
        bail!("{} is larger than the {max}-byte limit for it", path.display());
    }
    let mut bytes = Vec::with_capacity(len as usize);
    f.take(max + 1).read_to_end(&mut bytes).with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() as u64 > max {
        bail!("{} is larger than the {max}-byte limit for it", path.display());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_regular_refuses_symlinks_devices_fifos_and_oversize() {
        let d = tempfile::tempdir().unwrap();
        let ok = d.path().join("ok");
        std::fs::write(&ok, b"12345").unwrap();
        assert_eq!(read_regular(&ok, 5).unwrap(), b"12345");
        let e = read_regular(&ok, 4).unwrap_err().to_string();
        assert!(e.contains("larger than the 4-byte limit"), "{e}");
        let secret = d.path().join("secret");
        std::fs::write(&secret, b"root:$6$hash").unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        let e = read_regular(&link, 1 << 20).unwrap_err().to_string();
        assert!(e.contains("is a symlink") && !e.contains("$6$hash") && !e.contains(" 12 "), "{e}");
        let zero = d.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        assert!(read_regular(&zero, 1 << 20).unwrap_err().to_string().contains("symlink"));
        let e = read_regular(Path::new("/dev/zero"), 1 << 20).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let fifo = d.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_regular(&fifo, 1 << 20).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
    }
}
