//! Scan: read every layer once, headers only (plus small prefixes of the few files later stages
//! look inside), and check each layer's uncompressed digest against the config's diff_id.
//!
//! Owns: turning a layer blob into a [`LayerIndex`]. Must not: decide what to change, write blobs.

use crate::digest::{Digest, HashingReader};
use crate::layer::codec::Codec;
use crate::layer::inflate;
use crate::layer::tar::{Kind, TarReader};
use crate::layer::Limits;
use std::io::{self, Read};

/// What the scan remembers of one entry.
#[derive(Clone, Debug)]
pub struct EntryInfo {
    pub path: String,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub link: Option<String>,
    /// Carries a `security.capability` xattr.
    pub caps: bool,
    pub escapes: bool,
    /// The first bytes of the file, for the few files later stages look inside (see [`prefix_len`]).
    pub prefix: Option<Box<[u8]>>,
}

impl EntryInfo {
    pub fn is_whiteout(&self) -> bool {
        crate::layer::path::split_parent(&self.path).1.starts_with(".wh.")
    }
}

#[derive(Clone, Debug)]
pub struct LayerIndex {
    pub entries: Vec<EntryInfo>,
    pub codec: Codec,
    pub diff_id: Digest,
    pub uncompressed_size: u64,
}

/// Files whose contents matter later: executables (shebang, ELF interpreter), account
/// databases (user checks), package databases and os-release ([`crate::pkgdb`]), and candidate secret files (audit by content). Bounded sizes
/// keep the whole scan's memory small.
pub fn prefix_len(path: &str, mode: u32, size: u64) -> u64 {
    const ACCOUNTS: [&str; 4] = ["etc/passwd", "etc/group", "etc/shadow", "etc/gshadow"];
    if ACCOUNTS.contains(&path) {
        return size.min(1 << 20);
    }
    // Package databases, whole (the plan edits them; a file cut short is refused there, naming it).
    if crate::pkgdb::paths::is_database_file(path) {
        return size.min(crate::pkgdb::paths::MAX_FILE);
    }
    if path == "etc/os-release" || path == "usr/lib/os-release" {
        return size.min(4096);
    }
    if mode & 0o111 != 0 {
        return size.min(1024);
    }
    // The audit reads these for key material, and skips library code: keep nothing of it.
    if crate::secrets::library_path(path) {
        return 0;
    }
    let lower = path.to_ascii_lowercase();
    let secretish = [
        ".pem",
        ".key",
        ".p12",
        ".pfx",
        ".asc",
        ".env",
        ".npmrc",
        "id_rsa",
        "id_ecdsa",
        "id_ed25519",
        "id_dsa",
        "credentials",
        ".json",
        ".yml",
        ".yaml",
        ".cfg",
        ".conf",
        ".ini",
        ".txt",
        ".py",
        ".sh",
        ".properties",
        ".toml",
        ".xml",
        ".rb",
        ".js",
        ".php",
        ".tfvars",
    ];
    if secretish.iter().any(|s| lower.ends_with(s)) {
        return size.min(4096);
    }
    0
}

/// Scan one layer blob within `limits` (size, ratio, entries: see [`Limits`]). The blob's digest
/// (when not verified on download) and the config's diff_id are checked when given: a mismatch
/// is an error naming both. One thread decompresses (and hashes the blob), the caller's hashes
/// the uncompressed stream and parses it (see [`crate::layer::inflate`]). A scan that fails
/// gives back the entries it had taken from `limits`.
pub fn scan_layer(
    blob: impl Read + Send,
    expected_digest: Option<&Digest>,
    expected_diff_id: Option<&Digest>,
    limits: &Limits,
) -> io::Result<LayerIndex> {
    let mut taken = (0u64, 0u64);
    let res = scan_counted(blob, expected_digest, expected_diff_id, limits, &mut taken);
    if res.is_err() {
        limits.give_back(taken.0, taken.1);
    }
    res
}

fn scan_counted(
    blob: impl Read + Send,
    expected_digest: Option<&Digest>,
    expected_diff_id: Option<&Digest>,
    limits: &Limits,
    taken: &mut (u64, u64),
) -> io::Result<LayerIndex> {
    let ((entries, diff_id, uncompressed_size), compressed) =
        inflate::with_plain(blob, expected_digest.is_some(), limits, |plain| {
            let mut hashing = HashingReader::new(plain);
            let mut entries = Vec::new();
            {
                let mut tr = TarReader::new(&mut hashing);
                while let Some(e) = tr.next_entry()? {
                    if e.kind == Kind::GlobalPax {
                        continue;
                    }
                    let mode = e.mode();
                    let want = if e.kind == Kind::File { prefix_len(&e.path, mode, e.size) } else { 0 };
                    let prefix = if want > 0 { Some(tr.read_prefix(want)?.into_boxed_slice()) } else { None };
                    let kept =
                        e.path.len() + e.link.as_ref().map_or(0, String::len) + prefix.as_ref().map_or(0, |p| p.len());
                    limits.take_entry(kept as u64)?;
                    taken.0 += 1;
                    taken.1 += kept as u64;
                    entries.push(EntryInfo {
                        caps: e.has_xattr("security.capability"),
                        uid: e.uid(),
                        gid: e.gid(),
                        path: e.path,
                        kind: e.kind,
                        mode,
                        size: e.size,
                        link: e.link,
                        escapes: e.escapes,
                        prefix,
                    });
                }
                tr.finish()?;
            }
            let (diff_id, uncompressed_size) = hashing.finish()?;
            Ok((entries, diff_id, uncompressed_size))
        })?;
    if let Some(expected) = expected_digest {
        let digest = compressed.digest.as_ref().ok_or_else(|| io::Error::other("the blob was not hashed"))?;
        if expected != digest {
            return Err(crate::layer::tar::bad(format!("blob content has digest {digest} (corrupt or tampered)")));
        }
    }
    if let Some(expected) = expected_diff_id {
        if *expected != diff_id {
            return Err(crate::layer::tar::bad(format!(
                "uncompressed content has digest {diff_id}, but the config's diff_id says {expected}"
            )));
        }
    }
    Ok(LayerIndex { entries, codec: compressed.codec, diff_id, uncompressed_size })
}
